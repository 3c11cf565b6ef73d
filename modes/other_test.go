package modes_test

import (
	"github.com/uvs-lb/uvs/internal/pkttest"

	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/modes"
)

// icmpError builds an ICMP error from src to dst quoting quoted (an IP
// packet): destination unreachable/port (ICMPv4) or /port (ICMPv6).
func icmpError(t testing.TB, v6 bool, src, dst netip.Addr, ttl uint8, quoted []byte) []byte {
	if v6 {
		ip := &layers.IPv6{Version: 6, HopLimit: ttl, NextHeader: layers.IPProtocolICMPv6, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(1, 4)}
		if err := ic.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		return pkttest.Serialize(t, append(pkttest.L2(false, layers.EthernetTypeIPv6), ip, ic, gopacket.Payload(append(make([]byte, 4), quoted...)))...)
	}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: ttl, Protocol: layers.IPProtocolICMPv4, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 3)}
	return pkttest.Serialize(t, append(pkttest.L2(false, layers.EthernetTypeIPv4), ip, ic, gopacket.Payload(quoted))...)
}

// quotedPacket builds the IP packet src→dst that an ICMP error quotes.
func quotedPacket(t testing.TB, v6 bool, proto layers.IPProtocol, src, dst netip.AddrPort) []byte {
	fr := pkttest.Flow{V6: v6, Proto: proto, Src: src.Addr().String(), Dst: dst.Addr().String(), Sport: src.Port(), Dport: dst.Port(), TTL: 50, Payload: 32}.Frame(t)
	return fr[14:]
}

func TestNATICMP(t *testing.T) {
	router4, router6 := netip.MustParseAddr("10.9.9.9"), netip.MustParseAddr("2001:db8:9::9")
	for _, v6 := range []bool{false, true} {
		a, router := natV4, router4
		if v6 {
			a, router = natV6, router6
		}
		for _, proto := range []layers.IPProtocol{layers.IPProtocolTCP, layers.IPProtocolUDP} {
			for _, dir := range []string{"in", "out"} {
				t.Run(fmt.Sprintf("%s/v6=%v/%v", dir, v6, proto), func(t *testing.T) {
					var frame []byte
					var wantOuterSrc, wantOuterDst netip.Addr
					var wantQSrc, wantQDst netip.AddrPort
					if dir == "in" {
						// A router on the client side reports our reply VIP→CIP.
						frame = icmpError(t, v6, router, a.vip.Addr(), 30, quotedPacket(t, v6, proto, a.vip, a.cip))
						wantOuterSrc, wantOuterDst = router, a.rip.Addr()
						wantQSrc, wantQDst = a.rip, a.cip
					} else {
						// The real server reports the request CIP→RIP.
						frame = icmpError(t, v6, a.rip.Addr(), a.cip.Addr(), 30, quotedPacket(t, v6, proto, a.cip, a.rip))
						wantOuterSrc, wantOuterDst = a.vip.Addr(), a.cip.Addr()
						wantQSrc, wantQDst = a.cip, a.vip
					}
					var p header.Parsed
					p.Parse(frame)
					if !p.IsICMPError() {
						t.Fatalf("not an ICMP error: %v %+v", p.Reason, p.Inner)
					}
					var r modes.Result
					if dir == "in" {
						r = modes.NATICMPIn(frame, &p, a.rip)
					} else {
						r = modes.NATICMPOut(frame, &p, a.vip)
					}
					if !r.OK() {
						t.Fatalf("verdict %v", r.Verdict)
					}
					checkChecksums(t, frame)
					var q header.Parsed
					q.Parse(frame)
					if q.SrcAddr() != wantOuterSrc || q.DstAddr() != wantOuterDst || q.TTL != 29 {
						t.Errorf("outer %v -> %v ttl %d", q.SrcAddr(), q.DstAddr(), q.TTL)
					}
					in := q.Inner
					if netip.AddrPortFrom(in.SrcAddr(), in.SrcPort) != wantQSrc || netip.AddrPortFrom(in.DstAddr(), in.DstPort) != wantQDst {
						t.Errorf("quoted %v:%d -> %v:%d", in.SrcAddr(), in.SrcPort, in.DstAddr(), in.DstPort)
					}
					if q.Inner != p.Inner || q.Src != p.Src || q.Dst != p.Dst {
						t.Errorf("parsed not updated")
					}
					// The quoted IPv4 header checksum is correct (gopacket oracle).
					if !v6 {
						qp := gopacket.NewPacket(frame[in.L3Off:q.End], layers.LayerTypeIPv4, gopacket.Default)
						qip := qp.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
						want := qip.Checksum
						buf := gopacket.NewSerializeBuffer()
						if err := qip.SerializeTo(buf, gopacket.SerializeOptions{ComputeChecksums: true}); err != nil {
							t.Fatal(err)
						}
						if got := binary.BigEndian.Uint16(buf.Bytes()[10:]); got != want {
							t.Errorf("quoted IPv4 checksum %#x want %#x", want, got)
						}
					}
				})
			}
		}
	}
}

