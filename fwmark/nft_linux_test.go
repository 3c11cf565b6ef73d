package fwmark

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/uvs-lb/uvs/internal/fuzzwatch"
)

// Expression builders, in the shapes nft 1.0.6 produces (read back from a
// namespace with google/nftables).

func ldMeta(k expr.MetaKey) expr.Any { return &expr.Meta{Key: k, Register: 1} }
func ldNet(off, n uint32) expr.Any {
	return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n}
}
func ldTh(off uint32) expr.Any {
	return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2}
}
func eq(b ...byte) expr.Any                   { return &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b} }
func cmpOp(op expr.CmpOp, b ...byte) expr.Any { return &expr.Cmp{Op: op, Register: 1, Data: b} }
func ne32(v uint32) []byte                    { return binary.NativeEndian.AppendUint32(nil, v) }
func be16(v uint16) []byte                    { return binary.BigEndian.AppendUint16(nil, v) }
func ip4b(s string) []byte                    { a := netip.MustParseAddr(s).As4(); return a[:] }
func setMark(v uint32) []expr.Any {
	return []expr.Any{&expr.Immediate{Register: 1, Data: ne32(v)}, &expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1}}
}
func verdict(k expr.VerdictKind, chain string) expr.Any { return &expr.Verdict{Kind: k, Chain: chain} }
func lookup(set string) expr.Any                        { return &expr.Lookup{SourceRegister: 1, SetName: set} }
func cat(parts ...any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		switch p := p.(type) {
		case expr.Any:
			out = append(out, p)
		case []expr.Any:
			out = append(out, p...)
		}
	}
	return out
}

func rules(exprs ...[]expr.Any) []nftRule {
	out := make([]nftRule, len(exprs))
	for i, e := range exprs {
		out[i] = nftRule{Handle: uint64(i + 2), Exprs: e}
	}
	return out
}

func baseChain(name string, prio int32, rs ...[]expr.Any) nftChain {
	return nftChain{Name: name, Hook: nftables.ChainHookPrerouting, Priority: prio, Type: nftables.ChainTypeFilter, Rules: rules(rs...)}
}

func hashSet(keyLen int, keys ...[]byte) nftSet {
	s := nftSet{KeyLen: keyLen}
	for _, k := range keys {
		s.Elems = append(s.Elems, nftables.SetElement{Key: k})
	}
	return s
}

var testIfnames = map[int]string{1: "lo", 2: "eth0", 3: "eth1", 4: "veth9"}

func testIfname(idx int) (string, bool) { n, ok := testIfnames[idx]; return n, ok }

// compileNft translates rs and merges it with the iptables text (may be
// empty) the way the daemon does.
func compileNft(t *testing.T, rs *nftRuleset, tables Tables) (*Classifier, Merged) {
	t.Helper()
	n := translateNft(rs, testIfname)
	ipt4, _, err := ParseFamily(tables.IPv4, false)
	if err != nil {
		t.Fatal(err)
	}
	ipt6, _, err := ParseFamily(tables.IPv6, true)
	if err != nil {
		t.Fatal(err)
	}
	m := Merge(ipt4, ipt6, tables, n)
	return Compile(m.V4, m.V6, testIfaces), m
}

// seedRuleset is the recipe: table ip mangle, chain prerouting
// (type filter hook prerouting priority mangle), ip daddr VIP tcp dport
// { 80, 443 } meta mark set 10.
func seedRuleset() *nftRuleset {
	return &nftRuleset{Tables: []nftTable{{
		Family: nftables.TableFamilyIPv4, Name: "mangle",
		Sets: map[string]nftSet{"__set0": hashSet(2, be16(80), be16(443))},
		Chains: []nftChain{baseChain("prerouting", -150,
			cat(ldNet(16, 4), eq(ip4b("10.0.1.200")...), ldMeta(expr.MetaKeyL4PROTO), eq(6), ldTh(2), lookup("__set0"), setMark(10)))},
	}}}
}

