package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/uvs-lb/uvs/internal/netnstest"
)

// uvsRS runs `uvs-rs MODE up` in ns for vip (TUN: decapsulation by its tc
// program and in user space, this kernel has no ipip module) and undoes it
// when the test ends. It returns the state directory.
func uvsRS(t *testing.T, ns *netnstest.NS, mode, vip string) string {
	t.Helper()
	dir := t.TempDir()
	ns.Exec(t, binary("uvs-rs"), mode, "up", "--vip", vip, "--state-dir", dir)
	t.Cleanup(func() {
		if out, err := ns.Run(binary("uvs-rs"), mode, "down", "--vip", vip, "--state-dir", dir); err != nil {
			t.Errorf("uvs-rs %s down: %v: %s", mode, err, out)
		}
	})
	return dir
}

// routedLab: a client, a director and real servers each on their own
// subnet around a router (seed 002's TUN lab). The router sends the VIP
// to the director.
//
//	[cli] 10.0.1.2 ─ x0 [rtr] x1 ─ 10.0.3.1 [dir]   VIP 10.0.3.100 (on no interface)
//	                       x2 ─ 10.0.4.11 [rs1]
//	                       x3 ─ 10.0.6.12 [rs2]
type routedLab struct {
	cli, rtr, dir *netnstest.NS
	rs            []*netnstest.NS
}

func newRoutedLab(t *testing.T) *routedLab {
	t.Helper()
	l := &routedLab{cli: netnstest.New(t, "cli"), rtr: netnstest.New(t, "rtr"), dir: netnstest.New(t, "dir")}
	netnstest.Veth(t, l.cli, "c0", l.rtr, "x0")
	netnstest.Veth(t, l.dir, "d0", l.rtr, "x1")
	l.rtr.AddrAdd(t, "x0", "10.0.1.254/24")
	l.rtr.AddrAdd(t, "x1", "10.0.3.254/24")
	l.rtr.Sysctl(t, "net.ipv4.ip_forward", "1")
	l.cli.AddrAdd(t, "c0", "10.0.1.2/24")
	l.cli.RouteAdd(t, "default", "via", "10.0.1.254")
	l.dir.AddrAdd(t, "d0", "10.0.3.1/24")
	l.dir.RouteAdd(t, "default", "via", "10.0.3.254")
	for i, sub := range []int{4, 6} {
		rs := netnstest.New(t, fmt.Sprintf("rs%d", i+1))
		x := fmt.Sprintf("x%d", i+2)
		netnstest.Veth(t, rs, "r0", l.rtr, x)
		l.rtr.AddrAdd(t, x, fmt.Sprintf("10.0.%d.254/24", sub))
		rs.AddrAdd(t, "r0", fmt.Sprintf("10.0.%d.1%d/24", sub, i+1))
		rs.RouteAdd(t, "default", "via", fmt.Sprintf("10.0.%d.254", sub))
		startRealServer(t, rs, fmt.Sprintf("rs%d", i+1))
		l.rs = append(l.rs, rs)
	}
	return l
}

func TestTUN(t *testing.T) {
	l := newRoutedLab(t)
	for _, rs := range l.rs {
		uvsRS(t, rs, "tun", "10.0.3.100")
	}
	startUVSD(t, l.dir, `-A -t 10.0.3.100:80 -s rr
-a -t 10.0.3.100:80 -r 10.0.4.11 -i -w 1
-a -t 10.0.3.100:80 -r 10.0.6.12 -i -w 1
`)
	seen := map[string]int{}
	for i := 0; i < 4; i++ {
		seen[curl(t, l.cli, "http://10.0.3.100/")]++
	}
	if seen["rs1"] != 2 || seen["rs2"] != 2 {
		t.Fatalf("TUN rr answers %v", seen)
	}
	// The download's data flows real server → client directly; only the
	// client's ACKs are tunnelled.
	if got := curlSum(t, l.cli, "http://10.0.3.100/big"); got != bigSum {
		t.Fatalf("TUN download sha256 %s, want %s", got, bigSum)
	}
}

// TestDRTUNMixed is seed 002's service: one real server reached by direct
// routing on the director's LAN, another by tunnelling in another subnet.
func TestDRTUNMixed(t *testing.T) {
	l := newRoutedLab(t)
	// rs1 moves onto the director's LAN: give the director a second leg.
	lan := netnstest.New(t, "lan")
	netnstest.Veth(t, l.dir, "d1", lan, "r0")
	l.dir.AddrAdd(t, "d1", "10.0.8.1/24")
	lan.AddrAdd(t, "r0", "10.0.8.11/24")
	lan.RouteAdd(t, "default", "via", "10.0.8.1")
	l.dir.Sysctl(t, "net.ipv4.ip_forward", "1")
	drRealServer(t, lan, "10.0.3.100")
	startRealServer(t, lan, "dr1")
	uvsRS(t, l.rs[1], "tun", "10.0.3.100")
	startUVSD(t, l.dir, `-A -t 10.0.3.100:80 -s rr
-a -t 10.0.3.100:80 -r 10.0.8.11 -g -w 1
-a -t 10.0.3.100:80 -r 10.0.6.12 -i -w 1
`)
	seen := map[string]int{}
	for i := 0; i < 4; i++ {
		seen[curl(t, l.cli, "http://10.0.3.100/")]++
	}
	if seen["dr1"] != 2 || seen["rs2"] != 2 {
		t.Fatalf("mixed DR+TUN answers %v", seen)
	}
	if out := mustUVSADM(t, l.dir, "-Ln"); !strings.Contains(out, "Route") || !strings.Contains(out, "Tunnel") {
		t.Fatalf("listing does not show both methods:\n%s", out)
	}
}

// tunCounters extracts the JSON counters from `uvs-rs status`.
func tunCounters(status string) map[string]uint64 {
	_, js, ok := strings.Cut(status, "tun: counters ")
	if !ok {
		return nil
	}
	js, _, _ = strings.Cut(js, "\n")
	m := map[string]uint64{}
	_ = json.Unmarshal([]byte(js), &m)
	return m
}
