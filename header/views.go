package header

import (
	"encoding/binary"
)

// EtherType values the parser recognises.
const (
	EtherTypeIPv4 = 0x0800
	EtherTypeARP  = 0x0806
	EtherTypeIPv6 = 0x86dd
	EtherTypeVLAN = 0x8100
	EtherTypeQinQ = 0x88a8
)

// IP protocol numbers.
const (
	ProtoHopByHop = 0
	ProtoICMPv4   = 1
	ProtoIPIP     = 4
	ProtoTCP      = 6
	ProtoUDP      = 17
	ProtoIPv6     = 41
	ProtoRouting  = 43
	ProtoFragment = 44
	ProtoGRE      = 47
	ProtoESP      = 50
	ProtoAH       = 51
	ProtoICMPv6   = 58
	ProtoNoNext   = 59
	ProtoDstOpts  = 60
	ProtoSCTP     = 132
)

// Ethernet is a view of an Ethernet II header, optionally followed by one
// 802.1Q tag.
//
// Like every view in this package its accessors index the slice directly:
// check IsValid (or use Parsed) before calling them.
type Ethernet []byte

// Ethernet header layout.
const (
	EthernetMinSize  = 14
	EthernetVLANSize = 18
	ethDst           = 0
	ethSrc           = 6
	ethType          = 12
	ethVLANTCI       = 14
	ethVLANType      = 16
)

// IsValid reports whether e holds at least an untagged Ethernet header.
func (e Ethernet) IsValid() bool { return len(e) >= EthernetMinSize }

// Dst returns the destination MAC address.
func (e Ethernet) Dst() [6]byte { return [6]byte(e[ethDst : ethDst+6]) }

// Src returns the source MAC address.
func (e Ethernet) Src() [6]byte { return [6]byte(e[ethSrc : ethSrc+6]) }

// SetDst sets the destination MAC address.
func (e Ethernet) SetDst(m [6]byte) { copy(e[ethDst:ethDst+6], m[:]) }

// SetSrc sets the source MAC address.
func (e Ethernet) SetSrc(m [6]byte) { copy(e[ethSrc:ethSrc+6], m[:]) }

// OuterType returns the EtherType (or TPID) right after the addresses.
func (e Ethernet) OuterType() uint16 { return binary.BigEndian.Uint16(e[ethType:]) }

// Tagged reports whether the frame carries an 802.1Q tag (and is long enough
// to hold it).
func (e Ethernet) Tagged() bool {
	return len(e) >= EthernetVLANSize && e.OuterType() == EtherTypeVLAN
}

// VLANID returns the 12-bit VLAN id of a tagged frame.
func (e Ethernet) VLANID() uint16 { return binary.BigEndian.Uint16(e[ethVLANTCI:]) & 0x0fff }

// HeaderLen returns 18 for a tagged frame and 14 otherwise.
func (e Ethernet) HeaderLen() int {
	if e.Tagged() {
		return EthernetVLANSize
	}
	return EthernetMinSize
}

// Type returns the EtherType of the payload (after the VLAN tag, if any).
func (e Ethernet) Type() uint16 {
	if e.Tagged() {
		return binary.BigEndian.Uint16(e[ethVLANType:])
	}
	return e.OuterType()
}

// SetType sets the payload EtherType (after the VLAN tag, if any).
func (e Ethernet) SetType(t uint16) {
	if e.Tagged() {
		binary.BigEndian.PutUint16(e[ethVLANType:], t)
		return
	}
	binary.BigEndian.PutUint16(e[ethType:], t)
}

// ARP is a view of an ARP packet for IPv4 over Ethernet.
type ARP []byte

// ARP layout (Ethernet/IPv4 only) and operation codes.
const (
	ARPSize       = 28
	ARPRequest    = 1
	ARPReply      = 2
	arpHType      = 0
	arpPType      = 2
	arpHLen       = 4
	arpPLen       = 5
	arpOp         = 6
	arpSHA        = 8
	arpSPA        = 14
	arpTHA        = 18
	arpTPA        = 24
	arpHTEthernet = 1
)

// IsValid reports whether a is an Ethernet/IPv4 ARP packet.
func (a ARP) IsValid() bool {
	return len(a) >= ARPSize &&
		binary.BigEndian.Uint16(a[arpHType:]) == arpHTEthernet &&
		binary.BigEndian.Uint16(a[arpPType:]) == EtherTypeIPv4 &&
		a[arpHLen] == 6 && a[arpPLen] == 4
}

