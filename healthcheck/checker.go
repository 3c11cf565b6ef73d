package healthcheck

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
)

// BootstrapDelay is keepalived's BOOTSTRAP_DELAY: no checker probes
// before it has passed (lib/scheduler.h).
const BootstrapDelay = time.Second

// Kind is a checker type, named as in keepalived.conf.
type Kind uint8

// The checker types. The state machine is the same for all of them
// (check_tcp.c tcp_epilog); HTTP_GET and SSL_GET add the URL bookkeeping
// of check_http.c when their prober is a URLProber.
const (
	KindTCP Kind = iota
	KindHTTP
	KindSSL
	KindUDP
	KindPing
	KindDNS
	KindMisc
	KindSMTP
	KindFile
)

var kindNames = [...]string{
	KindTCP: "TCP_CHECK", KindHTTP: "HTTP_GET", KindSSL: "SSL_GET", KindUDP: "UDP_CHECK",
	KindPing: "PING_CHECK", KindDNS: "DNS_CHECK", KindMisc: "MISC_CHECK", KindSMTP: "SMTP_CHECK",
	KindFile: "FILE_CHECK",
}

// String returns the keyword of the checker block ("TCP_CHECK").
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// proto is the protocol word of the service trio keepalived logs.
func (k Kind) proto() string {
	switch k {
	case KindUDP, KindDNS:
		return "udp"
	}
	return "tcp"
}

// successMsg and failMsg are keepalived's log lines for the state
// decisions (check_tcp.c tcp_epilog, check_http.c epilog, check_udp.c,
// check_ping.c). Kinds whose wording was not taken from keepalived use a
// generic line of the same shape.
func (k Kind) successMsg(svc string) string {
	switch k {
	case KindTCP:
		return "TCP connection to " + svc + " success."
	case KindHTTP, KindSSL:
		return "Remote Web server " + svc + " succeed on service."
	case KindUDP:
		return "UDP socket to " + svc + " success."
	case KindPing:
		return "ICMP connection to " + svc + " success."
	}
	return k.String() + " on service " + svc + " succeeded."
}

func (k Kind) failMsg(svc string, retry uint) string {
	name := k.String()
	if k == KindHTTP || k == KindSSL {
		name = "HTTP_CHECK" // check_http.c says so for both
	}
	if retry == 0 {
		return name + " on service " + svc + " failed."
	}
	return fmt.Sprintf("%s on service %s failed after %d retries.", name, svc, retry)
}

// ServiceString formats an address as keepalived's inet_sockaddrtotrio
// does: "[10.0.0.7]:tcp:80", "[2001:db8::7]:udp:53".
func ServiceString(a netip.AddrPort, proto string) string {
	return "[" + a.Addr().String() + "]:" + proto + ":" + strconv.Itoa(int(a.Port()))
}

// CheckerConfig is one checker block after keepalived's inheritance
// (§1.6 of the reference: RS → VS → checker defaults, done by the caller;
// Defaults gives the checker defaults). Durations are used as given.
type CheckerConfig struct {
	Kind Kind
	// Service names the checked service in log lines; empty means
	// ServiceString(Target.Addr, Kind's protocol).
	Service string
	// Target is where the probes go; Target.Timeout is connect_timeout.
	Target Target
	// DelayLoop is the period of probes while nothing fails.
	DelayLoop time.Duration
	// DelayBeforeRetry is the period of probes while retrying.
	DelayBeforeRetry time.Duration
	// Warmup bounds the random delay of the first probe after
	// BootstrapDelay.
	Warmup time.Duration
	// Retry is how many failures after the first one take an up checker
	// down (keepalived's retry; 0 allowed inside a checker).
	Retry uint
	// Alpha starts the checker down: its real server waits for a success.
	Alpha bool
	// LogAllFailures logs every failed probe, not only the deciding one.
	LogAllFailures bool
	// FastRecovery (HTTP_GET/SSL_GET): while down or before the first
	// verdict, the next URL is probed at once instead of after DelayLoop.
	FastRecovery bool
	// FromStart measures the delay to the next probe from the start of the
	// previous one, as MISC_CHECK does; otherwise from its end.
	FromStart bool
}

