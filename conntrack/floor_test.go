package conntrack

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"
)

// BenchmarkMemoryFloor1M reads what Lookup1M reads (the home bucket, the
// entry's key) without locking or copying: the cost of the two dependent
// cache misses (bucket, then entry) that any lookup in a 1 M-entry table
// pays when the loop cannot overlap one lookup's misses with the next.
func BenchmarkMemoryFloor1M(b *testing.B) {
	t, ks := bigTable(), bigKeys()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := &ks[i&(million-1)]
		if !t.floorFind(k.hash(t.seed), k) {
			b.Fatal("miss")
		}
	}
}

// BenchmarkMemoryFloorBatch1M runs TrackBatch's pipeline (same prefetch
// distances) with floorFind in place of Track: the memory system's cost per
// packet for batched lookups, what TrackBatch1M cannot go below.
func BenchmarkMemoryFloorBatch1M(b *testing.B) {
	t, ks := bigTable(), bigKeys()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += trackBatch {
		j := i & (million - 1)
		batch := ks[j : j+min(trackBatch, b.N-i)]
		var hs [ringSize]uint64
		n := len(batch)
		for p := 0; p < n+bucketAhead; p++ {
			if p < n {
				h := batch[p].hash(t.seed)
				hs[p%ringSize] = h
				prefetchLine(unsafe.Pointer(&t.buckets[t.home(h)]))
			}
			if q := p - (bucketAhead - entryAhead); q >= 0 && q < n {
				t.prefetchEntry(hs[q%ringSize])
			}
			if r := p - bucketAhead; r >= 0 && !t.floorFind(hs[r%ringSize], &batch[r]) {
				b.Fatal("miss")
			}
		}
	}
}

// floorFind is probe without the entry lock (benchmarks only: the entry may
// change under it).
func (t *Table) floorFind(h uint64, k *Key) bool {
	pat := uint64(tagOf(h)) * lanesLow
	for b, n := t.home(h), 0; n < len(t.buckets); b, n = t.next(b), n+1 {
		bk := &t.buckets[b]
		for m := tagMatches(bk, pat); m != 0; m &= m - 1 {
			if l := atomic.LoadUint32(&bk.links[slotOf(m)]); l != 0 && t.ents[l>>1].match(l&1, k, false) {
				return true
			}
		}
		if atomic.LoadUint32(&bk.ovf) == 0 {
			return false
		}
	}
	return false
}

// chaseMem is 256 MiB of cache lines linked in one random cycle: following
// it is a chain of dependent DRAM (and TLB) misses.
var chaseMem = sync.OnceValue(func() []uint64 {
	const lines = 256 << 20 / 64
	s := make([]uint64, lines*8)
	p := rand.New(rand.NewPCG(1, 2)).Perm(lines)
	for i := range lines {
		s[p[i]*8] = uint64(p[(i+1)%lines] * 8)
	}
	return s
})

// BenchmarkDRAMDependent is the machine's floor for one dependent miss:
// each load's address comes from the previous load.
func BenchmarkDRAMDependent(b *testing.B) {
	s := chaseMem()
	b.ResetTimer()
	j := uint64(0)
	for i := 0; i < b.N; i++ {
		j = s[j]
	}
	if j == 1 {
		b.Log(j)
	}
}

// BenchmarkDRAMIndependent is the cost per miss when misses are
// independent and the core overlaps them (memory-level parallelism): what
// batched prefetching can approach.
func BenchmarkDRAMIndependent(b *testing.B) {
	s := chaseMem()
	idx := make([]uint32, 1<<20)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range idx {
		idx[i] = uint32(r.IntN(len(s)/8)) * 8
	}
	b.ResetTimer()
	var x uint64
	for i := 0; i < b.N; i++ {
		x += s[idx[i&(1<<20-1)]]
	}
	if x == 1 {
		b.Log(x)
	}
}
