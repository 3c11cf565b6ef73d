package modes

import (
	"encoding/binary"
	"net/netip"

	"github.com/uvs-lb/uvs/header"
)

// FULLNAT across address families (NAT64 and NAT46).
//
// DPVS's FULLNAT serves an IPv6 VIP from IPv4 real servers (its "NAT64":
// src/ipvs/ip_vs_xmit.c, dp_vs_xmit_fnat64 and dp_vs_out_xmit_fnat64;
// src/ipvs/ip_vs_nat64.c) and uvs also serves the reverse, an IPv4 VIP
// from IPv6 real servers. The IP header is translated as RFC 7915
// (IP/ICMP Translation Algorithm) section 4.1 (IPv4 → IPv6) and section
// 5.1 (IPv6 → IPv4) say, with the addresses being the connection's
// endpoints rather than algorithmically mapped ones: IPv4 options and IPv6
// extension headers are not carried over, TOS ↔ traffic class, TTL ↔ hop
// limit (decremented, as a router does), flow label 0, and an IPv4 header
// built from IPv6 gets ID 0 with DF set (an atomic datagram, RFC 6864
// section 4: the IPv6 sender expects no fragmentation on the way, as RFC
// 6145 section 5.1 had it).
//
// The frame is rebuilt in place: the link-layer header and the new IP
// header are written in front of the unchanged L4 header, so a frame
// growing from IPv4 to IPv6 uses the headroom before it (Frame's Buf[:Off])
// and one shrinking moves its start forward. The TCP or UDP checksum is
// updated incrementally (RFC 1624) for the changed pseudo-header: the
// upper-layer length and the protocol enter the IPv4 and the IPv6
// pseudo-header with the same value, so only the addresses (4 against 16
// bytes) and the ports change the sum. RFC 7915 section 4.5: a UDP packet
// over IPv4 without a checksum gets one computed for IPv6.

// XlateGrowth returns how many bytes the IP header of a parsed TCP or UDP
// packet grows (negative: shrinks) when FullNATXlate translates it to the
// other family.
func XlateGrowth(p *header.Parsed) int {
	if p.IPVersion == 4 {
		return header.IPv6Size - (p.L4Off - p.L3Off)
	}
	return header.IPv4MinSize - (p.L4Off - p.L3Off)
}

// XlateCheckMTU is CheckMTU for a packet FullNATXlate is about to
// translate for a path of the given MTU (in the other family): the size
// checked is the translated one, and the MTU reported is the one the
// sender's family sees (the path MTU less the header growth). The
// translated packet cannot be fragmented on the way — IPv6 routers never
// fragment, and the IPv4 header built from IPv6 has DF set — so any packet
// too large is TooBig, as for IPv6 in CheckMTU.
func XlateCheckMTU(p *header.Parsed, mtu int, gsoSize uint16) Result {
	if mtu <= 0 {
		return verdict(OK)
	}
	g := XlateGrowth(p)
	size := p.IPLen
	if gsoSize > 0 {
		size = min(size, p.PayloadOff-p.L3Off+int(gsoSize))
	}
	if size+g <= mtu {
		return verdict(OK)
	}
	return Result{Verdict: TooBig, MTU: uint16(min(max(mtu-g, 68), 0xffff))}
}

// otherFamily reports whether a is a valid address of the IP version other
// than v.
func otherFamily(v uint8, a netip.Addr) bool {
	if v == 4 {
		return a.Is6() && !a.Is4In6()
	}
	return a.Is4()
}

// addrSum returns the folded one's-complement sum of an address pair as
// the pseudo-header holds it.
func addrSum(src, dst []byte) uint16 {
	return header.Checksum(dst, header.Checksum(src, 0))
}

// xlateMSSDelta is by how much the MSS option of a SYN translated from
// IPv6 to IPv4 is lowered: the IPv4 peer's segments, sized by it, grow by
// the header difference when translated back to IPv6 (DPVS lowers the MSS
// of NAT64 SYNs by the same 20 bytes, src/ipvs/ip_vs_proto_tcp.c,
// tcp_in_adjust_mss).
const xlateMSSDelta = header.IPv6Size - header.IPv4MinSize

