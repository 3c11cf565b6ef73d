package conntrack

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/uvs-lb/uvs/spec"
)

// TestFreeListsFillAndRecycle: every entry of the table can be allocated
// whatever list the hints pick (never-used chunks, then the other lists),
// none twice, and freed entries are allocated again.
func TestFreeListsFillAndRecycle(t *testing.T) {
	for _, capacity := range []int{1, 63, 64, 65, 1000} {
		tb, err := New(Config{Capacity: capacity})
		if err != nil {
			t.Fatal(err)
		}
		seen := make(map[uint32]bool)
		for i := range capacity {
			idx := tb.allocEntry(uint32(i * 7))
			if idx == 0 || int(idx) > capacity || seen[idx] {
				t.Fatalf("capacity %d: allocation %d gave entry %d (seen %v)", capacity, i, idx, seen[idx])
			}
			seen[idx] = true
		}
		if idx := tb.allocEntry(3); idx != 0 {
			t.Fatalf("capacity %d: full table gave entry %d", capacity, idx)
		}
		if hw := tb.highWater(); int(hw) != capacity+1 {
			t.Fatalf("capacity %d: high water %d", capacity, hw)
		}
		for idx := range seen {
			tb.freeEntry(idx)
		}
		for i := range capacity {
			if idx := tb.allocEntry(uint32(i)); idx == 0 || !seen[idx] {
				t.Fatalf("capacity %d: reallocation %d gave %d", capacity, i, idx)
			}
		}
	}
}

// BenchmarkCreateParallel: workers (-cpu 1,2: one per goroutine) each
// create connections to a destination of their own and expire them again,
// in steady state. Nothing is shared between them but the table: the
// entry allocator and the destination registry, which have no table-wide
// lock.
func BenchmarkCreateParallel(b *testing.B) {
	tb, err := New(Config{Capacity: 1 << 16, Seed: 5})
	if err != nil {
		b.Fatal(err)
	}
	var next atomic.Int32
	var once sync.Once
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		g := int(next.Add(1))
		d := newDest(fmt.Sprintf("10.1.0.%d", g), 8080, spec.FwdMasq)
		const ring = 4096
		hs := make([]Handle, ring)
		var c Conn
		nc := NewConn{Dest: d, Fwd: spec.FwdMasq}
		vip := netip.MustParseAddrPort("192.0.2.1:80")
		for i := 0; pb.Next(); i++ {
			j := i & (ring - 1)
			if hs[j] != 0 {
				tb.ExpireNow(hs[j], 1)
			}
			client := netip.AddrFrom4([4]byte{10, byte(g), byte(i >> 16), byte(i >> 8)})
			nc.In = KeyFrom(ProtoUDP, netip.AddrPortFrom(client, uint16(i)), vip)
			if err := tb.Create(&nc, 0, 1, &c); err != nil {
				once.Do(func() { b.Error(err) })
				return
			}
			hs[j] = c.Handle
		}
	})
}
