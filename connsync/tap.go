package connsync

import (
	"sync/atomic"

	"github.com/uvs-lb/uvs/connsync/wire"
)

// Policy is the kernel's rule set for which connections a master sends
// (sysctls sync_threshold, sync_period, sync_persist_mode, sync_version).
type Policy struct {
	Threshold   uint32 // sync_threshold's first value (default 3)
	Period      uint32 // its second value (default 50)
	PersistMode bool   // sync_persist_mode
	Version     int    // sync_version: 1 (default) or 0
}

// DefaultPolicy is the kernel's default.
var DefaultPolicy = Policy{Threshold: 3, Period: 50, Version: 1}

// Needed reports whether a non-template connection is sent after an
// inbound packet: proto and its state after (state) and before (old) the
// packet, pkts the connection's inbound packet count including this one
// (ip_vs_sync_conn_needed). Templates are not asked: a controlling
// template is sent whenever one of its connections is.
func (p *Policy) Needed(proto uint8, state, old uint16, pkts uint32) bool {
	panic("skeleton")
}

// Ring is a single-producer single-consumer queue of entries: one worker
// pushes, the master daemon drains. Push never blocks or allocates.
type Ring struct {
	_ [0]func()
}

// Push appends e; it reports false (and counts a drop) when the ring is
// full.
func (r *Ring) Push(e *wire.Entry) bool { panic("skeleton") }

// Drain calls fn with each queued entry in order and returns how many.
func (r *Ring) Drain(fn func(*wire.Entry)) int { panic("skeleton") }

// Dropped returns how many pushes found the ring full.
func (r *Ring) Dropped() uint64 { panic("skeleton") }

// Tap is what the data plane sees of the sync daemon: whether a master
// daemon runs (Sending), its policy, and one ring per worker.
type Tap struct {
	sending atomic.Bool
	policy  atomic.Pointer[Policy]
}

// NewTap returns a tap with no daemon running and DefaultPolicy.
func NewTap() *Tap { panic("skeleton") }

// Sending reports whether a master daemon runs (one atomic load).
func (t *Tap) Sending() bool { return t.sending.Load() }

// Policy returns the current policy.
func (t *Tap) Policy() *Policy { return t.policy.Load() }

// NewRing registers and returns a ring for one worker.
func (t *Tap) NewRing() *Ring { panic("skeleton") }
