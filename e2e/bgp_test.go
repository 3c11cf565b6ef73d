package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/wait"
)

// ecmpLab is two directors behind a router that runs BIRD with ECMP, on
// one LAN with the real servers (DR):
//
//	[cli] c0 10.1.0.2 ── x0 10.1.0.1 [rtr] x1 10.0.5.254 ── br0 [sw] ── d0 10.0.5.1 [d1]  uvsd, GoBGP AS 65001
//	                                                            ├── d0 10.0.5.2 [d2]  uvsd, GoBGP AS 65001
//	                                                            ├── r0 10.0.5.11 [rs1]
//	                                                            └── r0 10.0.5.12 [rs2]
//
// The VIP 10.10.10.10 is on the real servers' lo and nowhere else; the
// router learns it from both directors by BGP (AS 65000, hold time 3 s)
// and installs one route with a next hop per director; it hashes flows
// on the 5-tuple (fib_multipath_hash_policy=1). The real servers answer
// the client through the router directly.
type ecmpLab struct {
	cli, rtr, sw *netnstest.NS
	dirs, rs     []*netnstest.NS
	birdSock     string
}

const ecmpVIP = "10.10.10.10"

func newECMPLab(t *testing.T) *ecmpLab {
	t.Helper()
	netnstest.RequireTool(t, "bird")
	l := &ecmpLab{cli: netnstest.New(t, "ecli"), rtr: netnstest.New(t, "ertr"), sw: netnstest.New(t, "esw")}
	l.sw.IP(t, "link", "add", "br0", "type", "bridge")
	l.sw.LinkUp(t, "br0")
	port := 0
	attach := func(ns *netnstest.NS, dev string) {
		port++
		p := fmt.Sprintf("p%d", port)
		netnstest.Veth(t, ns, dev, l.sw, p)
		l.sw.IP(t, "link", "set", p, "master", "br0")
	}
	netnstest.Veth(t, l.cli, "c0", l.rtr, "x0")
	l.cli.AddrAdd(t, "c0", "10.1.0.2/24")
	l.cli.RouteAdd(t, "default", "via", "10.1.0.1")
	l.rtr.AddrAdd(t, "x0", "10.1.0.1/24")
	attach(l.rtr, "x1")
	l.rtr.AddrAdd(t, "x1", "10.0.5.254/24")
	l.rtr.Sysctl(t, "net.ipv4.ip_forward", "1")
	l.rtr.Sysctl(t, "net.ipv4.fib_multipath_hash_policy", "1")
	for i := 1; i <= 2; i++ {
		d := netnstest.New(t, fmt.Sprintf("ed%d", i))
		attach(d, "d0")
		d.AddrAdd(t, "d0", fmt.Sprintf("10.0.5.%d/24", i))
		d.RouteAdd(t, "default", "via", "10.0.5.254")
		l.dirs = append(l.dirs, d)
	}
	for i := 1; i <= 2; i++ {
		rs := netnstest.New(t, fmt.Sprintf("ers%d", i))
		attach(rs, "r0")
		rs.AddrAdd(t, "r0", fmt.Sprintf("10.0.5.1%d/24", i))
		rs.RouteAdd(t, "default", "via", "10.0.5.254")
		drRealServer(t, rs, ecmpVIP)
		startRealServer(t, rs, fmt.Sprintf("rs%d", i))
		l.rs = append(l.rs, rs)
	}

	// BIRD 2 on the router: a session per director, routes merged
	// into one multipath kernel route.
	dir := t.TempDir()
	conf := `router id 10.0.5.254;
protocol device {}
protocol kernel {
	ipv4 { import none; export all; };
	merge paths on;
}
`
	for i := range l.dirs {
		conf += fmt.Sprintf(`protocol bgp d%d {
	local 10.0.5.254 as 65000;
	neighbor 10.0.5.%d as 65001;
	hold time 3;
	connect retry time 1;
	ipv4 { import all; export none; };
}
`, i+1, i+1)
	}
	confFile := filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	l.birdSock = filepath.Join(dir, "bird.ctl")
	bird := l.rtr.Start(t, "bird", "-f", "-c", confFile, "-s", l.birdSock, "-P", filepath.Join(dir, "bird.pid"))
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := l.rtr.Run("birdc", "-s", l.birdSock, "show", "protocols", "all")
			t.Logf("bird:\n%s\nbirdc show protocols all:\n%s", bird.Output(), out)
		}
	})
	wait.For(t, 10*time.Second, func() bool {
		_, err := l.rtr.Run("birdc", "-s", l.birdSock, "show", "status")
		return err == nil
	}, "BIRD to answer on its control socket (output: %s)", wait.Lazy(func() any { return bird.Output() }))
	return l
}