func TestNftSeedRule(t *testing.T) {
	c, m := compileNft(t, seedRuleset(), Tables{})
	if len(m.Unsupported) != 0 {
		t.Fatalf("unsupported: %v", m.Unsupported)
	}
	for _, tt := range []struct {
		p    Packet
		want uint32
	}{
		{Packet{Src: v4("10.0.1.2"), Dst: v4("10.0.1.200"), Proto: 6, SrcPort: 4000, DstPort: 80, Ifindex: 2}, 10},
		{Packet{Src: v4("10.0.1.2"), Dst: v4("10.0.1.200"), Proto: 6, SrcPort: 4000, DstPort: 443, Ifindex: 2}, 10},
		{Packet{Src: v4("10.0.1.2"), Dst: v4("10.0.1.200"), Proto: 6, SrcPort: 4000, DstPort: 22, Ifindex: 2}, 0},
		{Packet{Src: v4("10.0.1.2"), Dst: v4("10.0.1.200"), Proto: 17, SrcPort: 4000, DstPort: 80, Ifindex: 2}, 0},
		{Packet{Src: v4("10.0.1.2"), Dst: v4("10.0.1.201"), Proto: 6, SrcPort: 4000, DstPort: 80, Ifindex: 2}, 0},
		{Packet{IPv6: true, Src: v6("2001:db8::2"), Dst: v6("::ffff:10.0.1.200"), Proto: 6, DstPort: 80}, 0},
	} {
		if got := c.Mark(&tt.p); got != tt.want {
			t.Errorf("%+v: mark %d, want %d", tt.p, got, tt.want)
		}
	}
	if len(m.Marks4) != 1 {
		t.Fatalf("Marks4 = %+v, want one summary", m.Marks4)
	}
	s := m.Marks4[0]
	if s.Dst != netip.MustParsePrefix("10.0.1.200/32") || !s.HasProto || s.Proto != 6 || s.Value != 10 ||
		len(s.Ports) != 1 || s.Ports[0].Dir != PortDst || fmt.Sprint(s.Ports[0].Ranges) != "[{80 80} {443 443}]" {
		t.Errorf("summary = %+v", s)
	}
}

// inetRuleset is a ruleset read back from a namespace (nft list ruleset):
//
//	table inet t {
//	  set vips { type ipv4_addr; elements = { 10.0.0.1, 10.0.0.2 } }
//	  set r { type inet_service; flags interval; elements = { 10-20, 30, 1000-2000 } }
//	  chain pre {
//	    type filter hook prerouting priority -10;
//	    iifname "eth*" ip saddr 192.168.0.0/16 udp sport 10-20 meta mark set mark and 0xff00 or 0x5 counter
//	    iif lo ip6 daddr 2001:db8::/32 meta l4proto { tcp, udp } th dport @r meta mark set 0x7 accept
//	    ip daddr @vips jump sub
//	    meta mark 0x5 return
//	    iifname "eth0" goto sub
//	  }
//	  chain sub { tcp dport != 22 meta mark set 3; ct mark set mark; }
//	}
func inetRuleset() *nftRuleset {
	// The interval set as the kernel lists it: newest first, a leading
	// interval end at 0, each interval's end flagged one past its last.
	r := nftSet{KeyLen: 2, Interval: true}
	for _, el := range []struct {
		k   uint16
		end bool
	}{{2001, true}, {1000, false}, {31, true}, {30, false}, {21, true}, {10, false}, {0, true}} {
		r.Elems = append(r.Elems, nftables.SetElement{Key: be16(el.k), IntervalEnd: el.end})
	}
	pre := baseChain("pre", -10,
		cat(ldMeta(expr.MetaKeyIIFNAME), eq('e', 't', 'h'), ldMeta(expr.MetaKeyNFPROTO), eq(2), ldNet(12, 2), eq(192, 168),
			ldMeta(expr.MetaKeyL4PROTO), eq(17), ldTh(0), cmpOp(expr.CmpOpGte, 0, 10), cmpOp(expr.CmpOpLte, 0, 20),
			ldMeta(expr.MetaKeyMARK), &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: ne32(0xff00), Xor: ne32(5)},
			&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1}, &expr.Counter{}),
		cat(ldMeta(expr.MetaKeyIIF), eq(ne32(1)...), ldMeta(expr.MetaKeyNFPROTO), eq(10), ldNet(24, 4), eq(0x20, 0x01, 0x0d, 0xb8),
			ldMeta(expr.MetaKeyL4PROTO), lookup("__set0"), ldTh(2), lookup("r"), setMark(7), verdict(expr.VerdictAccept, "")),
		cat(ldMeta(expr.MetaKeyNFPROTO), eq(2), ldNet(16, 4), lookup("vips"), verdict(expr.VerdictJump, "sub")),
		cat(ldMeta(expr.MetaKeyMARK), eq(ne32(5)...), verdict(expr.VerdictReturn, "")),
		cat(ldMeta(expr.MetaKeyIIFNAME), eq(append([]byte("eth0"), make([]byte, 12)...)...), verdict(expr.VerdictGoto, "sub")),
	)
	sub := nftChain{Name: "sub", Rules: rules(
		cat(ldMeta(expr.MetaKeyL4PROTO), eq(6), ldTh(2), cmpOp(expr.CmpOpNeq, 0, 22), setMark(3)),
		cat(ldMeta(expr.MetaKeyMARK), &expr.Ct{Key: expr.CtKeyMARK}),
	)}
	return &nftRuleset{Tables: []nftTable{{
		Family: nftables.TableFamilyINet, Name: "t",
		Sets: map[string]nftSet{
			"vips":   hashSet(4, ip4b("10.0.0.2"), ip4b("10.0.0.1")),
			"r":      r,
			"__set0": hashSet(1, []byte{6}, []byte{17}),
		},
		Chains: []nftChain{pre, sub},
	}}}
}

