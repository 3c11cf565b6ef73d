package contentsync

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/wait"
)

func TestChangesCoalesce(t *testing.T) {
	var c Changes
	for _, p := range []string{"a/b", "a/b", "d", "d/e/f", "c"} {
		c.Add(p, 0)
	}
	if got := c.Sorted(); !slices.Equal(got, []string{"a/b", "c", "d"}) {
		t.Fatalf("paths %q: want duplicates and paths under a recorded directory dropped", got)
	}
	if c.Describe() != "3 paths (a/b, c, d)" {
		t.Errorf("describe %q", c.Describe())
	}
	var small Changes
	for i := range 4 {
		small.Add(fmt.Sprint(i), 3)
	}
	if !small.Full || small.Len() != 0 || small.Describe() != "full tree" {
		t.Fatalf("over the bound: %+v, want a full sync", small)
	}
	c.Merge(&small, 0)
	if !c.Full {
		t.Fatal("merging a full sync is a full sync")
	}
	taken := c.Take()
	if !taken.Full || !c.Empty() {
		t.Fatalf("take: %+v left %+v", taken, c)
	}
}

func TestFilterRules(t *testing.T) {
	rules, bad := FilterRules([]string{"a/b/c.html", "top", `we*ird[1]\x`, `back\slash`, "new\nline"})
	want := "+ /a/\n+ /a/b/\n" +
		"+ /a/b/c.html\n+ /a/b/c.html/***\n" +
		"+ /top\n+ /top/***\n" +
		`+ /we\*ird\[1]\\x` + "\n" + `+ /we\*ird\[1]\\x/***` + "\n" +
		`+ /back\slash` + "\n" + `+ /back\\slash/***` + "\n" +
		"- *\n"
	if rules != want {
		t.Fatalf("rules:\n%s\nwant:\n%s", rules, want)
	}
	if !slices.Equal(bad, []string{"new\nline"}) {
		t.Fatalf("bad %q", bad)
	}
}

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Target
		dest string
	}{
		{"rsync://rsyncuser@10.0.0.7/www", Target{Host: "10.0.0.7", Module: "www", User: "rsyncuser"}, "rsync://rsyncuser@10.0.0.7/www/"},
		{"rsync://[fd00::7]:874/www/sub", Target{Host: "fd00::7", Module: "www/sub", Port: 874}, "rsync://[fd00::7]:874/www/sub/"},
		{"rsyncuser@10.0.0.7::backup/", Target{Host: "10.0.0.7", Module: "backup/", User: "rsyncuser"}, "rsync://rsyncuser@10.0.0.7/backup/"},
		{"root@10.0.0.7:/data/backup", Target{Host: "10.0.0.7", Module: "/data/backup", User: "root", SSH: true}, "root@10.0.0.7:/data/backup/"},
		{"[fd00::7]:/data", Target{Host: "fd00::7", Module: "/data", SSH: true}, "[fd00::7]:/data/"},
	} {
		got, err := ParseTarget(tc.in)
		if err != nil || got != tc.want || got.Dest() != tc.dest {
			t.Errorf("%q: %+v %v (dest %q), want %+v (dest %q)", tc.in, got, err, got.Dest(), tc.want, tc.dest)
		}
	}
	for _, bad := range []string{"10.0.0.7", "rsync://10.0.0.7", "rsync://10.0.0.7:99999/www", "@h::m", "::m", "h::", "h: /x", "[fd00::7/x"} {
		if got, err := ParseTarget(bad); err == nil {
			t.Errorf("%q parsed as %+v", bad, got)
		}
	}
}

func TestArgv(t *testing.T) {
	c := DefaultConfig()
	c.Timeout = 100
	c.CronExcludes = []string{"*.php"}
	x := &Exec{Config: c}
	daemon := Target{Host: "10.0.0.7", Module: "www", User: "rsyncuser", PasswordFile: "/etc/rsync.pas"}
	var ch Changes
	ch.Add("index.html", 0)
	argv, rules, err := x.Argv(Job{Target: daemon, Changes: ch}, "/state/b.rules")
	if err != nil {
		t.Fatal(err)
	}
	want := "rsync -artuz --delete --ignore-times --filter=. /state/b.rules --timeout=100 --password-file=/etc/rsync.pas ./ rsync://rsyncuser@10.0.0.7/www/"
	if strings.Join(argv, " ") != want || rules != "+ /index.html\n+ /index.html/***\n- *\n" {
		t.Fatalf("argv %q rules %q\nwant %q", strings.Join(argv, " "), rules, want)
	}
	ch.SetFull()
	ssh := Target{Host: "10.0.0.7", Module: "/data/backup", SSH: true, Port: 2222}
	argv, rules, err = x.Argv(Job{Target: ssh, Changes: ch}, "")
	if err != nil {
		t.Fatal(err)
	}
	want = "rsync -artuz --delete --exclude=.*.swp --exclude=.*.swx --exclude=.*.swpx --exclude=*~ --exclude=4913 --exclude=.#* --exclude=#*# --exclude=*.php --timeout=100 -e ssh -p 2222 ./ 10.0.0.7:/data/backup/"
	if strings.Join(argv, " ") != want || rules != "" {
		t.Fatalf("argv %q rules %q\nwant %q", strings.Join(argv, " "), rules, want)
	}
}

