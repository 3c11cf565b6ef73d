package afpacket

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
)

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 2}

	vip4   = netip.MustParseAddr("198.18.0.10")
	vip6   = netip.MustParseAddr("2001:db8::10")
	rs4    = netip.MustParseAddr("198.19.0.2")
	rs6    = netip.MustParseAddr("2001:db8:1::2")
	local4 = netip.MustParseAddr("198.19.0.100")
	local6 = netip.MustParseAddr("2001:db8:1::100")
	cli4   = netip.MustParseAddr("198.18.1.1")
	cli6   = netip.MustParseAddr("2001:db8:2::1")
	other4 = netip.MustParseAddr("198.18.0.11")
	other6 = netip.MustParseAddr("2001:db8::11")
)

func testSpec() FilterSpec {
	return FilterSpec{
		VIPs:        []netip.Addr{vip4, vip6, netip.MustParseAddr("198.18.0.20")},
		RealServers: []netip.Addr{rs4, rs6, netip.MustParseAddr("::ffff:198.19.0.3")},
		LocalAddrs:  []netip.Addr{local4, local6},
		ARP:         true,
		NDP:         true,
	}
}

// serialize builds a frame with checksums and lengths filled in.
func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return slices.Clone(buf.Bytes())
}

func eth(typ layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: typ}
}

func udp4(t testing.TB, src, dst netip.Addr) []byte {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	u := &layers.UDP{SrcPort: 1234, DstPort: 80}
	_ = u.SetNetworkLayerForChecksum(ip)
	return serialize(t, eth(layers.EthernetTypeIPv4), ip, u, gopacket.Payload("hello"))
}

func tcp6(t testing.TB, src, dst netip.Addr) []byte {
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	tc := &layers.TCP{SrcPort: 1234, DstPort: 80, SYN: true, Window: 1000}
	_ = tc.SetNetworkLayerForChecksum(ip)
	return serialize(t, eth(layers.EthernetTypeIPv6), ip, tc)
}

func icmp4(t testing.TB, src, dst netip.Addr, typ uint8, ihlOptions bool, fragOff uint16) []byte {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: src.AsSlice(), DstIP: dst.AsSlice(), FragOffset: fragOff}
	if ihlOptions {
		ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
	}
	ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0)}
	return serialize(t, eth(layers.EthernetTypeIPv4), ip, ic, gopacket.Payload(make([]byte, 28)))
}

func icmp6(t testing.TB, src, dst netip.Addr, typ uint8) []byte {
	ip := &layers.IPv6{Version: 6, HopLimit: 255, NextHeader: layers.IPProtocolICMPv6, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 0)}
	_ = ic.SetNetworkLayerForChecksum(ip)
	return serialize(t, eth(layers.EthernetTypeIPv6), ip, ic, gopacket.Payload(make([]byte, 24)))
}

func arp(t testing.TB) []byte {
	a := &layers.ARP{
		AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, Operation: layers.ARPRequest,
		SourceHwAddress: macA, SourceProtAddress: cli4.AsSlice(),
		DstHwAddress: make([]byte, 6), DstProtAddress: vip4.AsSlice(),
	}
	return serialize(t, eth(layers.EthernetTypeARP), a)
}

func vlanUDP4(t testing.TB, dst netip.Addr) []byte {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: cli4.AsSlice(), DstIP: dst.AsSlice()}
	u := &layers.UDP{SrcPort: 1234, DstPort: 80}
	_ = u.SetNetworkLayerForChecksum(ip)
	return serialize(t, eth(layers.EthernetTypeDot1Q),
		&layers.Dot1Q{VLANIdentifier: 7, Type: layers.EthernetTypeIPv4}, ip, u)
}

func vm(t testing.TB, raw []bpf.RawInstruction) *bpf.VM {
	t.Helper()
	insns, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatalf("filter does not disassemble")
	}
	v, err := bpf.NewVM(insns)
	if err != nil {
		t.Fatalf("NewVM: %v", err)
	}
	return v
}

