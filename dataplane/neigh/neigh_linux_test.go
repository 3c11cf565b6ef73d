package neigh

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/wait"
)

var (
	dirIP4  = netip.MustParseAddr("198.18.8.1")
	peerIP4 = netip.MustParseAddr("198.18.8.2")
	dirIP6  = netip.MustParseAddr("fd75:8::1")
	peerIP6 = netip.MustParseAddr("fd75:8::2")
	behind  = netip.MustParseAddr("198.18.99.5") // routed via the peer
)

type topo struct {
	dir, peer *testNS
	d0        int // ifindex of d0 in dir
}

func newTopo(t *testing.T) *topo {
	t.Helper()
	requireRoot(t)
	tp := &topo{dir: newNS(t), peer: newNS(t)}
	link(t, tp.dir, "d0", tp.peer, "p0")
	tp.dir.ip(t, "addr", "add", dirIP4.String()+"/24", "dev", "d0")
	tp.dir.ip(t, "addr", "add", dirIP6.String()+"/64", "dev", "d0", "nodad")
	tp.peer.ip(t, "addr", "add", peerIP4.String()+"/24", "dev", "p0")
	tp.peer.ip(t, "addr", "add", peerIP6.String()+"/64", "dev", "p0", "nodad")
	tp.dir.ip(t, "route", "add", "198.18.99.0/24", "via", peerIP4.String())
	// IPv6 answers neighbour solicitations only once the link-local
	// addresses have left DAD.
	wait.For(t, 10*time.Second, func() bool {
		return strings.TrimSpace(tp.dir.ip(t, "-6", "addr", "show", "tentative"))+
			strings.TrimSpace(tp.peer.ip(t, "-6", "addr", "show", "tentative")) == ""
	}, "the IPv6 addresses to leave DAD")
	tp.dir.do(t, func() error {
		ifi, err := net.InterfaceByName("d0")
		if err == nil {
			tp.d0 = ifi.Index
		}
		return err
	})
	return tp
}

func mac(t *testing.T, ns *testNS, dev string) [6]byte {
	t.Helper()
	f := strings.Fields(ns.ip(t, "-br", "link", "show", dev))
	hw, err := net.ParseMAC(f[2])
	if err != nil {
		t.Fatal(err)
	}
	return [6]byte(hw)
}

