package control

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/control/client"
)

// fakeLauncher "starts a director" by serving a State in-process on the
// socket, after an optional delay.
type fakeLauncher struct {
	t      *testing.T
	name   string
	st     *State
	delay  time.Duration
	fail   error // Launch fails
	exit   error // the director "exits" at once
	silent bool  // the director never answers

	mu       sync.Mutex
	lock     sync.Mutex
	launches int
	locks    int
}

func (f *fakeLauncher) Lock() (func(), error) {
	f.lock.Lock()
	f.mu.Lock()
	f.locks++
	f.mu.Unlock()
	return f.lock.Unlock, nil
}

func (f *fakeLauncher) Launch() (<-chan error, error) {
	f.mu.Lock()
	f.launches++
	f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	exited := make(chan error, 1)
	switch {
	case f.exit != nil:
		exited <- f.exit
	case !f.silent:
		go func() {
			time.Sleep(f.delay)
			ln, err := Listen(f.name)
			if err != nil {
				exited <- err
				return
			}
			srv := NewServer(f.st, Env{})
			srv.peer = fakePeer(true)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { _ = srv.ServeListener(ctx, ln); close(done) }()
			f.t.Cleanup(func() { cancel(); <-done })
		}()
	}
	return exited, nil
}

func (f *fakeLauncher) counts() (int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.launches, f.locks
}

func mainRun(c *client.CLI, argv0, stdin string, args ...string) result {
	var o, e bytes.Buffer
	code := c.Main(context.Background(), argv0, args, strings.NewReader(stdin), &o, &e)
	return result{o.String(), e.String(), code}
}

func TestCLIAutostart(t *testing.T) {
	name := testSocket(t)
	st := New(Options{})
	fl := &fakeLauncher{t: t, name: name, st: st, delay: 100 * time.Millisecond}
	cli := &client.CLI{Client: client.Client{Socket: name}, Launcher: fl, StartTimeout: 5 * time.Second, Poll: 10 * time.Millisecond}
	r := mainRun(cli, "/usr/sbin/ipvsadm", "", "-A", "-t", "10.0.0.1:80", "-s", "rr")
	if r.code != 0 || r.err != "" {
		t.Fatalf("autostarted -A: %+v", r)
	}
	if n, _ := fl.counts(); n != 1 {
		t.Fatalf("%d launches", n)
	}
	// The director now answers: no second launch.
	r = mainRun(cli, "ipvsadm", "", "-Sn")
	if r.code != 0 || r.out != "-A -t 10.0.0.1:80 -s rr\n" {
		t.Errorf("-Sn: %+v", r)
	}
	if n, _ := fl.counts(); n != 1 {
		t.Errorf("%d launches after the director answered", n)
	}
}

// TestCLIAutostartOnce: concurrent uvsadm runs start one director.
func TestCLIAutostartOnce(t *testing.T) {
	name := testSocket(t)
	fl := &fakeLauncher{t: t, name: name, st: New(Options{}), delay: 50 * time.Millisecond}
	var wg sync.WaitGroup
	codes := make(chan result, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cli := &client.CLI{Client: client.Client{Socket: name}, Launcher: fl, StartTimeout: 5 * time.Second, Poll: 10 * time.Millisecond}
			codes <- mainRun(cli, "ipvsadm", "", "-A", "-t", "10.0.0."+itoa(1+i)+":80")
		}()
	}
	wg.Wait()
	close(codes)
	for r := range codes {
		if r.code != 0 {
			t.Errorf("concurrent run: %+v", r)
		}
	}
	if n, _ := fl.counts(); n != 1 {
		t.Errorf("%d launches, want 1", n)
	}
	if n := len(fl.st.Services()); n != 8 {
		t.Errorf("%d services, want 8", n)
	}
}

func TestCLINoDirector(t *testing.T) {
	const tail = "\nAre you sure that IP Virtual Server is built in the kernel or as module?\n"
	name := testSocket(t)
	fl := &fakeLauncher{t: t, name: name, st: New(Options{})}
	cases := []struct {
		name string
		cli  *client.CLI
		want string
	}{
		{"disabled", &client.CLI{Client: client.Client{Socket: name}, NoAutostart: true, Launcher: fl},
			"Can't initialize ipvs: no uvs director answers on " + name + " in this network namespace (start uvsd, or unset UVS_NO_AUTOSTART)" + tail},
		{"no-launcher", &client.CLI{Client: client.Client{Socket: name}},
			"Can't initialize ipvs: no uvs director answers on " + name + " in this network namespace (start uvsd)" + tail},
		{"launch-fails", &client.CLI{Client: client.Client{Socket: name}, Launcher: &fakeLauncher{t: t, name: name, fail: errors.New("find uvsd: not found")}},
			"Can't initialize ipvs: starting uvsd: find uvsd: not found" + tail},
		{"director-exits", &client.CLI{Client: client.Client{Socket: name}, Launcher: &fakeLauncher{t: t, name: name, exit: errors.New("uvsd exit status 1 (see log)")}},
			"Can't initialize ipvs: started uvsd, but it stopped: uvsd exit status 1 (see log)" + tail},
		{"director-silent", &client.CLI{Client: client.Client{Socket: name}, StartTimeout: 200 * time.Millisecond, Launcher: &fakeLauncher{t: t, name: name, silent: true}},
			"Can't initialize ipvs: started uvsd, but it did not answer on " + name + " within 200ms" + tail},
	}
	for _, c := range cases {
		for _, args := range [][]string{{"-Ln"}, {"-C"}} {
			r := mainRun(c.cli, "ipvsadm", "", args...)
			if r.code != 2 || r.err != c.want || r.out != "" {
				t.Errorf("%s %q: %+v\nwant %q", c.name, args, r, c.want)
			}
		}
	}
	if n, _ := fl.counts(); n != 0 {
		t.Errorf("autostart disabled, yet %d launches", n)
	}
}

