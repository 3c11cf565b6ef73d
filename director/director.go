// Package director assembles uvsd: the control plane, the connection table,
// the packet-I/O workers, the kernel hooks and the next-hop resolver, and
// runs them until told to stop.
package director

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/uvs-lb/uvs/bgp"
	"github.com/uvs-lb/uvs/connsync"
	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/control"
	"github.com/uvs-lb/uvs/control/wire"
	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/dataplane/afpacket"
	"github.com/uvs-lb/uvs/dataplane/afxdp"
	"github.com/uvs-lb/uvs/dataplane/khook"
	"github.com/uvs-lb/uvs/dataplane/neigh"
	"github.com/uvs-lb/uvs/director/lports"
	"github.com/uvs-lb/uvs/fwmark"
	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/ipfrag"
	"github.com/uvs-lb/uvs/ipvsadm"
	"github.com/uvs-lb/uvs/keepalived"
	"github.com/uvs-lb/uvs/ownership"
	"github.com/uvs-lb/uvs/sched"
	"github.com/uvs-lb/uvs/snapshot"
	"github.com/uvs-lb/uvs/spec"
)

// Config configures a director.
type Config struct {
	// RulesFile is an ipvsadm-save format file applied at start ("" = none).
	RulesFile string
	// Interfaces to serve; empty means every up, non-loopback interface.
	// Named interfaces need not exist yet: each is served while it exists
	// and is up.
	Interfaces []string
	// Workers is the number of packet workers (0: one per RX queue of the
	// served interfaces, at most the number of CPUs).
	Workers int
	// ConnCapacity bounds the connection table (0: 1<<20).
	ConnCapacity int
	// Control enables the control socket (uvsadm) under this abstract name
	// ("" disables it).
	ControlSocket string
	// LocalPortMin/Max is the FULLNAT local port range (0: defaults).
	LocalPortMin, LocalPortMax uint16
	// Trace receives scheduling decisions (uvs-lab); nil in production.
	Trace func(svc *snapshot.Service, client netip.AddrPort, d *sched.Dest, why *sched.Reason)
	// Ready, if set, is called once the workers are running.
	Ready func(*Director)
	// IO is the packet-I/O backend: IOAFPacket ("" too), IOAFXDP or
	// IOAuto.
	IO string
	// XDPMode is how the AF_XDP backend attaches its XDP program.
	XDPMode afxdp.Mode
	// NoFastPath keeps every packet in the workers on the AF_XDP
	// backend: no flow is forwarded by the XDP program itself
	// (uvsd --fast-path=false; fast.go).
	NoFastPath bool
	// KeepRx leaves the served interfaces' receive processing as it is
	// on the AF_PACKET backend (uvsd --rx-threads=false); by default it
	// moves into NAPI threads (napi_linux.go).
	KeepRx bool
	// Keepalived, when set, is a keepalived.conf whose start-up table New
	// installs and whose health checkers Run runs (keepalived.go).
	Keepalived *keepalived.Config
	// VRRP, when set, is a keepalived.conf whose vrrp_instance VIPs uvsd
	// follows (vrrp.go): it serves such a VIP only while the address is
	// configured on its device, and its lvs_sync_daemon drives the sync
	// daemons. Nil means Keepalived's instances, if any.
	VRRP *keepalived.Config
	// Sysctls are the kernel IPVS sysctls uvsd honours (nil: the
	// kernel's defaults).
	Sysctls *Sysctls
	// Metrics, when set, is the listener of the Prometheus endpoint
	// (--metrics; metrics.go): Run serves /metrics, /healthz and
	// /readyz on it once the workers run, and closes it.
	Metrics net.Listener
	// BGP, when set, announces the served VIPs to routers (bgp.go);
	// BGPGrace is how long the workers keep forwarding after the
	// withdrawal on shutdown.
	BGP      *bgp.Config
	BGPGrace time.Duration
	// SortHashDests builds mh and sh tables from the real servers
	// sorted by address and port (sched.Options.SortHashDests), so
	// directors agree whatever order the real servers were added in.
	SortHashDests bool
}