func newResolver(t *testing.T, tp *topo, o Options) *Resolver {
	t.Helper()
	o.NetNS = tp.dir.h
	r, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// waitHop polls Lookup until it hits with a hop cond accepts, within 10 s.
func waitHop(t *testing.T, r *Resolver, dst netip.Addr, cond func(Hop) bool) Hop {
	t.Helper()
	var last, found Hop
	wait.For(t, 10*time.Second, func() bool {
		h, ok := r.Lookup(dst)
		if !ok {
			return false
		}
		if cond(h) {
			found = h
			return true
		}
		last = h
		return false
	}, "Lookup(%s) to return an acceptable hop (last %+v)", dst, wait.Lazy(func() any { return last }))
	return found
}

func TestLookupResolvesPeer(t *testing.T) {
	tp := newTopo(t)
	r := newResolver(t, tp, Options{})
	peerMAC, dirMAC := mac(t, tp.peer, "p0"), mac(t, tp.dir, "d0")
	for _, c := range []struct{ dst, src netip.Addr }{{peerIP4, dirIP4}, {peerIP6, dirIP6}} {
		if _, ok := r.Lookup(c.dst); ok {
			t.Fatalf("Lookup(%s) hit before anything was resolved", c.dst)
		}
		h := waitHop(t, r, c.dst, func(Hop) bool { return true })
		want := Hop{Ifindex: tp.d0, SrcMAC: dirMAC, DstMAC: peerMAC, Src: c.src}
		if h != want {
			t.Errorf("Lookup(%s) = %+v, want %+v", c.dst, h, want)
		}
		if n := testing.AllocsPerRun(100, func() { r.Lookup(c.dst) }); n != 0 {
			t.Errorf("Lookup hit: %v allocs", n)
		}
	}
	ifs, err := r.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	if len(ifs) != 1 || ifs[0].Name != "d0" || ifs[0].Index != tp.d0 || ifs[0].MAC != dirMAC || ifs[0].MTU != 1500 {
		t.Fatalf("Interfaces() = %+v, want only d0", ifs)
	}
	for _, p := range []string{dirIP4.String() + "/24", dirIP6.String() + "/64"} {
		found := false
		for _, a := range ifs[0].Addrs {
			found = found || a.String() == p
		}
		if !found {
			t.Errorf("d0 lacks %s: %v", p, ifs[0].Addrs)
		}
	}
	tp.dir.ip(t, "link", "set", "d0", "down")
	if ifs, err := r.Interfaces(); err != nil || len(ifs) != 0 {
		t.Fatalf("Interfaces() with d0 down = %+v, %v", ifs, err)
	}
}

func TestLookupViaGateway(t *testing.T) {
	tp := newTopo(t)
	r := newResolver(t, tp, Options{})
	r.Prefetch(behind)
	h := waitHop(t, r, behind, func(Hop) bool { return true })
	want := Hop{Ifindex: tp.d0, SrcMAC: mac(t, tp.dir, "d0"), DstMAC: mac(t, tp.peer, "p0"), Src: dirIP4}
	if h != want {
		t.Fatalf("Lookup(%s) = %+v, want the gateway's hop %+v", behind, h, want)
	}
}

func TestRefreshPicksUpChangedMAC(t *testing.T) {
	tp := newTopo(t)
	r := newResolver(t, tp, Options{Refresh: 200 * time.Millisecond})
	r.Prefetch(peerIP4)
	waitHop(t, r, peerIP4, func(h Hop) bool { return h.DstMAC == mac(t, tp.peer, "p0") })

	// The peer changes its MAC and talks to the director, whose kernel learns
	// the new address from the peer's ARP request.
	newMAC := [6]byte{0x02, 0x75, 0x76, 0x73, 0, 1}
	tp.peer.ip(t, "link", "set", "p0", "address", net.HardwareAddr(newMAC[:]).String())
	tp.peer.ip(t, "neigh", "flush", "dev", "p0")
	tp.peer.do(t, func() error {
		c, err := net.Dial("udp", netip.AddrPortFrom(dirIP4, 9).String())
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("hello"))
		return err
	})
	waitHop(t, r, peerIP4, func(h Hop) bool { return h.DstMAC == newMAC })

	// The peer changes its MAC silently; the director's entry is flushed, so
	// the refresh has to ask the kernel to resolve it again.
	newMAC[5] = 2
	tp.peer.ip(t, "link", "set", "p0", "address", net.HardwareAddr(newMAC[:]).String())
	tp.dir.ip(t, "neigh", "flush", "dev", "d0")
	waitHop(t, r, peerIP4, func(h Hop) bool { return h.DstMAC == newMAC })
}

func TestMissesDeduplicatedAndFailures(t *testing.T) {
	tp := newTopo(t)
	r := newResolver(t, tp, Options{ResolveTimeout: 500 * time.Millisecond, RetryAfter: time.Hour})
	nobody := netip.MustParseAddr("198.18.8.77") // on-link, no host answers
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				r.Lookup(nobody)
			}
		}()
	}
	wg.Wait()
	// One resolution, in flight or, on a machine slow enough to take the
	// ResolveTimeout over the 800 lookups, already failed: a second one
	// could only have started before the first ended, and RetryAfter
	// keeps misses after a failure from starting any.
	state := func() (pending int, failed bool) {
		r.mu.Lock()
		defer r.mu.Unlock()
		_, failed = r.failed[nobody]
		return len(r.pending), failed
	}
	if pending, failed := state(); pending != 1 && !(pending == 0 && failed) {
		t.Fatalf("%d resolutions in flight (one failed: %v) for one destination, want 1", pending, failed)
	}
	// The failed resolution ends and is remembered: further misses start none.
	wait.For(t, 5*time.Second, func() bool { pending, failed := state(); return failed && pending == 0 },
		"the resolution of an absent host to fail")
	r.Lookup(nobody)
	pending, _ := state()
	if pending != 0 {
		t.Fatal("a miss within RetryAfter of a failure started a new resolution")
	}
	if _, err := r.Resolve(nobody); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Resolve(absent host) = %v, want ErrTimeout", err)
	}
	h, err := r.Resolve(peerIP6)
	if err != nil || h.DstMAC != mac(t, tp.peer, "p0") {
		t.Fatalf("Resolve(peer) = %+v, %v", h, err)
	}
	if _, ok := r.Lookup(peerIP6); !ok {
		t.Fatal("Resolve did not publish the hop")
	}
	r.Forget(peerIP6)
	if _, ok := (*r.table.Load())[peerIP6]; ok {
		t.Fatal("Forget left the hop in the table")
	}
}

