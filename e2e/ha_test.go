package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/wait"
)

// haLab is two directors in front of two real servers, each director
// running Debian's keepalived --vrrp and uvsd --keepalived on one
// keepalived.conf; uvsd serves a VRRP VIP only where keepalived put it and
// synchronises connections over d0 (@uvs lvs_sync_daemon d0 VI_1).
//
// DR: one LAN, VIP 10.0.7.100 (VI_1 on d0), on the real servers' lo.
//
//	[cli] c0 10.0.7.2, .4 ── br0 [sw] ─┬─ d0 10.0.7.1 [dira]  MASTER 100
//	                                   ├─ d0 10.0.7.3 [dirb]  BACKUP 99
//	                                   ├─ r0 10.0.7.11 [rs1]  lo 10.0.7.100/32
//	                                   └─ r0 10.0.7.12 [rs2]  lo 10.0.7.100/32
//
// NAT: the client's LAN outside, VIP 10.0.8.100 (VI_1 on d1); the real
// servers inside, their gateway 10.0.7.254 (VI_GW on d0); both instances
// in one vrrp_sync_group, so they move together.
//
//	[cli] c0 10.0.8.2, .4 ── br0 [sw] ─┬─ d1 10.0.8.1 [dira] d0 10.0.7.1 ─┬─ br0 [swin] ─┬─ r0 10.0.7.11 [rs1]
//	                                   └─ d1 10.0.8.3 [dirb] d0 10.0.7.3 ─┘              └─ r0 10.0.7.12 [rs2]
type haLab struct {
	nat     bool
	vip     string
	vipDev  string
	cli, sw *netnstest.NS
	swin    *netnstest.NS
	dirs    [2]*netnstest.NS
	// cables are each director's switch ports.
	cables [2][]haPort
	rs     []*netnstest.NS
	confs  [2]string
	uvsd   [2]*uvsd
	client string // the client's address
	pcli   string // the persistent client's
}

type haPort struct {
	sw   *netnstest.NS
	name string
}

// conf is the directors' keepalived.conf: a plain rr service on :80 and a
// persistent one on :443, TCP_CHECKs.
func (l *haLab) conf(state string, prio int) string {
	kind := "DR"
	if l.nat {
		kind = "NAT"
	}
	rs := func(addr string, port int) string {
		return fmt.Sprintf("    real_server %s %d {\n        weight 1\n        TCP_CHECK {\n            connect_timeout 1\n        }\n    }\n", addr, port)
	}
	vs := func(port int, persist string) string {
		return fmt.Sprintf("virtual_server %s %d {\n    delay_loop 1\n    lb_algo rr\n    lb_kind %s\n%s    protocol TCP\n", l.vip, port, kind, persist) +
			rs("10.0.7.11", port) + rs("10.0.7.12", port) + "}\n"
	}
	inst := func(name, dev string, vrid int, vip string) string {
		return "vrrp_instance " + name + " {\n    state " + state + "\n    interface " + dev + "\n    virtual_router_id " + strconv.Itoa(vrid) +
			"\n    priority " + strconv.Itoa(prio) + "\n    advert_int 1\n    authentication {\n        auth_type PASS\n        auth_pass e2e\n    }\n" +
			"    virtual_ipaddress {\n        " + vip + "\n    }\n}\n"
	}
	c := "global_defs {\n    router_id uvs_e2e_ha\n    @uvs lvs_sync_daemon d0 VI_1\n}\n" + inst("VI_1", l.vipDev, 57, l.vip)
	if l.nat {
		c += "vrrp_sync_group VG_1 {\n    group {\n        VI_1\n        VI_GW\n    }\n}\n" + inst("VI_GW", "d0", 58, "10.0.7.254")
	}
	return c + vs(80, "") + vs(443, "    persistence_timeout 50\n")
}

