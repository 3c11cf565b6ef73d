package sched

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uvs-lb/uvs/spec"
)

// Errors returned by the service model; check them with errors.Is.
var (
	ErrNoScheduler = errors.New("scheduler not found") // unknown scheduler name
	ErrDestExists  = errors.New("destination already exists")
	ErrNoDest      = errors.New("no such destination")
	ErrRange       = errors.New("numerical result out of range") // ERANGE: weight or thresholds
	ErrInvalid     = errors.New("invalid argument")              // EINVAL
)

// Options are the injected dependencies and tunables of a Service. The zero
// value gives the kernel defaults with the real clock and a real RNG.
type Options struct {
	// Now is the clock lblc/lblcr stamp their entries with (jiffies). Nil
	// means time.Now. Tick must be driven with the same clock.
	Now func() time.Time
	// Rand returns a uniform value in [0, n) for twos
	// (get_random_u32_below). It is called concurrently by every worker
	// scheduling on the service and must be safe for that. Nil means
	// math/rand/v2.Uint32N.
	Rand func(n uint32) uint32
	// MHTableSize is the Maglev lookup table size, one of the kernel's
	// primes (251 509 1021 2039 4093 8191 16381 32749 65521 131071).
	// 0 means 4093 (CONFIG_IP_VS_MH_TAB_INDEX=12).
	MHTableSize int
	// SortHashDests makes mh and sh build their tables from the
	// destinations sorted by address and port instead of the list order
	// (newest first, as ip_vs_ctl.c's __ip_vs_update_dest list_add_rcu
	// keeps them), so that directors with the same destinations agree
	// on every flow whatever order they were added in (hashorder.go).
	SortHashDests bool
	// LBLCExpiration is sysctl lblc_expiration / lblcr_expiration. 0 means
	// 24 h.
	LBLCExpiration time.Duration
	// ExpireQuiescentTemplate is sysctl expire_quiescent_template: a
	// persistence template pointing at a weight-0 destination is invalid.
	ExpireQuiescentTemplate bool

	epoch time.Time // clock origin; times are kept as int64 ns since it
}

// mhPrimes are the table sizes ip_vs_mh.c allows.
var mhPrimes = [...]int{251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071}

func (o *Options) fill() error {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Uint32N
	}
	if o.MHTableSize == 0 {
		o.MHTableSize = 4093
	}
	if !slices.Contains(mhPrimes[:], o.MHTableSize) {
		return fmt.Errorf("mh table size %d: %w", o.MHTableSize, ErrInvalid)
	}
	if o.LBLCExpiration == 0 {
		o.LBLCExpiration = 24 * time.Hour
	}
	o.epoch = o.Now()
	return nil
}

// now returns the injected clock as nanoseconds since the service epoch.
func (o *Options) now() int64 { return o.since(o.Now()) }

func (o *Options) since(t time.Time) int64 { return int64(t.Sub(o.epoch)) }

// state is the immutable snapshot a decision reads: published with an
// atomic pointer, replaced (never modified) by every control-plane change.
type state struct {
	cfg   spec.Service
	id    SchedID
	dests []*Dest // kernel list order: most recently added first
	sched scheduler
}

// Service is a virtual service: its configuration, its destinations in
// kernel list order and its bound scheduler.
//
// Schedule, ScheduleWhy, SchedulePersistent, Dests and Config may be called
// concurrently from any number of goroutines, also while the control plane
// calls AddDest, EditDest, DelDest, Update and Tick (which serialise among
// themselves). A decision reads one immutable snapshot; the only locks on
// the decision path are the ones the kernel takes too (rr/wrr cursor,
// lblc/lblcr tables).
type Service struct {
	mu    sync.Mutex // serialises control-plane changes
	opts  Options
	cur   atomic.Pointer[state]
	trash map[netip.AddrPort]*Dest // deleted dests still referenced (ip_vs_dest_trash)
}

