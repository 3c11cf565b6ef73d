package modes_test

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/internal/fuzzwatch"
	"github.com/uvs-lb/uvs/internal/pkttest"
	"github.com/uvs-lb/uvs/modes"
)

// NAT64 (IPv6 client and VIP, IPv4 real server and local address) and
// NAT46 (the reverse) addresses of one FULLNAT connection.
var (
	x64 = natAddrs{cip: ap("[2001:db8::1]:40000"), vip: ap("[2001:db8:1::10]:80"), rip: ap("192.168.88.151:8080"), lip: ap("192.168.88.241:5001")}
	x46 = natAddrs{cip: ap("10.0.0.1:40000"), vip: ap("192.168.1.10:80"), rip: ap("[fd00::2]:8080"), lip: ap("[fd00::1]:5001")}
)

// headroom is the space in front of a test frame, as a backend leaves it.
const headroom = 64

// inBuf returns a buffer holding frame after headroom bytes.
func inBuf(frame []byte) []byte {
	b := make([]byte, headroom+len(frame))
	copy(b[headroom:], frame)
	return b
}

type xlateCase struct {
	name           string
	v6             bool // the input's family
	inSrc, inDst   netip.AddrPort
	outSrc, outDst netip.AddrPort
}

func xlateCases() []xlateCase {
	return []xlateCase{
		{"nat64-request", true, x64.cip, x64.vip, x64.lip, x64.rip},
		{"nat64-reply", false, x64.rip, x64.lip, x64.vip, x64.cip},
		{"nat46-request", false, x46.cip, x46.vip, x46.lip, x46.rip},
		{"nat46-reply", true, x46.rip, x46.lip, x46.vip, x46.cip},
	}
}

// TestFullNATXlate: every direction, TCP and UDP, each checksum state,
// with and without a VLAN tag, IPv4 options and IPv6 extension headers:
// the output decodes (gopacket) as a packet of the other family with the
// new endpoints, TTL-1, the TOS kept, the payload unchanged and every
// checksum valid.
func TestFullNATXlate(t *testing.T) {
	for _, tc := range xlateCases() {
		for _, proto := range []layers.IPProtocol{layers.IPProtocolTCP, layers.IPProtocolUDP} {
			for _, csum := range []modes.Csum{modes.CsumComplete, modes.CsumPartial, modes.CsumKeepPartial} {
				for _, vlan := range []bool{false, true} {
					for _, opts := range []bool{false, true} {
						name := fmt.Sprintf("%s/%v/csum=%v/vlan=%v/opts=%v", tc.name, proto, csum, vlan, opts)
						t.Run(name, func(t *testing.T) {
							f := pkttest.Flow{V6: tc.v6, Vlan: vlan, Proto: proto, Src: tc.inSrc.Addr().String(), Dst: tc.inDst.Addr().String(),
								Sport: tc.inSrc.Port(), Dport: tc.inDst.Port(), TTL: 64, TOS: 0x28, DF: true, Flags: "PA", Payload: 333,
								IPOpts: opts && !tc.v6, Ext: opts && tc.v6}
							runXlate(t, f, tc, csum, false)
						})
					}
				}
			}
		}
	}
}

// TestFullNATXlateUDPZeroChecksum: RFC 7915 section 4.5: an IPv4 UDP
// datagram without checksum gets one for IPv6.
func TestFullNATXlateUDPZeroChecksum(t *testing.T) {
	tc := xlateCases()[1] // nat64-reply: IPv4 → IPv6
	f := pkttest.Flow{Proto: layers.IPProtocolUDP, Src: tc.inSrc.Addr().String(), Dst: tc.inDst.Addr().String(),
		Sport: tc.inSrc.Port(), Dport: tc.inDst.Port(), TTL: 64, Payload: 21}
	runXlate(t, f, tc, modes.CsumComplete, true)
}

