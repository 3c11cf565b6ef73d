package header_test

import (
	"github.com/uvs-lb/uvs/internal/pkttest"

	"bytes"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/header"
)

var ourMAC = [6]byte{0x02, 0xde, 0xad, 0xbe, 0xef, 0x01}

// checkICMPChecksum verifies the L4 (ICMP) checksum of frame against our own parser
// and against gopacket re-serialising the ICMP layer.
func checkICMPChecksum(t *testing.T, frame []byte) {
	t.Helper()
	var p header.Parsed
	p.Parse(frame)
	if !header.L4ChecksumValid(frame, &p) {
		t.Errorf("ICMP checksum does not verify")
	}
	pkt := pkttest.Decode(frame)
	var ls []gopacket.SerializableLayer
	var nl gopacket.NetworkLayer
	for _, l := range pkt.Layers() {
		switch l := l.(type) {
		case *layers.IPv4:
			nl = l
		case *layers.IPv6:
			nl = l
		case *layers.ICMPv6:
			_ = l.SetNetworkLayerForChecksum(nl)
			ls = append(ls, l, gopacket.Payload(l.LayerPayload()))
		case *layers.ICMPv4:
			ls = append(ls, l, gopacket.Payload(l.LayerPayload()))
		}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), frame[p.L4Off:p.End]) {
		t.Errorf("gopacket computes a different ICMP checksum")
	}
}

func TestARPReplyInPlace(t *testing.T) {
	for _, vlan := range []bool{false, true} {
		req := pkttest.Serialize(t, append(pkttest.L2(vlan, layers.EthernetTypeARP),
			&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
				Operation: 1, SourceHwAddress: pkttest.MACA, SourceProtAddress: []byte{10, 0, 0, 1}, DstHwAddress: make([]byte, 6), DstProtAddress: []byte{10, 0, 0, 100}})...)
		var p header.Parsed
		p.Parse(req)
		if !header.ARPReplyInPlace(req, &p, ourMAC) {
			t.Fatal("refused a request")
		}
		pkt := pkttest.Decode(req)
		eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		arp := pkt.Layer(layers.LayerTypeARP).(*layers.ARP)
		if !bytes.Equal(eth.DstMAC, pkttest.MACA) || !bytes.Equal(eth.SrcMAC, ourMAC[:]) {
			t.Errorf("ethernet %v -> %v", eth.SrcMAC, eth.DstMAC)
		}
		if arp.Operation != 2 || !bytes.Equal(arp.SourceHwAddress, ourMAC[:]) || !bytes.Equal(arp.SourceProtAddress, []byte{10, 0, 0, 100}) ||
			!bytes.Equal(arp.DstHwAddress, pkttest.MACA) || !bytes.Equal(arp.DstProtAddress, []byte{10, 0, 0, 1}) {
			t.Errorf("arp %+v", arp)
		}
		if vlan && pkt.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q).VLANIdentifier != 42 {
			t.Errorf("vlan lost")
		}
		// A reply is not answered.
		p.Parse(req)
		if header.ARPReplyInPlace(req, &p, ourMAC) {
			t.Errorf("answered a reply")
		}
	}
}

func nsFrame(t *testing.T, src, dst, target string, hlim uint8) []byte {
	ip := &layers.IPv6{Version: 6, HopLimit: hlim, NextHeader: layers.IPProtocolICMPv6,
		SrcIP: netip.MustParseAddr(src).AsSlice(), DstIP: netip.MustParseAddr(dst).AsSlice()}
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(135, 0)}
	_ = ic.SetNetworkLayerForChecksum(ip)
	ns := &layers.ICMPv6NeighborSolicitation{TargetAddress: netip.MustParseAddr(target).AsSlice()}
	if src != "::" {
		ns.Options = layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: pkttest.MACA}}
	}
	return pkttest.Serialize(t, append(pkttest.L2(false, layers.EthernetTypeIPv6), ip, ic, ns)...)
}

