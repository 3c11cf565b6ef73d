package fwmark

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/netnstest"
)

// nftRuleText is loaded with "nft -f" into a fresh namespace: the issue's
// recipe, an inet table with named sets and a jump, and a rule uvsd cannot
// evaluate.
const nftRuleText = `
table ip mangle {
	chain prerouting {
		type filter hook prerouting priority mangle;
		ip daddr 10.0.1.200 tcp dport { 80, 443 } meta mark set 10
	}
}
table inet lb {
	set vips6 { type ipv6_addr; flags interval; elements = { 2001:db8::100-2001:db8::101 } }
	set ports { type inet_service; elements = { 53, 5353 } }
	chain pre {
		type filter hook prerouting priority filter; policy accept;
		ct state established,related accept
		ip6 daddr @vips6 udp dport @ports jump svc
		iifname "lo" meta mark 0x0000000a meta mark set mark or 0x100
	}
	chain svc {
		meta mark set 0x14 counter
	}
}
`

func readNftIn(t *testing.T, ns *netnstest.NS) *NftRules {
	t.Helper()
	var n *NftRules
	if err := ns.Do(func() error {
		var err error
		n, err = ReadNft(nil)
		return err
	}); err != nil {
		t.Fatalf("ReadNft: %v", err)
	}
	return n
}

func TestReadNftNetns(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	netnstest.RequireTool(t, "nft")
	ns := netnstest.New(t, "fwnft")
	if n := readNftIn(t, ns); len(n.V4)+len(n.V6) != 0 {
		t.Fatalf("empty namespace: %+v", n)
	}
	file := filepath.Join(t.TempDir(), "rules.nft")
	if err := os.WriteFile(file, []byte(nftRuleText), 0o600); err != nil {
		t.Fatal(err)
	}
	ns.Exec(t, "nft", "-f", file)
	n := readNftIn(t, ns)
	if len(n.V4) != 2 || len(n.V6) != 1 || n.V4[0].Name != "ip mangle prerouting" || n.V4[1].Name != "inet lb pre" ||
		n.V4[0].Priority != -150 || n.V4[1].Priority != 0 {
		t.Fatalf("chains: v4 %d v6 %d: %+v", len(n.V4), len(n.V6), n)
	}
	m := Merge(nil, nil, Tables{}, n)
	if len(m.Unsupported) != 1 || !strings.Contains(m.Unsupported[0].String(), "nft inet lb pre handle ") ||
		!strings.Contains(m.Unsupported[0].Reason, "ct key") {
		t.Fatalf("unsupported = %v, want the ct state rule once", m.Unsupported)
	}
	c := Compile(m.V4, m.V6, map[string]int{"lo": 1, "eth0": 2})
	for i, tt := range []struct {
		p    Packet
		want uint32
	}{
		{Packet{Src: v4("10.0.1.2"), Dst: v4("10.0.1.200"), Proto: 6, SrcPort: 4000, DstPort: 443, Ifindex: 2}, 10},
		{Packet{Src: v4("10.0.1.2"), Dst: v4("10.0.1.200"), Proto: 6, SrcPort: 4000, DstPort: 443, Ifindex: 1}, 0x10a},
		{Packet{Src: v4("10.0.1.2"), Dst: v4("10.0.1.200"), Proto: 6, SrcPort: 4000, DstPort: 8080, Ifindex: 1}, 0},
		{Packet{IPv6: true, Src: v6("2001:db8::2"), Dst: v6("2001:db8::101"), Proto: 17, DstPort: 5353, Ifindex: 2}, 0x14},
		{Packet{IPv6: true, Src: v6("2001:db8::2"), Dst: v6("2001:db8::102"), Proto: 17, DstPort: 5353, Ifindex: 2}, 0},
		{Packet{IPv6: true, Src: v6("2001:db8::2"), Dst: v6("2001:db8::100"), Proto: 6, DstPort: 53, Ifindex: 2}, 0},
	} {
		if got := c.Mark(&tt.p); got != tt.want {
			t.Errorf("%d: mark %#x, want %#x", i, got, tt.want)
		}
	}
	var dsts []string
	for _, s := range m.Marks6 {
		if s.Dst.IsValid() {
			dsts = append(dsts, s.Dst.String())
		}
	}
	if strings.Join(dsts, " ") != "2001:db8::100/128 2001:db8::101/128" {
		t.Errorf("IPv6 MARK summaries' destinations = %v", dsts)
	}

	// Unchanged rules read back with the same Key; a new rule changes it.
	if again := readNftIn(t, ns); again.Key() != n.Key() {
		t.Errorf("unchanged rules, different Key:\n%s\n%s", n.Key(), again.Key())
	}
	ns.Exec(t, "nft", "add", "rule", "inet", "lb", "svc", "meta", "mark", "set", "0x15")
	if again := readNftIn(t, ns); again.Key() == n.Key() {
		t.Error("Key unchanged after nft add rule")
	}
}