func newHALab(t *testing.T, nat bool) *haLab {
	t.Helper()
	netnstest.RequireTool(t, "keepalived")
	l := &haLab{nat: nat, vip: "10.0.7.100", vipDev: "d0", client: "10.0.7.2", pcli: "10.0.7.4",
		cli: netnstest.New(t, "hacli"), sw: netnstest.New(t, "hasw")}
	bridge := func(ns *netnstest.NS) {
		ns.IP(t, "link", "add", "br0", "type", "bridge")
		ns.LinkUp(t, "br0")
	}
	bridge(l.sw)
	lan := l.sw
	if nat {
		l.vip, l.vipDev, l.client, l.pcli = "10.0.8.100", "d1", "10.0.8.2", "10.0.8.4"
		l.swin = netnstest.New(t, "hasw")
		bridge(l.swin)
		lan = l.swin
	}
	port := 0
	attach := func(ns *netnstest.NS, dev string, sw *netnstest.NS) haPort {
		port++
		p := fmt.Sprintf("p%d", port)
		netnstest.Veth(t, ns, dev, sw, p)
		sw.IP(t, "link", "set", p, "master", "br0")
		return haPort{sw, p}
	}
	attach(l.cli, "c0", l.sw)
	l.cli.AddrAdd(t, "c0", l.client+"/24")
	l.cli.AddrAdd(t, "c0", l.pcli+"/24")
	for i, last := range []string{"1", "3"} {
		d := netnstest.New(t, fmt.Sprintf("hadir%c", 'a'+i))
		l.cables[i] = append(l.cables[i], attach(d, "d0", lan))
		d.AddrAdd(t, "d0", "10.0.7."+last+"/24")
		if nat {
			l.cables[i] = append(l.cables[i], attach(d, "d1", l.sw))
			d.AddrAdd(t, "d1", "10.0.8."+last+"/24")
			d.Sysctl(t, "net.ipv4.ip_forward", "1")
		}
		l.dirs[i] = d
	}
	for i := 1; i <= 2; i++ {
		rs := netnstest.New(t, fmt.Sprintf("hars%d", i))
		attach(rs, "r0", lan)
		rs.AddrAdd(t, "r0", fmt.Sprintf("10.0.7.1%d/24", i))
		if nat {
			rs.RouteAdd(t, "default", "via", "10.0.7.254")
		} else {
			rs.AddrAdd(t, "lo", l.vip+"/32")
			rs.Sysctl(t, "net.ipv4.conf.all.arp_ignore", "1")
			rs.Sysctl(t, "net.ipv4.conf.all.arp_announce", "2")
		}
		startRealServer(t, rs, fmt.Sprintf("rs%d", i))
		l.rs = append(l.rs, rs)
	}
	dir := t.TempDir()
	for i, sp := range []struct {
		state string
		prio  int
	}{{"MASTER", 100}, {"BACKUP", 99}} {
		l.confs[i] = filepath.Join(dir, fmt.Sprintf("keepalived-%d.conf", i))
		if err := os.WriteFile(l.confs[i], []byte(l.conf(sp.state, sp.prio)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i := range l.dirs {
		l.uvsd[i] = startUVSDArgs(t, l.dirs[i], "--keepalived", l.confs[i])
	}
	for i := range l.dirs {
		startKeepalived(t, l.dirs[i], l.confs[i], filepath.Join(dir, fmt.Sprintf("ka-%d", i)))
	}
	return l
}

// startKeepalived runs keepalived's VRRP half in ns in the foreground,
// with its own pid files, and stops it by PID when the test ends: SIGTERM
// to the parent (which stops its VRRP child and removes its VIPs), then
// SIGKILL to whichever of the two is left.
func startKeepalived(t *testing.T, ns *netnstest.NS, conf, pidBase string) *netnstest.Proc {
	t.Helper()
	vrrpPid := pidBase + "-vrrp.pid"
	p := ns.Start(t, "keepalived", "--vrrp", "-n", "-l", "-D", "-f", conf, "-p", pidBase+".pid", "-r", vrrpPid)
	var child int
	wait.For(t, startTimeout, func() bool {
		select {
		case <-p.Done():
			t.Fatalf("keepalived exited: %v\n%s", p.Err(), p.Output())
		default:
		}
		b, err := os.ReadFile(vrrpPid)
		if err != nil {
			return false
		}
		child, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && child > 0 && strings.Contains(p.Output(), "Startup complete")
	}, "keepalived's VRRP child (%s) and \"Startup complete\" (output:\n%s)", vrrpPid, wait.Lazy(func() any { return p.Output() }))
	// Registered after ns.Start's cleanup, so it runs before it.
	t.Cleanup(func() {
		_ = p.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.Done():
		case <-time.After(5 * time.Second):
			t.Errorf("keepalived (pid %d) did not stop within 5s of SIGTERM", p.Cmd.Process.Pid)
		}
		if alive(child) {
			_ = syscall.Kill(child, syscall.SIGKILL)
		}
		if t.Failed() {
			t.Logf("keepalived in %s:\n%s", ns.Name, p.Output())
		}
	})
	return p
}

// alive reports whether pid runs a keepalived (not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return strings.Contains(string(b[:max(i, 0)]), "keepalived") && i+2 < len(b) && b[i+2] != 'Z'
}

// holds reports whether ns has the VIP on its device.
func (l *haLab) holds(ns *netnstest.NS) bool {
	out, err := ns.Run("ip", "-4", "-o", "addr", "show", "dev", l.vipDev)
	return err == nil && strings.Contains(out, " "+l.vip+"/32 ")
}

// uvsadmIn runs uvsadm in ns (never starting a uvsd) and returns its output.
func uvsadmIn(t *testing.T, ns *netnstest.NS, args ...string) string {
	t.Helper()
	out, err := ns.Run(append([]string{"env", "UVS_NO_AUTOSTART=1", binary("uvsadm")}, args...)...)
	if err != nil {
		t.Fatalf("uvsadm %s in %s: %v: %s", strings.Join(args, " "), ns.Name, err, out)
	}
	return out
}

// connLine is one connection of uvsadm -Lnc.
type connLine struct{ state, source, virtual, dest string }

func listConns(t *testing.T, ns *netnstest.NS) []connLine {
	t.Helper()
	var out []connLine
	for _, line := range strings.Split(uvsadmIn(t, ns, "-Lnc"), "\n") {
		f := strings.Fields(line)
		if len(f) == 6 && f[0] == "TCP" {
			out = append(out, connLine{f[2], f[3], f[4], f[5]})
		}
	}
	return out
}

// haConn is an HTTP/1.1 connection the test sends requests on, one
// TCP connection throughout.
type haConn struct {
	conn  net.Conn
	br    *bufio.Reader
	local string // the client's address:port
	first string // the real server that answered first
}

func dialHAConn(t *testing.T, ns *netnstest.NS, src, dst string) *haConn {
	t.Helper()
	var c net.Conn
	if err := ns.Do(func() error {
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		var err error
		c, err = d.Dial("tcp", dst)
		return err
	}); err != nil {
		t.Fatalf("connect %s -> %s: %v", src, dst, err)
	}
	t.Cleanup(func() { c.Close() })
	return &haConn{conn: c, br: bufio.NewReader(c), local: c.LocalAddr().String()}
}

// get sends one request on the connection and returns the answer (the
// real server's name). timeout covers TCP's retransmissions across a
// failover.
func (k *haConn) get(path string, timeout time.Duration) (string, error) {
	_ = k.conn.SetDeadline(time.Now().Add(timeout))
	if _, err := fmt.Fprintf(k.conn, "GET %s HTTP/1.1\r\nHost: uvs\r\n\r\n", path); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return strings.TrimSpace(string(b)), err
}

// haProbeEvery is how often the failover's probe opens a connection,
// and haProbeAfter how many more it sees answered once a user got
// through the new master.
const (
	haProbeEvery = 20 * time.Millisecond
	haProbeAfter = 20
)

// haProbe opens a connection to a VIP every haProbeEvery, as users keep
// arriving during a failover, and counts how each attempt ended: answered
// (the handshake completed), refused (a RST: some kernel answered for the
// VIP) or neither (timed out, unreachable: the VIP was nowhere yet).
type haProbe struct {
	mu                 sync.Mutex
	ok, refused, other int
	firstRefused       time.Time
	stop               chan struct{}
	loop, dials        sync.WaitGroup
}

func startHAProbe(t *testing.T, ns *netnstest.NS, src, dst string) *haProbe {
	t.Helper()
	p := &haProbe{stop: make(chan struct{})}
	p.loop.Add(1)
	go func() {
		defer p.loop.Done()
		tick := time.NewTicker(haProbeEvery)
		defer tick.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			p.dials.Add(1)
			go func() {
				defer p.dials.Done()
				err := ns.Do(func() error {
					d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
					c, err := d.Dial("tcp", dst)
					if err == nil {
						c.Close()
					}
					return err
				})
				p.mu.Lock()
				defer p.mu.Unlock()
				switch {
				case err == nil:
					p.ok++
				case errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET):
					if p.refused == 0 {
						p.firstRefused = time.Now()
					}
					p.refused++
				default:
					p.other++
				}
			}()
		}
	}()
	t.Cleanup(func() { p.halt() })
	return p
}

