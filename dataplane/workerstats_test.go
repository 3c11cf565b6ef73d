package dataplane_test

import (
	"sync"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/dataplane"
)

const udpRules = "-A -u 10.0.1.100:53 -s rr\n-a -u 10.0.1.100:53 -r 10.0.2.12:53 -m\n"

// udpBatch returns n UDP datagrams to the service of udpRules as frames of
// one batch (received on interface 1).
func udpBatch(t testing.TB, n int) []dataplane.Frame {
	t.Helper()
	frames := make([]dataplane.Frame, n)
	for i := range frames {
		data := udpFrame(t, uint16(5000+i), 53, []byte("q"))
		buf := make([]byte, 64+len(data))
		frames[i] = dataplane.Frame{Buf: buf, Off: 64, Len: copy(buf[64:], data), Ifindex: 1}
	}
	return frames
}

// TestBatchStatsNeighQueueDepth: frames waiting for an unresolved next hop
// show in the depth gauge batch after batch, leave it when they are sent
// or time out; batches are counted by size, a retry alone is no batch, and
// a ProcessBatch of more than BatchSize frames is several batches.
func TestBatchStatsNeighQueueDepth(t *testing.T) {
	r := newRig(t, udpRules)
	h := newFlakyHops()
	r.withHops(h, 3*time.Second)
	bs := r.w.BatchStats()
	if bs.NeighQueueDepth() != 0 || bs.Batches() != 0 {
		t.Fatalf("new worker: depth %d, batches %d", bs.NeighQueueDepth(), bs.Batches())
	}
	check := func(step string, depth int, sizes [dataplane.NumBatchBuckets]uint64) {
		t.Helper()
		var batches uint64
		for _, n := range sizes {
			batches += n
		}
		if got := bs.NeighQueueDepth(); got != depth {
			t.Errorf("%s: depth %d, want %d", step, got, depth)
		}
		if got := bs.BatchSizes(); got != sizes {
			t.Errorf("%s: batch sizes %v, want %v (buckets up to %v)", step, got, sizes, dataplane.BatchBucketBounds())
		}
		if got := bs.Batches(); got != batches {
			t.Errorf("%s: batches %d, want %d", step, got, batches)
		}
	}
	r.w.ProcessBatch(udpBatch(t, 3))
	check("3 frames queued", 3, [4]uint64{0, 1, 0, 0})
	r.w.ProcessBatch(udpBatch(t, 1))
	check("1 more", 4, [4]uint64{1, 1, 0, 0})
	r.w.ProcessBatch(udpBatch(t, 16))
	check("16 more", 20, [4]uint64{1, 1, 1, 0})
	// 100 frames are a batch of 64 and one of 36.
	r.w.ProcessBatch(udpBatch(t, 100))
	check("100 more", 120, [4]uint64{1, 1, 1, 2})
	r.retry()
	check("retry, unresolved", 120, [4]uint64{1, 1, 1, 2})
	if c := r.w.Counters.Load(dataplane.CntRx); c != 120 {
		t.Fatalf("rx %d, want 120", c)
	}
	if r.w.Counters.Load(dataplane.CntNeighQueued) != 120 {
		t.Fatalf("queued %d, want 120", r.w.Counters.Load(dataplane.CntNeighQueued))
	}

	h.set("10.0.2.12", true)
	if out := r.retry(); len(out) != 120 {
		t.Fatalf("sent %d after resolution, want 120", len(out))
	}
	check("resolved", 0, [4]uint64{1, 1, 1, 2})

	// Frames that time out leave the queue too.
	h.set("10.0.2.12", false)
	r.w.ProcessBatch(udpBatch(t, 2))
	check("2 queued again", 2, [4]uint64{1, 2, 1, 2})
	r.clock = r.clock.Add(3100 * time.Millisecond)
	r.retry()
	if r.w.Counters.Load(dataplane.CntNeighTimeout) != 2 {
		t.Fatalf("neighbour-timeout %d, want 2", r.w.Counters.Load(dataplane.CntNeighTimeout))
	}
	check("timed out", 0, [4]uint64{1, 2, 1, 2})
}

// TestBatchStatsBuckets: each batch size from 1 to BatchSize lands in the
// bucket BatchBucketBounds gives it.
func TestBatchStatsBuckets(t *testing.T) {
	bounds := dataplane.BatchBucketBounds()
	if bounds[len(bounds)-1] != dataplane.BatchSize {
		t.Fatalf("last bucket bound %d, want BatchSize %d", bounds[len(bounds)-1], dataplane.BatchSize)
	}
	r := newRig(t, udpRules)
	w := dataplane.NewWorker(discardIO{}, r.env)
	frames := udpBatch(t, dataplane.BatchSize)
	var want [dataplane.NumBatchBuckets]uint64
	for n := 1; n <= dataplane.BatchSize; n++ {
		w.ProcessBatch(frames[:n]) // the same datagrams again: ours either way
		b := 0
		for n > bounds[b] {
			b++
		}
		want[b]++
		if got := w.BatchStats().BatchSizes(); got != want {
			t.Fatalf("after a batch of %d: sizes %v, want %v", n, got, want)
		}
	}
}

// TestBatchStatsNoAllocs: counting batches and publishing a changing depth
// allocate nothing (the measured path does both every round).
func TestBatchStatsNoAllocs(t *testing.T) {
	r := newRig(t, udpRules)
	h := newFlakyHops()
	env := *r.env
	env.Hops = h
	w := dataplane.NewWorker(discardIO{}, &env)
	data := udpFrame(t, 5000, 53, []byte("q"))
	buf := make([]byte, 64+len(data))
	frames := []dataplane.Frame{{}}
	maxDepth := 0
	allocs := testing.AllocsPerRun(200, func() {
		h.set("10.0.2.12", false)
		copy(buf[64:], data)
		frames[0] = dataplane.Frame{Buf: buf, Off: 64, Len: len(data), Ifindex: 1}
		w.ProcessBatch(frames)
		maxDepth = max(maxDepth, w.BatchStats().NeighQueueDepth())
		h.set("10.0.2.12", true)
		w.ProcessBatch(nil)
	})
	// AllocsPerRun runs the function once more than asked.
	if b := w.BatchStats().Batches(); b != 201 || maxDepth != 1 || w.BatchStats().NeighQueueDepth() != 0 {
		t.Fatalf("batches %d, max depth %d, depth %d; want 201, 1, 0: the measured path did not count", b, maxDepth, w.BatchStats().NeighQueueDepth())
	}
	if allocs != 0 {
		t.Fatalf("batch with queueing allocates %.1f times", allocs)
	}
}

// TestBatchStatsReadWhileRunning: readers load the figures while the
// worker writes them (run with -race).
func TestBatchStatsReadWhileRunning(t *testing.T) {
	r := newRig(t, udpRules)
	frames := udpBatch(t, 8)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = r.w.BatchStats().Batches() + uint64(r.w.BatchStats().NeighQueueDepth())
			_ = r.w.BatchStats().BatchSizes()
		}
	}()
	for range 100 {
		r.w.ProcessBatch(frames)
		r.io.Sent()
	}
	close(stop)
	wg.Wait()
	if got := r.w.BatchStats().BatchSizes(); got != [4]uint64{0, 0, 100, 0} {
		t.Fatalf("sizes %v, want 100 batches of 5-16", got)
	}
}
