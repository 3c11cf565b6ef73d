package realserver

import (
	"encoding/binary"

	"github.com/uvs-lb/uvs/header"
)

// IP protocol numbers of the encapsulations a director sends (ip_vs_xmit.c,
// ip_vs_tunnel_xmit, ip_vs_tunnel_xmit_v6): IPIP carries an IPv4 packet,
// protocol 41 an IPv6 packet, GRE either (--tun-type gre).
const (
	ProtoIPIP = 4
	ProtoIPv6 = 41
	ProtoGRE  = 47
)

// GRE header (RFC 2784, RFC 2890) as the kernel's gre_parse_header reads
// it: C, K and S add a 4-byte field each, in that order; a packet with the
// routing bit or a version other than 0 is refused.
const (
	greHeaderLen    = 4
	greFlagCsum     = 0x8000
	greFlagRouting  = 0x4000
	greFlagKey      = 0x2000
	greFlagSeq      = 0x1000
	greVersionMask  = 0x0007
	etherTypeIPv4   = 0x0800
	etherTypeIPv6   = 0x86dd
	greOptFieldSize = 4
)

// GUE (draft-ietf-intarea-gue) header layout. The first 32-bit word is
//
//	|Ver|C|  Hlen   |  Proto/ctype  |             Flags             |
//
// Ver is 2 bits, C (control) 1 bit, Hlen the length of the optional fields
// in 32-bit words. Version 1 has no GUE header at all: the UDP payload is
// the IP packet itself, recognised by its first two bits being 01.
const (
	gueHeaderLen = 4
	gueFlagPriv  = 0x0001 // GUE_FLAG_PRIV: a 4-byte private flags field follows
	guePrivLen   = 4
)

// Reason says why a packet was not decapsulated. ReasonOK means it was.
type Reason uint8

// Reasons a packet is rejected, one counter each.
const (
	ReasonOK             Reason = iota // decapsulated
	ReasonOuterShort                   // shorter than an IPv4 header
	ReasonOuterVersion                 // outer header is not IPv4
	ReasonOuterHeaderLen               // outer IHL < 5 or beyond the packet
	ReasonOuterLength                  // outer total length inconsistent
	ReasonOuterFragment                // outer header still fragmented
	ReasonOuterProto                   // outer protocol neither 4 nor 41
	ReasonGUEShort                     // UDP payload shorter than the GUE header
	ReasonGUEVersion                   // GUE version neither 0 nor 1
	ReasonGUEControl                   // GUE control message (C bit)
	ReasonGUEHeaderLen                 // GUE options beyond the payload
	ReasonGUEFlags                     // GUE flags this helper does not implement (remote checksum)
	ReasonGUEProto                     // GUE proto/ctype neither 4 nor 41
	ReasonInnerShort                   // inner packet shorter than its IP header
	ReasonInnerVersion                 // inner IP version does not match the outer protocol
	ReasonInnerHeaderLen               // inner IPv4 IHL < 5 or beyond the packet
	ReasonInnerLength                  // inner total/payload length inconsistent
	ReasonInnerChecksum                // inner IPv4 header checksum wrong
	ReasonECN                          // outer CE on a not-ECT inner packet (RFC 6040 §4.2: drop)
	ReasonNotVIP                       // inner destination is not one of our VIPs
	ReasonWrite                        // the TUN device refused the inner packet
	ReasonGREShort                     // shorter than its GRE header
	ReasonGREVersion                   // GRE version not 0, or the routing bit set
	ReasonGREProto                     // GRE protocol neither IPv4 nor IPv6
	ReasonGREChecksum                  // GRE checksum present and wrong
	ReasonOuter6Proto                  // IPv6 outer next header neither 4, 41 nor 47
	NumReasons                         // number of reasons, for counter arrays
)

var reasonNames = [NumReasons]string{
	ReasonOK:             "ok",
	ReasonOuterShort:     "outer-short",
	ReasonOuterVersion:   "outer-version",
	ReasonOuterHeaderLen: "outer-header-len",
	ReasonOuterLength:    "outer-length",
	ReasonOuterFragment:  "outer-fragment",
	ReasonOuterProto:     "outer-proto",
	ReasonGUEShort:       "gue-short",
	ReasonGUEVersion:     "gue-version",
	ReasonGUEControl:     "gue-control",
	ReasonGUEHeaderLen:   "gue-header-len",
	ReasonGUEFlags:       "gue-flags",
	ReasonGUEProto:       "gue-proto",
	ReasonInnerShort:     "inner-short",
	ReasonInnerVersion:   "inner-version",
	ReasonInnerHeaderLen: "inner-header-len",
	ReasonInnerLength:    "inner-length",
	ReasonInnerChecksum:  "inner-checksum",
	ReasonECN:            "ecn",
	ReasonNotVIP:         "not-vip",
	ReasonWrite:          "write",
	ReasonGREShort:       "gre-short",
	ReasonGREVersion:     "gre-version",
	ReasonGREProto:       "gre-proto",
	ReasonGREChecksum:    "gre-checksum",
	ReasonOuter6Proto:    "outer6-proto",
}

