package ownership_test

import (
	"encoding/binary"

	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/ownership"
)

// frameCase is one hand-built frame with its verdict under the fixture.
type frameCase struct {
	name  string
	frame []byte
	want  ownership.Verdict
	// deep marks the frames nftables classifies differently because it
	// walks every IPv6 extension header (see the package documentation):
	// it sees them as Director.
	deep bool
}

const (
	K = ownership.Kernel
	D = ownership.Director
	S = ownership.Shared
)

// withFix returns p with fix applied to its IP packet.
func withFix(p pkt, fix func([]byte)) pkt { p.fix = fix; return p }

func withCut(p pkt, n int) pkt { p.cut = n; return p }

// trunc cuts the frame to n bytes and sets the IP length field to match,
// so that only the headers after it are cut short.
func trunc(p pkt, n int) pkt {
	p.cut = n
	p.fix = func(b []byte) {
		if p.v6 {
			binary.BigEndian.PutUint16(b[header.IPv6PayloadLenOff:], uint16(n-header.EthernetMinSize-header.IPv6Size))
		} else {
			binary.BigEndian.PutUint16(b[header.IPv4TotalLenOff:], uint16(n-header.EthernetMinSize))
		}
	}
	return p
}

func frag(p pkt, off uint16) pkt {
	p.fragOff = off
	if p.v6 {
		p.frag6 = true
	}
	return p
}

func exts(p pkt, types ...uint8) pkt { p.exts = types; return p }

// mf sets the IPv4 MF flag (a first fragment when the offset is 0).
func mf(p pkt) pkt { p.mf = true; return p }

// last6 makes p an IPv6 fragment with the M flag clear: the last fragment,
// or an atomic fragment when its offset is 0.
func last6(p pkt, off uint16) pkt { p = frag(p, off); p.lastFrag = true; return p }

// vlanTag inserts tag (TPID and TCI, or several tags) after the MAC
// addresses of f.
func vlanTag(f []byte, tag ...byte) []byte {
	return append(append(append([]byte(nil), f[:header.EthernetTypeOff]...), tag...), f[header.EthernetTypeOff:]...)
}

func tagged(p pkt, tpid uint16) pkt { p.tpid = tpid; return p }

// ipip is the director's IPIP packet from src to the real server dst,
// carrying a client's request to the TUN VIP.
func ipip(src, dst string) pkt {
	return pkt{src: src, dst: dst, proto: header.ProtoIPIP, l4: tcp(cli4, 40000, vip4tun, 80).ip()}
}

// gre is the director's GRE packet (version 0, IPv4, no checksum).
func gre(src, dst string) pkt {
	return pkt{src: src, dst: dst, proto: header.ProtoGRE, l4: append([]byte{0, 0, 0x08, 0}, tcp(cli4, 40000, vip4tun, 80).ip()...)}
}