// answered returns how many probe connections were answered so far.
func (p *haProbe) answered() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ok
}

// halt stops the probe, waits for the attempts under way and returns the
// counts.
func (p *haProbe) halt() (ok, refused, other int) {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	p.loop.Wait()
	p.dials.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ok, p.refused, p.other
}

// userConnect opens a connection to dst and sends one request, as a user
// would, trying again while attempts time out (within bound); a refused
// connection fails the test at once. It returns the real server that
// answered.
func userConnect(t *testing.T, ns *netnstest.NS, src, dst string, bound time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		var c net.Conn
		err := ns.Do(func() error {
			d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
			var err error
			c, err = d.Dial("tcp", dst)
			return err
		})
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("connect %s -> %s after the VIP moved: %v", src, dst, err)
		}
		if err == nil {
			k := &haConn{conn: c, br: bufio.NewReader(c), local: c.LocalAddr().String()}
			name, err := k.get("/", 5*time.Second)
			c.Close()
			if err != nil {
				t.Fatalf("request on a new connection %s -> %s after the VIP moved: %v", k.local, dst, err)
			}
			return name
		}
		if time.Now().After(deadline) {
			t.Fatalf("connect %s -> %s after the VIP moved: %v (for %v)", src, dst, err, bound)
		}
	}
}