// Defaults returns keepalived's checker defaults for kind (§1.5): delay_loop
// 60 s, warmup = delay_loop, connect_timeout 5 s, retry 1 (MISC_CHECK 0,
// DNS_CHECK 3), delay_before_retry 1 s (HTTP_GET/SSL_GET 3 s, DNS_CHECK
// delay_loop). The caller overrides them with the RS and VS values.
func Defaults(kind Kind) CheckerConfig {
	c := CheckerConfig{
		Kind:             kind,
		DelayLoop:        60 * time.Second,
		Warmup:           60 * time.Second,
		DelayBeforeRetry: time.Second,
		Retry:            1,
		Target:           Target{Timeout: 5 * time.Second},
	}
	switch kind {
	case KindHTTP, KindSSL:
		c.DelayBeforeRetry = 3 * time.Second
	case KindDNS:
		c.Retry = 3
		c.DelayBeforeRetry = c.DelayLoop
	case KindMisc:
		c.Retry = 0
		c.FromStart = true
	}
	return c
}

// URLProber is a prober that checks several URLs, one per probe, as
// HTTP_GET and SSL_GET do; a Checker whose prober implements it (with at
// least one URL) keeps check_http.c's URL bookkeeping.
type URLProber interface {
	Prober
	URLCount() int
	ProbeURL(ctx context.Context, t Target, i int) Result
}

// Update is a checker's verdict, keepalived's update_svr_checker_state
// call: emitted when a probe decides the checker up or down (a state
// change, or the first verdict of the checker, which may confirm its
// state).
type Update struct {
	Checker *Checker
	// Up is the verdict; WasUp the checker's state before it.
	Up, WasUp bool
	// FirstRun is set on the checker's first verdict (keepalived's
	// !has_run), when the notifiers may run without a change.
	FirstRun bool
	// Alpha is the checker's alpha option.
	Alpha bool
	// Msg is keepalived's log line for the verdict.
	Msg string
}

// Options wires a Checker to its surroundings. Zero fields take
// defaults: the real clock, math/rand/v2, no logging, no callbacks.
type Options struct {
	Clock Clock
	// Rand returns a number in [0, 1) that spreads the first probe over
	// the warmup (keepalived: random()/RAND_MAX).
	Rand func() float64
	// Logger receives the checker's log lines (nil: none).
	Logger *zap.Logger
	// OnUpdate receives the verdicts, in order, from the checker's
	// goroutine; it must not call Stop of the same checker.
	OnUpdate func(Update)
	// OnResult, when set, receives every probe's result (for weights
	// asked by MISC_CHECK and FILE_CHECK, or statistics).
	OnResult func(c *Checker, r Result)
}

// Checker runs one checker block: it probes on the schedule of §2.1 and
// turns results into up and down with keepalived's state machine.
type Checker struct {
	cfg    CheckerConfig
	prober Prober
	urls   URLProber
	nurls  int
	opt    Options
	svc    string

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	timer     Timer
	started   bool
	stopped   bool
	disabled  bool
	isUp      bool
	hasRun    bool
	retryIt   uint
	urlIt     int
	failedURL int // -1: none
	probes    uint64
	// for Status
	lastOK  bool
	lastMsg string
	lastAt  time.Time
	nextAt  time.Time // zero: no probe scheduled
}

// NewChecker returns a stopped checker; Start begins probing. The
// checker starts up, or down with Alpha; either way the first failed
// probe takes it down at once (keepalived sets retry_it = retry at start).
func NewChecker(cfg CheckerConfig, p Prober, opt Options) *Checker {
	if opt.Clock == nil {
		opt.Clock = RealClock{}
	}
	if opt.Rand == nil {
		opt.Rand = rand.Float64
	}
	c := &Checker{cfg: cfg, prober: p, opt: opt, svc: cfg.Service,
		isUp: !cfg.Alpha, retryIt: cfg.Retry, failedURL: -1}
	if c.svc == "" {
		c.svc = ServiceString(cfg.Target.Addr, cfg.Kind.proto())
	}
	if u, ok := p.(URLProber); ok && u.URLCount() > 0 {
		c.urls, c.nurls = u, u.URLCount()
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// Config returns the checker's configuration.
func (c *Checker) Config() CheckerConfig { return c.cfg }

// Service returns the service string of the log lines.
func (c *Checker) Service() string { return c.svc }

// Up reports the checker's state.
func (c *Checker) Up() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.isUp
}

// Probes returns how many probes have completed.
func (c *Checker) Probes() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.probes
}

