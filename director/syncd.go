package director

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/uvs-lb/uvs/control"
	"github.com/uvs-lb/uvs/director/sysctls"
	"github.com/uvs-lb/uvs/ipvsadm"
	"github.com/uvs-lb/uvs/keepalived"
)

// Connection-sync daemons (reference §4.7): uvsadm --start-daemon and
// --stop-daemon, keepalived's lvs_sync_daemon (§3.4), and the kernel's
// sysctls that govern them (backup_only, sync_threshold,
// sync_persist_mode, sync_version).

// Sysctls are the kernel's IPVS sysctls uvsd honours (uvsd --sysctl).
type Sysctls = sysctls.Sysctls

// DefaultSysctls are the kernel's defaults.
func DefaultSysctls() Sysctls { return sysctls.Default() }

// syncRunner is a running sync daemon.
type syncRunner interface {
	// Run serves until ctx is done or Close is called.
	Run(ctx context.Context) error
	Close() error
}

// syncFactory builds sync daemons from their (defaults filled)
// configuration: connsync's in uvsd, fakes in tests.
type syncFactory interface {
	Master(cfg ipvsadm.DaemonConfig, mtu int) (syncRunner, error)
	Backup(cfg ipvsadm.DaemonConfig, mtu int) (syncRunner, error)
}

// syncDaemons implements control.Daemons: at most one master and one
// backup, as the kernel.
type syncDaemons struct {
	log     *zap.Logger
	factory syncFactory
	// ifMTU returns an interface's MTU; an unknown interface is an error.
	ifMTU func(name string) (int, error)
	// changed is called (without mu) after a daemon started or stopped.
	changed func()

	mu      sync.Mutex
	ctx     context.Context
	master  *runningDaemon
	backup  *runningDaemon
	stopped bool
}

type runningDaemon struct {
	cfg    ipvsadm.DaemonConfig
	r      syncRunner
	cancel context.CancelFunc
	done   chan struct{}
}

func newSyncDaemons(ctx context.Context, f syncFactory, log *zap.Logger, changed func()) *syncDaemons {
	return &syncDaemons{ctx: ctx, log: log, factory: f, ifMTU: interfaceMTU, changed: changed}
}

func interfaceMTU(name string) (int, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return 0, err
	}
	return ifc.MTU, nil
}

// fillDaemonDefaults fills what the kernel fills at start (group, port,
// TTL, maxlen from the interface MTU; connsync.Config.WithDefaults), as
// -L --daemon shows it.
func fillDaemonDefaults(c ipvsadm.DaemonConfig, mtu int) ipvsadm.DaemonConfig {
	return fromConnsync(toConnsync(c).WithDefaults(mtu))
}

func (s *syncDaemons) slot(state string) **runningDaemon {
	switch state {
	case "master":
		return &s.master
	case "backup":
		return &s.backup
	}
	return nil
}

// StartDaemon starts the master or backup daemon.
func (s *syncDaemons) StartDaemon(cfg ipvsadm.DaemonConfig) error {
	s.mu.Lock()
	err := s.start(cfg)
	s.mu.Unlock()
	if err == nil && s.changed != nil {
		s.changed()
	}
	return err
}

