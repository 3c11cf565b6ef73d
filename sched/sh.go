package sched

import "github.com/uvs-lb/uvs/spec"

// shBuckets is the sh and dh table size (CONFIG_IP_VS_SH_TAB_BITS = 8).
const (
	shBits    = 8
	shBuckets = 1 << shBits
)

// sh is source hashing (net/netfilter/ipvs/ip_vs_sh.c). A 256-bucket table
// is rebuilt on every add, delete and edit: the list is walked cyclically,
// each destination taking max(weight, 1) consecutive buckets per turn. The
// client address (and with sh-port its port) is hashed to a bucket; its
// destination is used unless it has weight <= 0 or is OVERLOAD. With
// sh-fallback the probe sequence starts at bucket 2*hash (the kernel adds
// the start offset twice) and stops at an empty bucket. The table is an
// immutable array; a rebuild publishes a new sh value.
type sh struct {
	tab [shBuckets]*Dest
}

func newSH(o *Options, dests []*Dest) scheduler {
	dests = hashOrder(o, dests)
	s := &sh{}
	if len(dests) == 0 {
		return s
	}
	p, n := 0, int32(0)
	for i := range s.tab {
		d := dests[p]
		s.tab[i] = d
		if n++; n >= d.Weight() {
			p, n = (p+1)%len(dests), 0
		}
	}
	return s
}

func (*sh) onAdd(o *Options, dests []*Dest, _ *Dest) scheduler { return newSH(o, dests) }
func (*sh) onDel(o *Options, dests []*Dest, _ *Dest, _ int) scheduler {
	return newSH(o, dests)
}
func (*sh) onUpdate(o *Options, dests []*Dest, _ *Dest) scheduler { return newSH(o, dests) }

// shHash is ip_vs_sh_hashkey: (offset + hash_32(port + addr, 8)) & 255.
func shHash(addr uint32, port uint16, offset uint32) uint32 {
	return (offset + hash32(uint32(port)+addr, shBits)) & (shBuckets - 1)
}

// hashUnavailable is is_unavailable() of sh/mh: weight <= 0 or OVERLOAD.
func hashUnavailable(d *Dest) bool { return d.Weight() <= 0 || d.Overloaded() }

func (s *sh) schedule(st *state, f *Flow, why *Reason) *Dest {
	flags := st.cfg.Flags
	addr, port := f.hashAddr(flags&spec.SchedFlag2 != 0)
	ihash := shHash(addr, port, 0)
	d := s.tab[ihash]
	if why != nil {
		explainBucket(why, f, port, ihash, shBuckets, d, 0)
	}
	if d == nil || !hashUnavailable(d) {
		return d
	}
	if flags&spec.SchedFlag1 == 0 {
		return nil
	}
	for off := uint32(0); off < shBuckets; off++ {
		roff := (off + ihash) % shBuckets
		h := shHash(addr, port, roff)
		d = s.tab[h]
		if d == nil {
			break
		}
		if !hashUnavailable(d) {
			if why != nil {
				explainBucket(why, f, port, h, shBuckets, d, int32(off)+1)
			}
			return d
		}
	}
	return nil
}

// explainBucket records a table lookup.
func explainBucket(why *Reason, f *Flow, port uint16, bucket, n uint32, d *Dest, probes int32) {
	why.Rule = RuleBucket
	why.Key = f.Src
	if f.Inverse {
		why.Key = f.Dst
	}
	why.KeyPort = port
	why.Bucket, why.Buckets, why.Probes = int32(bucket), int32(n), probes
	if d == nil || hashUnavailable(d) {
		why.Rule = RuleBucketDown
		if d != nil {
			why.alt(d, d.Overhead(), int64(d.Weight()))
		}
	}
}
