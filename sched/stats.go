package sched

import (
	"sync"
	"sync/atomic"
)

// Counts are the five traffic counters ipvsadm --stats shows for a service
// or a destination (struct ip_vs_kstats), in its column order.
type Counts struct {
	Conns, InPkts, OutPkts, InBytes, OutBytes uint64
}

// Indexes of the counters in a cell.
const (
	cntConns = iota
	cntInPkts
	cntOutPkts
	cntInBytes
	cntOutBytes
	numCounts
)

func (c *Counts) set(v *[numCounts]uint64) {
	*c = Counts{Conns: v[cntConns], InPkts: v[cntInPkts], OutPkts: v[cntOutPkts], InBytes: v[cntInBytes], OutBytes: v[cntOutBytes]}
}

func (c Counts) array() [numCounts]uint64 {
	return [numCounts]uint64{c.Conns, c.InPkts, c.OutPkts, c.InBytes, c.OutBytes}
}

// Stats are the traffic counters of one service or destination. As in the
// kernel (struct ip_vs_stats: per-CPU counters summed by the estimator and
// by the listing, ip_vs_zero_stats keeping the current sum as the zero
// point kstats0), the data plane does not count into Stats itself: each
// worker counts into its own StatsBlock, in the cell of the slot a
// StatsRegistry gave the Stats, and Load sums the workers' cells. No
// cache line is written by two workers.
//
// The zero value is ready: counts added with Add before (or without) a
// slot land in shared atomics. Methods are safe for concurrent use.
type Stats struct {
	ref    atomic.Pointer[statsRef]
	direct [numCounts]atomic.Uint64 // Add: counts from outside a StatsBlock
	zero   [numCounts]atomic.Uint64 // the zero point (-Z)
}

// statsRef is a Stats' slot in its registry and, for a destination, its
// service's Stats, which its traffic counts in too (ip_vs_in_stats: dest,
// then dest->svc). Immutable.
type statsRef struct {
	reg    *StatsRegistry
	slot   uint32
	parent *Stats
}

// Add adds c to the counters without a StatsBlock (with a shared atomic
// per counter: for tests and rare paths, not per packet).
func (s *Stats) Add(c Counts) {
	v := c.array()
	for i := range v {
		if v[i] != 0 {
			s.direct[i].Add(v[i])
		}
	}
}

// raw sums the counters since creation: the direct ones and every
// worker's cell.
func (s *Stats) raw() [numCounts]uint64 {
	var v [numCounts]uint64
	for i := range v {
		v[i] = s.direct[i].Load()
	}
	if r := s.ref.Load(); r != nil {
		r.reg.sum(r.slot, &v)
	}
	return v
}

// Load returns the counters since creation or the last Zero
// (ip_vs_export_stats_user: kstats - kstats0).
func (s *Stats) Load() Counts {
	v := s.raw()
	for i := range v {
		v[i] -= s.zero[i].Load()
	}
	var c Counts
	c.set(&v)
	return c
}

// Zero makes the current counters the zero point (ipvsadm -Z,
// ip_vs_zero_stats); the workers' cells are not touched.
func (s *Stats) Zero() {
	v := s.raw()
	for i := range v {
		s.zero[i].Store(v[i])
	}
}

// StatsRegistry gives Stats their slots and keeps the workers' blocks so
// that Stats.Load can sum them. The control plane owns one per
// configuration and assigns slots when it builds a snapshot; a worker
// registers one StatsBlock in it. Slots are never reused: a Stats keeps its
// slot as long as it lives (a deleted destination still counts the traffic
// of its connections, and is resurrected with its counters by a re-add, as
// from the kernel's trash).
type StatsRegistry struct {
	mu     sync.Mutex
	slots  atomic.Uint32                 // slots handed out, slot 0 included (unused)
	blocks atomic.Pointer[[]*StatsBlock] // copy on write, under mu
}

