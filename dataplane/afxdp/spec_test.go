package afxdp

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/ownership"
	"github.com/uvs-lb/uvs/spec"
)

func TestCompile(t *testing.T) {
	a4 := netip.MustParseAddr("10.0.0.1")
	mapped := netip.MustParseAddr("::ffff:10.0.0.2")
	a6 := netip.MustParseAddr("fd00::1%eth0")
	s := &ownership.Set{
		Services:   []ownership.Endpoint{{Addr: a4, Port: 80}, {Addr: mapped, Proto: spec.ProtoTCP}},
		NATReplies: []ownership.Endpoint{{Addr: a6, Proto: spec.ProtoUDP, Port: 53}, {Addr: a6, Proto: spec.ProtoTCP}},
		LocalRanges: []ownership.PortRange{
			{Addr: a4, Proto: spec.ProtoTCP, First: 100, Last: 199}, {Addr: a4, Proto: spec.ProtoTCP, First: 200, Last: 300},
			{Addr: a4, Proto: spec.ProtoTCP, First: 150, Last: 160},
		},
		VIPs:       []netip.Addr{a4, a6},
		Neighbours: []netip.Addr{a4, mapped},
		Local:      []netip.Addr{a6},
		Tunnels:    []ownership.Tunnel{{Addr: mapped, Proto: header.ProtoGRE}, {Addr: a4, Proto: header.ProtoUDP, Port: 6080}},
	}
	tb, err := compile(s)
	if err != nil {
		t.Fatal(err)
	}
	k4 := addrKey(a4.As16())
	k4b := addrKey(netip.MustParseAddr("10.0.0.2").As16())
	k6 := addrKey(netip.MustParseAddr("fd00::1").As16())
	wantAddrs := map[addrKey]uint32{k4: flagVIP | flagNeigh, k4b: flagNeigh, k6: (flagVIP | flagLocal) << flagShift6}
	if len(tb.addrs) != len(wantAddrs) {
		t.Fatalf("addrs %v, want %v", tb.addrs, wantAddrs)
	}
	for k, v := range wantAddrs {
		if tb.addrs[k] != v {
			t.Errorf("addrs[%x] = %b, want %b", k, tb.addrs[k], v)
		}
	}
	wantPorts := map[portKey]uint32{
		makePortKey(k4, 6, kindService, 80):          1,
		makePortKey(k4, 17, kindService, 80):         1,
		makePortKey(k4, 132, kindService, 80):        1,
		makePortKey(k4b, 6, kindService, 0):          1,
		makePortKey(k6, 17, kindNATReply|kindV6, 53): 1,
		makePortKey(k4, 6, kindLocalRange, 0):        100 | 300<<16,
		// Every source port of a real server of a port-0 NAT service.
		makePortKey(k6, 6, kindNATReply|kindV6, 0): 1,
		// Fragments: by destination (services, local ranges) and by
		// source (NAT replies), with the protocol.
		makePortKey(k4, 6, kindFragDst, 0):         1,
		makePortKey(k4, 17, kindFragDst, 0):        1,
		makePortKey(k4, 132, kindFragDst, 0):       1,
		makePortKey(k4b, 6, kindFragDst, 0):        1,
		makePortKey(k6, 17, kindFragSrc|kindV6, 0): 1,
		makePortKey(k6, 6, kindFragSrc|kindV6, 0):  1,
		// TUN real servers: outer protocol, GUE port.
		makePortKey(k4b, 47, kindTunnel, 0):   1,
		makePortKey(k4, 17, kindTunnel, 6080): 1,
	}
	if len(tb.ports) != len(wantPorts) {
		t.Fatalf("ports %v, want %v", tb.ports, wantPorts)
	}
	for k, v := range wantPorts {
		if got, ok := tb.ports[k]; !ok || got != v {
			t.Errorf("ports[%x] = %d (%v), want %d", k, got, ok, v)
		}
	}
	if k := makePortKey(k4, 6, kindService, 0x1234); k[18] != 0x12 || k[19] != 0x34 || k[16] != 6 || k[17] != kindService {
		t.Errorf("port key layout %x", k)
	}
}

func TestCompileErrors(t *testing.T) {
	a := netip.MustParseAddr("10.0.0.1")
	for _, c := range []struct {
		s    ownership.Set
		want string
	}{
		{ownership.Set{VIPs: []netip.Addr{{}}}, "afxdp: ownership: VIP #0: invalid address"},
		{ownership.Set{Services: []ownership.Endpoint{{Addr: a, Proto: 1, Port: 80}}}, "service 10.0.0.1:80: unsupported protocol 1"},
		{ownership.Set{NATReplies: []ownership.Endpoint{{Addr: a, Proto: 1}}}, "nat reply 10.0.0.1:0: unsupported protocol 1"},
		{ownership.Set{LocalRanges: []ownership.PortRange{{Addr: a, Proto: spec.ProtoTCP, First: 9, Last: 3}}}, "local range 10.0.0.1: ports 9-3"},
		{ownership.Set{LocalRanges: []ownership.PortRange{{Addr: a, Proto: spec.ProtoTCP, First: 1, Last: 3}, {Addr: a, Proto: spec.ProtoTCP, First: 5, Last: 9}}},
			"local range 10.0.0.1/TCP: disjoint port ranges 1-3 and 5-9"},
	} {
		_, err := compile(&c.s)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.s, err, c.want)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.FrameSize != DefaultFrameSize || c.Frames != DefaultFrames || c.FillRingSize != DefaultRingSize {
		t.Fatalf("defaults %+v", c)
	}
	if got := (Config{}).MaxFrameLen(); got != DefaultFrameSize-PacketHeadroom {
		t.Fatalf("MaxFrameLen = %d", got)
	}
	for _, bad := range []Config{
		{FrameSize: 3000}, {FrameSize: 1024}, {FillRingSize: 100}, {Frames: 2048, FillRingSize: 2048},
		{Headroom: 2000}, {TxRingSize: 3}, {TxRetries: -1},
	} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	for _, s := range []string{"auto", "native", "generic"} {
		m, err := ParseMode(s)
		if err != nil || m.String() != s {
			t.Errorf("ParseMode(%q) = %v, %v", s, m, err)
		}
	}
	if _, err := ParseMode("offload"); err == nil || !strings.Contains(err.Error(), `"offload"`) {
		t.Errorf("ParseMode(offload): %v", err)
	}
}
