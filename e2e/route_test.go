package e2e

import (
	"fmt"
	"testing"

	"github.com/uvs-lb/uvs/internal/netnstest"
)

// twoRouterLab: the client's network has two routers to the director, A
// and B. The client sends through A (its default route), the director's
// route back to the client's network is through B, and A forwards only
// towards the director (an nft rule drops what it would forward to the
// client), as with asymmetric routing through stateful firewalls:
//
//	             ┌─ a1 10.0.3.1 [A] a0 10.0.1.2 ───┐
//	cli c0 10.0.3.2 ─ br3 [sw]                    br1 [sw] ─ d0 10.0.1.1 [dir] d1 10.0.2.1 ── r0 10.0.2.11 [rs1]
//	             └─ b1 10.0.3.254 [B] b0 10.0.1.3 ─┘
//
// A NAT reply must follow the director's route (to B); sent back to the
// MAC the request came from (A's), it is dropped.
type twoRouterLab struct {
	cli, a, b, sw, dir, rs *netnstest.NS
}

func newTwoRouterLab(t *testing.T) *twoRouterLab {
	t.Helper()
	netnstest.RequireTool(t, "nft")
	l := &twoRouterLab{cli: netnstest.New(t, "rcli"), a: netnstest.New(t, "rta"), b: netnstest.New(t, "rtb"),
		sw: netnstest.New(t, "rsw"), dir: netnstest.New(t, "rdir"), rs: netnstest.New(t, "rrs")}
	for _, br := range []string{"br1", "br3"} {
		l.sw.IP(t, "link", "add", br, "type", "bridge")
		l.sw.LinkUp(t, br)
	}
	port := func(ns *netnstest.NS, dev, swPort, br string) {
		netnstest.Veth(t, ns, dev, l.sw, swPort)
		l.sw.IP(t, "link", "set", swPort, "master", br)
	}
	port(l.cli, "c0", "pc", "br3")
	port(l.a, "a1", "pa1", "br3")
	port(l.b, "b1", "pb1", "br3")
	port(l.a, "a0", "pa0", "br1")
	port(l.b, "b0", "pb0", "br1")
	port(l.dir, "d0", "pd", "br1")
	netnstest.Veth(t, l.dir, "d1", l.rs, "r0")

	l.cli.AddrAdd(t, "c0", "10.0.3.2/24")
	l.cli.RouteAdd(t, "default", "via", "10.0.3.1")
	for _, r := range []struct {
		ns             *netnstest.NS
		in, out        string
		inAddr, outAdr string
	}{{l.a, "a1", "a0", "10.0.3.1/24", "10.0.1.2/24"}, {l.b, "b1", "b0", "10.0.3.254/24", "10.0.1.3/24"}} {
		r.ns.AddrAdd(t, r.in, r.inAddr)
		r.ns.AddrAdd(t, r.out, r.outAdr)
		r.ns.Sysctl(t, "net.ipv4.ip_forward", "1")
	}
	// A forwards towards the director only.
	l.a.Exec(t, "nft", "add table inet oneway")
	l.a.Exec(t, "nft", "add chain inet oneway towards_client { type filter hook forward priority 0 ; }")
	l.a.Exec(t, "nft", "add rule inet oneway towards_client ip daddr 10.0.3.0/24 counter drop")

	l.dir.AddrAdd(t, "d0", "10.0.1.1/24")
	l.dir.AddrAdd(t, "d1", "10.0.2.1/24")
	l.dir.RouteAdd(t, "10.0.3.0/24", "via", "10.0.1.3")
	l.dir.Sysctl(t, "net.ipv4.ip_forward", "1")
	l.rs.AddrAdd(t, "r0", "10.0.2.11/24")
	l.rs.RouteAdd(t, "default", "via", "10.0.2.1")
	startRealServer(t, l.rs, "rs1")
	return l
}

// TestRoutedReply: the request comes in through router A, the director's
// route to the client is through router B, and A drops what it would
// forward to the client: the client gets its answers only if the NAT
// replies follow the route. Before: every reply went to A's MAC, the
// request's source, and the client never got one. (The very first reply
// to a client whose route the director has not looked up yet still goes
// to the request's MAC while the lookup resolves; TCP retransmits.)
func TestRoutedReply(t *testing.T) {
	l := newTwoRouterLab(t)
	startUVSD(t, l.dir, `-A -t 10.0.1.100:80 -s rr
-a -t 10.0.1.100:80 -r 10.0.2.11:80 -m
-A -u 10.0.1.100:53 -s rr
-a -u 10.0.1.100:53 -r 10.0.2.11:5353 -m
`)
	if got := curl(t, l.cli, "http://10.0.1.100/"); got != "rs1" {
		t.Fatalf("HTTP through A, back through B: answered %q, want rs1", got)
	}
	if got := curlSum(t, l.cli, "http://10.0.1.100/big"); got != bigSum {
		t.Fatalf("download through A, back through B: sha256 %s, want %s", got, bigSum)
	}
	for i := range 3 {
		p := fmt.Sprintf("routed%d", i)
		if r := udpExchange(t, l.cli, "10.0.1.100:53", p); r != "rs1:"+p {
			t.Fatalf("UDP through A, back through B: answered %q", r)
		}
	}
}
