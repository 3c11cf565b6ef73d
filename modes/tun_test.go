package modes_test

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/internal/pkttest"
	"github.com/uvs-lb/uvs/modes"
)

// sum16 is a plain RFC 1071 sum, the test's own, independent of
// header.Checksum.
func sum16(b []byte, init uint32) uint16 {
	s := init
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// TestEncapKinds encapsulates IPv4 and IPv6 packets in IPIP, GUE and GRE
// (with and without checksums) under IPv4 and IPv6 outer headers and
// checks every outer field with gopacket's decoding.
func TestEncapKinds(t *testing.T) {
	const headroom = 64
	type kind struct {
		name string
		gue  bool
		gre  bool
		csum bool
	}
	kinds := []kind{{"ipip", false, false, false}, {"gue", true, false, false}, {"gue-csum", true, false, true},
		{"gre", false, true, false}, {"gre-csum", false, true, true}}
	for _, outer6 := range []bool{false, true} {
		for _, inner6 := range []bool{false, true} {
			for _, k := range kinds {
				for _, df := range []bool{false, true} {
					t.Run(fmt.Sprintf("outer6=%v/inner6=%v/%s/df=%v", outer6, inner6, k.name, df), func(t *testing.T) {
						src, dst := "10.0.0.1", "192.168.1.10"
						if inner6 {
							src, dst = "2001:db8::1", "2001:db8:1::10"
						}
						f := pkttest.Flow{V6: inner6, Proto: layers.IPProtocolUDP, Src: src, Dst: dst, Sport: 4000, Dport: 9000, TTL: 17, TOS: 0xbb, DF: df && !inner6, Payload: 101}
						fr := f.Frame(t)
						buf := make([]byte, headroom+len(fr))
						n := copy(buf[headroom:], fr)
						var p header.Parsed
						p.Parse(buf[headroom : headroom+n])
						inner := p
						tun := &modes.Tunnel{Src: netip.MustParseAddr("172.16.0.1"), Dst: netip.MustParseAddr("172.16.0.2"), ID: 0x1234, MTU: 1500, GRE: k.gre, Csum: k.csum}
						if outer6 {
							tun.Src, tun.Dst = netip.MustParseAddr("2001:db8:2::1"), netip.MustParseAddr("2001:db8:2::11")
						}
						if k.gue {
							tun.GUEPort, tun.GUESrcPort = 6080, 40001
						}
						off, ln, r := modes.Encap(buf, headroom, n, &p, tun, modes.CsumComplete)
						if !r.OK() {
							t.Fatalf("verdict %v", r.Verdict)
						}
						wantOv := 20
						if outer6 {
							wantOv = 40
						}
						switch {
						case k.gue:
							wantOv += 12
						case k.gre && k.csum:
							wantOv += 8
						case k.gre:
							wantOv += 4
						}
						if tun.Overhead() != wantOv || off != headroom-wantOv || ln != 14+wantOv+inner.IPLen {
							t.Fatalf("overhead %d off %d len %d", tun.Overhead(), off, ln)
						}
						out := buf[off : off+ln]
						pkt := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
						innerProto := layers.IPProtocolIPv4
						innerEther := layers.EthernetTypeIPv4
						if inner6 {
							innerProto, innerEther = layers.IPProtocolIPv6, layers.EthernetTypeIPv6
						}
						wantNext := innerProto
						switch {
						case k.gue:
							wantNext = layers.IPProtocolUDP
						case k.gre:
							wantNext = layers.IPProtocolGRE
						}
						ls := pkt.Layers()
						var encOff int
						if outer6 {
							o, ok := ls[1].(*layers.IPv6)
							if !ok || pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet).EthernetType != layers.EthernetTypeIPv6 {
								t.Fatalf("no outer IPv6: %v", pkt)
							}
							if o.SrcIP.String() != "2001:db8:2::1" || o.DstIP.String() != "2001:db8:2::11" || o.HopLimit != 16 ||
								o.NextHeader != wantNext || o.FlowLabel != 0 || o.TrafficClass != 0xba || int(o.Length) != wantOv-40+inner.IPLen {
								t.Errorf("outer IPv6 %+v", o)
							}
							encOff = 14 + 40
						} else {
							o, ok := ls[1].(*layers.IPv4)
							if !ok {
								t.Fatalf("no outer IPv4: %v", pkt)
							}
							wantDF := df && !inner6
							wantID := uint16(0x1234)
							if wantDF {
								wantID = 0 // ip_select_ident with DF
							}
							if o.SrcIP.String() != "172.16.0.1" || o.DstIP.String() != "172.16.0.2" || o.TTL != 16 ||
								o.Protocol != wantNext || o.Id != wantID || (o.Flags&layers.IPv4DontFragment != 0) != wantDF ||
								o.TOS != 0xba || int(o.Length) != wantOv+inner.IPLen {
								t.Errorf("outer IPv4 %+v", o)
							}
							if sum16(out[14:34], 0) != 0xffff {
								t.Errorf("outer IPv4 checksum wrong")
							}
							encOff = 14 + 20
						}
						enc := out[encOff:]
						switch {
						case k.gre:
							g, ok := pkt.Layer(layers.LayerTypeGRE).(*layers.GRE)
							if !ok || g.ChecksumPresent != k.csum || g.Version != 0 || g.Protocol != innerEther || g.KeyPresent || g.SeqPresent {
								t.Fatalf("GRE %+v", g)
							}
							if k.csum && sum16(enc, 0) != 0xffff {
								t.Errorf("GRE checksum %#x does not verify", g.Checksum)
							}
						case k.gue:
							u, ok := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
							if !ok || u.SrcPort != 40001 || u.DstPort != 6080 || int(u.Length) != len(enc) {
								t.Fatalf("UDP %+v", u)
							}
							if !k.csum {
								if u.Checksum != 0 {
									t.Errorf("UDP checksum %#x, want 0", u.Checksum)
								}
							} else {
								var ph uint32
								if outer6 {
									ph = uint32(sum16(out[14+8:14+40], 0))
								} else {
									ph = uint32(sum16(out[14+12:14+20], 0))
								}
								ph += 17 + uint32(len(enc))
								if u.Checksum == 0 || sum16(enc, ph) != 0xffff {
									t.Errorf("UDP checksum %#x does not verify", u.Checksum)
								}
							}
							if enc[8] != 0 || enc[9] != byte(innerProto) || enc[10] != 0 || enc[11] != 0 {
								t.Errorf("GUE header %x", enc[8:12])
							}
						}
						// The inner packet follows, TTL decremented, checksums intact.
						innerFrame := make([]byte, 14, 14+ln)
						binary.BigEndian.PutUint16(innerFrame[12:], uint16(innerEther))
						innerFrame = append(innerFrame, out[14+wantOv:]...)
						checkChecksums(t, innerFrame)
						var q header.Parsed
						q.Parse(innerFrame)
						if q.Reason != header.ReasonNone || q.TTL != 16 || q.SrcAddr() != inner.SrcAddr() || q.DstPort != 9000 {
							t.Errorf("inner %+v", q)
						}
					})
				}
			}
		}
	}
}

