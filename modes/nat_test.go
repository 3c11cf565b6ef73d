package modes_test

import (
	"github.com/uvs-lb/uvs/internal/pkttest"

	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/modes"
)

type natAddrs struct {
	cip, vip, rip, lip netip.AddrPort
}

var natV4 = natAddrs{cip: ap("10.0.0.1:40000"), vip: ap("192.168.1.10:80"), rip: ap("172.16.0.2:8080"), lip: ap("172.16.0.1:5001")}
var natV6 = natAddrs{cip: ap("[2001:db8::1]:40000"), vip: ap("[2001:db8:1::10]:80"), rip: ap("[fd00::2]:8080"), lip: ap("[fd00::1]:5001")}

// natCase is one row of the packet-in / packet-out table: the packet's
// source and destination before and after, and the rewrite to apply.
type natCase struct {
	name           string
	inSrc, inDst   netip.AddrPort
	outSrc, outDst netip.AddrPort
	apply          func(frame []byte, p *header.Parsed, csum modes.Csum) modes.Result
}

func natCases(a natAddrs) []natCase {
	return []natCase{
		{"nat-request", a.cip, a.vip, a.cip, a.rip, func(f []byte, p *header.Parsed, c modes.Csum) modes.Result {
			return modes.NATRequest(f, p, a.rip, c)
		}},
		{"nat-reply", a.rip, a.cip, a.vip, a.cip, func(f []byte, p *header.Parsed, c modes.Csum) modes.Result {
			return modes.NATReply(f, p, a.vip, c)
		}},
		{"fullnat-request", a.cip, a.vip, a.lip, a.rip, func(f []byte, p *header.Parsed, c modes.Csum) modes.Result {
			return modes.FullNATRequest(f, p, a.lip, a.rip, c)
		}},
		{"fullnat-reply", a.rip, a.lip, a.vip, a.cip, func(f []byte, p *header.Parsed, c modes.Csum) modes.Result {
			return modes.FullNATReply(f, p, a.vip, a.cip, c)
		}},
	}
}

func TestNATTable(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		a := natV4
		if v6 {
			a = natV6
		}
		for _, tc := range natCases(a) {
			for _, proto := range []layers.IPProtocol{layers.IPProtocolTCP, layers.IPProtocolUDP} {
				for _, csum := range []modes.Csum{modes.CsumComplete, modes.CsumPartial, modes.CsumKeepPartial} {
					for _, vlan := range []bool{false, true} {
						name := fmt.Sprintf("%s/v6=%v/%v/csum=%v/vlan=%v", tc.name, v6, proto, csum, vlan)
						t.Run(name, func(t *testing.T) {
							f := pkttest.Flow{V6: v6, Vlan: vlan, Proto: proto, Src: tc.inSrc.Addr().String(), Dst: tc.inDst.Addr().String(),
								Sport: tc.inSrc.Port(), Dport: tc.inDst.Port(), TTL: 64, TOS: 0x10, DF: true, Flags: "PA", Payload: 333}
							runNAT(t, f, tc, csum, false)
						})
					}
				}
			}
		}
	}
}

// TestNATUDPZeroChecksum: a UDP/IPv4 datagram without checksum leaves with
// a real one, as IPVS writes it.
func TestNATUDPZeroChecksum(t *testing.T) {
	for _, tc := range natCases(natV4) {
		t.Run(tc.name, func(t *testing.T) {
			f := pkttest.Flow{Proto: layers.IPProtocolUDP, Src: tc.inSrc.Addr().String(), Dst: tc.inDst.Addr().String(),
				Sport: tc.inSrc.Port(), Dport: tc.inDst.Port(), TTL: 64, Payload: 20}
			runNAT(t, f, tc, modes.CsumComplete, true)
		})
	}
}