// Director is a running uvsd.
type Director struct {
	cfg     Config
	log     *zap.Logger
	State   *control.State
	Conns   *conntrack.Table
	snap    atomic.Pointer[snapshot.Snapshot]
	host    atomic.Pointer[dataplane.Host]
	hops    *neigh.Resolver
	hooks   *khook.Hooks
	sockets []*afpacket.Socket
	lports  *lportSaver // FULLNAT local port positions across restarts (lportstate.go)
	xdp     *afxdp.Program
	// fast and fastMap are the XDP program's fast path (nil: none).
	fast    *dataplane.FastPath
	fastMap *afxdp.FastMap
	fastRef atomic.Pointer[dataplane.FastPath] // fast, for readers on other goroutines
	xios    []*afxdp.IO
	backend string
	epoch   time.Time
	// xgroups are the AF_XDP socket groups (followXDP); xdpFailed the
	// interface set that failed to open last.
	xgroups   []*xdpGroup
	xdpFailed string
	// xstatsClosed sums the counters of the AF_XDP sockets closed so far.
	xstatsClosed afxdp.Stats

	// The packet workers: env is what they share; workers the running
	// ones, running their I/O and end, retired those of closed AF_XDP
	// sockets (kept for their counters); gen counts the running. wmu
	// guards workers, running and retired; failed takes the first worker
	// error.
	env     *dataplane.Env
	wmu     sync.Mutex
	workers []*dataplane.Worker
	running map[dataplane.PacketIO]runningWorker
	retired []*dataplane.Worker
	gen     sync.WaitGroup
	failed  chan error
	// links is signalled by the rtnetlink watcher when links or
	// addresses change.
	links chan struct{}

	changed chan struct{}
	// gate holds a new snapshot until its ownership is published
	// (applied.go).
	gate applyGate
	// ka runs the checkers of Config.Keepalived (nil without it).
	ka *kaRunner
	// routeSources are the FULLNAT local addresses of services without
	// a pool: the route's source towards each FULLNAT real server, as
	// sync resolved them.
	routeSources []netip.Addr

	// Firewall marks: the classifier compiled from the mangle table, the
	// text it came from, and what the MARK rules select.
	marks       atomic.Pointer[fwmark.Classifier]
	markTables  fwmark.Tables
	markTargets atomic.Pointer[[]markTarget]
	markErr     string

	// owned is what the owners (owners.go) were last given, on the
	// interfaces of ownedLayout.
	owned       *ownership.Set
	ownedLayout string

	// High availability: the followed VRRP instances (vrrp.go) and the
	// sync daemons (syncd.go). haMu guards vrrp, standby, backupOnly and
	// garpPending; refreshHost copies standby and backupOnly into every
	// Host it builds. lvsMu guards lvsSync and lvsActive and serialises
	// lvs_sync_daemon's switches; applyMu serialises role updates. Lock
	// order: applyMu, lvsMu, haMu.
	vrrp        *vrrpRoles
	addrs       addrWatcher
	applyMu     sync.Mutex
	lvsMu       sync.Mutex
	haMu        sync.Mutex
	standby     map[[16]byte]bool
	backupOnly  bool
	garpPending []vrrpVIP
	haChanged   chan struct{}
	newSender   func() (frameSender, error)
	garpDelay   time.Duration
	sysctls     Sysctls
	tap         *connsync.Tap
	syncd       *syncDaemons
	syncFactory syncFactory
	lvsSync     *lvsSync
	lvsActive   bool

	// ready is set once Run serves (/readyz), stopping once it stops.
	ready, stopping atomic.Bool

	// bgp announces the VIPs (bgp.go).
	bgp bgpState
}

// LoadRules parses a rules file (ipvsadm save format).
func LoadRules(path string) ([]ipvsadm.Command, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ipvsadm.ParseRules(f, path)
}

