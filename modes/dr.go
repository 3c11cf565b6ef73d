package modes

import "github.com/uvs-lb/uvs/header"

// DR forwards a packet by direct routing (net/netfilter/ipvs/ip_vs_xmit.c, ip_vs_dr_xmit):
// the IP packet is unchanged except for the TTL/hop-limit decrement (and the
// IPv4 header checksum); the Ethernet destination becomes the real server's
// (next hop's) MAC and the source the egress interface's MAC. Any IP packet
// the parser identified is accepted, fragments included.
func DR(frame []byte, p *header.Parsed, dstMAC, srcMAC [6]byte) Result {
	if r := decrementTTL(frame, p); !r.OK() {
		return r
	}
	e := header.Ethernet(frame)
	e.SetDst(dstMAC)
	e.SetSrc(srcMAC)
	return verdict(OK)
}

func decrementTTL(frame []byte, p *header.Parsed) Result {
	if (p.Kind != header.KindIPv4 && p.Kind != header.KindIPv6) || p.End > len(frame) {
		return verdict(Unsupported)
	}
	if p.TTL <= 1 {
		return verdict(TTLExceeded)
	}
	ip := frame[p.L3Off:p.End]
	d := decTTL(ip, p.IPVersion, 0)
	if p.IPVersion == 4 {
		ih := header.IPv4(ip)
		ih.SetChecksum(header.ApplyDelta(ih.Checksum(), d))
	}
	p.TTL--
	return verdict(OK)
}
