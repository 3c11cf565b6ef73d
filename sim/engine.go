package sim

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/uvs-lb/uvs/ipvsadm"
	"github.com/uvs-lb/uvs/sched"
	"github.com/uvs-lb/uvs/spec"
)

// Config is the input of one simulation.
type Config struct {
	RulesName string    // name used in error messages
	Rules     io.Reader // ipvsadm save format

	EventsName string
	Events     io.Reader // nil: no events

	TraceInName string
	TraceIn     io.Reader // nil: generate Workload instead

	Workload Workload
	Seed     uint64

	// ListHashOrder builds mh and sh tables in the kernel's list order
	// (newest real server first), as uvsd --hash-order list does. The zero
	// value builds them from the real servers sorted by address and port,
	// uvsd's default (sched.Options.SortHashDests), so the simulator
	// answers what uvsd would.
	ListHashOrder bool

	Trace bool      // print one line per new connection
	Why   bool      // with Trace: add the scheduler's reason
	SVG   io.Writer // nil: no chart
}

// epoch is the simulated wall-clock origin handed to the schedulers.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// tickInterval is how often the services' timers (lblc/lblcr garbage
// collection, trash release) run in simulated time.
const tickInterval = 10 * time.Second

// Run simulates cfg and writes the trace (if asked) and the summary to out,
// and the chart to cfg.SVG. Input problems are returned as *InputError
// before anything is written.
func Run(cfg Config, out io.Writer) error {
	s, err := newSimulator(cfg)
	if err != nil {
		return err
	}
	if err := s.run(out); err != nil {
		return err
	}
	if err := s.report(out); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	if cfg.SVG != nil {
		if err := s.writeSVG(cfg.SVG); err != nil {
			return fmt.Errorf("write svg: %w", err)
		}
	}
	return nil
}

// svcState is a service under simulation with its accounting.
type svcState struct {
	key     spec.ServiceKey
	svc     *sched.Service
	hashing bool // sh dh mh lblc lblcr: count remapped clients
	byPort  bool // the hash includes the client port (sh-port/mh-port)

	conns, dropped int
	stats          map[netip.AddrPort]*destStats
	order          []*destStats // first-seen order
	clients        map[netip.AddrPort]mapping
	remapped       int
	templates      int // persistence templates created
}

// mapping is where a client went last, and in which configuration epoch.
type mapping struct {
	dest  netip.AddrPort
	epoch int
}

// destStats is the accounting of one destination of one service.
type destStats struct {
	ap       netip.AddrPort
	conns    int
	open     int // connections currently held
	peak     int
	area     float64 // integral of open over time, in connection·ns
	last     time.Duration
	expected float64 // sum over arrivals of weight/total weight
	moved    int     // clients remapped away from it after an event
	points   []point // (time, open) after each change, for the chart
}

type point struct {
	t time.Duration
	n int32
}

// departure is a connection that ends at at.
type departure struct {
	at     time.Duration
	seq    uint64
	dest   *sched.Dest
	ds     *destStats
	active bool
}

// departures is a binary min-heap ordered by (at, seq), hand-written to
// avoid container/heap's boxing of every element.
type departures []departure

func (h departures) less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}

func (h *departures) push(d departure) {
	*h = append(*h, d)
	q := *h
	for i := len(q) - 1; i > 0; {
		p := (i - 1) / 2
		if !q.less(i, p) {
			break
		}
		q[i], q[p] = q[p], q[i]
		i = p
	}
}

func (h *departures) pop() departure {
	q := *h
	top := q[0]
	n := len(q) - 1
	q[0] = q[n]
	q[n] = departure{}
	q = q[:n]
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < n && q.less(l, m) {
			m = l
		}
		if r := l + 1; r < n && q.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
	*h = q
	return top
}

type simulator struct {
	cfg    Config
	now    time.Duration
	rng    *rand.Rand // workload
	srng   *rand.Rand // scheduler draws (twos)
	svcs   []*svcState
	byKey  map[spec.ServiceKey]*svcState
	events []Event
	trace  []Arrival
	gen    *generator
	tmpl   *sched.MapTemplates
	flow   sched.Flow
	why    sched.Reason
	deps   departures
	seq    uint64
	epoch  int
	end    time.Duration
	record bool // keep chart points
	nconn  int
}

