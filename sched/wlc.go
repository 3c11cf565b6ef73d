package sched

// wlc is weighted least connection (net/netfilter/ipvs/ip_vs_wlc.c), the
// default scheduler. The first destination in list order that is not
// OVERLOAD and has weight > 0 starts as least; every later one that is not
// OVERLOAD replaces it when overhead(least)*w(d) > overhead(d)*w(least),
// computed in 64 bits, strict, so ties keep the earlier destination.
// Overhead is the classic (activeconns << 8) + inactconns (Dest.Overhead).
type wlc struct{}

func newWLC(*Options, []*Dest) scheduler { return wlc{} }

func (wlc) schedule(st *state, _ *Flow, why *Reason) *Dest {
	d := wlcPick(st.dests)
	if why != nil && d != nil {
		explainLeast(why, st.dests, d, (*Dest).Overhead, true)
	}
	return d
}

// wlcPick is the two-stage weighted least-connection loop shared by wlc,
// lblc and lblcr (__ip_vs_lblc_schedule is the same code).
func wlcPick(dests []*Dest) *Dest {
	var least *Dest
	var loh int64
	var lw int64
	i := 0
	for ; i < len(dests); i++ {
		d := dests[i]
		if d.Eligible() {
			least, loh, lw = d, d.Overhead(), int64(d.Weight())
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
		doh := d.Overhead()
		if loh*int64(d.Weight()) > doh*lw {
			least, loh, lw = d, doh, int64(d.Weight())
		}
	}
	return least
}

// explainLeast fills why for a least-load decision: the chosen figures and
// the runner-up (the best other eligible destination by the same order).
// It runs only when an explanation was asked for.
func explainLeast(why *Reason, dests []*Dest, chosen *Dest, oh func(*Dest) int64, weighted bool) {
	why.Rule = RuleLeast
	why.Load, why.Weight = oh(chosen), int64(chosen.Weight())
	var best *Dest
	var boh, bw int64
	for _, d := range dests {
		if d == chosen || !d.Eligible() {
			continue
		}
		doh, dw := oh(d), int64(d.Weight())
		if !weighted {
			dw = 1
		}
		if best == nil || boh*dw > doh*bw {
			best, boh, bw = d, doh, dw
		}
	}
	if best != nil {
		why.alt(best, boh, int64(best.Weight()))
	}
}
