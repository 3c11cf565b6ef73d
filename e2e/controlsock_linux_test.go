package e2e

import (
	"context"
	be "encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uvs-lb/uvs/control/wire"
	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/wait"
)

// The control socket attacked by a user that is not root (issue #15):
// uid 65534 (nobody) squats the name, sends oversized frames, holds
// connections open without sending, and lists connections.

const nobody = 65534

// controlSocket is the name uvsd and uvsadm use in these tests.
func controlSocket() string {
	if s := os.Getenv(wire.SocketEnv); s != "" {
		return s
	}
	return wire.DefaultSocketName
}

// withEUID runs fn with the calling (locked) thread's effective uid set
// to uid, then restores root's: the raw system call changes only this
// thread, whose effective capabilities leave and come back with euid 0.
func withEUID(uid int, fn func() error) error {
	keep := ^uintptr(0) // (uid_t)-1: unchanged
	if _, _, errno := unix.RawSyscall(unix.SYS_SETRESUID, keep, uintptr(uid), keep); errno != 0 {
		return errno
	}
	err := fn()
	if _, _, errno := unix.RawSyscall(unix.SYS_SETRESUID, keep, 0, keep); errno != 0 {
		// ns.Do cannot switch this thread back and discards it.
		return errors.Join(err, errno)
	}
	return err
}

// dialAsNobody connects to the control socket of ns as uid 65534.
func dialAsNobody(t *testing.T, ns *netnstest.NS) net.Conn {
	t.Helper()
	var c net.Conn
	if err := ns.Do(func() error {
		return withEUID(nobody, func() (err error) { c, err = net.Dial("unix", controlSocket()); return err })
	}); err != nil {
		t.Fatalf("connect as uid %d: %v", nobody, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// nobodyUVSADM is uvsadm copied where uid 65534 may run it.
func nobodyUVSADM(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "uvs-e2e-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(binary("uvsadm"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "uvsadm")
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// runIn runs args in ns (as uid 65534 if asNobody) for at most limit and
// returns its combined output and exit status (-1: killed or not run).
func runIn(t *testing.T, ns *netnstest.NS, asNobody bool, limit time.Duration, env []string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var out []byte
	var err error
	if asNobody {
		// The child inherits the namespace of the thread that starts it.
		derr := ns.Do(func() error {
			cmd := exec.CommandContext(ctx, args[0], args[1:]...)
			cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
			cmd.Dir = "/"
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
			out, err = cmd.CombinedOutput()
			return nil
		})
		if derr != nil {
			t.Fatal(derr)
		}
	} else {
		cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		out, err = cmd.CombinedOutput()
	}
	code := 0
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		code = -1
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), code
}

// squatter is a process that is not root holding the control socket's
// name: it answers every request with success and counts what it was sent.
type squatter struct {
	ln       net.Listener
	mu       sync.Mutex
	accepted int
	received int
}

func squat(t *testing.T, ns *netnstest.NS) *squatter {
	t.Helper()
	s := &squatter{}
	if err := ns.Do(func() error {
		return withEUID(nobody, func() (err error) { s.ln, err = net.Listen("unix", controlSocket()); return err })
	}); err != nil {
		t.Fatalf("squat %s as uid %d: %v", controlSocket(), nobody, err)
	}
	t.Cleanup(func() { s.ln.Close() })
	go func() {
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetReadDeadline(time.Now().Add(time.Second))
				n, _ := io.ReadFull(c, make([]byte, wire.HeaderSize))
				s.mu.Lock()
				s.accepted++
				s.received += n
				s.mu.Unlock()
				_ = wire.WriteFrame(c, wire.FrameExit, wire.ExitPayload(0)) // forged success
			}()
		}
	}()
	return s
}

func (s *squatter) counts() (accepted, received int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted, s.received
}

// ctlNS returns a namespace with an interface up for uvsd to serve (a
// veth whose other end is in a second namespace).
func ctlNS(t *testing.T, prefix string) *netnstest.NS {
	t.Helper()
	ns, peer := netnstest.New(t, prefix), netnstest.New(t, prefix+"p")
	netnstest.Veth(t, ns, "eth0", peer, "eth0")
	ns.AddrAdd(t, "eth0", "10.0.9.1/24")
	peer.AddrAdd(t, "eth0", "10.0.9.2/24")
	return ns
}

// oneLine fails if out holds a stack trace.
func oneLine(t *testing.T, what, out string) {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "\t") || strings.HasPrefix(l, "goroutine ") || strings.HasPrefix(l, "panic") {
			t.Errorf("%s: a stack trace in the output:\n%s", what, out)
			return
		}
	}
}

// TestControlSocketSquat: uid 65534 binds the control socket's name
// before uvsd. uvsd refuses to start with one line naming the squatter,
// and root's uvsadm sends it nothing (nor starts a director beside it).
func TestControlSocketSquat(t *testing.T) {
	ns := ctlNS(t, "csq")
	sq := squat(t, ns)

	p := ns.Start(t, binary("uvsd"), "--log-level", "debug")
	select {
	case <-p.Done():
	case <-time.After(startTimeout):
		t.Fatalf("uvsd still runs beside a squatter:\n%s", p.Output())
	}
	if p.Err() == nil || !strings.Contains(p.Output(), "uid 65534, not root") {
		t.Errorf("uvsd beside a squatter: %v, output:\n%s\nwant a refusal naming the squatter", p.Err(), p.Output())
	}
	oneLine(t, "uvsd", p.Output())
	t.Logf("uvsd: %s", p.Output())

	out, code := runIn(t, ns, false, 20*time.Second, nil, binary("uvsadm"), "-A", "-t", "10.0.0.1:80", "-s", "rr")
	if code == 0 || !strings.Contains(out, "uid 65534, not root") {
		t.Errorf("root's uvsadm -A to a squatter: exit %d, %q; want a refusal naming it", code, out)
	}
	oneLine(t, "uvsadm", out)
	t.Logf("uvsadm: %s", out)
	accepted, received := sq.counts()
	if received != 0 {
		t.Errorf("the squatter received %d bytes of root's requests", received)
	}
	if accepted == 0 {
		t.Error("nobody connected to the squatter: the test did not reach it")
	}
}

