package conntrack

import "testing"

// BenchmarkMemoryFloor1M walks the same hash chains as Lookup1M without
// any locking or copying: the cost of the two dependent cache/TLB misses
// (bucket head, entry) that any lookup in a 1 M-entry table pays.
func BenchmarkMemoryFloor1M(b *testing.B) {
	t, ks := bigTable(), bigKeys()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := &ks[i&(million-1)]
		h := k.hash(t.seed)
		if t.find(t.shardOf(h), h, k, false) == 0 {
			b.Fatal("miss")
		}
	}
}
