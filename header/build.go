package header

import "encoding/binary"

// ARPReplyInPlace turns the ARP request in frame (parsed into p) into the
// reply announcing that the requested address is at mac: the operation
// becomes reply, the requester becomes the target, mac and the requested
// address become the sender, and the Ethernet header is addressed back to
// the requester from mac (an 802.1Q tag is kept). It returns false, leaving
// frame untouched, if p is not an ARP request. Whether the requested address
// is ours is the caller's decision.
func ARPReplyInPlace(frame []byte, p *Parsed, mac [6]byte) bool {
	if p.Kind != KindARP || p.Reason != ReasonNone || p.ARPOp != ARPRequest || p.L3Off+ARPSize > len(frame) {
		return false
	}
	e := Ethernet(frame)
	a := ARP(frame[p.L3Off:])
	var sha [6]byte
	var spa, tpa [4]byte
	copy(sha[:], a[arpSHA:arpSHA+6])
	copy(spa[:], a[arpSPA:arpSPA+4])
	copy(tpa[:], a[arpTPA:arpTPA+4])
	binary.BigEndian.PutUint16(a[arpOp:], ARPReply)
	copy(a[arpTHA:arpTHA+6], sha[:])
	copy(a[arpTPA:arpTPA+4], spa[:])
	copy(a[arpSHA:arpSHA+6], mac[:])
	copy(a[arpSPA:arpSPA+4], tpa[:])
	e.SetDst(e.Src())
	e.SetSrc(mac)
	return true
}

// copyL2 writes into out the Ethernet header of frame (with its VLAN tag)
// addressed back to the frame's sender from its receiver, with payload type
// et. It returns the header length.
func copyL2(out, frame []byte, p *Parsed, et uint16) int {
	copy(out[:p.L2Len], frame[:p.L2Len])
	o, f := Ethernet(out), Ethernet(frame)
	o.SetDst(f.Src())
	o.SetSrc(f.Dst())
	binary.BigEndian.PutUint16(out[p.L2Len-2:], et)
	return p.L2Len
}

// NeighborAdvertSize is the length of the IPv6 packet NeighborAdvert builds
// (IPv6 header, 24-byte advertisement, 8-byte target link-layer option).
const NeighborAdvertSize = IPv6Size + ICMPv6NeighborMsgSize + icmpv6NeighborOptLLLen

// NeighborAdvert writes into out the Neighbor Advertisement (RFC 4861 §7.2.4)
// answering the Neighbor Solicitation in frame (parsed into p): the target
// address of the solicitation is at mac. The advertisement goes from the
// target address to the soliciting address with the Solicited flag set, or
// to all-nodes (ff02::1) with it clear when the solicitation came from the
// unspecified address (duplicate address detection); Override is set,
// Router when router is true. It returns the frame length, or 0 if the
// solicitation fails the RFC 4861 §7.1.1 checks or out is too small.
func NeighborAdvert(out, frame []byte, p *Parsed, mac [6]byte, router bool) int {
	if p.Kind != KindIPv6 || p.Reason != ReasonNone || p.Proto != ProtoICMPv6 ||
		p.ICMPType != ICMPv6NeighborSolicit || p.ICMPCode != 0 || p.TTL != 255 ||
		p.End-p.L4Off < ICMPv6NeighborMsgSize {
		return 0
	}
	target := ICMPv6(frame[p.L4Off:p.End]).Target()
	if target[0] == 0xff {
		return 0 // multicast target
	}
	n := p.L2Len + NeighborAdvertSize
	if len(out) < n {
		return 0
	}
	unspec := p.Src == [16]byte{}
	l2 := copyL2(out, frame, p, EtherTypeIPv6)
	var dst [16]byte
	flags := uint8(ICMPv6NDFlagOverride)
	if router {
		flags |= ICMPv6NDFlagRouter
	}
	if unspec {
		dst = [16]byte{0: 0xff, 1: 0x02, 15: 1}
		Ethernet(out).SetDst([6]byte{0x33, 0x33, 0, 0, 0, 1})
	} else {
		dst = p.Src
		flags |= ICMPv6NDFlagSolicited
	}
	Ethernet(out).SetSrc(mac)
	ip := out[l2:n]
	putIPv6(ip, ICMPv6NeighborMsgSize+icmpv6NeighborOptLLLen, ProtoICMPv6, 255, &target, &dst)
	m := ip[IPv6Size:]
	clear(m)
	m[0] = ICMPv6NeighborAdvert
	m[4] = flags
	copy(m[icmpv6NeighborTarget:], target[:])
	m[icmpv6NeighborOptsOff] = ICMPv6OptTargetLLAddr
	m[icmpv6NeighborOptsOff+1] = 1
	copy(m[icmpv6NeighborOptsOff+2:], mac[:])
	s := PseudoHeaderChecksum(ProtoICMPv6, target[:], dst[:], uint32(len(m)))
	binary.BigEndian.PutUint16(m[ICMPv6ChecksumOff:], ^Checksum(m, s))
	return n
}

// putIPv6 writes a fixed IPv6 header with traffic class and flow label 0.
func putIPv6(ip []byte, payload int, nh, hlim uint8, src, dst *[16]byte) {
	ip[0], ip[1], ip[2], ip[3] = 0x60, 0, 0, 0
	binary.BigEndian.PutUint16(ip[ipv6PayloadLen:], uint16(payload))
	ip[ipv6NextHeader] = nh
	ip[ipv6HopLimit] = hlim
	copy(ip[ipv6Src:], src[:])
	copy(ip[ipv6Dst:], dst[:])
}