func runNAT(t *testing.T, f pkttest.Flow, tc natCase, csum modes.Csum, zeroUDP bool) {
	t.Helper()
	frame := f.Frame(t)
	var p header.Parsed
	p.Parse(frame)
	if p.Reason != header.ReasonNone {
		t.Fatalf("input: %v", p.Reason)
	}
	if csum != modes.CsumComplete {
		makePartial(t, frame, &p)
	}
	if zeroUDP {
		binary.BigEndian.PutUint16(frame[p.L4Off+6:], 0)
	}
	if r := tc.apply(frame, &p, csum); !r.OK() {
		t.Fatalf("verdict %v", r.Verdict)
	}
	if csum == modes.CsumKeepPartial {
		// The field must still be the pseudo-header sum of the rewritten
		// packet: what the egress device completes.
		want := append([]byte(nil), frame...)
		makePartial(t, want, &p)
		if string(want) != string(frame) {
			t.Fatalf("partial checksum not the new pseudo-header sum:\n got  %x\n want %x", frame, want)
		}
		completePartial(frame, &p)
	}
	checkChecksums(t, frame)
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	var src, dst netip.Addr
	var ttl uint8
	switch ip := pkt.NetworkLayer().(type) {
	case *layers.IPv4:
		src, dst, ttl = netip.AddrFrom4([4]byte(ip.SrcIP.To4())), netip.AddrFrom4([4]byte(ip.DstIP.To4())), ip.TTL
		if ip.TOS != f.TOS || ip.Flags&layers.IPv4DontFragment == 0 != !f.DF {
			t.Errorf("tos/df changed")
		}
	case *layers.IPv6:
		src, dst, ttl = netip.AddrFrom16([16]byte(ip.SrcIP)), netip.AddrFrom16([16]byte(ip.DstIP)), ip.HopLimit
	}
	var sport, dport uint16
	var payload []byte
	switch l4 := pkt.TransportLayer().(type) {
	case *layers.TCP:
		sport, dport, payload = uint16(l4.SrcPort), uint16(l4.DstPort), l4.Payload
		if l4.Seq != 1000 || l4.Ack != 2000 || !l4.PSH || !l4.ACK {
			t.Errorf("tcp header changed: %+v", l4)
		}
	case *layers.UDP:
		sport, dport, payload = uint16(l4.SrcPort), uint16(l4.DstPort), l4.Payload
		if l4.Checksum == 0 {
			t.Errorf("udp checksum left 0")
		}
	}
	if got := netip.AddrPortFrom(src, sport); got != tc.outSrc {
		t.Errorf("src %v want %v", got, tc.outSrc)
	}
	if got := netip.AddrPortFrom(dst, dport); got != tc.outDst {
		t.Errorf("dst %v want %v", got, tc.outDst)
	}
	if ttl != f.TTL-1 {
		t.Errorf("ttl %d want %d", ttl, f.TTL-1)
	}
	for i, b := range payload {
		if b != byte(i*7+3) {
			t.Fatalf("payload changed at %d", i)
		}
	}
	// Parsed describes the rewritten frame.
	if p.SrcAddr() != tc.outSrc.Addr() || p.DstAddr() != tc.outDst.Addr() || p.SrcPort != tc.outSrc.Port() ||
		p.DstPort != tc.outDst.Port() || p.TTL != f.TTL-1 {
		t.Errorf("parsed not updated: %v:%d -> %v:%d ttl %d", p.SrcAddr(), p.SrcPort, p.DstAddr(), p.DstPort, p.TTL)
	}
	var q header.Parsed
	q.Parse(frame)
	if q.Src != p.Src || q.Dst != p.Dst || q.SrcPort != p.SrcPort || q.DstPort != p.DstPort || q.TTL != p.TTL {
		t.Errorf("parsed differs from a fresh parse of the output")
	}
}

func TestNATRefusals(t *testing.T) {
	base := pkttest.Flow{Proto: layers.IPProtocolTCP, Src: "10.0.0.1", Dst: "192.168.1.10", Sport: 1, Dport: 80, TTL: 64, Payload: 10}
	tests := []struct {
		name string
		f    pkttest.Flow
		mut  func(b []byte)
		rs   netip.AddrPort
		want modes.Verdict
	}{
		{"ttl-1", pkttest.Flow{Proto: layers.IPProtocolTCP, Src: "10.0.0.1", Dst: "192.168.1.10", Sport: 1, Dport: 80, TTL: 1}, nil, natV4.rip, modes.TTLExceeded},
		{"ttl-0", pkttest.Flow{Proto: layers.IPProtocolUDP, Src: "10.0.0.1", Dst: "192.168.1.10", Sport: 1, Dport: 80, TTL: 0}, nil, natV4.rip, modes.TTLExceeded},
		{"hlim-1", pkttest.Flow{V6: true, Proto: layers.IPProtocolUDP, Src: "::1", Dst: "::2", Sport: 1, Dport: 80, TTL: 1}, nil, natV6.rip, modes.TTLExceeded},
		{"family", base, nil, natV6.rip, modes.Unsupported},
		{"mapped-family", base, nil, ap("[::ffff:1.2.3.4]:80"), modes.Unsupported},
		{"fragment", base, func(b []byte) { b[20] |= 0x20 }, natV4.rip, modes.Unsupported},
		{"icmp", pkttest.Flow{Proto: layers.IPProtocolICMPv4, Src: "10.0.0.1", Dst: "192.168.1.10", TTL: 64, Payload: 8}, nil, natV4.rip, modes.Unsupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			frame := tc.f.Frame(t)
			if tc.mut != nil {
				tc.mut(frame)
			}
			orig := append([]byte(nil), frame...)
			var p header.Parsed
			p.Parse(frame)
			if r := modes.NATRequest(frame, &p, tc.rs, modes.CsumComplete); r.Verdict != tc.want {
				t.Fatalf("verdict %v want %v", r.Verdict, tc.want)
			}
			if string(orig) != string(frame) {
				t.Fatalf("frame modified on refusal")
			}
		})
	}
}

