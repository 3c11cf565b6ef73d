package sched

// fo is weighted failover (net/netfilter/ipvs/ip_vs_fo.c): the destination
// that is not OVERLOAD with the strictly highest weight (> 0); ties keep the
// first in list order. Load is not considered.
type fo struct{}

func newFO(*Options, []*Dest) scheduler { return fo{} }

func (fo) schedule(st *state, _ *Flow, why *Reason) *Dest {
	var h *Dest
	var hw int32
	for _, d := range st.dests {
		if w := d.Weight(); !d.Overloaded() && w > hw {
			h, hw = d, w
		}
	}
	if why != nil && h != nil {
		explainHighest(why, st.dests, h, func(d *Dest) bool { return d.Eligible() })
	}
	return h
}

// explainHighest records the chosen weight and the runner-up among the
// destinations ok accepts.
func explainHighest(why *Reason, dests []*Dest, h *Dest, ok func(*Dest) bool) {
	why.Rule = RuleHighest
	why.Weight = int64(h.Weight())
	var r *Dest
	for _, d := range dests {
		if d != h && ok(d) && (r == nil || d.Weight() > r.Weight()) {
			r = d
		}
	}
	if r != nil {
		why.alt(r, 0, int64(r.Weight()))
	}
}