func TestDR(t *testing.T) {
	rsMAC := [6]byte{0x02, 1, 2, 3, 4, 5}
	ourMAC := [6]byte{0x02, 9, 9, 9, 9, 9}
	for _, v6 := range []bool{false, true} {
		for _, vlan := range []bool{false, true} {
			src, dst := "10.0.0.1", "192.168.1.10"
			if v6 {
				src, dst = "2001:db8::1", "2001:db8:1::10"
			}
			f := pkttest.Flow{V6: v6, Vlan: vlan, Proto: layers.IPProtocolTCP, Src: src, Dst: dst, Sport: 4000, Dport: 80, TTL: 17, Flags: "S", Payload: 10}
			frame := f.Frame(t)
			orig := append([]byte(nil), frame...)
			var p header.Parsed
			p.Parse(frame)
			if r := modes.DR(frame, &p, rsMAC, ourMAC); !r.OK() {
				t.Fatalf("verdict %v", r.Verdict)
			}
			checkChecksums(t, frame)
			e := header.Ethernet(frame)
			if e.Dst() != rsMAC || e.Src() != ourMAC {
				t.Errorf("macs %x %x", e.Dst(), e.Src())
			}
			// Only the MACs, the TTL and the IPv4 checksum changed.
			diff := 0
			for i := range frame {
				if frame[i] != orig[i] {
					diff++
					if i >= 12 && i != p.L3Off+8 && i != p.L3Off+7 && i != p.L3Off+10 && i != p.L3Off+11 {
						t.Errorf("byte %d changed", i)
					}
				}
			}
			if p.TTL != 16 || diff == 0 {
				t.Errorf("ttl %d", p.TTL)
			}
		}
	}
	// TTL 1 is refused, untouched.
	frame := pkttest.Flow{Proto: layers.IPProtocolUDP, Src: "1.1.1.1", Dst: "2.2.2.2", Sport: 1, Dport: 2, TTL: 1}.Frame(t)
	var p header.Parsed
	p.Parse(frame)
	if r := modes.DR(frame, &p, rsMAC, ourMAC); r.Verdict != modes.TTLExceeded {
		t.Fatalf("verdict %v", r.Verdict)
	}
}