// minMSS is the smallest MSS the clamp leaves (RFC 9293 section 3.7.1:
// the IPv4 default of 536).
const minMSS = 536

// ipv6MinMTU is the IPv6 minimum link MTU (RFC 8200 section 5), the
// most an ICMPv6 error may take (RFC 4443 section 2.4(c)).
const ipv6MinMTU = 1280

// FullNATXlate rewrites a TCP or UDP packet of a FULLNAT connection whose
// client and real server are of different families: the packet
// buf[off:off+n] (parsed into p) becomes a packet of the other family from
// src to dst (addresses and ports; both of the other family), with TTL or
// hop limit decremented. It returns the new offset and length of the frame
// in buf; the link-layer header is kept, its EtherType changed. csum says
// what the L4 checksum field holds, as for FullNATRequest; with
// CsumKeepPartial the field stays a pseudo-header sum (the caller moves its
// csum_start to the new L4 offset, p.L4Off). A TCP SYN translated from
// IPv6 to IPv4 has its MSS option lowered by 20 bytes. On OK, p describes
// the new frame. A GSO super-frame is translated once, like any packet.
func FullNATXlate(buf []byte, off, n int, p *header.Parsed, src, dst netip.AddrPort, csum Csum) (r Result, noff, nn int) {
	if (p.Kind != header.KindIPv4 && p.Kind != header.KindIPv6) || p.Reason != header.ReasonNone ||
		(p.Proto != header.ProtoTCP && p.Proto != header.ProtoUDP) || off < 0 || off+n > len(buf) || p.End > n {
		return verdict(Unsupported), off, n
	}
	v := p.IPVersion
	if !otherFamily(v, src.Addr()) || !otherFamily(v, dst.Addr()) {
		return verdict(Unsupported), off, n
	}
	if p.TTL <= 1 {
		return verdict(TTLExceeded), off, n
	}
	frame := buf[off : off+n]
	l2 := p.L3Off
	l4len := p.End - p.L4Off
	newHL := header.IPv6Size
	if v == 6 {
		newHL = header.IPv4MinSize
		if newHL+l4len > 0xffff {
			return verdict(Unsupported), off, n
		}
	}
	noff = off + (p.L4Off - l2) - newHL
	if noff < 0 {
		return verdict(NoHeadroom), off, n
	}
	l4 := frame[p.L4Off:p.End]
	co := header.L4ChecksumOffset(p.Proto)
	if co+2 > len(l4) {
		return verdict(Unsupported), off, n
	}
	check := binary.BigEndian.Uint16(l4[co:])
	full := csum == CsumPartial || (v == 4 && p.Proto == header.ProtoUDP && check == 0 && csum == CsumComplete)

	// The new IP header, built from the old one before anything moves.
	var hb [header.IPv6Size]byte
	var sb, db [16]byte
	ns, nd := addrBytes(&sb, src.Addr()), addrBytes(&db, dst.Addr())
	ip := frame[l2:p.L4Off]
	srcOff, dstOff := ipOffsets(v)
	al := p.AddrLen()
	pseudo := header.Delta16(0, addrSum(ip[srcOff:srcOff+al], ip[dstOff:dstOff+al]), addrSum(ns, nd))
	nh := hb[:newHL]
	if v == 4 {
		putIPv6Hdr(nh, p.TOS, uint16(l4len), p.Proto, p.TTL-1, ns, nd)
	} else {
		putIPv4Hdr(nh, p.TOS, uint16(header.IPv4MinSize+l4len), p.Proto, p.TTL-1, ns, nd)
	}

	// Ports, and the MSS of a SYN going to IPv4.
	var l4Delta uint32
	l4Delta = putPort(l4[0:], src.Port(), l4Delta)
	l4Delta = putPort(l4[2:], dst.Port(), l4Delta)
	if v == 6 && p.Proto == header.ProtoTCP && p.TCPFlags&header.TCPFlagSYN != 0 {
		l4Delta = clampMSS(l4[:p.PayloadOff-p.L4Off], xlateMSSDelta, l4Delta)
	}

	// Move the link-layer header, write the new IP header and EtherType.
	copy(buf[noff:noff+l2], frame[:l2])
	copy(buf[noff+l2:], nh)
	et := uint16(header.EtherTypeIPv6)
	if v == 6 {
		et = header.EtherTypeIPv4
	}
	binary.BigEndian.PutUint16(buf[noff+l2-2:], et)
	nn = l2 + newHL + l4len
	out := buf[noff : noff+nn]
	p.Parse(out)
	if p.Reason != header.ReasonNone {
		// Cannot happen for a packet that parsed before; a frame that
		// does not parse again is still refused (and is corrupt: the
		// caller drops it).
		return verdict(Unsupported), noff, nn
	}
	switch {
	case full:
		header.SetL4Checksum(out, p)
	case csum == CsumKeepPartial:
		binary.BigEndian.PutUint16(out[p.L4Off+co:], adjustPseudo(check, pseudo))
	default:
		c := header.ApplyDelta(check, l4Delta+pseudo)
		if p.Proto == header.ProtoUDP {
			c = header.UDPChecksumValue(c)
		}
		binary.BigEndian.PutUint16(out[p.L4Off+co:], c)
	}
	return verdict(OK), noff, nn
}

