package ipvsadm

import (
	"strings"
	"testing"
	"time"
)

func TestFormatCheckers(t *testing.T) {
	at := time.Date(2026, 12, 7, 3, 1, 10, 0, time.UTC)
	rows := []CheckerView{
		{VS: "[10.0.1.100]:tcp:80", RS: "[10.0.2.11]:tcp:80", Type: "TCP_CHECK", Target: "10.0.2.11:80", Up: true,
			LastMsg: "TCP connection to [10.0.2.11]:tcp:80 success.", LastAt: at, RetriesLeft: 1, Next: 2500 * time.Millisecond},
		{VS: "FWM 5", RS: "[2001:db8::1234:5678:9abc]:tcp:443", Type: "HTTP_GET", Target: "[2001:db8::1234:5678:9abc]:443",
			Next: -1},
	}
	var b strings.Builder
	if err := FormatCheckers(&b, rows); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"VS                       RS                       TYPE       TARGET                 STATE RETRY NEXT  LAST\n" +
		"[10.0.1.100]:tcp:80      [10.0.2.11]:tcp:80       TCP_CHECK  10.0.2.11:80           UP    1     3     2026-12-07T03:01:10Z TCP connection to [10.0.2.11]:tcp:80 success.\n" +
		"FWM 5                    [2001:db8::1234:5678:9abc]:tcp:443 HTTP_GET   [2001:db8::1234:5678:9abc]:443 DOWN  0     -     never\n"
	if got := b.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	b.Reset()
	if err := FormatCheckers(&b, nil); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); got != strings.SplitAfter(want, "\n")[0] {
		t.Errorf("no checkers: got %q, want the header only", got)
	}
}
