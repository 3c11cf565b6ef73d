package ownership

import (
	"encoding/binary"
	"net/netip"
	"slices"

	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/spec"
)

// Verdict says who must receive a frame.
type Verdict uint8

// Verdicts.
const (
	// Kernel: not uvsd's. The director's stack handles it; uvsd never
	// sees it.
	Kernel Verdict = iota
	// Director: uvsd's alone. uvsd receives it and the kernel must not
	// see it.
	Director
	// Shared: uvsd must receive it and the kernel may see it too (an ARP
	// request or neighbour solicitation for an address the kernel does not
	// own: it does not answer, but may refresh the sender's neighbour
	// entry).
	Shared
)

func (v Verdict) String() string {
	switch v {
	case Kernel:
		return "kernel"
	case Director:
		return "director"
	case Shared:
		return "shared"
	}
	return "verdict?"
}

// MaxExtHeaders is how many IPv6 extension headers (hop-by-hop, routing,
// destination options, fragment) Classify walks before the transport
// header; a frame with more is the kernel's.
const MaxExtHeaders = 4

// Classify returns the verdict for frame, an Ethernet frame as it is on the
// wire (with its VLAN tag, if any), as the package documentation defines
// it. Every backend implements exactly
// this function (with the exceptions the documentation lists).
func (s *Set) Classify(frame []byte) Verdict { return s.classify(frame, MaxExtHeaders) }

// classify is Classify walking at most maxExt IPv6 extension headers.
func (s *Set) classify(f []byte, maxExt int) Verdict {
	if len(f) < header.EthernetMinSize {
		return Kernel
	}
	et := binary.BigEndian.Uint16(f[header.EthernetTypeOff:])
	if et == header.EtherTypeVLAN {
		// One 802.1Q tag: the frame is classified by what it carries, as
		// if untagged. f[4:] is such a frame (its MAC addresses shifted,
		// which nothing reads).
		if len(f) < header.EthernetVLANSize {
			return Kernel
		}
		f = f[header.EthernetVLANSize-header.EthernetMinSize:]
		et = binary.BigEndian.Uint16(f[header.EthernetTypeOff:])
	}
	switch et {
	case header.EtherTypeARP:
		return s.arp(f[header.EthernetMinSize:])
	case header.EtherTypeIPv4:
		return s.ipv4(f[header.EthernetMinSize:])
	case header.EtherTypeIPv6:
		return s.ipv6(f[header.EthernetMinSize:], maxExt)
	}
	return Kernel
}

// arp: an Ethernet/IPv4 request for a Neighbour is Shared.
func (s *Set) arp(b []byte) Verdict {
	if len(b) < header.ARPSize ||
		binary.BigEndian.Uint16(b[header.ARPHTypeOff:]) != header.ARPHTypeEthernet ||
		binary.BigEndian.Uint16(b[header.ARPPTypeOff:]) != header.EtherTypeIPv4 ||
		b[header.ARPHLenOff] != 6 || b[header.ARPPLenOff] != 4 ||
		binary.BigEndian.Uint16(b[header.ARPOpOff:]) != header.ARPRequest {
		return Kernel
	}
	if has(s.Neighbours, addr4(b[header.ARPTargetIPOff:])) {
		return Shared
	}
	return Kernel
}

func addr4(b []byte) netip.Addr  { return netip.AddrFrom4([4]byte(b[:4])) }
func addr16(b []byte) netip.Addr { return netip.AddrFrom16([16]byte(b[:16])) }

