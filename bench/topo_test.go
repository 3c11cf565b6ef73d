package bench

import (
	"net/netip"
	"strings"
	"testing"
)

// Every address of the topology is distinct and none lies in the
// connection-table fill sources (the director routes those to the client),
// and the router's links are separate subnets from the director's.
func TestTopoAddresses(t *testing.T) {
	topo := NewTopo("x-", 4)
	fill := netip.PrefixFrom(FillBase, 18)
	seen := map[netip.Addr]string{}
	add := func(a netip.Addr, what string) {
		t.Helper()
		if prev, ok := seen[a]; ok {
			t.Errorf("%s and %s share %s", prev, what, a)
		}
		seen[a] = what
		if fill.Contains(a) {
			t.Errorf("%s %s is inside the fill sources %s", what, a, fill)
		}
		if a == VIP {
			t.Errorf("%s is the VIP", what)
		}
	}
	add(ClientAddr, "c0")
	add(DirAddr, "d0")
	add(ClientRtrAddr, "c1")
	add(RtrAddr, "r0")
	subnets := map[netip.Prefix]string{}
	sub := func(a netip.Addr, what string) {
		t.Helper()
		p := netip.PrefixFrom(a, 24).Masked()
		if prev, ok := subnets[p]; ok {
			t.Errorf("%s and %s share the subnet %s", prev, what, p)
		}
		subnets[p] = what
	}
	sub(ClientAddr, "client–director")
	sub(ClientRtrAddr, "client–router")
	for _, b := range topo.Backends {
		add(b.Addr, b.Dev)
		add(b.DirAddr, b.DirDev)
		add(b.UplinkAddr, b.Uplink)
		add(b.RtrAddr, b.RtrDev)
		sub(b.Addr, b.NS+"–director")
		sub(b.UplinkAddr, b.NS+"–router")
		if netip.PrefixFrom(b.UplinkAddr, 24).Masked() != netip.PrefixFrom(b.RtrAddr, 24).Masked() {
			t.Errorf("%s: %s and the router's %s are not on one subnet", b.NS, b.UplinkAddr, b.RtrAddr)
		}
	}
	ns := topo.Namespaces()
	if ns[0] != topo.Cli || ns[len(ns)-1] != topo.Rtr || len(ns) != 3+len(topo.Backends) {
		t.Errorf("namespaces %v: want the client first, the router last", ns)
	}
}

// The rendered results say which reply path each row used: a mark in the
// table and the words in the candidate list.
func TestRenderReplyPath(t *testing.T) {
	r := fakeReport()
	for i := range r.Rows {
		switch r.Rows[i].Name {
		case "uvs-nat":
			r.Rows[i].Reply = ReplyViaRouter
		case "kernel-forward":
			r.Rows[i].Reply = ReplyViaDirector
		}
	}
	md := r.Markdown("")
	for _, want := range []string{
		"| uvs-nat ⁽ᶜ⁾ ⁽ʳ⁾ |",
		"**uvs-nat** — ; " + ReplyPathDesc(ReplyViaRouter),
		"**kernel-forward** — ; " + ReplyPathDesc(ReplyViaDirector),
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	if strings.Contains(md, "| kernel-forward ⁽ʳ⁾") || strings.Contains(md, "**nft-dnat** — ; replies") {
		t.Error("a row without the router path is marked")
	}
	if ReplyPathDesc("") != "" || ReplyPathDesc("bogus") != "" {
		t.Error("an unknown reply path is described")
	}
}