func TestNftInetJumpGoto(t *testing.T) {
	c, m := compileNft(t, inetRuleset(), Tables{})
	if len(m.Unsupported) != 0 {
		t.Fatalf("unsupported: %v", m.Unsupported)
	}
	for i, tt := range []struct {
		p    Packet
		want uint32
	}{
		// udp from 192.168/16 on eth*: (0 & 0xff00) ^ 5; jumps to sub
		// (not tcp), returns; mark 5 returns.
		{Packet{Src: v4("192.168.1.1"), Dst: v4("10.0.0.1"), Proto: 17, SrcPort: 15, DstPort: 53, Ifindex: 2}, 5},
		// sport outside 10-20: no mark; dst in @vips: sub marks tcp 3.
		{Packet{Src: v4("192.168.1.1"), Dst: v4("10.0.0.2"), Proto: 6, SrcPort: 21, DstPort: 80, Ifindex: 3}, 3},
		{Packet{Src: v4("192.168.1.1"), Dst: v4("10.0.0.2"), Proto: 6, SrcPort: 21, DstPort: 22, Ifindex: 3}, 0},
		// Not a VIP: only eth0's goto reaches sub.
		{Packet{Src: v4("1.2.3.4"), Dst: v4("10.0.0.9"), Proto: 6, SrcPort: 1, DstPort: 23, Ifindex: 3}, 0},
		{Packet{Src: v4("1.2.3.4"), Dst: v4("10.0.0.9"), Proto: 6, SrcPort: 1, DstPort: 23, Ifindex: 2}, 3},
		{Packet{Src: v4("1.2.3.4"), Dst: v4("10.0.0.9"), Proto: 6, SrcPort: 1, DstPort: 22, Ifindex: 2}, 0},
		// IPv6 from lo to 2001:db8::/32, tcp or udp, dport in @r: 7, accept.
		{Packet{IPv6: true, Src: v6("2001:db8::9"), Dst: v6("2001:db8::5"), Proto: 17, DstPort: 1500, Ifindex: 1}, 7},
		{Packet{IPv6: true, Src: v6("2001:db8::9"), Dst: v6("2001:db8::5"), Proto: 6, DstPort: 30, Ifindex: 1}, 7},
		{Packet{IPv6: true, Src: v6("2001:db8::9"), Dst: v6("2001:db8::5"), Proto: 6, DstPort: 25, Ifindex: 1}, 0},
		{Packet{IPv6: true, Src: v6("2001:db8::9"), Dst: v6("2001:db9::5"), Proto: 6, DstPort: 30, Ifindex: 1}, 0},
		{Packet{IPv6: true, Src: v6("2001:db8::9"), Dst: v6("2001:db8::5"), Proto: 132, DstPort: 30, Ifindex: 1}, 0},
		// On eth0 the accept is not reached and the goto marks tcp 3.
		{Packet{IPv6: true, Src: v6("2001:db8::9"), Dst: v6("2001:db8::5"), Proto: 6, DstPort: 30, Ifindex: 2}, 3},
	} {
		if got := c.Mark(&tt.p); got != tt.want {
			t.Errorf("%d: %+v: mark %d, want %d", i, tt.p, got, tt.want)
		}
	}
	// The jump's conditions are on the path of sub's MARK: one summary per
	// VIP of @vips, for the daemon's packet filter.
	var vips []string
	for _, s := range m.Marks4 {
		if s.Value == 3 && s.Dst.IsValid() {
			vips = append(vips, s.Dst.String())
		}
	}
	if fmt.Sprint(vips) != "[10.0.0.1/32 10.0.0.2/32]" {
		t.Errorf("summaries of sub's MARK with a destination: %v; Marks4 %+v", vips, m.Marks4)
	}
}

