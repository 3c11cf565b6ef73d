package director

import (
	"strconv"

	"github.com/uvs-lb/uvs/control"
	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/dataplane/afpacket"
	"github.com/uvs-lb/uvs/dataplane/afxdp"
	"github.com/uvs-lb/uvs/header"
)

// counters reads what uvsadm --counters prints (control.Counters), the
// figures logCounters and logIOStats log at shutdown, while uvsd runs:
// per worker, the data plane's counters by reason, the parse failures by
// reason, the neighbour-queue depth and batches by size, and the packet
// sockets' ring and transmit figures; then the
// connection table's occupancy and pressure, the checkers by state and
// the followed VIPs by owner. It reads the workers' own counters (no
// figure is kept for it on the packet path) and may run concurrently with
// the workers and with every other request.
func (d *Director) counters() control.Counters {
	d.wmu.Lock()
	ws := append(append([]*dataplane.Worker(nil), d.retired...), d.workers...)
	ios := make([]dataplane.PacketIO, len(ws)) // nil: closed
	for io, rw := range d.running {
		for i, w := range ws {
			if w == rw.w {
				ios[i] = io
			}
		}
	}
	d.wmu.Unlock()

	var cs control.Counters
	for i := range ws {
		cs.Workers = append(cs.Workers, control.CounterWorker{ID: i, Running: ios[i] != nil})
	}
	perWorker := func(name string, get func(w *dataplane.Worker) uint64) {
		c := control.Counter{Name: name, Workers: make([]*uint64, len(ws))}
		for i, w := range ws {
			v := get(w)
			c.Total += v
			c.Workers[i] = &v
		}
		cs.Counters = append(cs.Counters, c)
	}
	for k := dataplane.Counter(0); k < dataplane.NumCounters; k++ {
		perWorker("dataplane."+k.String(), func(w *dataplane.Worker) uint64 { return w.Counters.Load(k) })
	}
	for r := header.Reason(1); r < header.NumReasons; r++ {
		perWorker("malformed."+r.String(), func(w *dataplane.Worker) uint64 { return w.Counters.LoadMalformed(r) })
	}
	// Batch figures (dataplane.BatchStats): the neighbour queue's depth
	// after each worker's last batch, and its batches by size; frames
	// per batch is dataplane.rx / worker.batches.
	perWorker("worker.neighbour-queue-depth", func(w *dataplane.Worker) uint64 { return uint64(w.BatchStats().NeighQueueDepth()) })
	perWorker("worker.batches", func(w *dataplane.Worker) uint64 { return w.BatchStats().Batches() })
	lo := 1
	for b, hi := range dataplane.BatchBucketBounds() {
		name := "worker.batches-" + strconv.Itoa(hi)
		if lo < hi {
			name = "worker.batches-" + strconv.Itoa(lo) + "-" + strconv.Itoa(hi)
		}
		perWorker(name, func(w *dataplane.Worker) uint64 { return w.BatchStats().BatchSizes()[b] })
		lo = hi + 1
	}
	cs.Counters = append(cs.Counters, ioCounters(ios)...)
	if fs, ok := d.fastStats(); ok {
		cs.Counters = append(cs.Counters,
			control.Counter{Name: "fastpath.flows", Total: uint64(fs.Flows)},
			control.Counter{Name: "fastpath.packets", Total: fs.Packets},
			control.Counter{Name: "fastpath.installs", Total: fs.Installs},
			control.Counter{Name: "fastpath.install-errors", Total: fs.PutErrors})
	}

	st := d.Conns.Stats()
	for _, c := range []struct {
		name string
		v    uint64
	}{
		{"entries", uint64(d.Conns.Len())}, {"capacity", uint64(d.Conns.Capacity())},
		{"reclaimed", st.Reclaimed}, {"evicted", st.Evicted}, {"full", st.Full},
		{"drop-entry", st.DropEntry}, {"drop-packet", st.DropPacket},
	} {
		cs.Counters = append(cs.Counters, control.Counter{Name: "conntrack." + c.name, Total: c.v})
	}
	var up, down uint64
	for _, c := range d.Checkers() {
		if c.Up {
			up++
		} else {
			down++
		}
	}
	cs.Counters = append(cs.Counters, control.Counter{Name: "checkers.up", Total: up}, control.Counter{Name: "checkers.down", Total: down})
	var master, backup, held, notHeld uint64
	d.haMu.Lock()
	if d.vrrp != nil {
		for _, in := range d.vrrp.insts {
			if in.master {
				master++
			} else {
				backup++
			}
			for _, v := range in.vips {
				if d.vrrp.held[v] {
					held++
				} else {
					notHeld++
				}
			}
		}
	}
	d.haMu.Unlock()
	cs.Counters = append(cs.Counters,
		control.Counter{Name: "vrrp.master", Total: master}, control.Counter{Name: "vrrp.backup", Total: backup},
		control.Counter{Name: "vrrp.vips-held", Total: held}, control.Counter{Name: "vrrp.vips-not-held", Total: notHeld})
	return cs
}

