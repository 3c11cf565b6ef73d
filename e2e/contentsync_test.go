//go:build linux

package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/contentsync"
	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/wait"
)

// rsyncServer is a real server running the real rsync daemon, configured
// as seed 000 configures rsyncd.conf, with its module [www].
type rsyncServer struct {
	ns   *netnstest.NS
	addr string
	conf string
	www  string
	d    *netnstest.Proc
}

// seedRsyncdConf is seed 000's rsyncd.conf (备份服务器的配置) for a module
// [www] at path, its files under dir.
func seedRsyncdConf(dir, path string) string {
	return fmt.Sprintf(`uid = root
gid = root
ignore errors
exclude = lost+found/
log file = %[1]s/rsyncd.log
pid file = %[1]s/rsyncd.pid
lock file = %[1]s/rsyncd.lock
reverse lookup = no
[www]
path = %[2]s/
comment = web root
read only = no
auth users = rsyncuser
secrets file = %[1]s/rsync.pas
`, dir, path)
}

func newRsyncServer(t *testing.T, ns *netnstest.NS, addr string) *rsyncServer {
	t.Helper()
	dir := t.TempDir()
	s := &rsyncServer{ns: ns, addr: addr, conf: filepath.Join(dir, "rsyncd.conf"), www: filepath.Join(dir, "www")}
	if err := os.Mkdir(s.www, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.conf, []byte(seedRsyncdConf(dir, s.www)), 0o644); err != nil {
		t.Fatal(err)
	}
	// The seed: echo rsyncuser:xier > /etc/rsync.pas; chmod 600.
	if err := os.WriteFile(filepath.Join(dir, "rsync.pas"), []byte("rsyncuser:xier\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.start(t)
	return s
}

func (s *rsyncServer) start(t *testing.T) {
	t.Helper()
	_ = os.Remove(filepath.Join(filepath.Dir(s.conf), "rsyncd.pid"))
	s.d = s.ns.Start(t, "rsync", "--daemon", "--no-detach", "--config="+s.conf)
	wait.For(t, 10*time.Second, func() bool {
		return s.ns.Do(func() error {
			c, err := net.DialTimeout("tcp", "127.0.0.1:873", 200*time.Millisecond)
			if err == nil {
				c.Close()
			}
			return err
		}) == nil
	}, "rsyncd on %s listening: %s", s.addr, s.d.Output())
}

func (s *rsyncServer) stop(t *testing.T) {
	t.Helper()
	_ = s.d.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.d.Done():
	case <-time.After(5 * time.Second):
		t.Fatalf("rsyncd on %s did not stop", s.addr)
	}
}

func (s *rsyncServer) has(rel string, want []byte) bool {
	b, err := os.ReadFile(filepath.Join(s.www, rel))
	return err == nil && bytes.Equal(b, want)
}

func (s *rsyncServer) gone(rel string) bool {
	_, err := os.Lstat(filepath.Join(s.www, rel))
	return os.IsNotExist(err)
}

// syncRuns counts uvs-sync's log lines of rsync runs to dest.
func syncRuns(log, dest string) (ok, failed int) {
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(l, "\tsync ") || !strings.Contains(l, " to "+dest+" in ") {
			continue
		}
		if strings.Contains(l, ": ok") {
			ok++
		} else if strings.Contains(l, ": failed") {
			failed++
		}
	}
	return ok, failed
}