// String returns the reason's short kebab-case name.
func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// DecapIPIP decapsulates a packet as a raw IPv4 socket for protocol 4, 41
// or 47 returns it: the outer IPv4 header followed by the inner IPv4
// (protocol 4) or IPv6 (protocol 41) packet, or by a GRE header and the
// inner packet (protocol 47, DecapGRE). It returns the inner packet, a sub-slice of
// pkt trimmed to the inner header's own length, and ReasonOK; or nil and the
// reason the packet is unusable. Congestion Experienced in the outer header
// is copied into the inner one in place (RFC 6040 normal mode, as the
// kernel's ip_tunnel_rcv does). It never allocates.
func DecapIPIP(pkt []byte) ([]byte, Reason) {
	if len(pkt) < 20 {
		return nil, ReasonOuterShort
	}
	if pkt[0]>>4 != 4 {
		return nil, ReasonOuterVersion
	}
	ihl := int(pkt[0]&0x0f) * 4
	if ihl < 20 || ihl > len(pkt) {
		return nil, ReasonOuterHeaderLen
	}
	total := int(binary.BigEndian.Uint16(pkt[2:]))
	if total < ihl || total > len(pkt) {
		return nil, ReasonOuterLength
	}
	if binary.BigEndian.Uint16(pkt[6:])&0x3fff != 0 {
		return nil, ReasonOuterFragment
	}
	var inner []byte
	var r Reason
	switch pkt[9] {
	case ProtoIPIP:
		inner, r = validateInner(pkt[ihl:total], 4)
	case ProtoIPv6:
		inner, r = validateInner(pkt[ihl:total], 6)
	case ProtoGRE:
		inner, r = DecapGRE(pkt[ihl:total])
	default:
		return nil, ReasonOuterProto
	}
	if r != ReasonOK {
		return nil, r
	}
	if r := decapECN(pkt[1]&0x03, inner); r != ReasonOK {
		return nil, r
	}
	return inner, ReasonOK
}

// DecapGRE decapsulates a GRE packet (the payload of an outer IP header):
// version 0 without routing, its optional checksum, key and sequence
// fields skipped, the checksum verified when present (RFC 2784 §2.5),
// protocol IPv4 or IPv6. It never allocates.
func DecapGRE(b []byte) ([]byte, Reason) {
	if len(b) < greHeaderLen {
		return nil, ReasonGREShort
	}
	flags := binary.BigEndian.Uint16(b)
	if flags&(greVersionMask|greFlagRouting) != 0 {
		return nil, ReasonGREVersion
	}
	hl := greHeaderLen
	for _, f := range [...]uint16{greFlagCsum, greFlagKey, greFlagSeq} {
		if flags&f != 0 {
			hl += greOptFieldSize
		}
	}
	if len(b) < hl {
		return nil, ReasonGREShort
	}
	csumBad := flags&greFlagCsum != 0 && header.Checksum(b, 0) != 0xffff
	var inner []byte
	var r Reason
	switch binary.BigEndian.Uint16(b[2:]) {
	case etherTypeIPv4:
		inner, r = validateInner(b[hl:], 4)
	case etherTypeIPv6:
		inner, r = validateInner(b[hl:], 6)
	default:
		if csumBad {
			return nil, ReasonGREChecksum
		}
		return nil, ReasonGREProto
	}
	if csumBad {
		// A packet merged by the receiving interface's GRO keeps its
		// first segment's GRE checksum (gre_gro_complete), after
		// gre_gro_receive verified every segment's; the kernel's own
		// GRE receive trusts it (gre_parse_header:
		// skb_checksum_simple_validate passes CHECKSUM_PARTIAL). So
		// does this one, when the inner packet is such a merged one
		// (gro.go).
		var it groItem
		if r != ReasonOK || !kernelMerged(&it, inner) {
			return nil, ReasonGREChecksum
		}
	}
	return inner, r
}

// DecapIPv6Payload decapsulates what a raw IPv6 socket for protocol next
// returns: the payload after the outer IPv6 header (which a raw IPv6
// socket does not hand over), an inner IPv4 (4) or IPv6 (41) packet or a
// GRE packet (47), as ip_vs_tunnel_xmit_v6 sends them. The outer traffic
// class is not visible here, so no ECN is propagated. It never
// allocates.
func DecapIPv6Payload(next byte, payload []byte) ([]byte, Reason) {
	switch next {
	case ProtoIPIP:
		return validateInner(payload, 4)
	case ProtoIPv6:
		return validateInner(payload, 6)
	case ProtoGRE:
		return DecapGRE(payload)
	}
	return nil, ReasonOuter6Proto
}