// Quote limits for ICMP errors: RFC 1812 §4.3.2.3 (the whole ICMPv4 error
// datagram at most 576 bytes) and RFC 4443 §2.4(c) (the ICMPv6 error
// packet at most the IPv6 minimum MTU, 1280 bytes).
const (
	icmpv4ErrorMax = 576
	icmpv6ErrorMax = 1280
	// ICMPErrorTTL is the TTL / hop limit of the errors built here.
	ICMPErrorTTL = 64
)

// ipv4Unicast reports whether a is usable as the source of a packet we
// answer with an error (RFC 1812 §4.3.2.7: not 0/8, loopback, multicast,
// class E or limited broadcast).
func ipv4Unicast(a []byte) bool {
	return a[0] != 0 && a[0] != 127 && a[0] < 224
}

// ICMPv4Error writes into out an ICMPv4 error of the given type and code
// about the IPv4 packet in frame (parsed into p), sent from src back to the
// packet's source: the Ethernet addresses are swapped and an 802.1Q tag
// kept; out must not overlap frame. For destination-unreachable/fragmentation-needed, mtu is the
// next-hop MTU (RFC 1191); otherwise pass 0. The error quotes as much of
// the offending packet as fits in a 576-byte datagram (RFC 1812
// §4.3.2.3; RFC 792 asks for at least the header plus 64 bits). It returns
// the frame length, or 0 when RFC 1812 §4.3.2.7 forbids an error (the
// packet is an ICMP error, a non-initial fragment, link-layer or IP
// multicast/broadcast, or from a non-unicast source) or out is too small.
func ICMPv4Error(out, frame []byte, p *Parsed, src [4]byte, typ, code uint8, mtu uint16) int {
	if p.Kind != KindIPv4 || p.End > len(frame) || p.FragOffset != 0 || frame[0]&1 != 0 ||
		!ipv4Unicast(p.SrcIP()) || p.Dst[12] >= 224 ||
		(p.Proto == ProtoICMPv4 && p.L4Off < p.End && isICMPv4ErrorAny(frame[p.L4Off])) {
		return 0
	}
	quote := min(p.IPLen, icmpv4ErrorMax-IPv4MinSize-ICMPv4MinSize)
	n := p.L2Len + IPv4MinSize + ICMPv4MinSize + quote
	if len(out) < n {
		return 0
	}
	l2 := copyL2(out, frame, p, EtherTypeIPv4)
	ip := IPv4(out[l2:n])
	ip[0] = 0x45
	ip[ipv4TOS] = p.TOS&0x1e | 0xc0 // IPTOS_PREC_INTERNETCONTROL, as Linux icmp_send
	binary.BigEndian.PutUint16(ip[ipv4TotalLen:], uint16(len(ip)))
	binary.BigEndian.PutUint32(ip[ipv4ID:], 0) // ID 0, no flags
	ip[ipv4TTL] = ICMPErrorTTL
	ip[ipv4Proto] = ProtoICMPv4
	copy(ip[ipv4Src:], src[:])
	copy(ip[ipv4Dst:], p.SrcIP())
	ip.UpdateChecksum()
	m := ip[IPv4MinSize:]
	m[0], m[1] = typ, code
	binary.BigEndian.PutUint32(m[2:], 0) // checksum and the first unused bytes
	binary.BigEndian.PutUint16(m[6:], mtu)
	copy(m[ICMPv4MinSize:], frame[p.L3Off:p.L3Off+quote])
	binary.BigEndian.PutUint16(m[ICMPv4ChecksumOff:], ^Checksum(m, 0))
	return n
}

// ICMPv6Error writes into out an ICMPv6 error of the given type and code
// about the IPv6 packet in frame (parsed into p), sent from src back to the
// packet's source with the Ethernet addresses swapped (out must not
// overlap frame). param is the
// 32-bit field after the checksum: the MTU for packet-too-big, the pointer
// for parameter-problem, otherwise 0. The error quotes as much of the
// offending packet as fits in 1280 bytes (RFC 4443 §2.4(c)). It returns the
// frame length, or 0 when RFC 4443 §2.4(e) forbids an error (the packet is
// an ICMPv6 error, or was sent to a multicast address unless this is a
// packet-too-big, or comes from the unspecified or a multicast address) or
// out is too small.
func ICMPv6Error(out, frame []byte, p *Parsed, src [16]byte, typ, code uint8, param uint32) int {
	if p.Kind != KindIPv6 || p.End > len(frame) || p.Src == [16]byte{} || p.Src[0] == 0xff ||
		(p.Proto == ProtoICMPv6 && p.L4Off < p.End && IsICMPv6Error(frame[p.L4Off])) {
		return 0
	}
	if typ != ICMPv6PacketTooBig && (p.Dst[0] == 0xff || frame[0]&1 != 0) {
		return 0
	}
	quote := min(p.IPLen, icmpv6ErrorMax-IPv6Size-ICMPv6MinSize)
	n := p.L2Len + IPv6Size + ICMPv6MinSize + quote
	if len(out) < n {
		return 0
	}
	l2 := copyL2(out, frame, p, EtherTypeIPv6)
	ip := out[l2:n]
	dst := p.Src
	putIPv6(ip, ICMPv6MinSize+quote, ProtoICMPv6, ICMPErrorTTL, &src, &dst)
	m := ip[IPv6Size:]
	m[0], m[1] = typ, code
	binary.BigEndian.PutUint16(m[2:], 0)
	binary.BigEndian.PutUint32(m[4:], param)
	copy(m[ICMPv6MinSize:], frame[p.L3Off:p.L3Off+quote])
	s := PseudoHeaderChecksum(ProtoICMPv6, src[:], dst[:], uint32(len(m)))
	binary.BigEndian.PutUint16(m[ICMPv6ChecksumOff:], ^Checksum(m, s))
	return n
}