func newSimulator(cfg Config) (*simulator, error) {
	s := &simulator{
		cfg:    cfg,
		rng:    rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15)),
		srng:   rand.New(rand.NewPCG(cfg.Seed, 0xda942042e4dd58b5)),
		byKey:  make(map[spec.ServiceKey]*svcState),
		record: cfg.SVG != nil,
		tmpl:   sched.NewMapTemplates(),
	}
	if err := s.loadRules(); err != nil {
		return nil, err
	}
	if cfg.Events != nil {
		evs, err := ParseEvents(cfg.Events, cfg.EventsName)
		if err != nil {
			return nil, err
		}
		if err := s.checkEvents(evs); err != nil {
			return nil, err
		}
		s.events = evs
	}
	if cfg.TraceIn != nil {
		tr, err := ParseTrace(cfg.TraceIn, cfg.TraceInName)
		if err != nil {
			return nil, err
		}
		for _, a := range tr {
			if s.lookup(a.Proto, a.VIP) == nil {
				return nil, inputErr(cfg.TraceInName, a.Line, a.VIP.String(), "no %s service for this address in %s", a.Proto, cfg.RulesName)
			}
		}
		s.trace = tr
		return s, nil
	}
	w := cfg.Workload
	if err := w.Validate(); err != nil {
		return nil, &InputError{File: "flags", Err: err}
	}
	var targets []spec.ServiceKey
	for _, st := range s.svcs {
		if st.key.IsFWMark() {
			continue
		}
		if w.Proto == 0 {
			w.Proto = st.key.Proto
		}
		if st.key.Proto == w.Proto {
			targets = append(targets, st.key)
		}
	}
	if len(targets) == 0 {
		return nil, inputErr(cfg.RulesName, 0, "", "no %s service (other than fwmark) to send the generated workload to", protoName(w.Proto))
	}
	s.gen = &generator{w: w, rng: s.rng, targets: targets}
	return s, nil
}

func protoName(p spec.Proto) string {
	if p == 0 {
		return "TCP/UDP/SCTP"
	}
	return p.String()
}

// options returns the scheduler options: the simulated clock, the seeded
// scheduler RNG and the order mh and sh build their tables in.
func (s *simulator) options() sched.Options {
	return sched.Options{
		Now:           func() time.Time { return epoch.Add(s.now) },
		Rand:          func(n uint32) uint32 { return s.srng.Uint32N(n) },
		SortHashDests: !s.cfg.ListHashOrder,
	}
}

// loadRules applies the rules file in order.
func (s *simulator) loadRules() error {
	name := s.cfg.RulesName
	cmds, err := parseRules(s.cfg.Rules, name)
	if err != nil {
		var le *ipvsadm.LineError
		if errors.As(err, &le) {
			return &InputError{File: le.Name, Line: le.Line, Token: le.Err.Token, Err: errors.New(le.Err.Msg)}
		}
		return &InputError{File: name, Err: err}
	}
	for _, c := range cmds {
		if err := s.apply(c); err != nil {
			tok := cmdToken(c)
			if errors.Is(err, sched.ErrNoScheduler) {
				tok = c.Service.Scheduler
			}
			return &InputError{File: name, Line: c.Line, Token: tok, Err: err}
		}
	}
	if len(s.svcs) == 0 {
		return inputErr(name, 0, "", "no virtual service defined")
	}
	return nil
}

// cmdToken names what a rules command is about, for error messages.
func cmdToken(c ipvsadm.Command) string {
	switch c.Kind {
	case ipvsadm.CmdAddServer, ipvsadm.CmdEditServer, ipvsadm.CmdDelServer:
		return c.Dest.AddrPort().String()
	case ipvsadm.CmdFlush:
		return "-C"
	}
	if c.HasService {
		return serviceArg(c.Service.Key)
	}
	return c.Kind.String()
}