// putIPv6Hdr writes a 40-byte IPv6 header (RFC 7915 section 4.1: traffic
// class from the TOS, flow label 0).
func putIPv6Hdr(b []byte, tc uint8, payload uint16, nh, hlim uint8, src, dst []byte) {
	b[0] = 0x60 | tc>>4
	b[1] = tc << 4
	b[2], b[3] = 0, 0
	binary.BigEndian.PutUint16(b[4:], payload)
	b[6] = nh
	b[7] = hlim
	copy(b[8:24], src)
	copy(b[24:40], dst)
}

// putIPv4Hdr writes a 20-byte IPv4 header with its checksum (RFC 7915
// section 5.1: TOS from the traffic class; ID 0 and DF, see above).
func putIPv4Hdr(b []byte, tos uint8, total uint16, proto, ttl uint8, src, dst []byte) {
	b[0] = 0x45
	b[1] = tos
	binary.BigEndian.PutUint16(b[2:], total)
	binary.BigEndian.PutUint16(b[4:], 0)
	binary.BigEndian.PutUint16(b[6:], 0x4000) // DF
	b[8] = ttl
	b[9] = proto
	b[10], b[11] = 0, 0
	copy(b[12:16], src)
	copy(b[16:20], dst)
	header.IPv4(b[:header.IPv4MinSize]).UpdateChecksum()
}

// clampMSS lowers the MSS option of the TCP header th (options included)
// by d, to no less than minMSS, and returns acc plus the checksum delta of
// the 16-bit words it changed (the option may start at an odd offset).
func clampMSS(th []byte, d uint16, acc uint32) uint32 {
	for i := header.TCPMinSize; i < len(th); {
		switch th[i] {
		case 0: // end of options
			return acc
		case 1: // no-op
			i++
			continue
		}
		if i+1 >= len(th) || th[i+1] < 2 || i+int(th[i+1]) > len(th) {
			return acc
		}
		if th[i] == 2 && th[i+1] == 4 {
			o := i + 2
			mss := binary.BigEndian.Uint16(th[o:])
			if mss <= minMSS {
				return acc
			}
			nm := max(mss-d, minMSS)
			w := o &^ 1 // the aligned words holding the value
			end := min(w+4, len(th)&^1)
			var old [4]byte
			copy(old[:], th[w:end])
			binary.BigEndian.PutUint16(th[o:], nm)
			return header.DeltaBytes(acc, old[:end-w], th[w:end])
		}
		i += int(th[i+1])
	}
	return acc
}

