package healthcheck

import (
	"sync"
)

// RSEvent is a real server's change as keepalived's perform_svr_state and
// do_rs_notifies see it.
type RSEvent struct {
	RS *RealServer
	// Alive is the real server's state after the event.
	Alive bool
	// Transition is set when Alive changed: the director adds the real
	// server to the pool (or enables it) or removes (or quiesces) it.
	// Without it the event only asks for the notifiers (notify_up or
	// notify_down) — keepalived's first-run rule for a checker that
	// confirms its state.
	Transition bool
	// Update is the checker verdict that caused the event.
	Update Update
}

// RealServer aggregates its checkers as keepalived's
// update_svr_checker_state does (ipwrapper.c, reference §2.4): the real
// server is alive iff all its checkers are up. A real server without
// checkers is always alive.
type RealServer struct {
	name     string
	onChange func(RSEvent)

	mu       sync.Mutex
	failed   int // num_failed_checkers
	checkers []*Checker
}

// NewRealServer returns an alive real server without checkers. onChange
// (may be nil) receives its events, in order, from the checkers'
// goroutines, one at a time; it runs under the real server's lock, so it
// must not call the real server's methods (the event carries its state).
func NewRealServer(name string, onChange func(RSEvent)) *RealServer {
	return &RealServer{name: name, onChange: onChange}
}

// Name returns the name given to NewRealServer.
func (rs *RealServer) Name() string { return rs.name }

// AddChecker creates a checker of this real server. An alpha checker
// starts down, so the real server is not alive until it succeeds.
// opt.OnUpdate, when set, is called before the real server handles the
// verdict. Start the checkers with Start.
func (rs *RealServer) AddChecker(cfg CheckerConfig, p Prober, opt Options) *Checker {
	inner := opt.OnUpdate
	opt.OnUpdate = func(u Update) {
		if inner != nil {
			inner(u)
		}
		rs.Apply(u)
	}
	c := NewChecker(cfg, p, opt)
	rs.mu.Lock()
	rs.checkers = append(rs.checkers, c)
	if cfg.Alpha {
		rs.failed++
	}
	rs.mu.Unlock()
	return c
}

// Alive reports whether all checkers are up.
func (rs *RealServer) Alive() bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.failed == 0
}

// Checkers returns the real server's checkers.
func (rs *RealServer) Checkers() []*Checker {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return append([]*Checker(nil), rs.checkers...)
}

// Start starts every checker.
func (rs *RealServer) Start() {
	for _, c := range rs.Checkers() {
		c.Start()
	}
}

// Stop stops every checker and waits for their probes.
func (rs *RealServer) Stop() {
	for _, c := range rs.Checkers() {
		c.Stop()
	}
}

// Apply handles one checker verdict (exported for checkers wired by
// hand). The rules:
//   - a verdict that confirms the checker's state changes nothing, except on
//     the checker's first run when it is alpha or down: then the notifiers
//     run (an event without Transition);
//   - up: the last failed checker coming up makes the real server alive;
//   - down: the first failed checker makes it dead.
func (rs *RealServer) Apply(u Update) {
	rs.mu.Lock()
	defer rs.mu.Unlock() // onChange runs under mu: events stay in order
	ev := RSEvent{RS: rs, Update: u}
	switch {
	case u.Up == u.WasUp:
		if !u.FirstRun || !(u.Alpha || !u.Up) {
			return
		}
		ev.Alive = rs.failed == 0
	case u.Up:
		ev.Transition = rs.failed <= 1
		if rs.failed > 0 {
			rs.failed--
		}
		ev.Alive = rs.failed == 0
	default:
		ev.Transition = rs.failed == 0
		rs.failed++
		ev.Alive = false
	}
	if !ev.Transition && u.Up != u.WasUp {
		return
	}
	if rs.onChange != nil {
		rs.onChange(ev)
	}
}