// ioCounters are the packet sockets' figures, one column per worker (nil
// where its socket is closed), with the names logIOStats logs. A backend
// no worker uses is left out. The totals are those of the open sockets:
// a socket closed when interfaces changed counts no more (the shutdown
// log line adds them).
func ioCounters(ios []dataplane.PacketIO) []control.Counter {
	pk := make([]*afpacket.Stats, len(ios))
	xs := make([]*afxdp.Stats, len(ios))
	var anyPK, anyXS bool
	for i, io := range ios {
		switch x := io.(type) {
		case *afpacket.Socket:
			if st, err := x.Stats(); err == nil {
				pk[i], anyPK = &st, true
			}
		case *afxdp.IO:
			if st, err := x.Stats(); err == nil {
				xs[i], anyXS = &st, true
			}
		}
	}
	var out []control.Counter
	if anyPK {
		for _, f := range []struct {
			name string
			get  func(*afpacket.Stats) uint64
		}{
			{"packets", func(s *afpacket.Stats) uint64 { return s.Packets }},
			{"ring-drops", func(s *afpacket.Stats) uint64 { return s.Drops }},
			{"ring-frozen", func(s *afpacket.Stats) uint64 { return s.FreezeQCount }},
			{"read", func(s *afpacket.Stats) uint64 { return s.FramesRead }},
			{"sent", func(s *afpacket.Stats) uint64 { return s.FramesSent }},
			{"truncated", func(s *afpacket.Stats) uint64 { return s.Truncated }},
			{"tx-busy", func(s *afpacket.Stats) uint64 { return s.TxBusy }},
			{"tx-dropped", func(s *afpacket.Stats) uint64 { return s.TxDropped }},
			{"tx-errors", func(s *afpacket.Stats) uint64 { return s.TxErrors }},
		} {
			c := control.Counter{Name: "afpacket." + f.name, Workers: make([]*uint64, len(ios))}
			for i, s := range pk {
				if s != nil {
					v := f.get(s)
					c.Total += v
					c.Workers[i] = &v
				}
			}
			out = append(out, c)
		}
	}
	if anyXS {
		for _, f := range []struct {
			name string
			get  func(*afxdp.Stats) uint64
		}{
			{"read", func(s *afxdp.Stats) uint64 { return s.RxFrames }},
			{"sent", func(s *afxdp.Stats) uint64 { return s.TxFrames }},
			{"tx-busy", func(s *afxdp.Stats) uint64 { return s.TxBusy }},
			{"tx-ring-full", func(s *afxdp.Stats) uint64 { return s.TxRingFull }},
			{"tx-fallback", func(s *afxdp.Stats) uint64 { return s.TxFallback }},
			{"tx-errors", func(s *afxdp.Stats) uint64 { return s.TxErrors }},
			{"rx-super", func(s *afxdp.Stats) uint64 { return s.RxSuper }},
			{"rx-merged", func(s *afxdp.Stats) uint64 { return s.RxMerged }},
			{"tx-gso", func(s *afxdp.Stats) uint64 { return s.TxGSO }},
			{"kernel-rx-dropped", func(s *afxdp.Stats) uint64 { return s.KernelRxDropped }},
			{"kernel-rx-ring-full", func(s *afxdp.Stats) uint64 { return s.KernelRxRingFull }},
			{"kernel-fill-ring-empty", func(s *afxdp.Stats) uint64 { return s.KernelRxFillRingEmpty }},
		} {
			c := control.Counter{Name: "afxdp." + f.name, Workers: make([]*uint64, len(ios))}
			for i, s := range xs {
				if s != nil {
					v := f.get(s)
					c.Total += v
					c.Workers[i] = &v
				}
			}
			out = append(out, c)
		}
	}
	return out
}
