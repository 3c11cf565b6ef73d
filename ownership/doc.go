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
//     packet too short to hold its ports.
//   - A NAT reply: TCP, UDP or SCTP from a NATReplies entry (source
//     address, protocol, source port; an entry of port 0, the real server
//     of a port-0 NAT service, matches every source port), unless the
//     destination is a Local address (a health check's reply, for
//     example).
//   - A FULLNAT reply: TCP, UDP or SCTP to a LocalRanges address with its
//     protocol and the destination port within the range.
//   - An ICMP error (IPv4 types 3, 4, 11, 12; ICMPv6 types 1 to 4) that is
//     addressed to a VIP; or that quotes a TCP, UDP or SCTP packet sent
//     from the error's destination address, a LocalRanges address, with a
//     source port in its range (a real server's error about a FULLNAT
//     connection); or that quotes a packet sent to a NATReplies entry
//     (destination address, protocol, destination port, any for an entry
//     of port 0), unless the error is addressed to a Local address.
//   - An ICMPv4 error (types 3, 4, 11, 12) about the director's own
//     tunnelled packet to a TUN real server, as ip_vs_in_icmp handles it
//     (net/netfilter/ipvs/ip_vs_core.c) to learn the path MTU: addressed
//     to a Local address D, quoting an IPv4 header from D to a Tunnels
//     entry's address with its outer protocol, 4 (ipip) or 47 (gre), or 17
//     (gue) with the entry's port as the quoted destination port. The
//     quoted packet must carry four bytes after its IP header, as for the
//     other errors. IPv6 has no such case: ip_vs_in_icmp_v6 has no tunnel
//     handling, so ICMPv6 errors about IPv6-outer packets stay the
//     kernel's.
//   - A fragment, first or not (IPv4: the MF flag or a fragment offset;
//     IPv6: the first fragment header has an offset or the M flag, an
//     atomic fragment being a whole packet as for ipv6_frag_rcv), judged
//     by what every fragment of the datagram carries, its addresses and
//     protocol, so that all of them go the same way: TCP, UDP or SCTP to
//     the address of a Services entry of that protocol (any port) or of a
//     LocalRanges entry of that protocol (a FULLNAT local address, also
//     when it is a Local address: a route source); TCP, UDP or SCTP from
//     the address of a NATReplies entry of that protocol, unless to a
//     Local address; ICMP or ICMPv6 to a VIP (a non-first fragment does
//     not say whether it is an error). A fragmented ICMP error about a NAT
//     or FULLNAT connection that is not addressed to a VIP stays the
//     kernel's (errors quote at most 576 bytes, IPv6 1280: they are not
//     fragmented on the way).
//
// # Frames that turn out not to be uvsd's
//
// Two kinds of owned frames may belong to nobody in uvsd, and the kernel
// never saw them:
//
//   - A datagram the worker reassembled (package dataplane, frag.go) that
//     the rules above, applied to the whole datagram, call Kernel: a UDP
//     datagram to a port of a VIP without a service, a fragmented reply to
//     a director address that is a FULLNAT route source from a port
//     outside the local range, an ICMP echo to a VIP.
//   - A packet from a real server of a port-0 NAT service that belongs to
//     no connection: traffic the real server starts itself through the
//     director (its default gateway in NAT), which IPVS lets the kernel
//     forward (ip_vs_out returns NF_ACCEPT without a connection). The
//     same holds for a packet from a NAT real server's port (a NATReplies
//     entry with a port) outside any connection.
//
// The worker hands such a packet, unchanged, to the director's stack as
// LOCALNODE does (Env.LocalNode; package dataplane, handback.go), which is
// what the kernel would have received without the hooks, counted
// handed-back, and drops it, counted hand-back-dropped, without a
// LocalNode. It tells these from frames the kernel saw too (the coarse
// BPF fallback's superset, for one), which it counts not-ours and never
// delivers again, by these rules applied to its configuration snapshot:
// a reassembled datagram by the fragment rule, a whole packet by the NAT
// reply rule. The NAT real servers of firewall-mark services are not
// recognised (the worker does not know the MARK rules' targets): their
// packets outside a connection are dropped, counted not-ours.
//
// A frame is Shared when it is an Ethernet/IPv4 ARP request or an IPv6
// neighbour solicitation whose target is a Neighbours address. Every other
// frame is Kernel.
//
// Parsing is that of nf_tables at netdev ingress, so that the nftables
// rules can match exactly: the EtherType is read at offset 12 of the
// Ethernet frame; a frame with one 802.1Q tag (EtherType 0x8100) is
// classified by what it carries, the EtherType after the tag and the
// packet after that, whatever its VLAN ID (the kernel and the NIC may
// remove the tag before the hooks: the backends see it where it went); a
// frame whose outer tag is 802.1ad (0x88a8), or with two tags, is Kernel;
// an IPv4 header must have version 4, an IHL of at least 5 and a
// total length that covers the header and fits in the frame; an IPv6
// header must have version 6 and a payload length that fits in the frame,
// and its transport header is found as ipv6_find_hdr finds it (AH and "no
// next header" end the walk, a non-first fragment header ends it with the
// fragment's next header), walking at most MaxExtHeaders (4) extension
// headers. A packet is a non-first fragment when its fragment offset is
// not zero (after an atomic fragment header, such a packet matches only
// port-0 services). An ICMP message that is not a fragment must carry its
// whole 8-byte header; the quoted packet of an error must carry its IP header and its first four
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
//   - VLAN tags: the nftables rules see a tag the kernel moved to skb
//     metadata (skb_vlan_untag, before the ingress hook) through meta
//     protocol and the link-layer header with the tag put back; the classic
//     BPF filter sees the frame untagged and the tag through the
//     SKF_AD_VLAN_TAG_PRESENT and SKF_AD_VLAN_TPID ancillary loads; the XDP
//     program sees the tag in the frame. A NIC with receive VLAN offload
//     (rxvlan) hands XDP the frame already untagged, the tag in its
//     receive descriptor, which the XDP program does not read: such a frame
//     is classified as untagged (what it carries), which is the same
//     verdict, but the AF_XDP socket then gets it without its tag: turn
//     rxvlan off on interfaces carrying tagged traffic served with AF_XDP.
//   - The XDP program keeps one local port range per address and protocol;
//     a Set with two disjoint ranges for one address and protocol is
//     refused.
//   - The classic BPF filter is limited to 4096 instructions; beyond that
//     afpacket falls back to an address-level filter that accepts a
//     superset (the worker ignores frames it does not own).
package ownership