func TestBackoff(t *testing.T) {
	var got []time.Duration
	for n := range 8 {
		got = append(got, Backoff(n, time.Second, 10*time.Second))
	}
	want := []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second, 10 * time.Second}
	if !slices.Equal(got, want) {
		t.Fatalf("backoff %v, want %v", got, want)
	}
}

func TestQueueFile(t *testing.T) {
	dir := t.TempDir()
	q := map[string]*QueuedTarget{"rsync://10.0.0.7/www/": {Paths: []string{"b", "a/x"}, Failures: 3, LastErr: "exit 10"},
		"rsync://10.0.0.17/www/": {Full: true, Failures: 1}}
	if err := SaveQueue(dir, q); err != nil {
		t.Fatal(err)
	}
	got, err := LoadQueue(dir)
	if err != nil {
		t.Fatal(err)
	}
	if a := got["rsync://10.0.0.7/www/"]; a == nil || !slices.Equal(a.Paths, []string{"a/x", "b"}) || a.Failures != 3 || a.LastErr != "exit 10" {
		t.Fatalf("loaded %+v", a)
	}
	if b := got["rsync://10.0.0.17/www/"]; b == nil || !b.Full {
		t.Fatalf("loaded %+v", b)
	}
	if err := SaveQueue(dir, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, QueueFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an empty queue leaves the file: %v", err)
	}
	for _, bad := range []string{`{"version":2,"targets":{}}`, `{"version":1,"targets":{"x":{"paths":["../etc/passwd"]}}}`,
		`{"version":1,"targets":{"x":{"paths":["/abs"]}}}`, `{"version":1,"targets":{"x":null}}`, `not json`} {
		if err := os.WriteFile(filepath.Join(dir, QueueFile), []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if q, err := LoadQueue(dir); err == nil {
			t.Errorf("loaded %s as %v", bad, q)
		}
	}
}

// fakeRsync records the jobs per target and fails the targets told to.
type fakeRsync struct {
	mu      sync.Mutex
	jobs    map[string][]Changes
	failing map[string]bool
	has     map[string]map[string]bool // what each target received
}

func newFake() *fakeRsync {
	return &fakeRsync{jobs: map[string][]Changes{}, failing: map[string]bool{}, has: map[string]map[string]bool{}}
}

func (f *fakeRsync) run(_ context.Context, j Job) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := j.Target.Dest()
	f.jobs[d] = append(f.jobs[d], j.Changes)
	if f.failing[d] {
		return &RsyncError{Dest: d, Code: 10, Stderr: "rsync: failed to connect to " + j.Target.Host + ": Connection refused (111)"}
	}
	if f.has[d] == nil {
		f.has[d] = map[string]bool{}
	}
	if j.Changes.Full {
		f.has[d]["FULL"] = true
	}
	for p := range j.Changes.Paths {
		f.has[d][p] = true
	}
	return nil
}

func (f *fakeRsync) count(d string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.jobs[d])
}

func (f *fakeRsync) got(d, p string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.has[d][p]
}

func (f *fakeRsync) setFailing(d string, v bool) {
	f.mu.Lock()
	f.failing[d] = v
	f.mu.Unlock()
}

type running struct {
	s      *Syncer
	cancel context.CancelFunc
	done   chan error
}