// cases returns the hand-built table: every class of the package
// documentation, positive and negative, IPv4 and IPv6.
func cases() []frameCase {
	hop, dst, rt := uint8(header.ProtoHopByHop), uint8(header.ProtoDstOpts), uint8(header.ProtoRouting)
	setTotLen := func(n int) func([]byte) {
		return func(b []byte) { binary.BigEndian.PutUint16(b[header.IPv4TotalLenOff:], uint16(n)) }
	}
	setByte := func(i int, v byte) func([]byte) { return func(b []byte) { b[i] = v } }
	q4 := func(src string, sport uint16, dst string, dport uint16) pkt { return tcp(src, sport, dst, dport) }
	return []frameCase{
		// Services.
		{"tcp4 to VIP:80", tcp(cli4, 40000, vip4, 80).frame(), D, false},
		{"tcp4 to VIP:81", tcp(cli4, 40000, vip4, 81).frame(), K, false},
		{"udp4 to VIP:53", udp(cli4, 40000, vip4, 53).frame(), D, false},
		{"udp4 to VIP:80 (a TCP service)", udp(cli4, 40000, vip4, 80).frame(), K, false},
		{"sctp4 to VIP:9000", sctp(cli4, 40000, vip4sctp, 9000).frame(), D, false},
		{"tcp4 to an SCTP VIP:9000", tcp(cli4, 40000, vip4sctp, 9000).frame(), K, false},
		{"tcp4 to port-0 VIP", tcp(cli4, 40000, vip4any, 1234).frame(), D, false},
		{"udp4 to a TCP port-0 VIP", udp(cli4, 40000, vip4any, 1234).frame(), K, false},
		{"icmp4 echo to port-0 VIP", pkt{src: cli4, dst: vip4any, proto: 1, l4: icmpH(8, 0, nil)}.frame(), K, false},
		{"other protocol to port-0 VIP", pkt{src: cli4, dst: vip4any, proto: 47, l4: make([]byte, 8)}.frame(), K, false},
		{"first fragment to VIP:80", withFix(tcp(cli4, 40000, vip4, 80), setByte(6, 0x20)).frame(), D, false},
		{"non-first fragment to VIP:80", frag(tcp(cli4, 40000, vip4, 80), 100).frame(), D, false},
		{"non-first fragment to port-0 VIP", frag(tcp(cli4, 40000, vip4any, 80), 100).frame(), D, false},
		{"tcp4 to port-0 VIP without ports", pkt{src: cli4, dst: vip4any, proto: 6}.frame(), D, false},
		{"tcp4 to VIP:80 without ports", pkt{src: cli4, dst: vip4, proto: 6, l4: []byte{0x9c, 0x40, 0}}.frame(), K, false},
		{"tcp4 to VIP:80 with IPv4 options", pkt{src: cli4, dst: vip4, proto: 6, opts: 3, l4: tcpH(40000, 80)}.frame(), D, false},
		{"tcp4 to VIP:80 with Ethernet padding", pkt{src: cli4, dst: vip4, proto: 6, l4: tcpH(40000, 80), pad: 10}.frame(), D, false},
		{"tcp4 to VIP:80, total length past the frame", withFix(tcp(cli4, 40000, vip4, 80), setTotLen(41)).frame(), K, false},
		{"tcp4 to VIP:80, total length below the header", withFix(tcp(cli4, 40000, vip4, 80), setTotLen(19)).frame(), K, false},
		{"tcp4 to VIP:80, total length of the header only", withFix(tcp(cli4, 40000, vip4, 80), setTotLen(20)).frame(), D, false},
		{"tcp4 to VIP:80, IHL 4", withFix(tcp(cli4, 40000, vip4, 80), setByte(0, 0x44)).frame(), K, false},
		{"tcp4 to VIP:80, version 5", withFix(tcp(cli4, 40000, vip4, 80), setByte(0, 0x55)).frame(), K, false},
		{"tcp4 to VIP:80, version 6 in an IPv4 EtherType", withFix(tcp(cli4, 40000, vip4, 80), setByte(0, 0x65)).frame(), K, false},
		{"tcp4 to VIP:80, cut in the IPv4 header", withCut(tcp(cli4, 40000, vip4, 80), 30).frame(), K, false},
		{"802.1Q tcp4 to VIP:80", tagged(tcp(cli4, 40000, vip4, 80), header.EtherTypeVLAN).frame(), D, false},
		{"802.1ad tcp4 to VIP:80", tagged(tcp(cli4, 40000, vip4, 80), header.EtherTypeQinQ).frame(), K, false},
		{"tcp4 to a local VIP:443", tcp(cli4, 40000, vip4loc, 443).frame(), D, false},
		{"tcp4 to a local VIP:22", tcp(cli4, 40000, vip4loc, 22).frame(), K, false},
		{"tcp4 to a MARK target:8000", tcp(cli4, 40000, mark4, 8000).frame(), D, false},
		{"tcp4 to a MARK target:8002", tcp(cli4, 40000, mark4, 8002).frame(), K, false},
		{"udp4 to a TCP MARK target:8000", udp(cli4, 40000, mark4, 8000).frame(), K, false},
		{"udp4 to an any-protocol MARK target", udp(cli4, 40000, mark4any, 7).frame(), D, false},
		{"sctp4 to an any-protocol MARK target", sctp(cli4, 40000, mark4any, 1).frame(), D, false},
		{"tcp4 to a MARK target no service uses", tcp(cli4, 40000, mark4off, 1).frame(), K, false},
		{"tcp6 to VIP:80", tcp(cli6, 40000, vip6, 80).frame(), D, false},
		{"tcp6 to VIP:81", tcp(cli6, 40000, vip6, 81).frame(), K, false},
		{"tcp6 to VIP:80 behind hop-by-hop and destination options", exts(tcp(cli6, 40000, vip6, 80), hop, dst).frame(), D, false},
		{"tcp6 to VIP:80 behind four extension headers", exts(tcp(cli6, 40000, vip6, 80), hop, dst, rt, dst).frame(), D, false},
		{"tcp6 to VIP:80 behind five extension headers", exts(tcp(cli6, 40000, vip6, 80), hop, dst, rt, dst, dst).frame(), K, true},
		{"udp6 to port-0 VIP behind seven extension headers", exts(udp(cli6, 4000, vip6any, 9), hop, dst, dst, dst, dst, dst, dst).frame(), K, true},
		{"tcp6 to VIP:80 behind AH", exts(tcp(cli6, 40000, vip6, 80), header.ProtoAH).frame(), K, false},
		{"udp6 to port-0 VIP", udp(cli6, 4000, vip6any, 9).frame(), D, false},
		{"tcp6 to a UDP port-0 VIP", tcp(cli6, 4000, vip6any, 9).frame(), K, false},
		{"udp6 first fragment to VIP:80 (a TCP service)", frag(udp(cli6, 4000, vip6, 80), 0).frame(), K, false},
		{"tcp6 first fragment to VIP:80", frag(tcp(cli6, 4000, vip6, 80), 0).frame(), D, false},
		{"tcp6 non-first fragment to VIP:80", frag(tcp(cli6, 4000, vip6, 80), 90).frame(), D, false},
		{"udp6 non-first fragment to port-0 VIP", frag(udp(cli6, 4000, vip6any, 9), 90).frame(), D, false},
		{"udp6 non-first fragment to port-0 VIP, cut in its fragment header",
			trunc(frag(udp(cli6, 4000, vip6any, 9), 90), 14+40+4).frame(), D, false},
		{"udp6 non-first fragment to port-0 VIP, cut in the fragment offset",
			trunc(frag(udp(cli6, 4000, vip6any, 9), 90), 14+40+3).frame(), K, false},
		{"non-first fragment followed by destination options to port-0 VIP",
			withFix(frag(udp(cli6, 4000, vip6any, 9), 90), setByte(40, dst)).frame(), K, false},
		{"udp6 to port-0 VIP, hop-by-hop header cut after two bytes",
			trunc(exts(udp(cli6, 4000, vip6any, 9), hop), 14+40+2).frame(), D, false},
		{"udp6 to port-0 VIP, routing header cut after three bytes",
			trunc(exts(udp(cli6, 4000, vip6any, 9), rt), 14+40+3).frame(), K, false},
		{"tcp6 to VIP:80, payload length past the frame", withFix(tcp(cli6, 40000, vip6, 80), func(b []byte) { b[5]++ }).frame(), K, false},
		{"tcp6 to VIP:80, version 4 in an IPv6 EtherType", withFix(tcp(cli6, 40000, vip6, 80), setByte(0, 0x40)).frame(), K, false},
		{"tcp6 to the IPv4-mapped VIP:80", tcp(cli6, 40000, "::ffff:"+vip4, 80).frame(), K, false},
		{"udp6 to a MARK target:5000", udp(cli6, 4000, mark6, 5000).frame(), D, false},
		{"udp6 to a MARK target:5001", udp(cli6, 4000, mark6, 5001).frame(), K, false},

		// NAT replies.
		{"tcp4 NAT reply from RS:8080", tcp(rs4, 8080, cli4, 40000).frame(), D, false},
		{"tcp4 NAT reply from RS:8080 to a director address", tcp(rs4, 8080, dir4, 40000).frame(), K, false},
		{"tcp4 from RS:22", tcp(rs4, 22, cli4, 40000).frame(), K, false},
		{"udp4 NAT reply from RS:5353", udp(rs4, 5353, cli4, 4000).frame(), D, false},
		{"tcp4 NAT reply from RS:8443 (local VIP's service)", tcp(rs4, 8443, cli4, 4000).frame(), D, false},
		{"sctp4 NAT reply from RS:9000", sctp(rs4, 9000, cli4, 4000).frame(), D, false},
		{"udp4 from RS of a port-0 NAT service", udp(rs4, 7777, cli4, 4000).frame(), D, false},
		{"tcp4 NAT reply of a MARK service", tcp(rs4b, 8000, cli4, 4000).frame(), D, false},
		{"udp4 from RS of a MARK service with an any-protocol target", udp(rs4b, 8000, cli4, 4000).frame(), D, false},
		{"tcp4 from RS of a MARK service with an any-port target", tcp(rs4b, 8002, cli4, 4000).frame(), D, false},
		{"tcp4 NAT reply, non-first fragment", frag(tcp(rs4, 8080, cli4, 40000), 10).frame(), D, false},
		{"tcp4 NAT reply cut in its ports", trunc(tcp(rs4, 8080, cli4, 40000), 14+20+3).frame(), K, false},
		{"tcp6 NAT reply from RS:8080", tcp(rs6, 8080, cli6, 40000).frame(), D, false},
		{"tcp6 NAT reply from RS:8080 to a director address", tcp(rs6, 8080, dir6, 40000).frame(), K, false},
		{"udp6 from RS:8080 (a TCP service)", udp(rs6, 8080, cli6, 40000).frame(), K, false},

		// FULLNAT replies.
		{"tcp4 FULLNAT reply to pool:61000", tcp(rs4, 80, lip4, 61000).frame(), D, false},
		{"tcp4 FULLNAT reply to pool:65535", tcp(rs4, 80, lip4, 65535).frame(), D, false},
		{"tcp4 to pool:60999", tcp(rs4, 80, lip4, 60999).frame(), K, false},
		{"udp4 to pool:61000", udp(rs4, 53, lip4, 61000).frame(), D, false},
		{"sctp4 to pool:61000", sctp(rs4, 53, lip4, 61000).frame(), D, false},
		{"tcp4 FULLNAT reply to a route source:62000", tcp("198.19.0.6", 80, dir4, 62000).frame(), D, false},
		{"tcp4 to a route source:22", tcp(cli4, 40000, dir4, 22).frame(), K, false},
		{"tcp4 to pool:61000, non-first fragment", frag(tcp(rs4, 80, lip4, 61000), 10).frame(), D, false},
		{"tcp6 FULLNAT reply to pool:61000", tcp(rs6, 443, lip6, 61000).frame(), D, false},
		{"tcp6 to pool:1000", tcp(rs6, 443, lip6, 1000).frame(), K, false},

		// ICMP errors.
		{"icmp4 unreachable to VIP", icmpErr(3, router4, vip4, q4(vip4, 80, cli4, 40000)).frame(), D, false},
		{"icmp4 source quench to VIP", icmpErr(4, router4, vip4, q4(vip4, 80, cli4, 40000)).frame(), D, false},
		{"icmp4 time exceeded to VIP", icmpErr(11, router4, vip4, q4(vip4, 80, cli4, 40000)).frame(), D, false},
		{"icmp4 parameter problem to VIP", icmpErr(12, router4, vip4, q4(vip4, 80, cli4, 40000)).frame(), D, false},
		{"icmp4 redirect to VIP", icmpErr(5, router4, vip4, q4(vip4, 80, cli4, 40000)).frame(), K, false},
		{"icmp4 type 13 to VIP", icmpErr(13, router4, vip4, q4(vip4, 80, cli4, 40000)).frame(), K, false},
		{"icmp4 echo to VIP", pkt{src: cli4, dst: vip4, proto: 1, l4: icmpH(8, 0, nil)}.frame(), K, false},
		{"icmp4 unreachable to VIP, seven bytes of ICMP", pkt{src: router4, dst: vip4, proto: 1, l4: icmpH(3, 3, nil)[:7]}.frame(), K, false},
		{"icmp4 unreachable to VIP, eight bytes of ICMP", pkt{src: router4, dst: vip4, proto: 1, l4: icmpH(3, 3, nil)}.frame(), D, false},
		{"icmp4 unreachable to VIP, non-first fragment", frag(icmpErr(3, router4, vip4, q4(vip4, 80, cli4, 40000)), 3).frame(), D, false},
		{"icmp4 unreachable to a MARK target", icmpErr(3, router4, mark4any, q4(mark4any, 1, cli4, 40000)).frame(), D, false},
		{"icmp4 unreachable to a local VIP", icmpErr(3, router4, vip4loc, q4(vip4loc, 443, cli4, 40000)).frame(), D, false},
		{"icmp4 unreachable to a director address", icmpErr(3, router4, dir4, q4(dir4, 22, cli4, 40000)).frame(), K, false},
		{"icmp4 about a NAT connection", icmpErr(3, router4, cli4, q4(cli4, 40000, rs4, 8080)).frame(), D, false},
		{"icmp4 about a NAT connection, from the RS", icmpErr(3, rs4, cli4, q4(cli4, 40000, rs4, 8080)).frame(), D, false},
		{"icmp4 about another port of a RS", icmpErr(3, router4, cli4, q4(cli4, 40000, rs4, 22)).frame(), K, false},
		{"icmp4 about a NAT connection to a director address", icmpErr(3, router4, dir4, q4(dir4, 40000, rs4, 8080)).frame(), K, false},
		{"icmp4 about a NAT connection quoted with IP options",
			icmpErr(11, router4, cli4, pkt{src: cli4, dst: rs4, proto: 6, opts: 2, l4: tcpH(40000, 8080)}).frame(), D, false},
		{"icmp4 about a NAT connection quoted with IHL 15",
			icmpErr(11, router4, cli4, pkt{src: cli4, dst: rs4, proto: 6, opts: 10, l4: tcpH(40000, 8080)}).frame(), D, false},
		{"icmp4 about a UDP NAT connection", icmpErr(3, router4, cli4, udp(cli4, 4000, rs4, 5353)).frame(), D, false},
		{"icmp4 about a NAT connection, quote cut in the ports",
			trunc(icmpErr(3, router4, cli4, q4(cli4, 40000, rs4, 8080)), 14+20+8+20+3).frame(), K, false},
		{"icmp4 about a NAT connection, quote with four bytes of TCP",
			trunc(icmpErr(3, router4, cli4, q4(cli4, 40000, rs4, 8080)), 14+20+8+20+4).frame(), D, false},
		{"icmp4 about a NAT connection, quoted IHL 4",
			icmpErr(3, router4, cli4, withFix(q4(cli4, 40000, rs4, 8080), setByte(0, 0x44))).frame(), K, false},
		{"icmp4 about a NAT connection, quoted version 6",
			icmpErr(3, router4, cli4, withFix(q4(cli4, 40000, rs4, 8080), setByte(0, 0x65))).frame(), K, false},
		{"icmp4 about a FULLNAT connection (pool)", icmpErr(3, rs4, lip4, udp(lip4, 61000, rs4, 80)).frame(), D, false},
		{"icmp4 about a FULLNAT connection (route source)", icmpErr(3, "198.19.0.6", dir4, tcp(dir4, 62000, "198.19.0.6", 80)).frame(), D, false},
		{"icmp4 about a pool address, port outside the range", icmpErr(3, rs4, lip4, tcp(lip4, 1000, rs4, 80)).frame(), K, false},
		{"icmp4 to a pool address quoting another source", icmpErr(3, rs4, lip4, tcp(dir4, 61000, rs4, 80)).frame(), K, false},
		{"icmp4 to a pool address quoting SCTP from it", icmpErr(3, rs4, lip4, sctp(lip4, 61000, rs4, 80)).frame(), D, false},
		{"icmp4 redirect about a FULLNAT connection", icmpErr(5, rs4, lip4, udp(lip4, 61000, rs4, 80)).frame(), K, false},
		{"icmp6 unreachable to VIP", icmpErr(1, router6, vip6, tcp(vip6, 80, cli6, 40000)).frame(), D, false},
		{"icmp6 packet too big to VIP", icmpErr(2, router6, vip6, tcp(vip6, 80, cli6, 40000)).frame(), D, false},
		{"icmp6 parameter problem to VIP", icmpErr(4, router6, vip6, tcp(vip6, 80, cli6, 40000)).frame(), D, false},
		{"icmp6 type 0 to VIP", icmpErr(0, router6, vip6, tcp(vip6, 80, cli6, 40000)).frame(), K, false},
		{"icmp6 type 5 to VIP", icmpErr(5, router6, vip6, tcp(vip6, 80, cli6, 40000)).frame(), K, false},
		{"icmp6 echo to VIP", icmpErr(128, router6, vip6, tcp(vip6, 80, cli6, 40000)).frame(), K, false},
		{"icmp6 unreachable to VIP behind hop-by-hop", exts(icmpErr(1, router6, vip6, tcp(vip6, 80, cli6, 40000)), hop).frame(), D, false},
		{"icmp6 unreachable to VIP, non-first fragment", frag(icmpErr(1, router6, vip6, tcp(vip6, 80, cli6, 40000)), 9).frame(), D, false},
		{"icmp6 unreachable to a MARK target", icmpErr(1, router6, mark6, udp(mark6, 5000, cli6, 4000)).frame(), D, false},
		{"icmp6 about a NAT connection", icmpErr(1, router6, cli6, tcp(cli6, 40000, rs6, 8080)).frame(), D, false},
		{"icmp6 about a NAT connection to a director address", icmpErr(1, router6, dir6, tcp(dir6, 40000, rs6, 8080)).frame(), K, false},
		{"icmp6 about another port of a RS", icmpErr(1, router6, cli6, tcp(cli6, 40000, rs6, 22)).frame(), K, false},
		{"icmp6 about a NAT connection, quoted version 4",
			icmpErr(1, router6, cli6, withFix(tcp(cli6, 40000, rs6, 8080), setByte(0, 0x40))).frame(), K, false},
		{"icmp6 about a NAT connection, quote behind a destination options header",
			icmpErr(1, router6, cli6, exts(tcp(cli6, 40000, rs6, 8080), dst)).frame(), K, false},
		{"icmp6 about a FULLNAT connection", icmpErr(1, rs6, lip6, tcp(lip6, 61000, rs6, 443)).frame(), D, false},
		{"icmp6 about a FULLNAT connection (route source)", icmpErr(1, rs6, dir6, udp(dir6, 65535, rs6, 53)).frame(), D, false},
		{"icmp6 about a pool address, port outside the range", icmpErr(1, rs6, lip6, tcp(lip6, 80, rs6, 443)).frame(), K, false},
		{"icmp6 about a FULLNAT connection, quote cut in the ports",
			trunc(icmpErr(1, rs6, lip6, tcp(lip6, 61000, rs6, 443)), 14+40+8+40+3).frame(), K, false},

		// ICMP errors about the director's own tunnelled packets to TUN
		// real servers (ip_vs_in_icmp).
		{"icmp4 frag-needed about an IPIP packet to a TUN RS", icmpErr(3, router4, dir4, ipip(dir4, rs4t)).frame(), D, false},
		{"icmp4 frag-needed about an IPIP packet, from the RS", icmpErr(3, rs4t, dir4, ipip(dir4, rs4t)).frame(), D, false},
		{"icmp4 time exceeded about an IPIP packet", icmpErr(11, router4, dir4, ipip(dir4, rs4t)).frame(), D, false},
		{"icmp4 redirect about an IPIP packet", icmpErr(5, router4, dir4, ipip(dir4, rs4t)).frame(), K, false},
		{"icmp4 about an IPIP packet to a local VIP's address", icmpErr(3, router4, vip4loc, ipip(vip4loc, rs4t)).frame(), D, false},
		{"icmp4 about an IPIP packet from another director address", icmpErr(3, router4, dir4, ipip(vip4loc, rs4t)).frame(), K, false},
		{"icmp4 about an IPIP packet, not to a director address", icmpErr(3, router4, cli4, ipip(cli4, rs4t)).frame(), K, false},
		{"icmp4 about an IPIP packet to a GRE RS", icmpErr(3, router4, dir4, ipip(dir4, rs4g)).frame(), K, false},
		{"icmp4 about an IPIP packet to a non-TUN RS", icmpErr(3, router4, dir4, ipip(dir4, rs4)).frame(), K, false},
		{"icmp4 about a GRE packet to a GRE RS", icmpErr(3, router4, dir4, gre(dir4, rs4g)).frame(), D, false},
		{"icmp4 about a GRE packet to an IPIP RS", icmpErr(3, router4, dir4, gre(dir4, rs4t)).frame(), K, false},
		{"icmp4 about a GUE packet to the RS's tunnel port", icmpErr(3, router4, dir4, udp(dir4, 40000, rs4u, gueTunPort)).frame(), D, false},
		{"icmp4 about a UDP packet to another port of a GUE RS", icmpErr(3, router4, dir4, udp(dir4, 40000, rs4u, gueTunPort+1)).frame(), K, false},
		{"icmp4 about a TCP packet to a GUE RS's tunnel port", icmpErr(3, router4, dir4, tcp(dir4, 40000, rs4u, gueTunPort)).frame(), K, false},
		{"icmp4 about a GUE packet to an IPIP RS", icmpErr(3, router4, dir4, udp(dir4, 40000, rs4t, gueTunPort)).frame(), K, false},
		{"icmp4 about an IPIP packet quoted with IP options",
			icmpErr(3, router4, dir4, pkt{src: dir4, dst: rs4t, proto: header.ProtoIPIP, opts: 4, l4: tcp(cli4, 1, vip4tun, 80).ip()}).frame(), D, false},
		{"icmp4 about an IPIP packet, quote with four bytes after its header",
			trunc(icmpErr(3, router4, dir4, ipip(dir4, rs4t)), 14+20+8+20+4).frame(), D, false},
		{"icmp4 about an IPIP packet, quote cut three bytes after its header",
			trunc(icmpErr(3, router4, dir4, ipip(dir4, rs4t)), 14+20+8+20+3).frame(), K, false},
		{"icmp4 about an IPIP packet, quoted IHL 4",
			icmpErr(3, router4, dir4, withFix(ipip(dir4, rs4t), setByte(0, 0x44))).frame(), K, false},
		{"icmp4 about an IPIP packet, first fragment", mf(icmpErr(3, router4, dir4, ipip(dir4, rs4t))).frame(), K, false},
		{"802.1Q icmp4 about an IPIP packet", tagged(icmpErr(3, router4, dir4, ipip(dir4, rs4t)), header.EtherTypeVLAN).frame(), D, false},
		{"icmp6 about an IPv6-outer tunnelled packet",
			icmpErr(2, router6, dir6, pkt{v6: true, src: dir6, dst: rs6, proto: header.ProtoIPIP, l4: tcp(cli4, 1, vip4tun, 80).ip()}).frame(), K, false},

		// ARP and neighbour discovery.
		{"ARP request for VIP", arpFrame(1, vip4, nil), S, false},
		{"ARP request for a MARK target", arpFrame(1, mark4, nil), S, false},
		{"ARP request for a local VIP", arpFrame(1, vip4loc, nil), K, false},
		{"ARP request for a director address", arpFrame(1, dir4, nil), K, false},
		{"ARP request for a pool address", arpFrame(1, lip4, nil), K, false},
		{"ARP reply from VIP", arpFrame(2, vip4, nil), K, false},
		{"ARP request for VIP, protocol length 16", arpFrame(1, vip4, func(b []byte) { b[header.ARPPLenOff] = 16 }), K, false},
		{"ARP request for VIP, hardware type 6", arpFrame(1, vip4, func(b []byte) { b[1] = 6 }), K, false},
		{"ARP request for VIP, cut before the target's last byte", arpFrame(1, vip4, nil)[:41], K, false},
		{"802.1Q ARP request for VIP", vlanTag(arpFrame(1, vip4, nil), 0x81, 0, 0, 42), S, false},
		{"802.1ad ARP request for VIP", vlanTag(arpFrame(1, vip4, nil), 0x88, 0xa8, 0, 42), K, false},
		{"neighbour solicitation for VIP", ndp(135, vip6).frame(), S, false},
		{"neighbour solicitation for a MARK target", ndp(135, mark6).frame(), S, false},
		{"neighbour solicitation for a director address", ndp(135, dir6).frame(), K, false},
		{"neighbour advertisement for VIP", ndp(136, vip6).frame(), K, false},
		{"neighbour solicitation for VIP, cut in the target", trunc(ndp(135, vip6), 14+40+23).frame(), K, false},
		{"neighbour solicitation for VIP behind hop-by-hop", exts(ndp(135, vip6), hop).frame(), S, false},

		// Fragments: every fragment, first or not, by its addresses and
		// protocol (ownership's documentation).
		{"tcp4 first fragment to VIP:81 (a TCP VIP)", mf(tcp(cli4, 40000, vip4, 81)).frame(), D, false},
		{"tcp4 last fragment to VIP", frag(tcp(cli4, 40000, vip4, 81), 185).frame(), D, false},
		{"udp4 first fragment to VIP:53", mf(udp(cli4, 40000, vip4, 53)).frame(), D, false},
		{"udp4 first fragment to VIP:54", mf(udp(cli4, 40000, vip4, 54)).frame(), D, false},
		{"udp4 first fragment to an SCTP-only VIP", mf(udp(cli4, 40000, vip4sctp, 9000)).frame(), K, false},
		{"sctp4 non-first fragment to VIP:9000", mf(frag(sctp(cli4, 40000, vip4sctp, 9000), 20)).frame(), D, false},
		{"tcp4 first fragment to a local VIP (a TCP service)", mf(tcp(cli4, 40000, vip4loc, 22)).frame(), D, false},
		{"udp4 first fragment to a local VIP without a UDP service", mf(udp(cli4, 40000, vip4loc, 53)).frame(), K, false},
		{"udp4 first fragment from RS", mf(udp(rs4, 5353, cli4, 4000)).frame(), D, false},
		{"tcp4 non-first fragment from RS of a MARK service", frag(tcp(rs4b, 8000, cli4, 4000), 7).frame(), D, false},
		{"udp4 first fragment from RS to a director address", mf(udp(rs4, 5353, vip4loc, 4000)).frame(), K, false},
		{"udp4 first fragment from RS to a director address that is a route source", mf(udp(rs4, 5353, dir4, 4000)).frame(), D, false},
		{"tcp4 first fragment to a route source (a director address)", mf(tcp("198.19.0.6", 80, dir4, 22)).frame(), D, false},
		{"udp4 first fragment to pool, port outside the range", mf(udp(rs4, 80, lip4, 1000)).frame(), D, false},
		{"tcp4 first fragment from a client to a client", mf(tcp(cli4, 40000, router4, 80)).frame(), K, false},
		{"icmp4 echo first fragment to VIP", mf(pkt{src: cli4, dst: vip4, proto: 1, l4: icmpH(8, 0, make([]byte, 20))}).frame(), D, false},
		{"icmp4 echo first fragment to a local VIP", mf(pkt{src: cli4, dst: vip4loc, proto: 1, l4: icmpH(8, 0, nil)}).frame(), D, false},
		{"icmp4 error first fragment about a NAT connection (not to a VIP)",
			mf(icmpErr(3, router4, cli4, q4(cli4, 40000, rs4, 8080))).frame(), K, false},
		{"icmp4 first fragment to a director address", mf(pkt{src: cli4, dst: dir4, proto: 1, l4: icmpH(8, 0, nil)}).frame(), K, false},
		{"gre first fragment to VIP", mf(pkt{src: cli4, dst: vip4, proto: 47, l4: make([]byte, 8)}).frame(), K, false},
		{"tcp6 first fragment to VIP:81", frag(tcp(cli6, 4000, vip6, 81), 0).frame(), D, false},
		{"tcp6 last fragment to VIP:81", last6(tcp(cli6, 4000, vip6, 81), 90).frame(), D, false},
		{"tcp6 atomic fragment to VIP:81", last6(tcp(cli6, 4000, vip6, 81), 0).frame(), K, false},
		{"tcp6 atomic fragment to VIP:80", last6(tcp(cli6, 4000, vip6, 80), 0).frame(), D, false},
		{"tcp6 first fragment from RS", frag(tcp(rs6, 8080, cli6, 40000), 0).frame(), D, false},
		{"tcp6 non-first fragment from RS to a director address", frag(tcp(rs6, 8080, "::1", 40000), 5).frame(), K, false},
		{"udp6 first fragment to pool, any port", frag(udp(rs6, 53, lip6, 1), 0).frame(), D, false},
		{"udp6 first fragment to VIP behind hop-by-hop", exts(frag(udp(cli6, 4000, vip6any, 9), 0), hop).frame(), D, false},
		{"icmp6 echo first fragment to VIP", frag(icmpErr(128, cli6, vip6, tcp(vip6, 80, cli6, 40000)), 0).frame(), D, false},
		{"icmp6 echo first fragment to a client", frag(icmpErr(128, vip6, cli6, tcp(vip6, 80, cli6, 40000)), 0).frame(), K, false},

		// 802.1Q: the frame is classified by what it carries.
		{"802.1Q tcp4 to VIP:81", tagged(tcp(cli4, 40000, vip4, 81), header.EtherTypeVLAN).frame(), K, false},
		{"802.1Q tcp6 to VIP:80", tagged(tcp(cli6, 40000, vip6, 80), header.EtherTypeVLAN).frame(), D, false},
		{"802.1Q udp4 NAT reply from RS:5353", tagged(udp(rs4, 5353, cli4, 4000), header.EtherTypeVLAN).frame(), D, false},
		{"802.1Q tcp4 FULLNAT reply to pool:61000", tagged(tcp(rs4, 80, lip4, 61000), header.EtherTypeVLAN).frame(), D, false},
		{"802.1Q icmp4 unreachable to VIP", tagged(icmpErr(3, router4, vip4, q4(vip4, 80, cli4, 40000)), header.EtherTypeVLAN).frame(), D, false},
		{"802.1Q tcp4 non-first fragment to VIP", tagged(frag(tcp(cli4, 40000, vip4, 80), 100), header.EtherTypeVLAN).frame(), D, false},
		{"802.1Q neighbour solicitation for VIP", tagged(ndp(135, vip6), header.EtherTypeVLAN).frame(), S, false},
		{"802.1Q VID 0 (priority tag) tcp4 to VIP:80", vlanTag(tcp(cli4, 40000, vip4, 80).frame(), 0x81, 0, 0xe0, 0), D, false},
		{"802.1Q in 802.1Q tcp4 to VIP:80", vlanTag(tagged(tcp(cli4, 40000, vip4, 80), header.EtherTypeVLAN).frame(), 0x81, 0, 0, 7), K, false},
		{"802.1Q in 802.1ad tcp4 to VIP:80", vlanTag(tagged(tcp(cli4, 40000, vip4, 80), header.EtherTypeVLAN).frame(), 0x88, 0xa8, 0, 7), K, false},
		{"802.1Q tcp4 to VIP:80, cut in the inner IPv4 header", withCut(tagged(tcp(cli4, 40000, vip4, 80), header.EtherTypeVLAN), 34).frame(), K, false},
		{"802.1Q tag only", tagged(tcp(cli4, 40000, vip4, 80), header.EtherTypeVLAN).frame()[:18], K, false},

		// NAT services on port 0: replies from every port of the real
		// server (Compute).
		{"udp4 from RS of a port-0 NAT service, port 53", udp(rs4, 53, cli4, 4000).frame(), D, false},
		{"udp4 from RS of a port-0 NAT service to a director address", udp(rs4, 7777, dir4, 4000).frame(), K, false},
		{"tcp4 from RS of port-0 UDP NAT service, another TCP port", tcp(rs4, 7777, cli4, 4000).frame(), K, false},
		{"icmp4 about a connection to RS of a port-0 NAT service", icmpErr(3, router4, cli4, udp(cli4, 4000, rs4, 7777)).frame(), D, false},
		{"icmp4 about a connection to RS of a port-0 NAT service, to a director address",
			icmpErr(3, router4, dir4, udp(dir4, 4000, rs4, 7777)).frame(), K, false},

		// Anything else.
		{"empty frame", nil, K, false},
		{"13 bytes", make([]byte, 13), K, false},
		{"Ethernet header only", tcp(cli4, 40000, vip4, 80).frame()[:14], K, false},
		{"LLDP", append(tcp(cli4, 40000, vip4, 80).frame()[:12], 0x88, 0xcc, 2, 7, 4), K, false},
		{"IPv4 EtherType carrying ARP", pkt{src: cli4, dst: vip4, proto: 6, l4: tcpH(1, 80), etherTyp: header.EtherTypeARP}.frame(), K, false},
	}
}
