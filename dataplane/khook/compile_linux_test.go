package khook

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

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
		{"invalid addr", Interface{Name: "d0", Services: []Endpoint{{Proto: spec.ProtoTCP, Port: 1}}}, "invalid address"},
		{"bad proto", Interface{Name: "d0", Services: []Endpoint{{Addr: a, Proto: 1, Port: 1}}}, "unsupported protocol"},
		{"nat port 0", Interface{Name: "d0", NATReplies: []Endpoint{{Addr: a, Proto: spec.ProtoTCP}}}, "port 0"},
		{"reversed range", Interface{Name: "d0", LocalRanges: []PortRange{{Addr: a, Proto: spec.ProtoTCP, First: 9, Last: 8}}}, "ports 9-8"},
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
	p, err := New(Options{}).compile(Spec{Interfaces: []Interface{{
		Name: "d0",
		Services: []Endpoint{
			{Addr: v4, Proto: spec.ProtoTCP, Port: 80},
			{Addr: mapped, Proto: spec.ProtoTCP, Port: 80}, // same VIP once unmapped
			{Addr: v6, Proto: spec.ProtoIP, Port: 0},
		},
		LocalRanges: []PortRange{
			{Addr: v4, Proto: spec.ProtoTCP, First: 100, Last: 200},
			{Addr: v4, Proto: spec.ProtoTCP, First: 150, Last: 300},
			{Addr: v4, Proto: spec.ProtoTCP, First: 301, Last: 310},
			{Addr: v4, Proto: spec.ProtoTCP, First: 400, Last: 500},
		},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]elemView{}
	for _, s := range p.sets {
		for _, e := range s.elems {
			got[s.set.Name] = append(got[s.set.Name], elemView{e.Key, e.KeyEnd})
		}
	}
	want := map[string][]elemView{
		"svc4_d0": {{Key: []byte{198, 18, 0, 10, 6, 0, 0, 0, 0, 80, 0, 0}}},
		"vip4_d0": {{Key: []byte{198, 18, 0, 10}}},
		"vip6_d0": {{Key: v6.AsSlice()}},
		"lip4_d0": {
			{Key: []byte{198, 18, 0, 10, 6, 0, 0, 0, 0, 100, 0, 0}, End: []byte{198, 18, 0, 10, 6, 0, 0, 0, 1, 54, 0, 0}},
			{Key: []byte{198, 18, 0, 10, 6, 0, 0, 0, 1, 144, 0, 0}, End: []byte{198, 18, 0, 10, 6, 0, 0, 0, 1, 244, 0, 0}},
		},
	}
	any6 := got["any6_d0"]
	if len(any6) != 3 {
		t.Fatalf("any6: %d elements, want TCP, UDP and SCTP", len(any6))
	}
	for i, pr := range []byte{6, 17, 132} {
		if !bytes.Equal(any6[i].Key, append(v6.AsSlice(), pr, 0, 0, 0)) {
			t.Errorf("any6[%d] = %x", i, any6[i].Key)
		}
	}
	delete(got, "any6_d0")
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
	if len(p.sets) != 10 {
		t.Errorf("%d sets, want 5 per family", len(p.sets))
	}
}

// elemView is a set element's key and interval end.
type elemView struct{ Key, End []byte }
