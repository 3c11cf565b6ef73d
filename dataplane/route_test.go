package dataplane_test

import (
	"net/netip"
	"testing"

	"github.com/uvs-lb/uvs/dataplane"
)

// Two routers on the client side: the request comes in from router A
// (macCli), the director's route to the client is via router B.
var macRouterB = [6]byte{2, 0, 0, 0, 1, 0xb}

// routeClientViaB adds to the rig's next hops the route to client via
// router B on interface 1.
func routeClientViaB(r *rig, client string) {
	r.env.Hops.(fakeHops)[netip.MustParseAddr(client)] = dataplane.Hop{
		Ifindex: 1, SrcMAC: macDir0, DstMAC: macRouterB, Src: netip.MustParseAddr("10.0.1.1"), MTU: 1500}
}

// TestReplyRoutedToClient: a NAT reply goes to the next hop of the
// director's route to the client (router B), not to the MAC the request
// came from (router A), as the kernel routes it (before: router A).
func TestReplyRoutedToClient(t *testing.T) {
	r := newRig(t, natRules)
	routeClientViaB(r, "10.0.1.2")
	if out := r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false)); len(out) != 1 {
		t.Fatalf("request: sent %d frames", len(out))
	}
	// The client's second packet (its ACK): a client, not a spoofed
	// source (minRoutedInPkts).
	r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, false, true))
	out := r.run(t, tcpFrame(t, macRS2, macDir1, "10.0.2.12", "10.0.1.2", 8080, 40000, false, true))
	if len(out) != 1 || out[0].Ifindex != 1 {
		t.Fatalf("reply: sent %d frames, want 1 on ifindex 1", len(out))
	}
	eth, ip, _ := decode(t, out[0].Data())
	if [6]byte(eth.DstMAC) != macRouterB || [6]byte(eth.SrcMAC) != macDir0 || ip.SrcIP.String() != "10.0.1.100" {
		t.Fatalf("reply %s from %v to %v, want from the VIP, %x to router B %x", ip.SrcIP, eth.SrcMAC, eth.DstMAC, macDir0, macRouterB)
	}
}

// TestReplyRouteUnresolved: while the route to a client is not resolved,
// the reply goes where the request came from rather than wait.
func TestReplyRouteUnresolved(t *testing.T) {
	r := newRig(t, natRules)
	r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false))
	r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, false, true))
	out := r.run(t, tcpFrame(t, macRS2, macDir1, "10.0.2.12", "10.0.1.2", 8080, 40000, true, true))
	if len(out) != 1 {
		t.Fatalf("reply: sent %d frames", len(out))
	}
	if eth, _, _ := decode(t, out[0].Data()); [6]byte(eth.DstMAC) != macCli {
		t.Fatalf("reply to %v, want the request's MAC %x", eth.DstMAC, macCli)
	}
	// Resolved now: the next reply takes the route.
	routeClientViaB(r, "10.0.1.2")
	out = r.run(t, tcpFrame(t, macRS2, macDir1, "10.0.2.12", "10.0.1.2", 8080, 40000, false, true))
	if len(out) != 1 {
		t.Fatalf("second reply: sent %d frames", len(out))
	}
	if eth, _, _ := decode(t, out[0].Data()); [6]byte(eth.DstMAC) != macRouterB {
		t.Fatalf("second reply to %v, want router B %x", eth.DstMAC, macRouterB)
	}
}

// TestTaggedReplyNotRouted: a client on a VLAN is answered on the VLAN,
// by the MAC its request came from: no route of the director's (which has
// no VLAN device) leads there.
func TestTaggedReplyNotRouted(t *testing.T) {
	r := newRig(t, natRules)
	routeClientViaB(r, "10.0.1.2")
	r.run(t, tagFrame(tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false), 100))
	out := r.run(t, tcpFrame(t, macRS2, macDir1, "10.0.2.12", "10.0.1.2", 8080, 40000, true, true))
	if len(out) != 1 {
		t.Fatalf("reply: sent %d frames", len(out))
	}
	vlan, eth, _, _ := decodeTagged(t, out[0].Data())
	if vlan != 100 || [6]byte(eth.DstMAC) != macCli {
		t.Fatalf("reply on vlan %d to %v, want vlan 100 to the request's MAC %x", vlan, eth.DstMAC, macCli)
	}
}

// TestRoutedReplyNoAllocs: the routed reply path does not allocate.
func TestRoutedReplyNoAllocs(t *testing.T) {
	r := newRig(t, natRules)
	routeClientViaB(r, "10.0.1.2")
	r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false))
	rep := tcpFrame(t, macRS2, macDir1, "10.0.2.12", "10.0.1.2", 8080, 40000, false, true)
	w := dataplane.NewWorker(discardIO{}, r.env)
	buf := make([]byte, 64+len(rep))
	frames := make([]dataplane.Frame, 1)
	allocs := testing.AllocsPerRun(200, func() {
		copy(buf[64:], rep)
		frames[0] = dataplane.Frame{Buf: buf, Off: 64, Len: len(rep), Ifindex: 2}
		w.ProcessBatch(frames)
	})
	if w.Counters.Load(dataplane.CntTx) == 0 {
		t.Fatal("the measured path sent nothing")
	}
	if allocs != 0 {
		t.Fatalf("routed reply allocates %.1f times", allocs)
	}
}

