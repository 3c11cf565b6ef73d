package bgpconfig

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/fuzzwatch"
)

func TestParsePeer(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Peer
		err  string
	}{
		{in: "10.0.9.1,as=65000", want: Peer{Addr: netip.MustParseAddr("10.0.9.1"), AS: 65000}},
		{in: "10.0.9.1,as=65000,port=1179,passive,multihop=3,hold=9",
			want: Peer{Addr: netip.MustParseAddr("10.0.9.1"), AS: 65000, Port: 1179, Passive: true, Multihop: 3, HoldTime: 9 * time.Second}},
		{in: "fd00::1,as=1.10", want: Peer{Addr: netip.MustParseAddr("fd00::1"), AS: 65546}},
		{in: "10.0.9.1", err: "as= is required"},
		{in: "10.0.9.1,as=0", err: `as="0"`},
		{in: "10.0.9.1,as=4294967296", err: "AS"},
		{in: "10.0.9.300,as=1", err: "address"},
		{in: "10.0.9.1,as=1,port=0", err: "port"},
		{in: "10.0.9.1,as=1,port=65536", err: "port"},
		{in: "10.0.9.1,as=1,multihop=256", err: "multihop"},
		{in: "10.0.9.1,as=1,hold=2", err: "hold"},
		{in: "10.0.9.1,as=1,passive=1", err: "unknown option"},
		{in: "10.0.9.1,as=1,as=2", err: "twice"},
		{in: "10.0.9.1,as=1,bfd", err: "unknown option"},
		{in: "0.0.0.0,as=1", err: "unicast"},
		{in: "224.0.0.1,as=1", err: "unicast"},
	} {
		p, err := ParsePeer(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParsePeer(%q) = %+v, %v; want an error with %q", tc.in, p, err, tc.err)
		case tc.err == "" && (err != nil || p != tc.want):
			t.Errorf("ParsePeer(%q) = %+v, %v; want %+v", tc.in, p, err, tc.want)
		}
	}
}

func TestParseCommunity(t *testing.T) {
	for in, want := range map[string]uint32{"65001:100": 65001<<16 | 100, "0:0": 0, "65535:65535": 0xffffffff,
		"no-export": 0xffffff01, "graceful-shutdown": 0xffff0000} {
		if got, err := ParseCommunity(in); err != nil || got != want {
			t.Errorf("ParseCommunity(%q) = %#x, %v; want %#x", in, got, err, want)
		}
		if in != "0:0" && in != "65535:65535" {
			if s := FormatCommunity(want); s != in {
				t.Errorf("FormatCommunity(%#x) = %q, want %q", want, s, in)
			}
		}
	}
	for _, in := range []string{"", "65536:1", "1:65536", "1", "a:b", "-1:2", "1:2:3"} {
		if _, err := ParseCommunity(in); err == nil || !strings.Contains(err.Error(), "community") {
			t.Errorf("ParseCommunity(%q): %v, want an error naming the community", in, err)
		}
	}
}

// FuzzParsePeer: any --bgp-peer value either parses into a peer that
// validates and formats back to an equal peer, or is refused.
func FuzzParsePeer(f *testing.F) {
	for _, s := range []string{"10.0.9.1,as=65000", "10.0.9.1,as=65000,port=1179,passive,multihop=3,hold=9",
		"fd00::1,as=1.10", "10.0.9.1,as=0", ",,,", "10.0.9.1,as=1,hold=", "::ffff:10.0.0.1,as=2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("%.200q", s) })()
		p, err := ParsePeer(s)
		if err != nil {
			return
		}
		if err := p.validate(); err != nil {
			t.Fatalf("ParsePeer(%q) = %+v, which does not validate: %v", s, p, err)
		}
		q, err := ParsePeer(p.String())
		if err != nil || q != p {
			t.Fatalf("ParsePeer(%q) = %+v; its String %q parses to %+v, %v", s, p, p.String(), q, err)
		}
	})
}

// FuzzParseCommunity: a community that parses formats back to itself.
func FuzzParseCommunity(f *testing.F) {
	for _, s := range []string{"65001:100", "no-export", "1:2:3", "65536:0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("%.200q", s) })()
		c, err := ParseCommunity(s)
		if err != nil {
			return
		}
		d, err := ParseCommunity(FormatCommunity(c))
		if err != nil || d != c {
			t.Fatalf("ParseCommunity(%q) = %#x; formatted %q parses to %#x, %v", s, c, FormatCommunity(c), d, err)
		}
	})
}