// TestEncapNoAllocsKinds: GRE and IPv6-outer encapsulation allocate
// nothing.
func TestEncapNoAllocsKinds(t *testing.T) {
	fr := pkttest.Flow{Proto: layers.IPProtocolTCP, Src: "10.0.0.1", Dst: "10.0.0.2", Sport: 1, Dport: 2, TTL: 64, DF: true, Flags: "PA", Payload: 200}.Frame(t)
	buf := make([]byte, 64+len(fr))
	var p header.Parsed
	for _, tun := range []modes.Tunnel{
		{Src: netip.MustParseAddr("172.16.0.1"), Dst: netip.MustParseAddr("172.16.0.2"), GRE: true, Csum: true},
		{Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8::2"), GUEPort: 6080, Csum: true},
	} {
		if n := testing.AllocsPerRun(100, func() {
			copy(buf[64:], fr)
			p.Parse(buf[64:])
			modes.Encap(buf, 64, len(fr), &p, &tun, modes.CsumComplete)
		}); n != 0 {
			t.Errorf("%+v: %v allocations", tun, n)
		}
	}
}

// BenchmarkEncapKinds measures one encapsulation of a 1000-byte TCP
// packet per kind (the frame is restored between runs).
func BenchmarkEncapKinds(b *testing.B) {
	fr := pkttest.Flow{Proto: layers.IPProtocolTCP, Src: "10.0.0.1", Dst: "10.0.0.2", Sport: 1, Dport: 2, TTL: 64, DF: true, Flags: "PA", Payload: 1000}.Frame(b)
	v4s, v4d := netip.MustParseAddr("172.16.0.1"), netip.MustParseAddr("172.16.0.2")
	v6s, v6d := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	for _, bc := range []struct {
		name string
		tun  modes.Tunnel
	}{
		{"ipip", modes.Tunnel{Src: v4s, Dst: v4d}},
		{"gre", modes.Tunnel{Src: v4s, Dst: v4d, GRE: true}},
		{"gre-csum", modes.Tunnel{Src: v4s, Dst: v4d, GRE: true, Csum: true}},
		{"gue-csum", modes.Tunnel{Src: v4s, Dst: v4d, GUEPort: 6080, Csum: true}},
		{"ip6", modes.Tunnel{Src: v6s, Dst: v6d}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			buf := make([]byte, 64+len(fr))
			var p header.Parsed
			b.ReportAllocs()
			for b.Loop() {
				copy(buf[64:], fr)
				p.Parse(buf[64:])
				modes.Encap(buf, 64, len(fr), &p, &bc.tun, modes.CsumComplete)
			}
		})
	}
}
