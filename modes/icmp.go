package modes

import (
	"encoding/binary"
	"net/netip"

	"github.com/uvs-lb/uvs/header"
)

// NATICMPIn translates an ICMP error arriving from the client side about a
// packet of a NAT connection (net/netfilter/ipvs/ip_vs_core.c, ip_vs_in_icmp → ip_vs_nat_icmp
// with inout=0). The quoted packet is one the director sent (VIP:vport →
// client); rs is the connection's real server (RIP:rport). The outer
// destination becomes RIP, the quoted source becomes RIP, the quoted source
// port becomes rport (TCP, UDP, SCTP), the IPv4 header checksums of both
// headers are recomputed, the outer TTL decremented, and the ICMP checksum
// is recomputed over the whole message. The quoted L4 checksum is left as
// is, as the kernel does.
func NATICMPIn(frame []byte, p *header.Parsed, rs netip.AddrPort) Result {
	return translateICMP(frame, p, &icmpRewrite{outerDst: rs.Addr(), quotedSrc: rs})
}

// NATICMPOut translates an ICMP error sent by a real server about a packet
// of a NAT connection (ip_vs_out_icmp, inout=1). The quoted packet is client
// → RIP:rport; vip is VIP:vport. The outer source becomes VIP, the quoted
// destination VIP, the quoted destination port vport; checksums as for
// NATICMPIn.
func NATICMPOut(frame []byte, p *header.Parsed, vip netip.AddrPort) Result {
	return translateICMP(frame, p, &icmpRewrite{outerSrc: vip.Addr(), quotedDst: vip})
}

// FullNATICMPIn translates an ICMP error arriving from the client side
// about a packet of a FULLNAT connection, client CIP:cport → VIP:vport sent
// on as LIP:lport → RIP:rport (FullNATRequest). The error is addressed to
// the VIP and quotes a reply the director sent, VIP:vport → CIP:cport; it
// leaves for the real server as if the director's local address had sent
// it about the packet the real server sent: outer source := local's
// address, outer destination := rs's, the quoted packet becomes RIP:rport →
// LIP:lport. Mainline Linux has no FULLNAT; this is ip_vs_in_icmp's NAT
// translation (ip_vs_nat_icmp) applied to both ends of the tuple, as DPVS
// does for its FULLNAT (src/ipvs/ip_vs_core.c, xmit_inbound_icmp →
// dp_vs_xmit_icmp: outer addresses, inner addresses and ports). TTL, IPv4
// header checksums and the ICMP checksum as for NATICMPIn; the quoted TCP
// or UDP checksum, when the quote holds it, is updated for the changed
// addresses and ports (RFC 1624), as netfilter's NAT does for the packets
// ICMP errors quote (net/netfilter/nf_nat_proto.c,
// nf_nat_icmp_reply_translation), so the quote is exactly the packet its
// receiver sent.
func FullNATICMPIn(frame []byte, p *header.Parsed, local, rs netip.AddrPort) Result {
	return translateICMP(frame, p, &icmpRewrite{
		outerSrc: local.Addr(), outerDst: rs.Addr(),
		quotedSrc: rs, quotedDst: local, quotedL4Csum: true,
	})
}

// FullNATICMPOut translates an ICMP error arriving from the real-server
// side about a packet of a FULLNAT connection: it is addressed to the
// local address LIP and quotes the request the director sent, LIP:lport →
// RIP:rport. It leaves for the client as if the VIP had sent it about the
// client's packet: outer source := vip's address, outer destination :=
// client's, the quoted packet becomes CIP:cport → VIP:vport (ip_vs_out_icmp
// applied to both ends of the tuple; DPVS's xmit_outbound_icmp). Checksums
// and TTL as for FullNATICMPIn.
func FullNATICMPOut(frame []byte, p *header.Parsed, vip, client netip.AddrPort) Result {
	return translateICMP(frame, p, &icmpRewrite{
		outerSrc: vip.Addr(), outerDst: client.Addr(),
		quotedSrc: client, quotedDst: vip, quotedL4Csum: true,
	})
}

// icmpRewrite says what an ICMP error translation changes: the outer
// addresses, the quoted packet's endpoints (address and, for TCP, UDP and
// SCTP, port) and whether the quoted L4 checksum follows. Invalid values
// are left as they are.
type icmpRewrite struct {
	outerSrc, outerDst   netip.Addr
	quotedSrc, quotedDst netip.AddrPort
	quotedL4Csum         bool
}

