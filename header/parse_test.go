package header_test

import (
	"github.com/uvs-lb/uvs/internal/pkttest"

	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/header"
)

var parseCases = []struct {
	name string
	f    pkttest.Flow
}{
	{"v4-tcp", pkttest.Flow{Proto: layers.IPProtocolTCP, Src: "10.0.0.1", Dst: "192.168.1.10", Sport: 40000, Dport: 80, TTL: 64, Flags: "S", Payload: 0, DF: true}},
	{"v4-tcp-vlan", pkttest.Flow{Vlan: true, Proto: layers.IPProtocolTCP, Src: "10.0.0.1", Dst: "192.168.1.10", Sport: 1, Dport: 65535, TTL: 2, TOS: 0xb8, Flags: "PA", Payload: 100}},
	{"v4-tcp-ipopts", pkttest.Flow{IPOpts: true, Proto: layers.IPProtocolTCP, Src: "1.2.3.4", Dst: "5.6.7.8", Sport: 1234, Dport: 443, TTL: 128, Flags: "FA", Payload: 33}},
	{"v4-udp", pkttest.Flow{Proto: layers.IPProtocolUDP, Src: "10.0.0.1", Dst: "10.0.0.2", Sport: 30053, Dport: 35353, TTL: 1, Payload: 3}},
	{"v4-udp-short-padded", pkttest.Flow{Proto: layers.IPProtocolUDP, Src: "10.0.0.1", Dst: "10.0.0.2", Sport: 9, Dport: 9, TTL: 9, Payload: 0}},
	{"v6-tcp", pkttest.Flow{V6: true, Proto: layers.IPProtocolTCP, Src: "2001:db8::1", Dst: "2001:db8:1::80", Sport: 50000, Dport: 80, TTL: 64, TOS: 0x20, Flags: "SA", Payload: 10}},
	{"v6-udp-vlan", pkttest.Flow{V6: true, Vlan: true, Proto: layers.IPProtocolUDP, Src: "fd00::1", Dst: "fd00::2", Sport: 31000, Dport: 32000, TTL: 255, Payload: 1200}},
	{"v6-tcp-ext", pkttest.Flow{V6: true, Ext: true, Proto: layers.IPProtocolTCP, Src: "2001:db8::1", Dst: "2001:db8::2", Sport: 7, Dport: 8, TTL: 3, Flags: "R", Payload: 5}},
	{"v6-udp-ext", pkttest.Flow{V6: true, Ext: true, Proto: layers.IPProtocolUDP, Src: "2001:db8::1", Dst: "2001:db8::2", Sport: 7, Dport: 8, TTL: 3, Payload: 5}},
}