// NewStatsRegistry returns an empty registry.
func NewStatsRegistry() *StatsRegistry {
	r := &StatsRegistry{}
	r.slots.Store(1)
	r.blocks.Store(&[]*StatsBlock{})
	return r
}

// Assign gives s a slot in r unless it has one, and records parent, the
// service whose counters a destination's traffic also counts in (nil for
// a service), which gets a slot too. A Stats keeps its first registry.
func (r *StatsRegistry) Assign(s, parent *Stats) {
	if parent != nil {
		r.Assign(parent, nil)
	}
	if x := s.ref.Load(); x != nil && (x.reg != r || x.parent == parent) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	x := s.ref.Load()
	if x != nil && x.reg != r {
		return
	}
	var slot uint32
	if x != nil {
		slot = x.slot
	} else {
		slot = r.slots.Load()
		r.slots.Store(slot + 1)
	}
	s.ref.Store(&statsRef{reg: r, slot: slot, parent: parent})
}

// Slots returns the number of slots handed out (the length a block needs).
func (r *StatsRegistry) Slots() int { return int(r.slots.Load()) }

// NewBlock registers and returns a block for one worker.
func (r *StatsRegistry) NewBlock() *StatsBlock {
	b := &StatsBlock{reg: r}
	b.pub.Store(&[]cell{})
	r.mu.Lock()
	old := *r.blocks.Load()
	nb := append(append(make([]*StatsBlock, 0, len(old)+1), old...), b)
	r.blocks.Store(&nb)
	r.mu.Unlock()
	b.Grow()
	return b
}

// sum adds every block's published cell of slot to v.
func (r *StatsRegistry) sum(slot uint32, v *[numCounts]uint64) {
	for _, b := range *r.blocks.Load() {
		pub := *b.pub.Load()
		if int(slot) >= len(pub) {
			continue
		}
		c := &pub[slot]
		for i := range v {
			v[i] += c[i].Load()
		}
	}
}

// cell is one slot's published counters in a block.
type cell [numCounts]atomic.Uint64

// local is one slot's counters as the owning worker keeps them.
type local struct {
	v     [numCounts]uint64
	dirty bool // changed since the last Publish
}

// StatsBlock is one worker's counters: a cell per slot of its registry.
// Only the owning worker calls its methods; a nil block counts everything
// in the shared atomics. Counting is plain arithmetic
// on the worker's own memory; Publish copies the cells changed since the
// last call into the published ones that Stats.Load reads (atomic stores
// to lines no other worker writes), once per batch. Readers see a
// worker's counts as of its last Publish.
type StatsBlock struct {
	reg   *StatsRegistry
	loc   []local
	dirty []uint32
	pub   atomic.Pointer[[]cell]
	// pad keeps the next allocation's first bytes off the line of the
	// fields above (the block is allocated alone; its slices are too, with
	// their own padding, see Grow).
	_ [64]byte
}

// Registry returns the registry the block belongs to.
func (b *StatsBlock) Registry() *StatsRegistry { return b.reg }

// blockPad is the number of spare cells at each end of a block's published
// slice: at least a cache line, so that no other allocation shares a line
// with the cells.
const blockPad = 2

// Grow sizes the block for every slot handed out so far. It allocates
// only when slots were added: call it when the configuration changed
// (a new snapshot), never per packet. Counts of slots beyond the block's
// size go to the Stats' shared atomics until then.
func (b *StatsBlock) Grow() {
	n := b.reg.Slots()
	if n <= len(b.loc) {
		return
	}
	b.Publish()
	n += n / 4 // room for a few more before the next growth
	loc := make([]local, n)
	copy(loc, b.loc)
	old := *b.pub.Load()
	pub := make([]cell, n+2*blockPad)[blockPad : blockPad+n]
	for i := range old {
		for k := range old[i] {
			pub[i][k].Store(old[i][k].Load())
		}
	}
	b.loc = loc
	b.dirty = make([]uint32, 0, n)
	b.pub.Store(&pub)
}

