package sched

// ovf is weighted overflow (net/netfilter/ipvs/ip_vs_ovf.c): skipping
// destinations that are OVERLOAD, have weight 0, or have more active
// connections than their weight (activeconns == weight is still eligible),
// the highest weight wins; ties keep the first in list order. UDP is never
// active, so for UDP ovf behaves like fo.
type ovf struct{}

func newOVF(*Options, []*Dest) scheduler { return ovf{} }

func ovfOK(d *Dest) bool {
	w := d.Weight()
	return !d.Overloaded() && d.ActiveConns() <= w && w != 0
}

func (ovf) schedule(st *state, _ *Flow, why *Reason) *Dest {
	var h *Dest
	var hw int32
	for _, d := range st.dests {
		if !ovfOK(d) {
			continue
		}
		if w := d.Weight(); h == nil || w > hw {
			h, hw = d, w
		}
	}
	if why != nil && h != nil {
		explainHighest(why, st.dests, h, ovfOK)
	}
	return h
}
