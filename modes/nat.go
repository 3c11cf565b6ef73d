package modes

import (
	"encoding/binary"
	"net/netip"

	"github.com/uvs-lb/uvs/header"
)

// NATRequest rewrites a client→VIP request for a NAT (masquerading)
// connection (net/netfilter/ipvs/ip_vs_xmit.c, ip_vs_nat_xmit): destination address and port
// := rs, TTL/hop limit decremented, IPv4 header and TCP/UDP checksums fixed
// as csum says. p must describe frame (p.Reason == header.ReasonNone, TCP or
// UDP) and rs must be of the packet's address family. A GSO super-frame is
// rewritten the same way, once, with CsumKeepPartial.
func NATRequest(frame []byte, p *header.Parsed, rs netip.AddrPort, csum Csum) Result {
	return translate(frame, p, false, netip.AddrPort{}, true, rs, csum)
}

// NATReply rewrites a real-server→client reply of a NAT connection
// (handle_response): source address and port := vip (VIP:vport), TTL/hop
// limit decremented, checksums fixed.
func NATReply(frame []byte, p *header.Parsed, vip netip.AddrPort, csum Csum) Result {
	return translate(frame, p, true, vip, false, netip.AddrPort{}, csum)
}

// FullNATRequest rewrites a client→VIP request of a FULLNAT connection
// (not in mainline Linux: the FULLNAT of Alibaba's LVS kernel patch and of DPVS, src/ipvs/ip_vs_xmit.c dp_vs_xmit_fnat): source := local (LIP:lport), destination := rs
// (RIP:rport), TTL decremented, checksums fixed. No TOA option is inserted.
func FullNATRequest(frame []byte, p *header.Parsed, local, rs netip.AddrPort, csum Csum) Result {
	return translate(frame, p, true, local, true, rs, csum)
}

// FullNATReply rewrites a real-server→LIP reply of a FULLNAT connection:
// source := vip (VIP:vport), destination := client (CIP:cport).
func FullNATReply(frame []byte, p *header.Parsed, vip, client netip.AddrPort, csum Csum) Result {
	return translate(frame, p, true, vip, true, client, csum)
}

// familyOK reports whether a is an address of the packet's IP version.
func familyOK(p *header.Parsed, a netip.Addr) bool {
	if p.IPVersion == 4 {
		return a.Is4()
	}
	return a.Is6() && !a.Is4In6()
}

// addrBytes writes a into buf and returns its bytes as in an IP header:
// 4 for IPv4, 16 for IPv6.
func addrBytes(buf *[16]byte, a netip.Addr) []byte {
	if a.Is4() {
		*(*[4]byte)(buf[:4]) = a.As4()
		return buf[:4]
	}
	*buf = a.As16()
	return buf[:]
}

// setAddr stores header bytes na (from addrBytes) into a parsed address
// (As16 form). The family is the packet's (familyOK), so an IPv4
// address's mapped prefix is in place already: only the header's bytes
// are copied, a store the next reader of the address can forward from.
func setAddr(a *[16]byte, na []byte) {
	copy(a[16-len(na):], na)
}

// ipOffsets returns the offsets of the source and destination addresses
// within the IP header.
func ipOffsets(v uint8) (src, dst int) {
	if v == 6 {
		return header.IPv6SrcOff, header.IPv6DstOff
	}
	return header.IPv4SrcOff, header.IPv4DstOff
}

// decTTL decrements the TTL/hop limit of the IP header at ip and returns the
// RFC 1624 delta for the IPv4 header checksum. The caller checked TTL > 1.
func decTTL(ip []byte, v uint8, delta uint32) uint32 {
	if v == 6 {
		ip[header.IPv6HopLimitOff]--
		return delta
	}
	// TTL is the high byte of the word TTL|protocol (RFC 1624 §4 example:
	// only the changed word enters the update).
	old := binary.BigEndian.Uint16(ip[header.IPv4TTLOff:])
	ip[header.IPv4TTLOff]--
	return header.Delta16(delta, old, old-0x0100)
}

