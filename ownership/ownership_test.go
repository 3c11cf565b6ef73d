package ownership_test

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/internal/fuzzwatch"
	"github.com/uvs-lb/uvs/ownership"
	"github.com/uvs-lb/uvs/spec"
)

func fixture(t testing.TB) *ownership.Set {
	t.Helper()
	s, err := ownership.Compute(fixtureInput())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCompute(t *testing.T) {
	s := fixture(t)
	tcp, udp, sctp := spec.ProtoTCP, spec.ProtoUDP, spec.ProtoSCTP
	ep := func(addr string, p spec.Proto, port uint16) ownership.Endpoint {
		return ownership.Endpoint{Addr: a(addr), Proto: p, Port: port}
	}
	rng := func(addr string, p spec.Proto) ownership.PortRange {
		return ownership.PortRange{Addr: a(addr), Proto: p, First: lportMin, Last: lportMax}
	}
	addrs := func(ss ...string) []netip.Addr {
		var out []netip.Addr
		for _, x := range ss {
			out = append(out, a(x))
		}
		return out
	}
	want := &ownership.Set{
		Services: []ownership.Endpoint{
			ep(vip4, tcp, 80), ep(vip4, udp, 53), ep(vip4any, tcp, 0), ep(vip4sctp, sctp, 9000), ep(vip4udp0, udp, 0),
			ep(mark4, tcp, 8000), ep(mark4, tcp, 8001),
			ep(mark4any, tcp, 0), ep(mark4any, udp, 0), ep(mark4any, sctp, 0),
			ep(vip4fn, tcp, 80), ep(vip4fn2, tcp, 80), ep(vip4loc, tcp, 443), ep(vip4tun, tcp, 80),
			ep(vip6, tcp, 80), ep(vip6any, udp, 0), ep(mark6, udp, 5000), ep(vip6fn, tcp, 443),
		},
		NATReplies: []ownership.Endpoint{
			ep(rs4, tcp, 8080), ep(rs4, tcp, 8443), ep(rs4, udp, 5353), ep(rs4, sctp, 9000), ep(rs4b, tcp, 8000), ep(rs4b, tcp, 8001),
			ep(rs6, tcp, 8080),
			// Real servers of port-0 NAT services, and of a MARK
			// target with no port: every source port.
			ep(rs4, udp, 0), ep(rs4b, spec.ProtoIP, 0),
		},
		LocalRanges: []ownership.PortRange{
			rng(lip4, tcp), rng(lip4, udp), rng(lip4, sctp),
			rng(dir4, tcp), rng(dir4, udp), rng(dir4, sctp),
			rng(dir6, tcp), rng(dir6, udp), rng(dir6, sctp),
			rng(lip6, tcp), rng(lip6, udp), rng(lip6, sctp),
		},
		VIPs:       addrs(vip4, vip4any, vip4sctp, vip4udp0, mark4, mark4any, vip4fn, vip4fn2, vip4loc, vip4tun, vip6, vip6any, mark6, vip6fn),
		Neighbours: addrs(vip4, vip4any, vip4sctp, vip4udp0, mark4, mark4any, vip4fn, vip4fn2, vip4tun, vip6, vip6any, mark6, vip6fn),
		Local:      addrs("127.0.0.1", vip4loc, dir4, "::1", dir6),
		// The IPv4 TUN real servers; rs6 has an IPv6 outer header.
		Tunnels: []ownership.Tunnel{
			{Addr: a(rs4t), Proto: header.ProtoIPIP}, {Addr: a(rs4g), Proto: header.ProtoGRE},
			{Addr: a(rs4u), Proto: header.ProtoUDP, Port: gueTunPort},
		},
	}
	want, err := want.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	if !s.Equal(want) {
		t.Errorf("Compute:\n got %+v\nwant %+v", s, want)
	}
	// Pure: the same input gives an equal Set, whatever the input order.
	in := fixtureInput()
	slices.Reverse(in.Services)
	slices.Reverse(in.Marks)
	slices.Reverse(in.Host)
	again, err := ownership.Compute(in)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Equal(s) {
		t.Errorf("Compute depends on the input order:\n%+v\n%+v", again, s)
	}
	if _, err := ownership.Compute(ownership.Input{Services: in.Services, LocalPortMin: 5, LocalPortMax: 3}); err == nil ||
		!strings.Contains(err.Error(), "local port range 5-3") {
		t.Errorf("reversed local port range: %v", err)
	}
}

func TestNormalize(t *testing.T) {
	v4 := a("10.0.0.1")
	s := &ownership.Set{
		Services:    []ownership.Endpoint{{a("::ffff:10.0.0.1"), spec.ProtoTCP, 80}, {v4, spec.ProtoIP, 80}, {a("fe80::1%eth0"), spec.ProtoUDP, 0}},
		LocalRanges: []ownership.PortRange{{v4, spec.ProtoTCP, 100, 200}, {v4, spec.ProtoTCP, 201, 300}, {v4, spec.ProtoTCP, 150, 160}, {v4, spec.ProtoTCP, 400, 500}},
		VIPs:        []netip.Addr{a("::ffff:10.0.0.1"), v4},
		Tunnels:     []ownership.Tunnel{{v4, header.ProtoUDP, 6080}, {a("::ffff:10.0.0.1"), header.ProtoIPIP, 0}, {v4, header.ProtoIPIP, 0}},
	}
	n, err := s.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	want := &ownership.Set{
		Services:    []ownership.Endpoint{{v4, spec.ProtoTCP, 80}, {v4, spec.ProtoUDP, 80}, {v4, spec.ProtoSCTP, 80}, {a("fe80::1"), spec.ProtoUDP, 0}},
		LocalRanges: []ownership.PortRange{{v4, spec.ProtoTCP, 100, 300}, {v4, spec.ProtoTCP, 400, 500}},
		VIPs:        []netip.Addr{v4},
		Tunnels:     []ownership.Tunnel{{v4, header.ProtoIPIP, 0}, {v4, header.ProtoUDP, 6080}},
	}
	if !n.Equal(want) {
		t.Errorf("Normalize:\n got %+v\nwant %+v", n, want)
	}
	if again, err := n.Normalize(); err != nil || !again.Equal(n) {
		t.Errorf("Normalize is not idempotent: %+v, %v", again, err)
	}
	if e, err := (*ownership.Set)(nil).Normalize(); err != nil || !e.Equal(&ownership.Set{}) {
		t.Errorf("nil Set: %+v, %v", e, err)
	}
	for _, c := range []struct {
		s    ownership.Set
		want string
	}{
		{ownership.Set{VIPs: []netip.Addr{{}}}, "ownership: VIP #0: invalid address"},
		{ownership.Set{Services: []ownership.Endpoint{{v4, 1, 80}}}, "ownership: service 10.0.0.1:80: unsupported protocol 1"},
		{ownership.Set{NATReplies: []ownership.Endpoint{{v4, 1, 0}}}, "ownership: nat reply 10.0.0.1:0: unsupported protocol 1"},
		{ownership.Set{LocalRanges: []ownership.PortRange{{v4, spec.ProtoTCP, 5, 3}}}, "ownership: local range 10.0.0.1: ports 5-3"},
		{ownership.Set{LocalRanges: []ownership.PortRange{{Proto: spec.ProtoTCP}}}, "ownership: local range #0: invalid address"},
		{ownership.Set{Local: []netip.Addr{v4, {}}}, "ownership: local address #1: invalid address"},
		{ownership.Set{Tunnels: []ownership.Tunnel{{Proto: header.ProtoIPIP}}}, "ownership: tunnel #0: invalid address"},
		{ownership.Set{Tunnels: []ownership.Tunnel{{a("2001:db8::1"), header.ProtoIPIP, 0}}}, "ownership: tunnel 2001:db8::1: not an IPv4 address"},
		{ownership.Set{Tunnels: []ownership.Tunnel{{v4, header.ProtoTCP, 0}}}, "ownership: tunnel 10.0.0.1: protocol 6 is not IPIP, GRE or GUE (UDP)"},
		{ownership.Set{Tunnels: []ownership.Tunnel{{v4, header.ProtoUDP, 0}}}, "ownership: tunnel 10.0.0.1: GUE without a port"},
		{ownership.Set{Tunnels: []ownership.Tunnel{{v4, header.ProtoGRE, 5}}}, "ownership: tunnel 10.0.0.1: port 5 for protocol 47 (only GUE has one)"},
	} {
		if _, err := c.s.Normalize(); err == nil || err.Error() != c.want {
			t.Errorf("%+v: error %v, want %q", c.s, err, c.want)
		}
	}
}

// FuzzNormalizeRanges checks that merging local ranges keeps exactly the
// same ports and leaves no two ranges of one address and protocol
// overlapping or touching (an nftables interval set rejects overlaps).
func FuzzNormalizeRanges(f *testing.F) {
	f.Add([]byte{0, 6, 0, 100, 0, 200, 0, 6, 0, 150, 1, 44})
	f.Add([]byte{1, 17, 255, 255, 255, 255, 1, 17, 0, 0, 0, 1})
	addrs := [2]netip.Addr{a("198.18.0.1"), a("2001:db8::1")}
	protos := [2]spec.Proto{spec.ProtoTCP, spec.ProtoUDP}
	f.Fuzz(func(t *testing.T, b []byte) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("%d bytes %.200q", len(b), b) })()
		var in ownership.Set
		for ; len(b) >= 6 && len(in.LocalRanges) < 16; b = b[6:] {
			lo, hi := uint16(b[2])<<8|uint16(b[3]), uint16(b[4])<<8|uint16(b[5])
			if lo > hi {
				lo, hi = hi, lo
			}
			in.LocalRanges = append(in.LocalRanges, ownership.PortRange{Addr: addrs[b[0]&1], Proto: protos[b[1]&1], First: lo, Last: hi})
		}
		out, err := in.Normalize()
		if err != nil {
			t.Fatal(err)
		}
		covered := func(rs []ownership.PortRange, a netip.Addr, p spec.Proto, port uint16) bool {
			return slices.ContainsFunc(rs, func(r ownership.PortRange) bool {
				return r.Addr == a && r.Proto == p && r.First <= port && port <= r.Last
			})
		}
		for i := 1; i < len(out.LocalRanges); i++ {
			p, c := out.LocalRanges[i-1], out.LocalRanges[i]
			if p.Addr == c.Addr && p.Proto == c.Proto && uint32(c.First) <= uint32(p.Last)+1 {
				t.Fatalf("ranges %v and %v overlap or touch", p, c)
			}
		}
		check := func(a netip.Addr, p spec.Proto, port int) {
			if port >= 0 && port <= 0xffff && covered(in.LocalRanges, a, p, uint16(port)) != covered(out.LocalRanges, a, p, uint16(port)) {
				t.Fatalf("port %d of %s/%s: coverage changed", port, a, p)
			}
		}
		for _, r := range in.LocalRanges { // every boundary, then a sample of the rest
			for _, port := range []int{int(r.First) - 1, int(r.First), int(r.Last), int(r.Last) + 1} {
				check(r.Addr, r.Proto, port)
			}
		}
		for _, a := range addrs {
			for _, p := range protos {
				for port := 0; port <= 0xffff; port += 97 {
					check(a, p, port)
				}
			}
		}
	})
}

