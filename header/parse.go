package header

import (
	"encoding/binary"
	"net/netip"
)

// Kind says what a parsed frame is, as far as the parser got.
type Kind uint8

// Frame kinds. A frame with a Reason other than ReasonNone keeps the kind it
// reached (an IPv4 fragment is KindIPv4 with ReasonFragment).
const (
	KindUnknown Kind = iota // not (yet) identified: see Reason
	KindARP                 // Ethernet/IPv4 ARP packet
	KindIPv4                // IPv4 packet
	KindIPv6                // IPv6 packet
)

var kindNames = [...]string{"unknown", "arp", "ipv4", "ipv6"}

// String returns a short lower-case name.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind?"
}

// Reason says why a frame is not a complete, well-formed packet the fast
// path can rewrite. It indexes per-worker drop counters: keep
// [NumReasons]uint64.
type Reason uint8

// Parse outcomes.
const (
	ReasonNone                 Reason = iota // well-formed, supported
	ReasonTruncated                          // a header (or the IP length) runs past the frame
	ReasonUnsupportedEtherType               // not IPv4, IPv6 or ARP (or a second VLAN tag)
	ReasonBadVersion                         // IP version does not match the EtherType
	ReasonBadIHL                             // IPv4 IHL below 5
	ReasonBadTotalLen                        // IP length below the header length, or an IPv6 jumbogram
	ReasonFragment                           // IPv4 or IPv6 fragment (the first one still has its L4 fields)
	ReasonBadExtHeader                       // IPv6 extension-header chain too long
	ReasonUnsupportedProto                   // L4 protocol other than TCP, UDP, SCTP, ICMP (addresses are set)
	ReasonBadL4Header                        // TCP data offset or UDP length inconsistent
	ReasonBadARP                             // ARP for another hardware/protocol type

	// NumReasons is the number of Reason values.
	NumReasons = iota
)

var reasonNames = [NumReasons]string{
	"none", "truncated", "unsupported-ethertype", "bad-ip-version", "bad-ihl",
	"bad-total-length", "fragment", "bad-ipv6-ext-header", "unsupported-protocol",
	"bad-l4-header", "bad-arp",
}

// String returns a stable lower-case name suitable for metric labels.
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "reason?"
}

// Inner is the packet quoted in an ICMP error: its IP header and the start of
// its L4 header (RFC 792 quotes at least 8 bytes).
type Inner struct {
	// OK is set when the quoted IP header was parsed and, for TCP, UDP and
	// SCTP, both ports are present.
	OK        bool
	IPVersion uint8
	Proto     uint8
	L3Off     int      // offset of the quoted IP header in the frame
	L4Off     int      // offset of the quoted L4 header in the frame
	Src, Dst  [16]byte // As16 form (IPv4-mapped), as Parsed.Src/Dst
	SrcPort   uint16
	DstPort   uint16
}

// SrcAddr returns the quoted source address.
func (in *Inner) SrcAddr() netip.Addr { return addrOf(in.IPVersion, &in.Src) }

// DstAddr returns the quoted destination address.
func (in *Inner) DstAddr() netip.Addr { return addrOf(in.IPVersion, &in.Dst) }

// Parsed is the decoded summary of one frame. A worker keeps one and refills
// it in place with Parse for every frame; all offsets index the frame slice
// passed to Parse. Src and Dst hold the addresses in netip's As16 form
// (an IPv4 address IPv4-mapped, see PutAddr), so they are connection-key
// addresses as they stand.
type Parsed struct {
	Kind   Kind
	Reason Reason

	VLAN      bool   // an 802.1Q tag follows the MAC addresses
	VLANID    uint16 // its 12-bit id
	EtherType uint16 // payload EtherType (after the tag)
	L2Len     int    // 14, or 18 with a VLAN tag; L2 starts at offset 0

	IPVersion uint8 // 4 or 6 for IP kinds
	Proto     uint8 // L4 protocol (after IPv6 extension headers)
	TTL       uint8 // TTL or hop limit
	TOS       uint8 // TOS or traffic class
	L3Off     int   // start of the IP (or ARP) header
	L4Off     int   // start of the L4 header
	// PayloadOff is the start of the L4 payload (after the TCP header with
	// options, UDP/SCTP/ICMP header).
	PayloadOff int
	IPLen      int // IP total length (IPv6: 40 + payload length)
	End        int // L3Off + IPLen: bytes after End are link padding

	DF         bool   // IPv4 don't-fragment flag
	MoreFrags  bool   // more-fragments flag (IPv4 or IPv6 fragment header)
	FragOffset uint16 // fragment offset in bytes

	Src, Dst [16]byte
	SrcPort  uint16 // TCP/UDP/SCTP
	DstPort  uint16
	TCPFlags uint8

	ICMPType uint8 // ICMPv4 or ICMPv6
	ICMPCode uint8
	ARPOp    uint16 // KindARP: operation; Src/Dst hold sender/target IP

	// Inner is the quoted packet of an ICMP error (IsICMPError).
	Inner Inner
}

