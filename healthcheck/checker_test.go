package healthcheck

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// fakeProbe is a scripted prober on a fake clock: ok decides each probe
// from its time since t0 (and its URL), and every probe is recorded.
type fakeProbe struct {
	clk   *FakeClock
	ok    func(at time.Duration, url int) bool
	nurls int
	took  time.Duration // fake time one probe takes

	mu    sync.Mutex
	calls []probeCall
}

type probeCall struct {
	at  time.Duration
	url int
	ok  bool
}

func (p *fakeProbe) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, c := range p.calls {
		fmt.Fprintf(&b, "%v/u%d/%v ", c.at, c.url, c.ok)
	}
	return b.String()
}

func (p *fakeProbe) Probe(ctx context.Context, t Target) Result { return p.ProbeURL(ctx, t, 0) }

func (p *fakeProbe) ProbeURL(_ context.Context, _ Target, url int) Result {
	at := p.clk.Now().Sub(t0)
	ok := p.ok(at, url)
	p.mu.Lock()
	p.calls = append(p.calls, probeCall{at, url, ok})
	p.mu.Unlock()
	if p.took > 0 {
		p.clk.Advance(p.took)
	}
	return Result{OK: ok}
}

func (p *fakeProbe) times() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	var r []time.Duration
	for _, c := range p.calls {
		r = append(r, c.at)
	}
	return r
}

// urlProbe is a fakeProbe with URLs.
type urlProbe struct{ *fakeProbe }

func (p urlProbe) URLCount() int { return p.nurls }

// recorder collects a real server's events with their fake times.
type recorder struct {
	clk *FakeClock
	mu  sync.Mutex
	evs []string
}

func (r *recorder) on(ev RSEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	kind := "notify"
	if ev.Transition {
		kind = "transition"
	}
	r.evs = append(r.evs, fmt.Sprintf("%v %s alive=%v: %s", r.clk.Now().Sub(t0), kind, ev.Alive, ev.Update.Msg))
}

func (r *recorder) events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.evs)
}

var rsAddr = netip.MustParseAddrPort("10.0.0.7:80")

// tcpConfig is §8.2's TCP_CHECK: delay_loop 6, connect_timeout 3, retry
// 1, delay_before_retry 1, warmup 0.
func tcpConfig() CheckerConfig {
	c := Defaults(KindTCP)
	c.Target = Target{Addr: rsAddr, Timeout: 3 * time.Second}
	c.DelayLoop = 6 * time.Second
	c.Warmup = 0
	return c
}

func secs(v ...float64) []time.Duration {
	var r []time.Duration
	for _, s := range v {
		r = append(r, time.Duration(s*float64(time.Second)))
	}
	return r
}

// run builds a real server with one checker of cfg on a fake clock,
// starts it and advances the clock by span.
func run(t *testing.T, cfg CheckerConfig, p *fakeProbe, span time.Duration, opt Options) (*RealServer, *recorder) {
	t.Helper()
	clk := p.clk
	rec := &recorder{clk: clk}
	rs := NewRealServer("rs", rec.on)
	opt.Clock = clk
	var pr Prober = p
	if p.nurls > 0 {
		pr = urlProbe{p}
	}
	c := rs.AddChecker(cfg, pr, opt)
	rs.Start()
	t.Cleanup(rs.Stop)
	clk.Advance(span)
	_ = c
	return rs, rec
}

func eqDur(t *testing.T, what string, got, want []time.Duration) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
}

func eqStr(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\ngot  %q\nwant %q", what, got, want)
	}
}

// §8.2: the RS dies just after the good probe at 1 s (the first, at
// BOOTSTRAP_DELAY) and comes back at 21 s.
func TestTimelineTCPDefaultRetry(t *testing.T) {
	clk := NewFakeClock(t0)
	p := &fakeProbe{clk: clk, ok: func(at time.Duration, _ int) bool { return at <= time.Second || at >= 21*time.Second }}
	core, logs := observer.New(zap.InfoLevel)
	rs, rec := run(t, tcpConfig(), p, 33*time.Second, Options{Logger: zap.New(core)})
	eqDur(t, "probe times", p.times(), secs(1, 7, 8, 14, 20, 26, 32))
	eqStr(t, "events", rec.events(), []string{
		"8s transition alive=false: TCP_CHECK on service [10.0.0.7]:tcp:80 failed after 1 retries.",
		"26s transition alive=true: TCP connection to [10.0.0.7]:tcp:80 success.",
	})
	var msgs []string
	for _, e := range logs.All() {
		msgs = append(msgs, e.Message)
	}
	eqStr(t, "log", msgs, []string{
		"TCP connection to [10.0.0.7]:tcp:80 success.", // first run
		"TCP_CHECK on service [10.0.0.7]:tcp:80 failed after 1 retries.",
		"TCP connection to [10.0.0.7]:tcp:80 success.",
	})
	if !rs.Alive() {
		t.Error("real server not alive at the end")
	}
}