// New prepares a director: it loads the rules and builds the control plane
// and connection table, but touches no socket or kernel state yet.
func New(cfg Config, log *zap.Logger) (*Director, error) {
	d := &Director{cfg: cfg, log: log, epoch: time.Now(), changed: make(chan struct{}, 1),
		failed: make(chan error, 1), links: make(chan struct{}, 1), running: map[dataplane.PacketIO]runningWorker{},
		haChanged: make(chan struct{}, 1), addrs: newAddrWatcher(), newSender: openSender, garpDelay: garpDelay, sysctls: DefaultSysctls()}
	if cfg.Sysctls != nil {
		d.sysctls = *cfg.Sysctls
	}
	vc := cfg.VRRP
	if vc == nil {
		vc = cfg.Keepalived
	}
	lo, hi, err := lports.Choose(cfg.LocalPortMin, cfg.LocalPortMax)
	if err != nil {
		return nil, err
	}
	d.cfg.LocalPortMin, d.cfg.LocalPortMax = lo, hi
	log.Info("FULLNAT local ports", zap.Uint16("min", lo), zap.Uint16("max", hi))
	d.vrrp = newVRRPRoles(vc)
	if vc != nil {
		ls, err := newLVSSync(vc.SyncDaemon, vc.VRRP)
		if err != nil {
			log.Warn(err.Error())
		}
		d.lvsSync = ls
	}
	d.syncFactory = connsyncFactory{d: d}
	capacity := cfg.ConnCapacity
	if capacity == 0 {
		capacity = 1 << 20
	}
	ct, err := conntrack.New(conntrack.Config{Capacity: capacity})
	if err != nil {
		return nil, fmt.Errorf("connection table: %w", err)
	}
	d.Conns = ct
	if err := ct.SetDefense(d.sysctls.Defense); err != nil {
		return nil, fmt.Errorf("--sysctl: %w", err)
	}
	d.State = control.New(control.Options{
		Sched: sched.Options{SortHashDests: cfg.SortHashDests},
		Publish: func(s *snapshot.Snapshot) {
			d.offerSnapshot(s)
			select {
			case d.changed <- struct{}{}:
			default:
			}
		},
		OnTimeouts: func(t control.Timeouts) { ct.SetTimeouts(t.TCP, t.TCPFin, t.UDP) },
	})
	if cfg.RulesFile != "" {
		cmds, err := LoadRules(cfg.RulesFile)
		if err != nil {
			return nil, err
		}
		if err := d.State.ApplyAll(cmds); err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.RulesFile, err)
		}
	}
	if cfg.Keepalived != nil {
		if err := d.State.ApplyAll(cfg.Keepalived.Commands()); err != nil {
			return nil, fmt.Errorf("keepalived configuration: %w", err)
		}
		d.ka = newKeepalived(cfg.Keepalived, d.State, log, kaOptions{})
	}
	return d, nil
}