func TestNftPrefixesAndMasks(t *testing.T) {
	rs := &nftRuleset{Tables: []nftTable{{
		Family: nftables.TableFamilyIPv4, Name: "x",
		Chains: []nftChain{baseChain("p", 0,
			// ip saddr 10.1.2.0/23 (bitwise on the last bytes)
			cat(ldNet(12, 4), &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{255, 255, 254, 0}, Xor: make([]byte, 4)},
				eq(10, 1, 2, 0), setMark(1)),
			// ip daddr != 172.16.0.0/12 udp dport != 53-60 (a range)
			cat(ldNet(16, 2), &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 2, Mask: []byte{255, 0xf0}, Xor: make([]byte, 2)},
				cmpOp(expr.CmpOpNeq, 172, 16), ldMeta(expr.MetaKeyL4PROTO), eq(17), ldTh(2),
				&expr.Range{Op: expr.CmpOpNeq, Register: 1, FromData: be16(53), ToData: be16(60)}, setMark(2)),
			// meta mark & 0xf == 1 → mark set 0x11
			cat(ldMeta(expr.MetaKeyMARK), &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: ne32(0xf), Xor: ne32(0)},
				eq(ne32(1)...), setMark(0x11)),
		)},
	}}}
	c, m := compileNft(t, rs, Tables{})
	if len(m.Unsupported) != 0 {
		t.Fatalf("unsupported: %v", m.Unsupported)
	}
	for i, tt := range []struct {
		p    Packet
		want uint32
	}{
		{Packet{Src: v4("10.1.3.9"), Dst: v4("172.16.0.1"), Proto: 6}, 0x11},
		{Packet{Src: v4("10.1.4.9"), Dst: v4("172.16.0.1"), Proto: 6}, 0},
		{Packet{Src: v4("10.9.9.9"), Dst: v4("8.8.8.8"), Proto: 17, DstPort: 61}, 2},
		{Packet{Src: v4("10.9.9.9"), Dst: v4("8.8.8.8"), Proto: 17, DstPort: 55}, 0},
		{Packet{Src: v4("10.9.9.9"), Dst: v4("172.31.0.1"), Proto: 17, DstPort: 61}, 0},
	} {
		if got := c.Mark(&tt.p); got != tt.want {
			t.Errorf("%d: mark %#x, want %#x", i, got, tt.want)
		}
	}
}

