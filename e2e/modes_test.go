package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/uvs-lb/uvs/internal/netnstest"
)

// lanLab is the seeds' DR topology: client, director and real servers on
// one LAN (a bridge in its own namespace). With router set, the client sits
// behind a router namespace on another subnet (seed 000's five-host lab).
//
//	[cli] c0 10.0.9.2 ── [rtr] 10.0.9.1 | 10.0.5.254 ── br0 [sw] ── d0 10.0.5.1 [dir]
//	                                                          ├── r0 10.0.5.11 [rs1]
//	                                                          └── r0 10.0.5.12 [rs2]
//
// Without a router the client is 10.0.5.2 on the LAN. The VIP 10.0.5.100
// is on the real servers' lo (arp_ignore=1, arp_announce=2) and nowhere
// else: uvsd answers ARP for it.
type lanLab struct {
	cli, dir, sw, rtr *netnstest.NS
	rs                []*netnstest.NS
	clientAddr        string
}

func newLANLab(t *testing.T, router bool) *lanLab {
	t.Helper()
	l := &lanLab{cli: netnstest.New(t, "cli"), dir: netnstest.New(t, "dir"), sw: netnstest.New(t, "sw")}
	l.sw.IP(t, "link", "add", "br0", "type", "bridge")
	l.sw.LinkUp(t, "br0")
	port := 0
	attach := func(ns *netnstest.NS, dev string) {
		port++
		p := fmt.Sprintf("p%d", port)
		netnstest.Veth(t, ns, dev, l.sw, p)
		l.sw.IP(t, "link", "set", p, "master", "br0")
	}
	gw := ""
	if router {
		l.rtr = netnstest.New(t, "rtr")
		netnstest.Veth(t, l.cli, "c0", l.rtr, "x0")
		l.cli.AddrAdd(t, "c0", "10.0.9.2/24")
		l.cli.RouteAdd(t, "default", "via", "10.0.9.1")
		l.rtr.AddrAdd(t, "x0", "10.0.9.1/24")
		attach(l.rtr, "x1")
		l.rtr.AddrAdd(t, "x1", "10.0.5.254/24")
		l.rtr.Sysctl(t, "net.ipv4.ip_forward", "1")
		l.clientAddr = "10.0.9.2"
		gw = "10.0.5.254"
	} else {
		attach(l.cli, "c0")
		l.cli.AddrAdd(t, "c0", "10.0.5.2/24")
		l.cli.IP(t, "-6", "addr", "add", "fd00:5::2/64", "dev", "c0", "nodad")
		l.clientAddr = "10.0.5.2"
	}
	attach(l.dir, "d0")
	l.dir.AddrAdd(t, "d0", "10.0.5.1/24")
	l.dir.IP(t, "-6", "addr", "add", "fd00:5::1/64", "dev", "d0", "nodad")
	if gw != "" {
		l.dir.RouteAdd(t, "default", "via", gw)
	}
	for i := 1; i <= 2; i++ {
		rs := netnstest.New(t, fmt.Sprintf("rs%d", i))
		attach(rs, "r0")
		rs.AddrAdd(t, "r0", fmt.Sprintf("10.0.5.1%d/24", i))
		rs.IP(t, "-6", "addr", "add", fmt.Sprintf("fd00:5::1%d/64", i), "dev", "r0", "nodad")
		if gw != "" {
			rs.RouteAdd(t, "default", "via", gw)
		}
		startRealServer(t, rs, fmt.Sprintf("rs%d", i))
		l.rs = append(l.rs, rs)
	}
	return l
}

// drRealServer does by hand what seed 000's real-server script does: the
// VIP on lo and the ARP sysctls, so the real server accepts VIP traffic
// without answering ARP for it.
func drRealServer(t *testing.T, rs *netnstest.NS, vip string) {
	t.Helper()
	rs.AddrAdd(t, "lo", vip+"/32")
	rs.Sysctl(t, "net.ipv4.conf.all.arp_ignore", "1")
	rs.Sysctl(t, "net.ipv4.conf.all.arp_announce", "2")
	rs.Sysctl(t, "net.ipv4.conf.lo.arp_ignore", "1")
	rs.Sysctl(t, "net.ipv4.conf.lo.arp_announce", "2")
	// IPv6 answers neighbour solicitations only for addresses of the
	// receiving interface, so a VIP on lo needs no sysctl.
	rs.IP(t, "-6", "addr", "add", "fd00:5::100/128", "dev", "lo")
}

const drRules = `-A -t 10.0.5.100:80 -s rr
-a -t 10.0.5.100:80 -r 10.0.5.11 -g -w 1
-a -t 10.0.5.100:80 -r 10.0.5.12 -g -w 1
-A -t [fd00:5::100]:80 -s rr
-a -t [fd00:5::100]:80 -r fd00:5::11 -g -w 1
-a -t [fd00:5::100]:80 -r fd00:5::12 -g -w 1
`