func TestOwnedFilter(t *testing.T) {
	raw, err := OwnedFilter(testSpec())
	if err != nil {
		t.Fatal(err)
	}
	noARP := testSpec()
	noARP.ARP, noARP.NDP = false, false
	rawNo, err := OwnedFilter(noARP)
	if err != nil {
		t.Fatal(err)
	}
	full, bare := vm(t, raw), vm(t, rawNo)

	tests := []struct {
		name       string
		frame      []byte
		want, bare bool // verdict with the full spec, and without ARP/NDP
	}{
		{"udp4 to VIP", udp4(t, cli4, vip4), true, true},
		{"udp4 to second VIP", udp4(t, cli4, netip.MustParseAddr("198.18.0.20")), true, true},
		{"udp4 to other", udp4(t, cli4, other4), false, false},
		{"udp4 from VIP to client", udp4(t, vip4, cli4), false, false},
		{"udp4 from real server", udp4(t, rs4, cli4), true, true},
		{"udp4 from mapped real server", udp4(t, netip.MustParseAddr("198.19.0.3"), cli4), true, true},
		{"udp4 to real server", udp4(t, cli4, rs4), false, false},
		{"udp4 to local", udp4(t, rs4, local4), true, true},
		{"udp4 from local", udp4(t, local4, other4), false, false},
		{"tcp6 to VIP", tcp6(t, cli6, vip6), true, true},
		{"tcp6 to other", tcp6(t, cli6, other6), false, false},
		{"tcp6 differs in last word", tcp6(t, cli6, netip.MustParseAddr("2001:db8::10:0")), false, false},
		{"tcp6 from real server", tcp6(t, rs6, cli6), true, true},
		{"tcp6 to local", tcp6(t, rs6, local6), true, true},
		{"tcp6 v4 VIP bytes in v6 dst", tcp6(t, cli6, netip.MustParseAddr("::ffff:198.18.0.10")), false, false},
		{"icmp4 unreachable", icmp4(t, other4, cli4, 3, false, 0), true, true},
		{"icmp4 source quench", icmp4(t, other4, cli4, 4, false, 0), true, true},
		{"icmp4 time exceeded with options", icmp4(t, other4, cli4, 11, true, 0), true, true},
		{"icmp4 echo", icmp4(t, other4, cli4, 8, false, 0), false, false},
		{"icmp4 echo with options", icmp4(t, other4, cli4, 8, true, 0), false, false},
		{"icmp4 redirect", icmp4(t, other4, cli4, 5, false, 0), false, false},
		{"icmp4 later fragment", icmp4(t, other4, cli4, 3, false, 100), false, false},
		{"icmp4 echo to VIP", icmp4(t, cli4, vip4, 8, false, 0), true, true},
		{"icmp6 packet too big", icmp6(t, other6, cli6, 2), true, true},
		{"icmp6 unreachable", icmp6(t, other6, cli6, 1), true, true},
		{"icmp6 echo", icmp6(t, other6, cli6, 128), false, false},
		{"icmp6 neighbour solicitation", icmp6(t, other6, netip.MustParseAddr("ff02::1:ff00:10"), 135), true, false},
		{"icmp6 neighbour advertisement", icmp6(t, other6, cli6, 136), true, false},
		{"icmp6 router solicitation", icmp6(t, other6, netip.MustParseAddr("ff02::2"), 133), false, false},
		{"arp", arp(t), true, false},
		{"802.1Q udp4 to VIP", vlanUDP4(t, vip4), false, false},
		{"short frame", []byte{1, 2, 3}, false, false},
		{"truncated ipv4", udp4(t, cli4, vip4)[:20], false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, c := range []struct {
				v    *bpf.VM
				want bool
			}{{full, tt.want}, {bare, tt.bare}} {
				n, err := c.v.Run(tt.frame)
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
				if got := n > 0; got != c.want {
					t.Errorf("accepted = %v (%d bytes), want %v", got, n, c.want)
				}
				if n > 0 && n < len(tt.frame) {
					t.Errorf("accepted %d bytes of %d: frame truncated", n, len(tt.frame))
				}
				if ref := refOwned(testSpecFor(c.v == full), tt.frame); ref != c.want {
					t.Errorf("reference says %v, want %v", ref, c.want)
				}
			}
		})
	}
}

func testSpecFor(full bool) FilterSpec {
	s := testSpec()
	if !full {
		s.ARP, s.NDP = false, false
	}
	return s
}