// TestNftMergeIptables: chains run in priority order, each from the mark
// the previous left; an iptables ACCEPT ends the iptables block only;
// iptables-nft's own PREROUTING chain is not counted twice.
func TestNftMergeIptables(t *testing.T) {
	ipt := "*mangle\n:PREROUTING ACCEPT [0:0]\n" +
		"-A PREROUTING -m mark --mark 0x1 -j MARK --xor-mark 0x100\n" +
		"-A PREROUTING -j ACCEPT\n" +
		"-A PREROUTING -j MARK --set-mark 0x999\n" +
		"COMMIT\n"
	rs := &nftRuleset{Tables: []nftTable{
		{Family: nftables.TableFamilyIPv4, Name: "mangle", Chains: []nftChain{
			// iptables-nft's translation of the same three rules, as the
			// nft reader sees it (the MARK target is an xt target).
			baseChain("PREROUTING", -150,
				cat(ldMeta(expr.MetaKeyMARK), eq(ne32(1)...), &expr.Target{Name: "MARK"}),
				cat(verdict(expr.VerdictAccept, "")),
				cat(&expr.Target{Name: "MARK"})),
		}},
		{Family: nftables.TableFamilyINet, Name: "late", Chains: []nftChain{
			baseChain("p", 10, cat(ldMeta(expr.MetaKeyMARK), eq(ne32(0x101)...), setMark(0x202))),
		}},
		{Family: nftables.TableFamilyIPv4, Name: "early", Chains: []nftChain{
			baseChain("p", -300, setMark(1)),
		}},
	}}
	// With the nf_tables backend the iptables text replaces the chain.
	c, m := compileNft(t, rs, Tables{IPv4: ipt, IPv4NFT: true})
	if len(m.Unsupported) != 0 {
		t.Errorf("unsupported with nf_tables iptables: %v", m.Unsupported)
	}
	p := Packet{Src: v4("1.1.1.1"), Dst: v4("2.2.2.2"), Proto: 6}
	if got := c.Mark(&p); got != 0x202 {
		t.Errorf("mark %#x, want 0x202 (early 1, iptables xor 0x100 then ACCEPT, late 0x101 → 0x202)", got)
	}
	// With legacy iptables the nft chain named PREROUTING is native (and
	// its xt targets are reported), the iptables block runs before it.
	_, m = compileNft(t, rs, Tables{IPv4: ipt})
	if len(m.Unsupported) != 2 || m.Unsupported[0].Nft != "ip mangle PREROUTING" || !strings.Contains(m.Unsupported[0].Reason, "xt target") {
		t.Errorf("unsupported with legacy iptables: %v", m.Unsupported)
	}
	// IPv6: only the inet chain.
	p6 := Packet{IPv6: true, Src: v6("2001:db8::1"), Dst: v6("2001:db8::2"), Proto: 6}
	if got := c.Mark(&p6); got != 0 {
		t.Errorf("ipv6 mark %#x, want 0", got)
	}
}

func TestNftUnsupported(t *testing.T) {
	for _, tt := range []struct {
		name   string
		exprs  []expr.Any
		reason string
	}{
		{"drop", cat(ldNet(16, 4), eq(ip4b("10.0.0.1")...), verdict(expr.VerdictDrop, "")), "drop"},
		{"xt", cat(&expr.Match{Name: "multiport"}, setMark(1)), "xt match"},
		{"ct state", cat(&expr.Ct{Register: 1, Key: expr.CtKeySTATE}, eq(ne32(8)...), setMark(1)), "ct key"},
		{"th without proto", cat(ldTh(2), eq(be16(80)...), setMark(1)), "port match without"},
		{"dccp ports", cat(ldMeta(expr.MetaKeyL4PROTO), eq(33), ldTh(2), eq(be16(80)...), setMark(1)), "port match without"},
		{"dynamic set", cat(ldNet(12, 4), lookup("dyn"), setMark(1)), "dynamic set"},
		{"map", cat(ldNet(12, 4), &expr.Lookup{SourceRegister: 1, SetName: "dyn", IsDestRegSet: true, DestRegister: 1}, setMark(1)), "map lookup"},
		{"negated set", cat(ldNet(12, 4), &expr.Lookup{SourceRegister: 1, SetName: "two", Invert: true}, setMark(1)), "negated lookup"},
		{"unknown chain", cat(verdict(expr.VerdictJump, "nope")), "unknown chain"},
		{"mark from ct", cat(&expr.Ct{Register: 1, Key: expr.CtKeyMARK}, &expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1}), "meta mark set from ct"},
		{"two daddrs", cat(ldNet(16, 4), eq(ip4b("10.0.0.1")...), ldNet(16, 4), eq(ip4b("10.0.0.2")...), setMark(1)), "two destination"},
		{"reject", cat(&expr.Reject{}), "expression Reject"},
		{"oifname", cat(ldMeta(expr.MetaKeyOIFNAME), eq('x', 0), setMark(1)), "match on meta oifname"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rs := &nftRuleset{Tables: []nftTable{{
				Family: nftables.TableFamilyIPv4, Name: "x",
				Sets: map[string]nftSet{
					"dyn": {KeyLen: 4, Dynamic: true},
					"two": hashSet(4, ip4b("1.1.1.1"), ip4b("1.1.1.2")),
				},
				Chains: []nftChain{baseChain("p", 0, tt.exprs, setMark(9))},
			}}}
			c, m := compileNft(t, rs, Tables{})
			if len(m.Unsupported) != 1 || !strings.Contains(m.Unsupported[0].Reason, tt.reason) || m.Unsupported[0].Line != 2 {
				t.Fatalf("unsupported = %v, want one with %q", m.Unsupported, tt.reason)
			}
			if s := m.Unsupported[0].String(); !strings.HasPrefix(s, "nft ip x p handle 2: ") {
				t.Errorf("String() = %q", s)
			}
			// The rule is skipped, the next one still runs.
			if n4, _ := c.Len(); n4 != 1 {
				t.Errorf("compiled %d rules, want the next rule only", n4)
			}
		})
	}
	// A nat chain's rules are all reported.
	rs := &nftRuleset{Tables: []nftTable{{Family: nftables.TableFamilyINet, Name: "n",
		Chains: []nftChain{{Name: "dnat", Hook: nftables.ChainHookPrerouting, Priority: -100, Type: nftables.ChainTypeNAT,
			Rules: rules(setMark(1))}}}}}
	if _, m := compileNft(t, rs, Tables{}); len(m.Unsupported) != 1 || !strings.Contains(m.Unsupported[0].Reason, "nat") {
		t.Errorf("nat chain: unsupported = %v, want the rule once for both families", m.Unsupported)
	}
}