// addrOf returns an address of a packet of IP version v (0 for ARP).
func addrOf(v uint8, a *[16]byte) netip.Addr {
	if v == 6 {
		return netip.AddrFrom16(*a)
	}
	return netip.AddrFrom4([4]byte(a[12:]))
}

// SrcAddr returns the source IP address (the ARP sender address for
// KindARP). It does not allocate.
func (p *Parsed) SrcAddr() netip.Addr { return addrOf(p.IPVersion, &p.Src) }

// DstAddr returns the destination IP address (the ARP target address for
// KindARP). It does not allocate.
func (p *Parsed) DstAddr() netip.Addr { return addrOf(p.IPVersion, &p.Dst) }

// SrcIP returns the source address as in the IP (or ARP) header: the
// last 4 bytes of Src for IPv4, all 16 for IPv6. It aliases p.Src.
func (p *Parsed) SrcIP() []byte { return wireAddr(&p.Src, p.IPVersion) }

// DstIP returns the destination address as in the IP (or ARP) header,
// aliasing p.Dst.
func (p *Parsed) DstIP() []byte { return wireAddr(&p.Dst, p.IPVersion) }

// AddrLen returns 16 for IPv6 and 4 otherwise.
func (p *Parsed) AddrLen() int {
	if p.IPVersion == 6 {
		return 16
	}
	return 4
}

// IsICMPError reports whether the packet is an ICMP error that IPVS relates
// to a connection (ICMPv4 destination unreachable, source quench, time
// exceeded; any ICMPv6 error) whose quoted packet was parsed.
func (p *Parsed) IsICMPError() bool { return p.Inner.OK }

// Parse decodes frame (starting with the Ethernet header) into p,
// overwriting every field. It never allocates and never panics; problems are
// reported in p.Reason.
func (p *Parsed) Parse(frame []byte) {
	*p = Parsed{}
	if len(frame) < EthernetMinSize {
		p.Reason = ReasonTruncated
		return
	}
	et := binary.BigEndian.Uint16(frame[ethType:])
	l2 := EthernetMinSize
	if et == EtherTypeVLAN {
		if len(frame) < EthernetVLANSize {
			p.Reason = ReasonTruncated
			return
		}
		p.VLAN = true
		p.VLANID = binary.BigEndian.Uint16(frame[ethVLANTCI:]) & 0x0fff
		et = binary.BigEndian.Uint16(frame[ethVLANType:])
		l2 = EthernetVLANSize
	}
	p.EtherType = et
	p.L2Len = l2
	p.L3Off = l2
	switch et {
	case EtherTypeIPv4:
		p.parseIPv4(frame, l2)
	case EtherTypeIPv6:
		p.parseIPv6(frame, l2)
	case EtherTypeARP:
		p.parseARP(frame, l2)
	default:
		p.Reason = ReasonUnsupportedEtherType
	}
}

func (p *Parsed) parseARP(frame []byte, off int) {
	a := ARP(frame[off:])
	if len(a) < ARPSize {
		p.Reason = ReasonTruncated
		return
	}
	if !a.IsValid() {
		p.Reason = ReasonBadARP
		return
	}
	p.Kind = KindARP
	p.ARPOp = a.Op()
	put4z(&p.Src, a[arpSPA:])
	put4z(&p.Dst, a[arpTPA:])
	p.End = off + ARPSize
}