// §8.2: retry 3, delay_before_retry 2: down at the 4th consecutive failure,
// 6 s after the first.
func TestTimelineTCPRetry3(t *testing.T) {
	clk := NewFakeClock(t0)
	p := &fakeProbe{clk: clk, ok: func(at time.Duration, _ int) bool { return at <= time.Second }}
	cfg := tcpConfig()
	cfg.Retry, cfg.DelayBeforeRetry = 3, 2*time.Second
	_, rec := run(t, cfg, p, 20*time.Second, Options{})
	eqDur(t, "probe times", p.times(), secs(1, 7, 9, 11, 13, 19))
	eqStr(t, "events", rec.events(), []string{
		"13s transition alive=false: TCP_CHECK on service [10.0.0.7]:tcp:80 failed after 3 retries.",
	})
}

// §8.2: a failure on the first probe marks down at once ("failed.":
// keepalived gives the retry count only once the checker has run).
func TestTimelineFirstProbeFails(t *testing.T) {
	clk := NewFakeClock(t0)
	p := &fakeProbe{clk: clk, ok: func(time.Duration, int) bool { return false }}
	cfg := tcpConfig()
	cfg.Retry = 3
	_, rec := run(t, cfg, p, 8*time.Second, Options{})
	eqDur(t, "probe times", p.times(), secs(1, 7))
	eqStr(t, "events", rec.events(), []string{
		"1s transition alive=false: TCP_CHECK on service [10.0.0.7]:tcp:80 failed.",
	})
}

// retry 0 gives "failed." and no retry.
func TestTimelineRetry0(t *testing.T) {
	clk := NewFakeClock(t0)
	p := &fakeProbe{clk: clk, ok: func(at time.Duration, _ int) bool { return at < 5*time.Second }}
	cfg := tcpConfig()
	cfg.Retry = 0
	_, rec := run(t, cfg, p, 14*time.Second, Options{})
	eqDur(t, "probe times", p.times(), secs(1, 7, 13))
	eqStr(t, "events", rec.events(), []string{
		"7s transition alive=false: TCP_CHECK on service [10.0.0.7]:tcp:80 failed.",
	})
}

// A success while retrying clears the retries: the next failure starts
// counting again, and nothing is reported.
func TestTimelineRecoverWhileRetrying(t *testing.T) {
	clk := NewFakeClock(t0)
	fails := []time.Duration{7 * time.Second, 14 * time.Second}
	p := &fakeProbe{clk: clk, ok: func(at time.Duration, _ int) bool { return !slices.Contains(fails, at) }}
	_, rec := run(t, tcpConfig(), p, 21*time.Second, Options{})
	eqDur(t, "probe times", p.times(), secs(1, 7, 8, 14, 15, 21))
	eqStr(t, "events", rec.events(), nil)
}

// §8.2 alpha: the RS is not alive until the first success.
func TestTimelineAlpha(t *testing.T) {
	clk := NewFakeClock(t0)
	p := &fakeProbe{clk: clk, ok: func(at time.Duration, _ int) bool { return at >= 7*time.Second }}
	cfg := tcpConfig()
	cfg.Alpha = true
	rec := &recorder{clk: clk}
	rs := NewRealServer("rs", rec.on)
	rs.AddChecker(cfg, p, Options{Clock: clk})
	if rs.Alive() {
		t.Fatal("alpha real server alive before any probe")
	}
	rs.Start()
	t.Cleanup(rs.Stop)
	clk.Advance(8 * time.Second)
	eqDur(t, "probe times", p.times(), secs(1, 7))
	eqStr(t, "events", rec.events(), []string{
		// first run, alpha, still down: the notifiers run (notify_down)
		"1s notify alive=false: TCP_CHECK on service [10.0.0.7]:tcp:80 failed.",
		"7s transition alive=true: TCP connection to [10.0.0.7]:tcp:80 success.",
	})
}

