package header

import "encoding/binary"

// L4ChecksumOffset returns the offset of the checksum field within the L4
// header of proto, or -1 if this package does not compute it.
func L4ChecksumOffset(proto uint8) int {
	switch proto {
	case ProtoTCP:
		return TCPChecksumOff
	case ProtoUDP:
		return UDPChecksumOff
	case ProtoICMPv4, ProtoICMPv6:
		return ICMPv4ChecksumOff
	}
	return -1
}

// ComputeL4Checksum returns the correct checksum of the L4 segment
// frame[p.L4Off:p.End] of a parsed, unfragmented TCP, UDP, ICMPv4 or ICMPv6
// packet, ignoring the current value of its checksum field. The
// pseudo-header addresses are read from the frame, so the result reflects
// any rewrite made since Parse. A UDP result of 0 is returned as 0xffff.
// ok is false for other protocols or a truncated L4 header.
func ComputeL4Checksum(frame []byte, p *Parsed) (c uint16, ok bool) {
	co := L4ChecksumOffset(p.Proto)
	if co < 0 || p.L4Off+co+2 > p.End || p.End > len(frame) {
		return 0, false
	}
	seg := frame[p.L4Off:p.End]
	var s uint16
	if p.Proto != ProtoICMPv4 {
		s = pseudoFromFrame(frame, p, uint32(len(seg)))
	}
	s = Checksum(seg[:co], s)
	s = Checksum(seg[co+2:], s)
	c = ^s
	if p.Proto == ProtoUDP {
		c = UDPChecksumValue(c)
	}
	return c, true
}

// SetL4Checksum recomputes the L4 checksum of a parsed packet (see
// ComputeL4Checksum) and stores it. Use it to complete a frame that arrived
// CHECKSUM_PARTIAL, whose field holds only the pseudo-header sum.
func SetL4Checksum(frame []byte, p *Parsed) bool {
	c, ok := ComputeL4Checksum(frame, p)
	if ok {
		binary.BigEndian.PutUint16(frame[p.L4Off+L4ChecksumOffset(p.Proto):], c)
	}
	return ok
}

// pseudoFromFrame sums the pseudo-header of the packet using the addresses
// currently in the frame. (For an IPv6 packet with a routing header RFC
// 8200 §8.1 asks for the final destination; uvs uses the header's.)
func pseudoFromFrame(frame []byte, p *Parsed, length uint32) uint16 {
	ip := frame[p.L3Off:]
	if p.IPVersion == 6 {
		return PseudoHeaderChecksum(p.Proto, ip[ipv6Src:ipv6Src+16], ip[ipv6Dst:ipv6Dst+16], length)
	}
	return PseudoHeaderChecksum(p.Proto, ip[ipv4Src:ipv4Src+4], ip[ipv4Dst:ipv4Dst+4], length)
}

// L4ChecksumValid reports whether the L4 checksum of a parsed packet
// verifies (a zero UDP checksum over IPv4 means "none" and verifies).
func L4ChecksumValid(frame []byte, p *Parsed) bool {
	co := L4ChecksumOffset(p.Proto)
	if co < 0 || p.L4Off+co+2 > p.End || p.End > len(frame) {
		return false
	}
	seg := frame[p.L4Off:p.End]
	if p.Proto == ProtoUDP && p.IPVersion == 4 && binary.BigEndian.Uint16(seg[co:]) == 0 {
		return true
	}
	var s uint16
	if p.Proto != ProtoICMPv4 {
		s = pseudoFromFrame(frame, p, uint32(len(seg)))
	}
	return Checksum(seg, s) == 0xffff
}