// serviceArg formats a key as its ipvsadm option: "-t 10.0.0.1:80".
func serviceArg(k spec.ServiceKey) string {
	if k.IsFWMark() {
		return fmt.Sprintf("-f %d", k.FWMark)
	}
	opt := "-t"
	switch k.Proto {
	case spec.ProtoUDP:
		opt = "-u"
	case spec.ProtoSCTP:
		opt = "--sctp-service"
	}
	return opt + " " + netip.AddrPortFrom(k.Addr, k.Port).String()
}

func (s *simulator) apply(c ipvsadm.Command) error {
	switch c.Kind {
	case ipvsadm.CmdAddService:
		if s.byKey[c.Service.Key] != nil {
			return errors.New("service already exists")
		}
		svc, err := sched.NewService(c.Service, s.options())
		if err != nil {
			return err
		}
		st := &svcState{
			key:     c.Service.Key,
			svc:     svc,
			stats:   make(map[netip.AddrPort]*destStats),
			clients: make(map[netip.AddrPort]mapping),
		}
		st.configure(c.Service)
		s.svcs = append(s.svcs, st)
		s.byKey[st.key] = st
		return nil
	case ipvsadm.CmdEditService:
		st := s.byKey[c.Service.Key]
		if st == nil {
			return errors.New("no such service")
		}
		if err := st.svc.Update(c.Service); err != nil {
			return err
		}
		st.configure(c.Service)
		return nil
	case ipvsadm.CmdDelService:
		st := s.byKey[c.Service.Key]
		if st == nil {
			return errors.New("no such service")
		}
		delete(s.byKey, st.key)
		s.svcs = slices.DeleteFunc(s.svcs, func(x *svcState) bool { return x == st })
		return nil
	case ipvsadm.CmdFlush:
		clear(s.byKey)
		s.svcs = nil
		return nil
	case ipvsadm.CmdAddServer, ipvsadm.CmdEditServer, ipvsadm.CmdDelServer:
		st := s.byKey[c.Service.Key]
		if st == nil {
			return errors.New("no such service")
		}
		switch c.Kind {
		case ipvsadm.CmdAddServer:
			_, err := st.svc.AddDest(c.Dest)
			return err
		case ipvsadm.CmdEditServer:
			return st.svc.EditDest(c.Dest)
		}
		return st.svc.DelDest(c.Dest.AddrPort())
	case ipvsadm.CmdZero, ipvsadm.CmdSetTimeout, ipvsadm.CmdAddLaddr, ipvsadm.CmdDelLaddr:
		return nil // no effect on scheduling
	}
	return fmt.Errorf("command %s is not allowed in a rules file", c.Kind)
}

// configure notes the scheduler properties the accounting depends on.
func (st *svcState) configure(c spec.Service) {
	switch c.Scheduler {
	case "sh", "mh":
		st.hashing, st.byPort = true, c.Flags&spec.SchedFlag2 != 0
	case "dh", "lblc", "lblcr":
		st.hashing, st.byPort = true, false
	default:
		st.hashing, st.byPort = false, false
	}
}

// lookup finds the service a connection to vip reaches: the exact
// (proto, addr, port) service, else the port-0 one (ip_vs_service_find).
func (s *simulator) lookup(p spec.Proto, vip netip.AddrPort) *svcState {
	k := spec.ServiceKey{Proto: p, Addr: vip.Addr(), Port: vip.Port()}
	if st := s.byKey[k]; st != nil {
		return st
	}
	k.Port = 0
	return s.byKey[k]
}

