package bench

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/fuzzwatch"
)

const wrkOut = `Running 2s test @ http://198.18.0.10/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.57ms    1.20ms  20.04ms   83.03%
    Req/Sec    17.88k     1.66k   19.69k    85.00%
  Latency Distribution
     50%  812.00us
     75%    3.90ms
     90%    4.63ms
     99%    1.02s
  35577 requests in 2.00s, 5.36MB read
  Socket errors: connect 3, read 4, write 0, timeout 5
  Non-2xx or 3xx responses: 12
Requests/sec:  17783.89
Transfer/sec:      2.68MB
`

func TestParseWrk(t *testing.T) {
	r, err := ParseWrk(wrkOut)
	if err != nil {
		t.Fatal(err)
	}
	want := WrkResult{RequestsPerSec: 17783.89, Requests: 35577, P50: 812 * time.Microsecond, P99: 1020 * time.Millisecond, SocketErrors: 12, Non2xx: 12}
	if r != want {
		t.Fatalf("got %+v\nwant %+v", r, want)
	}
	if _, err := ParseWrk("unable to connect to 198.18.0.10:80 Connection refused\n"); err == nil {
		t.Fatal("accepted wrk output without results")
	}
	if _, err := ParseWrk(strings.Replace(wrkOut, "812.00us", "12.0xs", 1)); err == nil {
		t.Fatal("accepted a bad duration")
	}
}

func TestParseIperf3(t *testing.T) {
	r, err := ParseIperf3([]byte(`{"start":{},"end":{"sum_sent":{"retransmits":7,"bits_per_second":2.5e10},"sum_received":{"bits_per_second":2.4e10}}}`))
	if err != nil || r.BitsPerSec != 2.4e10 || r.Retransmits != 7 {
		t.Fatalf("%+v %v", r, err)
	}
	if _, err := ParseIperf3([]byte(`{"start":{},"end":{},"error":"unable to connect to server: Connection refused"}`)); err == nil ||
		!strings.Contains(err.Error(), "Connection refused") {
		t.Fatalf("iperf3 error not reported: %v", err)
	}
	if _, err := ParseIperf3([]byte(`not json`)); err == nil {
		t.Fatal("accepted garbage")
	}
}

func TestParseListConns(t *testing.T) {
	out := `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
UDP  198.18.0.10:9000 rr
  -> 198.18.2.2:9000              Masq    1      0          500010
  -> 198.18.3.2:9000              Masq    1      2          499990
`
	a, i, err := ParseListConns(out)
	if err != nil || a != 2 || i != 1_000_000 {
		t.Fatalf("%d %d %v", a, i, err)
	}
	if _, _, err := ParseListConns("IP Virtual Server version 1.2.1 (size=4096)\n"); err == nil {
		t.Fatal("accepted a listing without real servers")
	}
}

func TestParseGoBench(t *testing.T) {
	out := `goos: linux
pkg: github.com/uvs-lb/uvs/conntrack
BenchmarkLookup1M-2   	 1000000	       123.4 ns/op	       0 B/op	       0 allocs/op
BenchmarkTrack-2        	 100	  55 ns/op	 96.5 bytes/conn
PASS
pkg: github.com/uvs-lb/uvs/sched
BenchmarkSchedule/rr-2 	 5000	 7.5 ns/op
`
	res := ParseGoBench(out)
	if len(res) != 3 {
		t.Fatalf("%d results: %+v", len(res), res)
	}
	if r := res[0]; r.Pkg != "github.com/uvs-lb/uvs/conntrack" || r.Name != "BenchmarkLookup1M-2" || r.NsPerOp != 123.4 || r.AllocsPerOp != 0 {
		t.Errorf("%+v", r)
	}
	if r := res[1]; r.Extra["bytes/conn"] != 96.5 {
		t.Errorf("extra metric: %+v", r)
	}
	if r := res[2]; r.Pkg != "github.com/uvs-lb/uvs/sched" || r.NsPerOp != 7.5 {
		t.Errorf("%+v", r)
	}
}

