// Package control is the director's control plane: it holds the
// authoritative configuration (services, destinations, timeouts), applies
// ipvsadm commands to it with the kernel's rules and error codes, and
// publishes each result as an immutable snapshot.Snapshot.
package control

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/uvs-lb/uvs/ipvsadm"
	"github.com/uvs-lb/uvs/sched"
	"github.com/uvs-lb/uvs/snapshot"
	"github.com/uvs-lb/uvs/spec"
)

// Error is a rejected operation: the errno the kernel would return and the
// message libipvs prints for it (ipvs_strerror).
type Error struct {
	Errno syscall.Errno
	Msg   string
}

func (e *Error) Error() string { return e.Msg }

// Is lets errors.Is match an Error against its errno.
func (e *Error) Is(target error) bool {
	var no syscall.Errno
	if errors.As(target, &no) {
		return no == e.Errno
	}
	return false
}

// strerror maps (command, errno) to libipvs's message.
func strerror(cmd ipvsadm.CmdKind, errno syscall.Errno) error {
	msg := ""
	switch cmd {
	case ipvsadm.CmdAddService:
		switch errno {
		case syscall.EEXIST:
			msg = "Service already exists"
		case syscall.ENOENT:
			msg = "Scheduler or persistence engine not found"
		}
	case ipvsadm.CmdEditService:
		switch errno {
		case syscall.ESRCH:
			msg = "No such service"
		case syscall.ENOENT:
			msg = "Scheduler or persistence engine not found"
		}
	case ipvsadm.CmdDelService, ipvsadm.CmdZero, ipvsadm.CmdList:
		if errno == syscall.ESRCH {
			msg = "No such service"
		}
	case ipvsadm.CmdAddServer:
		switch errno {
		case syscall.ESRCH:
			msg = "Service not defined"
		case syscall.EEXIST:
			msg = "Destination already exists"
		}
	case ipvsadm.CmdEditServer, ipvsadm.CmdDelServer:
		switch errno {
		case syscall.ESRCH:
			msg = "Service not defined"
		case syscall.ENOENT:
			msg = "No such destination"
		}
	case ipvsadm.CmdAddLaddr, ipvsadm.CmdDelLaddr, ipvsadm.CmdGetLaddr:
		switch errno {
		case syscall.ESRCH:
			msg = "Service not defined"
		case syscall.EEXIST:
			msg = "Local address already exists"
		case syscall.ENOENT:
			msg = "No such local address"
		}
	}
	if msg == "" {
		switch errno {
		case syscall.EPERM:
			msg = "Permission denied (you must be root)"
		case syscall.EINVAL:
			msg = "Invalid operation.  Possibly wrong module version, address not unicast, ..."
		case syscall.ENOMEM:
			msg = "Memory allocation problem"
		default:
			msg = errno.Error()
			if len(msg) > 0 {
				msg = string(msg[0]-'a'+'A') + msg[1:]
			}
		}
	}
	return &Error{Errno: errno, Msg: msg}
}

// Timeouts are the three timeouts ipvsadm --set changes.
type Timeouts struct {
	TCP, TCPFin, UDP time.Duration
}

// DefaultTimeouts are the kernel's: ESTABLISHED 900 s, FIN_WAIT 120 s, UDP 300 s.
var DefaultTimeouts = Timeouts{TCP: 900 * time.Second, TCPFin: 120 * time.Second, UDP: 300 * time.Second}

type service struct {
	id    uint32
	cfg   spec.Service
	sched *sched.Service
	stats *sched.Stats
}

// State is the director's configuration. It is safe for concurrent use;
// every successful change publishes a new snapshot through the Publish
// callback, in order.
type State struct {
	mu       sync.Mutex
	services []*service // insertion order
	byKey    map[spec.ServiceKey]*service
	nextID   uint32
	version  uint64
	timeouts Timeouts
	opts     sched.Options
	snap     *snapshot.Snapshot
	// stats gives every service's and destination's counters a slot in
	// the workers' counter blocks (sched.StatsRegistry).
	stats *sched.StatsRegistry

	// Publish receives every new snapshot (called with the state locked).
	publish func(*snapshot.Snapshot)
	// onTimeouts receives --set changes.
	onTimeouts func(Timeouts)
}