func (p *Parsed) parseIPv4(frame []byte, off int) {
	b := frame[off:]
	if len(b) < IPv4MinSize {
		p.Reason = ReasonTruncated
		return
	}
	if b[0]>>4 != 4 {
		p.Reason = ReasonBadVersion
		return
	}
	hl := int(b[0]&0x0f) * 4
	if hl < IPv4MinSize {
		p.Reason = ReasonBadIHL
		return
	}
	tl := int(binary.BigEndian.Uint16(b[ipv4TotalLen:]))
	if tl < hl {
		p.Reason = ReasonBadTotalLen
		return
	}
	if tl > len(b) {
		p.Reason = ReasonTruncated
		return
	}
	p.Kind = KindIPv4
	p.IPVersion = 4
	p.IPLen = tl
	p.End = off + tl
	p.TOS = b[ipv4TOS]
	p.TTL = b[ipv4TTL]
	p.Proto = b[ipv4Proto]
	put4z(&p.Src, b[ipv4Src:])
	put4z(&p.Dst, b[ipv4Dst:])
	ff := binary.BigEndian.Uint16(b[ipv4FlagsFrag:])
	p.DF = ff&IPv4FlagDF != 0
	p.MoreFrags = ff&IPv4FlagMF != 0
	p.FragOffset = (ff & IPv4FragOffMask) * 8
	p.L4Off = off + hl
	p.PayloadOff = p.L4Off
	if p.MoreFrags || p.FragOffset != 0 {
		p.Reason = ReasonFragment
		if p.FragOffset != 0 {
			return
		}
		p.parseL4(frame[:p.End], p.L4Off)
		p.Reason = ReasonFragment
		return
	}
	p.parseL4(frame[:p.End], p.L4Off)
}

// maxIPv6ExtHeaders bounds the extension-header walk.
const maxIPv6ExtHeaders = 8

// walkIPv6 follows the extension-header chain of pkt starting at off with
// next header nh. It returns the upper-layer protocol and offset, the
// fragment word of a fragment header (offset|M, 0 if none), whether one
// was found, and a Reason.
func walkIPv6(pkt []byte, off int, nh uint8) (proto uint8, l4 int, frag uint16, hasFrag bool, r Reason) {
	for range maxIPv6ExtHeaders {
		switch nh {
		case ProtoHopByHop, ProtoRouting, ProtoDstOpts:
			if off+8 > len(pkt) {
				return nh, off, frag, hasFrag, ReasonTruncated
			}
			n := (int(pkt[off+1]) + 1) * 8
			if off+n > len(pkt) {
				return nh, off, frag, hasFrag, ReasonTruncated
			}
			nh = pkt[off]
			off += n
		case ProtoAH:
			if off+8 > len(pkt) {
				return nh, off, frag, hasFrag, ReasonTruncated
			}
			n := (int(pkt[off+1]) + 2) * 4
			if off+n > len(pkt) {
				return nh, off, frag, hasFrag, ReasonTruncated
			}
			nh = pkt[off]
			off += n
		case ProtoFragment:
			if off+8 > len(pkt) {
				return nh, off, frag, hasFrag, ReasonTruncated
			}
			frag = binary.BigEndian.Uint16(pkt[off+2:])
			hasFrag = true
			nh = pkt[off]
			off += 8
			if frag&IPv6FragOffMask != 0 {
				// A non-first fragment: what follows is data, not the
				// next header (ipv6_find_hdr stops here too).
				return nh, off, frag, hasFrag, ReasonNone
			}
		default:
			return nh, off, frag, hasFrag, ReasonNone
		}
	}
	return nh, off, frag, hasFrag, ReasonBadExtHeader
}

func (p *Parsed) parseIPv6(frame []byte, off int) {
	b := frame[off:]
	if len(b) < IPv6Size {
		p.Reason = ReasonTruncated
		return
	}
	if b[0]>>4 != 6 {
		p.Reason = ReasonBadVersion
		return
	}
	pl := int(binary.BigEndian.Uint16(b[ipv6PayloadLen:]))
	if pl == 0 {
		p.Reason = ReasonBadTotalLen // jumbogram (RFC 2675) or empty
		return
	}
	if IPv6Size+pl > len(b) {
		p.Reason = ReasonTruncated
		return
	}
	p.Kind = KindIPv6
	p.IPVersion = 6
	p.IPLen = IPv6Size + pl
	p.End = off + p.IPLen
	p.TOS = b[0]<<4 | b[1]>>4
	p.TTL = b[ipv6HopLimit]
	copy(p.Src[:], b[ipv6Src:ipv6Src+16])
	copy(p.Dst[:], b[ipv6Dst:ipv6Dst+16])
	pkt := frame[:p.End]
	proto, l4, frag, hasFrag, r := walkIPv6(pkt, off+IPv6Size, b[ipv6NextHeader])
	p.Proto = proto
	p.L4Off = l4
	p.PayloadOff = l4
	if r != ReasonNone {
		p.Reason = r
		return
	}
	if hasFrag {
		p.FragOffset = frag &^ 7
		p.MoreFrags = frag&1 != 0
		if p.FragOffset != 0 || p.MoreFrags {
			p.Reason = ReasonFragment
			if p.FragOffset != 0 {
				return
			}
			p.parseL4(pkt, l4)
			p.Reason = ReasonFragment
			return
		}
	}
	p.parseL4(pkt, l4)
}