// ipv4 classifies b, the IPv4 packet of a frame: the header must be valid
// as nf_tables sees it (__nft_set_pktinfo_ipv4_validate in
// include/net/netfilter/nf_tables_ipv4.h): version 4, IHL of at least 5, a
// total length covering the header and within the frame.
func (s *Set) ipv4(b []byte) Verdict {
	if len(b) < header.IPv4MinSize || b[header.IPv4VerIHLOff]>>4 != 4 {
		return Kernel
	}
	hl := int(b[header.IPv4VerIHLOff]&0x0f) * 4
	tl := int(binary.BigEndian.Uint16(b[header.IPv4TotalLenOff:]))
	if hl < header.IPv4MinSize || tl < hl || tl > len(b) {
		return Kernel
	}
	src, dst := addr4(b[header.IPv4SrcOff:]), addr4(b[header.IPv4DstOff:])
	proto := b[header.IPv4ProtoOff]
	if binary.BigEndian.Uint16(b[header.IPv4FlagsFragOff:])&(header.IPv4FlagMF|header.IPv4FragOffMask) != 0 {
		return s.fragment(proto, header.ProtoICMPv4, src, dst)
	}
	if proto == header.ProtoICMPv4 {
		if len(b) < hl+header.ICMPv4MinSize {
			return Kernel
		}
		switch b[hl] {
		case header.ICMPv4DestUnreachable, header.ICMPv4SourceQuench, header.ICMPv4TimeExceeded, header.ICMPv4ParamProblem:
			return s.icmpError(b[hl+header.ICMPv4MinSize:], dst, false)
		}
		return Kernel
	}
	return s.l4(b[min(hl, len(b)):], proto, false, src, dst)
}

// ipv6 classifies b, the IPv6 packet of a frame: the payload length must
// fit in the frame (__nft_set_pktinfo_ipv6_validate), and the transport
// header is found as ipv6_find_hdr (net/ipv6/exthdrs_core.c) finds it with
// IP6_FH_F_AUTH, walking at most maxExt extension headers.
func (s *Set) ipv6(b []byte, maxExt int) Verdict {
	if len(b) < header.IPv6Size || b[0]>>4 != 6 ||
		header.IPv6Size+int(binary.BigEndian.Uint16(b[header.IPv6PayloadLenOff:])) > len(b) {
		return Kernel
	}
	src, dst := addr16(b[header.IPv6SrcOff:]), addr16(b[header.IPv6DstOff:])
	nh, off, frag, fragmented, ok := walk6(b, maxExt)
	if !ok {
		return Kernel
	}
	if fragmented {
		return s.fragment(nh, header.ProtoICMPv6, src, dst)
	}
	if nh == header.ProtoICMPv6 {
		if frag || len(b) < off+header.ICMPv6MinSize {
			return Kernel
		}
		switch typ := b[off]; {
		case typ == header.ICMPv6NeighborSolicit:
			t := off + header.ICMPv6MinSize
			if len(b) >= t+16 && has(s.Neighbours, addr16(b[t:])) {
				return Shared
			}
			return Kernel
		case typ >= header.ICMPv6DestUnreachable && typ <= header.ICMPv6ParamProblem:
			return s.icmpError(b[off+header.ICMPv6MinSize:], dst, true)
		}
		return Kernel
	}
	return s.l4(b[min(off, len(b)):], nh, frag, src, dst)
}