// ecmpRules is the same mh DR service on both directors, its real
// servers added in opposite orders (uvsd's sorted hash order makes the
// tables equal anyway). mh-port hashes the client port too, so one
// client's connections spread over both real servers.
func ecmpRules(first, second string) string {
	return "-A -t " + ecmpVIP + ":80 -s mh -b mh-port\n" +
		"-a -t " + ecmpVIP + ":80 -r " + first + ":80 -g -w 1\n" +
		"-a -t " + ecmpVIP + ":80 -r " + second + ":80 -g -w 1\n"
}

func (l *ecmpLab) startDirector(t *testing.T, i int, extra ...string) *uvsd {
	t.Helper()
	rules := ecmpRules("10.0.5.11", "10.0.5.12")
	if i == 1 {
		rules = ecmpRules("10.0.5.12", "10.0.5.11")
	}
	args := append([]string{"--iface", "d0", "--sysctl", "sloppy_tcp=1",
		"--bgp-as", "65001", "--bgp-router-id", fmt.Sprintf("10.0.5.%d", i+1),
		"--bgp-peer", "10.0.5.254,as=65000,hold=3", "--bgp-community", "65001:100", "--bgp-med", "10"}, extra...)
	return startUVSD(t, l.dirs[i], rules, args...)
}

// nextHops returns the router's next hops for the VIP, as the kernel
// has them.
func (l *ecmpLab) nextHops(t *testing.T) []string {
	t.Helper()
	out := l.rtr.Exec(t, "ip", "-4", "route", "show", ecmpVIP+"/32")
	var hops []string
	f := strings.Fields(out)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "via" {
			hops = append(hops, f[i+1])
		}
	}
	return hops
}

func (l *ecmpLab) waitHops(t *testing.T, want string) {
	t.Helper()
	wait.For(t, 30*time.Second, func() bool { return strings.Join(l.nextHops(t), " ") == want },
		"the router's route to %s via %q (have: %s)", ecmpVIP, want,
		wait.Lazy(func() any { return l.rtr.Exec(t, "ip", "-4", "route", "show", ecmpVIP+"/32") }))
}

// activeConns sums ActiveConn over the real servers of the director in ns.
func activeConns(t *testing.T, ns *netnstest.NS) int {
	t.Helper()
	out, err := controlList(ns)
	if err != nil {
		t.Fatalf("-Ln: %v", err)
	}
	n := 0
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 6 && f[0] == "->" && f[1] != "RemoteAddress:Port" {
			v, err := strconv.Atoi(f[4])
			if err != nil {
				t.Fatalf("ActiveConn %q in %q", f[4], line)
			}
			n += v
		}
	}
	return n
}

