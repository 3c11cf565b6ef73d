package connsync

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/uvs-lb/uvs/connsync/wire"
)

// Policy is the kernel's rule set for which connections a master sends
// (sysctls sync_threshold, sync_period, sync_persist_mode, sync_version).
// sync_refresh_period and sync_retries are not implemented: uvs behaves
// as the kernel with their defaults (0).
type Policy struct {
	Threshold   uint32 // sync_threshold's first value (default 3)
	Period      uint32 // its second value (default 50)
	PersistMode bool   // sync_persist_mode
	Version     int    // sync_version: 1 (default) or 0
}

// DefaultPolicy is the kernel's default.
var DefaultPolicy = Policy{Threshold: 3, Period: 50, Version: 1}

// Validate applies the kernel's sysctl checks: the threshold must be
// below a non-zero period (proc_do_sync_threshold), the version 0 or 1.
func (p Policy) Validate() error {
	if p.Period != 0 && p.Threshold >= p.Period {
		return fmt.Errorf("sync_threshold %d %d: the threshold must be below the period", p.Threshold, p.Period)
	}
	if p.Version != 0 && p.Version != 1 {
		return fmt.Errorf("sync_version %d: must be 0 or 1", p.Version)
	}
	return nil
}

// Needed reports whether a non-template connection is sent after an
// inbound packet: proto and its state after (state) and before (old) the
// packet, pkts the connection's inbound packet count including this one
// (ip_vs_sync_conn_needed). Templates are not asked: a controlling
// template is sent whenever one of its connections is (see
// TemplateNeeded).
//
// With PersistMode, a connection that has a controlling template is not
// sent at all (only its template is): the caller checks that before
// asking, as it alone knows whether a template controls the connection.
//
//   - TCP is sent only in ESTABLISHED, FIN_WAIT, CLOSE, CLOSE_WAIT and
//     TIME_WAIT; SCTP only in ESTABLISHED, SHUTDOWN_SENT,
//     SHUTDOWN_RECEIVED, SHUTDOWN_ACK_SENT and CLOSED. For both, a state
//     change to anything but ESTABLISHED is sent at once.
//   - Otherwise (and for UDP and other protocols, which have no state
//     filter) the connection is sent when pkts % Period == Threshold
//     (packets 3, 53, 103, … by default), or with Period 0 only when
//     pkts == Threshold.
func (p *Policy) Needed(proto uint8, state, old uint16, pkts uint32) bool {
	switch proto {
	case wire.ProtoTCP:
		if state >= 32 || tcpSynced&(1<<state) == 0 {
			return false
		}
		if state != old && state != wire.TCPEstablished {
			return true
		}
	case wire.ProtoSCTP:
		if state >= 32 || sctpSynced&(1<<state) == 0 {
			return false
		}
		if state != old && state != wire.SCTPEstablished {
			return true
		}
	}
	return p.countDue(pkts)
}

// TemplateNeeded reports whether a persistence template is sent along
// with one of its connections, pkts the template's own inbound packet
// count including this one. Templates skip the state filter and, with a
// non-zero Period, the packet-count rule (so they are re-sent every time
// a controlled connection is processed); with Period 0 they are sent only
// when pkts == Threshold, as in the kernel.
func (p *Policy) TemplateNeeded(pkts uint32) bool {
	if p.Period > 0 {
		return true
	}
	return pkts == p.Threshold
}

func (p *Policy) countDue(pkts uint32) bool {
	if p.Period > 0 {
		return pkts%p.Period == p.Threshold
	}
	return pkts == p.Threshold
}

// The states in which TCP and SCTP connections are synced, as bit sets.
const (
	tcpSynced = 1<<wire.TCPEstablished | 1<<wire.TCPFinWait | 1<<wire.TCPClose |
		1<<wire.TCPCloseWait | 1<<wire.TCPTimeWait
	sctpSynced = 1<<wire.SCTPEstablished | 1<<wire.SCTPShutdownSent |
		1<<wire.SCTPShutdownReceived | 1<<wire.SCTPShutdownAckSent | 1<<wire.SCTPClosed
)

// RingCapacity is the number of entries of the rings Tap.NewRing makes.
const RingCapacity = 4096