func startSyncer(t *testing.T, o Options) *running {
	t.Helper()
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{s: s, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	select {
	case <-s.Ready():
	case err := <-r.done:
		t.Fatalf("syncer ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("syncer not ready")
	}
	return r
}

func (r *running) stop(t *testing.T) {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("syncer: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("syncer did not stop")
	}
}

func testConfig(t *testing.T, targets ...string) *Config {
	c := DefaultConfig()
	c.Watch = t.TempDir()
	for _, s := range targets {
		tg, err := ParseTarget(s)
		if err != nil {
			t.Fatal(err)
		}
		c.Targets = append(c.Targets, tg)
	}
	return c
}

const (
	destA = "rsync://10.0.0.7/www/"
	destB = "rsync://10.0.0.17/www/"
)

// TestSyncerCoalesces: a burst of 1000 files (in a new directory and at
// the top, with editors' temporary files among them) reaches both targets
// in a handful of rsync runs, not a thousand, and no temporary file is
// sent.
func TestSyncerCoalesces(t *testing.T) {
	c := testConfig(t, destA, destB)
	f := newFake()
	r := startSyncer(t, Options{Config: c, StateDir: t.TempDir(), Run: f.run, Window: 200 * time.Millisecond})
	if err := os.Mkdir(filepath.Join(c.Watch, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		name := fmt.Sprintf("f%03d.html", i)
		if i%2 == 0 {
			name = "sub/" + name
		}
		if err := os.WriteFile(filepath.Join(c.Watch, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tmp := range []string{".f001.html.swp", "f001.html~", "4913"} {
		if err := os.WriteFile(filepath.Join(c.Watch, tmp), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{destA, destB} {
		wait.For(t, 10*time.Second, func() bool {
			if !f.got(d, "sub") {
				return false
			}
			for i := 1; i < 1000; i += 2 {
				if !f.got(d, fmt.Sprintf("f%03d.html", i)) {
					return false
				}
			}
			return true
		}, "all 1000 changes at %s", d)
		if n := f.count(d); n > 20 {
			t.Errorf("%s: %d rsync runs for 1000 changes", d, n)
		} else {
			t.Logf("%s: %d rsync runs for 1000 changes", d, n)
		}
		for _, tmp := range []string{".f001.html.swp", "f001.html~", "4913"} {
			if f.got(d, tmp) {
				t.Errorf("%s: temporary file %s sent", d, tmp)
			}
		}
	}
	if st := r.s.Stats()[destA]; st.Runs != int64(f.count(destA)) || st.Failed != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestSyncerFailureQueue: a target that fails keeps its changes (on disk,
// in the state directory) and retries with backoff while the other target
// is served; stopped and started again, the syncer restores the queue
// and delivers it once the target is back.
func TestSyncerFailureQueue(t *testing.T) {
	c := testConfig(t, destA, destB)
	state := t.TempDir()
	f := newFake()
	f.setFailing(destB, true)
	o := Options{Config: c, StateDir: state, Run: f.run, Window: 50 * time.Millisecond,
		RetryBase: 100 * time.Millisecond, RetryMax: 400 * time.Millisecond}
	r := startSyncer(t, o)
	if err := os.WriteFile(filepath.Join(c.Watch, "index.html"), []byte("v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, func() bool { return f.got(destA, "index.html") }, "index.html at A")
	// B fails, then retries: at least three attempts with backoff.
	wait.For(t, 10*time.Second, func() bool { return f.count(destB) >= 3 }, "B retried")
	var q map[string]*QueuedTarget
	wait.For(t, 5*time.Second, func() bool {
		var err error
		q, err = LoadQueue(state)
		return err == nil && q[destB] != nil
	}, "B's failure queue on disk")
	if e := q[destB]; !slices.Equal(e.Paths, []string{"index.html"}) || e.Failures < 1 || !strings.Contains(e.LastErr, "Connection refused") {
		t.Fatalf("queued %+v", e)
	}
	if q[destA] != nil {
		t.Fatalf("A is queued: %+v", q[destA])
	}
	if st := r.s.Stats()[destB]; !st.Failing || st.Queued != 1 {
		t.Fatalf("B stats %+v", st)
	}
	r.stop(t)
	// While stopped, B comes back; the next syncer delivers B's queue.
	f.setFailing(destB, false)
	f2 := newFake()
	o.Run = f2.run
	r2 := startSyncer(t, o)
	wait.For(t, 10*time.Second, func() bool { return f2.got(destB, "index.html") }, "B caught up from the restored queue")
	if n := f2.count(destA); n != 0 {
		t.Errorf("A got %d runs after the restart, want none (it had everything)", n)
	}
	wait.For(t, 5*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(state, QueueFile))
		return errors.Is(err, os.ErrNotExist)
	}, "the queue file removed once B caught up")
	r2.stop(t)
}

// TestSyncerShutdownKeepsPending: changes not yet sent when the syncer is
// stopped (a run in flight that is abandoned) are in the queue file.
func TestSyncerShutdownKeepsPending(t *testing.T) {
	c := testConfig(t, destA)
	state := t.TempDir()
	started := make(chan struct{}, 1)
	block := func(ctx context.Context, j Job) error {
		select {
		case started <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return ctx.Err()
	}
	r := startSyncer(t, Options{Config: c, StateDir: state, Run: block, Window: 20 * time.Millisecond, Grace: 100 * time.Millisecond})
	if err := os.WriteFile(filepath.Join(c.Watch, "a.html"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("no rsync run")
	}
	r.stop(t)
	q, err := LoadQueue(state)
	if err != nil {
		t.Fatal(err)
	}
	if e := q[destA]; e == nil || !slices.Equal(e.Paths, []string{"a.html"}) {
		t.Fatalf("queue after shutdown %+v, want a.html for %s", q, destA)
	}
}

// TestWatchNewDirectory: a directory created with files already inside
// (mkdir -p, mv of a tree) is reported, and what is created in it later
// is seen too.
func TestWatchNewDirectory(t *testing.T) {
	c := testConfig(t, destA)
	f := newFake()
	startSyncer(t, Options{Config: c, StateDir: t.TempDir(), Run: f.run, Window: 20 * time.Millisecond})
	outside := t.TempDir()
	if err := os.MkdirAll(filepath.Join(outside, "tree", "deep"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "tree", "deep", "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(outside, "tree"), filepath.Join(c.Watch, "tree")); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, func() bool { return f.got(destA, "tree") }, "the moved-in tree")
	if err := os.WriteFile(filepath.Join(c.Watch, "tree", "deep", "later"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, func() bool { return f.got(destA, "tree/deep/later") }, "a file created later in the moved-in tree")
	if err := os.RemoveAll(filepath.Join(c.Watch, "tree")); err != nil {
		t.Fatal(err)
	}
	n := f.count(destA)
	wait.For(t, 10*time.Second, func() bool { return f.count(destA) > n }, "the deletion")
}

func TestParseArgs(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "confxml.xml")
	seed, err := os.ReadFile("testdata/confxml.xml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, seed, 0o644); err != nil {
		t.Fatal(err)
	}
	o, _, _, err := parseArgs([]string{"-dro", conf, "-n", "4", "--target", "rsyncuser@10.0.0.17::backup/", "--password-file", "/etc/rsync.pas", "--window=100ms"})
	if err != nil {
		t.Fatal(err)
	}
	if !o.FullAtStart || o.Threads != 4 || o.Window != 100*time.Millisecond || o.Config.Watch != "/data/www" || len(o.Config.Targets) != 2 ||
		o.Config.Targets[1].PasswordFile != "/etc/rsync.pas" {
		t.Fatalf("options %+v config %+v", o, o.Config)
	}
	if o, _, _, err = parseArgs([]string{"-n10", "--watch", "/w", "--target", "h:/p"}); err != nil || o.Threads != 10 {
		t.Fatalf("-n10: %v %+v", err, o)
	}
	for _, bad := range [][]string{{"-m", "command"}, {"-x"}, {"-o"}, {"--watch"}, {"--nope", "1"}, {"-n", "0"}, {"--window", "fast"},
		{"--watch", "/a", "--watch", "/b"}, {"--exclude", "("}, {"stray"}, {"-o", "/nonexistent/confxml.xml"}} {
		if _, _, _, err := parseArgs(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, _, _, err := parseArgs([]string{"-h"}); !errors.Is(err, errHelp) {
		t.Errorf("-h: %v", err)
	}
}

// TestSyncerCrontab: sersync's crontab sends the whole tree to every
// target periodically, with no event.
func TestSyncerCrontab(t *testing.T) {
	c := testConfig(t, destA, destB)
	c.Crontab = 100 * time.Millisecond
	f := newFake()
	r := startSyncer(t, Options{Config: c, StateDir: t.TempDir(), Run: f.run})
	for _, d := range []string{destA, destB} {
		wait.For(t, 10*time.Second, func() bool { return f.got(d, "FULL") }, "a full sync of %s", d)
	}
	if st := r.s.Stats()[destA]; st.Full < 1 {
		t.Fatalf("stats %+v", st)
	}
}
