package healthcheck

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/wait"
)

// inNS runs a prober's probes inside a namespace: each probe's socket is
// created there (netnstest.Do), so it reaches the namespace's network.
func inNS(ns *netnstest.NS, p Prober) Prober {
	return ProberFunc(func(ctx context.Context, t Target) Result {
		var r Result
		if err := ns.Do(func() error { r = p.Probe(ctx, t); return nil }); err != nil {
			return Result{Msg: "netns: " + err.Error()}
		}
		return r
	})
}

// nsPair is a checker namespace and a real-server namespace joined by a
// veth: 198.18.0.1 (checker) and 198.18.0.2 (real server).
func nsPair(t *testing.T) (cli, srv *netnstest.NS) {
	t.Helper()
	cli = netnstest.New(t, "hcc")
	srv = netnstest.New(t, "hcs")
	netnstest.Veth(t, cli, "c0", srv, "s0")
	cli.AddrAdd(t, "c0", "198.18.0.1/24")
	srv.AddrAdd(t, "s0", "198.18.0.2/24")
	return cli, srv
}

// listenIn starts a listener inside ns that accepts and closes; it is
// closed when the test ends.
func listenIn(t *testing.T, ns *netnstest.NS, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatalf("listen in %s: %v", ns.Name, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); <-done })
	return ln
}

// A TCP_CHECK across a veth: up while the real server listens; once the
// listener stops, down after exactly retry+1 failed probes.
func TestNetnsTCPCheckDown(t *testing.T) {
	cli, srv := nsPair(t)
	ln := listenIn(t, srv, "198.18.0.2:8080")

	cfg := Defaults(KindTCP)
	cfg.Target = Target{Addr: netip.MustParseAddrPort("198.18.0.2:8080"), Timeout: 5 * time.Second}
	cfg.DelayLoop, cfg.DelayBeforeRetry, cfg.Warmup, cfg.Retry = 50*time.Millisecond, 20*time.Millisecond, 0, 1

	var mu sync.Mutex
	var results []Result
	var events []RSEvent
	var atEvent []int
	rs := NewRealServer("198.18.0.2:8080", func(ev RSEvent) {
		mu.Lock()
		events = append(events, ev)
		atEvent = append(atEvent, len(results))
		mu.Unlock()
	})
	rs.AddChecker(cfg, inNS(cli, TCPCheck{}), Options{
		OnResult: func(_ *Checker, r Result) { mu.Lock(); results = append(results, r); mu.Unlock() },
	})
	rs.Start()
	t.Cleanup(rs.Stop)
	nres := func() int { mu.Lock(); defer mu.Unlock(); return len(results) }
	wait.For(t, 10*time.Second, func() bool { return nres() >= 2 }, "two probes")
	if !rs.Alive() {
		t.Fatalf("real server down while listening: %+v", results)
	}
	_ = ln.Close()
	wait.For(t, 10*time.Second, func() bool { return !rs.Alive() }, "the real server down")
	rs.Stop()

	mu.Lock()
	defer mu.Unlock()
	if len(events) != 1 || !events[0].Transition || events[0].Alive {
		t.Fatalf("events: %+v", events)
	}
	r := results[:atEvent[0]]
	n := len(r)
	if n < 3 || !r[n-3].OK || r[n-2].OK || r[n-1].OK {
		t.Fatalf("down after %+v, want a success then retry+1 = 2 failures", r)
	}
	if want := "TCP_CHECK on service [198.18.0.2]:tcp:8080 failed after 1 retries."; events[0].Update.Msg != want {
		t.Errorf("verdict %q, want %q", events[0].Update.Msg, want)
	}
	if !strings.HasSuffix(r[n-1].Msg, "failed.") {
		t.Errorf("refused probe: %q", r[n-1].Msg)
	}
}

// A silent host (SYNs go nowhere) times out after connect_timeout.
func TestNetnsTCPCheckTimeout(t *testing.T) {
	cli, _ := nsPair(t)
	cli.NeighAdd(t, "c0", "198.18.0.99", net.HardwareAddr{0x02, 0, 0, 0, 0, 0x99})
	p := inNS(cli, TCPCheck{})
	r := p.Probe(context.Background(), Target{Addr: netip.MustParseAddrPort("198.18.0.99:80"), Timeout: 200 * time.Millisecond})
	if r.OK || r.Msg != "TCP connection to [198.18.0.99]:tcp:80 timeout." {
		t.Errorf("silent host: %+v", r)
	}
}