// translate is the common NAT/FULLNAT rewrite: optionally the source and/or
// the destination address and port, plus the TTL decrement.
func translate(frame []byte, p *header.Parsed, setSrc bool, src netip.AddrPort, setDst bool, dst netip.AddrPort, csum Csum) Result {
	if (p.Kind == header.KindIPv4 || p.Kind == header.KindIPv6) && p.Reason == header.ReasonNone &&
		p.Proto == header.ProtoSCTP && p.End <= len(frame) {
		return translateSCTP(frame, p, setSrc, src, setDst, dst, csum) // sctp.go
	}
	if (p.Kind != header.KindIPv4 && p.Kind != header.KindIPv6) || p.Reason != header.ReasonNone ||
		(p.Proto != header.ProtoTCP && p.Proto != header.ProtoUDP) || p.End > len(frame) {
		return verdict(Unsupported)
	}
	if (setSrc && !familyOK(p, src.Addr())) || (setDst && !familyOK(p, dst.Addr())) {
		return verdict(Unsupported)
	}
	if p.TTL <= 1 {
		return verdict(TTLExceeded)
	}
	v := p.IPVersion
	ip := frame[p.L3Off:p.End]
	l4 := frame[p.L4Off:p.End]
	co := header.L4ChecksumOffset(p.Proto)
	check := binary.BigEndian.Uint16(l4[co:])
	// A UDP checksum of 0 means "none" (IPv4, and IPv6 tunnels under RFC
	// 6935): the incremental update would turn it into a wrong value.
	// udp_snat_handler / udp_dnat_handler (ip_vs_proto_udp.c) compute the
	// full checksum instead, for both families, and send 0 as 0xffff.
	full := csum == CsumPartial || (csum == CsumComplete && p.Proto == header.ProtoUDP && check == 0)
	srcOff, dstOff := ipOffsets(v)
	alen := p.AddrLen()

	// ipDelta collects the address changes (IPv4 header checksum and L4
	// pseudo-header), l4Delta the port changes (L4 header only).
	var ipDelta, l4Delta uint32
	var nb [16]byte
	if setSrc {
		na := addrBytes(&nb, src.Addr())
		old := ip[srcOff : srcOff+alen]
		ipDelta = header.DeltaBytes(ipDelta, old, na)
		copy(old, na)
		np := src.Port()
		l4Delta = header.Delta16(l4Delta, binary.BigEndian.Uint16(l4[0:]), np)
		binary.BigEndian.PutUint16(l4[0:], np)
		setAddr(&p.Src, na)
		p.SrcPort = np
	}
	if setDst {
		na := addrBytes(&nb, dst.Addr())
		old := ip[dstOff : dstOff+alen]
		ipDelta = header.DeltaBytes(ipDelta, old, na)
		copy(old, na)
		np := dst.Port()
		l4Delta = header.Delta16(l4Delta, binary.BigEndian.Uint16(l4[2:]), np)
		binary.BigEndian.PutUint16(l4[2:], np)
		setAddr(&p.Dst, na)
		p.DstPort = np
	}
	// The addresses are covered by both the IPv4 header checksum and the
	// L4 pseudo-header; the ports only by the L4 checksum. A partial
	// checksum is the pseudo-header sum alone: only the addresses enter.
	pseudoDelta := ipDelta
	l4Delta += ipDelta
	ipDelta = decTTL(ip, v, ipDelta)
	p.TTL--
	if v == 4 {
		ih := header.IPv4(ip)
		ih.SetChecksum(header.ApplyDelta(ih.Checksum(), ipDelta))
	}
	if full {
		header.SetL4Checksum(frame, p)
		return verdict(OK)
	}
	if csum == CsumKeepPartial {
		binary.BigEndian.PutUint16(l4[co:], adjustPseudo(check, pseudoDelta))
		return verdict(OK)
	}
	c := header.ApplyDelta(check, l4Delta)
	if p.Proto == header.ProtoUDP {
		c = header.UDPChecksumValue(c)
	}
	binary.BigEndian.PutUint16(l4[co:], c)
	return verdict(OK)
}
