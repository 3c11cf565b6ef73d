package sched

import "sync"

// wrr is weighted round robin (net/netfilter/ipvs/ip_vs_wrr.c, the 2013
// algorithm). State: cursor cl, current weight cw, max weight mw and the
// weights' gcd di. A decision continues after the cursor looking for a
// destination that is not OVERLOAD with weight >= cw; at the list head cw
// drops by di and wraps to mw. Every add, delete or edit sends the cursor
// to the head, recomputes di and mw and keeps cw unless it is now out of
// range. A service created empty and filled by adds therefore starts with
// cw = 1 (a plain round-robin pass), one initialised on a populated list
// starts at cw = mw (the classic A A B A B C A B C).
type wrr struct {
	mu         sync.Mutex // svc->sched_lock
	cl         cursor
	cw, mw, di int32
}

func wrrGCD(dests []*Dest) int32 {
	var g int32
	for _, d := range dests {
		if w := d.Weight(); w > 0 {
			if g > 0 {
				g = gcd(w, g)
			} else {
				g = w
			}
		}
	}
	if g == 0 {
		return 1
	}
	return g
}

func wrrMax(dests []*Dest) int32 {
	var m int32
	for _, d := range dests {
		m = max(m, d.Weight())
	}
	return m
}

func newWRR(_ *Options, dests []*Dest) scheduler {
	s := &wrr{di: wrrGCD(dests)}
	s.mw = wrrMax(dests) - (s.di - 1)
	s.cw = s.mw
	return s
}

// changed is ip_vs_wrr_dest_changed.
func (s *wrr) changed(dests []*Dest) scheduler {
	s.mu.Lock()
	s.cl = cursor{}
	s.di = wrrGCD(dests)
	s.mw = wrrMax(dests) - (s.di - 1)
	if s.cw > s.mw || s.cw == 0 {
		s.cw = s.mw
	} else if s.di > 1 {
		s.cw = (s.cw/s.di)*s.di + 1
	}
	s.mu.Unlock()
	return s
}

func (s *wrr) onAdd(_ *Options, dests []*Dest, _ *Dest) scheduler { return s.changed(dests) }
func (s *wrr) onDel(_ *Options, dests []*Dest, _ *Dest, _ int) scheduler {
	return s.changed(dests)
}
func (s *wrr) onUpdate(_ *Options, dests []*Dest, _ *Dest) scheduler { return s.changed(dests) }

func (s *wrr) schedule(st *state, _ *Flow, why *Reason) *Dest {
	dests := st.dests
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mw == 0 {
		s.cl = cursor{}
		return nil
	}
	last := s.cl.pos(dests)
	i := last
	stop := -2
	lastPass, restarted := false, false
	for {
		for i++; i < len(dests); i++ {
			d := dests[i]
			if !d.Overloaded() && d.Weight() >= s.cw {
				s.cl.set(dests, i)
				if why != nil {
					why.Rule = RuleWRR
					why.Load = int64(s.cw)
					why.Weight = int64(d.Weight())
				}
				return d
			}
			if i == stop {
				s.cl.set(dests, i)
				return nil
			}
		}
		i = -1 // at the head
		s.cw -= s.di
		if s.cw <= 0 {
			s.cw = s.mw
			if lastPass || last == -1 {
				s.cl = cursor{}
				return nil
			}
			restarted = true
		}
		lastPass = s.cw <= s.di
		if lastPass && restarted && last != -1 {
			stop = last
		}
	}
}
