package khook

import (
	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/wait"

	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/uvs-lb/uvs/ownership"
	"github.com/uvs-lb/uvs/spec"
)

var (
	dirIP4  = netip.MustParseAddr("198.18.7.1")
	peerIP4 = netip.MustParseAddr("198.18.7.2")
	vip4    = netip.MustParseAddr("198.18.7.100")
	dirIP6  = netip.MustParseAddr("fd75:7::1")
	peerIP6 = netip.MustParseAddr("fd75:7::2")
	vip6    = netip.MustParseAddr("fd75:7::100")
)

// topo is a director namespace (d0) and a peer namespace (p0) joined by a
// veth pair; the VIPs are configured on d0, so without hooks the director's
// stack answers them.
type topo struct {
	dir, peer *testNS
}

func newTopo(t *testing.T) *topo {
	t.Helper()
	requireRoot(t)
	tp := &topo{dir: newNS(t), peer: newNS(t)}
	link(t, tp.dir, "d0", tp.peer, "p0")
	tp.dir.ip(t, "addr", "add", dirIP4.String()+"/24", "dev", "d0")
	tp.dir.ip(t, "addr", "add", vip4.String()+"/32", "dev", "d0")
	tp.dir.ip(t, "addr", "add", dirIP6.String()+"/64", "dev", "d0", "nodad")
	tp.dir.ip(t, "addr", "add", vip6.String()+"/128", "dev", "d0", "nodad")
	tp.peer.ip(t, "addr", "add", peerIP4.String()+"/24", "dev", "p0")
	tp.peer.ip(t, "addr", "add", peerIP6.String()+"/64", "dev", "p0", "nodad")
	return tp
}

// dial connects from ns to dst with a timeout and returns the error (nil on
// success, the connection is closed at once).
func dial(t *testing.T, ns *testNS, dst netip.AddrPort, timeout time.Duration) error {
	t.Helper()
	var derr error
	ns.do(t, func() error {
		c, err := net.DialTimeout("tcp", dst.String(), timeout)
		if err == nil {
			c.Close()
		}
		derr = err
		return nil
	})
	return derr
}

func wantRefused(t *testing.T, ns *testNS, dst netip.AddrPort) {
	t.Helper()
	if err := dial(t, ns, dst, 5*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial %s: got %v, want connection refused (a RST from the director's stack)", dst, err)
	}
}

func wantNoAnswer(t *testing.T, ns *testNS, dst netip.AddrPort) {
	t.Helper()
	err := dial(t, ns, dst, 1500*time.Millisecond)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("dial %s: got %v, want a timeout (no answer from the director's stack)", dst, err)
	}
}

func (tp *topo) conn(t *testing.T) *nftables.Conn {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(tp.dir.h)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func tableExists(t *testing.T, c *nftables.Conn) bool {
	t.Helper()
	tabs, err := c.ListTablesOfFamily(nftables.TableFamilyNetdev)
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(tabs, func(x *nftables.Table) bool { return x.Name == TableName })
}

func setElems(t *testing.T, c *nftables.Conn, name string) []nftables.SetElement {
	t.Helper()
	s, err := c.GetSetByName(table(), name)
	if err != nil {
		t.Fatalf("set %s: %v", name, err)
	}
	es, err := c.GetSetElements(s)
	if err != nil {
		t.Fatalf("set %s elements: %v", name, err)
	}
	return es
}

// ruleCounter returns the packet counter of the rule of chain in_d0 that looks
// up the named set.
func ruleCounter(t *testing.T, c *nftables.Conn, set string) uint64 {
	t.Helper()
	rules, err := c.GetRules(table(), &nftables.Chain{Name: "in_d0", Table: table()})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		var hit bool
		for _, e := range r.Exprs {
			if l, ok := e.(*expr.Lookup); ok && l.SetName == set {
				hit = true
			}
			if ctr, ok := e.(*expr.Counter); ok && hit {
				return ctr.Packets
			}
		}
	}
	t.Fatalf("no counted rule looks up %s", set)
	return 0
}