// Publish makes the counts since the last call visible to Stats.Load.
func (b *StatsBlock) Publish() {
	if b == nil || len(b.dirty) == 0 {
		return
	}
	pub := *b.pub.Load()
	for _, slot := range b.dirty {
		l := &b.loc[slot]
		l.dirty = false
		c := &pub[slot]
		for k := range l.v {
			c[k].Store(l.v[k])
		}
	}
	b.dirty = b.dirty[:0]
}

// cellOf returns the worker's counters of the Stats whose reference is
// r, marked changed, or nil if it has no slot in the block's registry or
// the block has not grown to it yet.
func (b *StatsBlock) cellOf(r *statsRef) *local {
	if b == nil || r == nil || r.reg != b.reg || int(r.slot) >= len(b.loc) {
		return nil
	}
	l := &b.loc[r.slot]
	if !l.dirty {
		l.dirty = true
		b.dirty = append(b.dirty, r.slot)
	}
	return l
}

// In counts an inbound (client to real server) packet of n bytes of a
// connection to d, in d and in its service (ip_vs_in_stats).
func (b *StatsBlock) In(d *Dest, n int) { b.packet(&d.Stats, cntInPkts, cntInBytes, uint64(n)) }

// Out counts an outbound (reply) packet of n bytes, in d and in its
// service (ip_vs_out_stats).
func (b *StatsBlock) Out(d *Dest, n int) { b.packet(&d.Stats, cntOutPkts, cntOutBytes, uint64(n)) }

// Add counts pkts packets of n bytes in all of a connection to d, inbound
// or (out) replies, in d and in its service: traffic that was forwarded
// without the data plane seeing each packet (an in-kernel fast path).
func (b *StatsBlock) Add(d *Dest, out bool, pkts, n uint64) {
	kp, kb := cntInPkts, cntInBytes
	if out {
		kp, kb = cntOutPkts, cntOutBytes
	}
	for s := &d.Stats; s != nil; {
		r := s.ref.Load()
		if l := b.cellOf(r); l != nil {
			l.v[kp] += pkts
			l.v[kb] += n
		} else {
			s.direct[kp].Add(pkts)
			s.direct[kb].Add(n)
		}
		s = nil
		if r != nil {
			s = r.parent // the service's
		}
	}
}

// packet counts one packet of n bytes in counters kp and kb of s and of
// its service.
func (b *StatsBlock) packet(s *Stats, kp, kb int, n uint64) {
	r := s.ref.Load()
	l := b.cellOf(r)
	if l == nil {
		b.packetSlow(s, kp, kb, n)
		return
	}
	l.v[kp]++
	l.v[kb] += n
	if r.parent == nil {
		return
	}
	if l = b.cellOf(r.parent.ref.Load()); l == nil {
		r.parent.direct[kp].Add(1)
		r.parent.direct[kb].Add(n)
		return
	}
	l.v[kp]++
	l.v[kb] += n
}

// packetSlow counts in the shared atomics: s has no cell in the block
// (yet).
//
//go:noinline
func (b *StatsBlock) packetSlow(s *Stats, kp, kb int, n uint64) {
	s.direct[kp].Add(1)
	s.direct[kb].Add(n)
	if r := s.ref.Load(); r != nil && r.parent != nil {
		p := r.parent
		if l := b.cellOf(p.ref.Load()); l != nil {
			l.v[kp]++
			l.v[kb] += n
			return
		}
		p.direct[kp].Add(1)
		p.direct[kb].Add(n)
	}
}

// Conn counts a new connection of service svc (nil: none) to destination
// d (ip_vs_conn_stats: dest, then service).
func (b *StatsBlock) Conn(svc *Stats, d *Dest) {
	for _, s := range [2]*Stats{&d.Stats, svc} {
		if s == nil {
			continue
		}
		if l := b.cellOf(s.ref.Load()); l != nil {
			l.v[cntConns]++
		} else {
			s.direct[cntConns].Add(1)
		}
	}
}
