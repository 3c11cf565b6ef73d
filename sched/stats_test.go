package sched

import (
	"sync"
	"testing"
)

// TestStatsBlocks: the counters are the sum of every worker's block and
// of the shared atomics; -Z is a zero point; a block grows to slots handed
// out after it was made without losing counts; a Stats of another
// registry, or without a slot, counts in its shared atomics.
func TestStatsBlocks(t *testing.T) {
	r := NewStatsRegistry()
	svc := new(Stats)
	d := NewDest(dcfg("10.0.0.1:80", 1))
	r.Assign(&d.Stats, svc)
	b1, b2 := r.NewBlock(), r.NewBlock()
	b1.Conn(svc, d)
	b1.In(d, 100)
	b2.In(d, 50)
	b2.Out(d, 10)
	if got := d.Stats.Load(); got != (Counts{}) {
		t.Fatalf("visible before Publish: %+v", got)
	}
	b1.Publish()
	b2.Publish()
	want := Counts{Conns: 1, InPkts: 2, OutPkts: 1, InBytes: 150, OutBytes: 10}
	if got := d.Stats.Load(); got != want {
		t.Fatalf("dest %+v, want %+v", got, want)
	}
	if got := svc.Load(); got != want {
		t.Fatalf("service %+v, want %+v", got, want)
	}

	// -Z: the current sum becomes the zero point; counting goes on.
	d.Stats.Zero()
	b1.In(d, 7)
	b1.Publish()
	if got := d.Stats.Load(); got != (Counts{InPkts: 1, InBytes: 7}) {
		t.Fatalf("after -Z: %+v", got)
	}
	if got := svc.Load(); got.InPkts != 3 {
		t.Fatalf("zeroing the dest zeroed its service: %+v", got)
	}

	// A destination assigned after the blocks were made: counted in the
	// shared atomics until the block grows, in the block afterwards.
	d2 := NewDest(dcfg("10.0.0.2:80", 1))
	r.Assign(&d2.Stats, svc)
	b1.In(d2, 1)
	b1.Grow()
	b1.In(d2, 1)
	b1.Publish()
	if got := d2.Stats.Load(); got != (Counts{InPkts: 2, InBytes: 2}) {
		t.Fatalf("dest added later: %+v", got)
	}
	if got := svc.Load(); got.InPkts != 5 {
		t.Fatalf("service after the new dest: %+v", got)
	}

	// Another registry's Stats must not be counted in this block's cells.
	other := NewStatsRegistry()
	d3 := NewDest(dcfg("10.0.0.3:80", 1))
	other.Assign(&d3.Stats, nil)
	b1.In(d3, 1)
	b1.Publish()
	if got := d3.Stats.Load(); got.InPkts != 1 {
		t.Fatalf("foreign stats: %+v", got)
	}
	if got := d.Stats.Load(); got.InPkts != 1 {
		t.Fatalf("foreign stats counted elsewhere: dest now %+v", got)
	}
	// A nil block counts in the shared atomics.
	var nb *StatsBlock
	nb.In(d, 3)
	nb.Publish()
	if got := d.Stats.Load(); got.InPkts != 2 || got.InBytes != 10 {
		t.Fatalf("nil block: %+v", got)
	}
}

// TestStatsConcurrent: workers count while readers sum and blocks are
// added (run with -race).
func TestStatsConcurrent(t *testing.T) {
	r := NewStatsRegistry()
	svc := new(Stats)
	d := NewDest(dcfg("10.0.0.1:80", 1))
	r.Assign(&d.Stats, svc)
	const workers, n = 4, 10000
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := r.NewBlock()
			for i := range n {
				b.In(d, 2)
				if i%64 == 63 {
					b.Publish()
					b.Grow()
				}
			}
			b.Publish()
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 1000 {
			_ = svc.Load()
			r.Assign(new(Stats), svc) // new slots while they count
		}
	}()
	wg.Wait()
	if got := svc.Load(); got.InPkts != workers*n || got.InBytes != 2*workers*n {
		t.Fatalf("service %+v, want %d packets", got, workers*n)
	}
}

// BenchmarkStatsIn is the per-packet cost of counting a request in a
// destination and its service: -cpu 1,2 runs one or two workers on one
// destination, each with its own block ("block"), against one shared
// atomic add per counter ("shared", what the workers did before).
func BenchmarkStatsIn(b *testing.B) {
	b.Run("block", func(b *testing.B) {
		r := NewStatsRegistry()
		svc := new(Stats)
		d := NewDest(dcfg("10.0.0.1:80", 1))
		r.Assign(&d.Stats, svc)
		b.RunParallel(func(pb *testing.PB) {
			blk := r.NewBlock()
			for i := 0; pb.Next(); i++ {
				blk.In(d, 100)
				if i&63 == 63 {
					blk.Publish()
				}
			}
			blk.Publish()
		})
	})
	b.Run("shared", func(b *testing.B) {
		d := NewDest(dcfg("10.0.0.1:80", 1))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				d.Stats.direct[cntInPkts].Add(1)
				d.Stats.direct[cntInBytes].Add(100)
			}
		})
	})
}