// Options configure a State.
type Options struct {
	Sched      sched.Options
	Publish    func(*snapshot.Snapshot)
	OnTimeouts func(Timeouts)
}

// New returns an empty configuration and publishes its empty snapshot.
func New(o Options) *State {
	s := &State{
		byKey:      make(map[spec.ServiceKey]*service),
		timeouts:   DefaultTimeouts,
		opts:       o.Sched,
		publish:    o.Publish,
		onTimeouts: o.OnTimeouts,
		nextID:     1,
		stats:      sched.NewStatsRegistry(),
	}
	s.mu.Lock()
	s.commit()
	s.mu.Unlock()
	return s
}

// Snapshot returns the current snapshot.
func (s *State) Snapshot() *snapshot.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap
}

// Timeouts returns the current --set timeouts.
func (s *State) Timeouts() Timeouts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.timeouts
}

func (s *State) commit() {
	svcs := make([]*snapshot.Service, 0, len(s.services))
	for _, x := range s.services {
		svcs = append(svcs, &snapshot.Service{
			ID:         x.id,
			Key:        x.cfg.Key,
			Sched:      x.sched,
			Persistent: x.cfg.Persistent,
			Timeout:    time.Duration(x.cfg.Timeout) * time.Second,
			Netmask:    x.cfg.Netmask,
			OPS:        x.cfg.OPS,
			LocalAddrs: append([]netip.Addr(nil), x.cfg.LocalAddrs...),
			Stats:      x.stats,
		})
	}
	for _, x := range s.services {
		// Slots for the new services and destinations before a worker
		// can see them in the snapshot (a destination added meanwhile
		// counts in shared atomics until then).
		s.stats.Assign(x.stats, nil)
		for _, d := range x.sched.Dests() {
			s.stats.Assign(&d.Stats, x.stats)
		}
	}
	s.version++
	s.snap = snapshot.New(s.version, svcs)
	s.snap.Stats = s.stats
	if s.publish != nil {
		s.publish(s.snap)
	}
}

// Apply executes one state-changing ipvsadm command. Query commands (-L,
// -S, -h, -v) are not handled here. On error nothing changes.
func (s *State) Apply(c *ipvsadm.Command) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.apply(c); err != nil {
		return err
	}
	s.commit()
	return nil
}

// ApplyAll executes commands in order as one transaction: either all
// succeed and one snapshot is published, or the first failure is returned
// and nothing changes. The error names the failing command's Line when set.
func (s *State) ApplyAll(cmds []ipvsadm.Command) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Dry run on a scratch copy so that a failure changes nothing.
	scratch := &State{byKey: make(map[spec.ServiceKey]*service), nextID: s.nextID, timeouts: s.timeouts, opts: s.opts}
	for _, x := range s.services {
		scratch.services = append(scratch.services, &service{id: x.id, cfg: x.cfg})
		scratch.byKey[x.cfg.Key] = scratch.services[len(scratch.services)-1]
	}
	if err := scratch.rebuildScheds(s); err != nil {
		return err
	}
	for i := range cmds {
		if err := scratch.apply(&cmds[i]); err != nil {
			if cmds[i].Line > 0 {
				return fmt.Errorf("line %d: %w", cmds[i].Line, err)
			}
			return err
		}
	}
	for i := range cmds {
		if err := s.apply(&cmds[i]); err != nil {
			return err // cannot happen: the dry run passed
		}
	}
	s.commit()
	return nil
}

// rebuildScheds gives a scratch copy schedulers with the same destinations
// as the original, so a dry run sees the same existence checks.
func (s *State) rebuildScheds(orig *State) error {
	for i, x := range s.services {
		svc, err := sched.NewService(x.cfg, s.opts)
		if err != nil {
			return err
		}
		o := orig.services[i].sched.Dests()
		for j := len(o) - 1; j >= 0; j-- {
			if _, err := svc.AddDest(o[j].Config()); err != nil {
				return err
			}
		}
		x.sched = svc
	}
	return nil
}

