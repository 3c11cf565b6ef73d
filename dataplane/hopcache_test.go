package dataplane_test

import (
	"maps"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/uvs-lb/uvs/dataplane"
)

// genHops is a next-hop source shaped like the director's (neigh's
// resolver behind director's hopAdapter): an immutable table swapped
// whole, a generation bumped after each swap, the MTU read from the host
// facts on every lookup. lookups counts the Lookup calls.
type genHops struct {
	table   atomic.Pointer[map[netip.Addr]dataplane.Hop]
	gen     atomic.Uint64
	host    *atomic.Pointer[dataplane.Host]
	lookups int
}

func (g *genHops) Lookup(a netip.Addr) (dataplane.Hop, bool) {
	g.lookups++
	h, ok := (*g.table.Load())[a]
	if !ok {
		return dataplane.Hop{}, false
	}
	if ifc, ok := g.host.Load().Ifaces[h.Ifindex]; ok {
		h.MTU = ifc.MTU
	}
	return h, true
}

func (g *genHops) Generation() dataplane.HopGen {
	return dataplane.HopGen{Table: g.gen.Load(), Host: g.host.Load()}
}

// set publishes a with hop h (or removes it: ok false) as the resolver
// does: a new table, then a new generation.
func (g *genHops) set(a string, h dataplane.Hop, ok bool) {
	next := maps.Clone(*g.table.Load())
	if ok {
		next[netip.MustParseAddr(a)] = h
	} else {
		delete(next, netip.MustParseAddr(a))
	}
	g.table.Store(&next)
	g.gen.Add(1)
}

// plainHops hides genHops' generation: every lookup asks it (the worker
// as it was before the cache).
type plainHops struct{ g *genHops }

func (p plainHops) Lookup(a netip.Addr) (dataplane.Hop, bool) { return p.g.Lookup(a) }

// withGenHops gives the rig a genHops holding testHops' real servers
// (without their MTU, which comes from the rig's host facts).
func withGenHops(r *rig) *genHops {
	g := &genHops{host: r.env.Host}
	m := map[netip.Addr]dataplane.Hop{}
	for a, h := range testHops() {
		h.MTU = 0
		m[a] = h
	}
	g.table.Store(&m)
	r.env.Hops = g
	return g
}

var macRS2b = [6]byte{2, 0, 0, 0, 2, 0x22}

// TestHopCacheRequests: after the first request to a real server, the
// following ones take its next hop from the worker's cache without asking
// Env.Hops (before: one Lookup per frame); a new generation is seen by the
// next batch (a changed MAC is used at once), and a table changed without
// one is not (the contract GenHops states).
func TestHopCacheRequests(t *testing.T) {
	r := newRig(t, natRules)
	g := withGenHops(r)
	syn := tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false)
	ack := tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, false, true)
	if out := r.run(t, syn); len(out) != 1 {
		t.Fatalf("SYN: sent %d frames", len(out))
	}
	before := g.lookups
	for range 5 {
		out := r.run(t, ack, ack)
		if len(out) != 2 || out[0].Ifindex != 2 {
			t.Fatalf("ACKs: sent %d frames", len(out))
		}
		if eth, _, _ := decode(t, out[1].Data()); [6]byte(eth.DstMAC) != macRS2 {
			t.Fatalf("ACK to %v, want real server 2 %x", eth.DstMAC, macRS2)
		}
	}
	if n := g.lookups - before; n != 0 {
		t.Fatalf("10 requests of a known real server asked Env.Hops %d times, want 0", n)
	}

	// The table changes under the same generation: the cache keeps
	// its answer (it trusts the generation).
	stale := maps.Clone(*g.table.Load())
	stale[netip.MustParseAddr("10.0.2.12")] = dataplane.Hop{Ifindex: 2, SrcMAC: macDir1, DstMAC: macRS2b}
	g.table.Store(&stale)
	if out := r.run(t, ack); len(out) != 1 {
		t.Fatalf("ACK: sent %d frames", len(out))
	} else if eth, _, _ := decode(t, out[0].Data()); [6]byte(eth.DstMAC) != macRS2 {
		t.Fatalf("ACK to %v under the same generation, want the cached %x", eth.DstMAC, macRS2)
	}

	// A new generation: the next batch uses the new MAC.
	g.set("10.0.2.12", dataplane.Hop{Ifindex: 2, SrcMAC: macDir1, DstMAC: macRS2b}, true)
	out := r.run(t, ack)
	if len(out) != 1 {
		t.Fatalf("ACK after the MAC change: sent %d frames", len(out))
	}
	if eth, _, _ := decode(t, out[0].Data()); [6]byte(eth.DstMAC) != macRS2b {
		t.Fatalf("ACK after the MAC change to %v, want %x", eth.DstMAC, macRS2b)
	}
}

