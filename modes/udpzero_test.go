package modes_test

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/header"

	"github.com/uvs-lb/uvs/internal/pkttest"
	"github.com/uvs-lb/uvs/modes"
)

// TestNATUDPZeroChecksumIPv6: an IPv6 UDP datagram sent without checksum
// (RFC 6935, UDP tunnels) leaves every NAT and FULLNAT rewrite with a
// correct full checksum, as udp_snat_handler / udp_dnat_handler write it,
// not with an incremental update of 0 (a wrong value the receiver drops).
func TestNATUDPZeroChecksumIPv6(t *testing.T) {
	for _, tc := range natCases(natV6) {
		t.Run(tc.name, func(t *testing.T) {
			f := pkttest.Flow{V6: true, Proto: layers.IPProtocolUDP, Src: tc.inSrc.Addr().String(), Dst: tc.inDst.Addr().String(),
				Sport: tc.inSrc.Port(), Dport: tc.inDst.Port(), TTL: 64, Payload: 20}
			runNAT(t, f, tc, modes.CsumComplete, true)
		})
	}
}

// TestICMPQuotedUDPZeroChecksumIPv6: an ICMPv6 error quoting an IPv6 UDP
// datagram sent without checksum (RFC 6935) is translated for FULLNAT
// (which fixes the quoted L4 checksum) with the quoted checksum left 0
// ("none"), as for IPv4, not turned into a wrong value; the ICMPv6
// checksum is correct.
func TestICMPQuotedUDPZeroChecksumIPv6(t *testing.T) {
	a := natV6
	// The datagram the client received (VIP -> client), as quoted back.
	quotedIP := &layers.IPv6{Version: 6, HopLimit: 60, NextHeader: layers.IPProtocolUDP,
		SrcIP: a.vip.Addr().AsSlice(), DstIP: a.cip.Addr().AsSlice()}
	qu := &layers.UDP{SrcPort: layers.UDPPort(a.vip.Port()), DstPort: layers.UDPPort(a.cip.Port())}
	qbuf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(qbuf, gopacket.SerializeOptions{FixLengths: true}, quotedIP, qu, gopacket.Payload("tunnelled")); err != nil {
		t.Fatal(err)
	}
	quoted := qbuf.Bytes()
	if c := binary.BigEndian.Uint16(quoted[40+6:]); c != 0 {
		t.Fatalf("quoted checksum %#x, want 0", c)
	}
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv6}
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6, SrcIP: a.cip.Addr().AsSlice(), DstIP: a.vip.Addr().AsSlice()}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeDestinationUnreachable, layers.ICMPv6CodePortUnreachable)}
	if err := icmp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, icmp,
		gopacket.Payload(append([]byte{0, 0, 0, 0}, quoted...))); err != nil {
		t.Fatal(err)
	}
	frame := buf.Bytes()
	var p header.Parsed
	p.Parse(frame)
	if p.Reason != header.ReasonNone || !p.IsICMPError() || !p.Inner.OK {
		t.Fatalf("input: %v", p.Reason)
	}
	if r := modes.FullNATICMPIn(frame, &p, a.lip, a.rip); !r.OK() {
		t.Fatalf("verdict %v", r.Verdict)
	}
	if got := netip.AddrPortFrom(p.Inner.SrcAddr(), p.Inner.SrcPort); got != a.rip {
		t.Fatalf("quoted source %v, want %v", got, a.rip)
	}
	if c := binary.BigEndian.Uint16(frame[p.Inner.L4Off+6:]); c != 0 {
		t.Fatalf("quoted UDP checksum 0 became %#04x", c)
	}
	want, ok := header.ComputeL4Checksum(frame, &p)
	if got := binary.BigEndian.Uint16(frame[p.L4Off+2:]); !ok || got != want {
		t.Fatalf("ICMPv6 checksum %#04x, want %#04x", got, want)
	}
}