func (s *State) apply(c *ipvsadm.Command) error {
	switch c.Kind {
	case ipvsadm.CmdAddService:
		return s.addService(c.Service)
	case ipvsadm.CmdEditService:
		return s.editService(c.Service)
	case ipvsadm.CmdDelService:
		x := s.byKey[c.Service.Key]
		if x == nil {
			return strerror(c.Kind, syscall.ESRCH)
		}
		s.delService(x)
		return nil
	case ipvsadm.CmdFlush:
		for len(s.services) > 0 {
			s.delService(s.services[0])
		}
		return nil
	case ipvsadm.CmdAddServer, ipvsadm.CmdEditServer, ipvsadm.CmdDelServer:
		x := s.byKey[c.Service.Key]
		if x == nil {
			return strerror(c.Kind, syscall.ESRCH)
		}
		if c.Kind != ipvsadm.CmdDelServer {
			if err := laddrFamilyCheck(x.cfg.Key, x.cfg.LocalAddrs, c.Dest); err != nil {
				return err
			}
		}
		var err error
		switch c.Kind {
		case ipvsadm.CmdAddServer:
			_, err = x.sched.AddDest(c.Dest)
			if errors.Is(err, sched.ErrDestExists) {
				return strerror(c.Kind, syscall.EEXIST)
			}
		case ipvsadm.CmdEditServer:
			err = x.sched.EditDest(c.Dest)
			if errors.Is(err, sched.ErrNoDest) {
				return strerror(c.Kind, syscall.ENOENT)
			}
		case ipvsadm.CmdDelServer:
			err = x.sched.DelDest(c.Dest.AddrPort())
			if errors.Is(err, sched.ErrNoDest) {
				return strerror(c.Kind, syscall.ENOENT)
			}
		}
		if err != nil {
			return &Error{Errno: syscall.EINVAL, Msg: err.Error()}
		}
		return nil
	case ipvsadm.CmdSetTimeout:
		t := s.timeouts
		if c.TimeoutTCP != 0 {
			t.TCP = time.Duration(c.TimeoutTCP) * time.Second
		}
		if c.TimeoutTCPFin != 0 {
			t.TCPFin = time.Duration(c.TimeoutTCPFin) * time.Second
		}
		if c.TimeoutUDP != 0 {
			t.UDP = time.Duration(c.TimeoutUDP) * time.Second
		}
		s.timeouts = t
		if s.onTimeouts != nil {
			s.onTimeouts(t)
		}
		return nil
	case ipvsadm.CmdZero:
		if c.HasService {
			x := s.byKey[c.Service.Key]
			if x == nil {
				return strerror(c.Kind, syscall.ESRCH)
			}
			zeroStats(x.stats)
			for _, d := range x.sched.Dests() {
				zeroStats(&d.Stats)
			}
			return nil
		}
		for _, x := range s.services {
			zeroStats(x.stats)
			for _, d := range x.sched.Dests() {
				zeroStats(&d.Stats)
			}
		}
		return nil
	case ipvsadm.CmdAddLaddr, ipvsadm.CmdDelLaddr:
		x := s.byKey[c.Service.Key]
		if x == nil {
			return strerror(c.Kind, syscall.ESRCH)
		}
		idx := -1
		for i, a := range x.cfg.LocalAddrs {
			if a == c.Laddr.Addr {
				idx = i
			}
		}
		if c.Kind == ipvsadm.CmdAddLaddr {
			if idx >= 0 {
				return strerror(c.Kind, syscall.EEXIST)
			}
			x.cfg.LocalAddrs = append(append([]netip.Addr(nil), x.cfg.LocalAddrs...), c.Laddr.Addr)
			return nil
		}
		if idx < 0 {
			return strerror(c.Kind, syscall.ENOENT)
		}
		l := append([]netip.Addr(nil), x.cfg.LocalAddrs[:idx]...)
		l = append(l, x.cfg.LocalAddrs[idx+1:]...)
		for _, d := range x.sched.Dests() {
			if err := laddrFamilyCheck(x.cfg.Key, l, d.Config()); err != nil {
				return err
			}
		}
		x.cfg.LocalAddrs = l
		return nil
	}
	return &Error{Errno: syscall.EINVAL, Msg: fmt.Sprintf("command %d does not change the configuration", c.Kind)}
}

