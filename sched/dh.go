package sched

// dh is destination hashing (net/netfilter/ipvs/ip_vs_dh.c). A 256-bucket
// table is filled on add and delete by walking the list cyclically, one
// destination per bucket, weights ignored. The packet's destination address
// (the VIP for an ordinary service) is hashed; the bucket's destination is
// used only if it is AVAILABLE, has weight > 0 and is not OVERLOAD. No
// fallback.
type dh struct {
	tab [shBuckets]*Dest
}

func newDH(_ *Options, dests []*Dest) scheduler {
	s := &dh{}
	if len(dests) == 0 {
		return s
	}
	for i := range s.tab {
		s.tab[i] = dests[i%len(dests)]
	}
	return s
}

func (*dh) onAdd(o *Options, dests []*Dest, _ *Dest) scheduler { return newDH(o, dests) }
func (*dh) onDel(o *Options, dests []*Dest, _ *Dest, _ int) scheduler {
	return newDH(o, dests)
}

func (s *dh) schedule(_ *state, f *Flow, why *Reason) *Dest {
	b := hash32(fold(f.Dst), shBits)
	d := s.tab[b]
	if why != nil {
		why.Rule = RuleBucket
		why.Key = f.Dst
		why.Bucket, why.Buckets = int32(b), shBuckets
	}
	if d == nil || !d.Available() || hashUnavailable(d) {
		if why != nil {
			why.Rule = RuleBucketDown
			if d != nil {
				why.alt(d, d.Overhead(), int64(d.Weight()))
			}
		}
		return nil
	}
	return d
}
