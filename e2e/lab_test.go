package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/control/client"
	"github.com/uvs-lb/uvs/control/wire"
	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/wait"
)

// bigSize is the size of the /big download the real servers serve.
const bigSize = 20 << 20

// bigBody returns the deterministic content of /big.
func bigBody() []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, bigSize)
	for i := 0; i+8 <= len(b); i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

var bigSum = func() string {
	s := sha256.Sum256(bigBody())
	return hex.EncodeToString(s[:])
}()

// webServer is a real server's web server on :80, which a test may stop
// and start again (the health-checker tests).
type webServer struct {
	ns      *netnstest.NS
	handler http.Handler
	mu      sync.Mutex
	srv     *http.Server // nil: stopped
}

// stop closes the :80 listener and its connections: the port refuses
// connections until start.
func (w *webServer) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.srv != nil {
		_ = w.srv.Close()
		w.srv = nil
	}
}

// start listens on :80 again inside the real server's namespace.
func (w *webServer) start(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.srv != nil {
		return
	}
	var ln net.Listener
	if err := w.ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", ":80")
		return err
	}); err != nil {
		t.Fatalf("web server: %v", err)
	}
	w.srv = &http.Server{Handler: w.handler, ReadHeaderTimeout: 5 * time.Second}
	go func(srv *http.Server) { _ = srv.Serve(ln) }(w.srv)
}

// startRealServer serves HTTP on :80 and :443 (IPv4 and IPv6) answering its name,
// /big with bigBody, and a UDP echo on :5353 replying "name:payload".
// Sockets are created inside ns and served from ordinary goroutines. The
// web server on :80 is returned.
func startRealServer(t *testing.T, ns *netnstest.NS, name string) *webServer {
	t.Helper()
	var ln, ln443 net.Listener
	var pc net.PacketConn
	err := ns.Do(func() error {
		var err error
		if ln, err = net.Listen("tcp", ":80"); err != nil {
			return err
		}
		if ln443, err = net.Listen("tcp", ":443"); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp", ":5353")
		return err
	})
	if err != nil {
		t.Fatalf("real server %s: %v", name, err)
	}
	big := bigBody()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, name) })
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "big", time.Time{}, bytes.NewReader(big))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	web := &webServer{ns: ns, handler: mux, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}}
	go func(srv80 *http.Server) { _ = srv80.Serve(ln) }(web.srv)
	go func() { _ = srv.Serve(ln443) }() // plain HTTP on 443: the fwmark tests need a second port
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(append([]byte(name+":"), buf[:n]...), from)
		}
	}()
	t.Cleanup(func() {
		web.stop()
		_ = srv.Close()
		_ = pc.Close()
	})
	return web
}

// natLab is the seeds' NAT topology: a client, a two-legged director whose
// server side is a LAN (a bridge in its own namespace) with two real
// servers whose default gateway is the director.
//
//	cli c0 10.0.1.2 ── d0 10.0.1.1 [dir] d1 10.0.2.1 ── br0 [sw] ── r0 10.0.2.11 [rs1]
//	                                                           └── r0 10.0.2.12 [rs2]
//
// IPv6 mirrors it with fd00:1::/64 and fd00:2::/64. The VIPs 10.0.1.100 and
// fd00:1::100 are not configured anywhere: uvsd answers ARP/NDP for them.
type natLab struct {
	cli, dir, sw *netnstest.NS
	rs           []*netnstest.NS
	web          []*webServer // the real servers' web servers on :80
}

func newNATLab(t *testing.T) *natLab {
	t.Helper()
	l := &natLab{
		cli: netnstest.New(t, "cli"),
		dir: netnstest.New(t, "dir"),
		sw:  netnstest.New(t, "sw"),
	}
	netnstest.Veth(t, l.cli, "c0", l.dir, "d0")
	netnstest.Veth(t, l.dir, "d1", l.sw, "s0")
	l.sw.IP(t, "link", "add", "br0", "type", "bridge")
	l.sw.IP(t, "link", "set", "s0", "master", "br0")
	l.sw.LinkUp(t, "br0")
	l.cli.AddrAdd(t, "c0", "10.0.1.2/24")
	l.cli.IP(t, "-6", "addr", "add", "fd00:1::2/64", "dev", "c0", "nodad")
	l.cli.RouteAdd(t, "default", "via", "10.0.1.1")
	l.cli.IP(t, "-6", "route", "add", "default", "via", "fd00:1::1")
	l.dir.AddrAdd(t, "d0", "10.0.1.1/24")
	l.dir.AddrAdd(t, "d1", "10.0.2.1/24")
	l.dir.IP(t, "-6", "addr", "add", "fd00:1::1/64", "dev", "d0", "nodad")
	l.dir.IP(t, "-6", "addr", "add", "fd00:2::1/64", "dev", "d1", "nodad")
	l.dir.Sysctl(t, "net.ipv4.ip_forward", "1")
	l.dir.Sysctl(t, "net.ipv6.conf.all.forwarding", "1")
	for i := 1; i <= 2; i++ {
		rs := netnstest.New(t, fmt.Sprintf("rs%d", i))
		port := fmt.Sprintf("s%d", i)
		netnstest.Veth(t, rs, "r0", l.sw, port)
		l.sw.IP(t, "link", "set", port, "master", "br0")
		rs.AddrAdd(t, "r0", fmt.Sprintf("10.0.2.1%d/24", i))
		rs.IP(t, "-6", "addr", "add", fmt.Sprintf("fd00:2::1%d/64", i), "dev", "r0", "nodad")
		rs.RouteAdd(t, "default", "via", "10.0.2.1")
		rs.IP(t, "-6", "route", "add", "default", "via", "fd00:2::1")
		l.web = append(l.web, startRealServer(t, rs, fmt.Sprintf("rs%d", i)))
		l.rs = append(l.rs, rs)
	}
	return l
}