func runXlate(t *testing.T, f pkttest.Flow, tc xlateCase, csum modes.Csum, zeroUDP bool) []byte {
	t.Helper()
	buf := inBuf(f.Frame(t))
	n := len(buf) - headroom
	var p header.Parsed
	p.Parse(buf[headroom:])
	if p.Reason != header.ReasonNone {
		t.Fatalf("input: %v", p.Reason)
	}
	if csum != modes.CsumComplete {
		makePartial(t, buf[headroom:], &p)
	}
	if zeroUDP {
		binary.BigEndian.PutUint16(buf[headroom+p.L4Off+6:], 0)
	}
	r, off, nn := modes.FullNATXlate(buf, headroom, n, &p, tc.outSrc, tc.outDst, csum)
	if !r.OK() {
		t.Fatalf("verdict %v", r.Verdict)
	}
	out := buf[off : off+nn]
	if csum == modes.CsumKeepPartial {
		want := append([]byte(nil), out...)
		makePartial(t, want, &p)
		if string(want) != string(out) {
			t.Fatalf("partial checksum not the new pseudo-header sum:\n got  %x\n want %x", out, want)
		}
		completePartial(out, &p)
	}
	checkChecksums(t, out)
	pkt := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
	var src, dst netip.Addr
	var ttl, tos uint8
	switch ip := pkt.NetworkLayer().(type) {
	case *layers.IPv4:
		if !tc.v6 {
			t.Fatalf("IPv4 in, IPv4 out")
		}
		src, dst, ttl, tos = netip.AddrFrom4([4]byte(ip.SrcIP.To4())), netip.AddrFrom4([4]byte(ip.DstIP.To4())), ip.TTL, ip.TOS
		if ip.Flags&layers.IPv4DontFragment == 0 || ip.IHL != 5 || ip.Id != 0 {
			t.Errorf("IPv4 header: flags %v ihl %d id %d, want DF, 5, 0", ip.Flags, ip.IHL, ip.Id)
		}
	case *layers.IPv6:
		if tc.v6 {
			t.Fatalf("IPv6 in, IPv6 out")
		}
		src, dst, ttl, tos = netip.AddrFrom16([16]byte(ip.SrcIP)), netip.AddrFrom16([16]byte(ip.DstIP)), ip.HopLimit, ip.TrafficClass
		if ip.FlowLabel != 0 || ip.NextHeader != f.Proto {
			t.Errorf("IPv6 header: flow %d next %v", ip.FlowLabel, ip.NextHeader)
		}
	default:
		t.Fatalf("no IP layer in %x", out)
	}
	if f.Vlan != (pkt.Layer(layers.LayerTypeDot1Q) != nil) {
		t.Errorf("VLAN tag lost or added")
	}
	var sport, dport uint16
	var payload []byte
	switch l4 := pkt.TransportLayer().(type) {
	case *layers.TCP:
		sport, dport, payload = uint16(l4.SrcPort), uint16(l4.DstPort), l4.Payload
		if l4.Seq != 1000 || l4.Ack != 2000 {
			t.Errorf("tcp header changed: %+v", l4)
		}
	case *layers.UDP:
		sport, dport, payload = uint16(l4.SrcPort), uint16(l4.DstPort), l4.Payload
		if l4.Checksum == 0 {
			t.Errorf("udp checksum 0 over IPv6")
		}
	}
	if got := netip.AddrPortFrom(src, sport); got != tc.outSrc {
		t.Errorf("src %v want %v", got, tc.outSrc)
	}
	if got := netip.AddrPortFrom(dst, dport); got != tc.outDst {
		t.Errorf("dst %v want %v", got, tc.outDst)
	}
	if ttl != f.TTL-1 || tos != f.TOS {
		t.Errorf("ttl %d tos %#x, want %d %#x", ttl, tos, f.TTL-1, f.TOS)
	}
	if len(payload) != f.Payload {
		t.Fatalf("payload %d bytes, want %d", len(payload), f.Payload)
	}
	for i, b := range payload {
		if b != byte(i*7+3) {
			t.Fatalf("payload changed at %d", i)
		}
	}
	if p.SrcAddr() != tc.outSrc.Addr() || p.DstAddr() != tc.outDst.Addr() || p.SrcPort != tc.outSrc.Port() || p.DstPort != tc.outDst.Port() {
		t.Errorf("parsed does not describe the output")
	}
	return out
}

// mssOf returns the MSS option of a TCP frame.
func mssOf(t *testing.T, frame []byte) uint16 {
	t.Helper()
	tcp, _ := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default).TransportLayer().(*layers.TCP)
	if tcp == nil {
		t.Fatal("no TCP")
	}
	for _, o := range tcp.Options {
		if o.OptionType == layers.TCPOptionKindMSS {
			return binary.BigEndian.Uint16(o.OptionData)
		}
	}
	t.Fatal("no MSS option")
	return 0
}