// TestLocalRoute: the director's own addresses (a local route: on d0, on
// lo as an LVS-DR VIP, IPv4 and IPv6) resolve at once to a Local hop with
// no interface, MAC or source address, through Resolve and through a
// Lookup miss; the hop follows the address when it leaves and comes back.
// A non-local route through lo is still ErrLocal.
func TestLocalRoute(t *testing.T) {
	tp := newTopo(t)
	vip := netip.MustParseAddr("198.18.8.100")
	tp.dir.ip(t, "addr", "add", vip.String()+"/32", "dev", "lo")
	r := newResolver(t, tp, Options{Refresh: 200 * time.Millisecond})
	for _, a := range []netip.Addr{dirIP4, dirIP6, vip} {
		h, err := r.Resolve(a)
		if err != nil {
			t.Fatalf("Resolve(own address %s): %v", a, err)
		}
		if h != (Hop{Local: true}) {
			t.Fatalf("Resolve(own address %s) = %+v, want a Local hop without interface, MACs or source", a, h)
		}
		if got, ok := r.Lookup(a); !ok || got != h {
			t.Fatalf("Lookup(%s) after Resolve = %+v, %v", a, got, ok)
		}
	}
	// Through a miss, as the workers see it; no neighbour entry is made.
	r2 := newResolver(t, tp, Options{})
	if _, ok := r2.Lookup(vip); ok {
		t.Fatal("Lookup hit before anything was resolved")
	}
	waitHop(t, r2, vip, func(h Hop) bool { return h.Local })
	if out := tp.dir.ip(t, "neigh", "show", vip.String()); strings.TrimSpace(out) != "" {
		t.Fatalf("a neighbour entry for the director's own address: %q", out)
	}
	if peer, err := r.Resolve(peerIP4); err != nil || peer.Local {
		t.Fatalf("Resolve(peer) = %+v, %v: want a non-local hop", peer, err)
	}

	// The address moves to the peer: the refresh follows the route change.
	tp.dir.ip(t, "addr", "del", vip.String()+"/32", "dev", "lo")
	tp.dir.ip(t, "route", "add", vip.String()+"/32", "via", peerIP4.String())
	tp.peer.ip(t, "addr", "add", vip.String()+"/32", "dev", "lo")
	h := waitHop(t, r, vip, func(h Hop) bool { return !h.Local })
	if h.Ifindex != tp.d0 || h.DstMAC != mac(t, tp.peer, "p0") {
		t.Fatalf("Lookup(%s) once routed via the peer = %+v", vip, h)
	}
	tp.dir.ip(t, "route", "del", vip.String()+"/32")
	tp.dir.ip(t, "addr", "add", vip.String()+"/32", "dev", "lo")
	waitHop(t, r, vip, func(h Hop) bool { return h.Local })

	// A unicast route through lo is not a local route.
	tp.dir.ip(t, "route", "add", "198.18.77.0/24", "dev", "lo")
	if h, err := r.Resolve(netip.MustParseAddr("198.18.77.1")); !errors.Is(err, ErrLocal) {
		t.Fatalf("Resolve(address routed through lo) = %+v, %v, want ErrLocal", h, err)
	}
}

// TestHide: a hidden interface is left out of Interfaces until the undo
// function runs (twice is once).
func TestHide(t *testing.T) {
	tp := newTopo(t)
	r := newResolver(t, tp, Options{})
	names := func() []string {
		ifs, err := r.Interfaces()
		if err != nil {
			t.Fatal(err)
		}
		var n []string
		for _, i := range ifs {
			n = append(n, i.Name)
		}
		return n
	}
	if got := names(); len(got) != 1 || got[0] != "d0" {
		t.Fatalf("Interfaces = %v, want [d0]", got)
	}
	undo := r.Hide(tp.d0)
	if got := names(); len(got) != 0 {
		t.Fatalf("Interfaces with d0 hidden = %v", got)
	}
	again := r.Hide(tp.d0)
	undo()
	undo()
	if got := names(); len(got) != 0 {
		t.Fatalf("Interfaces with d0 hidden twice, undone once = %v", got)
	}
	again()
	if got := names(); len(got) != 1 || got[0] != "d0" {
		t.Fatalf("Interfaces after both undos = %v, want [d0]", got)
	}
}