// TestBGPECMP: two directors with the same configuration announce the
// VIP to a BIRD router by BGP; the router installs a route with both as
// next hops and spreads the client's connections over them; a director
// whose real servers all lose their weight withdraws the VIP and
// announces it again when one comes back; a director stopped with
// SIGTERM withdraws first, and its established connections continue on
// the other director (mh, sloppy_tcp), each with the real server it had.
func TestBGPECMP(t *testing.T) {
	l := newECMPLab(t)
	u1 := l.startDirector(t, 0)
	l.startDirector(t, 1)
	l.waitHops(t, "10.0.5.1 10.0.5.2")
	if out := l.rtr.Exec(t, "birdc", "-s", l.birdSock, "show", "route", "all", ecmpVIP+"/32"); !strings.Contains(out, "(65001,100)") ||
		!strings.Contains(out, "BGP.med: 10") {
		t.Errorf("the router's route lacks community 65001:100 or MED 10:\n%s", out)
	}

	// Many long-lived connections from one client: the router hashes
	// them over both directors.
	const flows = 64
	conns := make([]*haConn, flows)
	first := make([]string, flows)
	for i := range conns {
		conns[i] = dialHAConn(t, l.cli, "10.1.0.2", ecmpVIP+":80")
		got, err := conns[i].get("/", 10*time.Second)
		if err != nil || !strings.HasPrefix(got, "rs") {
			t.Fatalf("connection %d: first request %q, %v", i, got, err)
		}
		first[i] = got
	}
	per := []int{activeConns(t, l.dirs[0]), activeConns(t, l.dirs[1])}
	t.Logf("%d connections: director 1 carries %d, director 2 carries %d", flows, per[0], per[1])
	if per[0] == 0 || per[1] == 0 || per[0]+per[1] != flows {
		t.Fatalf("connections per director %v, want both > 0 and %d in all", per, flows)
	}

	// Quorum: director 2's real servers at weight 0 withdraw its
	// announcement; one back announces it again.
	for _, rs := range []string{"10.0.5.11", "10.0.5.12"} {
		if out, err := l.dirs[1].Run(binary("uvsadm"), "-e", "-t", ecmpVIP+":80", "-r", rs+":80", "-g", "-w", "0"); err != nil {
			t.Fatalf("uvsadm -e -w 0: %v: %s", err, out)
		}
	}
	l.waitHops(t, "10.0.5.1")
	if out, err := l.dirs[1].Run(binary("uvsadm"), "-e", "-t", ecmpVIP+":80", "-r", "10.0.5.11:80", "-g", "-w", "1"); err != nil {
		t.Fatalf("uvsadm -e -w 1: %v: %s", err, out)
	}
	if out, err := l.dirs[1].Run(binary("uvsadm"), "-e", "-t", ecmpVIP+":80", "-r", "10.0.5.12:80", "-g", "-w", "1"); err != nil {
		t.Fatalf("uvsadm -e -w 1: %v: %s", err, out)
	}
	l.waitHops(t, "10.0.5.1 10.0.5.2")

	// Director 1 stops (SIGTERM: withdraw, close the sessions, forward
	// for --bgp-grace, stop). Its connections go on through director
	// 2, to the same real servers.
	moved := activeConns(t, l.dirs[0])
	start := time.Now()
	if err := u1.proc.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	l.waitHops(t, "10.0.5.2")
	t.Logf("route down to one next hop %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	select {
	case <-u1.proc.Done():
	case <-time.After(15 * time.Second):
		t.Fatalf("director 1 did not stop within 15s of SIGTERM:\n%s", u1.proc.Output())
	}
	if !strings.Contains(u1.proc.Output(), "BGP: withdrawn and sessions closed") {
		t.Errorf("director 1 did not log its withdrawal:\n%s", u1.proc.Output())
	}
	survived := 0
	for i, k := range conns {
		got, err := k.get("/", 15*time.Second)
		switch {
		case err != nil:
			t.Errorf("connection %d (%s, %s) broke after director 1 stopped: %v", i, k.local, first[i], err)
		case got != first[i]:
			t.Errorf("connection %d (%s): answered by %s after director 1 stopped, by %s before", i, k.local, got, first[i])
		default:
			survived++
		}
	}
	t.Logf("after director 1 stopped: %d of %d connections continue (%d of them had been on director 1), each with its real server",
		survived, flows, moved)
	if got := activeConns(t, l.dirs[1]); got != flows {
		t.Errorf("director 2 carries %d connections after the move, want %d", got, flows)
	}
}