// The first probe comes after BOOTSTRAP_DELAY + warmup × random.
func TestWarmupJitter(t *testing.T) {
	clk := NewFakeClock(t0)
	p := &fakeProbe{clk: clk, ok: func(time.Duration, int) bool { return true }}
	cfg := tcpConfig()
	cfg.Warmup = 10 * time.Second
	run(t, cfg, p, 6*time.Second-time.Nanosecond, Options{Rand: func() float64 { return 0.5 }})
	if n := len(p.times()); n != 0 {
		t.Fatalf("%d probes before 1 s + 0.5 × 10 s", n)
	}
	clk.Advance(time.Nanosecond)
	eqDur(t, "probe times", p.times(), secs(6))
}

// MISC_CHECK measures the delay from the start of a probe; the others from
// its end.
func TestFromStart(t *testing.T) {
	for _, fromStart := range []bool{false, true} {
		clk := NewFakeClock(t0)
		p := &fakeProbe{clk: clk, took: 2 * time.Second, ok: func(time.Duration, int) bool { return true }}
		cfg := tcpConfig()
		cfg.FromStart = fromStart
		run(t, cfg, p, 20*time.Second, Options{})
		want := secs(1, 9, 17)
		if fromStart {
			want = secs(1, 7, 13, 19)
		}
		eqDur(t, fmt.Sprint("fromStart ", fromStart), p.times(), want)
	}
}

// §2.4: a real server is alive iff all its checkers are up; it goes down
// with the first failing checker and up with the last recovering one.
func TestRealServerAllCheckersUp(t *testing.T) {
	clk := NewFakeClock(t0)
	rec := &recorder{clk: clk}
	rs := NewRealServer("rs", rec.on)
	a := &fakeProbe{clk: clk, ok: func(at time.Duration, _ int) bool { return at < 5*time.Second || at > 30*time.Second }}
	b := &fakeProbe{clk: clk, ok: func(at time.Duration, _ int) bool { return at < 10*time.Second || at > 20*time.Second }}
	ca := tcpConfig()
	cb := tcpConfig()
	cb.Target.Addr = netip.MustParseAddrPort("10.0.0.7:443")
	cb.Retry = 0
	rs.AddChecker(ca, a, Options{Clock: clk})
	rs.AddChecker(cb, b, Options{Clock: clk})
	rs.Start()
	t.Cleanup(rs.Stop)
	clk.Advance(40 * time.Second)
	// a: 1 ok, 7 fail, 8 down, 14, 20, 26, 32 up. b: 1 ok, 7 ok, 13 down, 19, 25 up.
	eqStr(t, "events", rec.events(), []string{
		"8s transition alive=false: TCP_CHECK on service [10.0.0.7]:tcp:80 failed after 1 retries.",
		"32s transition alive=true: TCP connection to [10.0.0.7]:tcp:80 success.",
	})
	if !rs.Alive() {
		t.Error("not alive at the end")
	}
}

// Stop cancels the pending probe; no callback runs afterwards.
func TestStop(t *testing.T) {
	clk := NewFakeClock(t0)
	p := &fakeProbe{clk: clk, ok: func(time.Duration, int) bool { return true }}
	c := NewChecker(tcpConfig(), p, Options{Clock: clk, OnUpdate: func(Update) { t.Error("update after Stop") }})
	c.Start()
	c.Stop()
	clk.Advance(time.Minute)
	if clk.Pending() != 0 || len(p.times()) != 0 {
		t.Fatalf("pending %d timers, %d probes after Stop", clk.Pending(), len(p.times()))
	}
}

// httpConfig: HTTP_GET, delay_loop 6, delay_before_retry 3, retry 1.
func httpConfig() CheckerConfig {
	c := Defaults(KindHTTP)
	c.Target = Target{Addr: rsAddr, Timeout: 3 * time.Second}
	c.DelayLoop = 6 * time.Second
	c.Warmup = 0
	return c
}