// NewService creates a service with no destinations, bound to the
// scheduler cfg.Scheduler names ("" means wlc).
func NewService(cfg spec.Service, opts Options) (*Service, error) {
	if err := opts.fill(); err != nil {
		return nil, fmt.Errorf("new service: %w", err)
	}
	if cfg.Scheduler == "" {
		cfg.Scheduler = spec.DefaultScheduler
	}
	id, ok := LookupScheduler(cfg.Scheduler)
	if !ok {
		return nil, fmt.Errorf("new service: %q: %w", cfg.Scheduler, ErrNoScheduler)
	}
	s := &Service{opts: opts, trash: make(map[netip.AddrPort]*Dest)}
	cfg.LocalAddrs = slices.Clone(cfg.LocalAddrs)
	st := &state{cfg: cfg, id: id}
	st.sched = registry[id].new(&s.opts, nil)
	s.cur.Store(st)
	return s, nil
}

// Config returns the service configuration.
func (s *Service) Config() spec.Service {
	c := s.cur.Load().cfg
	c.LocalAddrs = slices.Clone(c.LocalAddrs)
	return c
}

// Scheduler returns the id of the bound scheduler.
func (s *Service) Scheduler() SchedID { return s.cur.Load().id }

// Dests returns the destinations in kernel list order (most recently added
// first). The slice is shared and must be treated as read-only.
func (s *Service) Dests() []*Dest { return s.cur.Load().dests }

// Dest returns the linked destination with address and port ap, or nil.
func (s *Service) Dest(ap netip.AddrPort) *Dest {
	for _, d := range s.cur.Load().dests {
		if d.AddrPort() == ap {
			return d
		}
	}
	return nil
}

// Schedule picks a destination for a new connection, or nil when none is
// available ("no destination available"). It does not allocate.
func (s *Service) Schedule(f *Flow) *Dest {
	st := s.cur.Load()
	return st.sched.schedule(st, f, nil)
}

// ScheduleWhy is Schedule that also records why the destination was chosen
// in *why (overwritten); why.String() formats it.
func (s *Service) ScheduleWhy(f *Flow, why *Reason) *Dest {
	st := s.cur.Load()
	*why = Reason{Sched: st.id}
	d := st.sched.schedule(st, f, why)
	why.setDest(d)
	why.NDests = int32(len(st.dests))
	return d
}

func validDest(c spec.Dest) error {
	if c.Weight > math.MaxInt32 {
		return fmt.Errorf("weight %d: %w", c.Weight, ErrRange)
	}
	if c.UThreshold > math.MaxInt32 {
		return fmt.Errorf("upper threshold %d: %w", c.UThreshold, ErrInvalid)
	}
	if c.LThreshold > c.UThreshold {
		return fmt.Errorf("lower threshold %d above upper %d: %w", c.LThreshold, c.UThreshold, ErrRange)
	}
	if !c.Addr.IsValid() {
		return fmt.Errorf("destination address: %w", ErrInvalid)
	}
	return nil
}

func indexOf(dests []*Dest, ap netip.AddrPort) int {
	for i, d := range dests {
		if d.addr == ap.Addr() && d.port == ap.Port() {
			return i
		}
	}
	return -1
}

