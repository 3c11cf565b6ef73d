package conntrack

import (
	"sync"
	"sync/atomic"

	"github.com/uvs-lb/uvs/sched"
)

// destReg maps the *sched.Dest of live entries to small indexes so that
// entries stay pointer-free. Slot 0 means "no destination". A slot is
// reference counted by the entries using it and recycled when the count
// drops to zero, so removed destinations can be garbage collected.
type destReg struct {
	mu    sync.RWMutex
	idx   map[*sched.Dest]uint32 // guarded by mu
	free  []uint32               // guarded by mu (write lock)
	next  uint32                 // next never-used slot; guarded by mu
	slots []destSlot             // fixed length; fields atomic
}

type destSlot struct {
	d    atomic.Pointer[sched.Dest]
	refs atomic.Int32
}

func (r *destReg) init(max int) {
	r.idx = make(map[*sched.Dest]uint32, 64)
	r.slots = make([]destSlot, max+1)
	r.free = make([]uint32, 0, max)
	r.next = 1
}

// acquire returns d's slot with one more reference, registering d if
// needed. It returns 0, false if the registry is full.
func (r *destReg) acquire(d *sched.Dest) (uint32, bool) {
	if d == nil {
		return 0, true
	}
	r.mu.RLock()
	i, ok := r.idx[d]
	if ok {
		r.slots[i].refs.Add(1)
	}
	r.mu.RUnlock()
	if ok {
		return i, true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if i, ok = r.idx[d]; ok {
		r.slots[i].refs.Add(1)
		return i, true
	}
	switch {
	case len(r.free) > 0:
		i = r.free[len(r.free)-1]
		r.free = r.free[:len(r.free)-1]
	case int(r.next) < len(r.slots):
		i = r.next
		r.next++
	default:
		return 0, false
	}
	r.slots[i].d.Store(d)
	r.slots[i].refs.Store(1)
	r.idx[d] = i
	return i, true
}

// release drops one reference to slot i, recycling it at zero.
func (r *destReg) release(i uint32) {
	if i == 0 || r.slots[i].refs.Add(-1) != 0 {
		return
	}
	r.mu.Lock()
	if r.slots[i].refs.Load() == 0 {
		if d := r.slots[i].d.Load(); d != nil {
			delete(r.idx, d)
			r.slots[i].d.Store(nil)
			r.free = append(r.free, i)
		}
	}
	r.mu.Unlock()
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
	r.mu.RLock()
	i := r.idx[d]
	r.mu.RUnlock()
	return i
}
