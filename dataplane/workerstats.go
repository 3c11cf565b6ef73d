package dataplane

import "sync/atomic"

// NumBatchBuckets is how many batch-size buckets BatchStats counts.
const NumBatchBuckets = 4

// batchBucketUpper holds the largest batch size of each bucket: 1, 2–4,
// 5–16, 17–BatchSize frames.
var batchBucketUpper = [NumBatchBuckets]int{1, 4, 16, BatchSize}

// BatchBucketBounds returns the largest batch size counted in each bucket
// of BatchStats.BatchSizes, in increasing order; the last is BatchSize.
func BatchBucketBounds() [NumBatchBuckets]int { return batchBucketUpper }

// BatchStats are the figures a worker publishes once per batch, never per
// frame, for readers on other goroutines (the metrics endpoint, uvsadm
// --counters): how deep its neighbour queue is and how many batches of
// which size it has read. Only the worker writes them; they live in the
// Worker (a separate allocation per worker, next to its Counters), so no
// cache line is written by two workers.
//
// A batch is a runBatch pass: at most BatchSize frames read together. A
// retry of the neighbour queue alone (an empty ProcessBatch) is not one.
// Frames per batch on average is the worker's rx counter (Counters.Load(CntRx))
// divided by Batches.
type BatchStats struct {
	// depth is the neighbour queue's length after the last batch.
	depth atomic.Int64
	// sizes counts batches by size, bucket i up to batchBucketUpper[i]
	// frames (not cumulative).
	sizes [NumBatchBuckets]atomic.Uint64

	// lastDepth is the depth last stored: written and read by the
	// worker only, so that an unchanged depth costs no atomic store.
	lastDepth int
}

// NeighQueueDepth returns how many frames waited in the worker's neighbour
// queue for their next hop at the end of its last batch.
func (s *BatchStats) NeighQueueDepth() int { return int(s.depth.Load()) }

// Batches returns how many batches of frames the worker has read.
func (s *BatchStats) Batches() uint64 {
	var n uint64
	for i := range s.sizes {
		n += s.sizes[i].Load()
	}
	return n
}

// BatchSizes returns how many batches fell in each bucket of
// BatchBucketBounds (counts per bucket, not cumulative).
func (s *BatchStats) BatchSizes() [NumBatchBuckets]uint64 {
	var out [NumBatchBuckets]uint64
	for i := range s.sizes {
		out[i] = s.sizes[i].Load()
	}
	return out
}

// countBatch counts a batch of n frames (1 ≤ n ≤ BatchSize): one atomic
// add per batch.
func (s *BatchStats) countBatch(n int) {
	var b int
	switch {
	case n <= batchBucketUpper[0]:
		b = 0
	case n <= batchBucketUpper[1]:
		b = 1
	case n <= batchBucketUpper[2]:
		b = 2
	default:
		b = 3
	}
	s.sizes[b].Add(1)
}

// publishDepth publishes the neighbour queue's length n, storing only when
// it changed since the last batch.
func (s *BatchStats) publishDepth(n int) {
	if n != s.lastDepth {
		s.lastDepth = n
		s.depth.Store(int64(n))
	}
}

// BatchStats returns the worker's batch figures, safe to read while it
// runs and after it stopped.
func (w *Worker) BatchStats() *BatchStats { return &w.bstats }