// TestHopCacheMTUChange: a new MTU on the egress interface (a new Host)
// applies to the next batch: a request that fit before is fragmented.
func TestHopCacheMTUChange(t *testing.T) {
	r := newRig(t, natRules)
	withGenHops(r)
	r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false))
	big := flowFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, "A", strings.Repeat("x", 1000))
	if out := r.run(t, big); len(out) != 1 || out[0].Ifindex != 2 {
		t.Fatalf("1040-byte request at MTU 1500: sent %d frames, want it forwarded whole", len(out))
	}
	h := *r.env.Host.Load()
	h.Ifaces = maps.Clone(h.Ifaces)
	ifc := h.Ifaces[2]
	ifc.MTU = 576
	h.Ifaces[2] = ifc
	r.env.Host.Store(&h)
	if out := r.run(t, big); len(out) < 2 || out[0].Ifindex != 2 {
		t.Fatalf("1040-byte request at MTU 576: sent %d frames, want it fragmented towards the real server", len(out))
	}
}

// TestHopCacheNeighbourGone: a next hop that leaves the table (its
// neighbour failed) is not used from the cache: the next frame waits in
// the neighbour queue, and once the hop is back the queued frame leaves
// before the one of the new batch (no overtaking).
func TestHopCacheNeighbourGone(t *testing.T) {
	r := newRig(t, natRules)
	g := withGenHops(r)
	r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false))
	ack := tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, false, true)
	r.run(t, ack) // cached
	g.set("10.0.2.12", dataplane.Hop{}, false)
	if out := r.run(t, ack); len(out) != 0 {
		t.Fatalf("next hop gone: sent %d frames, want the frame queued", len(out))
	}
	if n := r.w.Counters.Load(dataplane.CntNeighQueued); n != 1 {
		t.Fatalf("neigh-queued %d, want 1", n)
	}
	g.set("10.0.2.12", dataplane.Hop{Ifindex: 2, SrcMAC: macDir1, DstMAC: macRS2b}, true)
	fin := flowFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, "AF", "") // tells the two frames apart
	out := r.run(t, fin)
	if len(out) != 2 {
		t.Fatalf("hop back: sent %d frames, want the queued one and the new one", len(out))
	}
	for i, want := range []bool{false, true} {
		eth, _, tcp := decode(t, out[i].Data())
		if [6]byte(eth.DstMAC) != macRS2b || tcp.FIN != want {
			t.Fatalf("frame %d to %v FIN %v, want to %x FIN %v (queued frame first)", i, eth.DstMAC, tcp.FIN, macRS2b, want)
		}
	}
}

// TestHopCacheReplies: routed replies take the client's next hop from
// the cache, and follow router B's new MAC at the next batch.
func TestHopCacheReplies(t *testing.T) {
	r := newRig(t, natRules)
	g := withGenHops(r)
	viaB := dataplane.Hop{Ifindex: 1, SrcMAC: macDir0, DstMAC: macRouterB, Src: netip.MustParseAddr("10.0.1.1")}
	g.set("10.0.1.2", viaB, true)
	r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false))
	r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, false, true))
	rep := tcpFrame(t, macRS2, macDir1, "10.0.2.12", "10.0.1.2", 8080, 40000, false, true)
	r.run(t, rep)
	before := g.lookups
	for range 3 {
		out := r.run(t, rep)
		if len(out) != 1 {
			t.Fatalf("reply: sent %d frames", len(out))
		}
		if eth, _, _ := decode(t, out[0].Data()); [6]byte(eth.DstMAC) != macRouterB {
			t.Fatalf("reply to %v, want router B %x", eth.DstMAC, macRouterB)
		}
	}
	if n := g.lookups - before; n != 0 {
		t.Fatalf("3 replies asked Env.Hops %d times, want 0", n)
	}
	newB := [6]byte{2, 0, 0, 0, 1, 0xbb}
	viaB.DstMAC = newB
	g.set("10.0.1.2", viaB, true)
	out := r.run(t, rep)
	if len(out) != 1 {
		t.Fatalf("reply: sent %d frames", len(out))
	}
	if eth, _, _ := decode(t, out[0].Data()); [6]byte(eth.DstMAC) != newB {
		t.Fatalf("reply after router B's MAC changed to %v, want %x", eth.DstMAC, newB)
	}
}

