package conntrack

import (
	"math/bits"
	"sync/atomic"
)

// The index maps a key's hash to the entries using that key. It is a
// bucketized open-addressing table: a key's home bucket is chosen by its
// hash; each bucket is one 64-byte cache line holding bucketSlots
// (16-bit tag, link) pairs, where the tag is a hash fragment and the link is
// idx<<1|dir. A key that finds its home bucket full goes to the next bucket
// with a free slot (linearly, wrapping), and every bucket it passes counts
// it in ovf, the count of keys that probed past it (F14's outbound overflow
// count). A search stops at the first bucket without the key whose ovf is
// 0, so a lookup reads one line in the common case and never walks a chain.
//
// Keys never move once inserted, so readers need no lock and no version
// check: every word is read and written atomically, and a key present
// for the whole of a search is found by it. A tag or link read while a
// writer changes the slot can only produce a candidate that the entry check
// rejects (the caller locks the entry and compares the full key) or miss a
// key that is being inserted or removed at that moment.
//
// Writers of one key are serialised by the caller (the shard lock of the
// key's hash); writers of different keys share buckets only through atomic
// operations: a free slot is claimed with a compare-and-swap on its link,
// then its tag is set; a slot is freed by clearing its link; ovf counts are
// atomic additions. Insertion raises ovf on the buckets it passes before it
// publishes the key, and removal clears the key before lowering them, so
// ovf never hides a present key.

const (
	bucketSlots = 10
	// maxLoad is the index's fill at full table capacity (two keys per
	// connection): 0.8 of the slots, so that few keys leave their home
	// bucket.
	maxLoadNum, maxLoadDen = 4, 5
)

// bucket is one cache line of the index. The tags of slots 0-3, 4-7 and
// 8-9 are packed 16 bits each into tags0, tags1 and tags2, slot i's tag in
// bits 16*(i%4) of its word, so that a lookup compares them all with a few
// word operations.
type bucket struct {
	tags0, tags1 uint64
	tags2        uint32
	ovf          uint32              // keys that probed past this bucket
	links        [bucketSlots]uint32 // idx<<1|dir; 0 = free
}

// Lane masks for 16-bit lanes in 64-bit words.
const (
	lanesLow  = 0x0001_0001_0001_0001
	lanesHigh = 0x8000_8000_8000_8000
	lanes7fff = 0x7fff_7fff_7fff_7fff
)

// zeroLanes returns the high bit of every 16-bit lane of x that is zero
// (exactly: no borrow crosses lanes).
func zeroLanes(x uint64) uint64 {
	return ^(((x & lanes7fff) + lanes7fff) | x) & lanesHigh
}

// tagMatches returns the slots of bk whose tag equals tag (pat is tag in
// every lane) as a mask in which bit 16*j+w stands for slot 4*w+j.
func tagMatches(bk *bucket, pat uint64) uint64 {
	m := zeroLanes(atomic.LoadUint64(&bk.tags0)^pat) >> 15
	m |= zeroLanes(atomic.LoadUint64(&bk.tags1)^pat) >> 14
	m |= zeroLanes(uint64(atomic.LoadUint32(&bk.tags2))^pat|0xffff_ffff_0000_0000) >> 13
	return m
}

// slotOf converts a bit position of a tagMatches mask to a slot number.
func slotOf(m uint64) int {
	p := bits.TrailingZeros64(m)
	return p&15*4 + p>>4
}

// numBuckets returns the bucket count for a table of capacity entries.
func numBuckets(capacity int) uint64 {
	keys := 2 * uint64(capacity)
	per := uint64(bucketSlots * maxLoadNum)
	return max(1, (keys*maxLoadDen+per-1)/per)
}

// home returns the home bucket of hash h (Lemire's multiply-shift range
// reduction: the high bits of h pick the bucket, the low 16 are the tag).
func (t *Table) home(h uint64) uint64 {
	hi, _ := bits.Mul64(h, uint64(len(t.buckets)))
	return hi
}

func tagOf(h uint64) uint32 { return uint32(uint16(h)) }

