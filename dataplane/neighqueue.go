package dataplane

import (
	"net/netip"
	"time"

	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/snapshot"
)

// The neighbour queue.
//
// The kernel does not drop a packet whose next hop is unresolved: it queues
// it on the neighbour entry (arp_queue, bounded by unres_qlen_bytes), sends
// it when the neighbour answers and drops it when resolution fails. A
// worker does the same with a queue of its own: a frame whose next hop
// misses in Env.Hops is copied (with its headroom, offload metadata, parse
// and connection) into a preallocated slot and retried at the start of
// every batch and whenever a read returns nothing. Once the next hop
// resolves, the frame takes the path it would have taken (the connection's
// transmitter; for FULLNAT without a local address pool, the connection's
// creation, which needs the route's source address). It is dropped when no
// slot is free (CntNeighQueueFull) or after Env.NeighTimeout
// (CntNeighTimeout). Its statistics and state transition were applied when
// it arrived, and are not applied again.
//
// Order: while a frame waits for an address, later frames for that address
// wait behind it (Worker.hop), and later frames of a flow whose connection
// waits to be created wait too (pendReprocess); the queue is retried in
// arrival order.

// Neighbour queue sizes, per worker.
const (
	// NeighQueueSmall slots hold frames up to NeighSmallFrame bytes.
	NeighQueueSmall = 256
	// NeighQueueLarge slots hold larger frames (jumbo frames and GSO
	// super-frames, up to NeighLargeFrame bytes); small frames use them
	// when the small slots are taken.
	NeighQueueLarge = 4
	// DefaultNeighTimeout is how long a frame waits for its next hop: the
	// next-hop resolver's default resolution timeout (neigh.Options).
	DefaultNeighTimeout = 3 * time.Second

	neighHeadroom   = 128 // in front of a queued frame (encapsulation)
	neighSmallSlot  = 2048
	neighLargeSlot  = 68 << 10
	NeighSmallFrame = neighSmallSlot - neighHeadroom
	NeighLargeFrame = neighLargeSlot - neighHeadroom
)

// pendKind says how a queued frame continues once its next hop resolves.
type pendKind uint8

const (
	pendRequest   pendKind = iota // a request: the connection's transmitter (xmitter.request)
	pendICMPIn                    // an ICMP error from the client side (xmitter.icmpIn)
	pendCreate                    // FULLNAT: create the connection, then transmit
	pendReprocess                 // a later frame of a pendCreate flow: the whole path again
)

// pending is a queued frame.
type pending struct {
	kind  pendKind
	large bool
	live  bool
	addr  netip.Addr // the address whose next hop it waits for
	since int64      // clock reading when queued
	f     Frame      // Buf is buf
	p     header.Parsed
	c     conntrack.Conn    // pendRequest, pendICMPIn
	nc    conntrack.NewConn // pendCreate
	svc   *snapshot.Service // pendCreate
	key   conntrack.Key     // pendCreate, pendReprocess: the inbound key
	buf   []byte
}

// pendAddr is an address frames wait for, with how many.
type pendAddr struct {
	addr netip.Addr
	n    int
	hop  Hop
	// ok and released hold during a retry pass: the address resolved,
	// and its frames are being sent (they no longer block new ones).
	ok, released bool
}

type neighQueue struct {
	ents  []pending
	freeS []int32 // free small slots (a stack)
	freeL []int32
	order []int32 // order[:n]: queued entries, oldest first
	n     int
	addrs []pendAddr // addrs[:na]
	na    int
	// creates counts queued pendCreate entries.
	creates int
	// rel holds entries handled but whose frame may still be in the
	// output batch: their slots are freed by the next flush.
	rel     []int32
	timeout int64
}

func (q *neighQueue) init(timeout time.Duration) {
	n := NeighQueueSmall + NeighQueueLarge
	q.ents = make([]pending, n)
	q.freeS = make([]int32, 0, NeighQueueSmall)
	q.freeL = make([]int32, 0, NeighQueueLarge)
	small := make([]byte, NeighQueueSmall*neighSmallSlot)
	for i := NeighQueueSmall - 1; i >= 0; i-- {
		q.ents[i].buf = small[i*neighSmallSlot : (i+1)*neighSmallSlot : (i+1)*neighSmallSlot]
		q.freeS = append(q.freeS, int32(i))
	}
	large := make([]byte, NeighQueueLarge*neighLargeSlot)
	for i := NeighQueueLarge - 1; i >= 0; i-- {
		e := &q.ents[NeighQueueSmall+i]
		e.buf = large[i*neighLargeSlot : (i+1)*neighLargeSlot : (i+1)*neighLargeSlot]
		e.large = true
		q.freeL = append(q.freeL, int32(NeighQueueSmall+i))
	}
	q.order = make([]int32, n)
	// Addresses of entries handled in a retry pass stay until its end,
	// next to those of entries queued during it.
	q.addrs = make([]pendAddr, 2*n)
	q.rel = make([]int32, 0, n)
	q.timeout = int64(timeout)
}

// blocked reports whether frames wait for addr (and are not being sent).
func (q *neighQueue) blocked(addr netip.Addr) bool {
	for i := range q.addrs[:q.na] {
		if a := &q.addrs[i]; a.addr == addr {
			return a.n > 0 && !a.released
		}
	}
	return false
}

// createPending returns the address the queued creation of the connection
// with inbound key k waits for.
func (q *neighQueue) createPending(k *conntrack.Key) (netip.Addr, bool) {
	for i := range q.ents {
		if e := &q.ents[i]; e.live && e.kind == pendCreate && e.key == *k {
			return e.addr, true
		}
	}
	return netip.Addr{}, false
}

