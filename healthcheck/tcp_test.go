package healthcheck

import (
	"context"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/wait"
)

// listen starts a loopback TCP listener that accepts and closes
// connections (or hands them to serve), closed when the test ends.
func listen(t testing.TB, network, addr string, serve func(net.Conn)) (net.Listener, netip.AddrPort) {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if serve == nil {
				_ = c.Close()
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	return ln, ln.Addr().(*net.TCPAddr).AddrPort()
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t testing.TB) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().(*net.TCPAddr).AddrPort()
	_ = ln.Close()
	return a
}

func TestTCPCheckLoopback(t *testing.T) {
	_, a4 := listen(t, "tcp", "127.0.0.1:0", nil)
	tgt := Target{Addr: a4, Timeout: 5 * time.Second}
	if r := (TCPCheck{}).Probe(context.Background(), tgt); !r.OK || r.Msg != "TCP connection to "+ServiceString(a4, "tcp")+" success." {
		t.Errorf("listening v4: %+v", r)
	}
	tgt.Addr = closedPort(t)
	if r := (TCPCheck{}).Probe(context.Background(), tgt); r.OK || !strings.HasSuffix(r.Msg, " failed.") {
		t.Errorf("closed port: %+v", r)
	}
	if ln, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		a6 := ln.Addr().(*net.TCPAddr).AddrPort()
		_ = ln.Close()
		_, a6 = listen(t, "tcp6", a6.String(), nil)
		r := (TCPCheck{}).Probe(context.Background(), Target{Addr: a6, Timeout: 5 * time.Second})
		if !r.OK || !strings.Contains(r.Msg, "[::1]:tcp:") {
			t.Errorf("listening v6: %+v", r)
		}
	}
}

// The probe binds to bindto:bind_port.
func TestTCPCheckBind(t *testing.T) {
	from := make(chan netip.AddrPort, 1)
	_, a := listen(t, "tcp", "127.0.0.1:0", func(c net.Conn) {
		from <- c.RemoteAddr().(*net.TCPAddr).AddrPort()
	})
	bindPort := closedPort(t).Port()
	tgt := Target{Addr: a, BindTo: netip.MustParseAddr("127.0.0.1"), BindPort: bindPort, Timeout: 5 * time.Second}
	if r := (TCPCheck{}).Probe(context.Background(), tgt); !r.OK {
		t.Fatalf("bound probe: %+v", r)
	}
	if got := <-from; got.Port() != bindPort {
		t.Errorf("server saw %v, want port %d", got, bindPort)
	}
}

// A cancelled context ends the probe.
func TestTCPCheckContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, a := listen(t, "tcp", "127.0.0.1:0", nil)
	if r := (TCPCheck{}).Probe(ctx, Target{Addr: a, Timeout: 5 * time.Second}); r.OK {
		t.Errorf("probe with a cancelled context: %+v", r)
	}
}

// A checker on the real clock against a loopback listener: up at the
// first probe, down after retry+1 refused probes once the listener is
// gone, and no goroutine left after Stop.
func TestCheckerRealClockLoopback(t *testing.T) {
	base := runtime.NumGoroutine()
	ln, a := listen(t, "tcp", "127.0.0.1:0", nil)
	cfg := Defaults(KindTCP)
	cfg.Target = Target{Addr: a, Timeout: 5 * time.Second}
	cfg.DelayLoop, cfg.DelayBeforeRetry, cfg.Warmup, cfg.Retry = 20*time.Millisecond, 10*time.Millisecond, 0, 2
	var mu sync.Mutex
	var results []bool
	var ups []Update
	var atVerdict []int // len(results) at each verdict
	c := NewChecker(cfg, TCPCheck{}, Options{
		OnResult: func(_ *Checker, r Result) { mu.Lock(); results = append(results, r.OK); mu.Unlock() },
		OnUpdate: func(u Update) {
			mu.Lock()
			ups = append(ups, u)
			atVerdict = append(atVerdict, len(results))
			mu.Unlock()
		},
	})
	c.Start()
	count := func() (int, int) { mu.Lock(); defer mu.Unlock(); return len(results), len(ups) }
	wait.For(t, 10*time.Second, func() bool { n, _ := count(); return n >= 2 }, "two probes")
	_ = ln.Close()
	wait.For(t, 10*time.Second, func() bool { _, u := count(); return u >= 2 }, "the down verdict")
	c.Stop()
	mu.Lock()
	if !ups[0].Up || !ups[0].FirstRun || ups[1].Up {
		t.Errorf("verdicts: %+v", ups)
	}
	// The down verdict came with the 3rd consecutive failure (retry 2).
	if r := results[:atVerdict[1]]; len(r) < 4 || !r[len(r)-4] || r[len(r)-3] || r[len(r)-2] || r[len(r)-1] {
		t.Errorf("down verdict after results %v, want ok then retry+1 = 3 failures", r)
	}
	mu.Unlock()
	wait.For(t, 10*time.Second, func() bool { return runtime.NumGoroutine() <= base },
		"goroutines back to %d, have %v", base, wait.Lazy(func() any { return runtime.NumGoroutine() }))
}
