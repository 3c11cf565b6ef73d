package contentsync

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Options are a Syncer's settings beyond the Config.
type Options struct {
	Config *Config
	// StateDir holds the failure queue and the rsync filter files.
	StateDir string
	// Window is how long changes are gathered after the first one before
	// a batch goes out (200 ms when 0).
	Window time.Duration
	// RetryBase is the failure queue's first retry delay (1 s when 0);
	// it doubles up to RetryMax (Config.RetryMax when 0).
	RetryBase, RetryMax time.Duration
	// QueueMax bounds the paths kept per target; beyond it the target
	// gets a full sync instead (10000 when 0).
	QueueMax int
	// Threads bounds the rsync runs at once (sersync -n; 10 when 0).
	Threads int
	// FullAtStart syncs the whole tree to every target first (sersync -r).
	FullAtStart bool
	// Grace is how long in-flight rsyncs may finish on shutdown before
	// they are stopped (5 s when 0).
	Grace time.Duration
	// Run runs one rsync; nil runs the real one (Exec).
	Run Runner
	// Rsync is the rsync binary for Exec ("rsync").
	Rsync string
	Log   *zap.Logger
}

// TargetStats are a target's counters.
type TargetStats struct {
	Runs, Failed, Full int64
	// Queued is what the target lacks now.
	Queued  int
	Failing bool
}

// Syncer keeps the targets in step with the watched tree.
type Syncer struct {
	o       Options
	cfg     *Config
	root    string
	log     *zap.Logger
	targets []*target
	sem     chan struct{}
	saveMu  sync.Mutex
	// runCtx is what the rsync runs see: cancelled Grace after shutdown
	// starts.
	runCtx context.Context
	kill   context.CancelFunc
	// ready is closed once the tree is watched (tests write after it).
	ready chan struct{}
}

type target struct {
	t    Target
	dest string
	kick chan struct{}

	mu       sync.Mutex
	pending  Changes
	failures int
	since    time.Time
	lastErr  string
	next     time.Time // no retry before

	runs, failed, full atomic.Int64
}

