package afxdp

import "sync/atomic"

// desc is struct xdp_desc: a frame's UMEM address and length.
type desc struct {
	Addr    uint64
	Len     uint32
	Options uint32
}

// ringNeedWakeup is XDP_RING_NEED_WAKEUP in a ring's flags word.
const ringNeedWakeup = 1

// ring is one of the four single-producer single-consumer rings an AF_XDP
// socket shares with the kernel: a power-of-two array of entries and two
// free-running 32-bit indices. The fill and TX rings are produced by
// userspace and consumed by the kernel; the RX and completion rings the
// other way round. Entry i lives at index i & mask; the indices wrap at
// 2^32, and their difference is the number of entries in the ring.
//
// The side that owns an index keeps it in a cached copy and publishes it
// with an atomic store (release) after writing or reading entries; the
// other side's index is read with an atomic load (acquire) only when the
// cached view says the ring is full (producer) or empty (consumer).
type ring struct {
	prod, cons *uint32
	flags      *uint32
	mask       uint32
	size       uint32

	cachedProd uint32
	cachedCons uint32

	// Entries: addrs for the fill and completion rings, descs for RX and
	// TX.
	addrs []uint64
	descs []desc
}

// free returns how many entries a producer can write, reading the
// consumer's index again when the cached view has fewer than want.
func (r *ring) free(want uint32) uint32 {
	n := r.size - (r.cachedProd - r.cachedCons)
	if n >= want {
		return n
	}
	r.cachedCons = atomic.LoadUint32(r.cons)
	return r.size - (r.cachedProd - r.cachedCons)
}

// reserve claims up to n entries for a producer and returns the index of
// the first and how many were claimed. Write them, then submit.
func (r *ring) reserve(n uint32) (idx, got uint32) {
	got = min(n, r.free(n))
	idx = r.cachedProd
	r.cachedProd += got
	return idx, got
}

// submit publishes the reserved entries to the consumer.
func (r *ring) submit() { atomic.StoreUint32(r.prod, r.cachedProd) }

// pending returns how many published entries the consumer has not taken
// yet (a producer's view of the ring's fill level).
func (r *ring) pending() uint32 {
	return r.cachedProd - atomic.LoadUint32(r.cons)
}

// peek returns the index of the first entry a consumer can read and how
// many (at most n) are ready, reading the producer's index again when the
// cached view has fewer than n.
func (r *ring) peek(n uint32) (idx, got uint32) {
	avail := r.cachedProd - r.cachedCons
	if avail < n {
		r.cachedProd = atomic.LoadUint32(r.prod)
		avail = r.cachedProd - r.cachedCons
	}
	return r.cachedCons, min(n, avail)
}

// release hands n read entries back to the producer.
func (r *ring) release(n uint32) {
	r.cachedCons += n
	atomic.StoreUint32(r.cons, r.cachedCons)
}

// needWakeup reports whether the kernel asked to be woken up with a
// syscall (XDP_USE_NEED_WAKEUP).
func (r *ring) needWakeup() bool {
	return atomic.LoadUint32(r.flags)&ringNeedWakeup != 0
}
