package header

// Field offsets and values for code that reads frames without this
// package's views: the ownership classifier and the programs compiled from
// it (the classic BPF socket filter, the XDP program, the nftables rules),
// which must agree with each other byte for byte.
const (
	// EthernetTypeOff is the offset of the EtherType (or of an 802.1Q
	// TPID) in an Ethernet header.
	EthernetTypeOff = ethType

	// IPv4VerIHLOff is the version/IHL byte of an IPv4 header, and
	// IPv4ProtoOff its protocol byte.
	IPv4VerIHLOff = ipv4VerIHL
	IPv4ProtoOff  = ipv4Proto

	// IPv6NextHeaderOff is the next-header byte of the IPv6 fixed header.
	IPv6NextHeaderOff = ipv6NextHeader

	// IPv6 fragment header (RFC 8200 section 4.5): next header, reserved,
	// then the 13-bit fragment offset above the M flag; 8 bytes in all.
	IPv6FragSize    = 8
	IPv6FragOffOff  = 2
	IPv6FragOffMask = 0xfff8

	// ARP (Ethernet/IPv4) fields, from the start of the ARP packet.
	ARPHTypeOff      = arpHType
	ARPPTypeOff      = arpPType
	ARPHLenOff       = arpHLen
	ARPPLenOff       = arpPLen
	ARPOpOff         = arpOp
	ARPTargetIPOff   = arpTPA
	ARPHTypeEthernet = arpHTEthernet

	// Port offsets of TCP, UDP and SCTP, which share the layout of their
	// first four bytes.
	L4SrcPortOff = 0
	L4DstPortOff = 2
)