// baseSet is what the tests own: the director's addresses are d0's.
func baseSet() *ownership.Set {
	return &ownership.Set{
		Services: []ownership.Endpoint{
			{Addr: vip4, Proto: spec.ProtoTCP, Port: 80},
			{Addr: vip6, Proto: spec.ProtoTCP, Port: 80},
			{Addr: vip4, Proto: spec.ProtoUDP, Port: 0},
		},
		NATReplies: []ownership.Endpoint{
			{Addr: peerIP4, Proto: spec.ProtoTCP, Port: 8080},
			{Addr: peerIP4, Proto: spec.ProtoUDP, Port: 8080},
			{Addr: peerIP6, Proto: spec.ProtoTCP, Port: 8080},
		},
		LocalRanges: []ownership.PortRange{
			{Addr: dirIP4, Proto: spec.ProtoUDP, First: 40000, Last: 40100},
			{Addr: dirIP6, Proto: spec.ProtoIP, First: 40000, Last: 40100},
		},
		VIPs:  []netip.Addr{vip4, vip6},
		Local: []netip.Addr{dirIP4, vip4, dirIP6, vip6},
	}
}

func baseSpec() Spec {
	return Spec{Interfaces: []Interface{{Name: "d0"}}, Owned: baseSet()}
}

func TestApplyKeepsKernelOffVIP(t *testing.T) {
	tp := newTopo(t)
	v4, v6 := netip.AddrPortFrom(vip4, 80), netip.AddrPortFrom(vip6, 80)
	wantRefused(t, tp.peer, v4)
	wantRefused(t, tp.peer, v6)

	h := New(Options{NetNS: tp.dir.h})
	t.Cleanup(func() { _ = h.Remove() })
	if err := h.Apply(baseSpec()); err != nil {
		t.Fatal(err)
	}
	wantNoAnswer(t, tp.peer, v4)
	wantNoAnswer(t, tp.peer, v6)
	c := tp.conn(t)
	if n := ruleCounter(t, c, "svc4_d0"); n == 0 {
		t.Errorf("svc4 rule counted no drop")
	}
	if n := ruleCounter(t, c, "svc6_d0"); n == 0 {
		t.Errorf("svc6 rule counted no drop")
	}

	// ARP and NDP still work, and a port uvsd does not serve is still the
	// kernel's: resolve the VIP afresh and get the kernel's RST.
	tp.peer.ip(t, "neigh", "flush", "dev", "p0")
	wantRefused(t, tp.peer, netip.AddrPortFrom(vip4, 81))
	wantRefused(t, tp.peer, netip.AddrPortFrom(vip6, 81))

	if err := h.Remove(); err != nil {
		t.Fatal(err)
	}
	if tableExists(t, c) {
		t.Fatal("table still present after Remove")
	}
	wantRefused(t, tp.peer, v4)
	wantRefused(t, tp.peer, v6)
	if err := h.Remove(); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
}

