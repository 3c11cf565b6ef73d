package bench

import (
	"bytes"
	"strings"
	"testing"
)

// Bad command lines exit 2 with a message naming the offending thing, and
// never start a benchmark.
func TestMainBadInput(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--runs", "0"}, "runs 0"},
		{[]string{"--runs", "-1", "--quick"}, "runs -1"},
		{[]string{"--cpu-rate", "-5"}, "CPU rate"},
		{[]string{"unexpected"}, `unexpected argument "unexpected"`},
		{[]string{"--no-such-flag"}, "no-such-flag"},
		{[]string{"gen", "--iface", "c0", "--dst-mac", "zz", "--dst", "198.18.0.10"}, `"zz" is not a MAC address`},
		{[]string{"gen", "--iface", "c0", "--dst-mac", "02:00:00:00:01:01", "--dst", "198.18.0.x"}, `--dst "198.18.0.x"`},
		{[]string{"gen", "--dst", "198.18.0.10"}, "--iface, --dst-mac and --dst are required"},
		{[]string{"gen", "--iface", "c0", "--src-mac", "02:00:00:00:01:02", "--dst-mac", "02:00:00:00:01:01", "--dst", "198.18.0.10", "--flows", "0"}, "0 flows"},
	} {
		var out, errb bytes.Buffer
		if code := Main(c.args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", c.args, code, errb.String())
		}
		if !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v: stderr %q does not name %q", c.args, errb.String(), c.want)
		}
	}
}

func TestMainHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main([]string{"-h"}, &out, &errb); code != 0 || !strings.Contains(errb.String(), "usage: uvs-bench") {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}