func TestOwnedFilterEmptyAndErrors(t *testing.T) {
	raw, err := OwnedFilter(FilterSpec{})
	if err != nil {
		t.Fatal(err)
	}
	v := vm(t, raw)
	for _, f := range [][]byte{udp4(t, cli4, vip4), tcp6(t, cli6, vip6), arp(t)} {
		if n, _ := v.Run(f); n != 0 {
			t.Errorf("empty spec accepted a frame")
		}
	}
	if n, _ := v.Run(icmp4(t, other4, cli4, 3, false, 0)); n == 0 {
		t.Errorf("empty spec dropped an ICMP error")
	}

	if _, err := OwnedFilter(FilterSpec{VIPs: []netip.Addr{{}}}); err == nil {
		t.Errorf("invalid address accepted")
	}
	many := make([]netip.Addr, 500)
	for i := range many {
		many[i] = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)})
	}
	if _, err := OwnedFilter(FilterSpec{VIPs: many}); !errors.Is(err, ErrFilterTooLong) {
		t.Errorf("500 IPv6 VIPs: err = %v, want ErrFilterTooLong", err)
	}
	raw, err = OwnedFilter(FilterSpec{VIPs: many[:400]})
	if err != nil {
		t.Fatalf("400 IPv6 VIPs: %v", err)
	}
	v = vm(t, raw)
	if n, _ := v.Run(tcp6(t, cli6, many[399])); n == 0 {
		t.Errorf("last of 400 VIPs not matched")
	}
	if n, _ := v.Run(tcp6(t, cli6, netip.MustParseAddr("2001:db8::ffff"))); n != 0 {
		t.Errorf("non-VIP matched among 400")
	}
}

// refOwned is the reference the filter is checked against: the same rules
// written plainly in Go.
func refOwned(spec FilterSpec, f []byte) bool {
	if len(f) < 14 {
		return false
	}
	has := func(list []netip.Addr, a netip.Addr) bool {
		for _, x := range list {
			if x.Unmap() == a {
				return true
			}
		}
		return false
	}
	switch binary.BigEndian.Uint16(f[12:]) {
	case etherTypeARP:
		return spec.ARP
	case etherTypeIPv4:
		if len(f) < 14+20 {
			// The kernel's filter aborts (drops) on loads past the end;
			// a frame this short matches nothing.
			return false
		}
		src := netip.AddrFrom4([4]byte(f[26:30]))
		dst := netip.AddrFrom4([4]byte(f[30:34]))
		if has(spec.VIPs, dst) || has(spec.LocalAddrs, dst) || has(spec.RealServers, src) {
			return true
		}
		if f[23] != protoICMP || binary.BigEndian.Uint16(f[20:])&0x1fff != 0 {
			return false
		}
		l4 := 14 + int(f[14]&0xf)*4
		if l4 >= len(f) {
			return false
		}
		switch f[l4] {
		case 3, 4, 11:
			return true
		}
		return false
	case etherTypeIPv6:
		if len(f) < 14+40 {
			return false
		}
		src := netip.AddrFrom16([16]byte(f[22:38]))
		dst := netip.AddrFrom16([16]byte(f[38:54]))
		if has(spec.VIPs, dst) || has(spec.LocalAddrs, dst) || has(spec.RealServers, src) {
			return true
		}
		if f[20] != protoICMPv6 || len(f) <= 54 {
			return false
		}
		typ := f[54]
		return typ < 128 || spec.NDP && (typ == 135 || typ == 136)
	}
	return false
}

// FuzzOwnedFilter checks the assembled program against refOwned on
// arbitrary frames.
func FuzzOwnedFilter(f *testing.F) {
	for _, fr := range [][]byte{
		udp4(f, cli4, vip4), udp4(f, rs4, cli4), udp4(f, cli4, other4),
		tcp6(f, cli6, vip6), tcp6(f, rs6, cli6), tcp6(f, cli6, other6),
		icmp4(f, other4, cli4, 3, true, 0), icmp4(f, other4, cli4, 8, false, 0),
		icmp6(f, other6, cli6, 2), icmp6(f, other6, cli6, 135), arp(f), vlanUDP4(f, vip4),
		udp4(f, cli4, vip4)[:33], tcp6(f, cli6, vip6)[:54], {},
	} {
		f.Add(fr, true)
		f.Add(fr, false)
	}
	progs := map[bool]*bpf.VM{}
	for _, full := range []bool{true, false} {
		raw, err := OwnedFilter(testSpecFor(full))
		if err != nil {
			f.Fatal(err)
		}
		progs[full] = vm(f, raw)
	}
	f.Fuzz(func(t *testing.T, frame []byte, full bool) {
		n, err := progs[full].Run(frame)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if got, want := n > 0, refOwned(testSpecFor(full), frame); got != want {
			t.Fatalf("filter %v, reference %v for % x", got, want, frame)
		}
	})
}