// AddDest links a new destination at the head of the list (ip_vs_add_dest).
// A destination deleted earlier whose connections still count is
// resurrected with its counters, as the kernel does from its trash.
func (s *Service) AddDest(c spec.Dest) (*Dest, error) {
	if err := validDest(c); err != nil {
		return nil, fmt.Errorf("add dest %s: %w", c.AddrPort(), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.cur.Load()
	ap := c.AddrPort()
	if indexOf(old.dests, ap) >= 0 {
		return nil, fmt.Errorf("add dest %s: %w", ap, ErrDestExists)
	}
	d := s.trash[ap]
	if d != nil {
		delete(s.trash, ap)
		d.update(c)
		d.lastWeight.Store(int32(c.Weight)) // add: last_weight = weight, even 0
	} else {
		d = NewDest(c)
	}
	d.SetAvailable(true)
	dests := make([]*Dest, 0, len(old.dests)+1)
	dests = append(append(dests, d), old.dests...)
	st := &state{cfg: old.cfg, id: old.id, dests: dests, sched: old.sched}
	if h, ok := old.sched.(addHook); ok {
		st.sched = h.onAdd(&s.opts, dests, d)
	}
	s.cur.Store(st)
	return d, nil
}

// EditDest replaces the configuration of an existing destination
// (ip_vs_edit_dest): weight, forwarding, thresholds, tunnel settings.
func (s *Service) EditDest(c spec.Dest) error {
	if err := validDest(c); err != nil {
		return fmt.Errorf("edit dest %s: %w", c.AddrPort(), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.cur.Load()
	i := indexOf(old.dests, c.AddrPort())
	if i < 0 {
		return fmt.Errorf("edit dest %s: %w", c.AddrPort(), ErrNoDest)
	}
	d := old.dests[i]
	d.update(c)
	st := &state{cfg: old.cfg, id: old.id, dests: old.dests, sched: old.sched}
	if h, ok := old.sched.(updHook); ok {
		st.sched = h.onUpdate(&s.opts, old.dests, d)
	}
	s.cur.Store(st)
	return nil
}

// DelDest unlinks a destination (ip_vs_del_dest). It stays valid for the
// connections that point at it and is resurrected by a later AddDest of the
// same address and port while it still has connections.
func (s *Service) DelDest(ap netip.AddrPort) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.cur.Load()
	i := indexOf(old.dests, ap)
	if i < 0 {
		return fmt.Errorf("delete dest %s: %w", ap, ErrNoDest)
	}
	d := old.dests[i]
	dests := make([]*Dest, 0, len(old.dests)-1)
	dests = append(append(dests, old.dests[:i]...), old.dests[i+1:]...)
	d.SetAvailable(false)
	st := &state{cfg: old.cfg, id: old.id, dests: dests, sched: old.sched}
	if h, ok := old.sched.(delHook); ok {
		st.sched = h.onDel(&s.opts, dests, d, i)
	}
	s.cur.Store(st)
	s.trash[ap] = d
	return nil
}

// Update edits the service (ip_vs_edit_service): flags, timeout, netmask,
// persistence engine and the rest are replaced; the scheduler is rebound
// (its state reset) only when its name changes. The service key cannot
// change.
func (s *Service) Update(cfg spec.Service) error {
	if cfg.Scheduler == "" {
		cfg.Scheduler = spec.DefaultScheduler
	}
	id, ok := LookupScheduler(cfg.Scheduler)
	if !ok {
		return fmt.Errorf("edit service: %q: %w", cfg.Scheduler, ErrNoScheduler)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.cur.Load()
	if cfg.Key != old.cfg.Key {
		return fmt.Errorf("edit service: key %s differs from %s: %w", cfg.Key, old.cfg.Key, ErrInvalid)
	}
	cfg.LocalAddrs = slices.Clone(cfg.LocalAddrs)
	st := &state{cfg: cfg, id: old.id, dests: old.dests, sched: old.sched}
	if id != old.id {
		st.id = id
		st.sched = registry[id].new(&s.opts, old.dests)
	}
	s.cur.Store(st)
	return nil
}

// Tick runs the service's timers with the injected clock: the lblc/lblcr
// garbage collection (every 60 s) and the release of deleted destinations
// that no connection counts any more. Call it periodically (every few
// seconds is plenty) with the same clock as Options.Now.
func (s *Service) Tick(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.cur.Load().sched.(ticker); ok {
		t.tick(s.opts.since(now))
	}
	for ap, d := range s.trash {
		if d.ActiveConns()+d.InactConns()+d.PersistConns() <= 0 {
			delete(s.trash, ap)
		}
	}
}
