package afxdp

import (
	"net/netip"
	"testing"

	"github.com/uvs-lb/uvs/dataplane"
)

// BenchmarkProgram measures the XDP program in the kernel
// (BPF_PROG_TEST_RUN with repeat) on an owned frame, a NAT reply and a
// frame it passes.
func BenchmarkProgram(b *testing.B) {
	prog, _ := testProgram(b, testSpec)
	for _, c := range []struct {
		name  string
		frame []byte
	}{
		{"vip", tcp4(vip4.String(), 40000, 80).Frame(b)},
		{"natreply", tcp4(client4, 8080, 40000).Frame(b)},
		{"pass", tcp4("203.0.113.9", 40000, 22).Frame(b)},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			_, d, err := prog.Benchmark(c.frame, b.N, b.ResetTimer)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(d.Nanoseconds()), "kernel-ns/frame")
		})
	}
}

// BenchmarkWriteBatch sends batches of 64 frames out of a veth (the peer
// drops them): the copy into the UMEM, the TX ring and the sendto kicks.
func BenchmarkWriteBatch(b *testing.B) {
	p := newPair(b)
	_, x := backend(b, p.a, p.ownedSpecs, Config{}, ModeNative, Bind{p.va.Index, 0})
	frame := udpFrame(b, p.va.HardwareAddr, p.vb.HardwareAddr, ownedAddr, netip.MustParseAddr("198.18.0.99"), 9000, 9, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	batch := make([]dataplane.Frame, dataplane.BatchSize)
	for i := range batch {
		batch[i] = dataplane.Frame{Buf: frame, Len: len(frame), Ifindex: p.va.Index}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if n, err := x.WriteBatch(batch); err != nil || n != len(batch) {
			b.Fatalf("WriteBatch = %d, %v", n, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/frame")
}
