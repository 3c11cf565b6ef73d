package dataplane

import (
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/snapshot"
)

type mapHops map[netip.Addr]Hop

func (m mapHops) Lookup(a netip.Addr) (Hop, bool) { h, ok := m[a]; return h, ok }

// clientHopWorker returns a worker whose host has interface 1, and whose
// next hops resolve hops.
func clientHopWorker(t *testing.T, hops mapHops) (*Worker, *pktCtx) {
	t.Helper()
	var snap atomic.Pointer[snapshot.Snapshot]
	snap.Store(snapshot.New(1, nil))
	var host atomic.Pointer[Host]
	host.Store(&Host{Ifaces: map[int]Iface{1: {Index: 1, Name: "d0", MAC: [6]byte{2, 0, 0, 0, 1, 1}, MTU: 1500}}})
	ct, err := conntrack.New(conntrack.Config{Capacity: 16})
	if err != nil {
		t.Fatal(err)
	}
	env := &Env{Snap: &snap, Host: &host, Conns: ct, Hops: hops, Now: time.Now, Epoch: time.Now()}
	w := NewWorker(NewFakeIO(64, time.Millisecond), env)
	pc := &w.pc
	pc.snap, pc.host = snap.Load(), host.Load()
	buf := make([]byte, 64+60)
	pc.f = &Frame{Buf: buf, Off: 64, Len: 60, Ifindex: 2}
	pc.p = &w.b.ps[0]
	return w, pc
}

// A connection created here is answered through the MAC and interface its
// first packet came from; a synchronised one (no MAC) by route towards the
// client; an unresolved route queues the frame, and replayToClient sends it
// to the resolved hop.
func TestClientHop(t *testing.T) {
	client := netip.MustParseAddr("10.1.0.2")
	routed := Hop{Ifindex: 1, SrcMAC: [6]byte{2, 0, 0, 0, 1, 1}, DstMAC: [6]byte{2, 0, 0, 0, 9, 9}, Src: netip.MustParseAddr("10.1.0.1"), MTU: 1500}
	w, pc := clientHopWorker(t, mapHops{client: routed})
	c := conntrack.Conn{Client: conntrack.EndpointFrom(netip.AddrPortFrom(client, 40000)), MAC: [6]byte{2, 0, 0, 0, 1, 2}, Ifindex: 1, InPkts: 2}

	var h Hop
	// Routed (issue 16): the route's next hop, not the request's MAC.
	if !w.clientHop(pc, &c, &h) || h != routed {
		t.Fatalf("learnt client: hop %+v, want the route's %+v", h, routed)
	}
	// Not resolved yet, or on a VLAN: the request's MAC and interface.
	unresolved := c
	unresolved.Client = conntrack.EndpointFrom(netip.MustParseAddrPort("10.1.0.4:40000"))
	tagged := c
	tagged.VLAN = 100
	for _, x := range []*conntrack.Conn{&unresolved, &tagged} {
		if !w.clientHop(pc, x, &h) || h.Ifindex != 1 || h.DstMAC != c.MAC || h.SrcMAC != ([6]byte{2, 0, 0, 0, 1, 1}) || h.MTU != 1500 {
			t.Fatalf("learnt client (vlan %d): hop %+v", x.VLAN, h)
		}
		if pc.f.VLAN != x.VLAN {
			t.Fatalf("frame leaves on vlan %d, want %d", pc.f.VLAN, x.VLAN)
		}
	}
	unresolved.Ifindex = 9 // the interface is gone
	if w.clientHop(pc, &unresolved, &h) || w.Counters.Load(CntNeighMiss) != 1 {
		t.Fatal("a connection whose interface is gone was not refused and counted")
	}

	c.MAC, c.Ifindex = [6]byte{}, 0 // synchronised: no MAC
	h = Hop{}
	if !w.clientHop(pc, &c, &h) || h != routed {
		t.Fatalf("synced client: hop %+v, want the route's %+v", h, routed)
	}

	c.Client = conntrack.EndpointFrom(netip.MustParseAddrPort("10.1.0.3:40000")) // not resolved
	if w.clientHop(pc, &c, &h) {
		t.Fatal("unresolved client hop reported ready")
	}
	if w.pq.n != 1 || w.Counters.Load(CntNeighQueued) != 1 {
		t.Fatalf("frame not queued: %d queued", w.pq.n)
	}
	e := &w.pq.ents[w.pq.order[0]]
	if e.kind != pendToClient || e.addr != netip.MustParseAddr("10.1.0.3") {
		t.Fatalf("queued as kind %d for %v", e.kind, e.addr)
	}
	// Later frames to that client wait behind it.
	if w.clientHop(pc, &c, &h) || w.pq.n != 2 {
		t.Fatal("a later frame overtook the queued one")
	}
	w.replayToClient(e, &routed)
	if len(w.out) != 1 || w.out[0].Ifindex != 1 || [6]byte(w.out[0].Data()[:6]) != routed.DstMAC ||
		[6]byte(w.out[0].Data()[6:12]) != routed.SrcMAC {
		t.Fatalf("replayed frame %+v", w.out)
	}
}

// clientHop does not allocate, whether the client is learnt or routed.
func TestClientHopNoAllocs(t *testing.T) {
	client := netip.MustParseAddr("10.1.0.2")
	w, pc := clientHopWorker(t, mapHops{client: {Ifindex: 1, DstMAC: [6]byte{2, 9}}})
	learnt := conntrack.Conn{Client: conntrack.EndpointFrom(netip.AddrPortFrom(client, 1)), MAC: [6]byte{2, 1}, Ifindex: 1}
	synced := conntrack.Conn{Client: learnt.Client}
	var h Hop
	n := testing.AllocsPerRun(100, func() {
		if !w.clientHop(pc, &learnt, &h) || !w.clientHop(pc, &synced, &h) {
			t.Fatal("no hop")
		}
	})
	if n != 0 {
		t.Fatalf("%.1f allocations", n)
	}
}