// enqueue copies the frame of pc and its parse into a free slot, to wait
// for the next hop of addr; the caller fills the kind's fields. It returns
// nil, and counts the drop, when no slot fits.
func (w *Worker) enqueue(pc *pktCtx, kind pendKind, addr netip.Addr) *pending {
	q := &w.pq
	f := pc.f
	data := f.Data()
	need := neighHeadroom + len(data)
	var ei int32 = -1
	switch {
	case need <= neighSmallSlot && len(q.freeS) > 0:
		ei = q.freeS[len(q.freeS)-1]
		q.freeS = q.freeS[:len(q.freeS)-1]
	case need <= neighLargeSlot && len(q.freeL) > 0:
		ei = q.freeL[len(q.freeL)-1]
		q.freeL = q.freeL[:len(q.freeL)-1]
	default:
		w.Counters.inc(CntNeighQueueFull)
		return nil
	}
	e := &q.ents[ei]
	copy(e.buf[neighHeadroom:], data)
	e.f = *f
	e.f.Buf, e.f.Off = e.buf, neighHeadroom
	e.p = *pc.p
	e.kind, e.addr, e.since, e.live = kind, addr, pc.mono, true
	q.order[q.n] = ei
	q.n++
	for i := range q.addrs[:q.na] {
		if a := &q.addrs[i]; a.addr == addr {
			a.n++
			addr = netip.Addr{}
			break
		}
	}
	if addr.IsValid() {
		q.addrs[q.na] = pendAddr{addr: addr, n: 1}
		q.na++
	}
	w.Counters.inc(CntNeighQueued)
	return e
}

// remove takes entry ei out of the queue's accounting; its slot is freed
// by release once its frame has left.
func (q *neighQueue) remove(ei int32) *pendAddr {
	e := &q.ents[ei]
	e.live = false
	if e.kind == pendCreate {
		q.creates--
	}
	for i := range q.addrs[:q.na] {
		if a := &q.addrs[i]; a.addr == e.addr {
			a.n--
			return a
		}
	}
	return nil
}

// release frees the slots of the entries handled before the last flush.
func (q *neighQueue) release() {
	for _, ei := range q.rel {
		e := &q.ents[ei]
		e.c.Dest, e.nc.Dest, e.svc = nil, nil, nil // keep nothing alive
		if e.large {
			q.freeL = append(q.freeL, ei)
		} else {
			q.freeS = append(q.freeS, ei)
		}
	}
	q.rel = q.rel[:0]
}

// retryQueued sends the queued frames whose next hop has resolved and drops
// those that waited too long, in arrival order; it flushes what it sent.
// pc holds the batch's snapshot, host facts and clock; it is pointed at
// each frame replayed.
func (w *Worker) retryQueued(pc *pktCtx) {
	q := &w.pq
	mono := pc.mono
	resolved := false
	for i := range q.addrs[:q.na] {
		a := &q.addrs[i]
		a.hop, a.ok = w.env.Hops.Lookup(a.addr)
		resolved = resolved || a.ok
	}
	if !resolved && mono-q.ents[q.order[0]].since < q.timeout {
		return // the oldest has time left, nothing resolved
	}
	for i := range q.addrs[:q.na] {
		q.addrs[i].released = q.addrs[i].ok
	}
	n0, kept := q.n, 0
	for r := 0; r < n0; r++ {
		ei := q.order[r]
		e := &q.ents[ei]
		a := q.addrOf(e.addr)
		switch {
		case a.ok:
			q.remove(ei)
			if len(w.out)+2 > cap(w.out) {
				w.flush() // a replay emits a frame and may add an ICMP error
			}
			w.replay(pc, e, &a.hop)
			q.rel = append(q.rel, ei)
		case mono-e.since >= q.timeout:
			q.remove(ei)
			q.rel = append(q.rel, ei)
			w.Counters.inc(CntNeighTimeout)
		default:
			q.order[kept] = ei
			kept++
		}
	}
	// Frames queued during the pass (a next hop lost again meanwhile)
	// follow the ones kept.
	kept += copy(q.order[kept:], q.order[n0:q.n])
	q.n = kept
	na := 0
	for i := range q.addrs[:q.na] {
		if a := q.addrs[i]; a.n > 0 {
			a.ok, a.released, a.hop = false, false, Hop{}
			q.addrs[na] = a
			na++
		}
	}
	clear(q.addrs[na:q.na])
	q.na = na
	if len(w.out) > 0 {
		w.flush()
	}
}

// addrOf returns the entry of an address frames wait for.
func (q *neighQueue) addrOf(addr netip.Addr) *pendAddr {
	for i := range q.addrs[:q.na] {
		if q.addrs[i].addr == addr {
			return &q.addrs[i]
		}
	}
	panic("dataplane: neighbour queue entry without its address")
}

// replay continues a queued frame's path now that hop is known.
func (w *Worker) replay(pc *pktCtx, e *pending, hop *Hop) {
	pc.f, pc.p = &e.f, &e.p
	switch e.kind {
	case pendRequest:
		if d := e.c.Dest; d != nil && !d.Available() {
			w.Counters.inc(CntDestGone)
			return
		}
		pc.hop = *hop
		xmitFor(e.c.Fwd).request(w, pc, &e.c)
	case pendICMPIn:
		pc.hop = *hop
		xmitFor(e.c.Fwd).icmpIn(w, pc, &e.c)
	case pendCreate:
		if !e.nc.Dest.Available() {
			w.Counters.inc(CntDestGone)
			return
		}
		w.create(pc, &e.nc, e.svc)
	case pendToClient:
		w.replayToClient(e, hop)
	case pendReprocess:
		c := &w.cn
		found := w.env.Conns.Track(e.key, e.p.TCPFlags, pc.mono, c)
		w.tracked(pc, &e.key, found, c)
	}
}
