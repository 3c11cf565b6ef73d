package realserver

import (
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Addresses used by the frame builders: the director, the real server, a
// client and the VIP.
var (
	dirIP  = net.IPv4(172, 16, 0, 1).To4()
	rsIP   = net.IPv4(172, 16, 0, 2).To4()
	cliIP  = net.IPv4(198, 18, 1, 2).To4()
	vipIP  = net.IPv4(198, 18, 0, 10).To4()
	cliIP6 = net.ParseIP("fd00:1::2")
	vipIP6 = net.ParseIP("fd00::10")
)

// serialize builds a packet with gopacket, fixing lengths and checksums.
func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// innerUDP4 returns client→VIP:80 UDP layers carrying payload, with the
// given TOS.
func innerUDP4(payload string, tos uint8) []gopacket.SerializableLayer {
	ip := &layers.IPv4{Version: 4, TTL: 63, TOS: tos, Protocol: layers.IPProtocolUDP, SrcIP: cliIP, DstIP: vipIP, Flags: layers.IPv4DontFragment}
	udp := &layers.UDP{SrcPort: 40000, DstPort: 80}
	_ = udp.SetNetworkLayerForChecksum(ip)
	return []gopacket.SerializableLayer{ip, udp, gopacket.Payload(payload)}
}

// innerTCP6 returns client→VIP:80 TCP SYN layers over IPv6.
func innerTCP6(tc uint8) []gopacket.SerializableLayer {
	ip := &layers.IPv6{Version: 6, HopLimit: 63, TrafficClass: tc, NextHeader: layers.IPProtocolTCP, SrcIP: cliIP6, DstIP: vipIP6}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, SYN: true, Seq: 1, Window: 65535}
	_ = tcp.SetNetworkLayerForChecksum(ip)
	return []gopacket.SerializableLayer{ip, tcp}
}

// outer4 returns the director→RS outer IPv4 header for proto with the
// given TOS.
func outer4(proto layers.IPProtocol, tos uint8) *layers.IPv4 {
	return &layers.IPv4{Version: 4, TTL: 64, TOS: tos, Protocol: proto, SrcIP: dirIP, DstIP: rsIP, Flags: layers.IPv4DontFragment, Id: 7}
}

// ipip returns a raw-socket view of an IPIP packet (outer IPv4 + inner)
// and the inner packet alone.
func ipip(t testing.TB, tos uint8, inner ...gopacket.SerializableLayer) (pkt, want []byte) {
	t.Helper()
	proto := layers.IPProtocolIPv4
	if _, ok := inner[0].(*layers.IPv6); ok {
		proto = layers.IPProtocolIPv6
	}
	want = serialize(t, inner...)
	pkt = serialize(t, append([]gopacket.SerializableLayer{outer4(proto, tos)}, inner...)...)
	return pkt, want
}

// gue returns the UDP payload of a GUE v0 datagram (as a UDP socket reads
// it) carrying inner, built by gopacket's AGUEVar0 inside a full
// IPv4/UDP frame, and the inner packet alone.
func gue(t testing.TB, ext []byte, flags uint16, inner ...gopacket.SerializableLayer) (payload, want []byte) {
	t.Helper()
	proto := layers.IPProtocolIPv4
	if _, ok := inner[0].(*layers.IPv6); ok {
		proto = layers.IPProtocolIPv6
	}
	want = serialize(t, inner...)
	ip := outer4(layers.IPProtocolUDP, 0)
	udp := &layers.UDP{SrcPort: 50123, DstPort: 6080}
	_ = udp.SetNetworkLayerForChecksum(ip)
	g := &layers.AGUEVar0{Protocol: proto, Flags: flags, Extensions: ext}
	frame := serialize(t, append([]gopacket.SerializableLayer{ip, udp, g}, inner...)...)
	return frame[20+8:], want
}