func testDR(t *testing.T, router bool) {
	l := newLANLab(t, router)
	for _, rs := range l.rs {
		drRealServer(t, rs, "10.0.5.100")
	}
	startUVSD(t, l.dir, drRules)
	seen := map[string]int{}
	var order []string
	for i := 0; i < 4; i++ {
		b := curl(t, l.cli, "http://10.0.5.100/")
		seen[b]++
		order = append(order, b)
	}
	if seen["rs1"] != 2 || seen["rs2"] != 2 || order[0] == order[1] {
		t.Fatalf("DR rr answers %v", order)
	}
	if got := curlSum(t, l.cli, "http://10.0.5.100/big"); got != bigSum {
		t.Fatalf("DR download sha256 %s, want %s", got, bigSum)
	}
	// Direct return: the replies never pass the director, so its table sees
	// only the input direction; the client saw the VIP answer.
	if router {
		return
	}
	out := l.cli.Exec(t, "ip", "neigh", "show", "10.0.5.100")
	if !strings.Contains(out, "lladdr") {
		t.Fatalf("client has no ARP entry for the VIP: %q", out)
	}
	seen = map[string]int{}
	for i := 0; i < 4; i++ {
		seen[curl(t, l.cli, "http://[fd00:5::100]/")]++
	}
	if seen["rs1"] != 2 || seen["rs2"] != 2 {
		t.Fatalf("DR IPv6 rr answers %v", seen)
	}
	if got := curlSum(t, l.cli, "http://[fd00:5::100]/big"); got != bigSum {
		t.Fatalf("DR IPv6 download sha256 %s, want %s", got, bigSum)
	}
}

func TestDR(t *testing.T)            { testDR(t, false) }
func TestDRMultiSubnet(t *testing.T) { testDR(t, true) }

// fullnatLab is the NAT lab's shape, but each real server has a link of
// its own to the director and no route to the client at all: only
// FULLNAT's source translation brings replies back.
//
//	cli c0 10.0.1.2 ── d0 10.0.1.1 [dir] d1 10.0.11.1 ── r0 10.0.11.11 [rs1]
//	                                     d2 10.0.12.1 ── r0 10.0.12.11 [rs2]
//
// IPv6 mirrors it with fd00:1::/64, fd00:11::/64 and fd00:12::/64. The
// director's address on each real server's link is the local address
// FULLNAT connections to that server use.
type fullnatLab struct {
	cli, dir *netnstest.NS
	rs       []*netnstest.NS
}

func newFullNATLab(t *testing.T) *fullnatLab {
	t.Helper()
	l := &fullnatLab{cli: netnstest.New(t, "cli"), dir: netnstest.New(t, "dir")}
	netnstest.Veth(t, l.cli, "c0", l.dir, "d0")
	l.cli.AddrAdd(t, "c0", "10.0.1.2/24")
	l.cli.RouteAdd(t, "default", "via", "10.0.1.1")
	l.cli.AddrAdd(t, "c0", "fd00:1::2/64")
	l.cli.IP(t, "-6", "route", "add", "default", "via", "fd00:1::1")
	l.dir.AddrAdd(t, "d0", "10.0.1.1/24")
	l.dir.AddrAdd(t, "d0", "fd00:1::1/64")
	for i := 1; i <= 2; i++ {
		rs := netnstest.New(t, fmt.Sprintf("rs%d", i))
		dev := fmt.Sprintf("d%d", i)
		netnstest.Veth(t, l.dir, dev, rs, "r0")
		l.dir.AddrAdd(t, dev, fmt.Sprintf("10.0.%d.1/24", 10+i))
		rs.AddrAdd(t, "r0", fmt.Sprintf("10.0.%d.11/24", 10+i))
		l.dir.AddrAdd(t, dev, fmt.Sprintf("fd00:%d::1/64", 10+i))
		rs.AddrAdd(t, "r0", fmt.Sprintf("fd00:%d::11/64", 10+i))
		l.rs = append(l.rs, rs)
	}
	return l
}

// rules returns a FULLNAT service on VIP 10.0.1.100 and fd00:1::100 for
// proto ("-t", "-u") and port, with both real servers on the same port.
func (l *fullnatLab) rules(proto string, port int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "-A %[1]s 10.0.1.100:%[2]d -s rr\n-A %[1]s [fd00:1::100]:%[2]d -s rr\n", proto, port)
	for i := range l.rs {
		fmt.Fprintf(&b, "-a %s 10.0.1.100:%d -r 10.0.%d.11:%d -b -w 1\n", proto, port, 11+i, port)
		fmt.Fprintf(&b, "-a %s [fd00:1::100]:%d -r [fd00:%d::11]:%d -b -w 1\n", proto, port, 11+i, port)
	}
	return b.String()
}

func TestFullNAT(t *testing.T) {
	l := newFullNATLab(t)
	for i, rs := range l.rs {
		startRealServer(t, rs, fmt.Sprintf("rs%d", i+1))
	}
	startUVSD(t, l.dir, l.rules("-t", 80))
	seen := map[string]int{}
	for i := 0; i < 4; i++ {
		seen[curl(t, l.cli, "http://10.0.1.100/")]++
	}
	if seen["rs1"] != 2 || seen["rs2"] != 2 {
		t.Fatalf("FULLNAT rr answers %v", seen)
	}
	if got := curlSum(t, l.cli, "http://10.0.1.100/big"); got != bigSum {
		t.Fatalf("FULLNAT download sha256 %s, want %s", got, bigSum)
	}
	seen = map[string]int{}
	for i := 0; i < 4; i++ {
		seen[curl(t, l.cli, "http://[fd00:1::100]/")]++
	}
	if seen["rs1"] != 2 || seen["rs2"] != 2 {
		t.Fatalf("FULLNAT IPv6 rr answers %v", seen)
	}
	if got := curlSum(t, l.cli, "http://[fd00:1::100]/big"); got != bigSum {
		t.Fatalf("FULLNAT IPv6 download sha256 %s, want %s", got, bigSum)
	}
}