// TestParseAgainstGopacket parses gopacket-built frames and compares every
// field with gopacket's own decoding.
func TestParseAgainstGopacket(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			frame := tc.f.Frame(t)
			if len(frame) < 60 { // Ethernet minimum: pad like a NIC would
				frame = append(frame, make([]byte, 60-len(frame))...)
			}
			var p header.Parsed
			p.Parse(frame)
			if p.Reason != header.ReasonNone {
				t.Fatalf("reason %v", p.Reason)
			}
			pkt := pkttest.Decode(frame)
			if el := pkt.ErrorLayer(); el != nil {
				t.Fatalf("gopacket: %v", el.Error())
			}
			if d, ok := pkt.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q); ok {
				if !p.VLAN || p.VLANID != d.VLANIdentifier || p.L2Len != 18 {
					t.Errorf("vlan: got %v/%d/%d want id %d", p.VLAN, p.VLANID, p.L2Len, d.VLANIdentifier)
				}
			} else if p.VLAN || p.L2Len != 14 {
				t.Errorf("unexpected vlan %v len %d", p.VLAN, p.L2Len)
			}
			nl := pkt.NetworkLayer()
			if got, want := p.L3Off, pkttest.OffsetOf(frame, nl.LayerContents()); got != want {
				t.Errorf("L3Off %d want %d", got, want)
			}
			switch ip := nl.(type) {
			case *layers.IPv4:
				if p.Kind != header.KindIPv4 || p.IPVersion != 4 || p.EtherType != header.EtherTypeIPv4 {
					t.Errorf("kind %v version %d", p.Kind, p.IPVersion)
				}
				checkAddr(t, "src", p.SrcAddr(), ip.SrcIP)
				checkAddr(t, "dst", p.DstAddr(), ip.DstIP)
				check16(t, "src", p.Src, ip.SrcIP)
				check16(t, "dst", p.Dst, ip.DstIP)
				if p.TTL != ip.TTL || p.TOS != ip.TOS || p.Proto != uint8(ip.Protocol) || p.IPLen != int(ip.Length) {
					t.Errorf("ttl/tos/proto/len %d/%d/%d/%d want %d/%d/%d/%d", p.TTL, p.TOS, p.Proto, p.IPLen, ip.TTL, ip.TOS, ip.Protocol, ip.Length)
				}
				if p.DF != (ip.Flags&layers.IPv4DontFragment != 0) || p.MoreFrags || p.FragOffset != 0 {
					t.Errorf("frag flags df=%v mf=%v off=%d", p.DF, p.MoreFrags, p.FragOffset)
				}
			case *layers.IPv6:
				if p.Kind != header.KindIPv6 || p.IPVersion != 6 || p.EtherType != header.EtherTypeIPv6 {
					t.Errorf("kind %v version %d", p.Kind, p.IPVersion)
				}
				checkAddr(t, "src", p.SrcAddr(), ip.SrcIP)
				checkAddr(t, "dst", p.DstAddr(), ip.DstIP)
				check16(t, "src", p.Src, ip.SrcIP)
				check16(t, "dst", p.Dst, ip.DstIP)
				if p.TTL != ip.HopLimit || p.TOS != ip.TrafficClass || p.IPLen != 40+int(ip.Length) {
					t.Errorf("hlim/tc/len %d/%d/%d want %d/%d/%d", p.TTL, p.TOS, p.IPLen, ip.HopLimit, ip.TrafficClass, 40+int(ip.Length))
				}
			}
			if p.End != p.L3Off+p.IPLen || p.End > len(frame) {
				t.Errorf("End %d", p.End)
			}
			tl := pkt.TransportLayer()
			if got, want := p.L4Off, pkttest.OffsetOf(frame, tl.LayerContents()); got != want {
				t.Errorf("L4Off %d want %d", got, want)
			}
			if got, want := p.PayloadOff, pkttest.OffsetOf(frame, tl.LayerPayload()); got != want && len(tl.LayerPayload()) > 0 {
				t.Errorf("PayloadOff %d want %d", got, want)
			}
			switch l4 := tl.(type) {
			case *layers.TCP:
				if p.Proto != header.ProtoTCP || p.SrcPort != uint16(l4.SrcPort) || p.DstPort != uint16(l4.DstPort) {
					t.Errorf("tcp ports %d %d", p.SrcPort, p.DstPort)
				}
				if p.TCPFlags != frame[p.L4Off+13] || p.TCPFlags&header.TCPFlagSYN != 0 != l4.SYN ||
					p.TCPFlags&header.TCPFlagACK != 0 != l4.ACK || p.TCPFlags&header.TCPFlagFIN != 0 != l4.FIN ||
					p.TCPFlags&header.TCPFlagRST != 0 != l4.RST {
					t.Errorf("tcp flags %#x", p.TCPFlags)
				}
				if p.PayloadOff != p.L4Off+int(l4.DataOffset)*4 {
					t.Errorf("tcp payload off %d", p.PayloadOff)
				}
			case *layers.UDP:
				if p.Proto != header.ProtoUDP || p.SrcPort != uint16(l4.SrcPort) || p.DstPort != uint16(l4.DstPort) || p.PayloadOff != p.L4Off+8 {
					t.Errorf("udp ports %d %d", p.SrcPort, p.DstPort)
				}
			}
			if !header.L4ChecksumValid(frame, &p) {
				t.Errorf("L4 checksum of a gopacket frame does not verify")
			}
			co := p.L4Off + header.L4ChecksumOffset(p.Proto)
			if c, ok := header.ComputeL4Checksum(frame, &p); !ok || c != binary.BigEndian.Uint16(frame[co:]) {
				t.Errorf("ComputeL4Checksum %#x, gopacket wrote %#x", c, binary.BigEndian.Uint16(frame[co:]))
			}
			if p.Kind == header.KindIPv4 {
				if got, want := header.IPv4(frame[p.L3Off:]).ComputeChecksum(), binary.BigEndian.Uint16(frame[p.L3Off+10:]); got != want {
					t.Errorf("IPv4 ComputeChecksum %#x, gopacket wrote %#x", got, want)
				}
			}
			if p.Kind == header.KindIPv4 && !header.IPv4(frame[p.L3Off:]).ChecksumValid() {
				t.Errorf("IPv4 checksum does not verify")
			}
		})
	}
}