// TestControlSocketUnprivileged: a user that is not root lists services
// with uvsadm, but neither lists connections nor changes anything.
func TestControlSocketUnprivileged(t *testing.T) {
	ns := ctlNS(t, "cun")
	startUVSD(t, ns, "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m\n")
	adm := nobodyUVSADM(t)
	noStart := []string{"UVS_NO_AUTOSTART=1", wire.SocketEnv + "=" + controlSocket()}
	if out, code := runIn(t, ns, true, 20*time.Second, noStart, adm, "-Ln"); code != 0 || !strings.Contains(out, "10.0.1.1:80") {
		t.Errorf("uid 65534 uvsadm -Ln: exit %d\n%s", code, out)
	}
	for _, args := range [][]string{{"-Lnc"}, {"-L", "-n", "-c"}, {"-A", "-t", "10.0.0.2:80"}, {"-C"}, {"-d", "-t", "10.0.0.1:80", "-r", "10.0.1.1:80"}} {
		out, code := runIn(t, ns, true, 20*time.Second, noStart, append([]string{adm}, args...)...)
		if code != 255 || out != "Permission denied (you must be root)" {
			t.Errorf("uid 65534 uvsadm %s: exit %d, %q", strings.Join(args, " "), code, out)
		}
	}
	out, code := runIn(t, ns, false, 20*time.Second, []string{"UVS_NO_AUTOSTART=1"}, binary("uvsadm"), "-Sn")
	if code != 0 || out != "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 1" {
		t.Errorf("root -Sn after uid 65534's attempts: exit %d\n%s", code, out)
	}
	if out, code := runIn(t, ns, false, 20*time.Second, []string{"UVS_NO_AUTOSTART=1"}, binary("uvsadm"), "-Lnc"); code != 0 || !strings.Contains(out, "IPVS connection entries") {
		t.Errorf("root -Lnc: exit %d\n%s", code, out)
	}
}

// TestControlSocketHostileClients: uid 65534 opens more connections than
// uvsd has slots and sends nothing, then announces a frame larger than it
// may send. Root's uvsadm is served throughout, the silent connections
// are dropped within seconds, and the oversized frame is refused before
// its payload is sent.
func TestControlSocketHostileClients(t *testing.T) {
	ns := ctlNS(t, "chc")
	startUVSD(t, ns, "-A -t 10.0.0.1:80 -s rr\n")
	var silent []net.Conn
	for range 40 { // more than the 32 slots uvsd had for everyone
		silent = append(silent, dialAsNobody(t, ns))
	}
	out, code := runIn(t, ns, false, 20*time.Second, []string{"UVS_NO_AUTOSTART=1"}, binary("uvsadm"), "-A", "-t", "10.0.0.2:80")
	if code != 0 {
		t.Errorf("root uvsadm -A while uid 65534 holds 40 silent connections: exit %d, %q", code, out)
	}
	for i, c := range silent {
		if !closedWithin(c, 20*time.Second) {
			t.Fatalf("silent connection %d of uid 65534 still open after 20 s", i)
		}
	}

	c := dialAsNobody(t, ns)
	hdr := make([]byte, wire.HeaderSize)
	hdr[0] = wire.FrameRequest
	be.BigEndian.PutUint32(hdr[1:], 1<<20) // 1 MiB announced, none sent
	if _, err := c.Write(hdr); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var errs strings.Builder
	for {
		typ, p, err := wire.ReadFrame(c, wire.MaxReplyRead)
		if err != nil {
			t.Fatalf("oversized frame of uid 65534: no answer: %v", err)
		}
		if typ == wire.FrameStderr {
			errs.Write(p)
		}
		if typ == wire.FrameExit {
			break
		}
	}
	if !strings.Contains(errs.String(), "exceeds the limit") {
		t.Errorf("oversized frame answered %q", errs.String())
	}
	if !closedWithin(c, 10*time.Second) {
		t.Error("the connection of the oversized frame is still open")
	}

	adm := nobodyUVSADM(t)
	wait.For(t, 10*time.Second, func() bool {
		out, code := runIn(t, ns, true, 10*time.Second, []string{"UVS_NO_AUTOSTART=1", wire.SocketEnv + "=" + controlSocket()}, adm, "-Ln")
		return code == 0 && strings.Contains(out, "10.0.0.2:80")
	}, "uid 65534's uvsadm -Ln to be served again")
}

// closedWithin reports whether the peer closes c within limit.
func closedWithin(c net.Conn, limit time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(limit))
	b := make([]byte, 512)
	for {
		if _, err := c.Read(b); err != nil {
			var ne net.Error
			return !(errors.As(err, &ne) && ne.Timeout())
		}
	}
}