// parseL4 decodes the L4 header at off; pkt ends at the end of the IP packet.
func (p *Parsed) parseL4(pkt []byte, off int) {
	switch p.Proto {
	case ProtoTCP:
		if off+TCPMinSize > len(pkt) {
			p.Reason = ReasonTruncated
			return
		}
		doff := int(pkt[off+12]>>4) * 4
		if doff < TCPMinSize || off+doff > len(pkt) {
			p.Reason = ReasonBadL4Header
			return
		}
		p.SrcPort = binary.BigEndian.Uint16(pkt[off:])
		p.DstPort = binary.BigEndian.Uint16(pkt[off+2:])
		p.TCPFlags = pkt[off+13]
		p.PayloadOff = off + doff
	case ProtoUDP:
		if off+UDPSize > len(pkt) {
			p.Reason = ReasonTruncated
			return
		}
		ul := int(binary.BigEndian.Uint16(pkt[off+4:]))
		if ul < UDPSize || off+ul > len(pkt) {
			p.Reason = ReasonBadL4Header
			return
		}
		p.SrcPort = binary.BigEndian.Uint16(pkt[off:])
		p.DstPort = binary.BigEndian.Uint16(pkt[off+2:])
		p.PayloadOff = off + UDPSize
	case ProtoSCTP:
		if off+12 > len(pkt) {
			p.Reason = ReasonTruncated
			return
		}
		p.SrcPort = binary.BigEndian.Uint16(pkt[off:])
		p.DstPort = binary.BigEndian.Uint16(pkt[off+2:])
		p.PayloadOff = off + 12
	case ProtoICMPv4:
		if p.IPVersion != 4 {
			p.Reason = ReasonUnsupportedProto
			return
		}
		if off+ICMPv4MinSize > len(pkt) {
			p.Reason = ReasonTruncated
			return
		}
		p.ICMPType = pkt[off]
		p.ICMPCode = pkt[off+1]
		p.PayloadOff = off + ICMPv4MinSize
		if IsICMPv4Error(p.ICMPType) {
			p.Inner.parse(pkt, p.PayloadOff, 4)
		}
	case ProtoICMPv6:
		if p.IPVersion != 6 {
			p.Reason = ReasonUnsupportedProto
			return
		}
		if off+ICMPv6MinSize > len(pkt) {
			p.Reason = ReasonTruncated
			return
		}
		p.ICMPType = pkt[off]
		p.ICMPCode = pkt[off+1]
		p.PayloadOff = off + ICMPv6MinSize
		if IsICMPv6Error(p.ICMPType) {
			p.Inner.parse(pkt, p.PayloadOff, 6)
		}
	default:
		p.Reason = ReasonUnsupportedProto
	}
}

// parse decodes the packet quoted by an ICMP error at off; v is the outer
// IP version (an ICMPv4 error quotes IPv4, an ICMPv6 error IPv6).
func (in *Inner) parse(pkt []byte, off int, v uint8) {
	var l4 int
	switch v {
	case 4:
		if off+IPv4MinSize > len(pkt) || pkt[off]>>4 != 4 {
			return
		}
		hl := int(pkt[off]&0x0f) * 4
		if hl < IPv4MinSize || off+hl > len(pkt) {
			return
		}
		if binary.BigEndian.Uint16(pkt[off+ipv4FlagsFrag:])&IPv4FragOffMask != 0 {
			return // a non-first fragment quotes no L4 header
		}
		in.Proto = pkt[off+ipv4Proto]
		put4z(&in.Src, pkt[off+ipv4Src:])
		put4z(&in.Dst, pkt[off+ipv4Dst:])
		l4 = off + hl
	case 6:
		if off+IPv6Size > len(pkt) || pkt[off]>>4 != 6 {
			return
		}
		proto, o, frag, _, r := walkIPv6(pkt, off+IPv6Size, pkt[off+ipv6NextHeader])
		if r != ReasonNone || frag&^7 != 0 {
			return
		}
		in.Proto = proto
		copy(in.Src[:], pkt[off+ipv6Src:off+ipv6Src+16])
		copy(in.Dst[:], pkt[off+ipv6Dst:off+ipv6Dst+16])
		l4 = o
	}
	in.IPVersion = v
	in.L3Off = off
	in.L4Off = l4
	switch in.Proto {
	case ProtoTCP, ProtoUDP, ProtoSCTP:
		if l4+4 > len(pkt) {
			return
		}
		in.SrcPort = binary.BigEndian.Uint16(pkt[l4:])
		in.DstPort = binary.BigEndian.Uint16(pkt[l4+2:])
	}
	in.OK = true
}