// TestContentSync runs uvs-sync in a director namespace against two real
// servers' rsync daemons (seed 000's rsyncd.conf, auth users and a secrets
// file): a file written appears on both; a deleted one disappears, while
// a file only the target has stays; a burst of 1000 changes goes in a
// handful of rsync runs; a target whose rsyncd is down keeps its changes
// in the failure queue and gets them when it is back, also across a
// restart of uvs-sync. It reports the latencies, never asserts them.
func TestContentSync(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	netnstest.RequireTool(t, "rsync")
	dir := netnstest.New(t, "sync-d")
	rs := []*rsyncServer{}
	for i, name := range []string{"sync-r1", "sync-r2"} {
		ns := netnstest.New(t, name)
		dev := fmt.Sprintf("rs%d", i+1)
		netnstest.Veth(t, dir, dev, ns, "eth0")
		dir.AddrAdd(t, dev, fmt.Sprintf("10.99.%d.1/24", i+1))
		addr := fmt.Sprintf("10.99.%d.2", i+1)
		ns.AddrAdd(t, "eth0", addr+"/24")
		rs = append(rs, newRsyncServer(t, ns, addr))
	}
	root, state := t.TempDir(), t.TempDir()
	pas := filepath.Join(t.TempDir(), "rsync.pas")
	if err := os.WriteFile(pas, []byte("xier\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dests := []string{"rsync://rsyncuser@" + rs[0].addr + "/www/", "rsync://rsyncuser@" + rs[1].addr + "/www/"}
	args := []string{binary("uvs-sync"), "-r", "--watch", root, "--state-dir", state, "--password-file", pas,
		"--target", dests[0], "--target", dests[1], "--retry-base", "200ms", "--retry-max", "1s"}
	var us *netnstest.Proc
	start := func() {
		us = dir.Start(t, args...)
		wait.For(t, 10*time.Second, func() bool { return strings.Contains(us.Output(), "watching "+root) }, "uvs-sync watching: %s", us.Output())
	}
	stop := func() {
		_ = us.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-us.Done():
		case <-time.After(15 * time.Second):
			t.Fatalf("uvs-sync did not stop on SIGTERM:\n%s", us.Output())
		}
		if err := us.Err(); err != nil {
			t.Fatalf("uvs-sync exited with %v:\n%s", err, us.Output())
		}
	}
	start()
	defer func() {
		if t.Failed() {
			t.Logf("uvs-sync's log:\n%s", us.Output())
		}
	}()

	// 1. A file written reaches both real servers.
	page := []byte("<h1>v1</h1>\n")
	w0 := time.Now()
	if err := os.WriteFile(filepath.Join(root, "index.html"), page, 0o644); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, func() bool { return rs[0].has("index.html", page) && rs[1].has("index.html", page) },
		"index.html on both real servers")
	t.Logf("figure: write -> present on both real servers: %v", time.Since(w0).Round(time.Millisecond))

	// 2. Deletions propagate; what only the target has is left alone.
	if err := os.WriteFile(filepath.Join(rs[0].www, "only-on-rs1.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "old", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "old", "sub", "a.html"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, func() bool {
		return rs[0].has("old/sub/a.html", []byte("a")) && rs[1].has("old/sub/a.html", []byte("a"))
	},
		"old/sub/a.html on both")
	if err := os.RemoveAll(filepath.Join(root, "old")); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, func() bool { return rs[0].gone("old") && rs[1].gone("old") }, "old/ deleted on both")
	if !rs[0].has("only-on-rs1.txt", []byte("mine")) {
		t.Fatal("a file only the target had was deleted")
	}

	// 3. A burst of 1000 changes: a handful of rsync runs per target.
	var before [2]int
	for i, d := range dests {
		before[i], _ = syncRuns(us.Output(), d)
	}
	w0 = time.Now()
	if err := os.Mkdir(filepath.Join(root, "burst"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		if err := os.WriteFile(filepath.Join(root, "burst", fmt.Sprintf("p%04d.html", i)), []byte(fmt.Sprint(i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	last := filepath.Join("burst", "p0999.html")
	wait.For(t, 30*time.Second, func() bool {
		for _, r := range rs {
			ents, err := os.ReadDir(filepath.Join(r.www, "burst"))
			if err != nil || len(ents) != 1000 || !r.has(last, []byte("999")) {
				return false
			}
		}
		return true
	}, "1000 files on both")
	took := time.Since(w0).Round(time.Millisecond)
	for i, d := range dests {
		after, _ := syncRuns(us.Output(), d)
		runs := after - before[i]
		t.Logf("figure: 1000 changes -> %d rsync runs to %s; all present on both after %v", runs, d, took)
		if runs > 50 {
			t.Errorf("1000 changes took %d rsync runs to %s: not coalesced", runs, d)
		}
	}

	// 4. rs2's rsyncd stops: its changes wait in the failure queue; rs1
	// is served meanwhile; rs2 catches up when its rsyncd is back.
	rs[1].stop(t)
	v2 := []byte("<h1>v2</h1>\n")
	if err := os.WriteFile(filepath.Join(root, "index.html"), v2, 0o644); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, func() bool { return rs[0].has("index.html", v2) }, "v2 on rs1 while rs2 is down")
	// The queue may also hold the end of step 3's burst: the burst's files
	// were all on rs2 before its last rsync run had exited, and stopping
	// rs2's rsyncd may have cut that run (it is caught up below too).
	wait.For(t, 10*time.Second, func() bool {
		q, err := contentsync.LoadQueue(state)
		return err == nil && q[dests[1]] != nil && slices.Contains(q[dests[1]].Paths, "index.html")
	}, "index.html in rs2's failure queue (%s)", state)
	if _, failed := syncRuns(us.Output(), dests[1]); failed == 0 {
		t.Fatal("no failed sync logged for rs2")
	}
	rs[1].start(t)
	back := time.Now()
	wait.For(t, 15*time.Second, func() bool { return rs[1].has("index.html", v2) }, "rs2 caught up")
	t.Logf("figure: rs2's rsyncd back -> caught up: %v (backoff 200ms doubling to 1s)", time.Since(back).Round(time.Millisecond))
	wait.For(t, 5*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(state, contentsync.QueueFile))
		return os.IsNotExist(err)
	}, "the failure queue emptied")

	// 5. The queue survives a restart of uvs-sync.
	rs[1].stop(t)
	v3 := []byte("<h1>v3</h1>\n")
	if err := os.WriteFile(filepath.Join(root, "index.html"), v3, 0o644); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, func() bool {
		q, err := contentsync.LoadQueue(state)
		return err == nil && q[dests[1]] != nil
	}, "rs2 queued again")
	stop()
	q, err := contentsync.LoadQueue(state)
	if err != nil || q[dests[1]] == nil || q[dests[0]] != nil {
		t.Fatalf("queue after SIGTERM: %v %+v", err, q)
	}
	rs[1].start(t)
	args = append([]string{args[0]}, args[2:]...) // without -r: only the queue can bring v3
	start()
	wait.For(t, 15*time.Second, func() bool { return rs[1].has("index.html", v3) }, "rs2 got v3 from the restored queue")
	if !strings.Contains(us.Output(), "failure queue: 1 path (index.html) restored for "+dests[1]) {
		t.Fatalf("no restore line:\n%s", us.Output())
	}
	stop()
}