// Run serves until ctx is done, then removes everything it installed. It
// starts with whatever interfaces are there, none included, and follows
// them as they come and go. A packet worker that stops with an error stops
// the director: Run removes everything and returns that error.
func (d *Director) Run(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			err = oneLineError{err}
		}
	}()
	// Whatever Run started stops when it returns, a worker's failure
	// included.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d.hops, err = neigh.New(neigh.Options{})
	if err != nil {
		return fmt.Errorf("next-hop resolver: %w", err)
	}
	defer d.hops.Close()
	// The sync daemons' tap: the workers report connections to it, a
	// master daemon drains it.
	d.tap = connsync.NewTap()
	d.tap.SetPolicy(d.sysctls.Policy)
	d.syncd = newSyncDaemons(ctx, d.syncFactory, d.log, d.daemonsChanged)
	defer d.syncd.stopAll()
	watchVRRP, err := d.followVRRP(d.addrs)
	if err != nil {
		return err
	}
	if err := d.refreshHost(); err != nil {
		return err
	}
	if len(d.host.Load().Ifaces) == 0 {
		// ipvsadm-restore at boot runs before the network is up: take
		// the rules now and serve the interfaces when they come.
		d.log.Warn("no interface to serve yet (none up, or none of --iface): waiting for one", zap.Strings("iface", d.cfg.Interfaces))
	}
	// serve starts answering the control socket; Run calls it once the
	// workers run, so a director that answers uvsadm forwards packets.
	serve := func() {}
	if d.cfg.ControlSocket != "" {
		// Bind the control socket first: a second director in the same
		// namespace stops here, before touching any interface. Requests
		// that arrive before serve wait in the listen backlog.
		ln, err := control.Listen(d.cfg.ControlSocket)
		if err != nil {
			return err // it names the socket and who holds it
		}
		defer ln.Close() // serve takes it over; this covers an early return
		est := control.NewEstimator(d.State)
		go est.Run(ctx, nil)
		srv := control.NewServer(d.State, control.Env{
			Rates:    est,
			Conns:    func() []conntrack.Listing { return d.Conns.Snapshot(int64(time.Since(d.epoch)), nil) },
			Checkers: d.Checkers,
			LaddrConflicts: func(a netip.Addr) uint64 {
				if e := d.env; e != nil && e.Ports != nil {
					return e.Ports.Conflicts(a)
				}
				return 0
			},
			Daemons:  d.syncd,
			Counters: d.counters,
		})
		audit := auditControl(d.log)
		srv.Audit = func(c wire.Cred, prog string, args []string, code int) {
			// uvsadm returns once the change reaches the workers.
			if !d.waitApplied() {
				d.log.Warn("uvsadm answered before its change reached the workers", zap.Duration("waited", applyWait))
			}
			audit(c, prog, args, code)
		}
		serve = func() {
			go func() {
				if err := srv.ServeListener(ctx, ln); err != nil && ctx.Err() == nil {
					d.log.Error("control socket", errField(err))
				}
			}()
		}
	}
	d.hooks = khook.New(khook.Options{})
	// Interfaces that appear later inherit conf.default's settings.
	names := d.servedNames()
	if err := d.hooks.SetSysctls(khook.RecommendedSysctls(names...)...); err != nil {
		d.log.Warn("sysctls", errField(err))
	}
	defer func() {
		if rerr := d.hooks.Remove(); rerr != nil {
			d.log.Error("removing kernel hooks", errField(rerr))
			err = errors.Join(err, rerr)
		}
	}()
	d.gateStart()
	defer d.gateStop()
	first := d.takeSnapshot()
	d.prefetch()
	d.refreshMarks(ctx)
	if err := d.sync(); err != nil {
		return err
	}
	d.applySnapshot(first)
	if err := d.hooks.Fallback(); err != nil {
		d.log.Warn("kernel hooks not owned by the process: after a crash, uvsd --cleanup removes them", errField(err))
	}

	// The BGP sessions come up now; the VIPs are announced once the
	// workers serve.
	stopBGP, err := d.startBGP(ctx)
	if err != nil {
		return err
	}
	defer stopBGP()

	d.env = &dataplane.Env{
		Marks: &d.marks,
		Snap:  &d.snap,
		Host:  &d.host,
		Conns: d.Conns,
		Hops:  hopAdapter{r: d.hops, host: &d.host},
		Now:   time.Now,
		Epoch: d.epoch,
		Ports: d.newPorts(), // where the previous uvsd left them (lportstate.go)
		Trace: d.cfg.Trace,
		Sync:  d.tap,
		// sloppy_tcp/sloppy_sctp from --sysctl.
		SloppyTCP:  d.sysctls.SloppyTCP,
		SloppySCTP: d.sysctls.SloppySCTP,
		// The kernel's ICMP limit is for the host; the workers share it
		// (there is at most one worker per CPU).
		ICMPLimit: dataplane.ICMPLimit{Workers: runtime.NumCPU()},
		// ipfrag_high_thresh is for the host too: each worker
		// reassembles in its share (clamped to hold a whole datagram).
		FragMemory: ipfrag.DefaultMemory / runtime.NumCPU(),
	}
	defer d.setupLocalNode(d.env)()
	ios, err := d.openIO()
	if err != nil {
		return err
	}
	defer d.releaseIO()
	defer d.threadRx()() // AF_PACKET, AF_XDP fast path: receive processing in NAPI threads (napi_linux.go)
	d.startWorkers(ios)
	d.log.Info("serving", zap.Strings("interfaces", names), zap.Int("workers", len(ios)),
		zap.Int("services", len(d.State.Services())), zap.String("io", d.backend))
	go func() {
		if err := watchLinks(ctx, d.linksChanged); err != nil && ctx.Err() == nil {
			d.log.Warn("not notified of interface changes, following them every 2s", errField(err))
		}
	}()
	if watchVRRP != nil {
		go watchVRRP(ctx)
	}
	d.startLVSSync()
	serve()
	stopMetrics := d.serveMetrics(ctx)
	defer stopMetrics()
	checkers := d.startKeepalived(ctx)
	d.ready.Store(true)
	d.syncBGP()
	if d.cfg.Ready != nil {
		d.cfg.Ready(d)
	}
	werr := d.housekeeping(ctx)
	d.stopping.Store(true)
	// Withdraw first and keep forwarding while the routers move the
	// flows elsewhere.
	stopBGP()
	checkers()
	d.logIOStats()
	d.closeIO()
	d.stopWorkers()
	d.saveLports(true)
	d.logCounters()
	if werr != nil {
		return werr // logged once by the caller, after the hooks are removed
	}
	d.log.Info("stopped")
	return nil
}

