package neigh

import (
	"net/netip"
	"testing"
)

// A table built by hand: the read path needs no netlink and no root.
func fakeResolver(dst netip.Addr) *Resolver {
	r := &Resolver{}
	m := map[netip.Addr]Hop{dst: {Ifindex: 3, DstMAC: [6]byte{2, 0, 0, 0, 0, 1}, Src: netip.MustParseAddr("198.18.0.1")}}
	r.table.Store(&m)
	return r
}

func TestLookupHitNoAllocs(t *testing.T) {
	dst := netip.MustParseAddr("198.18.0.2")
	r := fakeResolver(dst)
	var h Hop
	var ok bool
	if n := testing.AllocsPerRun(1000, func() { h, ok = r.Lookup(dst) }); n != 0 {
		t.Fatalf("Lookup hit: %v allocs, want 0", n)
	}
	if !ok || h.Ifindex != 3 || h.DstMAC[5] != 1 {
		t.Fatalf("Lookup = %+v, %v", h, ok)
	}
}

func BenchmarkLookupHit(b *testing.B) {
	dst := netip.MustParseAddr("2001:db8::2")
	r := fakeResolver(dst)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := r.Lookup(dst); !ok {
			b.Fatal("miss")
		}
	}
}