// TestNftFamilyRestriction: in an inet chain, an nfproto or ip6 match
// that cannot hold in a family ends the rule there, without a report.
func TestNftFamilyRestriction(t *testing.T) {
	rs := &nftRuleset{Tables: []nftTable{{Family: nftables.TableFamilyINet, Name: "t",
		Chains: []nftChain{baseChain("p", 0,
			cat(ldMeta(expr.MetaKeyNFPROTO), eq(10), ldNet(6, 1), eq(6), setMark(1)), // ip6 nexthdr tcp
			cat(ldMeta(expr.MetaKeyPROTOCOL), eq(0x08, 0x00), setMark(2)),
		)}}}}
	c, m := compileNft(t, rs, Tables{})
	if len(m.Unsupported) != 1 || !m.Unsupported[0].IPv6 || !strings.Contains(m.Unsupported[0].Reason, "nexthdr") {
		t.Errorf("unsupported = %v, want ip6 nexthdr for IPv6 only", m.Unsupported)
	}
	if got := c.Mark(&Packet{Src: v4("1.1.1.1"), Dst: v4("2.2.2.2"), Proto: 6}); got != 2 {
		t.Errorf("ipv4 mark %d, want 2", got)
	}
	if got := c.Mark(&Packet{IPv6: true, Src: v6("::1"), Dst: v6("::2"), Proto: 6}); got != 0 {
		t.Errorf("ipv6 mark %d, want 0", got)
	}
}

func TestNftSetRanges(t *testing.T) {
	rs := inetRuleset()
	got, reason := setRanges(rs.Tables[0].Sets["r"])
	if reason != "" {
		t.Fatal(reason)
	}
	var s []string
	for _, r := range got {
		s = append(s, fmt.Sprintf("%d-%d", binary.BigEndian.Uint16(r[0]), binary.BigEndian.Uint16(r[1])))
	}
	if fmt.Sprint(s) != "[10-20 30-30 1000-2000]" {
		t.Errorf("ranges %v", s)
	}
	p := rangePrefixes(netip.MustParseAddr("10.0.0.255"), netip.MustParseAddr("10.0.2.4"), 100)
	if fmt.Sprint(p) != "[10.0.0.255/32 10.0.1.0/24 10.0.2.0/30 10.0.2.4/32]" {
		t.Errorf("prefixes %v", p)
	}
	p = rangePrefixes(netip.MustParseAddr("::"), netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), 100)
	if fmt.Sprint(p) != "[::/0]" {
		t.Errorf("prefixes %v", p)
	}
}

func TestNftMarkNoAllocs(t *testing.T) {
	c, _ := compileNft(t, inetRuleset(), Tables{})
	p := Packet{Src: v4("1.2.3.4"), Dst: v4("10.0.0.2"), Proto: 6, SrcPort: 1, DstPort: 23, Ifindex: 2}
	if got := c.Mark(&p); got != 3 {
		t.Fatalf("mark %d", got)
	}
	if n := testing.AllocsPerRun(1000, func() { c.Mark(&p) }); n != 0 {
		t.Errorf("Mark allocs = %v, want 0", n)
	}
}