// TestHopCacheNoAllocs: requests and replies through the cache, and a
// batch after a generation change, allocate nothing.
func TestHopCacheNoAllocs(t *testing.T) {
	r := newRig(t, natRules)
	g := withGenHops(r)
	g.set("10.0.1.2", dataplane.Hop{Ifindex: 1, SrcMAC: macDir0, DstMAC: macRouterB}, true)
	r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false))
	req := tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, false, true)
	rep := tcpFrame(t, macRS2, macDir1, "10.0.2.12", "10.0.1.2", 8080, 40000, false, true)
	w := dataplane.NewWorker(discardIO{}, r.env)
	bufs := [2][]byte{make([]byte, 64+len(req)), make([]byte, 64+len(rep))}
	frames := make([]dataplane.Frame, 2)
	i := 0
	allocs := testing.AllocsPerRun(200, func() {
		copy(bufs[0][64:], req)
		copy(bufs[1][64:], rep)
		frames[0] = dataplane.Frame{Buf: bufs[0], Off: 64, Len: len(req), Ifindex: 1}
		frames[1] = dataplane.Frame{Buf: bufs[1], Off: 64, Len: len(rep), Ifindex: 2}
		if i++; i%50 == 0 {
			g.gen.Add(1) // a new generation: every entry refilled
		}
		w.ProcessBatch(frames)
	})
	if w.Counters.Load(dataplane.CntTx) < 400 {
		t.Fatalf("sent %d frames, want 400", w.Counters.Load(dataplane.CntTx))
	}
	if allocs != 0 {
		t.Fatalf("%.1f allocations per batch, want 0", allocs)
	}
}

// cpuNanos is the process's user+system CPU time.
func cpuNanos() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkHopCache measures a request and a routed reply of an
// established NAT connection per packet, in batches of 64, with next hops
// from a source shaped like the director's (resolver table + host MTU):
// "cached" through the worker's next-hop cache, "uncached" one Lookup per
// packet (as before it). cpu-ns/op is the process's CPU time per packet
// (getrusage), which a busy machine does not inflate as it does ns/op.
func BenchmarkHopCache(b *testing.B) {
	for _, dir := range []string{"request", "reply"} {
		for _, cached := range []bool{true, false} {
			name := dir + "/uncached"
			if cached {
				name = dir + "/cached"
			}
			b.Run(name, func(b *testing.B) {
				r := newRig(b, natRules)
				g := withGenHops(r)
				g.set("10.0.1.2", dataplane.Hop{Ifindex: 1, SrcMAC: macDir0, DstMAC: macRouterB}, true)
				if !cached {
					r.env.Hops = plainHops{g}
				}
				r.run(b, tcpFrame(b, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false))
				data := tcpFrame(b, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, false, true)
				in := 1
				if dir == "reply" {
					data = tcpFrame(b, macRS2, macDir1, "10.0.2.12", "10.0.1.2", 8080, 40000, false, true)
					in = 2
				}
				w := dataplane.NewWorker(discardIO{}, r.env)
				const batch = 64
				bufs := make([][]byte, batch)
				frames := make([]dataplane.Frame, batch)
				for i := range bufs {
					bufs[i] = make([]byte, 64+len(data))
				}
				b.ReportAllocs()
				b.ResetTimer()
				cpu0 := cpuNanos()
				for i := 0; i < b.N; i += batch {
					for j := range frames {
						copy(bufs[j][64:], data)
						frames[j] = dataplane.Frame{Buf: bufs[j], Off: 64, Len: len(data), Ifindex: in}
					}
					w.ProcessBatch(frames)
				}
				b.ReportMetric(float64(cpuNanos()-cpu0)/float64(b.N), "cpu-ns/op")
				b.StopTimer()
				if w.Counters.Load(dataplane.CntTx) == 0 {
					b.Fatal("nothing sent")
				}
			})
		}
	}
}
