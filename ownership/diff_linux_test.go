package ownership_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/uvs-lb/uvs/dataplane/afxdp"
	"github.com/uvs-lb/uvs/dataplane/khook"
	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/internal/fuzzwatch"
	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/wait"
	"github.com/uvs-lb/uvs/ownership"
)

// TestBackendsAgree is the differential test of the three backends: every
// frame of the table and of the generator goes through (a) Classify, (b)
// the classic BPF filter in the VM, (c) the XDP program with
// BPF_PROG_TEST_RUN and (d) the nftables rules of khook, installed on a
// veth in a fresh network namespace: the frame is sent from the peer
// namespace with an AF_PACKET socket, and the rules' counters (a drop) or a
// counting chain of a test table at a later ingress priority (it went on)
// say what happened to it. Every backend must do what the model says; the
// nftables rules, which walk every IPv6 extension header, are compared
// with the model walking every one as well (see the package documentation).
func TestBackendsAgree(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	s := fixture(t)
	c := newCBPF(t, s)
	x := newXDP(t, s)
	n := newNFT(t, s)
	frames := diffFrames(t)
	var deep, skipped int
	count := map[ownership.Verdict]int{}
	for _, f := range frames {
		frame := n.addressed(f.frame)
		v := verdicts{model: s.Classify(frame), nftView: s.ClassifyUnlimited(frame), cbpf: c.accepts(t, frame)}
		count[v.model]++
		v.xdp = "pass"
		if x.redirects(t, frame) {
			v.xdp = "redirect"
		}
		if n.sendable(frame) {
			v.nft = "pass"
			if n.drops(t, frame) {
				v.nft = "drop"
			}
		} else {
			skipped++
			if v.model != ownership.Kernel {
				t.Errorf("%s: the model owns a frame that no ingress hook sees: %v\n%s", f.name, &v, describe(frame))
			}
		}
		if v.nftView != v.model {
			deep++
		}
		if !v.agree() {
			t.Errorf("%s: %v\n%s", f.name, &v, describe(frame))
		}
	}
	t.Logf("%d frames (%d of the table, %d generated): verdicts %v; %d walked deeper by nftables; %d not sent (no Ethernet header or a VLAN tag cut short: the kernel drops them before the hooks)",
		len(frames), len(frames)-randomFrames, randomFrames, count, deep, skipped)
	if deep == 0 {
		t.Error("no frame exercises the IPv6 extension headers nftables walks deeper")
	}
}

// xdp is the XDP program in the kernel's test runner.
type xdp struct{ r *afxdp.TestRunner }

func newXDP(t testing.TB, s *ownership.Set) *xdp {
	t.Helper()
	r, err := afxdp.NewTestRunner()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	if err := r.SetOwnership(s); err != nil {
		t.Fatal(err)
	}
	return &xdp{r}
}

func (x *xdp) redirects(t testing.TB, frame []byte) bool {
	ok, err := x.r.Redirects(frame)
	if err != nil {
		t.Fatalf("% x: %v", frame, err)
	}
	return ok
}

// nft is the khook rules on d0 in a director namespace, fed through a veth
// from p0 in a peer namespace.
type nft struct {
	dir, peer *netnstest.NS
	conn      *nftables.Conn
	tx        int // AF_PACKET socket in the peer namespace
	txIfindex int
	dstMAC    [6]byte
}

// testTable is the test's own netdev table: a chain hooked at ingress after
// khook's counts the test frames that went on.
var testTable = &nftables.Table{Name: "uvs_own_test", Family: nftables.TableFamilyNetdev}

// newNS creates a namespace named uvs-own-<suffix> and deletes it when the
// test ends, failed or not.
func newNS(t testing.TB, suffix string) *netnstest.NS {
	t.Helper()
	ns := &netnstest.NS{Name: "uvs-own-" + suffix}
	if out, err := exec.Command("ip", "netns", "add", ns.Name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", ns.Name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns.Name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns.Name, err, out)
		}
	})
	return ns
}

