package modes_test

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/modes"
)

// sctpFrame builds an Ethernet/IP/SCTP frame (DATA chunk) with gopacket,
// which computes the IPv4 header checksum and the CRC32c.
func sctpFrame(t testing.TB, src, dst netip.AddrPort, ttl uint8) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}}
	var ip gopacket.SerializableLayer
	if src.Addr().Is4() {
		eth.EthernetType = layers.EthernetTypeIPv4
		ip = &layers.IPv4{Version: 4, TTL: ttl, Protocol: layers.IPProtocolSCTP, Flags: layers.IPv4DontFragment,
			SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
	} else {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip = &layers.IPv6{Version: 6, HopLimit: ttl, NextHeader: layers.IPProtocolSCTP,
			SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
	}
	chunk := []byte{0, 3, 0, 20, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 'd', 'a', 't', 'a'}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip,
		&layers.SCTP{SrcPort: layers.SCTPPort(src.Port()), DstPort: layers.SCTPPort(dst.Port()), VerificationTag: 7}, gopacket.Payload(chunk)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestSCTPNATTable: NAT and FULLNAT rewrites of SCTP packets, IPv4 and
// IPv6, packet in / packet out: the output is byte for byte the packet
// gopacket builds with the translated addresses and ports, one less TTL,
// and a freshly computed CRC32c (the kernel's sctp_dnat_handler /
// sctp_snat_handler). A rewrite that keeps the ports keeps the CRC32c
// (SCTP has no pseudo-header); a partial (offloaded) one is completed; a
// packet whose CRC32c was wrong leaves with a wrong one.
func TestSCTPNATTable(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		a := natV4
		if v6 {
			a = natV6
		}
		for _, tc := range natCases(a) {
			t.Run(tc.name+map[bool]string{false: "/v4", true: "/v6"}[v6], func(t *testing.T) {
				for _, csum := range []modes.Csum{modes.CsumComplete, modes.CsumPartial} {
					in := sctpFrame(t, tc.inSrc, tc.inDst, 64)
					if csum == modes.CsumPartial {
						copy(in[len(in)-32+8:], []byte{0, 0, 0, 0}) // offload left the field empty
					}
					var p header.Parsed
					p.Parse(in)
					if p.Reason != header.ReasonNone || p.Proto != header.ProtoSCTP {
						t.Fatalf("input: %v proto %d", p.Reason, p.Proto)
					}
					if r := tc.apply(in, &p, csum); !r.OK() {
						t.Fatalf("verdict %v", r.Verdict)
					}
					if want := sctpFrame(t, tc.outSrc, tc.outDst, 63); !bytes.Equal(in, want) {
						t.Fatalf("csum %v:\n got  %x\n want %x", csum, in, want)
					}
					if p.SrcPort != tc.outSrc.Port() || p.DstPort != tc.outDst.Port() || p.TTL != 63 {
						t.Fatalf("parse not updated: %d -> %d ttl %d", p.SrcPort, p.DstPort, p.TTL)
					}
				}
				// A corrupted packet stays corrupted.
				in := sctpFrame(t, tc.inSrc, tc.inDst, 64)
				in[len(in)-1] ^= 1
				var p header.Parsed
				p.Parse(in)
				tc.apply(in, &p, modes.CsumComplete)
				if header.SCTPChecksumOK(in[p.L4Off:p.End]) {
					t.Fatal("a packet with a bad CRC32c left with a valid one")
				}
			})
		}
	}
}

// TestSCTPNATSamePortKeepsCRC: a NAT rewrite that changes only addresses
// leaves the CRC32c as it was, valid or not (sctp_dnat_handler updates it
// only when the port changes).
func TestSCTPNATSamePortKeepsCRC(t *testing.T) {
	in := sctpFrame(t, natV4.cip, natV4.vip, 64)
	in[len(in)-1] ^= 1 // wrong CRC32c from here on
	crc := string(in[14+20+8 : 14+20+12])
	var p header.Parsed
	p.Parse(in)
	if r := modes.NATRequest(in, &p, netip.AddrPortFrom(natV4.rip.Addr(), natV4.vip.Port()), modes.CsumComplete); !r.OK() {
		t.Fatal(r.Verdict)
	}
	if string(in[14+20+8:14+20+12]) != crc {
		t.Fatal("the CRC32c changed although no port did")
	}
}

// TestSCTPNATNoAllocs: the SCTP rewrite allocates nothing.
func TestSCTPNATNoAllocs(t *testing.T) {
	orig := sctpFrame(t, natV4.cip, natV4.vip, 64)
	frame := make([]byte, len(orig))
	var p header.Parsed
	if n := testing.AllocsPerRun(100, func() {
		copy(frame, orig)
		p.Parse(frame)
		modes.NATRequest(frame, &p, natV4.rip, modes.CsumComplete)
	}); n != 0 {
		t.Fatalf("%.1f allocations", n)
	}
}

// BenchmarkSCTPNAT: a NAT request rewrite of a small SCTP packet, whose
// CRC32c is read and recomputed (two passes over the packet).
func BenchmarkSCTPNAT(b *testing.B) {
	orig := sctpFrame(b, natV4.cip, natV4.vip, 64)
	frame := make([]byte, len(orig))
	var p header.Parsed
	b.ReportAllocs()
	for b.Loop() {
		copy(frame, orig)
		p.Parse(frame)
		modes.NATRequest(frame, &p, natV4.rip, modes.CsumComplete)
	}
}