// checkEvents replays the events against a copy of the configuration, so
// an event naming a missing service or destination (or adding one twice)
// is rejected before the simulation starts.
func (s *simulator) checkEvents(evs []Event) error {
	shadow := make(map[spec.ServiceKey]map[netip.AddrPort]spec.Dest)
	for _, st := range s.svcs {
		m := make(map[netip.AddrPort]spec.Dest)
		for _, d := range st.svc.Dests() {
			m[d.AddrPort()] = d.Config()
		}
		shadow[st.key] = m
	}
	name := s.cfg.EventsName
	for _, ev := range evs {
		m := shadow[ev.Service]
		if m == nil {
			return inputErr(name, ev.Line, serviceArg(ev.Service), "no such service in %s", s.cfg.RulesName)
		}
		ap := ev.Dest.AddrPort()
		_, exists := m[ap]
		if ev.Verb == VerbAdd {
			if exists {
				return inputErr(name, ev.Line, ap.String(), "destination already exists at %s", fmtTime(ev.At))
			}
		} else if !exists {
			return inputErr(name, ev.Line, ap.String(), "no such destination at %s", fmtTime(ev.At))
		}
		switch ev.Verb {
		case VerbAdd, VerbEdit:
			if ev.Dest.LThreshold > ev.Dest.UThreshold {
				return inputErr(name, ev.Line, ap.String(), "lower threshold %d above upper threshold %d", ev.Dest.LThreshold, ev.Dest.UThreshold)
			}
			m[ap] = ev.Dest
		case VerbDel:
			delete(m, ap)
		}
	}
	return nil
}

