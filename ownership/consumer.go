package ownership

// Consumer is anything that keeps the frames of a Set for uvsd: the
// nftables hooks (package khook), the AF_PACKET sockets' filters (package
// afpacket) and the XDP program (package afxdp). The director computes one
// Set per change and hands it to every Consumer.
type Consumer interface {
	// SetOwnership replaces what the consumer keeps for uvsd with s (nil:
	// nothing). It fails, leaving the previous state or a superset of
	// the new one in place, when s cannot be expressed or installed.
	SetOwnership(s *Set) error
}