// walk6 returns the upper-layer protocol of b, its offset, whether the
// packet is a non-first fragment and whether it is a fragment at all: the
// first fragment header has a fragment offset or the M flag (an atomic
// fragment, with neither, is a whole packet: RFC 6946, as in
// ipv6_frag_rcv); ok is false when the chain is truncated,
// a non-first fragment is followed by another extension header, or more
// than maxExt extension headers precede the protocol (maxExt < 0: no
// limit). The offset may lie beyond b: the transport header may be missing.
func walk6(b []byte, maxExt int) (nh uint8, off int, frag, fragmented, ok bool) {
	nh, off = b[header.IPv6NextHeaderOff], header.IPv6Size
	seen := false // a fragment header was walked
	for n := 0; ; n++ {
		switch nh {
		case header.ProtoHopByHop, header.ProtoDstOpts, header.ProtoRouting, header.ProtoFragment:
		default:
			// The protocol, or AH and "no next header", where
			// ipv6_find_hdr stops too.
			return nh, off, false, fragmented, true
		}
		if maxExt >= 0 && n == maxExt {
			return 0, 0, false, false, false
		}
		need := 2 // struct ipv6_opt_hdr
		if nh == header.ProtoRouting || nh == header.ProtoFragment {
			need = 4 // struct ipv6_rt_hdr; the fragment offset
		}
		if off+need > len(b) {
			return 0, 0, false, false, false
		}
		if nh == header.ProtoFragment {
			next := b[off]
			fo := binary.BigEndian.Uint16(b[off+header.IPv6FragOffOff:])
			if !seen {
				// nftables' exthdr expression finds the first one
				// (ipv6_find_hdr with the fragment header as target).
				seen, fragmented = true, fo&(header.IPv6FragOffMask|ipv6FragMore) != 0
			}
			if fo&header.IPv6FragOffMask != 0 {
				switch next {
				case header.ProtoHopByHop, header.ProtoDstOpts, header.ProtoRouting, header.ProtoFragment, header.ProtoAH:
					return 0, 0, false, false, false
				}
				return next, off, true, fragmented, true
			}
			nh, off = next, off+header.IPv6FragSize
			continue
		}
		nh, off = b[off], off+(int(b[off+1])+1)*8
	}
}

// ipv6FragMore is the M flag of the IPv6 fragment header's offset field.
const ipv6FragMore = 0x0001

// fragment classifies a fragment (first or not) of protocol proto from src
// to dst by what every fragment of the datagram carries: its addresses and
// protocol. icmp is the family's ICMP protocol.
func (s *Set) fragment(proto, icmp uint8, src, dst netip.Addr) Verdict {
	if proto == icmp {
		if has(s.VIPs, dst) {
			return Director
		}
		return Kernel
	}
	if !IsL4(proto) {
		return Kernel
	}
	p := spec.Proto(proto)
	if hasAddrProto(s.Services, dst, p) || slices.ContainsFunc(s.LocalRanges, func(r PortRange) bool {
		return sameProto(r.Proto, p) && sameAddr(r.Addr, dst)
	}) {
		return Director
	}
	if hasAddrProto(s.NATReplies, src, p) && !has(s.Local, dst) {
		return Director
	}
	return Kernel
}

// l4 classifies a TCP, UDP or SCTP packet whose transport header starts b
// (b may be shorter than the ports, or empty).
func (s *Set) l4(b []byte, proto uint8, frag bool, src, dst netip.Addr) Verdict {
	if !IsL4(proto) {
		return Kernel
	}
	p := spec.Proto(proto)
	if hasEndpoint(s.Services, dst, p, 0) {
		return Director
	}
	if frag || len(b) < 4 {
		return Kernel
	}
	sport := binary.BigEndian.Uint16(b[header.L4SrcPortOff:])
	dport := binary.BigEndian.Uint16(b[header.L4DstPortOff:])
	if hasEndpoint(s.Services, dst, p, dport) || inRange(s.LocalRanges, dst, p, dport) {
		return Director
	}
	if natReply(s.NATReplies, src, p, sport) && !has(s.Local, dst) {
		return Director
	}
	return Kernel
}