func checkAddr(t *testing.T, what string, got netip.Addr, want []byte) {
	t.Helper()
	w, _ := netip.AddrFromSlice(want)
	if got != w.Unmap() && got != w {
		t.Errorf("%s %v want %v", what, got, w)
	}
}

// check16 checks a parsed 16-byte address: netip's As16 form of the
// header's address (IPv4-mapped for IPv4).
func check16(t *testing.T, what string, got [16]byte, want []byte) {
	t.Helper()
	w, _ := netip.AddrFromSlice(want)
	if got != w.As16() {
		t.Errorf("%s %x, want As16 of %v", what, got, w)
	}
}

// mutate applies f to a copy of frame.
func mutate(frame []byte, f func(b []byte)) []byte {
	b := append([]byte(nil), frame...)
	f(b)
	return b
}

func TestParseReasons(t *testing.T) {
	v4 := pkttest.Flow{Proto: layers.IPProtocolTCP, Src: "10.0.0.1", Dst: "10.0.0.2", Sport: 1, Dport: 2, TTL: 9, Payload: 20}.Frame(t)
	v6 := pkttest.Flow{V6: true, Proto: layers.IPProtocolUDP, Src: "::1", Dst: "::2", Sport: 1, Dport: 2, TTL: 9, Payload: 20}.Frame(t)
	v6ext := pkttest.Flow{V6: true, Ext: true, Proto: layers.IPProtocolUDP, Src: "::1", Dst: "::2", Sport: 1, Dport: 2, TTL: 9, Payload: 20}.Frame(t)
	arp := pkttest.Serialize(t, &layers.Ethernet{SrcMAC: pkttest.MACA, DstMAC: pkttest.MACB, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: 1, SourceHwAddress: pkttest.MACA, SourceProtAddress: []byte{10, 0, 0, 1}, DstHwAddress: make([]byte, 6), DstProtAddress: []byte{10, 0, 0, 2}})
	tests := []struct {
		name  string
		frame []byte
		kind  header.Kind
		r     header.Reason
	}{
		{"ok-v4", v4, header.KindIPv4, header.ReasonNone},
		{"ok-v6", v6, header.KindIPv6, header.ReasonNone},
		{"ok-arp", arp, header.KindARP, header.ReasonNone},
		{"short-eth", v4[:13], header.KindUnknown, header.ReasonTruncated},
		{"short-vlan", mutate(v4[:16], func(b []byte) { b[12], b[13] = 0x81, 0 }), header.KindUnknown, header.ReasonTruncated},
		{"lldp", mutate(v4, func(b []byte) { b[12], b[13] = 0x88, 0xcc }), header.KindUnknown, header.ReasonUnsupportedEtherType},
		{"short-ip", v4[:30], header.KindUnknown, header.ReasonTruncated},
		{"v6-in-v4", mutate(v4, func(b []byte) { b[14] = 0x65 }), header.KindUnknown, header.ReasonBadVersion},
		{"ihl-4", mutate(v4, func(b []byte) { b[14] = 0x44 }), header.KindUnknown, header.ReasonBadIHL},
		{"ihl-past-end", mutate(v4[:40], func(b []byte) { b[14] = 0x4f }), header.KindUnknown, header.ReasonTruncated},
		{"totlen-small", mutate(v4, func(b []byte) { b[16], b[17] = 0, 19 }), header.KindUnknown, header.ReasonBadTotalLen},
		{"totlen-big", mutate(v4, func(b []byte) { b[16], b[17] = 0x10, 0 }), header.KindUnknown, header.ReasonTruncated},
		{"v4-mf", mutate(v4, func(b []byte) { b[20] |= 0x20 }), header.KindIPv4, header.ReasonFragment},
		{"v4-offset", mutate(v4, func(b []byte) { b[21] = 1 }), header.KindIPv4, header.ReasonFragment},
		{"v4-gre", mutate(v4, func(b []byte) { b[23] = header.ProtoGRE }), header.KindIPv4, header.ReasonUnsupportedProto},
		{"tcp-doff-4", mutate(v4, func(b []byte) { b[34+12] = 0x40 }), header.KindIPv4, header.ReasonBadL4Header},
		{"tcp-doff-past-end", mutate(v4, func(b []byte) { b[34+12] = 0xf0 }), header.KindIPv4, header.ReasonBadL4Header},
		{"tcp-cut", mutate(v4, func(b []byte) { binary.BigEndian.PutUint16(b[16:], 30) }), header.KindIPv4, header.ReasonTruncated},
		{"udp-len-big", mutate(v6, func(b []byte) { b[54+4] = 0xff }), header.KindIPv6, header.ReasonBadL4Header},
		{"udp-len-small", mutate(v6, func(b []byte) { b[54+4], b[54+5] = 0, 7 }), header.KindIPv6, header.ReasonBadL4Header},
		{"v6-jumbo", mutate(v6, func(b []byte) { b[18], b[19] = 0, 0 }), header.KindUnknown, header.ReasonBadTotalLen},
		{"v6-short", v6[:50], header.KindUnknown, header.ReasonTruncated},
		{"v6-ext-cut", mutate(v6ext, func(b []byte) { b[54+1] = 200 }), header.KindIPv6, header.ReasonTruncated},
		{"v6-frag-first", mutate(v6, func(b []byte) {
			b[20] = header.ProtoFragment
		}), header.KindIPv6, header.ReasonTruncated /* UDP header read as a fragment header then garbage */},
		{"v6-esp", mutate(v6, func(b []byte) { b[20] = header.ProtoESP }), header.KindIPv6, header.ReasonUnsupportedProto},
		{"arp-ipv6", mutate(arp, func(b []byte) { b[16] = 0x86 }), header.KindUnknown, header.ReasonBadARP},
		{"arp-short", arp[:30], header.KindUnknown, header.ReasonTruncated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p header.Parsed
			p.Parse(tc.frame)
			if p.Kind != tc.kind || p.Reason != tc.r {
				t.Fatalf("got %v/%v want %v/%v", p.Kind, p.Reason, tc.kind, tc.r)
			}
		})
	}
}