// TestFullNATXlateMSS: a SYN translated from IPv6 to IPv4 has its MSS
// lowered by 20 (the IPv4 peer's segments grow by 20 bytes on their way
// back to IPv6); a SYN going to IPv6 and a segment without SYN keep it.
// The input MSS is 1460.
func TestFullNATXlateMSS(t *testing.T) {
	cases := xlateCases()
	for _, row := range []struct {
		tc    xlateCase
		flags string
		want  uint16
	}{
		{cases[0], "S", 1440},  // client's SYN, IPv6 → IPv4
		{cases[3], "SA", 1440}, // NAT46 real server's SYN-ACK, IPv6 → IPv4
		{cases[1], "SA", 1460}, // IPv4 → IPv6
		{cases[0], "A", 1460},  // not a SYN
	} {
		for _, csum := range []modes.Csum{modes.CsumComplete, modes.CsumPartial, modes.CsumKeepPartial} {
			t.Run(fmt.Sprintf("%s/%s/%v", row.tc.name, row.flags, csum), func(t *testing.T) {
				f := pkttest.Flow{V6: row.tc.v6, Proto: layers.IPProtocolTCP, Src: row.tc.inSrc.Addr().String(), Dst: row.tc.inDst.Addr().String(),
					Sport: row.tc.inSrc.Port(), Dport: row.tc.inDst.Port(), TTL: 64, Flags: row.flags, Payload: 10}
				buf := inBuf(f.Frame(t))
				var p header.Parsed
				p.Parse(buf[headroom:])
				if csum != modes.CsumComplete {
					makePartial(t, buf[headroom:], &p)
				}
				r, off, n := modes.FullNATXlate(buf, headroom, len(buf)-headroom, &p, row.tc.outSrc, row.tc.outDst, csum)
				if !r.OK() {
					t.Fatalf("verdict %v", r.Verdict)
				}
				out := buf[off : off+n]
				if csum == modes.CsumKeepPartial {
					completePartial(out, &p)
				}
				checkChecksums(t, out)
				if got := mssOf(t, out); got != row.want {
					t.Errorf("MSS %d, want %d", got, row.want)
				}
			})
		}
	}
}

// TestFullNATXlateRefused: what FullNATXlate refuses leaves the frame as
// it was.
func TestFullNATXlateRefused(t *testing.T) {
	tc := xlateCases()[0]
	f := pkttest.Flow{V6: true, Proto: layers.IPProtocolTCP, Src: tc.inSrc.Addr().String(), Dst: tc.inDst.Addr().String(),
		Sport: tc.inSrc.Port(), Dport: tc.inDst.Port(), TTL: 64, Flags: "S", Payload: 10}
	for _, row := range []struct {
		name     string
		src, dst netip.AddrPort
		off, ttl int
		want     modes.Verdict
	}{
		{"same-family", x46.lip, x46.rip, headroom, 64, modes.Unsupported},
		{"mixed-endpoints", tc.outSrc, x46.rip, headroom, 64, modes.Unsupported},
		{"ttl", tc.outSrc, tc.outDst, headroom, 1, modes.TTLExceeded},
	} {
		t.Run(row.name, func(t *testing.T) {
			buf := inBuf(f.Frame(t))
			buf[headroom+14+7] = byte(row.ttl)
			before := string(buf)
			var p header.Parsed
			p.Parse(buf[headroom:])
			r, off, n := modes.FullNATXlate(buf, row.off, len(buf)-headroom, &p, row.src, row.dst, modes.CsumComplete)
			if r.Verdict != row.want || off != row.off || n != len(buf)-headroom || string(buf) != before {
				t.Errorf("verdict %v off %d: want %v and the frame unchanged", r.Verdict, off, row.want)
			}
		})
	}
	// IPv4 → IPv6 grows by 20 bytes: without headroom it is refused.
	r4 := xlateCases()[1]
	g := pkttest.Flow{Proto: layers.IPProtocolTCP, Src: r4.inSrc.Addr().String(), Dst: r4.inDst.Addr().String(),
		Sport: r4.inSrc.Port(), Dport: r4.inDst.Port(), TTL: 64, Flags: "A", Payload: 10}.Frame(t)
	before := string(g)
	var p header.Parsed
	p.Parse(g)
	if r, _, _ := modes.FullNATXlate(g, 0, len(g), &p, r4.outSrc, r4.outDst, modes.CsumComplete); r.Verdict != modes.NoHeadroom || string(g) != before {
		t.Errorf("no headroom: verdict %v", r.Verdict)
	}
}

