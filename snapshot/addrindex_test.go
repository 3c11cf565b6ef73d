package snapshot_test

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/uvs-lb/uvs/sched"
	"github.com/uvs-lb/uvs/snapshot"
	"github.com/uvs-lb/uvs/spec"
)

func testService(t *testing.T, id uint32, key spec.ServiceKey, pool []netip.Addr, dests ...spec.Dest) *snapshot.Service {
	t.Helper()
	cfg := spec.Service{Key: key, Persistent: key.Port == 0 && !key.IsFWMark(), LocalAddrs: pool}
	s, err := sched.NewService(cfg, sched.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dests {
		if d.Weight == 0 {
			d.Weight = 1
		}
		if _, err := s.AddDest(d); err != nil {
			t.Fatalf("add %v: %v", d.AddrPort(), err)
		}
	}
	return &snapshot.Service{ID: id, Key: key, Sched: s, LocalAddrs: pool}
}

var (
	a   = netip.MustParseAddr
	a16 = func(s string) [16]byte { return netip.MustParseAddr(s).As16() }
)

// TestAddrIndex: the index answers ownership's address rules as
// ownership.Compute builds them: NAT real servers by source port (every
// port for a port-0 service, none for a port-0 real server behind a
// service port), by address for fragments, VIPs by protocol, pools, the
// FULLNAT real servers whose local address the route chooses; families
// apart; rebuilt for another snapshot.
func TestAddrIndex(t *testing.T) {
	tcp, udp := spec.ProtoTCP, spec.ProtoUDP
	s := snapshot.New(1, []*snapshot.Service{
		testService(t, 1, spec.ServiceKey{Proto: tcp, Addr: a("10.0.1.100"), Port: 0}, nil,
			spec.Dest{Addr: a("10.0.2.11"), Fwd: spec.FwdMasq}),
		testService(t, 2, spec.ServiceKey{Proto: udp, Addr: a("10.0.1.100"), Port: 53}, nil,
			spec.Dest{Addr: a("10.0.2.12"), Port: 5353, Fwd: spec.FwdMasq},
			spec.Dest{Addr: a("10.0.2.13"), Port: 0, Fwd: spec.FwdMasq},
			spec.Dest{Addr: a("10.0.2.14"), Port: 53, Fwd: spec.FwdRoute}),
		testService(t, 3, spec.ServiceKey{Proto: tcp, Addr: a("10.0.1.101"), Port: 80}, nil,
			spec.Dest{Addr: a("10.0.2.21"), Port: 80, Fwd: spec.FwdFullNAT},
			spec.Dest{Addr: a("10.0.2.22"), Port: 80, Fwd: spec.FwdFullNAT}),
		testService(t, 4, spec.ServiceKey{Proto: tcp, Addr: a("10.0.1.102"), Port: 80}, []netip.Addr{a("10.0.3.1")},
			spec.Dest{Addr: a("10.0.2.21"), Port: 80, Fwd: spec.FwdFullNAT}),
		testService(t, 5, spec.ServiceKey{Proto: tcp, Addr: a("10.0.1.103"), Port: 80}, nil,
			spec.Dest{Addr: a("10.0.2.21"), Port: 80, Fwd: spec.FwdFullNAT}),
		testService(t, 6, spec.ServiceKey{FWMark: 7, Proto: tcp}, nil,
			spec.Dest{Addr: a("10.0.2.31"), Port: 80, Fwd: spec.FwdMasq}),
	})
	var x snapshot.AddrIndex
	if x.NATReply(a16("10.0.2.11"), false, tcp, 1) || x.For() != nil {
		t.Fatal("an index never built answers")
	}
	x.Build(s)
	if x.For() != s {
		t.Fatal("For is not the snapshot built")
	}
	for _, c := range []struct {
		addr  string
		v6    bool
		proto spec.Proto
		port  uint16
		reply bool // NATReply
		real  bool // NATReal
	}{
		{"10.0.2.11", false, tcp, 1, true, true}, // port-0 service: any port
		{"10.0.2.11", false, tcp, 65535, true, true},
		{"10.0.2.11", false, udp, 1, false, false}, // not of a UDP service
		{"10.0.2.11", true, tcp, 1, false, false},  // an IPv6 packet's mapped address
		{"10.0.2.12", false, udp, 5353, true, true},
		{"10.0.2.12", false, udp, 53, false, true},
		{"10.0.2.13", false, udp, 53, false, false}, // port 0 behind port 53: not a NAT reply entry
		{"10.0.2.14", false, udp, 53, false, false}, // DR
		{"10.0.2.31", false, tcp, 80, false, false}, // firewall-mark service: not indexed
	} {
		if got := x.NATReply(a16(c.addr), c.v6, c.proto, c.port); got != c.reply {
			t.Errorf("NATReply(%s v6=%v %v %d) = %v", c.addr, c.v6, c.proto, c.port, got)
		}
		if got := x.NATReal(a16(c.addr), c.v6, c.proto); got != c.real {
			t.Errorf("NATReal(%s v6=%v %v) = %v", c.addr, c.v6, c.proto, got)
		}
	}
	if !x.ServiceAddr(a16("10.0.1.100"), false, udp) || !x.ServiceAddr(a16("10.0.1.100"), false, tcp) ||
		x.ServiceAddr(a16("10.0.1.101"), false, udp) || x.ServiceAddr(a16("10.0.1.100"), true, tcp) {
		t.Error("ServiceAddr")
	}
	if !x.Pool(a16("10.0.3.1"), false) || x.Pool(a16("10.0.3.1"), true) || x.Pool(a16("10.0.1.100"), false) {
		t.Error("Pool")
	}
	got := slices.Clone(x.RoutedReals())
	slices.SortFunc(got, netip.Addr.Compare)
	if !slices.Equal(got, []netip.Addr{a("10.0.2.21"), a("10.0.2.22")}) {
		t.Errorf("RoutedReals = %v, want 10.0.2.21 and 10.0.2.22 once each", got)
	}

	// Another snapshot replaces it all.
	s2 := snapshot.New(2, []*snapshot.Service{
		testService(t, 1, spec.ServiceKey{Proto: udp, Addr: a("2001:db8::100"), Port: 0}, nil,
			spec.Dest{Addr: a("2001:db8:2::11"), Fwd: spec.FwdMasq}),
	})
	x.Build(s2)
	if x.NATReply(a16("10.0.2.11"), false, tcp, 1) || x.Pool(a16("10.0.3.1"), false) || len(x.RoutedReals()) != 0 ||
		!x.NATReply(a16("2001:db8:2::11"), true, udp, 9) || !x.ServiceAddr(a16("2001:db8::100"), true, udp) {
		t.Error("rebuilt index holds the old snapshot's facts or lacks the new one's")
	}
	allocs := testing.AllocsPerRun(100, func() {
		x.NATReply(a16("2001:db8:2::11"), true, udp, 9)
		x.NATReal(a16("2001:db8:2::11"), true, udp)
		x.ServiceAddr(a16("2001:db8::100"), true, udp)
		x.Pool(a16("2001:db8::100"), true)
	})
	if allocs != 0 {
		t.Errorf("lookups allocate %.1f times", allocs)
	}
}