// startWorkers starts one packet worker per io. Worker numbers continue
// over the AF_XDP socket groups, so a log line names one worker. The
// first worker to stop with an error stops the director (housekeeping
// returns it).
//
// Workers are not pinned to CPUs: a worker confined to one CPU cannot
// leave it when other processes load that CPU, and the frames in its
// ring wait with it. On a 2-core machine shared with benchmarks at nice
// -20, a pinned worker's thread waited in its run queue for most of
// whole seconds while the other worker served at once: a first SYN-ACK
// sat 2.2 s in its ring (e2e TestFirstSYN, TestWorkersNotPinned).
func (d *Director) startWorkers(ios []dataplane.PacketIO) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	backend := d.backend
	for _, io := range ios {
		wio := io
		if testWorkerIO != nil {
			wio = testWorkerIO(io)
		}
		w := dataplane.NewWorker(wio, d.env)
		pos := len(d.workers) // the position among the running workers
		id := len(d.retired) + pos
		d.workers = append(d.workers, w)
		end := make(chan struct{})
		d.running[io] = runningWorker{w: w, end: end}
		d.gen.Add(1)
		go func() {
			defer d.gen.Done()
			defer close(end)
			if err := w.Run(); err != nil {
				select {
				case d.failed <- fmt.Errorf("packet worker %d (%s) stopped: %w", id, backend, err):
				default: // another worker failed first
				}
			}
		}()
	}
}

// testWorkerIO, set only by tests, wraps each worker's packet I/O (to make
// a worker fail).
var testWorkerIO func(dataplane.PacketIO) dataplane.PacketIO

// runningWorker is a running worker and what is closed when it returns.
type runningWorker struct {
	w   *dataplane.Worker
	end chan struct{}
}

// retireWorkers waits for the workers of ios, which the caller closed, and
// retires them.
func (d *Director) retireWorkers(ios []dataplane.PacketIO) {
	for _, io := range ios {
		d.wmu.Lock()
		rw, ok := d.running[io]
		d.wmu.Unlock()
		if !ok {
			continue
		}
		<-rw.end
		d.wmu.Lock()
		delete(d.running, io)
		d.workers = slices.DeleteFunc(d.workers, func(w *dataplane.Worker) bool { return w == rw.w })
		d.retired = append(d.retired, rw.w)
		d.wmu.Unlock()
	}
}

// stopWorkers waits for the running workers, whose packet I/O closeIO
// closed, and retires them.
func (d *Director) stopWorkers() {
	d.gen.Wait()
	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.retired = append(d.retired, d.workers...)
	d.workers = nil
	clear(d.running)
}