// FullNATXlateICMP translates an ICMP error about a packet of a FULLNAT
// connection across families (RFC 7915 sections 4.2 and 5.2, ICMPv4 ↔
// ICMPv6): the outer header becomes one of the other family from outerSrc
// to outerDst, the type and code are mapped (an error without an
// equivalent is Unsupported: RFC 7915 drops it), the MTU of a "packet too
// big" / "fragmentation needed" is adjusted by the header difference, the
// quoted packet's IP header is translated too (sections 4.3 and 5.3) with
// its endpoints set to quotedSrc and quotedDst and its TCP or UDP checksum
// updated when the quote holds it, and the ICMP checksum is computed over
// the new message (the ICMPv6 one with its pseudo-header). An ICMPv6 error
// is cut to the IPv6 minimum MTU of 1280 bytes (RFC 4443 section 2.4(c)).
// It returns the frame's new offset and length in buf; on OK, p describes
// the new frame.
func FullNATXlateICMP(buf []byte, off, n int, p *header.Parsed, outerSrc, outerDst netip.Addr, quotedSrc, quotedDst netip.AddrPort) (r Result, noff, nn int) {
	if (p.Kind != header.KindIPv4 && p.Kind != header.KindIPv6) || p.Reason != header.ReasonNone ||
		!p.Inner.OK || off < 0 || off+n > len(buf) || p.End > n {
		return verdict(Unsupported), off, n
	}
	in := &p.Inner
	v := p.IPVersion
	if (in.Proto != header.ProtoTCP && in.Proto != header.ProtoUDP) || in.IPVersion != v || in.L4Off+4 > p.End {
		return verdict(Unsupported), off, n
	}
	for _, a := range [...]netip.Addr{outerSrc, outerDst, quotedSrc.Addr(), quotedDst.Addr()} {
		if !otherFamily(v, a) {
			return verdict(Unsupported), off, n
		}
	}
	if p.TTL <= 1 {
		return verdict(TTLExceeded), off, n
	}
	frame := buf[off : off+n]
	icmp := frame[p.L4Off:]
	typ, code, rest, ok := mapICMP(v, icmp[0], icmp[1], binary.BigEndian.Uint32(icmp[4:8]))
	if !ok {
		return verdict(Unsupported), off, n
	}
	l2 := p.L3Off
	// The quoted header's lengths, as its sender wrote them.
	inIP := frame[in.L3Off:in.L4Off]
	var innerL4Len int
	if v == 4 {
		innerL4Len = int(binary.BigEndian.Uint16(inIP[2:])) - (in.L4Off - in.L3Off)
	} else {
		innerL4Len = int(binary.BigEndian.Uint16(inIP[4:])) - (in.L4Off - in.L3Off - header.IPv6Size)
	}
	if innerL4Len < 0 || innerL4Len+header.IPv4MinSize > 0xffff {
		return verdict(Unsupported), off, n
	}
	newHL := header.IPv6Size
	if v == 6 {
		newHL = header.IPv4MinSize
	}
	prefix := l2 + newHL + header.ICMPv4MinSize + newHL
	noff = off + in.L4Off - prefix
	if noff < 0 {
		return verdict(NoHeadroom), off, n
	}
	nn = prefix + p.End - in.L4Off
	if v == 4 && nn-l2 > ipv6MinMTU {
		nn = l2 + ipv6MinMTU
	}

	// The quoted packet: new endpoints, its L4 checksum updated for the
	// changed pseudo-header and ports.
	var sb, db [16]byte
	qs, qd := addrBytes(&sb, quotedSrc.Addr()), addrBytes(&db, quotedDst.Addr())
	srcOff, dstOff := ipOffsets(v)
	al := p.AddrLen()
	qDelta := header.Delta16(0, addrSum(inIP[srcOff:srcOff+al], inIP[dstOff:dstOff+al]), addrSum(qs, qd))
	ql4 := frame[in.L4Off:p.End]
	qDelta = putPort(ql4[0:], quotedSrc.Port(), qDelta)
	qDelta = putPort(ql4[2:], quotedDst.Port(), qDelta)
	fixQuotedL4(ql4, in, qDelta)

	// The new headers, built aside (they replace more or fewer bytes than
	// they take) and then put in front of the quoted L4 header.
	var hb [header.EthernetVLANSize + 2*header.IPv6Size + header.ICMPv4MinSize]byte
	h := hb[:prefix]
	copy(h, frame[:l2])
	var ob, tb [16]byte
	osrc, odst := addrBytes(&ob, outerSrc), addrBytes(&tb, outerDst)
	outerLen := nn - l2
	ih := h[l2+newHL+header.ICMPv4MinSize:]
	if v == 4 {
		binary.BigEndian.PutUint16(h[l2-2:], header.EtherTypeIPv6)
		putIPv6Hdr(h[l2:], p.TOS, uint16(outerLen-header.IPv6Size), header.ProtoICMPv6, p.TTL-1, osrc, odst)
		putIPv6Hdr(ih, inIP[1], uint16(innerL4Len), in.Proto, inIP[8], qs, qd)
	} else {
		binary.BigEndian.PutUint16(h[l2-2:], header.EtherTypeIPv4)
		putIPv4Hdr(h[l2:], p.TOS, uint16(outerLen), header.ProtoICMPv4, p.TTL-1, osrc, odst)
		tc := inIP[0]<<4 | inIP[1]>>4
		putIPv4Hdr(ih, tc, uint16(header.IPv4MinSize+innerL4Len), in.Proto, inIP[7], qs, qd)
	}
	ic := h[l2+newHL:]
	ic[0], ic[1], ic[2], ic[3] = typ, code, 0, 0
	binary.BigEndian.PutUint32(ic[4:], rest)
	copy(buf[noff:noff+prefix], h)
	out := buf[noff : noff+nn]
	p.Parse(out)
	if p.Reason != header.ReasonNone || !p.Inner.OK {
		return verdict(Unsupported), noff, nn
	}
	header.SetL4Checksum(out, p)
	return verdict(OK), noff, nn
}