// udpListen opens a UDP socket in ns bound to ap.
func udpListen(t *testing.T, ns *testNS, ap netip.AddrPort) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	ns.do(t, func() error {
		var err error
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
		return err
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// recvWithin reports whether c receives a datagram within d.
func recvWithin(c *net.UDPConn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 64)
	_, _, err := c.ReadFromUDPAddrPort(buf)
	return err == nil
}

func TestApplyFullNATLocalRanges(t *testing.T) {
	tp := newTopo(t)
	in := udpListen(t, tp.dir, netip.AddrPortFrom(dirIP4, 40001))
	out := udpListen(t, tp.dir, netip.AddrPortFrom(dirIP4, 39999))
	tx := udpListen(t, tp.peer, netip.AddrPortFrom(peerIP4, 0))
	send := func(port uint16) {
		t.Helper()
		if _, err := tx.WriteToUDPAddrPort([]byte("x"), netip.AddrPortFrom(dirIP4, port)); err != nil {
			t.Fatal(err)
		}
	}
	send(40001)
	if !recvWithin(in, 5*time.Second) {
		t.Fatal("no datagram to 40001 before Apply")
	}

	h := New(Options{NetNS: tp.dir.h})
	t.Cleanup(func() { _ = h.Remove() })
	if err := h.Apply(baseSpec()); err != nil {
		t.Fatal(err)
	}
	send(40001) // in the range: dropped at ingress
	send(39999) // outside: delivered, and after the first on the same path
	if !recvWithin(out, 5*time.Second) {
		t.Fatal("datagram to 39999 (outside the FULLNAT range) was not delivered")
	}
	if recvWithin(in, 300*time.Millisecond) {
		t.Fatal("datagram to 40001 (inside the FULLNAT range) reached the director's socket")
	}
	if n := ruleCounter(t, tp.conn(t), "lip4_d0"); n != 1 {
		t.Errorf("lip4 rule counted %d drops, want 1", n)
	}
}

func TestApplyNATReplies(t *testing.T) {
	tp := newTopo(t)
	h := New(Options{NetNS: tp.dir.h})
	t.Cleanup(func() { _ = h.Remove() })
	if err := h.Apply(baseSpec()); err != nil {
		t.Fatal(err)
	}
	c := tp.conn(t)

	// A health check from the director to the real server: the reply is
	// addressed to the director itself and must reach its socket.
	var ln net.Listener
	tp.peer.do(t, func() error {
		var err error
		ln, err = net.Listen("tcp", netip.AddrPortFrom(peerIP4, 8080).String())
		return err
	})
	t.Cleanup(func() { ln.Close() })
	if err := dial(t, tp.dir, netip.AddrPortFrom(peerIP4, 8080), 5*time.Second); err != nil {
		t.Fatalf("health check to a NAT real server: %v", err)
	}
	if n := ruleCounter(t, c, "nat4_d0"); n != 0 {
		t.Fatalf("nat4 rule dropped %d replies addressed to the director", n)
	}

	// A reply to a client (not a local address) is uvsd's alone.
	client := netip.MustParseAddr("198.18.9.9")
	mac := strings.Fields(tp.dir.ip(t, "-br", "link", "show", "d0"))[2]
	tp.peer.ip(t, "route", "add", "198.18.9.0/24", "dev", "p0")
	tp.peer.ip(t, "neigh", "add", client.String(), "lladdr", mac, "dev", "p0")
	srv := udpListen(t, tp.peer, netip.AddrPortFrom(peerIP4, 8080))
	const sends = 3
	for range sends {
		if _, err := srv.WriteToUDPAddrPort([]byte("reply"), netip.AddrPortFrom(client, 5555)); err != nil {
			t.Fatal(err)
		}
	}
	wait.For(t, 5*time.Second, func() bool { return ruleCounter(t, c, "nat4_d0") >= sends },
		"the nat4 rule to count %d replies (counted %v)", sends, wait.Lazy(func() any { return ruleCounter(t, c, "nat4_d0") }))
}

func TestApplyIdempotentAndUpdate(t *testing.T) {
	tp := newTopo(t)
	h := New(Options{NetNS: tp.dir.h})
	t.Cleanup(func() { _ = h.Remove() })
	c := tp.conn(t)
	s := baseSpec()
	if err := h.Apply(s); err != nil {
		t.Fatal(err)
	}
	first := setElems(t, c, "svc4_d0")
	if err := h.Apply(s); err != nil {
		t.Fatalf("second Apply: %v", err)
	}
	second := setElems(t, c, "svc4_d0")
	if len(first) != 1 || len(second) != 1 {
		t.Fatalf("svc4 elements: %d then %d, want 1 and 1", len(first), len(second))
	}
	if lip := setElems(t, c, "lip6_d0"); len(lip) != 3 { // TCP, UDP, SCTP
		t.Errorf("lip6 elements: %d, want 3", len(lip))
	}
	wantNoAnswer(t, tp.peer, netip.AddrPortFrom(vip4, 80))

	// Drop the IPv4 VIP service: its element goes and the kernel answers
	// again. SetOwnership applies to the interfaces of SetInterfaces.
	o := baseSet()
	o.Services = slices.DeleteFunc(o.Services, func(e ownership.Endpoint) bool { return e.Addr == vip4 && e.Port == 80 })
	h.SetInterfaces(s.Interfaces...)
	s.Owned = o
	if err := h.SetOwnership(o); err != nil {
		t.Fatal(err)
	}
	if es := setElems(t, c, "svc4_d0"); len(es) != 0 {
		t.Fatalf("svc4 still holds %d elements", len(es))
	}
	wantRefused(t, tp.peer, netip.AddrPortFrom(vip4, 80))
	wantNoAnswer(t, tp.peer, netip.AddrPortFrom(vip6, 80))

	// The table is the process's: no other socket can delete it.
	if err := Cleanup(c); !errors.Is(err, syscall.EPERM) {
		t.Fatalf("Cleanup of a live Hooks' table from another socket: %v, want EPERM", err)
	}
	if err := h.Apply(s); err != nil {
		t.Fatalf("Apply after the refused delete: %v", err)
	}
	if es := setElems(t, c, "svc6_d0"); len(es) != 1 {
		t.Fatalf("svc6: %d elements, want 1", len(es))
	}

	// A second interface changes the layout: both chains exist afterwards.
	link(t, tp.dir, "d1", tp.peer, "p1")
	s.Interfaces = append(s.Interfaces, Interface{Name: "d1", Owned: &ownership.Set{
		Services: []ownership.Endpoint{{Addr: vip4, Proto: spec.ProtoTCP, Port: 443}},
	}})
	if err := h.Apply(s); err != nil {
		t.Fatal(err)
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyNetdev)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ch := range chains {
		if ch.Table.Name == TableName {
			names = append(names, ch.Name)
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"icmp4_d0", "icmp4_d1", "icmp6_d0", "icmp6_d1", "in_d0", "in_d1"}) {
		t.Fatalf("chains %v", names)
	}
	wantNoAnswer(t, tp.peer, netip.AddrPortFrom(vip6, 80))

	// And back to one interface: d1's chains and sets go.
	s.Interfaces = s.Interfaces[:1]
	if err := h.Apply(s); err != nil {
		t.Fatal(err)
	}
	if names := chainNames(t, c); !slices.Equal(names, []string{"icmp4_d0", "icmp6_d0", "in_d0"}) {
		t.Fatalf("chains after removing d1: %v", names)
	}
	if _, err := c.GetSetByName(table(), "svc4_d1"); err == nil {
		t.Fatal("set svc4_d1 still there after removing d1")
	}
	wantNoAnswer(t, tp.peer, netip.AddrPortFrom(vip6, 80))
}

// chainNames lists the chains of the uvs table, sorted.
func chainNames(t *testing.T, c *nftables.Conn) []string {
	t.Helper()
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyNetdev)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ch := range chains {
		if ch.Table.Name == TableName {
			names = append(names, ch.Name)
		}
	}
	slices.Sort(names)
	return names
}