func (p *fakeProbe) urls() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, c := range p.calls {
		ok := "ok"
		if !c.ok {
			ok = "fail"
		}
		fmt.Fprintf(&b, "%v:u%d:%s ", c.at, c.url, ok)
	}
	return strings.TrimSpace(b.String())
}

// HTTP_GET with three URLs: one URL per delay_loop; the last one of the
// first cycle gives the first verdict.
func TestTimelineHTTPURLs(t *testing.T) {
	clk := NewFakeClock(t0)
	p := &fakeProbe{clk: clk, nurls: 3, ok: func(time.Duration, int) bool { return true }}
	core, logs := observer.New(zap.InfoLevel)
	_, rec := run(t, httpConfig(), p, 20*time.Second, Options{Logger: zap.New(core)})
	if got, want := p.urls(), "1s:u0:ok 7s:u1:ok 13s:u2:ok 19s:u0:ok"; got != want {
		t.Errorf("probes:\ngot  %s\nwant %s", got, want)
	}
	eqStr(t, "events", rec.events(), nil)
	if logs.Len() != 1 || logs.All()[0].Message != "Remote Web server [10.0.0.7]:tcp:80 succeed on service." {
		t.Errorf("log: %v", logs.All())
	}
}

// fast_recovery runs the next URL at once before the first verdict.
func TestTimelineHTTPFastRecovery(t *testing.T) {
	clk := NewFakeClock(t0)
	p := &fakeProbe{clk: clk, nurls: 3, ok: func(time.Duration, int) bool { return true }}
	cfg := httpConfig()
	cfg.FastRecovery, cfg.Alpha = true, true
	rs, rec := run(t, cfg, p, 8*time.Second, Options{})
	if got, want := p.urls(), "1s:u0:ok 1s:u1:ok 1s:u2:ok 7s:u0:ok"; got != want {
		t.Errorf("probes:\ngot  %s\nwant %s", got, want)
	}
	eqStr(t, "events", rec.events(), []string{
		"1s transition alive=true: Remote Web server [10.0.0.7]:tcp:80 succeed on service.",
	})
	if !rs.Alive() {
		t.Error("not alive")
	}
}

// A failing URL is retried after delay_before_retry, then remembered as
// failed_url: only it is probed while down (every max(delay_before_retry,
// delay_loop)); when it passes, all URLs are checked again before up.
func TestTimelineHTTPFailedURL(t *testing.T) {
	clk := NewFakeClock(t0)
	p := &fakeProbe{clk: clk, nurls: 3, ok: func(at time.Duration, url int) bool {
		return url != 1 || at < 10*time.Second || at > 30*time.Second
	}}
	_, rec := run(t, httpConfig(), p, 50*time.Second, Options{})
	// 1 u0, 7 u1, 13 u2 (up, first run), 19 u0, 25 u1 fail, 28 u1 fail →
	// down; 34 u1 passes: check again from u0 (40), u1 (46), u2 (52).
	want := "1s:u0:ok 7s:u1:ok 13s:u2:ok 19s:u0:ok 25s:u1:fail 28s:u1:fail 34s:u1:ok 40s:u0:ok 46s:u1:ok"
	if got := p.urls(); got != want {
		t.Errorf("probes:\ngot  %s\nwant %s", got, want)
	}
	clk.Advance(6 * time.Second) // 52: u2 passes → up
	eqStr(t, "events", rec.events(), []string{
		"28s transition alive=false: HTTP_CHECK on service [10.0.0.7]:tcp:80 failed after 1 retries.",
		"52s transition alive=true: Remote Web server [10.0.0.7]:tcp:80 succeed on service.",
	})
}

// With one URL: down after retry+1 failures as TCP_CHECK, but back up only
// after two successes: the failed URL, then the whole list again.
func TestTimelineHTTPOneURL(t *testing.T) {
	clk := NewFakeClock(t0)
	p := &fakeProbe{clk: clk, nurls: 1, ok: func(at time.Duration, _ int) bool { return at <= time.Second || at >= 20*time.Second }}
	cfg := httpConfig()
	cfg.DelayBeforeRetry = time.Second
	_, rec := run(t, cfg, p, 27*time.Second, Options{})
	eqDur(t, "probe times", p.times(), secs(1, 7, 8, 14, 20, 26))
	eqStr(t, "events", rec.events(), []string{
		"8s transition alive=false: HTTP_CHECK on service [10.0.0.7]:tcp:80 failed after 1 retries.",
		"26s transition alive=true: Remote Web server [10.0.0.7]:tcp:80 succeed on service.",
	})
}

