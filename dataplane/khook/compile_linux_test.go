package khook

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/ownership"
	"github.com/uvs-lb/uvs/spec"
)

// These run without root: compiling a Spec that names its interfaces needs no
// netlink.

func TestCompileRejectsBadSpecs(t *testing.T) {
	a := netip.MustParseAddr("198.18.0.1")
	for _, tc := range []struct {
		name string
		ifc  Interface
		want string
	}{
		{"no name", Interface{}, "bad name"},
		{"long name", Interface{Name: "abcdefghijklmnop"}, "bad name"},
		{"invalid addr", Interface{Name: "d0", Owned: &ownership.Set{Services: []ownership.Endpoint{{Proto: spec.ProtoTCP, Port: 1}}}},
			"interface d0: ownership: service #0: invalid address"},
		{"bad proto", Interface{Name: "d0", Owned: &ownership.Set{Services: []ownership.Endpoint{{Addr: a, Proto: 1, Port: 1}}}},
			"interface d0: ownership: service 198.18.0.1:1: unsupported protocol 1"},
		{"nat bad proto", Interface{Name: "d0", Owned: &ownership.Set{NATReplies: []ownership.Endpoint{{Addr: a, Proto: 1}}}},
			"interface d0: ownership: nat reply 198.18.0.1:0: unsupported protocol 1"},
		{"reversed range", Interface{Name: "d0", Owned: &ownership.Set{LocalRanges: []ownership.PortRange{{Addr: a, Proto: spec.ProtoTCP, First: 9, Last: 8}}}},
			"interface d0: ownership: local range 198.18.0.1: ports 9-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Options{}).compile(Spec{Interfaces: []Interface{tc.ifc}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	_, err := New(Options{}).compile(Spec{Interfaces: []Interface{{Name: "d0"}, {Name: "d0"}}})
	if err == nil {
		t.Fatal("duplicate interface accepted")
	}
}

func TestCompileElements(t *testing.T) {
	v4 := netip.MustParseAddr("198.18.0.10")
	v6 := netip.MustParseAddr("2001:db8::10")
	mapped := netip.MustParseAddr("::ffff:198.18.0.10")
	rs := netip.MustParseAddr("198.18.0.20")
	tun := netip.MustParseAddr("198.18.0.30")
	p, err := New(Options{}).compile(Spec{Interfaces: []Interface{{Name: "d0"}}, Owned: &ownership.Set{
		Services: []ownership.Endpoint{
			{Addr: v4, Proto: spec.ProtoTCP, Port: 80},
			{Addr: mapped, Proto: spec.ProtoTCP, Port: 80}, // same VIP once unmapped
			{Addr: v6, Proto: spec.ProtoIP, Port: 0},
		},
		NATReplies: []ownership.Endpoint{{Addr: rs, Proto: spec.ProtoUDP, Port: 53}, {Addr: rs, Proto: spec.ProtoTCP, Port: 0}},
		LocalRanges: []ownership.PortRange{
			{Addr: v4, Proto: spec.ProtoTCP, First: 100, Last: 200},
			{Addr: v4, Proto: spec.ProtoTCP, First: 150, Last: 300},
			{Addr: v4, Proto: spec.ProtoTCP, First: 301, Last: 310},
			{Addr: v4, Proto: spec.ProtoTCP, First: 400, Last: 500},
		},
		VIPs:    []netip.Addr{v4, v6},
		Local:   []netip.Addr{rs, v6},
		Tunnels: []ownership.Tunnel{{Addr: tun, Proto: header.ProtoUDP, Port: 6080}, {Addr: tun, Proto: header.ProtoIPIP}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]elemView{}
	for _, s := range p.sets {
		for _, e := range s.elems {
			got[s.set.Name] = append(got[s.set.Name], elemView{e.Key, e.KeyEnd})
		}
	}
	ip, tcp := []byte{198, 18, 0, 10}, []byte{6, 0, 0, 0}
	want := map[string][]elemView{
		"svc4_d0": {{Key: []byte{198, 18, 0, 10, 6, 0, 0, 0, 0, 80, 0, 0}}},
		"nat4_d0": {{Key: []byte{198, 18, 0, 20, 17, 0, 0, 0, 0, 53, 0, 0}}},
		"vip4_d0": {{Key: ip}},
		"vip6_d0": {{Key: v6.AsSlice()}},
		"loc4_d0": {{Key: []byte{198, 18, 0, 20}}},
		"loc6_d0": {{Key: v6.AsSlice()}},
		// ICMP errors about tunnelled packets: a director address
		// twice (IPv4 only), the TUN real servers with their outer
		// protocol and GUE port.
		"slf4_d0": {{Key: []byte{198, 18, 0, 20, 198, 18, 0, 20}}},
		"tun4_d0": {{Key: []byte{198, 18, 0, 30, 4, 0, 0, 0, 0, 0, 0, 0}}, {Key: []byte{198, 18, 0, 30, 17, 0, 0, 0, 0x17, 0xc0, 0, 0}}},
		"lip4_d0": {
			{Key: []byte{198, 18, 0, 10, 6, 0, 0, 0, 0, 100, 0, 0}, End: []byte{198, 18, 0, 10, 6, 0, 0, 0, 1, 54, 0, 0}},
			{Key: []byte{198, 18, 0, 10, 6, 0, 0, 0, 1, 144, 0, 0}, End: []byte{198, 18, 0, 10, 6, 0, 0, 0, 1, 244, 0, 0}},
		},
		// NAT replies from every port: the real servers of port-0 NAT
		// services.
		"naa4_d0": {{Key: []byte{198, 18, 0, 20, 6, 0, 0, 0}}},
		// Fragments: by destination (services, local ranges) and by
		// source (NAT replies) with the protocol, once each.
		"fds4_d0": {{Key: slices.Concat(ip, tcp)}},
		"fsr4_d0": {{Key: []byte{198, 18, 0, 20, 6, 0, 0, 0}}, {Key: []byte{198, 18, 0, 20, 17, 0, 0, 0}}},
		"fic4_d0": {
			{Key: slices.Concat(ip, ip, tcp, []byte{0, 100, 0, 0}), End: slices.Concat(ip, ip, tcp, []byte{1, 54, 0, 0})},
			{Key: slices.Concat(ip, ip, tcp, []byte{1, 144, 0, 0}), End: slices.Concat(ip, ip, tcp, []byte{1, 244, 0, 0})},
		},
	}
	for _, name := range []string{"any6_d0", "fds6_d0"} {
		any6 := got[name]
		if len(any6) != 3 {
			t.Fatalf("%s: %d elements, want TCP, UDP and SCTP", name, len(any6))
		}
		for i, pr := range []byte{6, 17, 132} {
			if !bytes.Equal(any6[i].Key, append(v6.AsSlice(), pr, 0, 0, 0)) {
				t.Errorf("%s[%d] = %x", name, i, any6[i].Key)
			}
		}
		delete(got, name)
	}
	if len(got) != len(want) {
		t.Errorf("sets with elements: %v", got)
	}
	for name, w := range want {
		g := got[name]
		if len(g) != len(w) {
			t.Errorf("%s: %d elements, want %d", name, len(g), len(w))
			continue
		}
		for i := range w {
			if !bytes.Equal(g[i].Key, w[i].Key) || !bytes.Equal(g[i].End, w[i].End) {
				t.Errorf("%s[%d] = %x-%x, want %x-%x", name, i, g[i].Key, g[i].End, w[i].Key, w[i].End)
			}
		}
	}
	if len(p.sets) != 2*numKinds {
		t.Errorf("%d sets, want %d per family", len(p.sets), numKinds)
	}
	// An interface's own Set wins over the Spec's.
	p, err = New(Options{}).compile(Spec{Interfaces: []Interface{{Name: "d0"}, {Name: "d1", Owned: &ownership.Set{VIPs: []netip.Addr{v6}}}},
		Owned: &ownership.Set{VIPs: []netip.Addr{v4}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range p.sets {
		n := len(s.elems)
		want := 0
		if s.set.Name == "vip4_d0" || s.set.Name == "vip6_d1" {
			want = 1
		}
		if n != want {
			t.Errorf("%s: %d elements, want %d", s.set.Name, n, want)
		}
	}
}

// elemView is a set element's key and interval end.
type elemView struct{ Key, End []byte }