func TestNATNoAllocs(t *testing.T) {
	for _, tc := range natCases(natV6) {
		f := pkttest.Flow{V6: true, Proto: layers.IPProtocolTCP, Src: tc.inSrc.Addr().String(), Dst: tc.inDst.Addr().String(),
			Sport: tc.inSrc.Port(), Dport: tc.inDst.Port(), TTL: 255, Payload: 100}
		frame := f.Frame(t)
		var p header.Parsed
		p.Parse(frame)
		if n := testing.AllocsPerRun(100, func() {
			frame[p.L3Off+7] = 255 // keep the hop limit from running out
			p.TTL = 255
			tc.apply(frame, &p, modes.CsumKeepPartial)
		}); n != 0 {
			t.Errorf("%s allocates %v", tc.name, n)
		}
	}
}

func BenchmarkNAT(b *testing.B) {
	for _, v6 := range []bool{false, true} {
		a := natV4
		if v6 {
			a = natV6
		}
		for _, tc := range natCases(a) {
			for _, csum := range []modes.Csum{modes.CsumComplete, modes.CsumPartial, modes.CsumKeepPartial} {
				b.Run(fmt.Sprintf("%s/v6=%v/csum=%v", tc.name, v6, csum), func(b *testing.B) {
					f := pkttest.Flow{V6: v6, Proto: layers.IPProtocolTCP, Src: tc.inSrc.Addr().String(), Dst: tc.inDst.Addr().String(),
						Sport: tc.inSrc.Port(), Dport: tc.inDst.Port(), TTL: 255, Payload: 1400}
					frame := f.Frame(b)
					var p header.Parsed
					p.Parse(frame)
					b.ReportAllocs()
					ttlOff := p.L3Off + header.IPv4TTLOff
					if v6 {
						ttlOff = p.L3Off + header.IPv6HopLimitOff
					}
					for b.Loop() {
						// Keep the TTL from running out (the checksums drift,
						// which does not matter here).
						frame[ttlOff], p.TTL = 255, 255
						tc.apply(frame, &p, csum)
					}
				})
			}
		}
	}
}

// TestOracleDetectsBadChecksum makes sure the gopacket oracle used above
// does fail on a wrong checksum.
func TestOracleDetectsBadChecksum(t *testing.T) {
	for _, proto := range []layers.IPProtocol{layers.IPProtocolTCP, layers.IPProtocolUDP} {
		for _, v6 := range []bool{false, true} {
			f := pkttest.Flow{V6: v6, Proto: proto, Src: "10.0.0.1", Dst: "10.0.0.2", Sport: 1, Dport: 2, TTL: 5, Payload: 9}
			if v6 {
				f.Src, f.Dst = "::1", "::2"
			}
			frame := f.Frame(t)
			var p header.Parsed
			p.Parse(frame)
			off := p.L4Off + header.L4ChecksumOffset(p.Proto)
			frame[off]++
			if got := reserialize(t, frame); string(got) == string(frame) {
				t.Errorf("v6=%v %v: oracle accepted a bad L4 checksum", v6, proto)
			}
			frame[off]--
			if !v6 {
				frame[p.L3Off+header.IPv4ChecksumOff]++
				if got := reserialize(t, frame); string(got) == string(frame) {
					t.Errorf("%v: oracle accepted a bad IPv4 checksum", proto)
				}
			}
		}
	}
}