// TestXlateCheckMTU: the size checked is the translated one and the MTU
// reported is in the sender's family.
func TestXlateCheckMTU(t *testing.T) {
	mk := func(v6 bool, payload int) header.Parsed {
		tc := xlateCases()[1]
		if v6 {
			tc = xlateCases()[0]
		}
		var p header.Parsed
		p.Parse(pkttest.Flow{V6: v6, Proto: layers.IPProtocolUDP, Src: tc.inSrc.Addr().String(), Dst: tc.inDst.Addr().String(),
			Sport: 1, Dport: 2, TTL: 64, Payload: payload}.Frame(t))
		return p
	}
	p4 := mk(false, 1472) // 1500 bytes of IPv4: 1520 as IPv6
	if r := modes.XlateCheckMTU(&p4, 1500, 0); r.Verdict != modes.TooBig || r.MTU != 1480 {
		t.Errorf("4→6 1500 on 1500: %v %d, want too-big 1480", r.Verdict, r.MTU)
	}
	if r := modes.XlateCheckMTU(&p4, 1520, 0); !r.OK() {
		t.Errorf("4→6 fits 1520: %v", r.Verdict)
	}
	p6 := mk(true, 1452) // 1500 bytes of IPv6: 1480 as IPv4
	if r := modes.XlateCheckMTU(&p6, 1480, 0); !r.OK() {
		t.Errorf("6→4 fits 1480: %v", r.Verdict)
	}
	if r := modes.XlateCheckMTU(&p6, 1400, 0); r.Verdict != modes.TooBig || r.MTU != 1420 {
		t.Errorf("6→4 on 1400: %v %d, want too-big 1420", r.Verdict, r.MTU)
	}
}

// icmpErr builds an ICMP error of the given type, code and MTU/pointer
// word from src to dst, quoting quoted (an IP packet of the same family).
func icmpErr(t testing.TB, v6 bool, src, dst netip.Addr, typ, code uint8, rest uint32, quoted []byte) []byte {
	var w [4]byte
	binary.BigEndian.PutUint32(w[:], rest)
	if v6 {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, code)}
		if err := ic.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		return pkttest.Serialize(t, append(pkttest.L2(false, layers.EthernetTypeIPv6), ip, ic, gopacket.Payload(append(w[:], quoted...)))...)
	}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, code), Id: uint16(rest >> 16), Seq: uint16(rest)}
	return pkttest.Serialize(t, append(pkttest.L2(false, layers.EthernetTypeIPv4), ip, ic, gopacket.Payload(quoted))...)
}

type icmpXlateCase struct {
	name                 string
	v6                   bool // the error's family
	typ, code            uint8
	rest                 uint32
	outerSrc, outerDst   netip.Addr
	qIn1, qIn2           netip.AddrPort // the quoted packet's endpoints, in
	qOut1, qOut2         netip.AddrPort // and out
	wantTyp, wantCode    uint8
	wantRest             uint32
	router               netip.Addr
	proto                layers.IPProtocol
	quotedLen, wantTotal int // 0: not checked
}