func (s *syncDaemons) start(cfg ipvsadm.DaemonConfig) error {
	slot := s.slot(cfg.State)
	if slot == nil {
		return &control.Error{Errno: syscall.EINVAL, Msg: fmt.Sprintf("unknown sync daemon state %q (want master or backup)", cfg.State)}
	}
	if s.stopped {
		return &control.Error{Errno: syscall.ESHUTDOWN, Msg: "uvsd is shutting down"}
	}
	if *slot != nil {
		return &control.Error{Errno: syscall.EEXIST, Msg: "Daemon has already run"}
	}
	if cfg.McastIfn == "" {
		cfg.McastIfn = "eth0" // ipvsadm's DEF_MCAST_IFN
	}
	mtu, err := s.ifMTU(cfg.McastIfn)
	if err != nil {
		return &control.Error{Errno: syscall.ENODEV, Msg: fmt.Sprintf("No such device: %s", cfg.McastIfn)}
	}
	cfg = fillDaemonDefaults(cfg, mtu)
	build := s.factory.Master
	if cfg.State == "backup" {
		build = s.factory.Backup
	}
	r, err := build(cfg, mtu)
	if err != nil {
		if ce := (*control.Error)(nil); errors.As(err, &ce) {
			return err
		}
		if no := syscall.Errno(0); errors.As(err, &no) {
			return &control.Error{Errno: no, Msg: fmt.Sprintf("%s sync daemon on %s: %v", cfg.State, cfg.McastIfn, err)}
		}
		return &control.Error{Errno: syscall.EINVAL, Msg: fmt.Sprintf("%s sync daemon on %s: %v", cfg.State, cfg.McastIfn, err)}
	}
	ctx, cancel := context.WithCancel(s.ctx)
	rd := &runningDaemon{cfg: cfg, r: r, cancel: cancel, done: make(chan struct{})}
	*slot = rd
	go func() {
		defer close(rd.done)
		if err := r.Run(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("sync daemon failed", zap.String("state", cfg.State), zap.String("mcast_ifn", cfg.McastIfn), zap.Error(err))
		}
	}()
	// connsync logs the kernel's "sync thread started" line.
	s.log.Debug(fmt.Sprintf("sync daemon started: state = %s, mcast_ifn = %s, syncid = %d, maxlen = %d, group = %s, port = %d, ttl = %d",
		strings.ToUpper(cfg.State), cfg.McastIfn, cfg.SyncID, cfg.SyncMaxLen, cfg.McastGroup, cfg.McastPort, cfg.McastTTL))
	return nil
}

// StopDaemon stops the master or backup daemon.
func (s *syncDaemons) StopDaemon(state string) error {
	s.mu.Lock()
	slot := s.slot(state)
	if slot == nil {
		s.mu.Unlock()
		return &control.Error{Errno: syscall.EINVAL, Msg: fmt.Sprintf("unknown sync daemon state %q (want master or backup)", state)}
	}
	rd := *slot
	if rd == nil {
		s.mu.Unlock()
		return &control.Error{Errno: syscall.ESRCH, Msg: "No daemon is running"}
	}
	*slot = nil
	s.mu.Unlock()
	s.halt(rd)
	if s.changed != nil {
		s.changed()
	}
	return nil
}

// halt stops a daemon and waits (a few seconds at most) for it.
func (s *syncDaemons) halt(rd *runningDaemon) {
	rd.cancel()
	if err := rd.r.Close(); err != nil {
		s.log.Warn("closing the sync daemon", zap.String("state", rd.cfg.State), zap.Error(err))
	}
	select {
	case <-rd.done:
	case <-time.After(5 * time.Second):
		s.log.Warn("sync daemon did not stop within 5 s", zap.String("state", rd.cfg.State))
	}
	s.log.Info(fmt.Sprintf("sync daemon stopped: state = %s, mcast_ifn = %s, syncid = %d",
		strings.ToUpper(rd.cfg.State), rd.cfg.McastIfn, rd.cfg.SyncID), syncStatsFields(rd.r)...)
}

// Daemons lists the running daemons, master first.
func (s *syncDaemons) Daemons() []ipvsadm.DaemonConfig {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ipvsadm.DaemonConfig
	for _, rd := range []*runningDaemon{s.master, s.backup} {
		if rd != nil {
			out = append(out, rd.cfg)
		}
	}
	return out
}

// backupRunning reports whether a backup daemon runs (backup_only).
func (s *syncDaemons) backupRunning() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.backup != nil
}

// stopAll stops every daemon and refuses new ones (shutdown).
func (s *syncDaemons) stopAll() {
	s.mu.Lock()
	s.stopped = true
	rds := []*runningDaemon{s.master, s.backup}
	s.master, s.backup = nil, nil
	s.mu.Unlock()
	for _, rd := range rds {
		if rd != nil {
			s.halt(rd)
		}
	}
}

// lvsSync is keepalived's lvs_sync_daemon driven by a followed instance.
type lvsSync struct {
	cfg      ipvsadm.DaemonConfig // State filled per switch
	instance string
}