// cacheLine separates the producer's and the consumer's fields.
const cacheLine = 64

// Ring is a single-producer single-consumer queue of entries: one worker
// pushes, the master daemon drains. Push never blocks or allocates.
//
// The producer owns tail and dropped, the consumer owns head; each reads
// the other's index with one atomic load and caches it, so a push that
// finds room costs one atomic store and no shared write.
type Ring struct {
	_ [0]func()

	slots []wire.Entry
	mask  uint64

	_       [cacheLine]byte
	tail    atomic.Uint64 // next slot to write; written by the producer
	dropped atomic.Uint64 // written by the producer only
	headC   uint64        // producer's cached copy of head
	_       [cacheLine]byte
	head    atomic.Uint64 // next slot to read; written by the consumer
	_       [cacheLine]byte
}

// NewRing returns a ring holding up to capacity entries, rounded up to a
// power of two (at least 2).
func NewRing(capacity int) *Ring {
	n := 2
	for n < capacity {
		n <<= 1
	}
	return &Ring{slots: make([]wire.Entry, n), mask: uint64(n - 1)}
}

// Cap returns how many entries the ring holds.
func (r *Ring) Cap() int { return len(r.slots) }

// Push appends a copy of *e; it reports false (and counts a drop) when the
// ring is full. Only the ring's one producer may call it.
func (r *Ring) Push(e *wire.Entry) bool {
	t := r.tail.Load() // own index: no other writer
	if t-r.headC > r.mask {
		r.headC = r.head.Load()
		if t-r.headC > r.mask {
			r.dropped.Store(r.dropped.Load() + 1)
			return false
		}
	}
	r.slots[t&r.mask] = *e
	r.tail.Store(t + 1)
	return true
}

// Drain calls fn with each queued entry in order and returns how many.
// The entry passed to fn is valid only during the call. Only the ring's
// one consumer may call it.
func (r *Ring) Drain(fn func(*wire.Entry)) int {
	h := r.head.Load()
	t := r.tail.Load()
	for i := h; i != t; i++ {
		fn(&r.slots[i&r.mask])
	}
	r.head.Store(t)
	return int(t - h)
}

// Len returns how many entries are queued (a snapshot).
func (r *Ring) Len() int { return int(r.tail.Load() - r.head.Load()) }

// Dropped returns how many pushes found the ring full.
func (r *Ring) Dropped() uint64 { return r.dropped.Load() }

// Tap is what the data plane sees of the sync daemon: whether a master
// daemon runs (Sending), its policy, and one ring per worker.
type Tap struct {
	sending atomic.Bool
	policy  atomic.Pointer[Policy]

	mu    sync.Mutex
	rings atomic.Pointer[[]*Ring] // copy on write under mu
}

// NewTap returns a tap with no daemon running and DefaultPolicy.
func NewTap() *Tap {
	t := &Tap{}
	p := DefaultPolicy
	t.policy.Store(&p)
	t.rings.Store(new([]*Ring))
	return t
}

// Sending reports whether a master daemon runs (one atomic load).
func (t *Tap) Sending() bool { return t.sending.Load() }

// SetSending tells the data plane whether a master daemon runs.
func (t *Tap) SetSending(on bool) { t.sending.Store(on) }

// Policy returns the current policy. The data plane loads it once per
// batch and must not modify it.
func (t *Tap) Policy() *Policy { return t.policy.Load() }

// SetPolicy replaces the policy (a copy of p is published).
func (t *Tap) SetPolicy(p Policy) { t.policy.Store(&p) }

// NewRing registers and returns a ring of RingCapacity entries for one
// worker.
func (t *Tap) NewRing() *Ring {
	r := NewRing(RingCapacity)
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.rings.Load()
	rs := make([]*Ring, len(old), len(old)+1)
	copy(rs, old)
	rs = append(rs, r)
	t.rings.Store(&rs)
	return r
}

// Rings returns the registered rings (do not modify the slice).
func (t *Tap) Rings() []*Ring { return *t.rings.Load() }

// Dropped returns the drops of all rings.
func (t *Tap) Dropped() uint64 {
	var n uint64
	for _, r := range t.Rings() {
		n += r.Dropped()
	}
	return n
}
