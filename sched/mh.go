package sched

import (
	"math/bits"

	"github.com/uvs-lb/uvs/spec"
)

// Maglev constants of ip_vs_mh.c: fixed hash keys (not random) and the
// number of bits a weight may use (MH_TAB_BITS = CONFIG_IP_VS_MH_TAB_INDEX/2).
const (
	mhHash1 = 2654435761
	mhHash2 = 2654446892
	mhWBits = 6
)

// mh is Maglev hashing (net/netfilter/ipvs/ip_vs_mh.c). The lookup table
// (default 4093 slots) is built off the decision path on every add, delete
// and edit: each destination gets offset and skip from hsiphash
// (SipHash-1-3) of its address and port, and "turns" from its last_weight
// divided by the gcd and shifted to fit 6 bits; passes over the list let
// each destination claim that many slots along its permutation. Using
// last_weight, a quiesced destination keeps its slots (lookups landing there
// find no destination, or fall back with mh-fallback) and one added with
// weight 0 gets none. Lookups hash the client address (and with mh-port
// its port).
type mh struct {
	tab []*Dest // immutable once published
}

// mhKey is ip_vs_mh_hashkey.
func mhKey(addr uint32, port uint16, k uint64, offset uint32) uint32 {
	return hsiphash32(offset+uint32(port)+addr, k, k)
}

func newMH(o *Options, dests []*Dest) scheduler {
	dests = hashOrder(o, dests)
	m := uint32(o.MHTableSize)
	s := &mh{tab: make([]*Dest, m)}
	if len(dests) > int(m) {
		return s // -EINVAL, ignored by the caller: table stays empty
	}
	var g int32
	var mw int32
	for _, d := range dests {
		if w := d.LastWeight(); w > 0 {
			if g > 0 {
				g = gcd(w, g)
			} else {
				g = w
			}
		}
		mw = max(mw, d.LastWeight())
	}
	if g < 1 {
		return s
	}
	shift := max(bits.Len32(uint32(mw/g))-mhWBits, 0)
	type setup struct{ perm, skip, turns uint32 }
	ds := make([]setup, len(dests))
	for i, d := range dests {
		a := fold(d.Addr())
		off := mhKey(a, d.Port(), mhHash1, 0) % m
		ds[i] = setup{
			perm:  off,
			skip:  mhKey(a, d.Port(), mhHash2, 0)%(m-1) + 1,
			turns: uint32((d.LastWeight() / g) >> shift),
		}
		if ds[i].turns == 0 && d.LastWeight() != 0 {
			ds[i].turns = 1
		}
	}
	taken := make([]bool, m)
	n := uint32(0)
	for n < m {
		for i := range ds {
			x := &ds[i]
			for t := uint32(0); t < x.turns; t++ {
				c := x.perm
				for taken[c] {
					x.perm += x.skip
					if x.perm >= m {
						x.perm -= m
					}
					c = x.perm
				}
				taken[c] = true
				s.tab[c] = dests[i]
				if n++; n == m {
					return s
				}
			}
		}
	}
	return s
}

func (*mh) onAdd(o *Options, dests []*Dest, _ *Dest) scheduler { return newMH(o, dests) }
func (*mh) onDel(o *Options, dests []*Dest, _ *Dest, _ int) scheduler {
	return newMH(o, dests)
}
func (*mh) onUpdate(o *Options, dests []*Dest, _ *Dest) scheduler { return newMH(o, dests) }

func (s *mh) schedule(st *state, f *Flow, why *Reason) *Dest {
	flags := st.cfg.Flags
	m := uint32(len(s.tab))
	addr, port := f.hashAddr(flags&spec.SchedFlag2 != 0)
	ihash := mhKey(addr, port, mhHash1, 0) % m
	d := s.tab[ihash]
	if why != nil {
		explainBucket(why, f, port, ihash, m, d, 0)
	}
	if d == nil || !hashUnavailable(d) {
		return d
	}
	if flags&spec.SchedFlag1 == 0 {
		return nil
	}
	for off := uint32(0); off < m; off++ {
		roff := (off + ihash) % m
		h := mhKey(addr, port, mhHash1, roff) % m
		d = s.tab[h]
		if d == nil {
			break
		}
		if !hashUnavailable(d) {
			if why != nil {
				explainBucket(why, f, port, h, m, d, int32(off)+1)
			}
			return d
		}
	}
	return nil
}