func TestIfindexAndNFTListing(t *testing.T) {
	tp := newTopo(t)
	var idx int
	tp.dir.do(t, func() error {
		ifi, err := net.InterfaceByName("d0")
		if err == nil {
			idx = ifi.Index
		}
		return err
	})
	s := baseSpec()
	s.Interfaces[0].Name, s.Interfaces[0].Ifindex = "", idx
	h := New(Options{NetNS: tp.dir.h})
	t.Cleanup(func() { _ = h.Remove() })
	if err := h.Apply(s); err != nil {
		t.Fatal(err)
	}
	netnstest.RequireTool(t, "nft")
	out := run(t, "ip", "netns", "exec", tp.dir.name, "nft", "-j", "list", "table", "netdev", TableName)
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("nft -j: %v", err)
	}
	type chainJSON struct {
		Name, Hook string
		Prio       int
	}
	var chain chainJSON
	var rules int
	for _, o := range doc.Nftables {
		if raw, ok := o["chain"]; ok {
			var c chainJSON
			if err := json.Unmarshal(raw, &c); err != nil {
				t.Fatal(err)
			}
			if c.Hook != "" {
				chain = c
			}
		}
		if _, ok := o["rule"]; ok {
			rules++
		}
	}
	if chain.Name != "in_d0" || chain.Hook != "ingress" || chain.Prio != DefaultPriority {
		t.Fatalf("chain %+v", chain)
	}
	// Per family 10 rules in the base chain (4 for fragments, 6 for
	// whole packets); ICMP errors: for IPv4 a VIP rule, 11 FULLNAT rules
	// (one per quoted header length), 22 rules about the director's
	// tunnelled packets (IPIP/GRE and GUE, per quoted header length), a
	// return, 11 NAT rules and 11 NAT rules for every port, for IPv6 one
	// of each but the tunnel rules.
	if want := 10*2 + 1 + 11 + 22 + 1 + 11 + 11 + 5; rules != want {
		t.Fatalf("%d rules, want %d", rules, want)
	}
	text := run(t, "ip", "netns", "exec", tp.dir.name, "nft", "list", "table", "netdev", TableName)
	for _, want := range []string{
		"198.18.7.100 . tcp . 80",
		"fd75:7::100 . tcp . 80",
		"198.18.7.100 . udp",
		"198.18.7.2 . tcp . 8080",
		"198.18.7.1 . udp . 40000-40100",
		"198.18.7.1 . 198.18.7.1 . udp . 40000-40100",
		"!= @loc4_d0",
		"jump icmp4_d0",
		`type filter hook ingress device "d0" priority -500`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("listing lacks %q:\n%s", want, text)
		}
	}
}