func BenchmarkNftMark(b *testing.B) {
	n := translateNft(inetRuleset(), testIfname)
	m := Merge(nil, nil, Tables{}, n)
	c := Compile(m.V4, m.V6, testIfaces)
	p := Packet{Src: v4("1.2.3.4"), Dst: v4("10.0.0.2"), Proto: 6, SrcPort: 1, DstPort: 23, Ifindex: 2}
	b.ReportAllocs()
	for b.Loop() {
		c.Mark(&p)
	}
}

// fuzzExprs builds an expression list from bytes: each byte pair picks an
// expression kind and an operand, so the fuzzer explores register and
// statement orders the translator must survive.
func fuzzExprs(data []byte) []expr.Any {
	var out []expr.Any
	for i := 0; i+1 < len(data) && len(out) < 64; i += 2 {
		op, v := data[i], data[i+1]
		reg := uint32(v%3) + 1
		switch op % 14 {
		case 0:
			out = append(out, &expr.Meta{Key: expr.MetaKey(v % 20), Register: reg})
		case 1:
			out = append(out, &expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg})
		case 2:
			out = append(out, &expr.Payload{DestRegister: reg, Base: expr.PayloadBase(v % 3), Offset: uint32(v % 41), Len: uint32(v%17) + 1})
		case 3:
			out = append(out, &expr.Cmp{Op: expr.CmpOp(v % 6), Register: reg, Data: data[i:min(len(data), i+int(v%17))]})
		case 4:
			out = append(out, &expr.Immediate{Register: reg, Data: data[i:min(len(data), i+4)]})
		case 5:
			out = append(out, &expr.Lookup{SourceRegister: reg, SetName: []string{"a", "p", "i", "n", "x"}[v%5], Invert: v&0x80 != 0})
		case 6:
			out = append(out, &expr.Verdict{Kind: expr.VerdictKind(int(v%11) - 5), Chain: []string{"c1", "c2", "nope"}[v%3]})
		case 7:
			m := data[i:min(len(data), i+int(v%5))]
			out = append(out, &expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: uint32(len(m)), Mask: m, Xor: make([]byte, len(m))})
		case 8:
			out = append(out, &expr.Range{Op: expr.CmpOp(v % 2), Register: reg, FromData: []byte{0, v}, ToData: []byte{v, 0}})
		case 9:
			out = append(out, &expr.Counter{})
		case 10:
			out = append(out, &expr.Ct{Register: uint32(v % 2), Key: expr.CtKeyMARK})
		default:
			out = append(out, &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: uint32(v%2) * 2, Len: 2})
		}
	}
	return out
}

func FuzzNftTranslate(f *testing.F) {
	f.Add([]byte{2, 16, 3, 4, 0, 16, 3, 1, 11, 2, 5, 1, 4, 4, 1, 1}, []byte{6, 0, 6, 200}, []byte{0, 3, 3, 4, 1, 1})
	f.Add([]byte{6, 3}, []byte{6, 1, 6, 4}, []byte{6, 2})
	f.Add([]byte{0, 6, 3, 1, 6, 9}, []byte{}, []byte{8, 1, 1, 1})
	f.Fuzz(func(t *testing.T, base, c1, c2 []byte) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("%x %x %x", base, c1, c2) })()
		rs := &nftRuleset{Tables: []nftTable{{
			Family: nftables.TableFamilyINet, Name: "f",
			Sets: map[string]nftSet{
				"a": hashSet(4, ip4b("10.0.0.1"), ip4b("10.0.0.2")),
				"p": {KeyLen: 2, Interval: true, Elems: []nftables.SetElement{{Key: be16(80)}, {Key: be16(90), IntervalEnd: true}}},
				"i": hashSet(1, []byte{6}, []byte{17}),
				"n": hashSet(16, append([]byte("eth0"), make([]byte, 12)...)),
			},
			Chains: []nftChain{
				baseChain("b", 0, fuzzExprs(base), fuzzExprs(c1)),
				{Name: "c1", Rules: rules(fuzzExprs(c1), fuzzExprs(c2))},
				{Name: "c2", Rules: rules(fuzzExprs(c2), fuzzExprs(base))},
			},
		}}}
		n := translateNft(rs, testIfname)
		for _, fam := range [][]NftChain{n.V4, n.V6} {
			for _, ch := range fam {
				for i, r := range ch.Rules {
					if r.Verdict == VerdictGoto && (r.Next <= i || r.Next > len(ch.Rules)) {
						t.Fatalf("%s rule %d: goto %d is not forward within %d rules", ch.Name, i, r.Next, len(ch.Rules))
					}
				}
			}
		}
		m := Merge(nil, nil, Tables{}, n)
		c := Compile(m.V4, m.V6, testIfaces)
		for _, p := range []Packet{
			{Src: v4("1.2.3.4"), Dst: v4("10.0.0.1"), Proto: 6, DstPort: 80, Ifindex: 2},
			{IPv6: true, Src: v6("2001:db8::1"), Dst: v6("2001:db8::2"), Proto: 17, DstPort: 85, Ifindex: 1},
		} {
			c.Mark(&p)
		}
	})
}