// v6Fragment builds an IPv6/UDP first fragment with a fragment header.
func TestParseIPv6Fragment(t *testing.T) {
	udp := pkttest.Flow{V6: true, Proto: layers.IPProtocolUDP, Src: "2001:db8::1", Dst: "2001:db8::2", Sport: 11, Dport: 22, TTL: 9, Payload: 16}.Frame(t)
	// Insert a fragment header (M=1, offset 0) between IPv6 and UDP.
	fh := []byte{header.ProtoUDP, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef}
	frame := append(append(append([]byte(nil), udp[:54]...), fh...), udp[54:]...)
	frame[20] = header.ProtoFragment
	binary.BigEndian.PutUint16(frame[18:], binary.BigEndian.Uint16(frame[18:])+8)
	var p header.Parsed
	p.Parse(frame)
	if p.Reason != header.ReasonFragment || !p.MoreFrags || p.FragOffset != 0 || p.SrcPort != 11 || p.DstPort != 22 || p.L4Off != 62 {
		t.Fatalf("first fragment: %+v", p)
	}
	// Cross-check with gopacket.
	pkt := pkttest.Decode(frame)
	if f, ok := pkt.Layer(layers.LayerTypeIPv6Fragment).(*layers.IPv6Fragment); !ok || !f.MoreFragments {
		t.Fatalf("gopacket does not see the fragment header")
	}
	// Non-first fragment: offset 8, no L4.
	binary.BigEndian.PutUint16(frame[54+2:], 8|1)
	p.Parse(frame)
	if p.Reason != header.ReasonFragment || p.FragOffset != 8 || p.SrcPort != 0 {
		t.Fatalf("second fragment: %+v", p)
	}
	// A non-first fragment whose next header is an extension header of
	// the fragmentable part: its data is not that header (ipv6_find_hdr
	// stops at a non-first fragment), whatever it looks like — here a
	// "destination options" length running past the packet.
	frame[54] = header.ProtoDstOpts
	frame[62], frame[63] = header.ProtoUDP, 0xff
	p.Parse(frame)
	if p.Reason != header.ReasonFragment || p.FragOffset != 8 || p.Proto != header.ProtoDstOpts {
		t.Fatalf("non-first fragment after an extension header: %+v", p)
	}
}

func TestParseARP(t *testing.T) {
	frame := pkttest.Serialize(t, append(pkttest.L2(true, layers.EthernetTypeARP),
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: 1, SourceHwAddress: pkttest.MACA, SourceProtAddress: []byte{10, 0, 0, 1}, DstHwAddress: make([]byte, 6), DstProtAddress: []byte{10, 0, 0, 2}})...)
	var p header.Parsed
	p.Parse(frame)
	if p.Kind != header.KindARP || p.Reason != header.ReasonNone || p.ARPOp != header.ARPRequest ||
		p.SrcAddr() != netip.MustParseAddr("10.0.0.1") || p.DstAddr() != netip.MustParseAddr("10.0.0.2") || p.VLANID != 42 {
		t.Fatalf("%+v", p)
	}
	check16(t, "sender", p.Src, []byte{10, 0, 0, 1})
	check16(t, "target", p.Dst, []byte{10, 0, 0, 2})
}

