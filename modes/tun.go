package modes

import (
	"encoding/binary"
	"net/netip"

	"github.com/uvs-lb/uvs/header"
)

// Encapsulation overheads with an outer IPv4 header (net/netfilter/ipvs/ip_vs_xmit.c, ip_vs_tunnel_xmit).
const (
	IPIPOverhead = header.IPv4MinSize                      // 20
	GUEOverhead  = header.IPv4MinSize + header.UDPSize + 4 // 32: UDP + GUE v0 header
	guev0Size    = 4
	minIPv4MTU   = 68
)

// Tunnel describes the outer header of a tunnelled (-i) packet.
type Tunnel struct {
	// Src and Dst are the outer IPv4 addresses: the director's address
	// towards the real server and the real server.
	Src, Dst netip.Addr
	// ID is the outer IPv4 identification.
	ID uint16
	// MTU is the path MTU towards the real server; 0 skips the check.
	MTU int
	// GUEPort selects GUE encapsulation (--tun-type gue --tun-port) when
	// non-zero; 0 means plain IPIP.
	GUEPort uint16
	// GUESrcPort is the outer UDP source port for GUE (FlowSourcePort
	// computes the kernel-style flow hash).
	GUESrcPort uint16
}

// Overhead returns the bytes the encapsulation adds.
func (t *Tunnel) Overhead() int {
	if t.GUEPort != 0 {
		return GUEOverhead
	}
	return IPIPOverhead
}

// Encap tunnels the IP packet of the frame buf[off:off+n] (parsed into p)
// to the real server (net/netfilter/ipvs/ip_vs_xmit.c, ip_vs_tunnel_xmit): the inner TTL or
// hop limit is decremented, an outer IPv4 header (and for GUE a UDP header
// plus a 4-byte GUE v0 header) is prepended into the headroom buf[:off],
// and the Ethernet header (with any VLAN tag) is moved in front of it with
// EtherType IPv4; link padding is dropped. The outer header has DF copied
// from an inner IPv4 header (0 for inner IPv6), TOS = inner DSCP with ECN
// encapsulation (RFC 6040: CE becomes ECT(0)), TTL = the decremented inner
// TTL, protocol 4 or 41 (17 for GUE); the GUE UDP checksum is 0. The
// caller sets the Ethernet addresses afterwards. It returns the new offset
// and length of the frame in buf.
//
// With t.MTU set, an inner IPv4 packet with DF (not an ICMP error) or any
// inner IPv6 packet that would exceed it once encapsulated returns TooBig
// with the MTU to report (t.MTU minus the overhead); a path MTU whose
// payload would fall below 68 returns Unsupported. A non-DF IPv4 packet is
// encapsulated even if too big: fragmenting the outer packet is the
// caller's job. A partial inner L4 checksum (CsumPartial or
// CsumKeepPartial) is completed first: the decapsulating end may hand the
// inner packet to its stack as CHECKSUM_NONE (a raw socket feeding a TUN
// device, as uvs-rs does), which verifies it. A GSO super-frame cannot be
// described to the egress device once encapsulated (virtio_net_hdr has no
// IP-in-IP GSO type), so the caller cuts it with Segmenter first and
// encapsulates each segment.
func Encap(buf []byte, off, n int, p *header.Parsed, t *Tunnel, csum Csum) (newOff, newN int, r Result) {
	if (p.Kind != header.KindIPv4 && p.Kind != header.KindIPv6) || off < 0 || n < 0 || off+n > len(buf) ||
		p.End > n || !t.Src.Is4() || !t.Dst.Is4() {
		return off, n, verdict(Unsupported)
	}
	if p.TTL <= 1 {
		return off, n, verdict(TTLExceeded)
	}
	ov := t.Overhead()
	if off < ov {
		return off, n, verdict(NoHeadroom)
	}
	if t.MTU > 0 {
		eff := t.MTU - ov
		if eff < minIPv4MTU {
			return off, n, verdict(Unsupported)
		}
		if p.IPLen > eff && (p.Kind == header.KindIPv6 || (p.DF && !p.Inner.OK)) {
			return off, n, Result{Verdict: TooBig, MTU: uint16(min(eff, 0xffff))}
		}
	}
	frame := buf[off : off+n]
	if csum != CsumComplete && p.Reason == header.ReasonNone {
		header.SetL4Checksum(frame, p)
	}
	decrementTTL(frame, p)

	l2 := p.L2Len
	newOff = off - ov
	copy(buf[newOff:newOff+l2], buf[off:off+l2])
	binary.BigEndian.PutUint16(buf[newOff+l2-2:], header.EtherTypeIPv4)
	ip := header.IPv4(buf[newOff+l2 : newOff+l2+header.IPv4MinSize])
	ip[0] = 0x45
	ip[1] = ecnEncap(p.TOS)
	binary.BigEndian.PutUint16(ip[header.IPv4TotalLenOff:], uint16(ov+p.IPLen))
	binary.BigEndian.PutUint16(ip[4:], t.ID)
	var ff uint16
	if p.Kind == header.KindIPv4 && p.DF {
		ff = header.IPv4FlagDF
	}
	binary.BigEndian.PutUint16(ip[header.IPv4FlagsFragOff:], ff)
	ip[header.IPv4TTLOff] = p.TTL
	inner := uint8(header.ProtoIPIP)
	if p.Kind == header.KindIPv6 {
		inner = header.ProtoIPv6
	}
	ip[9] = inner
	s4, d4 := t.Src.As4(), t.Dst.As4()
	copy(ip[header.IPv4SrcOff:], s4[:])
	copy(ip[header.IPv4DstOff:], d4[:])
	if t.GUEPort != 0 {
		ip[9] = header.ProtoUDP
		u := buf[newOff+l2+header.IPv4MinSize:]
		binary.BigEndian.PutUint16(u[0:], t.GUESrcPort)
		binary.BigEndian.PutUint16(u[2:], t.GUEPort)
		binary.BigEndian.PutUint16(u[4:], uint16(header.UDPSize+guev0Size+p.IPLen))
		binary.BigEndian.PutUint16(u[6:], 0)
		// GUE v0 (draft-ietf-intarea-gue): ver 0, C 0, hlen 0; proto_ctype;
		// flags 0.
		u[8], u[9], u[10], u[11] = 0, inner, 0, 0
	}
	ip.SetChecksum(0)
	ip.UpdateChecksum()
	return newOff, l2 + ov + p.IPLen, verdict(OK)
}

