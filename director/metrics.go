package director

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/uvs-lb/uvs/connsync"
	"github.com/uvs-lb/uvs/connsync/wire"
	"github.com/uvs-lb/uvs/control"
	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/ipvsadm"
	"github.com/uvs-lb/uvs/metrics"
)

// serveMetrics serves --metrics (Config.Metrics) until the returned stop
// is called (or ctx is done); without it, it does nothing. Run calls it
// once the workers run: every reader below reads what Run has set up.
func (d *Director) serveMetrics(ctx context.Context) (stop func()) {
	ln := d.cfg.Metrics
	if ln == nil {
		return func() {}
	}
	src := d.metricsSources()
	h := metrics.Handler(metrics.NewRegistry(src), src)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := metrics.Serve(ctx, ln, h); err != nil && ctx.Err() == nil {
			d.log.Error("metrics endpoint "+ln.Addr().String(), errField(err))
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// metricsSources are the readers of the metrics endpoint: where uvsadm,
// the shutdown log lines and --list-checkers read the same figures.
func (d *Director) metricsSources() metrics.Sources {
	src := metrics.Sources{
		// The listing uvsadm -Ln --stats prints (no rates: Prometheus
		// computes its own).
		Services: func() []ipvsadm.ServiceView { return control.Views(d.State, nil) },
		Workers:  d.Workers, // those stopped when AF_XDP sockets were reopened first
		Conns:    d.Conns,
		ConnsNow: func() int64 { return int64(time.Since(d.epoch)) },
		IO:       d.ioCounters,
		Checkers: d.Checkers,
		VRRP:     d.vrrpInstances,
		Sync:     d.syncCounters,
		FastPath: d.fastStats,
		Healthy:  d.healthy,
		Ready:    d.readyErr,
	}
	if d.env != nil {
		src.Ports = d.env.Ports
	}
	return src
}

// ioCounters are the totals of the running workers' socket counters,
// as uvsadm --counters prints them (ioCounters in counters.go), with the
// backend and the counter's name apart (the sockets of retired workers
// are closed and count no more).
func (d *Director) ioCounters() []metrics.IOCounter {
	d.wmu.Lock()
	ios := make([]dataplane.PacketIO, 0, len(d.running))
	for io := range d.running {
		ios = append(ios, io)
	}
	d.wmu.Unlock()
	cs := ioCounters(ios)
	out := make([]metrics.IOCounter, 0, len(cs))
	for _, c := range cs {
		backend, name, _ := strings.Cut(c.Name, ".")
		out = append(out, metrics.IOCounter{Backend: backend, Name: name, Value: c.Total})
	}
	return out
}

// vrrpInstances are the followed VRRP instances with their roles.
func (d *Director) vrrpInstances() []metrics.VRRPInstance {
	d.haMu.Lock()
	defer d.haMu.Unlock()
	if d.vrrp == nil {
		return nil
	}
	out := make([]metrics.VRRPInstance, 0, len(d.vrrp.insts))
	for _, in := range d.vrrp.insts {
		mi := metrics.VRRPInstance{Name: in.name, Master: in.master}
		for _, v := range in.vips {
			mi.VIPs = append(mi.VIPs, metrics.VRRPVIP{Addr: v.addr.String(), Device: v.dev, Held: d.vrrp.held[v]})
		}
		out = append(out, mi)
	}
	return out
}

// syncCounters are the running sync daemons' counters.
func (d *Director) syncCounters() []metrics.SyncDaemon {
	if d.syncd == nil {
		return nil
	}
	s := d.syncd
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []metrics.SyncDaemon
	for _, rd := range []*runningDaemon{s.master, s.backup} {
		if rd == nil {
			continue
		}
		sd := metrics.SyncDaemon{State: rd.cfg.State, Ifname: rd.cfg.McastIfn, SyncID: rd.cfg.SyncID}
		c := func(name string, v uint64) {
			sd.Counters = append(sd.Counters, metrics.SyncCounter{Name: name, Value: v})
		}
		switch x := rd.r.(type) {
		case *connsync.Master:
			st := x.Stats()
			c("messages", st.Messages)
			c("entries", st.Entries)
			c("bytes", st.Bytes)
			c("send-errors", st.SendErrors)
			c("skipped", st.Skipped)
			c("discarded", st.Discarded)
			c("ring-drops", st.RingDrops)
		case *connsync.Backup:
			st := x.Stats()
			c("messages", st.Messages)
			c("applied", st.Applied)
			c("wrong-syncid", st.WrongSyncID)
			c("read-errors", st.ReadErrors)
			for r, v := range st.Rejected {
				if r == int(wire.ReasonNone) {
					continue
				}
				sd.Counters = append(sd.Counters, metrics.SyncCounter{Name: "rejected", Reason: wire.Reason(r).String(), Value: v})
			}
		}
		out = append(out, sd)
	}
	return out
}

// healthy is /healthz: the process answers and no packet worker has
// stopped on its own (a worker that stops with an error stops uvsd).
func (d *Director) healthy() error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if d.stopping.Load() {
		return errors.New("stopping")
	}
	for _, rw := range d.running {
		select {
		case <-rw.end:
			return errors.New("a packet worker stopped")
		default:
		}
	}
	return nil
}

// readyErr is /readyz: the kernel hooks are installed, the configuration
// is loaded (a snapshot published), and at least one interface is served
// by a running worker.
func (d *Director) readyErr() error {
	if !d.ready.Load() {
		return errors.New("starting")
	}
	if d.stopping.Load() {
		return errors.New("stopping")
	}
	if d.snap.Load() == nil {
		return errors.New("no configuration loaded")
	}
	if h := d.host.Load(); h == nil || len(h.Ifaces) == 0 {
		return errors.New("no interface served")
	}
	d.wmu.Lock()
	n := len(d.running)
	d.wmu.Unlock()
	if n == 0 {
		return fmt.Errorf("no packet worker running")
	}
	return d.healthy()
}
