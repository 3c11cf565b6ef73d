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
	switch k {
	case KindHTTP:
		name = "HTTP_CHECK"
	case KindSSL:
		name = "SSL_CHECK"
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
	isUp      bool
	hasRun    bool
	retryIt   uint
	urlIt     int
	failedURL int // -1: none
	probes    uint64
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
	c.timer = c.opt.Clock.AfterFunc(d, c.run)
}

// Stop cancels the pending probe, cancels a running one and waits for it
// to return. No callback runs after Stop returns.
func (c *Checker) Stop() {
	c.mu.Lock()
	c.stopped = true
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
	c.wg.Add(1)
	defer c.wg.Done()
	url := c.urlIt
	if c.failedURL >= 0 {
		url = c.failedURL
	}
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
	delay, u := c.epilog(r.OK, url)
	c.mu.Unlock()

	if c.opt.OnResult != nil {
		c.opt.OnResult(c, r)
	}
	if log := c.opt.Logger; log != nil {
		if !r.OK && c.cfg.LogAllFailures && r.Msg != "" {
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
		c.timer = c.opt.Clock.AfterFunc(delay, c.run)
	}
	c.mu.Unlock()
}

// epilog applies one probe result of URL url (0 without URLs) and returns
// the delay to the next probe and the verdict, if any. c.mu is held.
//
// The TCP form (check_tcp.c tcp_epilog, reference §2.2):
//
//	if ok || ((is_up || !has_run) && retry_it >= retry): retry_it = 0, decide
//	elif is_up: retry after delay_before_retry, retry_it++
//
// The HTTP form (check_http.c epilog, §2.3.2) keeps the same counts over a
// list of URLs: a success moves to the next URL (after delay_loop, or at
// once with fast_recovery while down or before the first verdict), the
// last one decides up; failures retry the same URL; the deciding failure
// remembers it as failed_url, which alone is probed while down, every
// max(delay_before_retry, delay_loop). When failed_url passes, the URLs
// are checked again from the first (from the one after it when it is the
// first) before the checker goes up.
func (c *Checker) epilog(ok bool, url int) (time.Duration, *Update) {
	delay := c.cfg.DelayLoop
	var u *Update
	decide := func(up bool, msg string) {
		u = &Update{Checker: c, Up: up, WasUp: c.isUp, FirstRun: !c.hasRun, Alpha: c.cfg.Alpha, Msg: msg}
		c.isUp = up
	}
	if c.nurls == 0 {
		if ok || ((c.isUp || !c.hasRun) && c.retryIt >= c.cfg.Retry) {
			c.retryIt = 0
			if ok && (!c.isUp || !c.hasRun) {
				decide(true, c.cfg.Kind.successMsg(c.svc))
			} else if !ok && (c.isUp || !c.hasRun) {
				decide(false, c.cfg.Kind.failMsg(c.svc, c.cfg.Retry))
			}
		} else if c.isUp {
			delay = c.cfg.DelayBeforeRetry
			c.retryIt++
		}
		c.hasRun = true
		return delay, u
	}

	if ok {
		c.retryIt = 0
		next := url + 1
		if c.failedURL >= 0 {
			// The failed URL passes: check all URLs again before up.
			c.failedURL = -1
			next = 0
			if url == 0 {
				next = 1
			}
		}
		if next >= c.nurls {
			c.urlIt = 0
			if !c.isUp || !c.hasRun {
				decide(true, c.cfg.Kind.successMsg(c.svc))
			}
			c.hasRun = true
			return delay, u
		}
		c.urlIt = next
		if c.cfg.FastRecovery && (!c.isUp || !c.hasRun) {
			delay = 0
		}
		return delay, u
	}
	if (c.isUp || !c.hasRun) && c.retryIt >= c.cfg.Retry {
		c.retryIt = 0
		decide(false, c.cfg.Kind.failMsg(c.svc, c.cfg.Retry))
	} else if c.isUp {
		c.retryIt++
		c.hasRun = true
		return c.cfg.DelayBeforeRetry, u
	}
	c.failedURL = url
	c.urlIt = 0
	c.hasRun = true
	return max(c.cfg.DelayBeforeRetry, c.cfg.DelayLoop), u
}