// Workers returns the packet workers, those running and those stopped
// when the AF_XDP sockets were reopened (for counters).
func (d *Director) Workers() []*dataplane.Worker {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	return append(slices.Clip(d.retired), d.workers...)
}

// linksChanged tells housekeeping that links or addresses changed.
func (d *Director) linksChanged() {
	select {
	case d.links <- struct{}{}:
	default:
	}
}

// servedNames returns the names of the served interfaces, sorted.
func (d *Director) servedNames() []string {
	names := []string{}
	for _, ifc := range d.host.Load().Ifaces {
		names = append(names, ifc.Name)
	}
	slices.Sort(names)
	return names
}

// followHost lists the interfaces and addresses again and applies them:
// the kernel hooks and packet filters first (they cover a new interface
// at once), then the AF_XDP sockets.
func (d *Director) followHost(why string) {
	before := d.servedNames()
	if err := d.refreshHost(); err != nil {
		d.log.Warn("refreshing interfaces", errField(err))
	}
	if err := d.publish(); err != nil {
		d.log.Error("applying the director's "+why+" to the kernel hooks and packet filters", errField(err))
	}
	if after := d.servedNames(); !slices.Equal(before, after) {
		d.log.Info("served interfaces changed", zap.Strings("interfaces", after))
	}
	d.followXDP()
	d.growAFPacket()
}

// oneLine returns err's message on one line (errors.Join separates with
// newlines): what an operator reads is one log line.
func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

// errField is zap.Error with the message on one line.
func errField(err error) zap.Field { return zap.String("error", oneLine(err)) }

// oneLineError is an error whose message is on one line.
type oneLineError struct{ err error }

func (e oneLineError) Error() string { return oneLine(e.err) }
func (e oneLineError) Unwrap() error { return e.err }

// Epoch anchors the connection table's clock.
func (d *Director) Epoch() time.Time { return d.epoch }

// housekeeping reaps connections, ticks the schedulers, follows
// configuration changes and interface changes until ctx is done or a
// worker fails (whose error it returns).
func (d *Director) housekeeping(ctx context.Context) error {
	reap := time.NewTicker(100 * time.Millisecond)
	defer reap.Stop()
	fast := time.NewTicker(dataplane.FastPathPoll)
	defer fast.Stop()
	slow := time.NewTicker(2 * time.Second)
	defer slow.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-d.failed:
			return err
		case <-d.links:
			d.followHost("interfaces and addresses")
			d.flushFastPath()
		case <-fast.C:
			d.pollFastPath()
		case <-reap.C:
			now := int64(time.Since(d.epoch))
			budget := max(1024, d.Conns.Capacity()/50)
			d.Conns.Reap(now, budget)
		case <-d.changed:
			// Real servers first: refreshMarks runs iptables-save, and
			// the first frames to a new real server wait for its next hop.
			// The workers get the new snapshot once uvsd owns its frames
			// (applied.go).
			p := d.takeSnapshot()
			d.prefetch()
			d.refreshMarks(ctx)
			if err := d.sync(); err != nil {
				d.log.Error("applying configuration to the kernel hooks and packet filters", errField(err))
			}
			d.applySnapshot(p)
			d.flushFastPath()
			d.syncBGP()
		case <-d.haChanged:
			// A VRRP role or backup_only changed: the new Host (Standby,
			// BackupOnly), then what uvsd owns, then the GARPs of the
			// VIPs taken over, once their traffic is uvsd's.
			d.followHost("VRRP roles")
			d.flushFastPath()
			d.announce(ctx, d.takeGARPs())
			d.syncBGP()
		case <-slow.C:
			if d.refreshMarks(ctx) {
				if err := d.sync(); err != nil {
					d.log.Error("applying firewall-mark rules to the kernel hooks and packet filters", errField(err))
				}
			}
			now := time.Now()
			for _, svc := range d.snap.Load().Services() {
				svc.Sched.Tick(now)
			}
			// The director's own addresses or interfaces may have
			// changed (a safety net for the rtnetlink watcher).
			d.followHost("addresses and interfaces")
			d.saveLports(false) // for a successor after a crash
		}
	}
}

