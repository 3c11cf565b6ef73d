package sched

// lc is least connection (net/netfilter/ipvs/ip_vs_lc.c): among
// destinations that are not OVERLOAD and have weight != 0, the smallest
// overhead wins; the weight's magnitude is ignored; ties keep the first in
// list order.
type lc struct{}

func newLC(*Options, []*Dest) scheduler { return lc{} }

func (lc) schedule(st *state, _ *Flow, why *Reason) *Dest {
	var least *Dest
	var loh int64
	for _, d := range st.dests {
		if !d.Eligible() {
			continue
		}
		if doh := d.Overhead(); least == nil || doh < loh {
			least, loh = d, doh
		}
	}
	if why != nil && least != nil {
		explainLeast(why, st.dests, least, (*Dest).Overhead, false)
	}
	return least
}