// TestParseICMPInner checks the quoted packet of ICMP errors against the
// packet that was quoted.
func TestParseICMPInner(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		for _, proto := range []layers.IPProtocol{layers.IPProtocolTCP, layers.IPProtocolUDP} {
			src, dst, ext := "192.168.1.10", "10.0.0.1", false
			if v6 {
				src, dst, ext = "2001:db8:1::80", "2001:db8::1", true
			}
			orig := pkttest.Flow{V6: v6, Ext: ext, Proto: proto, Src: src, Dst: dst, Sport: 80, Dport: 40000, TTL: 60, Payload: 40}
			ofr := orig.Frame(t)
			var op header.Parsed
			op.Parse(ofr)
			quoted := ofr[op.L3Off:op.End]
			frame := icmpErrorFrame(t, v6, "172.16.0.1", src, quoted)
			var p header.Parsed
			p.Parse(frame)
			if p.Reason != header.ReasonNone || !p.IsICMPError() {
				t.Fatalf("v6=%v %v: reason %v inner %+v", v6, proto, p.Reason, p.Inner)
			}
			in := p.Inner
			if in.SrcAddr() != op.SrcAddr() || in.DstAddr() != op.DstAddr() || in.Src != op.Src || in.Dst != op.Dst || in.SrcPort != 80 || in.DstPort != 40000 ||
				in.Proto != uint8(proto) || in.L3Off != p.PayloadOff || in.L4Off-in.L3Off != op.L4Off-op.L3Off {
				t.Fatalf("v6=%v %v: inner %+v", v6, proto, in)
			}
			// A quote cut inside the ports is not usable.
			short := icmpErrorFrame(t, v6, "172.16.0.1", src, quoted[:op.L4Off-op.L3Off+2])
			p.Parse(short)
			if p.Reason != header.ReasonNone || p.IsICMPError() {
				t.Fatalf("short quote accepted: %+v", p.Inner)
			}
		}
	}
}

// icmpErrorFrame builds (with gopacket) an ICMP destination-unreachable
// from src to dst quoting quoted.
func icmpErrorFrame(t testing.TB, v6 bool, src, dst string, quoted []byte) []byte {
	s, d := netip.MustParseAddr(src).AsSlice(), netip.MustParseAddr(dst).AsSlice()
	if v6 {
		s, d = netip.MustParseAddr("2001:db8:ffff::1").AsSlice(), netip.MustParseAddr(dst).AsSlice()
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6, SrcIP: s, DstIP: d}
		ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(1, 4)}
		if err := ic.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		return pkttest.Serialize(t, append(pkttest.L2(false, layers.EthernetTypeIPv6), ip, ic, gopacket.Payload(append(make([]byte, 4), quoted...)))...)
	}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: s, DstIP: d}
	ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 3)}
	return pkttest.Serialize(t, append(pkttest.L2(false, layers.EthernetTypeIPv4), ip, ic, gopacket.Payload(quoted))...)
}

func TestParseNoAllocs(t *testing.T) {
	frames := [][]byte{
		parseCases[0].f.Frame(t), parseCases[7].f.Frame(t),
		icmpErrorFrame(t, true, "1.1.1.1", "2001:db8::1", parseCases[5].f.Frame(t)[14:]),
	}
	var p header.Parsed
	for _, fr := range frames {
		if n := testing.AllocsPerRun(100, func() { p.Parse(fr) }); n != 0 {
			t.Errorf("Parse allocates %v times", n)
		}
		if n := testing.AllocsPerRun(100, func() { _, _ = p.SrcAddr(), p.DstAddr() }); n != 0 {
			t.Errorf("SrcAddr/DstAddr allocate %v times", n)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	for _, i := range []int{0, 5, 7} {
		frame := parseCases[i].f.Frame(b)
		b.Run(parseCases[i].name, func(b *testing.B) {
			b.ReportAllocs()
			var p header.Parsed
			for b.Loop() {
				p.Parse(frame)
			}
		})
	}
}

func TestReasonString(t *testing.T) {
	seen := map[string]bool{}
	for r := range header.Reason(header.NumReasons) {
		s := r.String()
		if s == "reason?" || seen[s] {
			t.Errorf("reason %d has name %q", r, s)
		}
		seen[s] = true
	}
	if header.Reason(header.NumReasons).String() != "reason?" {
		t.Error("out-of-range reason has a name")
	}
}
