package modes

import (
	"encoding/binary"
	"net/netip"

	"github.com/uvs-lb/uvs/header"
)

// Encapsulation sizes (net/netfilter/ipvs/ip_vs_xmit.c: ip_vs_tunnel_xmit,
// ip_vs_tunnel_xmit_v6, ipvs_gue_encap, ipvs_gre_encap).
const (
	IPIPOverhead   = header.IPv4MinSize                      // 20
	GUEOverhead    = header.IPv4MinSize + header.UDPSize + 4 // 32: UDP + GUE v0 header
	guev0Size      = 4
	greBaseSize    = 4 // flags/version + protocol
	greCsumSize    = 4 // checksum + reserved1, with the C flag
	greFlagCsum    = 0x8000
	minIPv4MTU     = 68
	minIPv6MTU     = 1280
	maxTunOverhead = header.IPv6Size + header.UDPSize + guev0Size // 52
)

// Tunnel describes the outer header of a tunnelled (-i) packet.
type Tunnel struct {
	// Src and Dst are the outer addresses: the director's address
	// towards the real server and the real server. Both IPv4 give an
	// outer IPv4 header (ip_vs_tunnel_xmit), both IPv6 an outer IPv6
	// header (ip_vs_tunnel_xmit_v6); either carries an IPv4 or an IPv6
	// packet (the kernel allows a tunnelling destination of the other
	// family than its service's).
	Src, Dst netip.Addr
	// ID is the outer IPv4 identification of an outer header without DF.
	// An outer header with DF gets 0, as ip_select_ident gives a packet
	// with DF and no socket (include/net/ip.h, ip_select_ident_segs).
	ID uint16
	// MTU is the path MTU towards the real server; 0 skips the check.
	MTU int
	// GUEPort selects GUE encapsulation (--tun-type gue --tun-port) when
	// non-zero; 0 means plain IPIP (or GRE).
	GUEPort uint16
	// GUESrcPort is the outer UDP source port for GUE (FlowSourcePort
	// computes the kernel-style flow hash).
	GUESrcPort uint16
	// GRE selects GRE encapsulation (--tun-type gre) when GUEPort is 0.
	GRE bool
	// Csum (--tun-csum) adds the GRE checksum, or computes the GUE UDP
	// checksum; without it GRE has no checksum field and the GUE UDP
	// checksum is 0 (also over IPv6, RFC 6935, as udp6_set_csum with
	// nocheck).
	Csum bool
}

// Outer6 reports whether the outer header is IPv6.
func (t *Tunnel) Outer6() bool { return t.Dst.Is6() && !t.Dst.Is4In6() }

// encapSize returns the bytes of the encapsulation header after the
// outer IP header: the UDP and GUE headers, the GRE header, or none.
func (t *Tunnel) encapSize() int {
	switch {
	case t.GUEPort != 0:
		return header.UDPSize + guev0Size
	case t.GRE && t.Csum:
		return greBaseSize + greCsumSize
	case t.GRE:
		return greBaseSize
	}
	return 0
}

// Overhead returns the bytes the encapsulation adds.
func (t *Tunnel) Overhead() int {
	if t.Outer6() {
		return header.IPv6Size + t.encapSize()
	}
	return header.IPv4MinSize + t.encapSize()
}