// TestFullNATXlateICMP: ICMP errors each way across families. NAT64: the
// IPv4 real server's error about the request LIP→RIP becomes the VIP's
// ICMPv6 error to the client quoting CIP→VIP; the client's ICMPv6 error
// about a reply VIP→CIP becomes an ICMPv4 error from LIP to RIP quoting
// RIP→LIP. NAT46 the same with the families swapped. Types, codes and
// MTUs per RFC 7915; checksums (outer, quoted IPv4 header, ICMP with the
// ICMPv6 pseudo-header, quoted L4) verified.
func TestFullNATXlateICMP(t *testing.T) {
	r4, r6 := netip.MustParseAddr("192.168.88.1"), netip.MustParseAddr("2001:db8:9::9")
	cases := []icmpXlateCase{
		{name: "nat64-out-port-unreach", v6: false, typ: 3, code: 3, outerSrc: x64.vip.Addr(), outerDst: x64.cip.Addr(),
			qIn1: x64.lip, qIn2: x64.rip, qOut1: x64.cip, qOut2: x64.vip, wantTyp: 1, wantCode: 4, router: r4},
		{name: "nat64-out-frag-needed", v6: false, typ: 3, code: 4, rest: 1400, outerSrc: x64.vip.Addr(), outerDst: x64.cip.Addr(),
			qIn1: x64.lip, qIn2: x64.rip, qOut1: x64.cip, qOut2: x64.vip, wantTyp: 2, wantCode: 0, wantRest: 1420, router: r4},
		{name: "nat64-out-time-exceeded", v6: false, typ: 11, code: 0, outerSrc: x64.vip.Addr(), outerDst: x64.cip.Addr(),
			qIn1: x64.lip, qIn2: x64.rip, qOut1: x64.cip, qOut2: x64.vip, wantTyp: 3, wantCode: 0, router: r4},
		{name: "nat64-out-big-quote-cut", v6: false, typ: 3, code: 3, outerSrc: x64.vip.Addr(), outerDst: x64.cip.Addr(),
			qIn1: x64.lip, qIn2: x64.rip, qOut1: x64.cip, qOut2: x64.vip, wantTyp: 1, wantCode: 4, router: r4,
			quotedLen: 1400, wantTotal: 1280},
		{name: "nat64-in-ptb", v6: true, typ: 2, code: 0, rest: 1280, outerSrc: x64.lip.Addr(), outerDst: x64.rip.Addr(),
			qIn1: x64.vip, qIn2: x64.cip, qOut1: x64.rip, qOut2: x64.lip, wantTyp: 3, wantCode: 4, wantRest: 1260, router: r6},
		{name: "nat64-in-port-unreach", v6: true, typ: 1, code: 4, outerSrc: x64.lip.Addr(), outerDst: x64.rip.Addr(),
			qIn1: x64.vip, qIn2: x64.cip, qOut1: x64.rip, qOut2: x64.lip, wantTyp: 3, wantCode: 3, router: r6},
		{name: "nat46-out-admin", v6: true, typ: 1, code: 1, outerSrc: x46.vip.Addr(), outerDst: x46.cip.Addr(),
			qIn1: x46.lip, qIn2: x46.rip, qOut1: x46.cip, qOut2: x46.vip, wantTyp: 3, wantCode: 10, router: r6},
		{name: "nat46-out-param-next-header", v6: true, typ: 4, code: 1, rest: 6, outerSrc: x46.vip.Addr(), outerDst: x46.cip.Addr(),
			qIn1: x46.lip, qIn2: x46.rip, qOut1: x46.cip, qOut2: x46.vip, wantTyp: 3, wantCode: 2, router: r6},
		{name: "nat46-in-host-unreach", v6: false, typ: 3, code: 1, outerSrc: x46.lip.Addr(), outerDst: x46.rip.Addr(),
			qIn1: x46.vip, qIn2: x46.cip, qOut1: x46.rip, qOut2: x46.lip, wantTyp: 1, wantCode: 0, router: r4},
		{name: "nat46-in-proto-unreach", v6: false, typ: 3, code: 2, outerSrc: x46.lip.Addr(), outerDst: x46.rip.Addr(),
			qIn1: x46.vip, qIn2: x46.cip, qOut1: x46.rip, qOut2: x46.lip, wantTyp: 4, wantCode: 1, wantRest: 6, router: r4},
	}
	for _, tc := range cases {
		for _, proto := range []layers.IPProtocol{layers.IPProtocolTCP, layers.IPProtocolUDP} {
			tc.proto = proto
			t.Run(tc.name+"/"+proto.String(), func(t *testing.T) { runXlateICMP(t, tc) })
		}
	}
}