// Op returns the ARP operation.
func (a ARP) Op() uint16 { return binary.BigEndian.Uint16(a[arpOp:]) }

// SenderMAC returns the sender hardware address.
func (a ARP) SenderMAC() [6]byte { return [6]byte(a[arpSHA : arpSHA+6]) }

// SenderIP returns the sender protocol address.
func (a ARP) SenderIP() [4]byte { return [4]byte(a[arpSPA : arpSPA+4]) }

// TargetMAC returns the target hardware address.
func (a ARP) TargetMAC() [6]byte { return [6]byte(a[arpTHA : arpTHA+6]) }

// TargetIP returns the target protocol address.
func (a ARP) TargetIP() [4]byte { return [4]byte(a[arpTPA : arpTPA+4]) }

// IPv4 is a view of an IPv4 header (and the packet after it).
type IPv4 []byte

// IPv4 layout.
const (
	IPv4MinSize   = 20
	IPv4MaxSize   = 60
	ipv4VerIHL    = 0
	ipv4TOS       = 1
	ipv4TotalLen  = 2
	ipv4ID        = 4
	ipv4FlagsFrag = 6
	ipv4TTL       = 8
	ipv4Proto     = 9
	ipv4Checksum  = 10
	ipv4Src       = 12
	ipv4Dst       = 16

	// IPv4 flag bits in the flags/fragment-offset word.
	IPv4FlagDF       = 0x4000
	IPv4FlagMF       = 0x2000
	IPv4FragOffMask  = 0x1fff
	IPv4ChecksumOff  = ipv4Checksum
	IPv4SrcOff       = ipv4Src
	IPv4DstOff       = ipv4Dst
	IPv4TTLOff       = ipv4TTL
	IPv4TotalLenOff  = ipv4TotalLen
	IPv4FlagsFragOff = ipv4FlagsFrag
	IPv4IDOff        = ipv4ID
)

// IsValid reports whether b holds a complete IPv4 header: version 4, an IHL
// of at least 5 words that fits in b, and a total length that covers the
// header and fits in b.
func (b IPv4) IsValid() bool {
	if len(b) < IPv4MinSize || b[0]>>4 != 4 {
		return false
	}
	hl := b.HeaderLen()
	tl := int(b.TotalLen())
	return hl >= IPv4MinSize && hl <= len(b) && tl >= hl && tl <= len(b)
}

// HeaderLen returns the header length in bytes (IHL*4).
func (b IPv4) HeaderLen() int { return int(b[ipv4VerIHL]&0x0f) * 4 }

// TOS returns the DSCP/ECN byte.
func (b IPv4) TOS() uint8 { return b[ipv4TOS] }

// TotalLen returns the total length field.
func (b IPv4) TotalLen() uint16 { return binary.BigEndian.Uint16(b[ipv4TotalLen:]) }

// ID returns the identification field.
func (b IPv4) ID() uint16 { return binary.BigEndian.Uint16(b[ipv4ID:]) }

// FlagsFrag returns the flags and fragment-offset word.
func (b IPv4) FlagsFrag() uint16 { return binary.BigEndian.Uint16(b[ipv4FlagsFrag:]) }

// TTL returns the time to live.
func (b IPv4) TTL() uint8 { return b[ipv4TTL] }

// Protocol returns the payload protocol.
func (b IPv4) Protocol() uint8 { return b[ipv4Proto] }

// Checksum returns the header checksum field.
func (b IPv4) Checksum() uint16 { return binary.BigEndian.Uint16(b[ipv4Checksum:]) }

// Src returns the source address.
func (b IPv4) Src() [4]byte { return [4]byte(b[ipv4Src : ipv4Src+4]) }

// Dst returns the destination address.
func (b IPv4) Dst() [4]byte { return [4]byte(b[ipv4Dst : ipv4Dst+4]) }

// SetChecksum sets the header checksum field.
func (b IPv4) SetChecksum(c uint16) { binary.BigEndian.PutUint16(b[ipv4Checksum:], c) }

// ComputeChecksum returns the correct header checksum for b's header,
// ignoring the current value of the checksum field.
func (b IPv4) ComputeChecksum() uint16 {
	hl := b.HeaderLen()
	s := Checksum(b[:ipv4Checksum], 0)
	s = Checksum(b[ipv4Checksum+2:hl], s)
	return ^s
}

// UpdateChecksum recomputes and stores the header checksum.
func (b IPv4) UpdateChecksum() { b.SetChecksum(b.ComputeChecksum()) }

// ChecksumValid reports whether the header checksum verifies.
func (b IPv4) ChecksumValid() bool { return Checksum(b[:b.HeaderLen()], 0) == 0xffff }