// icmpError classifies an ICMP error (b is the quoted packet) sent to dst.
func (s *Set) icmpError(b []byte, dst netip.Addr, v6 bool) Verdict {
	if has(s.VIPs, dst) {
		return Director
	}
	var proto uint8
	var isrc, idst netip.Addr
	var ports []byte
	if v6 {
		if len(b) < header.IPv6Size+4 || b[0]>>4 != 6 {
			return Kernel
		}
		proto = b[header.IPv6NextHeaderOff]
		isrc, idst = addr16(b[header.IPv6SrcOff:]), addr16(b[header.IPv6DstOff:])
		ports = b[header.IPv6Size:]
	} else {
		if len(b) < header.IPv4MinSize || b[header.IPv4VerIHLOff]>>4 != 4 {
			return Kernel
		}
		hl := int(b[header.IPv4VerIHLOff]&0x0f) * 4
		if hl < header.IPv4MinSize || len(b) < hl+4 {
			return Kernel
		}
		proto = b[header.IPv4ProtoOff]
		isrc, idst = addr4(b[header.IPv4SrcOff:]), addr4(b[header.IPv4DstOff:])
		ports = b[hl:]
	}
	// About the director's own tunnelled packet to a TUN real server
	// (ip_vs_in_icmp, net/netfilter/ipvs/ip_vs_core.c: the quoted
	// packet was sent from the error's destination, with IPPROTO_IPIP,
	// GRE or UDP to the tunnel port). IPv6 has no such case
	// (ip_vs_in_icmp_v6).
	if !v6 && isrc == dst && has(s.Local, dst) && s.tunnel(idst, proto, binary.BigEndian.Uint16(ports[header.L4DstPortOff:])) {
		return Director
	}
	if !IsL4(proto) {
		return Kernel
	}
	p := spec.Proto(proto)
	sport := binary.BigEndian.Uint16(ports[header.L4SrcPortOff:])
	dport := binary.BigEndian.Uint16(ports[header.L4DstPortOff:])
	// About a FULLNAT connection: the quoted packet left a local address
	// from one of its ports towards a real server.
	if isrc == dst && inRange(s.LocalRanges, dst, p, sport) {
		return Director
	}
	// About a NAT connection: the quoted packet went to a real server's
	// NAT port (a NAT reply would come from there).
	if natReply(s.NATReplies, idst, p, dport) && !has(s.Local, dst) {
		return Director
	}
	return Kernel
}

// The lookups below accept any Set, normalized or not: proto 0 and
// IPv4-mapped addresses mean what Normalize makes of them. An address of
// an IPv6 packet is never an IPv4 address, even when IPv4-mapped.

func sameAddr(set, pkt netip.Addr) bool {
	return set.Unmap().WithZone("") == pkt
}

func sameProto(set, pkt spec.Proto) bool {
	return set == pkt || set == spec.ProtoIP
}

func has(as []netip.Addr, a netip.Addr) bool {
	return slices.ContainsFunc(as, func(x netip.Addr) bool { return sameAddr(x, a) })
}

func hasEndpoint(es []Endpoint, a netip.Addr, p spec.Proto, port uint16) bool {
	return slices.ContainsFunc(es, func(e Endpoint) bool {
		return e.Port == port && sameProto(e.Proto, p) && sameAddr(e.Addr, a)
	})
}

// hasAddrProto reports whether an entry of es is a and p, on any port.
func hasAddrProto(es []Endpoint, a netip.Addr, p spec.Proto) bool {
	return slices.ContainsFunc(es, func(e Endpoint) bool { return sameProto(e.Proto, p) && sameAddr(e.Addr, a) })
}

// natReply reports whether a, p and port are a NAT reply entry's: its port,
// or any port for an entry of port 0.
func natReply(es []Endpoint, a netip.Addr, p spec.Proto, port uint16) bool {
	return hasEndpoint(es, a, p, port) || hasEndpoint(es, a, p, 0)
}

func inRange(rs []PortRange, a netip.Addr, p spec.Proto, port uint16) bool {
	return slices.ContainsFunc(rs, func(r PortRange) bool {
		return r.First <= port && port <= r.Last && sameProto(r.Proto, p) && sameAddr(r.Addr, a)
	})
}

// tunnel reports whether a is a Tunnels entry of outer protocol proto,
// with destination port dport for GUE (UDP).
func (s *Set) tunnel(a netip.Addr, proto uint8, dport uint16) bool {
	return slices.ContainsFunc(s.Tunnels, func(t Tunnel) bool {
		return t.Proto == proto && (proto != header.ProtoUDP || t.Port == dport) && sameAddr(t.Addr, a)
	})
}