// zeroStats is ip_vs_zero_stats: the current counters become the zero
// point.
func zeroStats(st *sched.Stats) { st.Zero() }

func (s *State) addService(cfg spec.Service) error {
	if s.byKey[cfg.Key] != nil {
		return strerror(ipvsadm.CmdAddService, syscall.EEXIST)
	}
	if cfg.PE != "" {
		return strerror(ipvsadm.CmdAddService, syscall.ENOENT)
	}
	svc, err := sched.NewService(cfg, s.opts)
	if err != nil {
		if errors.Is(err, sched.ErrNoScheduler) {
			return strerror(ipvsadm.CmdAddService, syscall.ENOENT)
		}
		return &Error{Errno: syscall.EINVAL, Msg: err.Error()}
	}
	x := &service{id: s.nextID, cfg: cfg, sched: svc, stats: new(sched.Stats)}
	s.nextID++
	s.services = append(s.services, x)
	s.byKey[cfg.Key] = x
	return nil
}

func (s *State) editService(cfg spec.Service) error {
	x := s.byKey[cfg.Key]
	if x == nil {
		return strerror(ipvsadm.CmdEditService, syscall.ESRCH)
	}
	if cfg.PE != "" {
		return strerror(ipvsadm.CmdEditService, syscall.ENOENT)
	}
	cfg.LocalAddrs = x.cfg.LocalAddrs
	if err := x.sched.Update(cfg); err != nil {
		if errors.Is(err, sched.ErrNoScheduler) {
			return strerror(ipvsadm.CmdEditService, syscall.ENOENT)
		}
		return &Error{Errno: syscall.EINVAL, Msg: err.Error()}
	}
	x.cfg = cfg
	return nil
}

func (s *State) delService(x *service) {
	for _, d := range x.sched.Dests() {
		_ = x.sched.DelDest(d.AddrPort())
	}
	delete(s.byKey, x.cfg.Key)
	for i, y := range s.services {
		if y == x {
			s.services = append(s.services[:i:i], s.services[i+1:]...)
			break
		}
	}
}

// ServiceInfo is a read-only view of one service for listings.
type ServiceInfo struct {
	Config spec.Service
	Dests  []*sched.Dest // kernel list order
	Stats  *sched.Stats
}

// Services returns the services in insertion order with their destinations.
func (s *State) Services() []ServiceInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ServiceInfo, 0, len(s.services))
	for _, x := range s.services {
		out = append(out, ServiceInfo{Config: x.cfg, Dests: x.sched.Dests(), Stats: x.stats})
	}
	return out
}

// laddrFamilyCheck refuses a FULLNAT real server d of service key that
// the local-address pool laddrs cannot serve: a non-empty pool serves a
// real server from its addresses of the real server's family only (an
// IPv4 real server of an IPv6 service, DPVS's NAT64, needs IPv4 local
// addresses), and a pool with none of them would leave every connection
// to it without a local address. An empty pool is served by the route's
// source address towards the real server, which is of its family.
// Adding a local address is never refused for this: a pool is built one
// address at a time, and until it holds one of each family in use such
// connections are counted as without a local address.
func laddrFamilyCheck(key spec.ServiceKey, laddrs []netip.Addr, d spec.Dest) error {
	if d.Fwd != spec.FwdFullNAT || len(laddrs) == 0 {
		return nil
	}
	rs4 := d.Addr.Unmap().Is4()
	for _, a := range laddrs {
		if a.Unmap().Is4() == rs4 {
			return nil
		}
	}
	fam := "IPv6"
	if rs4 {
		fam = "IPv4"
	}
	return &Error{Errno: syscall.EAFNOSUPPORT, Msg: fmt.Sprintf(
		"real server %v of service %v is %s and the service has no %s local address (--add-laddr): FULLNAT reaches a real server from a local address of its family",
		d.AddrPort(), key, fam, fam)}
}