// applyEvent changes the running configuration.
func (s *simulator) applyEvent(ev Event) error {
	st := s.byKey[ev.Service]
	if st == nil {
		return fmt.Errorf("%s:%d: no such service", s.cfg.EventsName, ev.Line)
	}
	ap := ev.Dest.AddrPort()
	var err error
	switch ev.Verb {
	case VerbAdd:
		_, err = st.svc.AddDest(ev.Dest)
	case VerbEdit:
		err = st.svc.EditDest(ev.Dest)
	case VerbDel:
		err = st.svc.DelDest(ap)
	default:
		d := st.svc.Dest(ap)
		if d == nil {
			err = sched.ErrNoDest
			break
		}
		c := d.Config()
		switch ev.Verb {
		case VerbWeight:
			c.Weight = ev.Weight
			err = st.svc.EditDest(c)
		case VerbClear:
			c.UThreshold, c.LThreshold = 0, 0
			err = st.svc.EditDest(c)
		case VerbOverload:
			total := d.ActiveConns() + d.InactConns()
			c.UThreshold, c.LThreshold = uint32(max(total, 1)), 0
			if err = st.svc.EditDest(c); err == nil && total > 0 {
				// The classic code only sets OVERLOAD when a connection
				// is bound; re-evaluate now, as kernels with the
				// threshold rework do, with a bind/unbind pair that
				// leaves the counters unchanged.
				d.BindConn(false)
				d.UnbindConn(false, false)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("%s:%d: %w", s.cfg.EventsName, ev.Line, err)
	}
	s.epoch++
	return nil
}

// nextArrival returns the next arrival without consuming it.
type arrivalSource struct {
	s       *simulator
	pending Arrival
	ok      bool
	i       int
}

func (a *arrivalSource) fill() {
	if a.ok {
		return
	}
	if a.s.gen != nil {
		a.pending, a.ok = a.s.gen.next()
		return
	}
	if a.i < len(a.s.trace) {
		a.pending, a.ok = a.s.trace[a.i], true
		a.i++
	}
}

// run is the discrete-event loop. At one instant, departures come first,
// then the services' timers, then configuration events, then arrivals.
func (s *simulator) run(out io.Writer) error {
	src := &arrivalSource{s: s}
	ei := 0
	nextTick := tickInterval
	tw := newTraceWriter(out, s.cfg.Why)
	for {
		src.fill()
		const never = time.Duration(1<<63 - 1)
		td, te, ta := never, never, never
		if len(s.deps) > 0 {
			td = s.deps[0].at
		}
		if ei < len(s.events) {
			te = s.events[ei].At
		}
		if src.ok {
			ta = src.pending.At
		}
		first := min(td, te, ta)
		if first == never {
			break
		}
		switch {
		case td == first:
			s.now = td
			s.depart(s.deps.pop())
		case nextTick <= first:
			s.now = nextTick
			for _, st := range s.svcs {
				st.svc.Tick(epoch.Add(s.now))
			}
			s.tmpl.Expire(epoch.Add(s.now))
			nextTick += tickInterval
		case te == first:
			s.now = te
			if err := s.applyEvent(s.events[ei]); err != nil {
				return err
			}
			if s.cfg.Trace {
				tw.event(s.now, s.events[ei])
			}
			ei++
		default:
			s.now = ta
			src.ok = false
			s.arrive(src.pending, tw)
		}
		if tw.err != nil {
			return fmt.Errorf("write trace: %w", tw.err)
		}
	}
	s.end = s.now
	for _, st := range s.svcs {
		for _, ds := range st.order {
			ds.advance(s.end)
		}
	}
	return tw.flush()
}

// advance accumulates the time-weighted open count up to t.
func (ds *destStats) advance(t time.Duration) {
	ds.area += float64(ds.open) * float64(t-ds.last)
	ds.last = t
}

func (ds *destStats) change(t time.Duration, delta int, record bool) {
	ds.advance(t)
	ds.open += delta
	ds.peak = max(ds.peak, ds.open)
	if record {
		if n := len(ds.points); n > 0 && ds.points[n-1].t == t {
			ds.points[n-1].n = int32(ds.open)
		} else {
			ds.points = append(ds.points, point{t, int32(ds.open)})
		}
	}
}

func (st *svcState) statsFor(ap netip.AddrPort) *destStats {
	ds := st.stats[ap]
	if ds == nil {
		ds = &destStats{ap: ap}
		st.stats[ap] = ds
		st.order = append(st.order, ds)
	}
	return ds
}

func (s *simulator) arrive(a Arrival, tw *traceWriter) {
	st := s.lookup(a.Proto, a.VIP)
	if st == nil {
		return // cannot happen: checked when the trace was read
	}
	s.nconn++
	st.conns++
	f := &s.flow // reused: the scheduler's interface calls make a local escape
	*f = sched.Flow{
		Proto:   a.Proto,
		Src:     a.Client.Addr(),
		SrcPort: a.Client.Port(),
		Dst:     a.VIP.Addr(),
		DstPort: a.VIP.Port(),
	}
	// Expected share: each destination's weight over the total, at the
	// moment of this arrival.
	var total int64
	dests := st.svc.Dests()
	for _, d := range dests {
		if w := d.Weight(); w > 0 {
			total += int64(w)
		}
	}
	if total > 0 {
		for _, d := range dests {
			if w := d.Weight(); w > 0 {
				st.statsFor(d.AddrPort()).expected += float64(w) / float64(total)
			}
		}
	}
	// SchedulePersistent is the whole new-connection decision: templates
	// for persistent services, the plain scheduler otherwise.
	var whyp *sched.Reason
	if s.cfg.Trace && s.cfg.Why {
		whyp = &s.why
	}
	dec := st.svc.SchedulePersistent(f, s.tmpl, epoch.Add(s.now), whyp)
	d := dec.Dest
	if dec.NewTemplate {
		st.templates++
	}
	if s.cfg.Trace {
		tw.conn(s.now, a, st.key, d, &s.why)
	}
	if d == nil {
		st.dropped++
		return
	}
	ap := d.AddrPort()
	ds := st.statsFor(ap)
	ds.conns++
	if st.hashing {
		ck := a.Client
		if !st.byPort {
			ck = netip.AddrPortFrom(ck.Addr(), 0)
		}
		if m, ok := st.clients[ck]; ok && m.dest != ap && m.epoch != s.epoch {
			st.remapped++
			st.statsFor(m.dest).moved++
		}
		st.clients[ck] = mapping{dest: ap, epoch: s.epoch}
	}
	// Kernel accounting: bound inactive; TCP (and SCTP) turn active with
	// the first packet's state transition; UDP never does.
	d.BindConn(false)
	active := a.Proto == spec.ProtoTCP || a.Proto == spec.ProtoSCTP
	if active {
		d.SetActive(true)
	}
	ds.change(s.now, 1, s.record)
	s.seq++
	s.deps.push(departure{at: s.now + a.Hold, seq: s.seq, dest: d, ds: ds, active: active})
}

func (s *simulator) depart(dp departure) {
	dp.dest.UnbindConn(false, dp.active)
	dp.ds.change(s.now, -1, s.record)
}
