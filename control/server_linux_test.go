package control

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uvs-lb/uvs/control/client"
	"github.com/uvs-lb/uvs/control/wire"
	"github.com/uvs-lb/uvs/internal/fuzzwatch"
	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/wait"
)

// testSocket returns an abstract socket name no other test uses.
func testSocket(t testing.TB) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "@uvs-test-" + hex.EncodeToString(b[:])
}

// startServer serves st on a fresh abstract socket until the test ends.
func startServer(t *testing.T, srv *Server) string {
	t.Helper()
	name := testSocket(t)
	ln, err := Listen(name)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeListener(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return")
		}
	})
	return name
}

func fakePeer(priv bool) func(*net.UnixConn) (wire.Cred, error) {
	return func(*net.UnixConn) (wire.Cred, error) {
		if priv {
			return wire.Cred{PID: 1}, nil
		}
		return wire.Cred{PID: 1, UID: 65534, GID: 65534}, nil
	}
}

func do(t *testing.T, name string, req wire.Request) result {
	t.Helper()
	c := client.Client{Socket: name, Timeout: 10 * time.Second}
	var o, e bytes.Buffer
	code, err := c.Do(context.Background(), req, &o, &e)
	if err != nil {
		t.Fatalf("%q: %v", req.Args, err)
	}
	return result{o.String(), e.String(), code}
}

func TestServerRoundTrip(t *testing.T) {
	st := newFixture(t)
	srv := NewServer(st, Env{})
	srv.peer = fakePeer(true)
	name := startServer(t, srv)

	for _, args := range [][]string{{"-Ln"}, {"-Ln", "--stats"}, {"-S"}, {"-L", "--timeout"}, {"-h"}, {"-L", "-t", "1.1.1.1:1"}, {"-x"}} {
		want := runCLI(st, Env{Prog: "ipvsadm"}, "", args...)
		got := do(t, name, wire.Request{Prog: "ipvsadm", Args: args})
		if got != want {
			t.Errorf("%q over the socket: %+v\nwant %+v", args, got, want)
		}
	}
	// Changes, including -R with its stdin, go through.
	r := do(t, name, wire.Request{Prog: "ipvsadm", Args: []string{"-R"}, Stdin: []byte("-A -t 10.7.7.7:80 -s rr\n-a -t 10.7.7.7:80 -r 1.2.3.4 -m\n")})
	if r.code != 0 || r.err != "" {
		t.Fatalf("-R over the socket: %+v", r)
	}
	if s := runCLI(st, root, "", "-S").out; !strings.Contains(s, "-A -t 10.7.7.7:80 -s rr\n-a -t 10.7.7.7:80 -r 1.2.3.4:80 -m -w 1\n") {
		t.Errorf("-R did not apply:\n%s", s)
	}
	// The program name selects the personality on the server side too.
	saved := runCLI(st, root, "", "-S").out
	r = do(t, name, wire.Request{Prog: "ipvsadm-save", Args: []string{"-n"}})
	if r.code != 0 || r.out != saved {
		t.Errorf("ipvsadm-save over the socket: %+v", r)
	}
	// Large outputs are chunked and reassembled in order.
	var rules strings.Builder
	for i := range 3000 {
		rules.WriteString("-a -t 10.7.7.7:80 -r 10.1." + itoa(i/250) + "." + itoa(1+i%250) + " -m\n")
	}
	if r = do(t, name, wire.Request{Prog: "ipvsadm", Args: []string{"-R"}, Stdin: []byte(rules.String())}); r.code != 0 {
		t.Fatalf("big -R: %+v", r)
	}
	want := runCLI(st, root, "", "-Ln")
	if len(want.out) <= wire.MaxChunk {
		t.Fatalf("listing of %d bytes does not exercise chunking", len(want.out))
	}
	if got := do(t, name, wire.Request{Prog: "ipvsadm", Args: []string{"-Ln"}}); got != want {
		t.Errorf("big listing differs (%d vs %d bytes)", len(got.out), len(want.out))
	}
}