// haFlows is how many established connections the failover test carries
// over.
const haFlows = 24

// haMoveBound bounds the VIP's move: VRRP's master-down interval for
// priority 99 (3 × 1 s + 157/256 s = 3.6 s) plus slack for a loaded
// machine.
const haMoveBound = 3613*time.Millisecond + 16*time.Second

// TestHAFailoverDR: two DR directors, each Debian's keepalived --vrrp and uvsd
// --keepalived on one keepalived.conf. Established connections and a
// persistent client go through the master; the backup holds them (sync)
// before the master's cable is pulled; the VIP moves to the backup, and
// every connection keeps answering through it, each from the real server
// it had, as does the persistent client.
func TestHAFailoverDR(t *testing.T) { testHAFailover(t, false) }

// TestHAFailoverNAT is TestHAFailoverDR with NAT directors: the real
// servers' gateway is a second VRRP address in the VIP's sync group.
func TestHAFailoverNAT(t *testing.T) { testHAFailover(t, true) }

func testHAFailover(t *testing.T, nat bool) {
	l := newHALab(t, nat)
	haVIP, haClient, haPersistCli := l.vip, l.client, l.pcli
	a, b := l.dirs[0], l.dirs[1]
	wait.For(t, haMoveBound, func() bool { return l.holds(a) && !l.holds(b) },
		"dira (MASTER 100) to hold %s alone", haVIP)

	// Established connections through the master, one request each.
	flows := make([]*haConn, haFlows)
	seen := map[string]int{}
	for i := range flows {
		k := dialHAConn(t, l.cli, haClient, haVIP+":80")
		name, err := k.get("/", 8*time.Second)
		if err != nil {
			t.Fatalf("flow %d (%s): first request: %v", i, k.local, err)
		}
		k.first = name
		seen[name]++
		flows[i] = k
	}
	if seen["rs1"] == 0 || seen["rs2"] == 0 {
		t.Fatalf("the master sent every flow to one real server: %v", seen)
	}
	// The persistent client: new connections to :443, one template.
	persist := func() string {
		k := dialHAConn(t, l.cli, haPersistCli, haVIP+":443")
		defer k.conn.Close()
		name, err := k.get("/", 8*time.Second)
		if err != nil {
			t.Fatalf("persistent client %s: %v", k.local, err)
		}
		return name
	}
	pServer := persist()
	for range 2 {
		if got := persist(); got != pServer {
			t.Fatalf("persistent client answered by %s, then %s, through the master", pServer, got)
		}
	}

	// The backup holds every flow and the template before the kill.
	var conns []connLine
	established := func() int {
		n := 0
		for _, c := range conns {
			if c.state == "ESTABLISHED" && c.virtual == haVIP+":80" {
				n++
			}
		}
		return n
	}
	template := func() string {
		for _, c := range conns {
			if c.source == haPersistCli+":0" && c.virtual == haVIP+":443" {
				return c.dest
			}
		}
		return ""
	}
	wait.For(t, 20*time.Second, func() bool {
		conns = listConns(t, b)
		return established() >= haFlows && template() != ""
	}, "the backup's -Lnc to hold the %d flows and the persistent template (-Lnc on dirb:\n%s\n-L --daemon on dira:\n%s\non dirb:\n%s)",
		haFlows, wait.Lazy(func() any { return uvsadmIn(t, b, "-Lnc") }),
		wait.Lazy(func() any { return uvsadmIn(t, a, "-L", "--daemon") }), wait.Lazy(func() any { return uvsadmIn(t, b, "-L", "--daemon") }))
	pDest := template()
	for _, k := range flows {
		want := k.local
		found := false
		for _, c := range conns {
			if c.source == want && c.virtual == haVIP+":80" {
				found = true
			}
		}
		if !found {
			t.Fatalf("the backup does not hold flow %s", want)
		}
	}

	// The master's cable is pulled while new users keep arriving: a
	// connection opened every haProbeEvery throughout the failover.
	probe := startHAProbe(t, l.cli, haClient, haVIP+":80")
	pulled := time.Now()
	for _, c := range l.cables[0] {
		c.sw.IP(t, "link", "set", c.name, "down")
	}
	wait.For(t, haMoveBound, func() bool { return l.holds(b) }, "dirb to take %s over after dira's cable was pulled", haVIP)
	t.Logf("VIP moved to the backup %v after the cable pull (master-down interval 3.613 s)", time.Since(pulled).Round(10*time.Millisecond))

	// A user connects as soon as the VIP has moved: a connection that
	// times out (the client may not have heard the gratuitous ARP yet)
	// is tried again; one refused is the bug this test is for.
	user := userConnect(t, l.cli, haClient, haVIP+":80", haMoveBound)
	t.Logf("a new connection answered by %s %v after the cable pull", user, time.Since(pulled).Round(10*time.Millisecond))
	// The probe keeps going until it has seen the new master answer a
	// few more times.
	base := probe.answered()
	wait.For(t, 20*time.Second, func() bool { return probe.answered() >= base+haProbeAfter },
		"%d more probe connections answered through the new master", haProbeAfter)
	ok, refused, other := probe.halt()
	t.Logf("connections opened during the failover: %d answered, %d refused (RST), %d timed out or unreachable", ok, refused, other)
	if refused > 0 {
		t.Errorf("%d connections to %s refused during the failover (first at %v after the cable pull): the new master's kernel answered for the VIP",
			refused, haVIP, probe.firstRefused.Sub(pulled).Round(time.Millisecond))
	}
	if ok == 0 {
		t.Errorf("no connection opened during the failover was answered")
	}

	// Every flow answers through the new master, from its real server.
	var wg sync.WaitGroup
	errs := make([]error, len(flows))
	for i, k := range flows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2 {
				name, err := k.get("/", 20*time.Second)
				if err != nil {
					errs[i] = err
					return
				}
				if name != k.first {
					errs[i] = fmt.Errorf("answered by %s, was %s", name, k.first)
					return
				}
			}
		}()
	}
	wg.Wait()
	lost := 0
	for i, err := range errs {
		if err != nil {
			lost++
			t.Errorf("flow %d (%s, %s) after the failover: %v", i, flows[i].local, flows[i].first, err)
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d established connections did not survive the failover", lost, len(flows))
	}
	// The new master forwarded them: its table shows them active.
	conns = listConns(t, b)
	if n := established(); n < haFlows {
		t.Fatalf("dirb lists %d established flows after the failover, want %d", n, haFlows)
	}
	// The persistent client stays on its real server (the synced template).
	for range 3 {
		if got := persist(); got != pServer {
			t.Fatalf("persistent client answered by %s after the failover, was %s (template -> %s)", got, pServer, pDest)
		}
	}
	if !strings.HasPrefix(pDest, map[string]string{"rs1": "10.0.7.11:", "rs2": "10.0.7.12:"}[pServer]) {
		t.Fatalf("the backup's template points at %s, the client was on %s", pDest, pServer)
	}
}