// New checks o and makes a Syncer.
func New(o Options) (*Syncer, error) {
	if o.Config == nil {
		return nil, errors.New("contentsync: no configuration")
	}
	if err := o.Config.Validate(); err != nil {
		return nil, err
	}
	if o.Window <= 0 {
		o.Window = 200 * time.Millisecond
	}
	if o.RetryBase <= 0 {
		o.RetryBase = time.Second
	}
	if o.RetryMax <= 0 {
		o.RetryMax = o.Config.RetryMax
	}
	if o.RetryMax < o.RetryBase {
		o.RetryMax = o.RetryBase
	}
	if o.QueueMax <= 0 {
		o.QueueMax = 10000
	}
	if o.Threads <= 0 {
		o.Threads = 10
	}
	if o.Grace <= 0 {
		o.Grace = 5 * time.Second
	}
	if o.StateDir == "" {
		return nil, errors.New("contentsync: no state directory")
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	root, err := absWatch(o.Config.Watch)
	if err != nil {
		return nil, err
	}
	cfg := *o.Config
	cfg.Watch = root
	// rsync runs in the watched tree: relative names are the caller's.
	cfg.Targets = append([]Target(nil), cfg.Targets...)
	for i := range cfg.Targets {
		if pf := cfg.Targets[i].PasswordFile; pf != "" {
			if cfg.Targets[i].PasswordFile, err = filepath.Abs(pf); err != nil {
				return nil, err
			}
		}
	}
	if o.StateDir, err = filepath.Abs(o.StateDir); err != nil {
		return nil, err
	}
	s := &Syncer{o: o, cfg: &cfg, root: root, log: o.Log, sem: make(chan struct{}, o.Threads), ready: make(chan struct{})}
	if s.o.Run == nil {
		x := &Exec{Rsync: o.Rsync, Config: s.cfg, TmpDir: o.StateDir}
		s.o.Run = x.Run
	}
	for _, t := range cfg.Targets {
		s.targets = append(s.targets, &target{t: t, dest: t.Dest(), kick: make(chan struct{}, 1)})
	}
	return s, nil
}

// Ready is closed once the tree is watched.
func (s *Syncer) Ready() <-chan struct{} { return s.ready }

// Stats returns each target's counters, by destination.
func (s *Syncer) Stats() map[string]TargetStats {
	out := map[string]TargetStats{}
	for _, t := range s.targets {
		t.mu.Lock()
		out[t.dest] = TargetStats{Runs: t.runs.Load(), Failed: t.failed.Load(), Full: t.full.Load(),
			Queued: t.pending.Len(), Failing: t.failures > 0}
		t.mu.Unlock()
	}
	return out
}

// Run watches and syncs until ctx is done, then lets in-flight rsyncs
// finish (for up to Grace), stops them, and persists what every target
// still lacks in the failure queue.
func (s *Syncer) Run(ctx context.Context) error {
	if err := os.MkdirAll(s.o.StateDir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	if err := s.restore(); err != nil {
		return err
	}
	w, err := newWatcher(s.root, s.cfg, func(msg string, err error) { s.log.Warn(msg, zap.Error(err)) })
	if err != nil {
		return err
	}
	defer w.Close()
	if err := w.addTree(s.root); err != nil {
		return err
	}
	s.log.Info(fmt.Sprintf("watching %s; %d targets", s.root, len(s.targets)))
	if s.o.FullAtStart {
		for _, t := range s.targets {
			t.mu.Lock()
			t.pending.SetFull()
			t.mu.Unlock()
			t.poke()
		}
	}
	var runCtx context.Context
	runCtx, s.kill = context.WithCancel(context.WithoutCancel(ctx))
	defer s.kill()
	s.runCtx = runCtx

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, t := range s.targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.worker(t, stop)
		}()
	}
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	events := make(chan string, 1024)
	go w.run(wctx, events)
	close(s.ready)

	var batch Changes
	var flush <-chan time.Time
	var timer *time.Timer
	var cron <-chan time.Time
	if s.cfg.Crontab > 0 {
		tk := time.NewTicker(s.cfg.Crontab)
		defer tk.Stop()
		cron = tk.C
	}
	dispatch := func() {
		if batch.Empty() {
			return
		}
		for _, t := range s.targets {
			t.mu.Lock()
			t.pending.Merge(&batch, s.o.QueueMax)
			t.mu.Unlock()
			t.poke()
		}
		batch = Changes{}
	}
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case r := <-events:
			if r == fullTree {
				batch.SetFull()
			} else {
				batch.Add(r, s.o.QueueMax)
			}
			if flush == nil {
				timer = time.NewTimer(s.o.Window)
				flush = timer.C
			}
		case <-flush:
			flush = nil
			dispatch()
		case <-cron:
			s.log.Info(fmt.Sprintf("crontab: full sync of %s (every %v)", s.root, s.cfg.Crontab))
			batch.SetFull()
			dispatch()
		}
	}
	if timer != nil {
		timer.Stop()
	}
	wcancel()
	dispatch()
	close(stop)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(s.o.Grace):
		s.log.Warn(fmt.Sprintf("shutdown: rsync still running after %v, stopping it", s.o.Grace))
		s.kill()
		<-done
	}
	err = s.save(true)
	q := 0
	for _, t := range s.targets {
		if !t.pending.Empty() {
			q++
		}
	}
	s.log.Info(fmt.Sprintf("stopped; %d targets with changes kept in %s", q, QueueFile))
	return err
}

func (t *target) poke() {
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// worker runs the target's rsyncs one at a time: whatever is pending
// when the last run ends goes in the next one.
func (s *Syncer) worker(t *target, stop <-chan struct{}) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		t.mu.Lock()
		empty := t.pending.Empty()
		wait := time.Until(t.next)
		t.mu.Unlock()
		if !empty && wait > 0 {
			timer.Reset(wait)
		}
		if empty || wait > 0 {
			select {
			case <-stop:
				timer.Stop()
				return
			case <-t.kick:
				timer.Stop()
				continue
			case <-timer.C:
				continue
			}
		}
		select {
		case <-stop:
			return
		default:
		}
		s.runOnce(t)
	}
}

