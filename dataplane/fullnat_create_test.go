package dataplane_test

import (
	"encoding/binary"
	"testing"

	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/header"
)

// BenchmarkCreateFirstPacket measures a new connection: a SYN from a new
// client port scheduled, created and forwarded, per connection, in batches
// of 64, for NAT and for FULLNAT from the route's source address (as the
// bench's uvs-fullnat) — issue 17's question why FULLNAT's conn/s was
// half NAT's in the committed bench results. cpu-ns/op is CPU time per
// connection (getrusage); queued counts SYNs that waited in the neighbour
// queue (none should: the real servers are resolved).
func BenchmarkCreateFirstPacket(b *testing.B) {
	for _, bc := range []struct{ name, fwd string }{{"nat", "-m"}, {"fullnat", "-b"}} {
		b.Run(bc.name, func(b *testing.B) {
			r := newRig(b, "-A -t 10.0.1.100:80 -s rr\n-a -t 10.0.1.100:80 -r 10.0.2.11:8080 "+bc.fwd+
				"\n-a -t 10.0.1.100:80 -r 10.0.2.12:8080 "+bc.fwd+"\n")
			// A fresh table and port allocator every chunk connections
			// (outside the timer): FULLNAT's ports per (local address,
			// real server, port) run out after 2 × 55 536 here, and the
			// table holds 1 M, whatever -benchtime makes b.N.
			const chunk = 1 << 16
			fresh := func() *dataplane.Worker {
				ct, err := conntrack.New(conntrack.Config{Capacity: 1 << 20})
				if err != nil {
					b.Fatal(err)
				}
				r.env.Conns = ct
				// The bench's range; next hops as the director's adapter gives them.
				r.env.Ports = dataplane.NewPortAllocator(10000, 65535)
				return dataplane.NewWorker(discardIO{}, r.env)
			}
			withGenHops(r)
			syn := tcpFrame(b, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false)
			w := fresh()
			const batch = 64
			bufs := make([][]byte, batch)
			frames := make([]dataplane.Frame, batch)
			for i := range bufs {
				bufs[i] = make([]byte, 64+len(syn))
			}
			b.ReportAllocs()
			b.ResetTimer()
			var cpu int64
			var created, queued uint64
			cpu0 := cpuNanos()
			n := 0
			for i := 0; i < b.N; i += batch {
				if i > 0 && i%chunk == 0 {
					cpu += cpuNanos() - cpu0
					b.StopTimer()
					created += w.Counters.Load(dataplane.CntNewConn)
					queued += w.Counters.Load(dataplane.CntNeighQueued)
					w = fresh()
					b.StartTimer()
					cpu0 = cpuNanos()
				}
				for j := range frames {
					f := bufs[j][64:]
					copy(f, syn)
					// A new client address and port per connection; the
					// TCP checksum is left stale (the rewrite updates it
					// incrementally, the worker does not verify it).
					n++
					binary.BigEndian.PutUint16(f[14+12+2:], uint16(n>>16)+2)
					binary.BigEndian.PutUint16(f[14+20:], uint16(n))
					binary.BigEndian.PutUint16(f[14+10:], 0)
					binary.BigEndian.PutUint16(f[14+10:], ^header.Checksum(f[14:14+20], 0))
					frames[j] = dataplane.Frame{Buf: bufs[j], Off: 64, Len: len(syn), Ifindex: 1}
				}
				w.ProcessBatch(frames)
			}
			cpu += cpuNanos() - cpu0
			b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
			b.StopTimer()
			created += w.Counters.Load(dataplane.CntNewConn)
			queued += w.Counters.Load(dataplane.CntNeighQueued)
			b.ReportMetric(float64(queued), "queued")
			if created < uint64(b.N) {
				b.Fatalf("created %d connections of %d", created, b.N)
			}
		})
	}
}