// Status is a snapshot of a checker for status views (uvsadm
// --list-checkers, uvsd's SIGUSR1 dump).
type Status struct {
	Up bool
	// LastOK, LastMsg and LastAt are the last probe's result, its message
	// (the verdict's log line when it decided one, else the prober's, else
	// the kind's success or failure line) and its time; LastAt is zero
	// before the first probe.
	LastOK  bool
	LastMsg string
	LastAt  time.Time
	// Next is when the next probe is due; zero when none is scheduled.
	Next time.Time
	// RetriesLeft is how many failures the checker still takes before it
	// decides down; 0 while down.
	RetriesLeft uint
	Probes      uint64
}

// Status returns the checker's state, last result and next run.
func (c *Checker) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := Status{Up: c.isUp, LastOK: c.lastOK, LastMsg: c.lastMsg, LastAt: c.lastAt, Next: c.nextAt, Probes: c.probes}
	if c.isUp && c.retryIt <= c.cfg.Retry {
		st.RetriesLeft = c.cfg.Retry - c.retryIt
	}
	return st
}

// arm schedules run after d. c.mu is held.
func (c *Checker) arm(d time.Duration) {
	c.nextAt = c.opt.Clock.Now().Add(d)
	c.timer = c.opt.Clock.AfterFunc(d, c.run)
}

// Start schedules the first probe at BootstrapDelay + Warmup × Rand().
// Calling it again, or after Stop, does nothing.
func (c *Checker) Start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started || c.stopped {
		return
	}
	c.started = true
	d := BootstrapDelay + time.Duration(float64(c.cfg.Warmup)*c.opt.Rand())
	c.arm(d)
}

// SetEnabled enables or disables probing (keepalived's ha_suspend: the
// checkers of a virtual server whose address is not on the host are
// disabled). A disabled checker keeps its state and its schedule, but at
// each due time re-arms delay_loop without probing. Checkers start
// enabled.
func (c *Checker) SetEnabled(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.disabled = !on
}

// Stop cancels the pending probe, cancels a running one and waits for it
// to return. No callback runs after Stop returns.
func (c *Checker) Stop() {
	c.mu.Lock()
	c.stopped = true
	c.nextAt = time.Time{}
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}

// run is one probe and its epilogue.
func (c *Checker) run() {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	if c.disabled {
		c.arm(c.cfg.DelayLoop)
		c.mu.Unlock()
		return
	}
	c.wg.Add(1)
	defer c.wg.Done()
	url := c.urlIt
	c.nextAt = time.Time{}
	c.mu.Unlock()

	start := c.opt.Clock.Now()
	var r Result
	if c.urls != nil {
		r = c.urls.ProbeURL(c.ctx, c.cfg.Target, url)
	} else {
		r = c.prober.Probe(c.ctx, c.cfg.Target)
	}
	if c.ctx.Err() != nil {
		return // stopped while probing: the result means nothing
	}

	c.mu.Lock()
	c.probes++
	wasUp := c.isUp
	delay, u := c.epilog(r.OK, url)
	c.lastOK, c.lastMsg, c.lastAt = r.OK, r.Msg, c.opt.Clock.Now()
	switch {
	case u != nil:
		c.lastMsg = u.Msg
	case r.Msg == "" && r.OK:
		c.lastMsg = c.cfg.Kind.successMsg(c.svc)
	case r.Msg == "":
		c.lastMsg = c.cfg.Kind.failMsg(c.svc, 0)
	}
	c.mu.Unlock()

	if c.opt.OnResult != nil {
		c.opt.OnResult(c, r)
	}
	if log := c.opt.Logger; log != nil {
		switch {
		case !r.OK && wasUp && c.cfg.LogAllFailures && r.Msg != "":
			// keepalived logs a failed attempt only with log_all_failures
			log.Info(r.Msg, zap.String("checker", c.cfg.Kind.String()))
		case r.OK && !wasUp && c.urls != nil && r.Msg != "":
			// and each passing URL while the checker is down
			log.Info(r.Msg, zap.String("checker", c.cfg.Kind.String()))
		}
		if u != nil {
			log.Info(u.Msg, zap.String("checker", c.cfg.Kind.String()))
		}
	}
	if u != nil && c.opt.OnUpdate != nil {
		c.opt.OnUpdate(*u)
	}

	if c.cfg.FromStart {
		delay -= c.opt.Clock.Now().Sub(start)
	}
	c.mu.Lock()
	if !c.stopped {
		c.arm(delay)
	}
	c.mu.Unlock()
}

