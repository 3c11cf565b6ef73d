package sched

// sed is shortest expected delay (net/netfilter/ipvs/ip_vs_sed.c): the wlc
// loop with overhead activeconns + 1 (inactive connections ignored). UDP
// connections are never active, so for UDP it always picks the highest
// weight (ties: first in list).
type sed struct{}

func newSED(*Options, []*Dest) scheduler { return sed{} }

// sedOverhead is ip_vs_sed_dest_overhead (also nq's).
func sedOverhead(d *Dest) int64 { return int64(d.ActiveConns()) + 1 }

func (sed) schedule(st *state, _ *Flow, why *Reason) *Dest {
	dests := st.dests
	var least *Dest
	var loh, lw int64
	i := 0
	for ; i < len(dests); i++ {
		if d := dests[i]; d.Eligible() {
			least, loh, lw = d, sedOverhead(d), int64(d.Weight())
			break
		}
	}
	if least == nil {
		return nil
	}
	for i++; i < len(dests); i++ {
		d := dests[i]
		if d.Overloaded() {
			continue
		}
		doh := sedOverhead(d)
		if loh*int64(d.Weight()) > doh*lw {
			least, loh, lw = d, doh, int64(d.Weight())
		}
	}
	if why != nil {
		explainLeast(why, dests, least, sedOverhead, true)
	}
	return least
}
