// Package modes implements the IPVS forwarding methods as pure, in-place
// rewrites of a parsed frame: NAT (masquerading) and FULLNAT in both
// directions and for related ICMP errors, direct routing and tunnelling
// (IPIP and GUE encapsulation into headroom).
//
// Every function takes the frame bytes and the header.Parsed that describes
// them, mutates the frame in place, fixes the IP and L4 checksums (RFC 1624
// incremental updates; a full recomputation when the frame arrived
// CHECKSUM_PARTIAL or carried no UDP checksum), and returns a Result. The
// functions do no I/O, keep no state and never allocate. After a rewrite
// the Parsed value describes the rewritten frame (addresses, ports, TTL),
// except after an encapsulation, which moves the frame.
//
// Checksum offload: the Csum argument says what the L4 checksum field
// holds. CsumComplete is updated incrementally; CsumPartial (the sender
// left the checksum to offload, the field holds the pseudo-header sum) is
// completed in software, so the caller must clear the frame's partial
// flag; CsumKeepPartial leaves it partial for the egress device, with the
// pseudo-header sum updated for the changed addresses only.
//
// GSO super-frames (up to 64 KB of TCP or UDP payload behind one set of
// headers, described by virtio_net_hdr metadata the caller keeps) are
// rewritten like any packet, once, with CsumKeepPartial: the rewrite
// touches only headers, and the pseudo-header sum keeps the super-frame's
// L4 length, which Linux's segmentation replaces per segment. CheckMTU
// takes the GSO size and checks the segments. Encapsulation is the
// exception: an IPIP or GUE packet around a super-frame has no
// virtio_net_hdr GSO type, so the TUN method cuts super-frames into
// segments in software first (Segmenter, with complete checksums, as
// Linux's software GSO would) and encapsulates each. Keeping GSO through
// the tunnel (SKB_GSO_IPXIP4) is not possible from userspace: AF_PACKET
// accepts only the plain TCP and UDP GSO types.
package modes