func newNFT(t testing.TB, s *ownership.Set) *nft {
	t.Helper()
	netnstest.RequireTool(t, "ip")
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	suffix := hex.EncodeToString(rnd[:])
	n := &nft{dir: newNS(t, suffix+"-d"), peer: newNS(t, suffix+"-p")}
	// No IPv6 and no address: the namespaces' stacks send nothing of
	// their own on the link.
	for _, ns := range []*netnstest.NS{n.dir, n.peer} {
		ns.IP(t, "link", "set", "lo", "up")
		if err := ns.Do(func() error {
			for _, f := range []string{"all", "default"} {
				if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+f+"/disable_ipv6", []byte("1"), 0); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	netnstest.Veth(t, n.peer, "p0", n.dir, "d0")
	n.dstMAC = [6]byte(n.dir.Interface(t, "d0").HardwareAddr)
	n.txIfindex = n.peer.Interface(t, "p0").Index

	handle := n.dir.Handle(t)
	h := khook.New(khook.Options{NetNS: handle})
	if err := h.Apply(khook.Spec{Interfaces: []khook.Interface{{Name: "d0"}}, Owned: s}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Remove() })

	conn, err := nftables.New(nftables.WithNetNSFd(int(handle)))
	if err != nil {
		t.Fatal(err)
	}
	n.conn = conn
	conn.AddTable(testTable)
	seen := conn.AddChain(&nftables.Chain{
		Name: "seen", Table: testTable, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookIngress,
		Priority: nftables.ChainPriorityRef(0), Device: "d0",
	})
	conn.AddRule(&nftables.Rule{Table: testTable, Chain: seen, Exprs: []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 6, Len: 6},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: macSrc[:]},
		&expr.Counter{},
	}})
	if err := conn.Flush(); err != nil {
		t.Fatal(err)
	}

	if err := n.peer.Do(func() error {
		var err error
		n.tx, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0) // 0: receives nothing
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(n.tx) })
	return n
}

// addressed returns frame with d0's MAC as destination and the test's MAC
// as source (the counting chain matches it), the only bytes the test
// changes; no classifier reads them.
func (n *nft) addressed(frame []byte) []byte {
	if len(frame) < header.EthernetMinSize {
		return frame
	}
	f := append([]byte(nil), frame...)
	copy(f, n.dstMAC[:])
	copy(f[6:], macSrc[:])
	return f
}

// sendable reports whether frame reaches the ingress hooks: AF_PACKET pads
// a frame shorter than an Ethernet header, and __netif_receive_skb_core
// drops, before the hooks, a tagged frame too short for its tag and the
// two bytes after it (skb_vlan_untag in net/core/skbuff.c).
func (n *nft) sendable(frame []byte) bool {
	if len(frame) < header.EthernetMinSize {
		return false
	}
	switch uint16(frame[header.EthernetTypeOff])<<8 | uint16(frame[header.EthernetTypeOff+1]) {
	case header.EtherTypeVLAN, header.EtherTypeQinQ:
		return len(frame) >= header.EthernetVLANSize+2
	}
	return true
}

// counters returns the packets khook's rules dropped and those the test
// chain saw.
func (n *nft) counters(t testing.TB) (dropped, seen uint64) {
	sum := func(tab *nftables.Table, chain string) uint64 {
		rules, err := n.conn.GetRules(tab, &nftables.Chain{Name: chain, Table: tab})
		if err != nil {
			t.Fatalf("rules of %s: %v", chain, err)
		}
		var s uint64
		for _, r := range rules {
			for _, e := range r.Exprs {
				if c, ok := e.(*expr.Counter); ok {
					s += c.Packets
				}
			}
		}
		return s
	}
	uvs := &nftables.Table{Name: khook.TableName, Family: nftables.TableFamilyNetdev}
	for _, ch := range []string{"in_d0", "icmp4_d0", "icmp6_d0"} {
		dropped += sum(uvs, ch)
	}
	return dropped, sum(testTable, "seen")
}

// drops sends frame and reports whether khook's rules dropped it.
func (n *nft) drops(t testing.TB, frame []byte) bool {
	d0, s0 := n.counters(t)
	if err := unix.Sendto(n.tx, frame, 0, &unix.SockaddrLinklayer{Ifindex: n.txIfindex}); err != nil {
		t.Fatalf("send % x: %v", frame, err)
	}
	var d, s uint64
	wait.For(t, 5*time.Second, func() bool {
		d, s = n.counters(t)
		return d+s > d0+s0
	}, "the frame at d0's ingress hooks: % x", frame)
	if d+s != d0+s0+1 {
		t.Fatalf("one frame counted %d times (dropped %d, went on %d)", d+s-d0-s0, d-d0, s-s0)
	}
	return d > d0
}

// FuzzBackends checks Classify, the classic BPF filter and (as root) the
// XDP program against each other on arbitrary frames; nftables is left to
// TestBackendsAgree.
func FuzzBackends(f *testing.F) {
	for _, c := range cases() {
		f.Add(c.frame)
	}
	s := fixture(f)
	c := newCBPF(f, s)
	var x *xdp
	if os.Geteuid() == 0 {
		x = newXDP(f, s)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("%d bytes %.200q", len(frame), frame) })()
		if len(frame) > 3000 {
			return // the kernel's test run takes less than a page
		}
		v := verdicts{model: s.Classify(frame), nftView: s.ClassifyUnlimited(frame), cbpf: c.accepts(t, frame)}
		if x != nil {
			v.xdp = "pass"
			if x.redirects(t, frame) {
				v.xdp = "redirect"
			}
		}
		if !v.agree() {
			t.Fatalf("%v\n%s", &v, describe(frame))
		}
	})
}