// DecapGUE decapsulates the payload of a UDP datagram received on the GUE
// port (the UDP header already removed by the socket). GUE version 0 must
// be a data message (C=0) whose proto/ctype is 4 or 41; its options (Hlen
// words) are skipped. Only the private-flags field without remote checksum
// is understood among the flags. GUE version 1 (direct IP) is accepted too.
// The outer header's ECN is not visible here, so none is propagated. It
// never allocates.
func DecapGUE(payload []byte) ([]byte, Reason) {
	if len(payload) < 1 {
		return nil, ReasonGUEShort
	}
	switch payload[0] >> 6 {
	case 0:
	case 1: // direct IP encapsulation: 0100 IPv4, 0110 IPv6
		switch payload[0] >> 4 {
		case 4:
			return validateInner(payload, 4)
		case 6:
			return validateInner(payload, 6)
		}
		return nil, ReasonInnerVersion
	default:
		return nil, ReasonGUEVersion
	}
	if len(payload) < gueHeaderLen {
		return nil, ReasonGUEShort
	}
	if payload[0]&0x20 != 0 {
		return nil, ReasonGUEControl
	}
	hlen := gueHeaderLen + int(payload[0]&0x1f)*4
	if hlen > len(payload) {
		return nil, ReasonGUEHeaderLen
	}
	flags := binary.BigEndian.Uint16(payload[2:])
	switch flags {
	case 0:
	case gueFlagPriv:
		// The private flags word is the first option; only an all-zero
		// one (no remote checksum offload) is understood.
		if hlen < gueHeaderLen+guePrivLen || binary.BigEndian.Uint32(payload[gueHeaderLen:]) != 0 {
			return nil, ReasonGUEFlags
		}
	default:
		return nil, ReasonGUEFlags
	}
	var want byte
	switch payload[1] {
	case ProtoIPIP:
		want = 4
	case ProtoIPv6:
		want = 6
	default:
		return nil, ReasonGUEProto
	}
	return validateInner(payload[hlen:], want)
}

// validateInner checks that b starts with a well-formed IP header of the
// given version and returns b trimmed to the packet's own length.
func validateInner(b []byte, version byte) ([]byte, Reason) {
	if version == 4 {
		if len(b) < 20 {
			return nil, ReasonInnerShort
		}
		if b[0]>>4 != 4 {
			return nil, ReasonInnerVersion
		}
		ihl := int(b[0]&0x0f) * 4
		if ihl < 20 || ihl > len(b) {
			return nil, ReasonInnerHeaderLen
		}
		total := int(binary.BigEndian.Uint16(b[2:]))
		if total < ihl || total > len(b) {
			return nil, ReasonInnerLength
		}
		if header.Checksum(b[:ihl], 0) != 0xffff {
			return nil, ReasonInnerChecksum
		}
		return b[:total], ReasonOK
	}
	if len(b) < 40 {
		return nil, ReasonInnerShort
	}
	if b[0]>>4 != 6 {
		return nil, ReasonInnerVersion
	}
	total := 40 + int(binary.BigEndian.Uint16(b[4:]))
	if total > len(b) {
		return nil, ReasonInnerLength
	}
	return b[:total], ReasonOK
}

// ECN codepoints (RFC 3168).
const (
	ecnNotECT = 0
	ecnCE     = 3
)

// decapECN applies RFC 6040 §4.2 for an outer ECN field: CE over not-ECT is
// dropped, CE over ECT(0)/ECT(1) marks the inner packet CE; every other
// combination leaves the inner packet unchanged. inner is a validated
// IPv4 or IPv6 packet.
func decapECN(outer byte, inner []byte) Reason {
	if outer != ecnCE {
		return ReasonOK
	}
	if inner[0]>>4 == 4 {
		switch inner[1] & 0x03 {
		case ecnNotECT:
			return ReasonECN
		case ecnCE:
			return ReasonOK
		}
		inner[1] |= ecnCE
		ihl := int(inner[0]&0x0f) * 4
		inner[10], inner[11] = 0, 0
		binary.BigEndian.PutUint16(inner[10:], ^header.Checksum(inner[:ihl], 0))
		return ReasonOK
	}
	// IPv6: the ECN bits are the low two bits of the traffic class, bits
	// 4-5 of the second byte.
	switch (inner[1] >> 4) & 0x03 {
	case ecnNotECT:
		return ReasonECN
	case ecnCE:
		return ReasonOK
	}
	inner[1] |= ecnCE << 4
	return ReasonOK
}