// HTTP_GET's first probe failing marks down at once; with alpha the
// checker stays down without a verdict (keepalived sets has_run first).
func TestTimelineHTTPFirstProbeFails(t *testing.T) {
	for _, alpha := range []bool{false, true} {
		clk := NewFakeClock(t0)
		p := &fakeProbe{clk: clk, nurls: 2, ok: func(at time.Duration, _ int) bool { return at > 5*time.Second }}
		cfg := httpConfig()
		cfg.Alpha = alpha
		rs, rec := run(t, cfg, p, 20*time.Second, Options{})
		if got, want := p.urls(), "1s:u0:fail 7s:u0:ok 13s:u0:ok 19s:u1:ok"; got != want {
			t.Errorf("alpha %v: probes:\ngot  %s\nwant %s", alpha, got, want)
		}
		want := []string{
			"1s transition alive=false: HTTP_CHECK on service [10.0.0.7]:tcp:80 failed after 1 retries.",
			"19s transition alive=true: Remote Web server [10.0.0.7]:tcp:80 succeed on service.",
		}
		if alpha {
			want = want[1:]
		}
		eqStr(t, fmt.Sprint("alpha ", alpha), rec.events(), want)
		if !rs.Alive() {
			t.Errorf("alpha %v: not alive at the end", alpha)
		}
	}
}

// A URL failing during the re-check after a failed URL passed becomes the
// failed URL (keepalived would retry it every delay_before_retry, at once
// with fast_recovery).
func TestTimelineHTTPFailDuringRecheck(t *testing.T) {
	clk := NewFakeClock(t0)
	p := &fakeProbe{clk: clk, nurls: 2, ok: func(at time.Duration, url int) bool {
		return (url == 0 && (at < 5*time.Second || at > 30*time.Second)) || (url == 1 && (at < 5*time.Second || at > 40*time.Second))
	}}
	cfg := httpConfig()
	cfg.FastRecovery = true
	_, rec := run(t, cfg, p, 50*time.Second, Options{})
	// 1 u0, 1 u1 (fast, first run) → up; 7 u0 fail, 10 u0 fail → down,
	// failed u0 every 6 s until it passes at 34; the re-check starts at
	// once, u1 fails and becomes the failed URL, probed every 6 s until it
	// passes at 46; the re-check runs at once → up.
	want := "1s:u0:ok 1s:u1:ok 7s:u0:fail 10s:u0:fail 16s:u0:fail 22s:u0:fail 28s:u0:fail 34s:u0:ok " +
		"34s:u0:ok 34s:u1:fail 40s:u1:fail 46s:u1:ok 46s:u0:ok 46s:u1:ok"
	if got := p.urls(); got != want {
		t.Errorf("probes:\ngot  %s\nwant %s", got, want)
	}
	eqStr(t, "events", rec.events(), []string{
		"10s transition alive=false: HTTP_CHECK on service [10.0.0.7]:tcp:80 failed after 1 retries.",
		"46s transition alive=true: Remote Web server [10.0.0.7]:tcp:80 succeed on service.",
	})
}

// A disabled checker (ha_suspend) re-arms delay_loop without probing and
// keeps its state.
func TestSetEnabled(t *testing.T) {
	clk := NewFakeClock(t0)
	p := &fakeProbe{clk: clk, ok: func(at time.Duration, _ int) bool { return at < 10*time.Second }}
	rec := &recorder{clk: clk}
	rs := NewRealServer("rs", rec.on)
	c := rs.AddChecker(tcpConfig(), p, Options{Clock: clk})
	c.SetEnabled(false)
	rs.Start()
	t.Cleanup(rs.Stop)
	clk.Advance(12 * time.Second) // due at 1 and 7: no probes
	c.SetEnabled(true)
	clk.Advance(8 * time.Second) // 13 fails (first run: down), 19
	eqDur(t, "probe times", p.times(), secs(13, 19))
	eqStr(t, "events", rec.events(), []string{
		"13s transition alive=false: TCP_CHECK on service [10.0.0.7]:tcp:80 failed.",
	})
}
