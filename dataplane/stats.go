package dataplane

import (
	"github.com/uvs-lb/uvs/sched"
	"github.com/uvs-lb/uvs/snapshot"
)

// workerStats is a worker's share of the services' and destinations'
// traffic counters (ipvsadm --stats): a sched.StatsBlock registered in the
// registry of the snapshots it handles, so that counting a packet writes
// only this worker's memory (no atomic shared with another worker on the
// packet path). The control plane's listing and rate estimator sum the
// blocks (sched.Stats.Load).
type workerStats struct {
	snap *snapshot.Snapshot // the snapshot the block was last sized for
	blk  *sched.StatsBlock  // nil until a snapshot carries a registry
}

// sync follows a new snapshot: a block in its registry, grown to its
// slots. It allocates only when the configuration brought new services or
// destinations; per batch it is one pointer comparison.
func (s *workerStats) sync(snap *snapshot.Snapshot) {
	if snap == s.snap {
		return
	}
	s.snap = snap
	reg := snap.Stats
	if reg == nil {
		return
	}
	if s.blk == nil || s.blk.Registry() != reg {
		s.blk.Publish()
		s.blk = reg.NewBlock()
		return
	}
	s.blk.Grow()
}

// publish makes the batch's counts visible to the readers.
func (s *workerStats) publish() { s.blk.Publish() }