func TestEncap(t *testing.T) {
	const headroom = 64
	for _, v6 := range []bool{false, true} {
		for _, gue := range []bool{false, true} {
			for _, partial := range []bool{false, true} {
				for _, vlan := range []bool{false, true} {
					t.Run(fmt.Sprintf("v6=%v/gue=%v/partial=%v/vlan=%v", v6, gue, partial, vlan), func(t *testing.T) {
						src, dst := "10.0.0.1", "192.168.1.10"
						if v6 {
							src, dst = "2001:db8::1", "2001:db8:1::10"
						}
						f := pkttest.Flow{V6: v6, Vlan: vlan, Proto: layers.IPProtocolTCP, Src: src, Dst: dst, Sport: 4000, Dport: 80, TTL: 17, TOS: 0xbb, DF: true, Flags: "PA", Payload: 100}
						fr := f.Frame(t)
						buf := make([]byte, headroom+len(fr)+10) // +10: link padding
						n := copy(buf[headroom:], fr) + 10
						var p header.Parsed
						p.Parse(buf[headroom : headroom+n])
						if partial {
							makePartial(t, buf[headroom:headroom+n], &p)
						}
						inner := p
						tun := &modes.Tunnel{Src: netip.MustParseAddr("172.16.0.1"), Dst: netip.MustParseAddr("172.16.0.2"), ID: 77, MTU: 1500}
						if gue {
							tun.GUEPort = 6080
							tun.GUESrcPort = modes.FlowSourcePort(&p)
						}
						csum := modes.CsumComplete
						if partial {
							csum = modes.CsumPartial
						}
						off, ln, r := modes.Encap(buf, headroom, n, &p, tun, csum)
						if !r.OK() {
							t.Fatalf("verdict %v", r.Verdict)
						}
						if off != headroom-tun.Overhead() || ln != inner.L2Len+tun.Overhead()+inner.IPLen {
							t.Fatalf("off %d len %d", off, ln)
						}
						out := buf[off : off+ln]
						pkt := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
						if vlan {
							if d, ok := pkt.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q); !ok || d.VLANIdentifier != 42 {
								t.Fatalf("vlan tag lost")
							}
						}
						var outer *layers.IPv4
						for _, l := range pkt.Layers() {
							if ip, ok := l.(*layers.IPv4); ok {
								outer = ip
								break
							}
						}
						if outer == nil {
							t.Fatalf("no outer IPv4: %v", pkt)
						}
						wantProto := layers.IPProtocolIPv4
						if v6 {
							wantProto = layers.IPProtocolIPv6
						}
						if gue {
							wantProto = layers.IPProtocolUDP
						}
						wantDF := !v6
						if outer.SrcIP.String() != "172.16.0.1" || outer.DstIP.String() != "172.16.0.2" || outer.TTL != 16 ||
							outer.Protocol != wantProto || (outer.Id == 77) == wantDF || (outer.Flags&layers.IPv4DontFragment != 0) != wantDF ||
							outer.TOS != 0xba || int(outer.Length) != tun.Overhead()+inner.IPLen {
							t.Errorf("outer header %+v", outer)
						}
						// Outer header checksum (gopacket recomputation).
						ob := gopacket.NewSerializeBuffer()
						oc := *outer
						if err := oc.SerializeTo(ob, gopacket.SerializeOptions{ComputeChecksums: true}); err != nil {
							t.Fatal(err)
						}
						if !bytes.Equal(ob.Bytes()[:20], out[inner.L2Len:inner.L2Len+20]) {
							t.Errorf("outer IPv4 checksum wrong")
						}
						innerOff := inner.L2Len + tun.Overhead()
						if gue {
							u := out[inner.L2Len+20:]
							if binary.BigEndian.Uint16(u[0:]) != tun.GUESrcPort || binary.BigEndian.Uint16(u[2:]) != 6080 ||
								int(binary.BigEndian.Uint16(u[4:])) != 12+inner.IPLen || binary.BigEndian.Uint16(u[6:]) != 0 {
								t.Errorf("udp header %x", u[:8])
							}
							wantCT := byte(4)
							if v6 {
								wantCT = 41
							}
							if !bytes.Equal(u[8:12], []byte{0, wantCT, 0, 0}) {
								t.Errorf("gue header %x", u[8:12])
							}
						}
						// The inner packet: TTL decremented, checksums complete.
						et := uint16(header.EtherTypeIPv4)
						if v6 {
							et = header.EtherTypeIPv6
						}
						innerFrame := make([]byte, 14, 14+ln)
						binary.BigEndian.PutUint16(innerFrame[12:], et)
						innerFrame = append(innerFrame, out[innerOff:]...)
						checkChecksums(t, innerFrame)
						var q header.Parsed
						q.Parse(innerFrame)
						if q.TTL != 16 || q.SrcAddr() != inner.SrcAddr() || q.DstPort != 80 || q.IPLen != inner.IPLen {
							t.Errorf("inner %+v", q)
						}
					})
				}
			}
		}
	}
}