func TestNeighborAdvert(t *testing.T) {
	tests := []struct {
		name, src, dst string
		wantDst        string
		solicited      bool
		router         bool
	}{
		{"unicast", "2001:db8::1", "ff02::1:ff00:10", "2001:db8::1", true, false},
		{"router", "fe80::1", "2001:db8::10", "fe80::1", true, true},
		{"dad", "::", "ff02::1:ff00:10", "ff02::1", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ns := nsFrame(t, tc.src, tc.dst, "2001:db8::10", 255)
			var p header.Parsed
			p.Parse(ns)
			out := make([]byte, 200)
			n := header.NeighborAdvert(out, ns, &p, ourMAC, tc.router)
			if n != 14+header.NeighborAdvertSize {
				t.Fatalf("n = %d", n)
			}
			out = out[:n]
			checkICMPChecksum(t, out)
			pkt := pkttest.Decode(out)
			ip := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
			na, ok := pkt.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
			if !ok {
				t.Fatalf("no NA: %v", pkt)
			}
			if ip.SrcIP.String() != "2001:db8::10" || ip.DstIP.String() != tc.wantDst || ip.HopLimit != 255 {
				t.Errorf("ip %v -> %v hlim %d", ip.SrcIP, ip.DstIP, ip.HopLimit)
			}
			if na.TargetAddress.String() != "2001:db8::10" || na.Solicited() != tc.solicited || !na.Override() || na.Router() != tc.router {
				t.Errorf("na %+v", na)
			}
			if len(na.Options) != 1 || na.Options[0].Type != layers.ICMPv6OptTargetAddress || !bytes.Equal(na.Options[0].Data, ourMAC[:]) {
				t.Errorf("options %+v", na.Options)
			}
			eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
			if !bytes.Equal(eth.SrcMAC, ourMAC[:]) || (tc.solicited && !bytes.Equal(eth.DstMAC, pkttest.MACA)) ||
				(!tc.solicited && eth.DstMAC.String() != "33:33:00:00:00:01") {
				t.Errorf("ethernet %v -> %v", eth.SrcMAC, eth.DstMAC)
			}
		})
	}
	// RFC 4861 §7.1.1: hop limit must be 255; multicast targets are invalid.
	for _, bad := range [][]byte{nsFrame(t, "2001:db8::1", "2001:db8::10", "2001:db8::10", 64), nsFrame(t, "2001:db8::1", "2001:db8::10", "ff02::1", 255)} {
		var p header.Parsed
		p.Parse(bad)
		if n := header.NeighborAdvert(make([]byte, 200), bad, &p, ourMAC, false); n != 0 {
			t.Errorf("answered an invalid solicitation")
		}
	}
}

func TestICMPv4Error(t *testing.T) {
	f := pkttest.Flow{Proto: layers.IPProtocolTCP, Src: "10.0.0.1", Dst: "192.168.1.10", Sport: 40000, Dport: 80, TTL: 64, DF: true, Flags: "PA", Payload: 1400}
	frame := f.Frame(t)
	var p header.Parsed
	p.Parse(frame)
	out := make([]byte, 2000)
	n := header.ICMPv4Error(out, frame, &p, [4]byte{192, 168, 1, 10}, header.ICMPv4DestUnreachable, header.ICMPv4CodeFragNeeded, 1400)
	if n != 14+576 {
		t.Fatalf("n = %d, want a 576-byte datagram", n)
	}
	out = out[:n]
	checkICMPChecksum(t, out)
	pkt := pkttest.Decode(out)
	ip := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	ic := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if ip.SrcIP.String() != "192.168.1.10" || ip.DstIP.String() != "10.0.0.1" || ip.Protocol != layers.IPProtocolICMPv4 || ip.Length != 576 {
		t.Errorf("ip %+v", ip)
	}
	if !header.IPv4(out[14:]).ChecksumValid() {
		t.Errorf("ip checksum")
	}
	if ic.TypeCode != layers.CreateICMPv4TypeCode(3, 4) || ic.Seq != 1400 {
		t.Errorf("icmp %v mtu %d", ic.TypeCode, ic.Seq)
	}
	if !bytes.Equal(ic.Payload, frame[14:14+548]) {
		t.Errorf("quote differs from the packet")
	}
	// Our parser sees the quote as the embedded packet.
	var q header.Parsed
	q.Parse(out)
	if !q.IsICMPError() || q.Inner.SrcPort != 40000 || q.Inner.DstAddr() != p.DstAddr() {
		t.Errorf("inner %+v", q.Inner)
	}
	// Time exceeded for a small packet quotes all of it.
	small := pkttest.Flow{Proto: layers.IPProtocolUDP, Src: "10.0.0.1", Dst: "192.168.1.10", Sport: 1, Dport: 2, TTL: 1, Payload: 4}.Frame(t)
	p.Parse(small)
	n = header.ICMPv4Error(out[:cap(out)], small, &p, [4]byte{10, 0, 0, 254}, header.ICMPv4TimeExceeded, 0, 0)
	if n != 14+20+8+p.IPLen {
		t.Errorf("time exceeded n = %d", n)
	}
	// Refusals (RFC 1812 §4.3.2.7).
	refuse := map[string][]byte{
		"icmp-error": mutateParsed(t, out[:n], nil),
		"multicast":  mutateParsed(t, small, func(b []byte) { b[14+16] = 224 }),
		"bcast-l2":   mutateParsed(t, small, func(b []byte) { b[0] = 0xff }),
		"fragment":   mutateParsed(t, small, func(b []byte) { b[14+7] = 1 }),
		"src-zero":   mutateParsed(t, small, func(b []byte) { b[14+12] = 0 }),
	}
	for name, fr := range refuse {
		p.Parse(fr)
		if header.ICMPv4Error(make([]byte, 2000), fr, &p, [4]byte{1, 1, 1, 1}, 11, 0, 0) != 0 {
			t.Errorf("%s: error sent", name)
		}
	}
	p.Parse(small)
	if header.ICMPv4Error(make([]byte, 40), small, &p, [4]byte{1, 1, 1, 1}, 11, 0, 0) != 0 {
		t.Errorf("wrote past a small buffer")
	}
}

