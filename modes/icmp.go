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
	return natICMP(frame, p, rs, false)
}

// NATICMPOut translates an ICMP error sent by a real server about a packet
// of a NAT connection (ip_vs_out_icmp, inout=1). The quoted packet is client
// → RIP:rport; vip is VIP:vport. The outer source becomes VIP, the quoted
// destination VIP, the quoted destination port vport; checksums as for
// NATICMPIn.
func NATICMPOut(frame []byte, p *header.Parsed, vip netip.AddrPort) Result {
	return natICMP(frame, p, vip, true)
}

func natICMP(frame []byte, p *header.Parsed, a netip.AddrPort, out bool) Result {
	if (p.Kind != header.KindIPv4 && p.Kind != header.KindIPv6) || p.Reason != header.ReasonNone ||
		!p.Inner.OK || p.End > len(frame) || !familyOK(p, a.Addr()) {
		return verdict(Unsupported)
	}
	if p.TTL <= 1 {
		return verdict(TTLExceeded)
	}
	v := p.IPVersion
	alen := p.AddrLen()
	srcOff, dstOff := ipOffsets(v)
	var nb [16]byte
	na := addrBytes(&nb, a.Addr())
	ip := frame[p.L3Off:p.End]
	in := &p.Inner
	inIP := frame[in.L3Off:p.End]

	outerOff, innerOff := dstOff, srcOff // inbound: outer daddr, quoted saddr
	portOff := 0                         // quoted source port
	if out {
		outerOff, innerOff = srcOff, dstOff // outbound: outer saddr, quoted daddr
		portOff = 2                         // quoted destination port
	}
	ipDelta := header.DeltaBytes(0, ip[outerOff:outerOff+alen], na)
	copy(ip[outerOff:outerOff+alen], na)
	copy(inIP[innerOff:innerOff+alen], na)
	switch in.Proto {
	case header.ProtoTCP, header.ProtoUDP, header.ProtoSCTP:
		binary.BigEndian.PutUint16(frame[in.L4Off+portOff:], a.Port())
		if out {
			in.DstPort = a.Port()
		} else {
			in.SrcPort = a.Port()
		}
	}
	if out {
		p.Src, in.Dst = nb, nb
	} else {
		p.Dst, in.Src = nb, nb
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