func TestServerUnprivileged(t *testing.T) {
	st := newFixture(t)
	srv := NewServer(st, Env{})
	srv.peer = fakePeer(false)
	name := startServer(t, srv)
	before := runCLI(st, root, "", "-S").out
	if r := do(t, name, wire.Request{Prog: "ipvsadm", Args: []string{"-Ln"}}); r.code != 0 || r.err != "" {
		t.Errorf("unprivileged -Ln: %+v", r)
	}
	for _, args := range [][]string{{"-C"}, {"-A", "-t", "10.0.0.9:80"}, {"-Z"}, {"--set", "1", "1", "1"}} {
		r := do(t, name, wire.Request{Prog: "ipvsadm", Args: args})
		if r.code != 255 || r.err != "Permission denied (you must be root)\n" {
			t.Errorf("unprivileged %q: %+v", args, r)
		}
	}
	if after := runCLI(st, root, "", "-S").out; after != before {
		t.Error("unprivileged peer changed the table")
	}
}

// TestServerPeerCred checks SO_PEERCRED for real: the test's own uid, and
// as root also a connection made with euid 65534.
func TestServerPeerCred(t *testing.T) {
	st := New(Options{})
	name := startServer(t, NewServer(st, Env{}))
	r := do(t, name, wire.Request{Prog: "ipvsadm", Args: []string{"-A", "-t", "10.0.0.1:80"}})
	if os.Geteuid() == 0 {
		if r.code != 0 || r.err != "" {
			t.Fatalf("root -A: %+v", r)
		}
	} else if r.code != 255 || r.err != "Permission denied (you must be root)\n" {
		t.Fatalf("non-root -A: %+v", r)
	}
	netnstest.SkipIfNotRoot(t) // connecting as another user needs root
	// Connect from a thread whose effective uid is 65534: the raw
	// setresuid system call changes only the calling thread (unix.Setresuid
	// would change every thread of the process), and the locked thread
	// exits with its goroutine.
	type dialed struct {
		c   net.Conn
		err error
	}
	ch := make(chan dialed, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		keep := ^uintptr(0)    // (uid_t)-1: unchanged
		if _, _, errno := unix.RawSyscall(unix.SYS_SETRESUID, keep, 65534, keep); errno != 0 {
			ch <- dialed{nil, errno}
			return
		}
		c, err := net.Dial("unix", name)
		ch <- dialed{c, err}
	}()
	d := <-ch
	if d.err != nil {
		t.Fatal(d.err)
	}
	defer d.c.Close()
	cl := client.Client{Socket: name, Timeout: 10 * time.Second}
	var o, e bytes.Buffer
	code, err := cl.Exchange(context.Background(), d.c, wire.Request{Prog: "ipvsadm", Args: []string{"-D", "-t", "10.0.0.1:80"}}, &o, &e)
	if err != nil || code != 255 || e.String() != "Permission denied (you must be root)\n" {
		t.Errorf("uid 65534 -D: %d %q %v", code, e.String(), err)
	}
	if len(st.Services()) != 1 {
		t.Error("uid 65534 deleted a service")
	}
	if os.Geteuid() != 0 {
		t.Fatal("the uid change leaked out of its thread")
	}
}