func runXlateICMP(t *testing.T, tc icmpXlateCase) {
	t.Helper()
	pl := 32
	if tc.quotedLen > 0 {
		pl = tc.quotedLen
	}
	qf := pkttest.Flow{V6: tc.v6, Proto: tc.proto, Src: tc.qIn1.Addr().String(), Dst: tc.qIn2.Addr().String(),
		Sport: tc.qIn1.Port(), Dport: tc.qIn2.Port(), TTL: 50, Flags: "A", Payload: pl}.Frame(t)[14:]
	var dst netip.Addr
	if tc.v6 {
		dst = tc.qIn1.Addr() // the error goes to the quoted packet's source
	} else {
		dst = tc.qIn1.Addr()
	}
	frame := icmpErr(t, tc.v6, tc.router, dst, tc.typ, tc.code, tc.rest, qf)
	buf := inBuf(frame)
	var p header.Parsed
	p.Parse(buf[headroom:])
	if !p.Inner.OK {
		t.Fatalf("input not an ICMP error: %v", p.Reason)
	}
	r, off, n := modes.FullNATXlateICMP(buf, headroom, len(buf)-headroom, &p, tc.outerSrc, tc.outerDst, tc.qOut1, tc.qOut2)
	if !r.OK() {
		t.Fatalf("verdict %v", r.Verdict)
	}
	out := buf[off : off+n]
	if !header.L4ChecksumValid(out, &p) {
		t.Errorf("ICMP checksum does not verify")
	}
	pkt := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
	var quoted []byte
	switch ip := pkt.NetworkLayer().(type) {
	case *layers.IPv4:
		if !tc.v6 {
			t.Fatal("family not changed")
		}
		if !header.IPv4(out[14:]).ChecksumValid() || netip.AddrFrom4([4]byte(ip.SrcIP.To4())) != tc.outerSrc ||
			netip.AddrFrom4([4]byte(ip.DstIP.To4())) != tc.outerDst || ip.TTL != 63 {
			t.Errorf("outer IPv4 %v → %v ttl %d", ip.SrcIP, ip.DstIP, ip.TTL)
		}
		ic, _ := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		if ic == nil {
			t.Fatal("no ICMPv4")
		}
		rest := uint32(ic.Id)<<16 | uint32(ic.Seq)
		if ic.TypeCode.Type() != tc.wantTyp || ic.TypeCode.Code() != tc.wantCode || rest != tc.wantRest {
			t.Errorf("ICMPv4 %d/%d rest %d, want %d/%d %d", ic.TypeCode.Type(), ic.TypeCode.Code(), rest, tc.wantTyp, tc.wantCode, tc.wantRest)
		}
		quoted = ic.Payload
	case *layers.IPv6:
		if tc.v6 {
			t.Fatal("family not changed")
		}
		if netip.AddrFrom16([16]byte(ip.SrcIP)) != tc.outerSrc || netip.AddrFrom16([16]byte(ip.DstIP)) != tc.outerDst || ip.HopLimit != 63 {
			t.Errorf("outer IPv6 %v → %v hlim %d", ip.SrcIP, ip.DstIP, ip.HopLimit)
		}
		if tc.wantTotal > 0 && len(out)-14 != tc.wantTotal {
			t.Errorf("ICMPv6 error %d bytes, want %d", len(out)-14, tc.wantTotal)
		}
		ic, _ := pkt.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
		if ic == nil {
			t.Fatal("no ICMPv6")
		}
		body := out[p.L4Off:]
		rest := binary.BigEndian.Uint32(body[4:])
		if ic.TypeCode.Type() != tc.wantTyp || ic.TypeCode.Code() != tc.wantCode || rest != tc.wantRest {
			t.Errorf("ICMPv6 %d/%d rest %d, want %d/%d %d", ic.TypeCode.Type(), ic.TypeCode.Code(), rest, tc.wantTyp, tc.wantCode, tc.wantRest)
		}
		quoted = body[8:]
	default:
		t.Fatal("no IP layer")
	}
	// The quoted packet, as the receiver of the error sent it.
	q := gopacket.NewPacket(quoted, map[bool]gopacket.LayerType{true: layers.LayerTypeIPv4, false: layers.LayerTypeIPv6}[tc.v6], gopacket.Default)
	var qs, qd netip.Addr
	switch ip := q.NetworkLayer().(type) {
	case *layers.IPv4:
		qs, qd = netip.AddrFrom4([4]byte(ip.SrcIP.To4())), netip.AddrFrom4([4]byte(ip.DstIP.To4()))
		if !header.IPv4(quoted).ChecksumValid() || ip.TTL != 50 || int(ip.Length) != 20+tc.qL4Len(pl) {
			t.Errorf("quoted IPv4 header: ttl %d length %d", ip.TTL, ip.Length)
		}
	case *layers.IPv6:
		qs, qd = netip.AddrFrom16([16]byte(ip.SrcIP)), netip.AddrFrom16([16]byte(ip.DstIP))
		if ip.HopLimit != 50 || int(ip.Length) != tc.qL4Len(pl) {
			t.Errorf("quoted IPv6 header: hlim %d length %d", ip.HopLimit, ip.Length)
		}
	default:
		t.Fatalf("quoted packet does not decode: %x", quoted)
	}
	if qs != tc.qOut1.Addr() || qd != tc.qOut2.Addr() {
		t.Errorf("quoted %v → %v, want %v → %v", qs, qd, tc.qOut1, tc.qOut2)
	}
	var sp, dp uint16
	switch l4 := q.TransportLayer().(type) {
	case *layers.TCP:
		sp, dp = uint16(l4.SrcPort), uint16(l4.DstPort)
	case *layers.UDP:
		sp, dp = uint16(l4.SrcPort), uint16(l4.DstPort)
	}
	if sp != tc.qOut1.Port() || dp != tc.qOut2.Port() {
		t.Errorf("quoted ports %d → %d", sp, dp)
	}
	if tc.quotedLen == 0 {
		// The whole quoted packet is there: its L4 checksum verifies.
		var qp header.Parsed
		eth := quoted14(t, quoted)
		if !tc.v6 {
			eth[12], eth[13] = 0x86, 0xdd
		}
		qp.Parse(eth)
		if qp.Reason != header.ReasonNone || !header.L4ChecksumValid(eth, &qp) {
			t.Errorf("quoted L4 checksum does not verify (%v)", qp.Reason)
		}
	}
}