// epilog applies one probe result of URL url (0 without URLs) and returns
// the delay to the next probe and the verdict, if any. c.mu is held.
func (c *Checker) epilog(ok bool, url int) (time.Duration, *Update) {
	if c.nurls > 0 {
		return c.httpEpilog(ok, url)
	}
	// The TCP form (check_tcp.c tcp_epilog as the reference §2.2 gives it):
	//
	//	if ok || ((is_up || !has_run) && retry_it >= retry): retry_it = 0, decide
	//	elif is_up: retry after delay_before_retry, retry_it++
	delay := c.cfg.DelayLoop
	var u *Update
	if ok || ((c.isUp || !c.hasRun) && c.retryIt >= c.cfg.Retry) {
		c.retryIt = 0
		if ok && (!c.isUp || !c.hasRun) {
			u = c.decide(true, c.cfg.Kind.successMsg(c.svc))
		} else if !ok && (c.isUp || !c.hasRun) {
			n := c.cfg.Retry
			if !c.hasRun {
				n = 0 // "failed." on the first run
			}
			u = c.decide(false, c.cfg.Kind.failMsg(c.svc, n))
		}
	} else if c.isUp {
		delay = c.cfg.DelayBeforeRetry
		c.retryIt++
	}
	c.hasRun = true
	return delay, u
}

// decide records a verdict. c.mu is held.
func (c *Checker) decide(up bool, msg string) *Update {
	u := &Update{Checker: c, Up: up, WasUp: c.isUp, FirstRun: !c.hasRun, Alpha: c.cfg.Alpha, Msg: msg}
	c.isUp = up
	return u
}

// httpEpilog is check_http.c's epilog for HTTP_GET and SSL_GET (reference
// §2.3.2). A success (REGISTER_CHECKER_NEW) moves to the next URL after
// delay_loop; passing the last URL with no failed URL decides up. A
// failure while up or before the first verdict (REGISTER_CHECKER_RETRY)
// retries the same URL after delay_before_retry; the retry+1st decides
// down and remembers the URL as failed_url, the only URL probed while
// down, every max(delay_before_retry, delay_loop). When it passes, every
// URL is checked again from the first before up — so even a one-URL
// checker needs two successes to come back. fast_recovery probes at once
// while the checker has not run yet, or is down without a failed URL.
//
// Two details follow keepalived exactly: the first verdict of an alpha
// checker that fails is not reported (has_run is set before the epilogue),
// and the retry count of the log line is retry_it - 1. One does not: a URL
// failing while down without a failed URL (during the re-check) becomes
// the failed URL, where keepalived keeps retrying it every
// delay_before_retry (at once with fast_recovery, a busy loop).
func (c *Checker) httpEpilog(ok bool, url int) (time.Duration, *Update) {
	const (
		methodNew = iota
		methodRetry
		methodFailed
	)
	var u *Update
	method := methodFailed
	end := false
	switch {
	case ok:
		method = methodNew
		c.urlIt = url + 1
		end = c.urlIt >= c.nurls
		c.retryIt = 0
	case c.isUp || !c.hasRun:
		method = methodRetry
		c.hasRun = true
		c.retryIt++
	}

	switch {
	case method == methodNew && end && c.failedURL < 0:
		if !c.isUp || !c.hasRun {
			u = c.decide(true, c.cfg.Kind.successMsg(c.svc))
			c.hasRun = true
		}
		c.urlIt, c.retryIt = 0, 0
	case method == methodRetry && c.retryIt > c.cfg.Retry:
		if c.isUp {
			n := c.retryIt - 1
			if c.cfg.Retry == 0 {
				n = 0
			}
			u = c.decide(false, c.cfg.Kind.failMsg(c.svc, n))
		}
		c.failedURL = url
	case method == methodNew && c.failedURL >= 0:
		c.failedURL = -1
		c.urlIt, c.retryIt = 0, 0
	case method == methodFailed && c.failedURL < 0:
		c.failedURL = url // not in keepalived: see above
	}
	if method != methodNew {
		c.urlIt = url
	}

	var delay time.Duration
	switch {
	case method == methodNew:
		delay = c.cfg.DelayLoop
		if !c.hasRun {
			c.retryIt = c.cfg.Retry
		}
	case c.failedURL >= 0:
		delay = max(c.cfg.DelayBeforeRetry, c.cfg.DelayLoop)
	default:
		delay = c.cfg.DelayBeforeRetry
	}
	if c.cfg.FastRecovery && (!c.hasRun || (!c.isUp && c.failedURL < 0)) {
		delay = 0
	}
	return delay, u
}