// prefetch starts resolving the next hop of every real server, so that the
// first frames towards one just configured find it resolved, or wait less
// in the workers' neighbour queues.
func (d *Director) prefetch() {
	for _, svc := range d.State.Services() {
		for _, dst := range svc.Dests {
			d.hops.Prefetch(dst.Addr())
		}
	}
}

// logCounters logs the workers' non-zero counters, summed over the workers.
func (d *Director) logCounters() {
	var fields []zap.Field
	ws := d.Workers()
	for k := dataplane.Counter(0); k < dataplane.NumCounters; k++ {
		var sum uint64
		for _, w := range ws {
			sum += w.Counters.Load(k)
		}
		if sum > 0 {
			fields = append(fields, zap.Uint64(k.String(), sum))
		}
	}
	for r := header.Reason(1); r < header.NumReasons; r++ {
		var sum uint64
		for _, w := range ws {
			sum += w.Counters.LoadMalformed(r)
		}
		if sum > 0 {
			fields = append(fields, zap.Uint64("malformed-"+r.String(), sum))
		}
	}
	d.log.Info("worker counters", fields...)
	st := d.Conns.Stats()
	d.log.Info("connection table", zap.Int("live", d.Conns.Len()), zap.Int("capacity", d.Conns.Capacity()),
		zap.Uint64("reclaimed", st.Reclaimed), zap.Uint64("evicted", st.Evicted), zap.Uint64("full", st.Full),
		zap.Uint64("drop-entry", st.DropEntry), zap.Uint64("drop-packet", st.DropPacket))
}

// logIOStats logs the packet-I/O counters, summed over the workers (ring
// drops, transmit retries and drops) and the AF_XDP sockets closed when
// interfaces changed, before the sockets are closed.
func (d *Director) logIOStats() {
	if len(d.xios) > 0 || d.xstatsClosed != (afxdp.Stats{}) {
		t := d.xstatsClosed
		for _, x := range d.xios {
			if st, err := x.Stats(); err == nil {
				t = t.Add(st)
			}
		}
		d.log.Info("AF_XDP sockets", zap.Uint64("read", t.RxFrames), zap.Uint64("sent", t.TxFrames),
			zap.Uint64("tx-busy", t.TxBusy), zap.Uint64("tx-ring-full", t.TxRingFull), zap.Uint64("tx-fallback", t.TxFallback),
			zap.Uint64("tx-errors", t.TxErrors), zap.Uint64("kernel-rx-dropped", t.KernelRxDropped),
			zap.Uint64("kernel-rx-ring-full", t.KernelRxRingFull), zap.Uint64("kernel-fill-ring-empty", t.KernelRxFillRingEmpty))
	}
	if len(d.sockets) == 0 {
		return
	}
	var t afpacket.Stats
	for _, s := range d.sockets {
		st, err := s.Stats()
		if err != nil {
			continue
		}
		t.Packets += st.Packets
		t.Drops += st.Drops
		t.FreezeQCount += st.FreezeQCount
		t.FramesRead += st.FramesRead
		t.FramesSent += st.FramesSent
		t.TxBusy += st.TxBusy
		t.TxDropped += st.TxDropped
		t.TxErrors += st.TxErrors
	}
	d.log.Info("packet sockets", zap.Uint64("packets", t.Packets), zap.Uint64("ring-drops", t.Drops),
		zap.Uint64("ring-frozen", t.FreezeQCount), zap.Uint64("read", t.FramesRead), zap.Uint64("sent", t.FramesSent),
		zap.Uint64("tx-busy", t.TxBusy), zap.Uint64("tx-dropped", t.TxDropped), zap.Uint64("tx-errors", t.TxErrors))
}

