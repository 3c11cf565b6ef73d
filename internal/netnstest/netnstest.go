// Package netnstest creates throw-away network namespaces for tests that
// need real sockets and interfaces. Every namespace gets a unique name
// starting with "uvs-t" and is deleted when the test ends; tests using it are
// skipped when not run as root.
//
// Configuration is done with the ip(8) command (thin wrappers below); code
// runs inside a namespace either as a command (Exec, Start) or in-process on
// a throw-away OS thread (Do). Sockets created inside Do keep working in the
// namespace they were created in when used from any goroutine afterwards.
//
//	a := netnstest.New(t, "cli")
//	b := netnstest.New(t, "dir")
//	netnstest.Veth(t, a, "c0", b, "d0")
//	a.AddrAdd(t, "c0", "198.18.0.1/24")
//	b.AddrAdd(t, "d0", "198.18.0.2/24")
//	a.Exec(t, "ping", "-c1", "-W1", "198.18.0.2")
package netnstest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/uvs-lb/uvs/internal/netnsdo"
)

// Prefix starts the name of every namespace this package creates.
const Prefix = "uvs-t"

// commandTimeout bounds every ip(8) command.
const commandTimeout = 10 * time.Second

// NS is a named network namespace that exists until the test ends.
type NS struct {
	// Name is the namespace's name under /run/netns.
	Name string
}

// SkipIfNotRoot skips t unless the test runs as root.
func SkipIfNotRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("needs root (CAP_NET_ADMIN) for netns, and CI must run the privileged suites: run CI as root")
		}
		t.Skip("needs root (CAP_NET_ADMIN) for netns")
	}
}

// New creates a namespace named uvs-t<prefix>-<random>, with its loopback
// up, and deletes it in t.Cleanup. It skips the test when not root. Keep
// prefix short: it only helps to recognise leftovers.
//
// Links made in the namespace skip IPv6 duplicate address detection
// (net.ipv6.conf.default.accept_dad=0), as AddrAdd's nodad does for the
// addresses a test adds: a link-local address is usable as soon as its
// link is up. Otherwise the kernel sends no neighbour solicitation for
// about a second after a link comes up (it has no source address for
// one yet), and the first packets of a test wait or are dropped.
func New(t testing.TB, prefix string) *NS {
	t.Helper()
	SkipIfNotRoot(t)
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatalf("netnstest: random name: %v", err)
	}
	n := &NS{Name: Prefix + prefix + "-" + hex.EncodeToString(rnd[:])}
	if out, err := run("ip", "netns", "add", n.Name); err != nil {
		t.Fatalf("netnstest: ip netns add %s: %v: %s", n.Name, err, out)
	}
	ino, err := nsInode(n.Name)
	if err != nil {
		t.Errorf("netnstest: %s: %v", n.Name, err)
	}
	t.Cleanup(func() {
		if ino != 0 {
			if err := RemoveUVSState(StateDir, ino); err != nil {
				t.Errorf("netnstest: %s: %v", n.Name, err)
			}
		}
		if out, err := run("ip", "netns", "del", n.Name); err != nil {
			t.Errorf("netnstest: ip netns del %s: %v: %s", n.Name, err, out)
		}
	})
	n.IP(t, "link", "set", "lo", "up")
	// In-process: /proc/sys/net belongs to the net namespace of the
	// thread that opens it.
	if err := n.Do(func() error {
		return os.WriteFile("/proc/sys/net/ipv6/conf/default/accept_dad", []byte("0"), 0)
	}); err != nil {
		t.Fatalf("netnstest: %s: accept_dad: %v", n.Name, err)
	}
	return n
}

// StateDir is where uvsd and uvsadm keep files per network namespace
// (khook.DefaultStateDir; khook's TestStateDirAgrees checks they agree).
const StateDir = "/run/uvs"

// nsInode returns the inode number of the named namespace, which names
// its files in StateDir.
func nsInode(name string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join("/run/netns", name), &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// RemoveUVSState removes the files in dir named by the namespace inode
// number ino (sysctl-INO.json, lports-INO-COOKIE, uvsd-netINO.log...): a
// uvsd a test killed with SIGKILL leaves its state there for a successor,
// and uvsadm's autostart its log, for a namespace nobody will use again.
// New's cleanup calls it before deleting the namespace, while no other
// namespace can have its number.
func RemoveUVSState(dir string, ino uint64) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	num := strconv.FormatUint(ino, 10)
	isDigit := func(s string, i int) bool { return i >= 0 && i < len(s) && s[i] >= '0' && s[i] <= '9' }
	for _, e := range ents {
		name := e.Name()
		for off := 0; ; {
			i := strings.Index(name[off:], num)
			if i < 0 {
				break
			}
			i += off
			if !isDigit(name, i-1) && !isDigit(name, i+len(num)) && e.Type().IsRegular() {
				if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return err
				}
				break
			}
			off = i + 1
		}
	}
	return nil
}

// run runs a command with a timeout and returns its combined output.
func run(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return "", err
	}
	timer := time.AfterFunc(commandTimeout, func() { _ = cmd.Process.Kill() })
	err := cmd.Wait()
	timer.Stop()
	return strings.TrimSpace(out.String()), err
}

// Run runs args inside the namespace (ip netns exec) and returns the
// combined output; a failure is returned, not reported.
func (n *NS) Run(args ...string) (string, error) {
	return run("ip", append([]string{"netns", "exec", n.Name}, args...)...)
}