func TestCleanupRemovesLeftovers(t *testing.T) {
	tp := newTopo(t)
	// A table nobody owns: what a uvsd on a kernel without owned tables
	// (the fallback), or of an older version, leaves when it dies.
	withOwnerFlag(t, unknownTableFlag)
	crashed := New(Options{NetNS: tp.dir.h})
	if err := crashed.Apply(baseSpec()); err != nil {
		t.Fatal(err)
	}
	c := tp.conn(t)
	if !tableExists(t, c) {
		t.Fatal("no table after Apply")
	}
	// uvsd died without Remove; uvsd --cleanup runs later with a fresh conn.
	if err := Cleanup(c); err != nil {
		t.Fatal(err)
	}
	if tableExists(t, c) {
		t.Fatal("table still present after Cleanup")
	}
	wantRefused(t, tp.peer, netip.AddrPortFrom(vip4, 80))
	if err := Cleanup(c); err != nil {
		t.Fatalf("Cleanup with nothing left: %v", err)
	}
}

func TestSysctlsRestoredOnRemove(t *testing.T) {
	tp := newTopo(t)
	dir := t.TempDir()
	h := New(Options{NetNS: tp.dir.h, StateDir: dir})
	const name = "net.ipv4.conf.d0.send_redirects"
	if err := h.SetSysctls(Sysctl{Name: name, Value: "1"}); err != nil {
		t.Fatal(err)
	}
	// The value before uvsd touched it is now 1; recommended settings turn it off.
	h2 := New(Options{NetNS: tp.dir.h, StateDir: dir})
	if err := h2.SetSysctls(RecommendedSysctls("d0")...); err != nil {
		t.Fatal(err)
	}
	if err := h2.SetSysctls(RecommendedSysctls("d0")...); err != nil { // twice: first old value kept
		t.Fatal(err)
	}
	for _, s := range RecommendedSysctls("d0") {
		if v, err := h2.Sysctl(s.Name); err != nil || v != "0" {
			t.Fatalf("%s = %q, %v; want 0", s.Name, v, err)
		}
	}
	if err := h2.Remove(); err != nil {
		t.Fatal(err)
	}
	if v, err := h2.Sysctl(name); err != nil || v != "1" {
		t.Fatalf("after Remove %s = %q, %v; want the old value 1", name, v, err)
	}
	if err := h.Remove(); err != nil {
		t.Fatal(err)
	}
	if err := h.SetSysctls(Sysctl{Name: "net.ipv4.no_such_setting", Value: "1"}); err == nil {
		t.Fatal("unknown sysctl accepted")
	}
}

// TestApplyManyInterfaces applies the hooks of a dozen interfaces in one
// transaction: its messages, and the kernel's echo of every rule, exceed
// the default netlink socket buffers (EMSGSIZE, ENOBUFS).
func TestApplyManyInterfaces(t *testing.T) {
	tp := newTopo(t)
	h := New(Options{NetNS: tp.dir.h})
	t.Cleanup(func() { _ = h.Remove() })
	s := baseSpec()
	for i := range 12 {
		n := fmt.Sprintf("x%d", i)
		link(t, tp.dir, n, tp.peer, "p"+n)
		s.Interfaces = append(s.Interfaces, Interface{Name: n})
	}
	if err := h.Apply(s); err != nil {
		t.Fatalf("%d interfaces: %v", len(s.Interfaces), err)
	}
	if es := setElems(t, tp.conn(t), "svc4_x11"); len(es) != 1 {
		t.Fatalf("svc4_x11: %d elements, want 1", len(es))
	}
}

// TestStateDirAgrees: the tests' namespace cleanup removes the files of
// the directory uvsd keeps them in.
func TestStateDirAgrees(t *testing.T) {
	if DefaultStateDir != netnstest.StateDir {
		t.Fatalf("DefaultStateDir %s, netnstest.StateDir %s", DefaultStateDir, netnstest.StateDir)
	}
}
