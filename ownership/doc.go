// Package ownership defines, once, which frames belong to uvsd: the frames
// the director handles itself and its own network stack must not see. It
// computes the Set of what uvsd owns from the configuration (Compute), and
// classifies a frame against a Set (Classify). Three backends compile the
// same Set and are tested against Classify frame by frame: the nftables
// netdev ingress rules that drop owned frames before the kernel's stack
// (package dataplane/khook), the classic BPF filter on the AF_PACKET
// sockets (package dataplane/afpacket) and the XDP program that redirects
// owned frames to the AF_XDP sockets (package dataplane/afxdp). The
// director hands every Set to them through one interface, Consumer.
//
// # Verdicts
//
// Classify gives each Ethernet frame one of three verdicts:
//
//   - Director: uvsd handles the frame and the kernel must not see it.
//     The nftables rules drop it, the BPF filter accepts it (the socket
//     gets a copy) and the XDP program redirects it.
//   - Shared: uvsd must see the frame and the kernel may see it too. The
//     nftables rules let it pass, the BPF filter accepts it and the XDP
//     program redirects it (XDP cannot copy a frame).
//   - Kernel: not uvsd's. The nftables rules let it pass, the BPF filter
//     rejects it and the XDP program passes it.
//
// # Which frames are uvsd's
//
// A frame is Director when it is one of:
//
//   - TCP, UDP or SCTP to a service: the destination address, protocol and
//     destination port are a Services entry, or the address and protocol
//     are an entry with port 0 (every port). A port-0 entry also matches a
//     non-first fragment, and a packet too short to hold its ports.
//   - A NAT reply: TCP, UDP or SCTP from a NATReplies entry (source
//     address, protocol, source port), unless the destination is a Local
//     address (a health check's reply, for example).
//   - A FULLNAT reply: TCP, UDP or SCTP to a LocalRanges address with its
//     protocol and the destination port within the range.
//   - An ICMP error (IPv4 types 3, 4, 11, 12; ICMPv6 types 1 to 4) that is
//     addressed to a VIP; or that quotes a TCP, UDP or SCTP packet sent
//     from the error's destination address, a LocalRanges address, with a
//     source port in its range (a real server's error about a FULLNAT
//     connection); or that quotes a packet sent to a NATReplies entry
//     (destination address, protocol, destination port), unless the error
//     is addressed to a Local address.
//
// A frame is Shared when it is an Ethernet/IPv4 ARP request or an IPv6
// neighbour solicitation whose target is a Neighbours address. Every other
// frame is Kernel.
//
// Parsing is that of nf_tables at netdev ingress, so that the nftables
// rules can match exactly: the EtherType is read at offset 12 of an
// untagged Ethernet frame (a frame that carried an 802.1Q or 802.1ad tag
// is Kernel, even when the NIC or the kernel removed the tag before the
// hook); an IPv4 header must have version 4, an IHL of at least 5 and a
// total length that covers the header and fits in the frame; an IPv6
// header must have version 6 and a payload length that fits in the frame,
// and its transport header is found as ipv6_find_hdr finds it (AH and "no
// next header" end the walk, a non-first fragment header ends it with the
// fragment's next header), walking at most MaxExtHeaders (4) extension
// headers. A packet is a non-first fragment when its fragment offset is
// not zero; only port-0 services match those. An ICMP message must carry
// its whole 8-byte header and not be a non-first fragment; the quoted
// packet of an error must carry its IP header and its first four
// transport bytes, and an IPv6 one the transport header right after its
// fixed header. Addresses of an IPv6 packet are IPv6 addresses, also when
// IPv4-mapped. Bytes past the end of the IP packet (Ethernet padding) are
// read like the packet's.
//
// # Where a backend is less precise
//
//   - nftables walks every IPv6 extension header (ipv6_find_hdr has no
//     limit, or one of 12 in newer kernels), so a frame with more than
//     MaxExtHeaders extension headers before an owned transport header is
//     dropped by the rules although Classify, the BPF filter and the XDP
//     program call it Kernel: such a frame reaches neither the kernel nor
//     uvsd when the hooks are installed.
//   - The XDP program runs before the kernel removes a VLAN tag, but a NIC
//     with receive VLAN offload (rxvlan) hands it the frame already
//     untagged: turn rxvlan off on interfaces carrying tagged traffic.
//   - The XDP program keeps one local port range per address and protocol;
//     a Set with two disjoint ranges for one address and protocol is
//     refused.
//   - The classic BPF filter is limited to 4096 instructions; beyond that
//     afpacket falls back to an address-level filter that accepts a
//     superset (the worker ignores frames it does not own).
package ownership