func TestEncapRefusals(t *testing.T) {
	big := pkttest.Flow{Proto: layers.IPProtocolTCP, Src: "10.0.0.1", Dst: "10.0.0.2", Sport: 1, Dport: 2, TTL: 9, DF: true, Payload: 1460}
	nodf := big
	nodf.DF = false
	big6 := pkttest.Flow{V6: true, Proto: layers.IPProtocolUDP, Src: "::1", Dst: "::2", Sport: 1, Dport: 2, TTL: 9, Payload: 1452}
	tun := modes.Tunnel{Src: netip.MustParseAddr("172.16.0.1"), Dst: netip.MustParseAddr("172.16.0.2"), MTU: 1500}
	tests := []struct {
		name     string
		f        pkttest.Flow
		headroom int
		tun      modes.Tunnel
		want     modes.Result
	}{
		{"df-too-big", big, 64, tun, modes.Result{Verdict: modes.TooBig, MTU: 1480}},
		{"df-too-big-gue", big, 64, modes.Tunnel{Src: tun.Src, Dst: tun.Dst, MTU: 1500, GUEPort: 1}, modes.Result{Verdict: modes.TooBig, MTU: 1468}},
		{"nodf-fits-caller-fragments", nodf, 64, tun, modes.Result{Verdict: modes.OK}},
		{"v6-too-big", big6, 64, tun, modes.Result{Verdict: modes.TooBig, MTU: 1480}},
		{"no-headroom", big, 19, modes.Tunnel{Src: tun.Src, Dst: tun.Dst}, modes.Result{Verdict: modes.NoHeadroom}},
		{"tiny-mtu", big, 64, modes.Tunnel{Src: tun.Src, Dst: tun.Dst, MTU: 87}, modes.Result{Verdict: modes.Unsupported}},
		{"ttl", pkttest.Flow{Proto: layers.IPProtocolUDP, Src: "10.0.0.1", Dst: "10.0.0.2", Sport: 1, Dport: 2, TTL: 1}, 64, tun, modes.Result{Verdict: modes.TTLExceeded}},
		{"mixed-outer", big, 64, modes.Tunnel{Src: netip.MustParseAddr("172.16.0.1"), Dst: netip.MustParseAddr("::2")}, modes.Result{Verdict: modes.Unsupported}},
		{"v6-outer-below-1280", big, 64, modes.Tunnel{Src: netip.MustParseAddr("::1"), Dst: netip.MustParseAddr("::2"), MTU: 1319}, modes.Result{Verdict: modes.Unsupported}},
		{"v6-outer-df-too-big", big, 64, modes.Tunnel{Src: netip.MustParseAddr("::1"), Dst: netip.MustParseAddr("::2"), MTU: 1500, GRE: true, Csum: true}, modes.Result{Verdict: modes.TooBig, MTU: 1452}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fr := tc.f.Frame(t)
			buf := append(make([]byte, tc.headroom), fr...)
			var p header.Parsed
			p.Parse(buf[tc.headroom:])
			_, _, r := modes.Encap(buf, tc.headroom, len(fr), &p, &tc.tun, modes.CsumComplete)
			if r != tc.want {
				t.Fatalf("got %+v want %+v", r, tc.want)
			}
		})
	}
}

func TestCheckMTU(t *testing.T) {
	df := pkttest.Flow{Proto: layers.IPProtocolTCP, Src: "10.0.0.1", Dst: "10.0.0.2", Sport: 1, Dport: 2, TTL: 9, DF: true, Payload: 1000}.Frame(t)
	var p header.Parsed
	p.Parse(df)
	if r := modes.CheckMTU(&p, 1000, 0); r.Verdict != modes.TooBig || r.MTU != 1000 {
		t.Errorf("df: %+v", r)
	}
	if r := modes.CheckMTU(&p, p.IPLen, 0); !r.OK() {
		t.Errorf("exact fit: %+v", r)
	}
	// A super-frame is checked by its segments: the IP and TCP headers
	// plus the GSO size.
	seg := uint16(500 - (p.PayloadOff - p.L3Off))
	if r := modes.CheckMTU(&p, 500, seg); !r.OK() {
		t.Errorf("super-frame, segments fit: %+v", r)
	}
	if r := modes.CheckMTU(&p, 500, seg+1); r.Verdict != modes.TooBig || r.MTU != 500 {
		t.Errorf("super-frame, segments too big: %+v", r)
	}
	p.DF = false
	if r := modes.CheckMTU(&p, 1000, 0); !r.OK() {
		t.Errorf("no df: %+v", r)
	}
}

func TestFlowSourcePort(t *testing.T) {
	seen := map[uint16]bool{}
	for i := range 200 {
		fr := pkttest.Flow{Proto: layers.IPProtocolTCP, Src: "10.0.0.1", Dst: "10.0.0.2", Sport: uint16(1000 + i), Dport: 80, TTL: 9}.Frame(t)
		var p header.Parsed
		p.Parse(fr)
		sp := modes.FlowSourcePort(&p)
		if sp < 32768 || sp > 60999 {
			t.Fatalf("port %d out of range", sp)
		}
		if modes.FlowSourcePort(&p) != sp {
			t.Fatal("not deterministic")
		}
		seen[sp] = true
	}
	if len(seen) < 190 {
		t.Errorf("only %d distinct ports for 200 flows", len(seen))
	}
	// The hash covers the addresses as in the IP header (4 bytes for
	// IPv4), whatever form Parsed keeps them in: these values were
	// computed before Parsed moved to the As16 form and must not change
	// (a flow's outer port, and the real server's receive queue, would).
	for _, tc := range []struct {
		f    pkttest.Flow
		want uint16
	}{
		{pkttest.Flow{Proto: layers.IPProtocolTCP, Src: "10.0.0.1", Dst: "10.0.0.2", Sport: 1000, Dport: 80, TTL: 9}, 54507},
		{pkttest.Flow{Proto: layers.IPProtocolUDP, Src: "192.0.2.7", Dst: "198.51.100.1", Sport: 5353, Dport: 53, TTL: 9}, 57389},
		{pkttest.Flow{V6: true, Proto: layers.IPProtocolTCP, Src: "2001:db8::1", Dst: "2001:db8:1::80", Sport: 40000, Dport: 443, TTL: 9}, 46157},
	} {
		var p header.Parsed
		p.Parse(tc.f.Frame(t))
		if got := modes.FlowSourcePort(&p); got != tc.want {
			t.Errorf("%s -> %s: port %d, want %d", tc.f.Src, tc.f.Dst, got, tc.want)
		}
	}
}