// refreshHost reads the served interfaces and the director's addresses.
func (d *Director) refreshHost() error {
	ifs, err := d.hops.Interfaces()
	if err != nil {
		return fmt.Errorf("listing interfaces: %w", err)
	}
	h := &dataplane.Host{Ifaces: map[int]dataplane.Iface{}, Local: map[[16]byte]bool{}, Marked: map[[16]byte]bool{},
		Loopback: loopbackAddrs()}
	if p := d.markTargets.Load(); p != nil {
		for _, mt := range *p {
			h.Marked[mt.addr.As16()] = true
		}
	}
	want := map[string]bool{}
	for _, n := range d.cfg.Interfaces {
		want[n] = true
	}
	for _, ifc := range ifs {
		for _, p := range ifc.Addrs {
			h.Local[p.Addr().As16()] = true
		}
		if len(want) > 0 && !want[ifc.Name] {
			continue
		}
		h.Ifaces[ifc.Index] = dataplane.Iface{Index: ifc.Index, Name: ifc.Name, MAC: ifc.MAC, MTU: ifc.MTU}
	}
	// The VRRP roles and the store under one lock: an address event's
	// fast flip (applyAddrsLocked) between reading them and storing
	// would otherwise be undone until the next refresh.
	d.haMu.Lock()
	h.Standby, h.BackupOnly = d.standby, d.backupOnly
	d.host.Store(h)
	d.haMu.Unlock()
	return nil
}

// sync resolves the FULLNAT local addresses of services without a pool
// (the route's source towards each FULLNAT real server), starts resolving
// the real servers, and hands what uvsd owns to the kernel hooks, the
// packet filters and the XDP program (publish).
func (d *Director) sync() error {
	var srcs []netip.Addr
	for _, svc := range d.State.Services() {
		if len(svc.Config.LocalAddrs) > 0 {
			continue
		}
		for _, dst := range svc.Dests {
			if dst.Fwd() == spec.FwdFullNAT {
				if hop, err := d.hops.Resolve(dst.Addr()); err == nil && hop.Src.IsValid() {
					srcs = append(srcs, hop.Src)
				}
			}
		}
	}
	d.routeSources = srcs
	for _, svc := range d.State.Services() {
		for _, dst := range svc.Dests {
			d.hops.Prefetch(dst.Addr())
		}
	}
	return d.publish()
}

// hopAdapter gives the workers next hops with the egress MTU.
type hopAdapter struct {
	r    *neigh.Resolver
	host *atomic.Pointer[dataplane.Host]
}

func (h hopAdapter) Lookup(dst netip.Addr) (dataplane.Hop, bool) {
	x, ok := h.r.Lookup(dst)
	if !ok {
		return dataplane.Hop{}, false
	}
	return h.hop(x), true
}

// Peek is Lookup without starting a resolution (dataplane.HopPeeker).
func (h hopAdapter) Peek(dst netip.Addr) (dataplane.Hop, bool) {
	x, ok := h.r.Peek(dst)
	if !ok {
		return dataplane.Hop{}, false
	}
	return h.hop(x), true
}

// hop is x with the egress interface's MTU.
func (h hopAdapter) hop(x neigh.Hop) dataplane.Hop {
	mtu := 0
	if ifc, ok := h.host.Load().Ifaces[x.Ifindex]; ok {
		mtu = ifc.MTU
	}
	return dataplane.Hop{Ifindex: x.Ifindex, SrcMAC: x.SrcMAC, DstMAC: x.DstMAC, Src: x.Src, MTU: mtu, Local: x.Local}
}

// Cleanup removes what a crashed uvsd left in the current namespace: the
// kernel hooks, and XDP programs attached without a bpf_link.
func Cleanup() error {
	_, xerr := afxdp.Cleanup()
	return errors.Join(khook.CleanupNetNS(-1), xerr, CleanupNAPI())
}

// loopbackAddrs returns the addresses on the loopback interfaces (a VIP
// on lo, as on a real server; seed 004's directors are real servers too).
// An error leaves the set empty: those frames are then dropped while the
// VIP is standby, which a retransmission to the master recovers.
func loopbackAddrs() map[[16]byte]bool {
	m := map[[16]byte]bool{}
	ifs, err := net.Interfaces()
	if err != nil {
		return m
	}
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagLoopback == 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok {
					m[ip.Unmap().As16()] = true
				}
			}
		}
	}
	return m
}