// qL4Len is the quoted packet's L4 length (header and payload).
func (tc icmpXlateCase) qL4Len(payload int) int {
	if tc.proto == layers.IPProtocolTCP {
		return 24 + payload // TCP header with the MSS option
	}
	return 8 + payload
}

// TestFullNATXlateICMPRefused: errors RFC 7915 drops (source quench,
// an ICMPv6 parameter problem about a header field) and addresses
// of the packet's own family are refused, the frame unchanged.
func TestFullNATXlateICMPRefused(t *testing.T) {
	q4 := pkttest.Flow{Proto: layers.IPProtocolUDP, Src: x64.lip.Addr().String(), Dst: x64.rip.Addr().String(), Sport: 1, Dport: 2, TTL: 9, Payload: 8}.Frame(t)[14:]
	q6 := pkttest.Flow{V6: true, Proto: layers.IPProtocolUDP, Src: x64.vip.Addr().String(), Dst: x64.cip.Addr().String(), Sport: 1, Dport: 2, TTL: 9, Payload: 8}.Frame(t)[14:]
	r4, r6 := netip.MustParseAddr("192.168.88.1"), netip.MustParseAddr("2001:db8:9::9")
	for _, row := range []struct {
		name  string
		frame []byte
		o1    netip.Addr
		q1    netip.AddrPort
	}{
		{"frag-needed-mtu-0", icmpErr(t, false, r4, x64.lip.Addr(), 3, 4, 0, q4), x64.vip.Addr(), x64.cip},
		{"host-precedence", icmpErr(t, false, r4, x64.lip.Addr(), 3, 14, 0, q4), x64.vip.Addr(), x64.cip},
		{"param-problem-header-field", icmpErr(t, true, r6, x64.vip.Addr(), 4, 0, 7, q6), x64.lip.Addr(), x64.rip},
		{"same-family", icmpErr(t, false, r4, x64.lip.Addr(), 3, 3, 0, q4), x64.rip.Addr(), x64.lip},
	} {
		t.Run(row.name, func(t *testing.T) {
			buf := inBuf(row.frame)
			before := string(buf)
			var p header.Parsed
			p.Parse(buf[headroom:])
			o2 := x64.cip.Addr()
			q2 := x64.vip
			if row.o1.Is4() {
				o2, q2 = x64.rip.Addr(), x64.lip
			}
			r, _, _ := modes.FullNATXlateICMP(buf, headroom, len(buf)-headroom, &p, row.o1, o2, row.q1, q2)
			if r.OK() || string(buf) != before {
				t.Errorf("verdict %v: want refused, frame unchanged", r.Verdict)
			}
		})
	}
}

func TestFullNATXlateNoAllocs(t *testing.T) {
	tc := xlateCases()[0]
	f6 := pkttest.Flow{V6: true, Proto: layers.IPProtocolTCP, Src: tc.inSrc.Addr().String(), Dst: tc.inDst.Addr().String(),
		Sport: tc.inSrc.Port(), Dport: tc.inDst.Port(), TTL: 64, Flags: "S", Payload: 100}.Frame(t)
	q4 := pkttest.Flow{Proto: layers.IPProtocolTCP, Src: x64.lip.Addr().String(), Dst: x64.rip.Addr().String(), Sport: 1, Dport: 2, TTL: 9, Payload: 8}.Frame(t)[14:]
	e4 := icmpErr(t, false, netip.MustParseAddr("192.168.88.1"), x64.lip.Addr(), 3, 3, 0, q4)
	buf := make([]byte, headroom+2048)
	var p header.Parsed
	if n := testing.AllocsPerRun(100, func() {
		copy(buf[headroom:], f6)
		p.Parse(buf[headroom : headroom+len(f6)])
		modes.FullNATXlate(buf, headroom, len(f6), &p, tc.outSrc, tc.outDst, modes.CsumComplete)
		copy(buf[headroom:], e4)
		p.Parse(buf[headroom : headroom+len(e4)])
		modes.FullNATXlateICMP(buf, headroom, len(e4), &p, x64.vip.Addr(), x64.cip.Addr(), x64.cip, x64.vip)
	}); n != 0 {
		t.Errorf("translation allocates %v times", n)
	}
}