// TestReadNftIptablesNFT: rules added with iptables (nf_tables backend)
// are nft rules too; read with both readers they count once, and a native
// chain in the same "ip mangle" table is still read.
func TestReadNftIptablesNFT(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	for _, tool := range []string{"nft", "iptables", "iptables-save", "ip6tables-save"} {
		netnstest.RequireTool(t, tool)
	}
	ns := netnstest.New(t, "fwnft")
	if out := ns.Exec(t, "iptables", "-V"); !strings.Contains(out, "nf_tables") {
		// Debian's iptables is iptables-nft: CI must run this.
		if os.Getenv("CI") != "" {
			t.Fatalf("iptables is not the nf_tables backend, and CI must run this test: %s", out)
		}
		t.Skipf("iptables is not the nf_tables backend: %s", out)
	}
	ns.Exec(t, "iptables", "-t", "mangle", "-A", "PREROUTING", "-d", "10.0.1.200", "-p", "tcp", "--dport", "80", "-j", "MARK", "--xor-mark", "1")
	ns.Exec(t, "iptables", "-t", "mangle", "-A", "PREROUTING", "-d", "10.0.1.201", "-j", "ACCEPT")
	ns.Exec(t, "nft", "add", "chain", "ip", "mangle", "late", "{ type filter hook prerouting priority 10; }")
	ns.Exec(t, "nft", "add", "rule", "ip", "mangle", "late", "meta", "mark", "0x1", "meta", "mark", "set", "0x2")

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	tables, err := Read(ctx, netnsRunner(ns.Name))
	if err != nil {
		t.Fatal(err)
	}
	if !tables.IPv4NFT || !tables.IPv6NFT {
		t.Fatalf("Read did not see the nf_tables backend: %+v", tables)
	}
	n := readNftIn(t, ns)
	var iptChain bool
	for _, c := range n.V4 {
		iptChain = iptChain || c.Iptables
	}
	if !iptChain {
		t.Fatalf("iptables-nft's PREROUTING chain not flagged: %+v", n.V4)
	}
	ipt4, _, err := ParseFamily(tables.IPv4, false)
	if err != nil {
		t.Fatal(err)
	}
	m := Merge(ipt4, nil, tables, n)
	if len(m.Unsupported) != 0 {
		t.Errorf("unsupported = %v (iptables-nft's xt expressions must not be read natively)", m.Unsupported)
	}
	c := Compile(m.V4, m.V6, nil)
	// xor 1 counted twice would give 0, and then no 0x2.
	p := Packet{Src: v4("10.0.1.2"), Dst: v4("10.0.1.200"), Proto: 6, DstPort: 80}
	if got := c.Mark(&p); got != 2 {
		t.Errorf("mark %#x, want 0x2 (iptables xor 1 once, then the native chain)", got)
	}
	// ACCEPT in iptables' chain does not skip the later native chain.
	p.Dst = v4("10.0.1.201")
	if got := c.Mark(&p); got != 0 {
		t.Errorf("mark %#x, want 0", got)
	}
	if len(m.Marks4) != 2 {
		t.Errorf("Marks4 = %+v, want the iptables MARK and the native one", m.Marks4)
	}
}
