package sched

// twos is weighted random power-of-two choices
// (net/netfilter/ipvs/ip_vs_twos.c, Linux 6.3+). Two random numbers in
// [0, sum of eligible weights] pick two destinations by weight (r <= 0
// after subtracting, so r = 0 picks the first eligible one: it gets w+1
// chances out of sum+1); the one with the lower overhead per weight wins,
// ties to the first pick. The comparison is done in 32-bit int, as in the
// kernel, and can overflow. The RNG is Options.Rand.
type twos struct {
	o *Options
}

func newTwoS(o *Options, _ []*Dest) scheduler { return &twos{o: o} }

func (s *twos) schedule(st *state, _ *Flow, why *Reason) *Dest {
	dests := st.dests
	var total int32
	var c1, c2 *Dest
	for _, d := range dests {
		if d.Eligible() {
			total += d.Weight()
			c1 = d
		}
	}
	if c1 == nil {
		return nil
	}
	total++
	r1 := int32(s.o.Rand(uint32(total)))
	r2 := int32(s.o.Rand(uint32(total)))
	w1, w2 := int32(-1), int32(-1)
	var oh1, oh2 int32
	for _, d := range dests {
		if d.Overloaded() {
			continue
		}
		w := d.Weight()
		if w <= 0 {
			continue
		}
		r1 -= w
		r2 -= w
		if r1 <= 0 && w1 == -1 {
			c1, w1, oh1 = d, w, int32(d.Overhead())
		}
		if r2 <= 0 && w2 == -1 {
			c2, w2, oh2 = d, w, int32(d.Overhead())
		}
		if w1 != -1 && w2 != -1 {
			break
		}
	}
	pick, other := c1, c2
	if c2 != nil && w2*oh1 > w1*oh2 {
		pick, other = c2, c1
	}
	if why != nil {
		why.Rule = RuleTwoChoices
		why.Load, why.Weight = pick.Overhead(), int64(pick.Weight())
		if other != nil && other != pick {
			why.alt(other, other.Overhead(), int64(other.Weight()))
		}
	}
	return pick
}