func TestParseProcStat(t *testing.T) {
	in := `cpu  100 0 50 1000 5 0 7 3 0 0
cpu0 60 0 30 500 2 0 4 1 0 0
cpu1 40 1 20 500 3 2 3 2 0 0
intr 12345
`
	c, err := ParseProcStat(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want1 := CPUTimes{User: 40, Nice: 1, System: 20, Idle: 500, IOWait: 3, IRQ: 2, SoftIRQ: 3, Steal: 2}
	if len(c) != 2 || c[1] != want1 {
		t.Fatalf("%+v", c)
	}
	if c[1].Busy() != 66 || c[1].Total() != 571 {
		t.Fatalf("busy %d total %d", c[1].Busy(), c[1].Total())
	}
	d := c[1].Sub(CPUTimes{User: 30, Idle: 400, Steal: 1, SoftIRQ: 9})
	if d.User != 10 || d.Idle != 100 || d.Steal != 1 || d.SoftIRQ != 0 {
		t.Fatalf("sub %+v", d)
	}
	if _, err := ParseProcStat(strings.NewReader("cpux 1 2 3\n")); err == nil {
		t.Fatal("accepted a bad cpu line")
	}
	if _, err := ParseProcStat(strings.NewReader("intr 1\n")); err == nil {
		t.Fatal("accepted a file without CPUs")
	}
}

func TestParsePIDStat(t *testing.T) {
	line := []byte("4242 (a b) c)) S 1 4242 4242 0 -1 4194560 1 2 3 4 150 25 0 0 20 0 1 0 777 1000 10 18446744073709551615")
	s, err := ParsePIDStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if s.PPID != 1 || s.UTime != 150 || s.STime != 25 || s.StartTime != 777 || s.Kernel() {
		t.Fatalf("%+v", s)
	}
	kt := bytes.Replace(line, []byte("4194560"), []byte("2129984"), 1) // PF_KTHREAD set
	if s, err := ParsePIDStat(kt); err != nil || !s.Kernel() {
		t.Fatalf("kernel thread not recognised: %+v %v", s, err)
	}
	if _, err := ParsePIDStat([]byte("12 (x) S 1")); err == nil {
		t.Fatal("accepted a short line")
	}
}

func TestParseVmRSS(t *testing.T) {
	n, err := ParseVmRSS([]byte("Name:\tuvsd\nVmPeak:\t 1 kB\nVmRSS:\t  123456 kB\n"))
	if err != nil || n != 123456<<10 {
		t.Fatalf("%d %v", n, err)
	}
	if _, err := ParseVmRSS([]byte("Name:\tx\n")); err == nil {
		t.Fatal("accepted status without VmRSS")
	}
}

// The parsers read other programs' output: none may panic on any input.
func FuzzParsers(f *testing.F) {
	f.Add(wrkOut)
	f.Add("cpu0 1 2 3 4 5 6 7 8\ncpu1 1 2\n")
	f.Add("4242 (a b) c)) S 1 4242 4242 0 -1 4194560 1 2 3 4 150 25 0 0 20 0 1 0 777")
	f.Add("VmRSS:\t 12 kB\n")
	f.Add("pkg: x\nBenchmarkA-2 10 5 ns/op 0 B/op\n")
	f.Add("  -> 1.2.3.4:80 Masq 1 2 3\n")
	f.Fuzz(func(t *testing.T, s string) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("%d bytes %.200q", len(s), s) })()
		if r, err := ParseWrk(s); err == nil && r.RequestsPerSec != r.RequestsPerSec {
			t.Fatalf("NaN rate accepted from %q", s)
		}
		if c, err := ParseProcStat(strings.NewReader(s)); err == nil && len(c) == 0 {
			t.Fatalf("no CPUs but no error for %q", s)
		}
		_, _ = ParsePIDStat([]byte(s))
		_, _ = ParseVmRSS([]byte(s))
		_, _, _ = ParseListConns(s)
		_ = ParseGoBench(s)
		_, _ = ParseIperf3([]byte(s))
	})
}
