package conntrack

import (
	"sync"
	"sync/atomic"

	"github.com/uvs-lb/uvs/sched"
)

// destShards is the number of lock shards of the destination registry (a
// power of two): two workers creating connections to different
// destinations take different shard locks (but for a collision), so there
// is no table-wide lock on connection creation.
const destShards = 64

// destReg maps the *sched.Dest of live entries to small indexes so that
// entries stay pointer-free. Slot 0 means "no destination". A slot is
// reference counted by the entries using it and recycled when the count
// drops to zero, so removed destinations can be garbage collected.
//
// The map is sharded by the destination's address: a lookup read-locks
// one shard. Lock order: a shard, then freeMu.
type destReg struct {
	shards [destShards]destShard
	freeMu sync.Mutex
	free   []uint32   // guarded by freeMu
	next   uint32     // next never-used slot; guarded by freeMu
	slots  []destSlot // fixed length; fields atomic
}

type destShard struct {
	mu  sync.RWMutex
	idx map[*sched.Dest]uint32 // guarded by mu
	_   [40]byte               // keep shards on separate cache lines
}

type destSlot struct {
	d    atomic.Pointer[sched.Dest]
	refs atomic.Int32
}

func (r *destReg) init(max int) {
	for i := range r.shards {
		r.shards[i].idx = make(map[*sched.Dest]uint32)
	}
	r.slots = make([]destSlot, max+1)
	r.free = make([]uint32, 0, max)
	r.next = 1
}

// shard returns d's shard: a hash of its address and port (a *Dest's
// identity, which does not change while it is registered).
func (r *destReg) shard(d *sched.Dest) *destShard {
	a := d.Addr().As16()
	h := uint32(d.Port()) ^ uint32(a[15]) ^ uint32(a[14])<<3 ^ uint32(a[13])<<5
	h ^= h >> 7
	return &r.shards[h&(destShards-1)]
}

// acquire returns d's slot with one more reference, registering d if
// needed. It returns 0, false if the registry is full.
func (r *destReg) acquire(d *sched.Dest) (uint32, bool) {
	if d == nil {
		return 0, true
	}
	s := r.shard(d)
	s.mu.RLock()
	i, ok := s.idx[d]
	if ok {
		r.slots[i].refs.Add(1)
	}
	s.mu.RUnlock()
	if ok {
		return i, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, ok = s.idx[d]; ok {
		r.slots[i].refs.Add(1)
		return i, true
	}
	r.freeMu.Lock()
	switch {
	case len(r.free) > 0:
		i = r.free[len(r.free)-1]
		r.free = r.free[:len(r.free)-1]
	case int(r.next) < len(r.slots):
		i = r.next
		r.next++
	}
	r.freeMu.Unlock()
	if i == 0 {
		return 0, false
	}
	r.slots[i].d.Store(d)
	r.slots[i].refs.Store(1)
	s.idx[d] = i
	return i, true
}

// release drops one reference to slot i, recycling it at zero.
func (r *destReg) release(i uint32) {
	if i == 0 || r.slots[i].refs.Add(-1) != 0 {
		return
	}
	d := r.slots[i].d.Load()
	if d == nil {
		return
	}
	s := r.shard(d)
	s.mu.Lock()
	// Re-checked under the shard lock: an acquire may have taken a new
	// reference (under the read lock) meanwhile, or another release
	// recycled the slot already.
	if r.slots[i].refs.Load() == 0 && r.slots[i].d.Load() == d && s.idx[d] == i {
		delete(s.idx, d)
		r.slots[i].d.Store(nil)
		r.freeMu.Lock()
		r.free = append(r.free, i)
		r.freeMu.Unlock()
	}
	s.mu.Unlock()
}

// get returns the destination in slot i (nil for 0). The caller holds a
// reference through a live entry.
func (r *destReg) get(i uint32) *sched.Dest {
	if i == 0 {
		return nil
	}
	return r.slots[i].d.Load()
}

// lookup returns d's slot without taking a reference (0 if unknown).
func (r *destReg) lookup(d *sched.Dest) uint32 {
	s := r.shard(d)
	s.mu.RLock()
	i := s.idx[d]
	s.mu.RUnlock()
	return i
}