// fwmark sets SO_MARK: only marked probes find the route to 198.18.1.2.
func TestNetnsTCPCheckFWMark(t *testing.T) {
	cli, srv := nsPair(t)
	srv.AddrAdd(t, "s0", "198.18.1.2/32")
	cli.IP(t, "rule", "add", "fwmark", "7", "table", "100")
	cli.IP(t, "route", "add", "198.18.1.2/32", "dev", "c0", "table", "100")
	listenIn(t, srv, "198.18.1.2:8080")
	p := inNS(cli, TCPCheck{})
	tgt := Target{Addr: netip.MustParseAddrPort("198.18.1.2:8080"), Timeout: 5 * time.Second}
	if r := p.Probe(context.Background(), tgt); r.OK {
		t.Errorf("unmarked probe found a route: %+v", r)
	}
	tgt.FWMark = 7
	if r := p.Probe(context.Background(), tgt); !r.OK {
		t.Errorf("marked probe: %+v", r)
	}
}

// HTTP_GET across the veth: the digest of the real server's page, then a
// 503 takes the checker down after retry+1 failures.
func TestNetnsHTTPGet(t *testing.T) {
	cli, srv := nsPair(t)
	var ln net.Listener
	if err := srv.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", "198.18.0.2:8080")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var broken atomic.Bool
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if broken.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = io.WriteString(w, "page")
	})}
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close(); <-done })

	tgt := Target{Addr: netip.MustParseAddrPort("198.18.0.2:8080"), Timeout: 5 * time.Second}
	get := &HTTPGet{URLs: []URL{{Path: "/", Digest: md5hex("page")}}, Protocol: HTTP11}
	var d string
	if err := cli.Do(func() error {
		var err error
		d, _, err = GenHash(context.Background(), tgt, get, 0)
		return err
	}); err != nil || d != md5hex("page") {
		t.Fatalf("genhash across the veth: %q %v", d, err)
	}

	cfg := Defaults(KindHTTP)
	cfg.Target = tgt
	cfg.DelayLoop, cfg.DelayBeforeRetry, cfg.Warmup, cfg.Retry = 50*time.Millisecond, 20*time.Millisecond, 0, 1
	var mu sync.Mutex
	var results []Result
	atDown := -1
	rs := NewRealServer("rs", func(ev RSEvent) {
		mu.Lock()
		if ev.Transition && !ev.Alive {
			atDown = len(results)
		}
		mu.Unlock()
	})
	rs.AddChecker(cfg, urlsInNS{cli, get}, Options{
		OnResult: func(_ *Checker, r Result) { mu.Lock(); results = append(results, r); mu.Unlock() },
	})
	rs.Start()
	t.Cleanup(rs.Stop)
	wait.For(t, 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(results) >= 2 }, "two probes")
	broken.Store(true)
	wait.For(t, 10*time.Second, func() bool { return !rs.Alive() }, "the real server down")
	rs.Stop()
	mu.Lock()
	defer mu.Unlock()
	r := results[:atDown]
	n := len(r)
	if n < 3 || !r[n-3].OK || r[n-2].OK || r[n-1].OK || !strings.HasPrefix(r[n-1].Msg, "HTTP status code error to server") {
		t.Fatalf("down after %+v, want a success then 2 status errors", r)
	}
}

// urlsInNS is inNS for a URLProber.
type urlsInNS struct {
	ns *netnstest.NS
	p  URLProber
}

func (u urlsInNS) Probe(ctx context.Context, t Target) Result { return inNS(u.ns, u.p).Probe(ctx, t) }
func (u urlsInNS) URLCount() int                              { return u.p.URLCount() }
func (u urlsInNS) ProbeURL(ctx context.Context, t Target, i int) Result {
	var r Result
	if err := u.ns.Do(func() error { r = u.p.ProbeURL(ctx, t, i); return nil }); err != nil {
		return Result{Msg: "netns: " + err.Error()}
	}
	return r
}