// next returns the bucket after b, wrapping.
func (t *Table) next(b uint64) uint64 {
	b++
	if b == uint64(len(t.buckets)) {
		b = 0
	}
	return b
}

// probe searches the index for the live entry matching k (a connection
// key in either direction, or a template key when tmpl is set) and returns
// its link (idx<<1|dir) and the entry, locked. It returns 0, nil if none
// matches. It takes no lock other than that entry's.
func (t *Table) probe(h uint64, k *Key, tmpl bool) (uint32, *entry) {
	pat := uint64(tagOf(h)) * lanesLow
	b := t.home(h)
	for range len(t.buckets) {
		bk := &t.buckets[b]
		for m := tagMatches(bk, pat); m != 0; m &= m - 1 {
			if l := atomic.LoadUint32(&bk.links[slotOf(m)]); l != 0 {
				if e := t.lockMatch(l, k, tmpl); e != nil {
					return l, e
				}
			}
		}
		if atomic.LoadUint32(&bk.ovf) == 0 {
			break
		}
		b = t.next(b)
	}
	return 0, nil
}

// lockMatch locks the entry link l names and returns it if it is live,
// indexed and matches k in l's direction; otherwise it unlocks it and
// returns nil. The link may be stale (read from a slot being reused): the
// check under the entry lock is what makes it a match.
func (t *Table) lockMatch(l uint32, k *Key, tmpl bool) *entry {
	e := &t.ents[l>>1]
	e.lock()
	if e.flags&(FlagHashed|flagUnhashed) == FlagHashed && e.match(l&1, k, tmpl) {
		return e
	}
	e.unlock()
	return nil
}

// insert adds link l under hash h. The caller holds the shard lock of h
// and has checked that the key is not present.
//
// A free slot always exists: the index has 5/4 as many slots as the table
// can have keys (two per entry). One pass may still miss them all if other
// writers fill the slots ahead of it while freeing slots behind it, so it
// keeps going round; a bucket passed twice counts the key twice in ovf,
// which remove leaves raised, and a raised ovf only makes searches look
// one bucket further.
func (t *Table) insert(h uint64, l uint32) {
	tag := tagOf(h)
	for b := t.home(h); ; b = t.next(b) {
		bk := &t.buckets[b]
		for i := range bucketSlots {
			if atomic.LoadUint32(&bk.links[i]) == 0 && atomic.CompareAndSwapUint32(&bk.links[i], 0, l) {
				setTag(bk, i, tag)
				return
			}
		}
		atomic.AddUint32(&bk.ovf, 1)
	}
}

// setTag stores tag as slot i's tag, leaving the other lanes of the word
// (other slots, maybe being set concurrently) alone.
func setTag(bk *bucket, i int, tag uint32) {
	shift := uint(i&3) * 16
	if i >= 8 {
		w := &bk.tags2
		for {
			old := atomic.LoadUint32(w)
			nw := old&^(0xffff<<shift) | tag<<shift
			if old == nw || atomic.CompareAndSwapUint32(w, old, nw) {
				return
			}
		}
	}
	w := &bk.tags0
	if i >= 4 {
		w = &bk.tags1
	}
	for {
		old := atomic.LoadUint64(w)
		nw := old&^(0xffff<<shift) | uint64(tag)<<shift
		if old == nw || atomic.CompareAndSwapUint64(w, old, nw) {
			return
		}
	}
}

// remove deletes link l from under hash h. The caller holds the shard lock
// of h. It reports false if l was not found (a bug: every caller removes a
// link it inserted).
func (t *Table) remove(h uint64, l uint32) bool {
	start := t.home(h)
	b := start
	for range len(t.buckets) {
		bk := &t.buckets[b]
		for i := range bucketSlots {
			if atomic.LoadUint32(&bk.links[i]) == l {
				atomic.StoreUint32(&bk.links[i], 0)
				for p := start; p != b; p = t.next(p) {
					atomic.AddUint32(&t.buckets[p].ovf, ^uint32(0))
				}
				return true
			}
		}
		b = t.next(b)
	}
	return false
}
