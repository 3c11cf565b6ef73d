package neigh

import (
	"net/netip"
	"testing"
)

// TestGenerationCountsChanges: every table store that changes an answer
// moves the generation, after the table (a reader seeing the new
// generation sees the new table); a store of an equal table (a refresh
// that found nothing new) does not, so the workers' caches stay.
func TestGenerationCountsChanges(t *testing.T) {
	dst := netip.MustParseAddr("198.18.0.2")
	r := fakeResolver(dst)
	r.nexthops = map[netip.Addr]struct{}{}
	r.resolved = map[netip.Addr]netip.Addr{}
	g0 := r.Generation()

	same := map[netip.Addr]Hop{}
	for k, v := range *r.table.Load() {
		same[k] = v
	}
	r.storeLocked(same)
	if g := r.Generation(); g != g0 {
		t.Fatalf("an equal table moved the generation %d -> %d", g0, g)
	}

	h := (*r.table.Load())[dst]
	h.DstMAC[5] = 9 // the neighbour's new MAC
	r.publishLocked(dst, h, dst)
	g1 := r.Generation()
	if g1 == g0 {
		t.Fatal("a changed MAC kept the generation")
	}
	if got, _ := r.Lookup(dst); got.DstMAC[5] != 9 {
		t.Fatalf("Lookup after the change: %+v", got)
	}

	r.storeLocked(map[netip.Addr]Hop{}) // the hop gone
	if r.Generation() == g1 {
		t.Fatal("a removed hop kept the generation")
	}
}