// IPv6 is a view of an IPv6 fixed header (and the packet after it).
type IPv6 []byte

// IPv6 layout.
const (
	IPv6Size          = 40
	ipv6PayloadLen    = 4
	ipv6NextHeader    = 6
	ipv6HopLimit      = 7
	ipv6Src           = 8
	ipv6Dst           = 24
	IPv6SrcOff        = ipv6Src
	IPv6DstOff        = ipv6Dst
	IPv6HopLimitOff   = ipv6HopLimit
	IPv6PayloadLenOff = ipv6PayloadLen
)

// IsValid reports whether b holds a full IPv6 header with version 6 whose
// payload length fits in b.
func (b IPv6) IsValid() bool {
	return len(b) >= IPv6Size && b[0]>>4 == 6 && IPv6Size+int(b.PayloadLen()) <= len(b)
}

// TrafficClass returns the traffic class byte.
func (b IPv6) TrafficClass() uint8 { return b[0]<<4 | b[1]>>4 }

// PayloadLen returns the payload length field.
func (b IPv6) PayloadLen() uint16 { return binary.BigEndian.Uint16(b[ipv6PayloadLen:]) }

// NextHeader returns the next-header field of the fixed header.
func (b IPv6) NextHeader() uint8 { return b[ipv6NextHeader] }

// HopLimit returns the hop limit.
func (b IPv6) HopLimit() uint8 { return b[ipv6HopLimit] }

// Src returns the source address.
func (b IPv6) Src() [16]byte { return [16]byte(b[ipv6Src : ipv6Src+16]) }

// Dst returns the destination address.
func (b IPv6) Dst() [16]byte { return [16]byte(b[ipv6Dst : ipv6Dst+16]) }

// TCP is a view of a TCP header.
type TCP []byte

// TCP layout and flag bits.
const (
	TCPMinSize     = 20
	TCPChecksumOff = 16
	TCPFlagFIN     = 0x01
	TCPFlagSYN     = 0x02
	TCPFlagRST     = 0x04
	TCPFlagPSH     = 0x08
	TCPFlagACK     = 0x10
	TCPFlagURG     = 0x20
	TCPFlagECE     = 0x40
	TCPFlagCWR     = 0x80
)

// IsValid reports whether b holds a TCP header whose data offset is at
// least 5 words and fits in b.
func (b TCP) IsValid() bool {
	return len(b) >= TCPMinSize && b.HeaderLen() >= TCPMinSize && b.HeaderLen() <= len(b)
}

// SrcPort returns the source port.
func (b TCP) SrcPort() uint16 { return binary.BigEndian.Uint16(b[0:]) }

// DstPort returns the destination port.
func (b TCP) DstPort() uint16 { return binary.BigEndian.Uint16(b[2:]) }

// Seq returns the sequence number.
func (b TCP) Seq() uint32 { return binary.BigEndian.Uint32(b[4:]) }

// Ack returns the acknowledgement number.
func (b TCP) Ack() uint32 { return binary.BigEndian.Uint32(b[8:]) }

// HeaderLen returns the data offset in bytes.
func (b TCP) HeaderLen() int { return int(b[12]>>4) * 4 }

// Flags returns the flag byte (CWR..FIN).
func (b TCP) Flags() uint8 { return b[13] }

// Checksum returns the checksum field.
func (b TCP) Checksum() uint16 { return binary.BigEndian.Uint16(b[TCPChecksumOff:]) }

// UDP is a view of a UDP header.
type UDP []byte

// UDP layout.
const (
	UDPSize        = 8
	UDPChecksumOff = 6
)

// IsValid reports whether b holds a UDP header whose length field covers
// the header and fits in b.
func (b UDP) IsValid() bool {
	return len(b) >= UDPSize && int(b.Length()) >= UDPSize && int(b.Length()) <= len(b)
}

// SrcPort returns the source port.
func (b UDP) SrcPort() uint16 { return binary.BigEndian.Uint16(b[0:]) }

// DstPort returns the destination port.
func (b UDP) DstPort() uint16 { return binary.BigEndian.Uint16(b[2:]) }

// Length returns the length field.
func (b UDP) Length() uint16 { return binary.BigEndian.Uint16(b[4:]) }

// Checksum returns the checksum field.
func (b UDP) Checksum() uint16 { return binary.BigEndian.Uint16(b[UDPChecksumOff:]) }

// ICMPv4 is a view of an ICMPv4 message.
type ICMPv4 []byte