func mutateParsed(t *testing.T, frame []byte, f func([]byte)) []byte {
	b := append([]byte(nil), frame...)
	if f != nil {
		f(b)
	}
	return b
}

func TestICMPv6Error(t *testing.T) {
	f := pkttest.Flow{V6: true, Proto: layers.IPProtocolUDP, Src: "2001:db8::1", Dst: "2001:db8:1::10", Sport: 40000, Dport: 53, TTL: 64, Payload: 1452}
	frame := f.Frame(t)
	var p header.Parsed
	p.Parse(frame)
	src := [16]byte(netip.MustParseAddr("2001:db8:1::10").AsSlice())
	out := make([]byte, 2000)
	n := header.ICMPv6Error(out, frame, &p, src, header.ICMPv6PacketTooBig, 0, 1400)
	if n != 14+1280 {
		t.Fatalf("n = %d", n)
	}
	out = out[:n]
	checkICMPChecksum(t, out)
	pkt := pkttest.Decode(out)
	ip := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	ic := pkt.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
	if ip.DstIP.String() != "2001:db8::1" || ip.SrcIP.String() != "2001:db8:1::10" || ic.TypeCode != layers.CreateICMPv6TypeCode(2, 0) {
		t.Errorf("ip %v->%v icmp %v", ip.SrcIP, ip.DstIP, ic.TypeCode)
	}
	if mtu := uint32(out[14+40+4])<<24 | uint32(out[14+40+5])<<16 | uint32(out[14+40+6])<<8 | uint32(out[14+40+7]); mtu != 1400 {
		t.Errorf("mtu %d", mtu)
	}
	if !bytes.Equal(out[14+48:], frame[14:14+1280-48]) {
		t.Errorf("quote differs")
	}
	// No error about an error; none to a multicast destination except PTB.
	p.Parse(out)
	if header.ICMPv6Error(make([]byte, 2000), out, &p, src, 1, 4, 0) != 0 {
		t.Errorf("error about an error")
	}
	mc := mutateParsed(t, frame, func(b []byte) { b[14+24] = 0xff })
	p.Parse(mc)
	if header.ICMPv6Error(make([]byte, 2000), mc, &p, src, 1, 4, 0) != 0 {
		t.Errorf("unreachable about multicast")
	}
	if header.ICMPv6Error(make([]byte, 2000), mc, &p, src, header.ICMPv6PacketTooBig, 0, 1280) == 0 {
		t.Errorf("no packet-too-big about multicast")
	}
}

func TestBuildNoAllocs(t *testing.T) {
	frame := pkttest.Flow{Proto: layers.IPProtocolTCP, Src: "10.0.0.1", Dst: "192.168.1.10", Sport: 40000, Dport: 80, TTL: 64, Payload: 100}.Frame(t)
	ns := nsFrame(t, "2001:db8::1", "ff02::1:ff00:10", "2001:db8::10", 255)
	out := make([]byte, 2000)
	var p, q header.Parsed
	p.Parse(frame)
	q.Parse(ns)
	if n := testing.AllocsPerRun(100, func() {
		header.ICMPv4Error(out, frame, &p, [4]byte{1, 2, 3, 4}, 3, 3, 0)
		header.NeighborAdvert(out, ns, &q, ourMAC, false)
	}); n != 0 {
		t.Errorf("allocates %v", n)
	}
}
