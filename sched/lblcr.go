package sched

// lblcr is locality-based least connection with replication
// (net/netfilter/ipvs/ip_vs_lblcr.c). Each cached destination address maps
// to a set of destinations. A hit takes the set's weighted-least member
// (not OVERLOAD, weight > 0, AVAILABLE); if the set has more than one
// member and was last modified more than the expiration time ago, the
// set's most loaded member is dropped (one per decision). The member is
// used unless absent or overloaded by the 2x-weight rule; then wlc picks
// from the whole service and the choice joins the set (at its head,
// refreshing lastmod). The chosen member may be the one just dropped, as in
// the kernel.
type lblcr struct {
	lblcTable
}

func newLBLCR(o *Options, _ []*Dest) scheduler {
	s := &lblcr{}
	s.init(o)
	return s
}

// setMin is ip_vs_dest_set_min.
func setMin(set []*Dest) *Dest {
	var least *Dest
	var loh, lw int64
	i := 0
	for ; i < len(set); i++ {
		d := set[i]
		if d.Overloaded() {
			continue
		}
		if d.Weight() > 0 && d.Available() {
			least, loh, lw = d, d.Overhead(), int64(d.Weight())
			break
		}
	}
	if least == nil {
		return nil
	}
	for i++; i < len(set); i++ {
		d := set[i]
		if d.Overloaded() {
			continue
		}
		doh := d.Overhead()
		if loh*int64(d.Weight()) > doh*lw && d.Available() {
			least, loh, lw = d, doh, int64(d.Weight())
		}
	}
	return least
}

// setMax is ip_vs_dest_set_max: the member with the highest weighted
// overhead among members with weight > 0.
func setMax(set []*Dest) int {
	most := -1
	var moh, mw int64
	i := 0
	for ; i < len(set); i++ {
		if w := set[i].Weight(); w > 0 {
			most, moh, mw = i, set[i].Overhead(), int64(w)
			break
		}
	}
	if most < 0 {
		return -1
	}
	for i++; i < len(set); i++ {
		d := set[i]
		doh := d.Overhead()
		if moh*int64(d.Weight()) < doh*mw && d.Weight() > 0 {
			most, moh, mw = i, doh, int64(d.Weight())
		}
	}
	return most
}

func (s *lblcr) schedule(st *state, f *Flow, why *Reason) *Dest {
	now := s.o.now()
	key := f.Dst
	b := lblcBucket(key)
	s.mu.Lock()
	e := s.find(b, key)
	if e != nil {
		e.lastuse = now
		d := setMin(e.set)
		if len(e.set) > 1 && now > e.lastmod+int64(s.o.LBLCExpiration) {
			if m := setMax(e.set); m >= 0 {
				e.set = append(e.set[:m], e.set[m+1:]...)
				e.set[len(e.set):cap(e.set)][0] = nil
			}
		}
		if d != nil && !lblcOverloaded(d, st.dests) {
			n := len(e.set)
			s.mu.Unlock()
			if why != nil {
				why.Rule = RuleCached
				why.Key = key
				why.SetSize = int32(n)
			}
			return d
		}
		d = wlcPick(st.dests)
		if d == nil {
			s.mu.Unlock()
			return nil
		}
		found := false
		for _, x := range e.set {
			if x == d {
				found = true
				break
			}
		}
		if !found {
			e.set = append(e.set, nil)
			copy(e.set[1:], e.set)
			e.set[0] = d
			e.lastmod = now
		}
		n := len(e.set)
		s.mu.Unlock()
		if why != nil {
			explainLeast(why, st.dests, d, (*Dest).Overhead, true)
			why.Key, why.Grew, why.SetSize = key, true, int32(n)
		}
		return d
	}
	d := wlcPick(st.dests)
	if d == nil {
		s.mu.Unlock()
		return nil
	}
	s.insert(b, lblcEntry{addr: key, lastuse: now, set: []*Dest{d}, lastmod: now})
	s.mu.Unlock()
	if why != nil {
		explainLeast(why, st.dests, d, (*Dest).Overhead, true)
		why.Key, why.SetSize = key, 1
	}
	return d
}