// TestCLILocal: -h, -v and command-line errors need no director.
func TestCLILocal(t *testing.T) {
	name := testSocket(t)
	fl := &fakeLauncher{t: t, name: name, st: New(Options{})}
	cli := &client.CLI{Client: client.Client{Socket: name}, Launcher: fl}
	for _, c := range []struct {
		args []string
		code int
	}{{[]string{"-h"}, 0}, {[]string{"-v"}, 0}, {[]string{"-A"}, 2}, {[]string{"--nope"}, 255}, {[]string{"-t", "1.1.1.1:80"}, 255}} {
		want := runCLI(nil, Env{Prog: "ipvsadm"}, "", c.args...)
		r := mainRun(cli, "ipvsadm", "", c.args...)
		if r != want || r.code != c.code {
			t.Errorf("%q: %+v, want %+v", c.args, r, want)
		}
	}
	r := mainRun(cli, "ipvsadm-save", "", "-x")
	if r.code != 1 || r.err != "Usage: ipvsadm-save [-n]\n" {
		t.Errorf("ipvsadm-save -x: %+v", r)
	}
	if n, l := fl.counts(); n != 0 || l != 0 {
		t.Errorf("local commands launched %d directors", n)
	}
}

type failReader struct{ t *testing.T }

func (f failReader) Read([]byte) (int, error) {
	f.t.Error("stdin read for a command that takes no input")
	return 0, errors.New("unexpected read")
}

func TestCLIStdin(t *testing.T) {
	st := New(Options{})
	srv := NewServer(st, Env{})
	srv.peer = fakePeer(true)
	name := startServer(t, srv)
	cli := &client.CLI{Client: client.Client{Socket: name}, NoAutostart: true}
	var o, e bytes.Buffer
	if code := cli.Main(context.Background(), "ipvsadm", []string{"-A", "-t", "10.0.0.1:80"}, failReader{t}, &o, &e); code != 0 {
		t.Fatalf("-A: %d %s", code, e.String())
	}
	if r := mainRun(cli, "ipvsadm", "-a -t 10.0.0.1:80 -r 1.1.1.1\n", "-R"); r.code != 0 {
		t.Fatalf("-R: %+v", r)
	}
	// ipvsadm-restore: comments stripped, table cleared first.
	saved := "# uvs\n-A -u 10.0.0.2:53 -s rr\n-a -u 10.0.0.2:53 -r 1.1.1.2 -m\n"
	if r := mainRun(cli, "/sbin/ipvsadm-restore", saved); r.code != 0 || r.err != "" {
		t.Fatalf("ipvsadm-restore: %+v", r)
	}
	r := mainRun(cli, "uvsadm-save", "")
	if r.code != 0 || r.out != "-A -u 10.0.0.2:53 -s rr\n-a -u 10.0.0.2:53 -r 1.1.1.2:53 -m -w 1\n" {
		t.Errorf("after ipvsadm-restore: %+v", r)
	}
}

// TestCLIDaemons: the sync-daemon commands go through the control socket
// to Env.Daemons for a root peer, and are refused for others, who may
// still list them.
func TestCLIDaemons(t *testing.T) {
	fd := newFakeDaemons("eth1")
	st := New(Options{})
	rootSrv := NewServer(st, Env{Daemons: fd})
	rootSrv.peer = fakePeer(true)
	cli := &client.CLI{Client: client.Client{Socket: startServer(t, rootSrv)}, NoAutostart: true}
	userSrv := NewServer(st, Env{Daemons: fd})
	userSrv.peer = fakePeer(false)
	user := &client.CLI{Client: client.Client{Socket: startServer(t, userSrv)}, NoAutostart: true}

	const line = "master sync daemon (mcast=eth1, syncid=51, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
	steps := []struct {
		cli      *client.CLI
		args     string
		out, err string
		code     int
	}{
		{cli, "-L --daemon", "", "", 0},
		{user, "--start-daemon master --mcast-interface eth1 --syncid 51", "", "Permission denied (you must be root)\n", 255},
		{cli, "--start-daemon master --mcast-interface eth1 --syncid 51", "", "", 0},
		{cli, "--start-daemon master --mcast-interface eth1", "", "Daemon has already run\n", 255},
		{cli, "--start-daemon backup --mcast-interface eth7", "", "No such device\n", 255},
		{user, "-L --daemon", line, "", 0},
		{cli, "-Ln --daemon", line, "", 0},
		{cli, "-Sn", "", "", 0},
		{user, "--stop-daemon master", "", "Permission denied (you must be root)\n", 255},
		{cli, "--stop-daemon master", "", "", 0},
		{cli, "--stop-daemon master", "", "No daemon is running\n", 255},
		{user, "-L --daemon", "", "", 0},
	}
	for _, s := range steps {
		r := mainRun(s.cli, "ipvsadm", "", strings.Fields(s.args)...)
		if r.code != s.code || r.out != s.out || r.err != s.err {
			t.Errorf("%s: code %d stdout %q stderr %q; want %d %q %q", s.args, r.code, r.out, r.err, s.code, s.out, s.err)
		}
	}
}