// ecnEncap returns the outer TOS for an inner DSCP/ECN byte (RFC 6040
// normal mode, Linux INET_ECN_encapsulate): DSCP and ECN copied, except
// that CE is sent as ECT(0).
func ecnEncap(tos uint8) uint8 {
	if tos&3 == 3 {
		return tos&^3 | 2
	}
	return tos
}

// Local port range used for GUE source ports, the Linux default
// ip_local_port_range that udp_flow_src_port scales into.
const (
	flowPortMin = 32768
	flowPortMax = 60999
)

// FlowSourcePort returns a UDP source port for a tunnelled packet derived
// from a hash of its flow (addresses, protocol, ports), scaled into
// 32768..60999 like Linux udp_flow_src_port, so that one flow keeps one
// outer port (and one receive queue at the real server).
func FlowSourcePort(p *header.Parsed) uint16 {
	// FNV-1a over the flow tuple.
	h := uint32(2166136261)
	mix := func(b byte) { h = (h ^ uint32(b)) * 16777619 }
	src, dst := p.SrcIP(), p.DstIP() // the header's bytes: 4 for IPv4
	for i := range src {
		mix(src[i])
		mix(dst[i])
	}
	mix(p.Proto)
	mix(byte(p.SrcPort >> 8))
	mix(byte(p.SrcPort))
	mix(byte(p.DstPort >> 8))
	mix(byte(p.DstPort))
	return uint16(uint64(h)*(flowPortMax-flowPortMin)>>32 + flowPortMin)
}