// newLVSSync resolves lvs_sync_daemon against the instances: its syncid
// defaults to the instance's virtual_router_id. Without an instance
// keepalived does not manage the daemon, and neither does uvsd (nil).
func newLVSSync(sd *keepalived.SyncDaemon, insts []*keepalived.VRRPInstance) (*lvsSync, error) {
	if sd == nil {
		return nil, nil
	}
	if sd.Instance == "" {
		return nil, fmt.Errorf("%s: lvs_sync_daemon %s names no VRRP instance: the sync daemon is not managed (as keepalived)", sd.Pos, sd.Interface)
	}
	var vi *keepalived.VRRPInstance
	for _, in := range insts {
		if in.Name == sd.Instance {
			vi = in
		}
	}
	if vi == nil {
		return nil, fmt.Errorf("%s: lvs_sync_daemon: no vrrp_instance %s: the sync daemon is not managed", sd.Pos, sd.Instance)
	}
	id := sd.SyncID
	if id < 0 {
		id = vi.VRID
	}
	c := ipvsadm.DaemonConfig{McastIfn: sd.Interface, SyncID: uint8(id), McastGroup: sd.Group,
		McastPort: uint16(sd.Port), McastTTL: uint8(sd.TTL), SyncMaxLen: uint16(sd.MaxLen)}
	return &lvsSync{cfg: c, instance: sd.Instance}, nil
}

// startLVSSync starts lvs_sync_daemon's daemon (reference §3.4): backup,
// or master at once when the instance has priority 255 or is MASTER
// already (uvsd started while keepalived holds the VIPs).
func (d *Director) startLVSSync() {
	d.lvsMu.Lock()
	defer d.lvsMu.Unlock()
	l := d.lvsSync
	if l == nil || d.lvsActive {
		return
	}
	d.haMu.Lock()
	master := d.vrrp != nil && d.vrrp.isMaster(l.instance)
	if d.vrrp != nil {
		if in := d.vrrp.instance(l.instance); in != nil && in.priority == 255 {
			master = true
		}
	}
	d.haMu.Unlock()
	d.lvsActive = true
	state := "backup"
	if master {
		state = "master"
	}
	d.lvsStart(state)
}

// lvsStart and lvsStop run with lvsMu held.
func (d *Director) lvsStart(state string) {
	c := d.lvsSync.cfg
	c.State = state
	if err := d.syncd.StartDaemon(c); err != nil && !isErrno(err, syscall.ESHUTDOWN) {
		d.log.Error(fmt.Sprintf("lvs_sync_daemon: starting the %s sync daemon on %s", state, c.McastIfn), zap.Error(err))
	}
}

func (d *Director) lvsStop(state string) {
	if err := d.syncd.StopDaemon(state); err != nil && !isErrno(err, syscall.ESRCH) {
		d.log.Error("lvs_sync_daemon: stopping the "+state+" sync daemon", zap.Error(err))
	}
}

func isErrno(err error, no syscall.Errno) bool {
	var e *control.Error
	return errors.As(err, &e) && e.Errno == no
}

// lvsSyncRole switches lvs_sync_daemon with its instance's role: on
// MASTER stop the backup daemon and start the master, on leaving MASTER
// the reverse (ipvs_syncd_master / ipvs_syncd_backup).
func (d *Director) lvsSyncRole(c roleChange) {
	d.lvsMu.Lock()
	defer d.lvsMu.Unlock()
	l := d.lvsSync
	if l == nil || c.instance != l.instance || !d.lvsActive {
		return
	}
	if c.master {
		d.log.Info("lvs_sync_daemon: VRRP instance " + c.instance + " is MASTER: sync daemon backup → master")
		d.lvsStop("backup")
		d.lvsStart("master")
		return
	}
	d.log.Info("lvs_sync_daemon: VRRP instance " + c.instance + " left MASTER: sync daemon master → backup")
	d.lvsStop("master")
	d.lvsStart("backup")
}

// daemonsChanged recomputes backup_only (sysctl on and a backup daemon
// running) and, when it changed, has housekeeping apply it.
func (d *Director) daemonsChanged() {
	on := d.sysctls.BackupOnly && d.syncd != nil && d.syncd.backupRunning()
	d.haMu.Lock()
	changed := on != d.backupOnly
	d.backupOnly = on
	d.haMu.Unlock()
	if changed {
		if on {
			d.log.Info("backup_only: the backup sync daemon runs: director function off (no service is served)")
		} else {
			d.log.Info("backup_only: no backup sync daemon: director function on")
		}
		d.haKick()
	}
}