// BenchmarkNATReplyPerPacket measures an established NAT connection's
// reply (parse, lookup, rewrite, next hop, transmit) per packet, in batches
// of 64: "routed" with the route to the client resolved (Env.Hops gives
// router B), "learnt" without (the request's MAC).
func BenchmarkNATReplyPerPacket(b *testing.B) {
	for _, routed := range []bool{true, false} {
		name := "learnt"
		if routed {
			name = "routed"
		}
		b.Run(name, func(b *testing.B) {
			r := newRig(b, natRules)
			if routed {
				routeClientViaB(r, "10.0.1.2")
			}
			r.run(b, tcpFrame(b, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false))
			data := tcpFrame(b, macRS2, macDir1, "10.0.2.12", "10.0.1.2", 8080, 40000, false, true)
			w := dataplane.NewWorker(discardIO{}, r.env)
			const batch = 64
			bufs := make([][]byte, batch)
			frames := make([]dataplane.Frame, batch)
			for i := range bufs {
				bufs[i] = make([]byte, 64+len(data))
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				for j := range frames {
					copy(bufs[j][64:], data)
					frames[j] = dataplane.Frame{Buf: bufs[j], Off: 64, Len: len(data), Ifindex: 2}
				}
				w.ProcessBatch(frames)
			}
			b.StopTimer()
			if w.Counters.Load(dataplane.CntTx) == 0 {
				b.Fatal("nothing sent")
			}
		})
	}
}

// TestReplyOnePacketClientNotRouted: until a client has sent a second
// packet, its replies go where its request came from and its route is
// not even looked up — a spoofed SYN or new-flow flood would otherwise
// start one resolution per spoofed address (a SYN flood grew uvsd from
// 51 to 525 MiB that way). Its ACK makes the next reply take the route.
func TestReplyOnePacketClientNotRouted(t *testing.T) {
	r := newRig(t, natRules)
	g := withGenHops(r)
	g.set("10.0.1.2", dataplane.Hop{Ifindex: 1, SrcMAC: macDir0, DstMAC: macRouterB, Src: netip.MustParseAddr("10.0.1.1")}, true)
	r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false))
	before := g.lookups
	out := r.run(t, tcpFrame(t, macRS2, macDir1, "10.0.2.12", "10.0.1.2", 8080, 40000, true, true))
	if len(out) != 1 {
		t.Fatalf("SYN-ACK: sent %d frames", len(out))
	}
	if eth, _, _ := decode(t, out[0].Data()); [6]byte(eth.DstMAC) != macCli {
		t.Fatalf("SYN-ACK to %v, want the request's MAC %x", eth.DstMAC, macCli)
	}
	if n := g.lookups - before; n != 0 {
		t.Fatalf("the reply to a one-packet client looked its route up %d times", n)
	}
	r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, false, true))
	out = r.run(t, tcpFrame(t, macRS2, macDir1, "10.0.2.12", "10.0.1.2", 8080, 40000, false, true))
	if len(out) != 1 {
		t.Fatalf("reply: sent %d frames", len(out))
	}
	if eth, _, _ := decode(t, out[0].Data()); [6]byte(eth.DstMAC) != macRouterB {
		t.Fatalf("reply after the ACK to %v, want router B %x", eth.DstMAC, macRouterB)
	}
}

// peekHops is fakeHops that can answer without resolving (HopPeeker) and
// counts the lookups that would start a resolution on a miss.
type peekHops struct {
	fakeHops
	lookups *int
}

func (h peekHops) Lookup(dst netip.Addr) (dataplane.Hop, bool) {
	*h.lookups++
	return h.fakeHops.Lookup(dst)
}

func (h peekHops) Peek(dst netip.Addr) (dataplane.Hop, bool) { return h.fakeHops.Lookup(dst) }

// TestReplyOnePacketClientKnownRoute: a client that has sent one packet
// (a DNS query, say) whose route another of its connections resolved
// already is answered by that route, without a lookup that could start
// a resolution; one whose route is unknown starts none.
func TestReplyOnePacketClientKnownRoute(t *testing.T) {
	r := newRig(t, natRules+"-A -u 10.0.1.100:53 -s rr\n-a -u 10.0.1.100:53 -r 10.0.2.11:5353 -m\n")
	routeClientViaB(r, "10.0.1.2")
	n := 0
	r.env.Hops = peekHops{fakeHops: r.env.Hops.(fakeHops), lookups: &n}
	r.run(t, fuzzUDP(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 53))
	before := n
	out := r.run(t, fuzzUDP(t, macRS1, macDir1, "10.0.2.11", "10.0.1.2", 5353, 40000))
	if len(out) != 1 {
		t.Fatalf("reply: sent %d frames", len(out))
	}
	if dst := [6]byte(out[0].Data()[:6]); dst != macRouterB {
		t.Fatalf("reply to %x, want router B %x (the known route)", dst, macRouterB)
	}
	if n != before {
		t.Fatalf("the reply to a one-packet client asked Env.Hops.Lookup %d times", n-before)
	}
	// Another client, route unknown: the request's MAC, no resolution.
	r.run(t, fuzzUDP(t, macCli, macDir0, "10.0.1.3", "10.0.1.100", 40001, 53))
	before = n
	out = r.run(t, fuzzUDP(t, macRS1, macDir1, "10.0.2.11", "10.0.1.3", 5353, 40001))
	if len(out) != 1 {
		t.Fatalf("reply 2: sent %d frames", len(out))
	}
	if dst := [6]byte(out[0].Data()[:6]); dst != macCli {
		t.Fatalf("reply 2 to %x, want the request's MAC %x", dst, macCli)
	}
	if n != before {
		t.Fatalf("the reply to an unknown one-packet client asked Env.Hops.Lookup %d times", n-before)
	}
}