// translateICMP rewrites an ICMP error (p.Inner parsed) in place: the
// outer addresses with an incremental IPv4 header checksum update and the
// TTL decrement, the quoted addresses and ports with a recomputed quoted
// IPv4 header checksum, optionally the quoted L4 checksum, and then the
// ICMP checksum over the whole message. p describes the result.
func translateICMP(frame []byte, p *header.Parsed, rw *icmpRewrite) Result {
	if (p.Kind != header.KindIPv4 && p.Kind != header.KindIPv6) || p.Reason != header.ReasonNone ||
		!p.Inner.OK || p.End > len(frame) {
		return verdict(Unsupported)
	}
	for _, a := range [...]netip.Addr{rw.outerSrc, rw.outerDst, rw.quotedSrc.Addr(), rw.quotedDst.Addr()} {
		if a.IsValid() && !familyOK(p, a) {
			return verdict(Unsupported)
		}
	}
	if p.TTL <= 1 {
		return verdict(TTLExceeded)
	}
	v := p.IPVersion
	srcOff, dstOff := ipOffsets(v)
	ip := frame[p.L3Off:p.End]
	in := &p.Inner
	inIP := frame[in.L3Off:p.End]
	ports := in.Proto == header.ProtoTCP || in.Proto == header.ProtoUDP || in.Proto == header.ProtoSCTP

	// ipDelta: the outer header's changed words (IPv4 header checksum);
	// qDelta: the quoted packet's changed addresses and ports (its L4
	// checksum, pseudo-header included).
	var ipDelta, qDelta uint32
	var nb [16]byte
	if rw.outerSrc.IsValid() {
		na := addrBytes(&nb, rw.outerSrc)
		ipDelta = header.DeltaBytes(ipDelta, ip[srcOff:srcOff+len(na)], na)
		copy(ip[srcOff:], na)
		setAddr(&p.Src, na)
	}
	if rw.outerDst.IsValid() {
		na := addrBytes(&nb, rw.outerDst)
		ipDelta = header.DeltaBytes(ipDelta, ip[dstOff:dstOff+len(na)], na)
		copy(ip[dstOff:], na)
		setAddr(&p.Dst, na)
	}
	if rw.quotedSrc.IsValid() {
		na := addrBytes(&nb, rw.quotedSrc.Addr())
		qDelta = header.DeltaBytes(qDelta, inIP[srcOff:srcOff+len(na)], na)
		copy(inIP[srcOff:], na)
		setAddr(&in.Src, na)
		if ports {
			qDelta = putPort(frame[in.L4Off:], rw.quotedSrc.Port(), qDelta)
			in.SrcPort = rw.quotedSrc.Port()
		}
	}
	if rw.quotedDst.IsValid() {
		na := addrBytes(&nb, rw.quotedDst.Addr())
		qDelta = header.DeltaBytes(qDelta, inIP[dstOff:dstOff+len(na)], na)
		copy(inIP[dstOff:], na)
		setAddr(&in.Dst, na)
		if ports {
			qDelta = putPort(frame[in.L4Off+2:], rw.quotedDst.Port(), qDelta)
			in.DstPort = rw.quotedDst.Port()
		}
	}
	if rw.quotedL4Csum {
		fixQuotedL4(frame[in.L4Off:p.End], in, qDelta)
	}
	ipDelta = decTTL(ip, v, ipDelta)
	p.TTL--
	if v == 4 {
		ih := header.IPv4(ip)
		ih.SetChecksum(header.ApplyDelta(ih.Checksum(), ipDelta))
		header.IPv4(inIP).UpdateChecksum()
	}
	header.SetL4Checksum(frame, p)
	return verdict(OK)
}

// putPort stores port at b[0:2] and adds the change to the delta acc.
func putPort(b []byte, port uint16, acc uint32) uint32 {
	acc = header.Delta16(acc, binary.BigEndian.Uint16(b), port)
	binary.BigEndian.PutUint16(b, port)
	return acc
}

// fixQuotedL4 applies delta to the TCP or UDP checksum of a quoted packet
// whose L4 header starts at l4, if the quote holds the field. A UDP
// checksum of 0 ("none": IPv4, and IPv6 tunnels under RFC 6935) stays 0:
// the quote is too short to compute a real one, and an incremental update
// of 0 would be a wrong value.
func fixQuotedL4(l4 []byte, in *header.Inner, delta uint32) {
	if in.Proto != header.ProtoTCP && in.Proto != header.ProtoUDP {
		return
	}
	co := header.L4ChecksumOffset(in.Proto)
	if co+2 > len(l4) {
		return // the quote stops before the checksum (RFC 792: 8 bytes suffice)
	}
	old := binary.BigEndian.Uint16(l4[co:])
	if in.Proto == header.ProtoUDP && old == 0 {
		return
	}
	c := header.ApplyDelta(old, delta)
	if in.Proto == header.ProtoUDP {
		c = header.UDPChecksumValue(c)
	}
	binary.BigEndian.PutUint16(l4[co:], c)
}
