package dataplane

import (
	"fmt"
	"reflect"
	"unsafe"

	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/ipfrag"
)

// ResetForFuzz returns w to the state NewWorker(io, env) gives a new
// worker, keeping the buffers NewWorker allocated: the batch slots, the
// control frames, the segment slab and the slabs of the neighbour queue
// and of reassembly (about 1.7 MB, zeroed by every NewWorker: most of a
// worker fuzz target's execution), and the reassembler (ipfrag.Reset) when
// the memory configured is the same. Those buffers keep their bytes, as a
// running worker's do from one batch to the next: the worker writes each
// before it reads it. Everything else is as NewWorker leaves it;
// TestResetForFuzz compares a reset worker with a new one field by field
// (WorkerStateDiff) and their output on the same frames. For the fuzz targets only: env must be a new Env (it holds
// state shared by its workers).
//
// It follows NewWorker step by step: a change there is to be made here too
// (TestResetForFuzz fails until it is).
func (w *Worker) ResetForFuzz(io PacketIO, env *Env) {
	in, out, ctl, slab := w.in, w.out[:0], w.ctl, w.slab
	pq := w.pq
	fslab, refilled, w0frag := w.frag.slab, w.frag.refilled[:0], w.frag.r
	*w = Worker{io: io, env: env, in: in, out: out, ctl: ctl, slab: slab}
	clear(in)
	clear(out[:cap(out)]) // frames of the last input: let them go
	w.tmpl = conntrack.NewSchedTemplates(env.Conns, env.Epoch)
	if env.tunPMTU == nil {
		env.tunPMTU = &pmtuTable{}
	}
	timeout := env.NeighTimeout
	if timeout <= 0 {
		timeout = DefaultNeighTimeout
	}
	// neighQueue.init, on the slots it made.
	for i := range pq.ents {
		pq.ents[i] = pending{buf: pq.ents[i].buf, large: i >= NeighQueueSmall}
	}
	pq.freeS, pq.freeL = pq.freeS[:0], pq.freeL[:0]
	for i := NeighQueueSmall - 1; i >= 0; i-- {
		pq.freeS = append(pq.freeS, int32(i))
	}
	for i := NeighQueueLarge - 1; i >= 0; i-- {
		pq.freeL = append(pq.freeL, int32(NeighQueueSmall+i))
	}
	clear(pq.order)
	clear(pq.addrs)
	clear(pq.rel[:cap(pq.rel)])
	pq.rel = pq.rel[:0]
	pq.n, pq.na, pq.creates = 0, 0, 0
	pq.timeout = int64(timeout)
	w.pq = pq
	// fragState.init, on the slab it made.
	mem := env.FragMemory
	if mem <= 0 {
		mem = DefaultFragMemory
	}
	mem = min(max(mem, ipfrag.MinMemory), ipfrag.MaxMemory)
	r := w0frag
	if r != nil && r.Config().Memory == mem {
		r.Reset() // as new, keeping its memory (a new one's 256 KB or more, zeroed, were a fifth of an execution)
	} else {
		var err error
		if r, err = ipfrag.New(ipfrag.Config{Memory: mem}); err != nil {
			panic("dataplane: reassembly memory: " + err.Error())
		}
	}
	clear(refilled[:cap(refilled)])
	w.frag = fragState{r: r, slab: fslab, refilled: refilled}
	w.pts, _ = io.(PollTimeoutSetter)
	if env.Sync != nil {
		w.ring = env.Sync.NewRing()
	}
}

// WorkerStateDiff names the first field in which a and b differ, "" when
// none does: every field compared with reflect.DeepEqual, except the
// bytes of the buffers the worker writes before reading, the reassemblers'
// data blocks among them (cleared in both first: this spoils both workers'
// buffers), and the reassemblers' random hash seeds (their state is
// compared with the seeds made equal).
func WorkerStateDiff(a, b *Worker) string {
	for _, w := range []*Worker{a, b} {
		for _, c := range w.ctl {
			clear(c)
		}
		clear(w.slab)
		clear(w.frag.slab)
		for i := range w.pq.ents {
			clear(w.pq.ents[i].buf)
		}
	}
	ra, rb := a.frag.r, b.frag.r
	if ra == nil || rb == nil {
		if ra != rb {
			return "frag.r"
		}
	} else {
		seedA, seedB := reflect.ValueOf(ra).Elem().FieldByName("seed"), reflect.ValueOf(rb).Elem().FieldByName("seed")
		if !seedA.IsValid() {
			return "frag.r: no seed field (WorkerStateDiff is out of date)"
		}
		for _, r := range []*ipfrag.Reassembler{ra, rb} {
			// Data blocks: written before they are read (ipfrag.Reset).
			blocks := reflect.ValueOf(r).Elem().FieldByName("blocks")
			if !blocks.IsValid() {
				return "frag.r: no blocks field (WorkerStateDiff is out of date)"
			}
			clear(*(*[]byte)(unsafe.Pointer(blocks.UnsafeAddr())))
		}
		pa, pb := (*uint64)(unsafe.Pointer(seedA.UnsafeAddr())), (*uint64)(unsafe.Pointer(seedB.UnsafeAddr()))
		sa := *pa
		*pa = *pb
		eq := reflect.DeepEqual(ra, rb)
		*pa = sa
		if !eq {
			return "frag.r"
		}
	}
	a.frag.r, b.frag.r = nil, nil
	defer func() { a.frag.r, b.frag.r = ra, rb }()
	va, vb := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	for i := range va.NumField() {
		fa, fb := va.Field(i), vb.Field(i)
		ia := reflect.NewAt(fa.Type(), unsafe.Pointer(fa.UnsafeAddr())).Interface()
		ib := reflect.NewAt(fb.Type(), unsafe.Pointer(fb.UnsafeAddr())).Interface()
		if !reflect.DeepEqual(ia, ib) {
			return fmt.Sprintf("%s (%v)", va.Type().Field(i).Name, fa.Type())
		}
	}
	return ""
}