// Encap tunnels the IP packet of the frame buf[off:off+n] (parsed into p)
// to the real server (net/netfilter/ipvs/ip_vs_xmit.c, ip_vs_tunnel_xmit
// and ip_vs_tunnel_xmit_v6): the inner TTL or hop limit is decremented,
// an outer IPv4 or IPv6 header (and for GUE a UDP header plus a 4-byte
// GUE v0 header, for GRE a 4- or 8-byte GRE v0 header) is prepended into
// the headroom buf[:off], and the Ethernet header (with any VLAN tag) is
// moved in front of it with the outer EtherType; link padding is dropped.
//
// An outer IPv4 header has DF copied from an inner IPv4 header (0 for
// inner IPv6), ID t.ID without DF and 0 with it, TOS = inner DSCP with
// ECN encapsulation (RFC 6040: CE becomes ECT(0)), TTL = the decremented
// inner TTL, protocol 4 or 41 (17 for GUE, 47 for GRE). An outer IPv6
// header has the same traffic class, flow label 0, hop limit = the
// decremented inner TTL and next header 4, 41, 17 or 47. The GUE UDP
// checksum is 0 unless t.Csum. The caller sets the Ethernet addresses
// afterwards. It returns the new offset and length of the frame in buf.
//
// With t.MTU set, an inner IPv4 packet with DF (not an ICMP error) or any
// inner IPv6 packet that would exceed it once encapsulated returns TooBig
// with the MTU to report (t.MTU minus the overhead); a path MTU whose
// payload would fall below 68 (IPv4 outer) or 1280 (IPv6 outer,
// __ip_vs_get_out_rt_v6) returns Unsupported. A non-DF IPv4 packet is
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
		p.End > n || !t.Src.IsValid() || !t.Dst.IsValid() || t.Src.Is4() != t.Dst.Is4() ||
		t.Src.Is4In6() || t.Dst.Is4In6() {
		return off, n, verdict(Unsupported)
	}
	if p.TTL <= 1 {
		return off, n, verdict(TTLExceeded)
	}
	outer6 := t.Outer6()
	ov := t.Overhead()
	if off < ov {
		return off, n, verdict(NoHeadroom)
	}
	if t.MTU > 0 {
		eff := t.MTU - ov
		if eff < minIPv4MTU || (outer6 && eff < minIPv6MTU) {
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

	inner := uint8(header.ProtoIPIP)
	innerEther := uint16(header.EtherTypeIPv4)
	if p.Kind == header.KindIPv6 {
		inner, innerEther = header.ProtoIPv6, header.EtherTypeIPv6
	}
	l2 := p.L2Len
	newOff = off - ov
	copy(buf[newOff:newOff+l2], buf[off:off+l2])
	ipOff := newOff + l2
	outerLen := ov + p.IPLen
	ipHdr := header.IPv4MinSize
	if outer6 {
		ipHdr = header.IPv6Size
	}
	encOff := ipOff + ipHdr // the UDP or GRE header
	encLen := outerLen - ipHdr
	next := inner
	switch {
	case t.GUEPort != 0:
		next = header.ProtoUDP
		u := buf[encOff : encOff+header.UDPSize+guev0Size]
		binary.BigEndian.PutUint16(u[0:], t.GUESrcPort)
		binary.BigEndian.PutUint16(u[2:], t.GUEPort)
		binary.BigEndian.PutUint16(u[4:], uint16(encLen))
		binary.BigEndian.PutUint16(u[6:], 0)
		// GUE v0 (draft-ietf-intarea-gue): ver 0, C 0, hlen 0; proto_ctype;
		// flags 0.
		u[8], u[9], u[10], u[11] = 0, inner, 0, 0
	case t.GRE:
		next = header.ProtoGRE
		// GRE v0 (RFC 2784, gre_build_header): C flag with --tun-csum,
		// protocol the inner EtherType; the checksum covers the GRE
		// header and the payload.
		g := buf[encOff : encOff+t.encapSize()]
		var flags uint16
		if t.Csum {
			flags = greFlagCsum
		}
		binary.BigEndian.PutUint16(g[0:], flags)
		binary.BigEndian.PutUint16(g[2:], innerEther)
		if t.Csum {
			binary.BigEndian.PutUint32(g[4:], 0)
			binary.BigEndian.PutUint16(g[4:], ^header.Checksum(buf[encOff:encOff+encLen], 0))
		}
	}
	tos := ecnEncap(p.TOS)
	if outer6 {
		binary.BigEndian.PutUint16(buf[newOff+l2-2:], header.EtherTypeIPv6)
		ip := buf[ipOff : ipOff+header.IPv6Size]
		// Version 6, traffic class, flow label 0 (ip_vs_tunnel_xmit_v6).
		binary.BigEndian.PutUint32(ip[0:], 6<<28|uint32(tos)<<20)
		binary.BigEndian.PutUint16(ip[4:], uint16(encLen))
		ip[6] = next
		ip[7] = p.TTL
		s, d := t.Src.As16(), t.Dst.As16()
		copy(ip[8:24], s[:])
		copy(ip[24:40], d[:])
	} else {
		binary.BigEndian.PutUint16(buf[newOff+l2-2:], header.EtherTypeIPv4)
		ip := header.IPv4(buf[ipOff : ipOff+header.IPv4MinSize])
		ip[0] = 0x45
		ip[1] = tos
		binary.BigEndian.PutUint16(ip[header.IPv4TotalLenOff:], uint16(outerLen))
		var ff, id uint16
		if p.Kind == header.KindIPv4 && p.DF {
			ff = header.IPv4FlagDF
		} else {
			id = t.ID
		}
		binary.BigEndian.PutUint16(ip[4:], id)
		binary.BigEndian.PutUint16(ip[header.IPv4FlagsFragOff:], ff)
		ip[header.IPv4TTLOff] = p.TTL
		ip[9] = next
		s4, d4 := t.Src.As4(), t.Dst.As4()
		copy(ip[header.IPv4SrcOff:], s4[:])
		copy(ip[header.IPv4DstOff:], d4[:])
		ip.SetChecksum(0)
		ip.UpdateChecksum()
	}
	if t.GUEPort != 0 && t.Csum {
		// --tun-csum: the UDP checksum over the pseudo-header, the UDP
		// and GUE headers and the inner packet (udp_set_csum,
		// udp6_set_csum).
		var ph uint16
		if outer6 {
			ph = header.PseudoHeaderChecksum(header.ProtoUDP, buf[ipOff+8:ipOff+24], buf[ipOff+24:ipOff+40], uint32(encLen))
		} else {
			ph = header.PseudoHeaderChecksum(header.ProtoUDP, buf[ipOff+12:ipOff+16], buf[ipOff+16:ipOff+20], uint32(encLen))
		}
		c := ^header.Checksum(buf[encOff:encOff+encLen], ph)
		if c == 0 {
			c = 0xffff
		}
		binary.BigEndian.PutUint16(buf[encOff+6:], c)
	}
	return newOff, l2 + outerLen, verdict(OK)
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