// Exec runs args inside the namespace (ip netns exec) and fails the test if
// the command fails. It returns the combined output.
func (n *NS) Exec(t testing.TB, args ...string) string {
	t.Helper()
	out, err := n.Run(args...)
	if err != nil {
		t.Fatalf("netnstest: %s: %s: %v: %s", n.Name, strings.Join(args, " "), err, out)
	}
	return out
}

// IP runs `ip -netns NAME args...` and fails the test if it fails.
func (n *NS) IP(t testing.TB, args ...string) string {
	t.Helper()
	out, err := run("ip", append([]string{"-netns", n.Name}, args...)...)
	if err != nil {
		t.Fatalf("netnstest: ip -netns %s %s: %v: %s", n.Name, strings.Join(args, " "), err, out)
	}
	return out
}

// AddrAdd adds an address in CIDR form ("198.18.0.1/24", "fd00::1/64") to
// dev. IPv6 addresses are added with nodad so they are usable at once.
func (n *NS) AddrAdd(t testing.TB, dev, cidr string) {
	t.Helper()
	args := []string{"addr", "add", cidr, "dev", dev}
	if strings.Contains(cidr, ":") {
		args = append(args, "nodad")
	}
	n.IP(t, args...)
}

// LinkUp sets dev up.
func (n *NS) LinkUp(t testing.TB, dev string) {
	t.Helper()
	n.IP(t, "link", "set", dev, "up")
}

// RouteAdd adds a route: n.RouteAdd(t, "default", "via", "198.18.0.1").
func (n *NS) RouteAdd(t testing.TB, args ...string) {
	t.Helper()
	n.IP(t, append([]string{"route", "add"}, args...)...)
}

// NeighAdd adds a permanent neighbour entry for addr on dev.
func (n *NS) NeighAdd(t testing.TB, dev, addr string, mac net.HardwareAddr) {
	t.Helper()
	n.IP(t, "neigh", "replace", addr, "lladdr", mac.String(), "dev", dev, "nud", "permanent")
}

// Sysctl sets a sysctl inside the namespace: n.Sysctl(t,
// "net.ipv4.ip_forward", "1").
func (n *NS) Sysctl(t testing.TB, key, value string) {
	t.Helper()
	n.Exec(t, "sysctl", "-q", "-w", key+"="+value)
}

// Interface returns dev's index and MAC address as seen inside the
// namespace.
func (n *NS) Interface(t testing.TB, dev string) *net.Interface {
	t.Helper()
	var ifi *net.Interface
	err := n.Do(func() error {
		var err error
		ifi, err = net.InterfaceByName(dev)
		return err
	})
	if err != nil {
		t.Fatalf("netnstest: %s: interface %s: %v", n.Name, dev, err)
	}
	return ifi
}

// Veth creates a veth pair with end aName in a and end bName in b, and sets
// both up. It goes away with the namespaces.
func Veth(t testing.TB, a *NS, aName string, b *NS, bName string) {
	t.Helper()
	out, err := run("ip", "link", "add", aName, "netns", a.Name, "type", "veth",
		"peer", "name", bName, "netns", b.Name)
	if err != nil {
		t.Fatalf("netnstest: veth %s/%s: %v: %s", aName, bName, err, out)
	}
	a.LinkUp(t, aName)
	b.LinkUp(t, bName)
}

// Do runs fn on a fresh OS thread inside the namespace and waits for it
// (see package internal/netnsdo). The thread is locked for the duration; if
// it cannot be switched back to its original namespace it stays locked so
// the runtime destroys it rather than reuse it in the wrong namespace.
// Sockets fn creates stay in the namespace and may be used from any
// goroutine.
func (n *NS) Do(fn func() error) error {
	return netnsdo.Do(n.Name, fn)
}

// Proc is a background process started by Start.
type Proc struct {
	// Cmd is the running command; do not call Wait on it.
	Cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
	err  error
}

// Output returns what the process has written to stdout and stderr so far.
func (p *Proc) Output() string { return p.out.String() }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err returns the process's exit error once Done is closed.
func (p *Proc) Err() error {
	<-p.done
	return p.err
}

// Start starts args inside the namespace in the background and kills it
// (by PID, SIGKILL) in t.Cleanup. Start returns once the process is
// started, not ready: wait for readiness yourself (a port that answers, a
// line in Output) before relying on it.
func (n *NS) Start(t testing.TB, args ...string) *Proc {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.Name}, args...)...)
	p := &Proc{Cmd: cmd, out: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout = p.out
	cmd.Stderr = p.out
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("netnstest: %s: start %s: %v", n.Name, strings.Join(args, " "), err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		// ip netns exec execs the command, so the PID is the command's.
		_ = cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			t.Errorf("netnstest: %s: %s did not exit after SIGKILL", n.Name, args[0])
		}
	})
	return p
}

// lockedBuffer is a bytes.Buffer safe for concurrent writes and reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// RequireTool skips t when the command name is not installed, except in CI
// (CI set), where the tools are installed by .ci/run and a missing one is a
// failure, not a reason to skip.
func RequireTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed, and CI must run this test", name)
		}
		t.Skipf("needs %s (not installed); CI installs it", name)
	}
}

// Handle opens the namespace for APIs that take a netns.NsHandle (netlink
// handles, nftables connections); it is closed when the test ends.
func (n *NS) Handle(t testing.TB) netns.NsHandle {
	t.Helper()
	h, err := netns.GetFromName(n.Name)
	if err != nil {
		t.Fatalf("netnstest: open %s: %v", n.Name, err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}