// mapICMP maps an ICMP error's type, code and the 32 bits after its
// checksum (unused, MTU or pointer) from the family of IP version v to the
// other one: RFC 7915 section 4.2 (ICMPv4 → ICMPv6) and section 5.2
// (ICMPv6 → ICMPv4). ok is false for the errors RFC 7915 drops (source
// quench, unknown codes) and for parameter problems other than an
// unrecognised next header: their ICMPv4 form (type 12) is not an error
// IPVS relates to a connection (ip_vs_in_icmp takes only destination
// unreachable, source quench and time exceeded), so uvs would not
// translate it back either.
func mapICMP(v uint8, typ, code uint8, rest uint32) (nt, nc uint8, nr uint32, ok bool) {
	if v == 4 {
		switch typ {
		case 3: // destination unreachable
			switch code {
			case 0, 1, 5, 6, 7, 8, 11, 12: // net/host unreachable, source route failed, …
				return 1, 0, 0, true // no route to destination
			case 2: // protocol unreachable
				return 4, 1, 6, true // parameter problem, unrecognized next header, pointer to it
			case 3: // port unreachable
				return 1, 4, 0, true
			case 4: // fragmentation needed: packet too big, MTU + 20
				mtu := rest & 0xffff
				if mtu == 0 {
					return 0, 0, 0, false // RFC 1191 plateau guessing is not done
				}
				return 2, 0, mtu + xlateMSSDelta, true
			case 9, 10, 13, 15: // administratively prohibited
				return 1, 1, 0, true
			}
		case 11: // time exceeded
			return 3, code, 0, true
		}
		return 0, 0, 0, false
	}
	switch typ {
	case 1: // destination unreachable
		switch code {
		case 0, 2, 3: // no route, beyond scope, address unreachable
			return 3, 1, 0, true // host unreachable
		case 1: // administratively prohibited
			return 3, 10, 0, true
		case 4: // port unreachable
			return 3, 3, 0, true
		}
	case 2: // packet too big: fragmentation needed, MTU - 20
		mtu := rest
		if mtu < 68+xlateMSSDelta {
			mtu = 68 + xlateMSSDelta
		}
		return 3, 4, min(mtu-xlateMSSDelta, 0xffff), true
	case 3: // time exceeded
		return 11, code, 0, true
	case 4: // parameter problem
		if code == 1 { // unrecognized next header
			return 3, 2, 0, true
		}
	}
	return 0, 0, 0, false
}
