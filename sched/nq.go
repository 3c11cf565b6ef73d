package sched

// nq is never queue (net/netfilter/ipvs/ip_vs_nq.c): skipping OVERLOAD and
// weight-0 destinations, the first one with no active connection is taken
// at once; otherwise the sed rule (activeconns + 1, weighted, strict, ties
// first). For UDP every destination is idle, so nq returns the first
// eligible destination in list order.
type nq struct{}

func newNQ(*Options, []*Dest) scheduler { return nq{} }

func (nq) schedule(st *state, _ *Flow, why *Reason) *Dest {
	var least *Dest
	var loh, lw int64
	for _, d := range st.dests {
		if !d.Eligible() {
			continue
		}
		if d.ActiveConns() == 0 {
			if why != nil {
				why.Rule = RuleIdle
				why.Load, why.Weight = 1, int64(d.Weight())
			}
			return d
		}
		doh, dw := sedOverhead(d), int64(d.Weight())
		if least == nil || loh*dw > doh*lw {
			least, loh, lw = d, doh, dw
		}
	}
	if why != nil && least != nil {
		explainLeast(why, st.dests, least, sedOverhead, true)
	}
	return least
}