// uvsd is a running director process.
type uvsd struct {
	proc *netnstest.Proc
	ns   *netnstest.NS
}

// startUVSD writes rules to a file and starts uvsd on it inside ns, then
// waits until it serves: until its control socket answers -Ln, as uvsadm
// would ask. uvsd answers only once its workers run (it binds the socket
// early, so a second director fails fast, and serves it last), so from
// then on every frame reaches a worker.
func startUVSD(t *testing.T, ns *netnstest.NS, rules string, extra ...string) *uvsd {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rules")
	if err := os.WriteFile(path, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	return startUVSDArgs(t, ns, append([]string{"--rules", path}, extra...)...)
}

// startUVSDArgs is startUVSD with the arguments given whole (no rules
// file: --keepalived FILE, for one).
func startUVSDArgs(t *testing.T, ns *netnstest.NS, extra ...string) *uvsd {
	t.Helper()
	args := append([]string{binary("uvsd"), "--log-level", "debug"}, extra...)
	if io := os.Getenv("UVS_E2E_IO"); io != "" {
		args = append(args, "--io", io) // run the suites on another packet-I/O backend
	}
	p := ns.Start(t, args...)
	u := &uvsd{proc: p, ns: ns}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("uvsd output:\n%s", p.Output())
		}
	})
	var last error
	wait.For(t, startTimeout, func() bool {
		select {
		case <-p.Done():
			t.Fatalf("uvsd exited before its control socket answered: %v\n%s", p.Err(), p.Output())
		default:
		}
		_, last = controlList(ns)
		return last == nil
	}, "uvsd's control socket to answer -Ln (last error: %v)", wait.Lazy(func() any { return last }))
	return u
}

// startTimeout bounds a director's start on a loaded machine; the
// control requests that probe it wait at most requestTimeout each.
const (
	startTimeout   = 30 * time.Second
	requestTimeout = 2 * time.Second
)

// controlList asks the director of ns for its table (-Ln) over the
// control socket, as uvsadm does, and returns the listing.
func controlList(ns *netnstest.NS) (string, error) {
	c := client.Client{Socket: os.Getenv(wire.SocketEnv), Timeout: requestTimeout} // empty: the default
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	var conn net.Conn
	// The socket is abstract, so it lives in ns: dial from inside.
	if err := ns.Do(func() error {
		var err error
		conn, err = c.Dial(ctx)
		return err
	}); err != nil {
		return "", err
	}
	defer conn.Close()
	return c.List(ctx, conn)
}

// stop sends SIGTERM and waits for a clean exit.
func (u *uvsd) stop(t *testing.T) {
	t.Helper()
	if err := u.proc.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-u.proc.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("uvsd did not stop within 10s of SIGTERM:\n%s", u.proc.Output())
	}
	if err := u.proc.Err(); err != nil {
		t.Fatalf("uvsd exit: %v\n%s", err, u.proc.Output())
	}
}

// curl fetches url from inside ns with a bounded time and returns the body.
func curl(t *testing.T, ns *netnstest.NS, url string) string {
	t.Helper()
	out, err := ns.Run("curl", "-sS", "-g", "--max-time", "8", url)
	if err != nil {
		t.Fatalf("curl %s: %v: %s", url, err, out)
	}
	return strings.TrimSpace(out)
}

// curlSum downloads url inside ns and returns the SHA-256 of the body.
func curlSum(t *testing.T, ns *netnstest.NS, url string) string {
	t.Helper()
	out, err := ns.Run("sh", "-c", "curl -sS -g --max-time 60 '"+url+"' | sha256sum")
	if err != nil {
		t.Fatalf("curl %s: %v: %s", url, err, out)
	}
	f := strings.Fields(out)
	if len(f) == 0 {
		t.Fatalf("curl %s: no output", url)
	}
	return f[0]
}

// udpExchange sends one datagram with payload from a fresh socket in ns
// to addr and returns the reply. One datagram must do: the director
// serves once startUVSD returns, and every hop holds a datagram while it
// resolves its next hop (the kernels in their neighbour queues, uvsd's
// workers in theirs), so a lost datagram is a bug, not bad luck.
func udpExchange(t *testing.T, ns *netnstest.NS, addr, payload string) string {
	t.Helper()
	c := dialUDP(t, ns, addr)
	defer c.Close()
	if _, err := c.Write([]byte(payload)); err != nil {
		t.Fatalf("udp write to %s: %v", addr, err)
	}
	_ = c.SetReadDeadline(time.Now().Add(udpTimeout))
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no UDP reply from %s to %q: %v", addr, payload, err)
	}
	return string(buf[:n])
}

// udpTimeout bounds the wait for a UDP reply: generous, since a reply
// that comes never takes long, and one that does not is a failure.
const udpTimeout = 5 * time.Second

func runCmd(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

// dialUDP returns a UDP socket of namespace ns connected to addr.
func dialUDP(t *testing.T, ns *netnstest.NS, addr string) net.Conn {
	t.Helper()
	var c net.Conn
	if err := ns.Do(func() error {
		var err error
		c, err = net.Dial("udp", addr)
		return err
	}); err != nil {
		t.Fatalf("udp dial %s: %v", addr, err)
	}
	return c
}