// TestClassify checks the reference classifier on the hand-built table.
func TestClassify(t *testing.T) {
	s := fixture(t)
	for _, c := range cases() {
		if got := s.Classify(c.frame); got != c.want {
			t.Errorf("%s: %v, want %v\n%s", c.name, got, c.want, describe(c.frame))
		}
		deep := s.ClassifyUnlimited(c.frame) != c.want
		if deep != c.deep {
			t.Errorf("%s: nftables view %v (differs: %v, want %v)", c.name, s.ClassifyUnlimited(c.frame), deep, c.deep)
		}
	}
}

// TestClassifyUnnormalized checks that a Set written by hand (protocol 0,
// IPv4-mapped addresses, unsorted) classifies as its normalized form.
func TestClassifyUnnormalized(t *testing.T) {
	raw := &ownership.Set{
		Services:    []ownership.Endpoint{{a("::ffff:" + vip4), spec.ProtoIP, 80}, {a(vip6), spec.ProtoTCP, 80}},
		NATReplies:  []ownership.Endpoint{{a(rs4), spec.ProtoIP, 8080}},
		LocalRanges: []ownership.PortRange{{a(lip4), spec.ProtoIP, lportMin, lportMax}},
		VIPs:        []netip.Addr{a("::ffff:" + vip4)},
		Neighbours:  []netip.Addr{a(vip6 + "%eth0")},
		Local:       []netip.Addr{a("::ffff:" + dir4)},
		Tunnels:     []ownership.Tunnel{{a("::ffff:" + rs4g), header.ProtoGRE, 0}, {a(rs4u), header.ProtoUDP, gueTunPort}},
	}
	norm, err := raw.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	var differ int
	for _, c := range cases() {
		if g, w := raw.Classify(c.frame), norm.Classify(c.frame); g != w {
			t.Errorf("%s: %v, normalized %v", c.name, g, w)
		}
		if norm.Classify(c.frame) != ownership.Kernel {
			differ++
		}
	}
	if differ == 0 {
		t.Fatal("the hand-written Set owns none of the table's frames: the test proves nothing")
	}
}