// runOnce sends what t lacks, once.
func (s *Syncer) runOnce(t *target) {
	s.sem <- struct{}{}
	defer func() { <-s.sem }()
	t.mu.Lock()
	ch := t.pending.Take()
	t.mu.Unlock()
	if ch.Empty() {
		return
	}
	what := ch.Describe()
	start := time.Now()
	err := s.o.Run(s.runCtx, Job{Target: t.t, Changes: ch})
	took := time.Since(start).Round(time.Millisecond)
	t.runs.Add(1)
	if ch.Full {
		t.full.Add(1)
	}
	t.mu.Lock()
	wasFailing := t.failures > 0
	if err == nil {
		t.failures, t.lastErr, t.next = 0, "", time.Time{}
		t.mu.Unlock()
		s.log.Info(fmt.Sprintf("sync %s to %s in %v: ok", what, t.dest, took),
			zap.String("target", t.dest), zap.Int("paths", ch.Len()), zap.Bool("full", ch.Full), zap.Duration("took", took))
		if wasFailing {
			s.log.Info(fmt.Sprintf("failure queue: %s caught up", t.dest))
			if err := s.save(false); err != nil {
				s.log.Error("failure queue", zap.Error(err))
			}
		}
		return
	}
	t.failed.Add(1)
	// The changes go back in front of whatever arrived meanwhile.
	ch.Merge(&t.pending, s.o.QueueMax)
	t.pending = ch
	if t.failures == 0 {
		t.since = time.Now()
	}
	t.failures++
	t.lastErr = err.Error()
	delay := Backoff(t.failures, s.o.RetryBase, s.o.RetryMax)
	t.next = time.Now().Add(delay)
	queued := t.pending.Describe()
	n := t.failures
	t.mu.Unlock()
	s.log.Warn(fmt.Sprintf("sync %s to %s in %v: failed: %v; queued %s, retry %d in %v", what, t.dest, took, err, queued, n, delay),
		zap.String("target", t.dest), zap.Int("paths", ch.Len()), zap.Bool("full", ch.Full), zap.Duration("took", took))
	if err := s.save(false); err != nil {
		s.log.Error("failure queue", zap.Error(err))
	}
}

// save persists the failure queue: the targets that are failing, and on
// shutdown (all) every target with changes not yet sent.
func (s *Syncer) save(all bool) error {
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	q := map[string]*QueuedTarget{}
	for _, t := range s.targets {
		t.mu.Lock()
		if (t.failures > 0 || all) && !t.pending.Empty() {
			q[t.dest] = &QueuedTarget{Full: t.pending.Full, Paths: t.pending.Sorted(), Failures: t.failures,
				Since: t.since, LastErr: t.lastErr}
		}
		t.mu.Unlock()
	}
	return SaveQueue(s.o.StateDir, q)
}

// restore loads the failure queue left by the last run.
func (s *Syncer) restore() error {
	q, err := LoadQueue(s.o.StateDir)
	if err != nil {
		return err
	}
	for dest, e := range q {
		var t *target
		for _, x := range s.targets {
			if x.dest == dest {
				t = x
			}
		}
		if t == nil {
			s.log.Warn(fmt.Sprintf("failure queue: %s is no longer a target; its %d queued paths are dropped", dest, len(e.Paths)))
			continue
		}
		if e.Full {
			t.pending.SetFull()
		}
		for _, p := range e.Paths {
			t.pending.Add(p, s.o.QueueMax)
		}
		t.failures, t.since, t.lastErr = e.Failures, e.Since, e.LastErr
		s.log.Info(fmt.Sprintf("failure queue: %s restored for %s (failing since %s), retrying now",
			t.pending.Describe(), dest, e.Since.Format(time.RFC3339)))
		t.poke()
	}
	return nil
}
