package sched

import "sync"

// cursor is a position in the destination list as the kernel keeps it (a
// list pointer): nil is the list head. The index is a hint that makes the
// common case O(1); it is re-derived when the list has changed.
type cursor struct {
	d *Dest
	i int
}

// pos returns the cursor's index in dests, -1 for the head (or when the
// destination is no longer in the list).
func (c *cursor) pos(dests []*Dest) int {
	if c.d == nil {
		return -1
	}
	if c.i < len(dests) && dests[c.i] == c.d {
		return c.i
	}
	for i, d := range dests {
		if d == c.d {
			c.i = i
			return i
		}
	}
	return -1
}

func (c *cursor) set(dests []*Dest, i int) {
	if i < 0 {
		*c = cursor{}
		return
	}
	*c = cursor{d: dests[i], i: i}
}

// rr is round robin (net/netfilter/ipvs/ip_vs_rr.c). The cursor starts at
// the list head; each decision returns the first destination after it that
// is not OVERLOAD and has weight > 0, wrapping, the cursor's own
// destination last. Adds need no hook (they go to the head); deleting the
// cursor's destination moves the cursor to the previous element.
type rr struct {
	mu  sync.Mutex // svc->sched_lock
	cur cursor
}

func newRR(*Options, []*Dest) scheduler { return &rr{} }

func (s *rr) schedule(st *state, _ *Flow, why *Reason) *Dest {
	dests := st.dests
	s.mu.Lock()
	last := s.cur.pos(dests)
	for i := last + 1; i < len(dests); i++ {
		if d := dests[i]; d.Eligible() {
			s.cur.set(dests, i)
			s.mu.Unlock()
			explainRR(why, dests, last, d)
			return d
		}
	}
	if last >= 0 { // second pass from the head up to and including last
		for i := 0; i <= last; i++ {
			if d := dests[i]; d.Eligible() {
				s.cur.set(dests, i)
				s.mu.Unlock()
				explainRR(why, dests, last, d)
				return d
			}
		}
	}
	s.mu.Unlock()
	return nil
}

func explainRR(why *Reason, dests []*Dest, last int, d *Dest) {
	if why == nil {
		return
	}
	why.Rule = RuleNext
	why.Weight = int64(d.Weight())
	if last >= 0 {
		why.HasAlt = true
		why.Alt = dests[last].AddrPort()
	}
}

func (s *rr) onDel(_ *Options, dests []*Dest, d *Dest, idx int) scheduler {
	s.mu.Lock()
	if s.cur.d == d {
		s.cur.set(dests, idx-1) // p->prev: the element before, or the head
	}
	s.mu.Unlock()
	return s
}
