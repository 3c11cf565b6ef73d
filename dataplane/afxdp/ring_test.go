package afxdp

import (
	"math/rand/v2"
	"sync/atomic"
	"testing"
)

// memRing is a ring over ordinary memory; the test plays the kernel's side
// on its indices.
type memRing struct {
	idx   [3]uint32 // producer, consumer, flags
	r     ring
	addrs []uint64
}

func newMemRing(size uint32, start uint32) *memRing {
	m := &memRing{addrs: make([]uint64, size)}
	m.idx[0], m.idx[1] = start, start
	m.r = ring{prod: &m.idx[0], cons: &m.idx[1], flags: &m.idx[2], mask: size - 1, size: size,
		cachedProd: start, cachedCons: start, addrs: m.addrs}
	return m
}

// TestRingProducer fills a producer ring (fill/TX side) while a fake
// kernel consumes, across the 2^32 wrap of the indices: entries arrive in
// order, none is lost or duplicated, and reserve never claims more than the
// free space.
func TestRingProducer(t *testing.T) {
	for _, start := range []uint32{0, 1<<32 - 5, 1<<31 - 3} {
		m := newMemRing(8, start)
		rng := rand.New(rand.NewPCG(1, uint64(start)))
		next, want := uint64(0), uint64(0)
		for step := 0; step < 2000; step++ {
			// Userspace produces up to 5.
			idx, got := m.r.reserve(uint32(rng.IntN(6)))
			if inRing := m.r.cachedProd - atomic.LoadUint32(&m.idx[1]); inRing > m.r.size {
				t.Fatalf("start %#x step %d: %d entries in a ring of %d", start, step, inRing, m.r.size)
			}
			for i := range got {
				m.addrs[(idx+i)&m.r.mask] = next
				next++
			}
			m.r.submit()
			// The kernel consumes up to 4 published entries.
			prod, cons := atomic.LoadUint32(&m.idx[0]), atomic.LoadUint32(&m.idx[1])
			k := min(prod-cons, uint32(rng.IntN(5)))
			for i := range k {
				if v := m.addrs[(cons+i)&m.r.mask]; v != want {
					t.Fatalf("start %#x step %d: consumed %d, want %d", start, step, v, want)
				}
				want++
			}
			atomic.StoreUint32(&m.idx[1], cons+k)
		}
		if next-want > 8 || want < 1000 {
			t.Fatalf("start %#x: produced %d, consumed %d", start, next, want)
		}
	}
}

// TestRingConsumer reads a consumer ring (RX/completion side) that a fake
// kernel fills, across the wrap.
func TestRingConsumer(t *testing.T) {
	for _, start := range []uint32{0, 1<<32 - 3} {
		m := newMemRing(4, start)
		rng := rand.New(rand.NewPCG(2, uint64(start)))
		next, want := uint64(0), uint64(0)
		for step := 0; step < 2000; step++ {
			prod, cons := atomic.LoadUint32(&m.idx[0]), atomic.LoadUint32(&m.idx[1])
			k := min(m.r.size-(prod-cons), uint32(rng.IntN(4)))
			for i := range k {
				m.addrs[(prod+i)&m.r.mask] = next
				next++
			}
			atomic.StoreUint32(&m.idx[0], prod+k)
			idx, got := m.r.peek(uint32(rng.IntN(6)))
			for i := range got {
				if v := m.addrs[(idx+i)&m.r.mask]; v != want {
					t.Fatalf("start %#x step %d: read %d, want %d", start, step, v, want)
				}
				want++
			}
			m.r.release(got)
		}
		if next-want > 4 || want < 1000 {
			t.Fatalf("start %#x: produced %d, read %d", start, next, want)
		}
	}
}

// TestRingPeekCached checks that peek reads the producer's index only when
// its cached view is short, and that pending sees what the consumer left.
func TestRingPeekCached(t *testing.T) {
	m := newMemRing(8, 0)
	atomic.StoreUint32(&m.idx[0], 5)
	if _, got := m.r.peek(3); got != 3 {
		t.Fatalf("peek(3) = %d", got)
	}
	atomic.StoreUint32(&m.idx[0], 6) // not needed for the next peek
	if _, got := m.r.peek(5); got != 5 {
		t.Fatalf("peek(5) = %d, want 5 (cached)", got)
	}
	if _, got := m.r.peek(8); got != 6 {
		t.Fatalf("peek(8) = %d, want 6 (refreshed)", got)
	}
	m.r.release(6)
	if c := atomic.LoadUint32(&m.idx[1]); c != 6 {
		t.Fatalf("consumer index %d after release(6)", c)
	}
	p := newMemRing(4, 0)
	_, got := p.r.reserve(3)
	p.r.submit()
	if got != 3 || p.r.pending() != 3 {
		t.Fatalf("reserve = %d, pending = %d", got, p.r.pending())
	}
	atomic.StoreUint32(&p.idx[1], 2)
	if p.r.pending() != 1 {
		t.Fatalf("pending = %d after the consumer took 2", p.r.pending())
	}
	if _, got := p.r.reserve(4); got != 3 {
		t.Fatalf("reserve(4) = %d with 1 entry in a ring of 4", got)
	}
	p.idx[2] = ringNeedWakeup
	if !p.r.needWakeup() {
		t.Fatal("needWakeup false with the flag set")
	}
}

func TestRingAllocs(t *testing.T) {
	m := newMemRing(64, 0)
	if n := testing.AllocsPerRun(100, func() {
		idx, got := m.r.reserve(8)
		for i := range got {
			m.addrs[(idx+i)&m.r.mask] = uint64(i)
		}
		m.r.submit()
		m.idx[1] = m.idx[0]
		m.r.peek(8)
		m.r.release(0)
	}); n != 0 {
		t.Fatalf("%v allocs", n)
	}
}
