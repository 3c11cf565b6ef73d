package director

import (
	"sync"
	"time"

	"github.com/uvs-lb/uvs/snapshot"
)

// A configuration change reaches the workers only once what uvsd owns
// covers it, and uvsadm returns only once it has reached them.
//
// The kernel's ipvsadm returns when the destination is in the service,
// and the next packet may use it (ip_vs_add_dest under the service
// mutex). uvsd has a step in between: the frames of a new service or real
// server are uvsd's only once the kernel hooks, the packet filter and the
// XDP program own them (publish, on the housekeeping goroutine). Were the
// snapshot handed to the workers first, a worker could schedule a
// connection to a new NAT real server whose SYN-ACK the XDP program or the
// packet filter still leaves to the kernel, which forwards it unrewritten:
// the client drops it and retransmits its SYN after 1 s (issue 17: two of
// three fresh `uvs-lab up nat` runs, on both backends; TestFirstSYN).
//
// So while the director runs, a new snapshot waits here until the
// housekeeping goroutine has published the ownership of the state it
// came from (which is at least as new), and a uvsadm change is answered
// once that is done (control.Server.Audit). Before Run and after it,
// snapshots go to the workers at once.
type applyGate struct {
	mu      sync.Mutex
	live    bool               // housekeeping applies the snapshots
	pending *snapshot.Snapshot // newest snapshot not yet applied
	offered uint64             // snapshots offered
	applied uint64             // snapshots applied (stored for the workers)
	done    chan struct{}      // closed when applied advances
}

// applyWait bounds how long a uvsadm change waits for its ownership to
// be published (a stalled iptables-save, for one): past it, uvsadm gets
// its answer anyway and the change applies when housekeeping gets to it.
const applyWait = 5 * time.Second

// offerSnapshot takes a new snapshot from the control state (called with
// the state locked): it goes to the workers at once unless housekeeping
// runs, which then applies it after publishing its ownership.
func (d *Director) offerSnapshot(s *snapshot.Snapshot) {
	g := &d.gate
	g.mu.Lock()
	g.offered++
	if g.live {
		g.pending = s
		g.mu.Unlock()
		return
	}
	d.snap.Store(s)
	g.applied = g.offered
	g.mu.Unlock()
}

// gateStart makes housekeeping apply the snapshots (Run, before the
// ownership it publishes first).
func (d *Director) gateStart() {
	d.gate.mu.Lock()
	d.gate.live = true
	d.gate.mu.Unlock()
}

// gateStop applies what is pending and goes back to applying snapshots at
// once (Run, when housekeeping returns).
func (d *Director) gateStop() {
	g := &d.gate
	g.mu.Lock()
	g.live = false
	g.mu.Unlock()
	d.applySnapshot(d.takeSnapshot())
}

// pendingSnapshot is a snapshot taken for applying, with its number.
type pendingSnapshot struct {
	s *snapshot.Snapshot
	n uint64
}

// takeSnapshot returns the snapshot to apply once the ownership published
// next covers it. Take it before computing that ownership: a snapshot
// offered meanwhile may be newer than the state the ownership came from
// (it is applied by the next round, which the offer signals).
func (d *Director) takeSnapshot() pendingSnapshot {
	g := &d.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	p := pendingSnapshot{s: g.pending, n: g.offered}
	g.pending = nil
	return p
}

// applySnapshot hands a taken snapshot to the workers and wakes the
// uvsadm requests waiting for it.
func (d *Director) applySnapshot(p pendingSnapshot) {
	if p.s != nil {
		d.snap.Store(p.s)
	}
	g := &d.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	if p.n > g.applied {
		g.applied = p.n
		if g.done != nil {
			close(g.done)
			g.done = nil
		}
	}
}

// waitApplied waits until every snapshot offered so far is applied, at
// most applyWait; it reports whether they are.
func (d *Director) waitApplied() bool { return d.waitAppliedWithin(applyWait) }

// waitAppliedWithin is waitApplied waiting at most limit.
func (d *Director) waitAppliedWithin(limit time.Duration) bool {
	g := &d.gate
	g.mu.Lock()
	want := g.offered
	g.mu.Unlock()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		g.mu.Lock()
		if g.applied >= want {
			g.mu.Unlock()
			return true
		}
		if g.done == nil {
			g.done = make(chan struct{})
		}
		ch := g.done
		g.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			return false
		}
	}
}