func BenchmarkFullNATXlate(b *testing.B) {
	tc := xlateCases()[0]
	f6 := pkttest.Flow{V6: true, Proto: layers.IPProtocolTCP, Src: tc.inSrc.Addr().String(), Dst: tc.inDst.Addr().String(),
		Sport: tc.inSrc.Port(), Dport: tc.inDst.Port(), TTL: 64, Flags: "A", Payload: 1000}.Frame(b)
	buf := make([]byte, headroom+2048)
	var p header.Parsed
	b.ReportAllocs()
	for b.Loop() {
		copy(buf[headroom:], f6[:14+40+24]) // headers: the payload is not touched
		p.Parse(buf[headroom : headroom+len(f6)])
		p.TTL = 64
		modes.FullNATXlate(buf, headroom, len(f6), &p, tc.outSrc, tc.outDst, modes.CsumComplete)
	}
}

// FuzzFullNATXlate translates arbitrary frames to the other family (and
// ICMP errors with FullNATXlateICMP): no panic; a refusal leaves the
// buffer unchanged; an accepted packet parses as one of the other family,
// and its checksums verify when the input's did.
func FuzzFullNATXlate(f *testing.F) {
	for _, tc := range xlateCases() {
		for _, proto := range []layers.IPProtocol{layers.IPProtocolTCP, layers.IPProtocolUDP} {
			fr := pkttest.Flow{V6: tc.v6, Proto: proto, Src: tc.inSrc.Addr().String(), Dst: tc.inDst.Addr().String(),
				Sport: 1, Dport: 80, TTL: 9, Flags: "S", Payload: 17, IPOpts: !tc.v6}.Frame(f)
			f.Add(fr, false)
			f.Add(fr, true)
		}
	}
	q4 := pkttest.Flow{Proto: layers.IPProtocolTCP, Src: x64.lip.Addr().String(), Dst: x64.rip.Addr().String(), Sport: 1, Dport: 2, TTL: 9, Payload: 8}.Frame(f)[14:]
	q6 := pkttest.Flow{V6: true, Proto: layers.IPProtocolUDP, Src: x64.vip.Addr().String(), Dst: x64.cip.Addr().String(), Sport: 1, Dport: 2, TTL: 9, Payload: 8}.Frame(f)[14:]
	f.Add(icmpErr(f, false, netip.MustParseAddr("192.168.88.1"), x64.lip.Addr(), 3, 4, 1400, q4), false)
	f.Add(icmpErr(f, true, netip.MustParseAddr("2001:db8::9"), x64.vip.Addr(), 2, 0, 1280, q6), false)
	f.Add(icmpErr(f, true, netip.MustParseAddr("2001:db8::9"), x64.vip.Addr(), 4, 0, 7, q6), false)
	buf := make([]byte, headroom+4096)
	f.Fuzz(func(t *testing.T, frame []byte, partial bool) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("partial %t, %d bytes %.200q", partial, len(frame), frame) })()
		if len(frame) > len(buf)-headroom {
			return
		}
		b := buf[:headroom+len(frame)]
		clear(b[:headroom])
		copy(b[headroom:], frame)
		var p header.Parsed
		p.Parse(b[headroom:])
		v := p.IPVersion
		// Endpoints of the other family.
		a := x46
		if v == 6 {
			a = x64
		}
		l4ok := p.Reason == header.ReasonNone && header.L4ChecksumValid(b[headroom:], &p)
		csum := modes.CsumComplete
		if partial {
			csum = modes.CsumPartial
		}
		before := string(b)
		var r modes.Result
		var off, n int
		icmp := p.Inner.OK
		if icmp {
			r, off, n = modes.FullNATXlateICMP(b, headroom, len(frame), &p, a.lip.Addr(), a.rip.Addr(), a.rip, a.lip)
		} else {
			r, off, n = modes.FullNATXlate(b, headroom, len(frame), &p, a.lip, a.rip, csum)
		}
		if !r.OK() {
			if string(b) != before {
				t.Fatalf("buffer modified on %v", r.Verdict)
			}
			return
		}
		if off < 0 || off+n > len(b) {
			t.Fatalf("frame out of the buffer: %d+%d of %d", off, n, len(b))
		}
		out := b[off : off+n]
		var q header.Parsed
		q.Parse(out)
		if q.Reason != header.ReasonNone || q.IPVersion == v || (q.IPVersion != 4 && q.IPVersion != 6) {
			t.Fatalf("output: %v version %d (input %d)", q.Reason, q.IPVersion, v)
		}
		if q.Kind == header.KindIPv4 && !header.IPv4(out[q.L3Off:]).ChecksumValid() {
			t.Fatalf("IPv4 header checksum")
		}
		if (icmp || partial || l4ok) && !header.L4ChecksumValid(out, &q) {
			t.Fatalf("L4 checksum does not verify (icmp %v partial %v)", icmp, partial)
		}
	})
}