// loopRuleset has two regular chains that jump to each other and to
// themselves, two rules each: a ruleset the kernel refuses
// (nf_tables_check_loops) that the translator must still survive.
// Inlined to the 16-jump limit it doubled per level and filled the
// 20000-rule cap; FuzzNftTranslate spent hundreds of milliseconds on such
// inputs.
func loopRuleset() *nftRuleset {
	return &nftRuleset{Tables: []nftTable{{
		Family: nftables.TableFamilyINet, Name: "f",
		Chains: []nftChain{
			baseChain("b", 0, cat(ldMeta(expr.MetaKeyL4PROTO), eq(6), verdict(expr.VerdictJump, "c1")), setMark(7)),
			{Name: "c1", Rules: rules(cat(ldMeta(expr.MetaKeyL4PROTO), eq(6), ldTh(2), eq(be16(80)...), verdict(expr.VerdictJump, "c1")), []expr.Any{verdict(expr.VerdictJump, "c2")})},
			{Name: "c2", Rules: rules([]expr.Any{verdict(expr.VerdictJump, "c1")}, []expr.Any{verdict(expr.VerdictGoto, "c2")})},
		},
	}}}
}

func TestNftJumpLoop(t *testing.T) {
	n := translateNft(loopRuleset(), testIfname)
	ch := n.V4[0]
	var got []string
	for _, u := range ch.Unsupported {
		got = append(got, fmt.Sprintf("%s handle %d: %s", u.Nft, u.Line, u.Reason))
	}
	want := []string{
		`inet f c1 handle 2: jump loop through chain "c1"`,
		`inet f c2 handle 2: jump loop through chain "c1"`,
		`inet f c2 handle 3: jump loop through chain "c2"`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("unsupported:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// What is left: b's jump into c1, c1's jump into c2 and the returns
	// of both, the mark; nothing unrolled.
	if len(ch.Rules) > 20 {
		t.Errorf("%d rules after inlining; a loop must not be unrolled", len(ch.Rules))
	}
	// The mark after the jump still applies.
	c, _ := compileNft(t, loopRuleset(), Tables{})
	p := Packet{Src: v4("1.2.3.4"), Dst: v4("10.0.0.1"), Proto: 6, DstPort: 80, Ifindex: 2}
	if got := c.Mark(&p); got != 7 {
		t.Errorf("mark %d, want 7", got)
	}
}

// BenchmarkNftTranslateLoop is the cost of a ruleset with jump loops
// (reported, not unrolled).
func BenchmarkNftTranslateLoop(b *testing.B) {
	rs := loopRuleset()
	b.ReportAllocs()
	for b.Loop() {
		translateNft(rs, testIfname)
	}
}

func TestNftSetPrefixes(t *testing.T) {
	a := netip.MustParseAddr
	if p := setPrefixes(a("10.0.1.200"), a("10.0.1.201"), 100); fmt.Sprint(p) != "[10.0.1.200/32 10.0.1.201/32]" {
		t.Errorf("small range: %v", p)
	}
	if p := setPrefixes(a("10.0.1.0"), a("10.0.1.255"), 100); fmt.Sprint(p) != "[10.0.1.0/24]" {
		t.Errorf("large range: %v", p)
	}
}