// ICMPv4 layout, types and codes.
const (
	ICMPv4MinSize           = 8
	ICMPv4ChecksumOff       = 2
	ICMPv4EchoReply         = 0
	ICMPv4DestUnreachable   = 3
	ICMPv4SourceQuench      = 4
	ICMPv4Redirect          = 5
	ICMPv4Echo              = 8
	ICMPv4TimeExceeded      = 11
	ICMPv4ParamProblem      = 12
	ICMPv4CodeNetUnreach    = 0
	ICMPv4CodeHostUnreach   = 1
	ICMPv4CodeProtoUnreach  = 2
	ICMPv4CodePortUnreach   = 3
	ICMPv4CodeFragNeeded    = 4
	ICMPv4CodeTTLExceeded   = 0
	ICMPv4CodeReassemblyExc = 1
)

// IsValid reports whether b holds the 8-byte ICMPv4 header.
func (b ICMPv4) IsValid() bool { return len(b) >= ICMPv4MinSize }

// Type returns the message type.
func (b ICMPv4) Type() uint8 { return b[0] }

// Code returns the message code.
func (b ICMPv4) Code() uint8 { return b[1] }

// Checksum returns the checksum field.
func (b ICMPv4) Checksum() uint16 { return binary.BigEndian.Uint16(b[ICMPv4ChecksumOff:]) }

// MTU returns the next-hop MTU of a fragmentation-needed message (RFC 1191).
func (b ICMPv4) MTU() uint16 { return binary.BigEndian.Uint16(b[6:]) }

// IsICMPv4Error reports whether t is an ICMPv4 error type that quotes the
// offending packet and that IPVS treats as related to a connection.
func IsICMPv4Error(t uint8) bool {
	return t == ICMPv4DestUnreachable || t == ICMPv4SourceQuench || t == ICMPv4TimeExceeded
}

// isICMPv4ErrorAny reports whether t is any ICMPv4 error type (RFC 1812
// 4.3.2.7: no error is sent about one).
func isICMPv4ErrorAny(t uint8) bool {
	return IsICMPv4Error(t) || t == ICMPv4Redirect || t == ICMPv4ParamProblem
}

// ICMPv6 is a view of an ICMPv6 message.
type ICMPv6 []byte

// ICMPv6 layout, types and codes.
const (
	ICMPv6MinSize          = 8
	ICMPv6ChecksumOff      = 2
	ICMPv6DestUnreachable  = 1
	ICMPv6PacketTooBig     = 2
	ICMPv6TimeExceeded     = 3
	ICMPv6ParamProblem     = 4
	ICMPv6EchoRequest      = 128
	ICMPv6EchoReply        = 129
	ICMPv6RouterSolicit    = 133
	ICMPv6RouterAdvert     = 134
	ICMPv6NeighborSolicit  = 135
	ICMPv6NeighborAdvert   = 136
	ICMPv6CodePortUnreach  = 4
	ICMPv6CodeHopLimitExc  = 0
	ICMPv6OptSourceLLAddr  = 1
	ICMPv6OptTargetLLAddr  = 2
	ICMPv6NDFlagRouter     = 0x80
	ICMPv6NDFlagSolicited  = 0x40
	ICMPv6NDFlagOverride   = 0x20
	ICMPv6NeighborMsgSize  = 24
	icmpv6NeighborTarget   = 8
	icmpv6NeighborOptsOff  = 24
	icmpv6NeighborOptLLLen = 8
)

// IsValid reports whether b holds the 8-byte ICMPv6 header.
func (b ICMPv6) IsValid() bool { return len(b) >= ICMPv6MinSize }

// Type returns the message type.
func (b ICMPv6) Type() uint8 { return b[0] }

// Code returns the message code.
func (b ICMPv6) Code() uint8 { return b[1] }

// Checksum returns the checksum field.
func (b ICMPv6) Checksum() uint16 { return binary.BigEndian.Uint16(b[ICMPv6ChecksumOff:]) }

// MTU returns the MTU of a packet-too-big message.
func (b ICMPv6) MTU() uint32 { return binary.BigEndian.Uint32(b[4:]) }

// Target returns the target address of a neighbour solicitation or
// advertisement (b must be at least 24 bytes).
func (b ICMPv6) Target() [16]byte {
	return [16]byte(b[icmpv6NeighborTarget : icmpv6NeighborTarget+16])
}

// IsICMPv6Error reports whether t is an ICMPv6 error type (RFC 4443: types
// below 128).
func IsICMPv6Error(t uint8) bool { return t < 128 }