func TestServerConcurrent(t *testing.T) {
	st := New(Options{})
	srv := NewServer(st, Env{})
	srv.peer = fakePeer(true)
	srv.MaxConns = 4
	name := startServer(t, srv)
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := client.Client{Socket: name, Timeout: 10 * time.Second}
			var o, e bytes.Buffer
			code, err := c.Do(context.Background(), wire.Request{Prog: "ipvsadm", Args: []string{"-A", "-t", "10.0.0." + itoa(1+i) + ":80"}}, &o, &e)
			if err != nil || code != 0 {
				errs <- e.String()
			}
			o.Reset()
			if code, err := c.Do(context.Background(), wire.Request{Prog: "ipvsadm", Args: []string{"-Ln"}}, &o, &e); err != nil || code != 0 {
				errs <- e.String()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if n := len(st.Services()); n != 16 {
		t.Errorf("%d services, want 16", n)
	}
}

func TestServerBadRequests(t *testing.T) {
	srv := NewServer(New(Options{}), Env{})
	srv.Timeout = 300 * time.Millisecond
	name := startServer(t, srv)
	exchangeRaw := func(typ byte, payload []byte) (string, int) {
		t.Helper()
		c, err := net.Dial("unix", name)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if err := wire.WriteFrame(c, typ, payload); err != nil {
			t.Fatal(err)
		}
		var errs strings.Builder
		for {
			ft, p, err := wire.ReadFrame(c, wire.MaxReplyRead)
			if err != nil {
				t.Fatalf("reply: %v", err)
			}
			switch ft {
			case wire.FrameStderr:
				errs.Write(p)
			case wire.FrameExit:
				return errs.String(), int(int32(p[0])<<24 | int32(p[1])<<16 | int32(p[2])<<8 | int32(p[3]))
			}
		}
	}
	if msg, code := exchangeRaw('Z', nil); code != 255 || !strings.Contains(msg, "unexpected frame") {
		t.Errorf("bad frame type: %d %q", code, msg)
	}
	if msg, code := exchangeRaw(wire.FrameRequest, []byte("{not json")); code != 255 || !strings.Contains(msg, "malformed") {
		t.Errorf("bad json: %d %q", code, msg)
	}
	p, _ := json.Marshal(wire.Request{Version: 99, Args: []string{"-L"}})
	if msg, code := exchangeRaw(wire.FrameRequest, p); code != 255 || !strings.Contains(msg, "protocol 99") {
		t.Errorf("bad version: %d %q", code, msg)
	}
	// A client that sends nothing is dropped after the request timeout.
	c, err := net.Dial("unix", name)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, _, err := wire.ReadFrame(c, 16); err == nil {
		t.Error("silent client got a reply")
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("silent client held for %v", d)
	}
	// An oversized request is refused without reading it all.
	c2, err := net.Dial("unix", name)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	var hdr = []byte{wire.FrameRequest, 0xff, 0xff, 0xff, 0xff}
	_, _ = c2.Write(hdr)
	_ = c2.SetDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := wire.ReadFrame(c2, 16); err == nil {
		t.Error("oversized request answered")
	}
}

func TestServerStopsAndReleasesSocket(t *testing.T) {
	name := testSocket(t)
	srv := NewServer(New(Options{}), Env{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, name) }()
	wait.ForErr(t, 5*time.Second, func() error {
		c, err := net.Dial("unix", name)
		if err == nil {
			c.Close()
		}
		return err
	}, "the server to accept on %s", name)
	// A second server on the same name fails to bind.
	if err := NewServer(New(Options{}), Env{}).Serve(context.Background(), name); err == nil {
		t.Fatal("second Serve on a bound name succeeded")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	ln, err := Listen(name)
	if err != nil {
		t.Fatalf("socket not released: %v", err)
	}
	ln.Close()
}

// TestServerNetnsScope: the abstract socket of a director in another
// network namespace is not reachable from this one.
func TestServerNetnsScope(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	ns := netnstest.New(t, "ctl")
	name := testSocket(t)
	var ln *net.UnixListener
	if err := ns.Do(func() error {
		var err error
		ln, err = Listen(name)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	st := New(Options{})
	mustRun(t, st, "-A -t 10.0.0.1:80 -s rr")
	srv := NewServer(st, Env{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeListener(ctx, ln) }()
	defer func() { cancel(); <-done }()
	if c, err := net.Dial("unix", name); err == nil {
		c.Close()
		t.Fatal("reached another namespace's control socket")
	}
	var r result
	if err := ns.Do(func() error {
		c := client.Client{Socket: name, Timeout: 5 * time.Second}
		var o, e bytes.Buffer
		code, err := c.Do(context.Background(), wire.Request{Prog: "ipvsadm", Args: []string{"-Sn"}}, &o, &e)
		r = result{o.String(), e.String(), code}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if r.code != 0 || r.out != "-A -t 10.0.0.1:80 -s rr\n" {
		t.Errorf("inside the namespace: %+v", r)
	}
}

// asEUID runs fn on a locked thread whose effective uid is uid (the raw
// setresuid system call changes only the calling thread; its effective
// capabilities go with the root euid and come back with it). The thread
// is given back to the runtime only if root's euid could be restored.
func asEUID(uid int, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		done <- withEUID(uid, fn)
		if os.Geteuid() == 0 && unix.Geteuid() == 0 {
			runtime.UnlockOSThread()
		}
	}()
	return <-done
}

// withEUID is asEUID on the current, already locked thread.
func withEUID(uid int, fn func() error) error {
	keep := ^uintptr(0) // (uid_t)-1: unchanged
	if _, _, errno := unix.RawSyscall(unix.SYS_SETRESUID, keep, uintptr(uid), keep); errno != 0 {
		return errno
	}
	err := fn()
	if _, _, errno := unix.RawSyscall(unix.SYS_SETRESUID, keep, 0, keep); errno != 0 {
		panic("cannot restore euid 0: " + errno.Error())
	}
	return err
}

// dialAs connects to name as uid (SO_PEERCRED reports uid to the server).
func dialAs(t *testing.T, name string, uid int) net.Conn {
	t.Helper()
	var c net.Conn
	if err := asEUID(uid, func() (err error) { c, err = net.Dial("unix", name); return err }); err != nil {
		t.Fatalf("dial %s as uid %d: %v", name, uid, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readReply reads a reply's stderr and exit status, or fails.
func readReply(t *testing.T, c net.Conn) (string, int) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var errs strings.Builder
	for {
		ft, p, err := wire.ReadFrame(c, wire.MaxReplyRead)
		if err != nil {
			t.Fatalf("reply: %v (stderr so far %q)", err, errs.String())
		}
		switch ft {
		case wire.FrameStderr:
			errs.Write(p)
		case wire.FrameExit:
			code, err := wire.ParseExit(p)
			if err != nil {
				t.Fatal(err)
			}
			return errs.String(), code
		}
	}
}

// closed waits until the server has closed c (a read returns EOF or
// ECONNRESET), for at most limit.
func closed(c net.Conn, limit time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(limit))
	var b [512]byte
	for {
		_, err := c.Read(b[:])
		if err != nil {
			var ne net.Error
			return !(errors.As(err, &ne) && ne.Timeout())
		}
	}
}

// TestServerSquatter: a process that is not root binds the control
// socket's name first. uvsd's Listen names it and refuses; root's client
// refuses to send it anything; the client of that same user may use it.
func TestServerSquatter(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	name := testSocket(t)
	var sq *net.UnixListener
	if err := asEUID(65534, func() (err error) {
		sq, err = net.ListenUnix("unix", &net.UnixAddr{Name: name, Net: "unix"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
	// The squatter answers every request with success and counts what it
	// was sent.
	var mu sync.Mutex
	received, accepted := 0, 0
	go func() {
		for {
			c, err := sq.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				var hdr [wire.HeaderSize]byte
				n, _ := io.ReadFull(c, hdr[:])
				mu.Lock()
				accepted++
				received += n
				mu.Unlock()
				_ = wire.WriteFrame(c, wire.FrameExit, wire.ExitPayload(0))
			}()
		}
	}()
	_, err := Listen(name)
	if err == nil || !strings.Contains(err.Error(), "uid 65534, not root") || !strings.Contains(err.Error(), "pid "+itoa(os.Getpid())) {
		t.Errorf("Listen on a squatted name: %v; want the squatter's pid and uid named", err)
	}
	cl := client.Client{Socket: name, Timeout: 5 * time.Second}
	var o, e bytes.Buffer
	code, err := cl.Do(context.Background(), wire.Request{Prog: "ipvsadm", Args: []string{"-A", "-t", "10.0.0.1:80"}}, &o, &e)
	var untrusted *client.UntrustedError
	if !errors.As(err, &untrusted) || !strings.Contains(err.Error(), "uid 65534, not root") {
		t.Errorf("root's request to a squatter: code %d, err %v; want it refused before sending", code, err)
	}
	// The same user may talk to its own server.
	var ownErr error
	if err := asEUID(65534, func() error {
		c, err := cl.Dial(context.Background())
		if err == nil {
			c.Close()
		}
		ownErr = err
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if ownErr != nil {
		t.Errorf("uid 65534's client to its own server: %v", ownErr)
	}
	wait.For(t, 5*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return accepted >= 2 }, "the squatter to see the connections")
	mu.Lock()
	defer mu.Unlock()
	if received != 0 {
		t.Errorf("the squatter received %d bytes from root", received)
	}
}

// TestServerOversized: a header announcing more than the peer may send
// is answered and the connection closed without its payload being read
// (none is ever sent here).
func TestServerOversized(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	srv := NewServer(New(Options{}), Env{})
	name := startServer(t, srv)
	for i, tc := range []struct {
		uid  int
		size uint32
	}{
		{65534, 1 << 20},         // within the old 64 MiB, over the unprivileged limit
		{65534, wire.MaxRequest}, // root's limit does not apply to others
		{0, wire.MaxRequest + 1}, // root is bounded too
		{0, ^uint32(0)},
	} {
		c := dialAs(t, name, tc.uid)
		var hdr [wire.HeaderSize]byte
		hdr[0] = wire.FrameRequest
		binary.BigEndian.PutUint32(hdr[1:], tc.size)
		if _, err := c.Write(hdr[:]); err != nil {
			t.Fatal(err)
		}
		msg, code := readReply(t, c)
		if code != 255 || !strings.Contains(msg, "request of "+strconv.FormatUint(uint64(tc.size), 10)+" bytes exceeds the limit") {
			t.Errorf("uid %d, %d bytes announced: %d %q", tc.uid, tc.size, code, msg)
		}
		if !closed(c, 5*time.Second) {
			t.Errorf("uid %d, %d bytes announced: connection still open", tc.uid, tc.size)
		}
		if n := srv.Stats().Oversized; n != uint64(i+1) {
			t.Errorf("Oversized = %d after %d", n, i+1)
		}
	}
	// A request within the limit is served as before.
	if r := do(t, name, wire.Request{Prog: "ipvsadm", Args: []string{"-Ln"}}); r.code != 0 {
		t.Errorf("-Ln after: %+v", r)
	}
}

// TestServerSlowClients: peers that are not root connect and send
// nothing. Beyond MaxUnprivConns they are refused at once; the others are
// dropped after ReadTimeout; root is served all along.
func TestServerSlowClients(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	st := New(Options{})
	srv := NewServer(st, Env{})
	srv.ReadTimeout = 2 * time.Second
	srv.MaxUnprivConns = 4
	name := startServer(t, srv)
	var slow []net.Conn
	for range 4 {
		slow = append(slow, dialAs(t, name, 65534))
	}
	// Wait until all four hold their slot (the server counts none busy),
	// then the fifth is refused with a message.
	wait.For(t, 5*time.Second, func() bool {
		c := dialAs(t, name, 65534)
		msg, code := readReply(t, c)
		c.Close()
		return code == 255 && strings.Contains(msg, "too many control connections")
	}, "a fifth slow peer to be refused")
	// Root is served while they hold theirs, changes included.
	if r := do(t, name, wire.Request{Prog: "ipvsadm", Args: []string{"-A", "-t", "10.0.0.1:80"}}); r.code != 0 {
		t.Errorf("root -A with slow peers connected: %+v", r)
	}
	for i, c := range slow {
		if !closed(c, 10*time.Second) {
			t.Fatalf("slow peer %d still connected", i)
		}
	}
	if n := srv.Stats().ReadTimeouts; n != 4 {
		t.Errorf("ReadTimeouts = %d, want 4", n)
	}
	// The slots are free again.
	c := dialAs(t, name, 65534)
	cl := client.Client{Socket: name, Timeout: 5 * time.Second}
	var o, e bytes.Buffer
	code, err := cl.Exchange(context.Background(), c, wire.Request{Prog: "ipvsadm", Args: []string{"-Ln"}}, &o, &e)
	if err != nil || code != 0 || !strings.Contains(o.String(), "10.0.0.1:80") {
		t.Errorf("uid 65534 -Ln after the slow peers left: %d %v %q %q", code, err, o.String(), e.String())
	}
}

// TestServerUnprivilegedConns: with real credentials, a peer that is not
// root lists services but not connections, and changes nothing.
func TestServerUnprivilegedConns(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	st := New(Options{})
	mustRun(t, st, "-A -t 10.0.0.1:80 -s rr")
	name := startServer(t, NewServer(st, Env{}))
	cl := client.Client{Socket: name, Timeout: 5 * time.Second}
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"-Ln"}, 0, ""},
		{[]string{"-Lnc"}, 255, "Permission denied (you must be root)\n"},
		{[]string{"-L", "-c", "-n", "--persistent-conn"}, 255, "Permission denied (you must be root)\n"},
		{[]string{"-A", "-t", "10.0.0.2:80"}, 255, "Permission denied (you must be root)\n"},
	} {
		c := dialAs(t, name, 65534)
		var o, e bytes.Buffer
		code, err := cl.Exchange(context.Background(), c, wire.Request{Prog: "ipvsadm", Args: tc.args}, &o, &e)
		if err != nil || code != tc.code || e.String() != tc.err {
			t.Errorf("uid 65534 %q: %d %v %q", tc.args, code, err, e.String())
		}
		if tc.code != 0 && o.Len() != 0 {
			t.Errorf("uid 65534 %q printed %q", tc.args, o.String())
		}
	}
	if r := do(t, name, wire.Request{Prog: "ipvsadm", Args: []string{"-Lnc"}}); r.code != 0 || !strings.Contains(r.out, "IPVS connection entries") {
		t.Errorf("root -Lnc: %+v", r)
	}
	if n := len(st.Services()); n != 1 {
		t.Errorf("%d services after uid 65534's -A", n)
	}
}

// FuzzServerHandle feeds arbitrary bytes to the server as a peer that is
// not root: it never panics, answers with frames ending in an exit frame
// (or closes), and changes nothing.
func FuzzServerHandle(f *testing.F) {
	req := func(r wire.Request) []byte {
		r.Version = wire.Version
		p, _ := json.Marshal(r)
		var b bytes.Buffer
		_ = wire.WriteFrame(&b, wire.FrameRequest, p)
		return b.Bytes()
	}
	f.Add(req(wire.Request{Prog: "ipvsadm", Args: []string{"-Ln"}}))
	f.Add(req(wire.Request{Prog: "ipvsadm", Args: []string{"-Lnc"}}))
	f.Add(req(wire.Request{Prog: "ipvsadm", Args: []string{"-C"}}))
	f.Add(req(wire.Request{Prog: "ipvsadm-restore", Stdin: []byte("-A -t 1.2.3.4:80\n")}))
	f.Add([]byte{wire.FrameRequest, 0, 1, 0, 0})
	f.Add([]byte{'Z', 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("%d bytes %.200q", len(in), in) })()
		st := New(Options{})
		mustRun(t, st, "-A -t 10.0.0.1:80 -s rr")
		before := runCLI(st, root, "", "-S", "-n").out
		srv := NewServer(st, Env{})
		srv.ReadTimeout = time.Second
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		conn := func(fd int) *net.UnixConn {
			f := os.NewFile(uintptr(fd), "socketpair")
			defer f.Close()
			c, err := net.FileConn(f)
			if err != nil {
				t.Fatal(err)
			}
			return c.(*net.UnixConn)
		}
		sc, cc := conn(fds[0]), conn(fds[1])
		defer cc.Close()
		done := make(chan struct{})
		go func() { defer close(done); srv.handle(sc, wire.Cred{UID: 65534}) }()
		_, _ = cc.Write(in)
		_ = cc.CloseWrite()
		_ = cc.SetReadDeadline(time.Now().Add(10 * time.Second))
		exited := false
		for {
			typ, _, err := wire.ReadFrame(cc, wire.MaxReplyRead)
			if err != nil {
				break
			}
			if exited {
				t.Fatalf("a frame %q after the exit frame", typ)
			}
			exited = typ == wire.FrameExit
		}
		<-done
		if after := runCLI(st, root, "", "-S", "-n").out; after != before {
			t.Fatalf("a peer that is not root changed the table:\n%s", after)
		}
	})
}

// TestServerAudit checks that the daemon is told of each change with the
// peer and its outcome, and of nothing else.
func TestServerAudit(t *testing.T) {
	st := newFixture(t)
	srv := NewServer(st, Env{})
	srv.peer = fakePeer(false)
	type entry struct {
		uid  uint32
		args string
		code int
	}
	var mu sync.Mutex
	var got []entry
	srv.Audit = func(c wire.Cred, prog string, args []string, code int) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, entry{c.UID, prog + " " + strings.Join(args, " "), code})
	}
	name := startServer(t, srv)
	for _, args := range [][]string{{"-Ln"}, {"--counters"}, {"-C"}, {"-S"}, {"-x"}} {
		do(t, name, wire.Request{Prog: "ipvsadm", Args: args})
	}
	mu.Lock()
	defer mu.Unlock()
	want := []entry{{65534, "ipvsadm -C", 255}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("audited %v, want %v", got, want)
	}
}
