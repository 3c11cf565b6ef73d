package conntrack

import (
	"sync"
	"sync/atomic"
)

// numFreeLists is the number of free lists entries are allocated from (a
// power of two): two workers creating connections at the same moment
// take the same list's lock 1 time in numFreeLists.
const numFreeLists = 16

// freeChunk is how many never-used entries a free list takes at once, so
// that filling an empty table touches the shared high-water mark once
// per freeChunk connections.
const freeChunk = 64

// freeList is one list of dead entries, linked through entry.control, on
// a cache line of its own.
type freeList struct {
	mu   sync.Mutex
	head uint32 // guarded by mu
	_    [56]byte
}

// freeLists allocates entries: there is no table-wide lock on connection
// creation. An allocation pops from the list its hint picks (a few bits of
// the new connection's client address and port: two workers creating
// connections meet on a list 1 time in numFreeLists, and the same calls
// allocate the same entries, which keeps tables reproducible); when that
// list is empty it takes over the recycled entries of one of the next
// stealNear lists it can lock without waiting, else a chunk of never-used
// entries, else those of any other list. A freed entry goes to the list of
// its index.
type freeLists struct {
	lists [numFreeLists]freeList
	fresh atomic.Uint32 // next never-used entry
	limit uint32        // len(ents)
}

func (f *freeLists) init(n int) {
	f.fresh.Store(1)
	f.limit = uint32(n)
}

// freeHint is the free-list hint of a connection with client src:sport.
func freeHint(src *[16]byte, sport uint16) uint32 {
	return uint32(sport) ^ uint32(sport)>>4 ^ uint32(src[15]) ^ uint32(src[14])>>4
}

// allocEntry returns a dead entry's index, 0 if every entry is live; hint
// picks the list tried first (freeHint).
func (t *Table) allocEntry(hint uint32) uint32 {
	f := &t.free
	i := hint & (numFreeLists - 1)
	l := &f.lists[i]
	l.mu.Lock()
	if idx := l.head; idx != 0 {
		l.head = t.ents[idx].control
		l.mu.Unlock()
		return idx
	}
	// Recycled entries before never-used ones, so that a table in steady
	// state keeps reusing the same (cached) entries: those of one of the
	// next few lists, all of them, taken over in O(1) (they become this
	// list's), skipping a list another allocation holds (TryLock: no lock
	// order to keep). Only a few: with a small pool of recycled entries
	// spread over the lists, a full search per allocation costs more than
	// touching a never-used entry.
	for k := uint32(1); k <= stealNear; k++ {
		if idx := t.takeOver(l, (i+k)&(numFreeLists-1)); idx != 0 {
			return idx
		}
	}
	if f.fresh.Load() < f.limit {
		start := f.fresh.Add(freeChunk) - freeChunk
		if start < f.limit {
			end := min(start+freeChunk, f.limit)
			for idx := end - 1; idx > start; idx-- { // popped in ascending order
				t.ents[idx].control = l.head
				l.head = idx
			}
			l.mu.Unlock()
			return start
		}
	}
	for k := uint32(stealNear + 1); k < numFreeLists; k++ {
		if idx := t.takeOver(l, (i+k)&(numFreeLists-1)); idx != 0 {
			return idx
		}
	}
	l.mu.Unlock()
	for k := uint32(1); k < numFreeLists; k++ {
		if idx := t.popFree((i + k) & (numFreeLists - 1)); idx != 0 {
			return idx
		}
	}
	return 0
}

// stealNear is how many other lists an allocation whose list is empty
// searches before it takes never-used entries.
const stealNear = 2

// takeOver moves the entries of list j, if it can lock it without
// waiting, to list l (locked, empty) and returns the first of them,
// unlocking l; it returns 0, l still locked, if there are none.
func (t *Table) takeOver(l *freeList, j uint32) uint32 {
	v := &t.free.lists[j]
	if !v.mu.TryLock() {
		return 0
	}
	idx := v.head
	v.head = 0
	v.mu.Unlock()
	if idx == 0 {
		return 0
	}
	l.head = t.ents[idx].control
	l.mu.Unlock()
	return idx
}

func (t *Table) popFree(i uint32) uint32 {
	l := &t.free.lists[i]
	l.mu.Lock()
	idx := l.head
	if idx != 0 {
		l.head = t.ents[idx].control
	}
	l.mu.Unlock()
	return idx
}

// freeEntry returns a dead entry (flags 0) to the free lists.
func (t *Table) freeEntry(idx uint32) {
	l := &t.free.lists[idx&(numFreeLists-1)]
	l.mu.Lock()
	t.ents[idx].control = l.head
	l.head = idx
	l.mu.Unlock()
}

// highWater returns one past the highest entry index ever handed to a free
// list or allocated.
func (t *Table) highWater() uint32 {
	return min(t.free.fresh.Load(), t.free.limit)
}