func TestOtherNoAllocs(t *testing.T) {
	fr := pkttest.Flow{Proto: layers.IPProtocolTCP, Src: "10.0.0.1", Dst: "10.0.0.2", Sport: 1, Dport: 2, TTL: 255, Payload: 100}.Frame(t)
	buf := append(make([]byte, 64), fr...)
	var p header.Parsed
	tun := &modes.Tunnel{Src: netip.MustParseAddr("172.16.0.1"), Dst: netip.MustParseAddr("172.16.0.2"), GUEPort: 6080}
	if n := testing.AllocsPerRun(100, func() {
		copy(buf[64:], fr)
		p.Parse(buf[64:])
		tun.GUESrcPort = modes.FlowSourcePort(&p)
		modes.Encap(buf, 64, len(fr), &p, tun, modes.CsumComplete)
	}); n != 0 {
		t.Errorf("Encap allocates %v", n)
	}
	if n := testing.AllocsPerRun(100, func() {
		copy(buf[64:], fr)
		p.Parse(buf[64:])
		modes.DR(buf[64:], &p, [6]byte{1}, [6]byte{2})
	}); n != 0 {
		t.Errorf("DR allocates %v", n)
	}
	a := natV4
	icmp := icmpError(t, false, a.rip.Addr(), a.cip.Addr(), 255, quotedPacket(t, false, layers.IPProtocolTCP, a.cip, a.rip))
	if n := testing.AllocsPerRun(100, func() {
		p.Parse(icmp)
		p.TTL = 255
		modes.NATICMPOut(icmp, &p, a.vip)
	}); n != 0 {
		t.Errorf("NATICMPOut allocates %v", n)
	}
}

func BenchmarkEncap(b *testing.B) {
	for _, gue := range []bool{false, true} {
		b.Run(fmt.Sprintf("gue=%v", gue), func(b *testing.B) {
			fr := pkttest.Flow{Proto: layers.IPProtocolTCP, Src: "10.0.0.1", Dst: "10.0.0.2", Sport: 1, Dport: 2, TTL: 255, Payload: 1400}.Frame(b)
			buf := append(make([]byte, 64), fr...)
			var p header.Parsed
			p.Parse(buf[64:])
			tun := &modes.Tunnel{Src: netip.MustParseAddr("172.16.0.1"), Dst: netip.MustParseAddr("172.16.0.2"), MTU: 1500}
			if gue {
				tun.GUEPort = 6080
				tun.GUESrcPort = modes.FlowSourcePort(&p)
			}
			b.ReportAllocs()
			for b.Loop() {
				// Re-prepare the frame's Ethernet header (Encap moved it) and TTL.
				copy(buf[64:78], fr[:14])
				buf[64+14+8], p.TTL = 255, 255
				modes.Encap(buf, 64, len(fr), &p, tun, modes.CsumComplete)
			}
		})
	}
}

func BenchmarkDR(b *testing.B) {
	fr := pkttest.Flow{Proto: layers.IPProtocolTCP, Src: "10.0.0.1", Dst: "10.0.0.2", Sport: 1, Dport: 2, TTL: 255, Payload: 1400}.Frame(b)
	var p header.Parsed
	p.Parse(fr)
	b.ReportAllocs()
	for b.Loop() {
		fr[14+8], p.TTL = 255, 255
		modes.DR(fr, &p, [6]byte{1}, [6]byte{2})
	}
}

func BenchmarkNATICMP(b *testing.B) {
	a := natV4
	icmp := icmpError(b, false, a.rip.Addr(), a.cip.Addr(), 255, quotedPacket(b, false, layers.IPProtocolTCP, a.cip, a.rip))
	var p header.Parsed
	p.Parse(icmp)
	b.ReportAllocs()
	for b.Loop() {
		icmp[14+8], p.TTL = 255, 255
		modes.NATICMPOut(icmp, &p, a.vip)
	}
}
