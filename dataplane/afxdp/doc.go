// Package afxdp is the AF_XDP packet-I/O backend of the data plane: AF_XDP
// sockets written on golang.org/x/sys/unix, fed by an XDP program assembled
// in Go with github.com/cilium/ebpf/asm (no clang at build or run time).
//
// # Pieces
//
//   - Program: the XDP program and its maps. One program instance is loaded
//     per served interface (each has its own XSKMAP, indexed by RX queue);
//     the ownership maps are shared. Attach prefers native (driver) mode and
//     falls back to generic (SKB) mode. Attachment uses a bpf_link, so the
//     program is detached when Close is called or when the process dies.
//   - Socket: one AF_XDP socket bound to one (interface, queue), with its own
//     UMEM split into receive frames (posted to the fill ring) and transmit
//     frames (a free list refilled from the completion ring).
//   - IO: a dataplane.PacketIO over the sockets of one worker, typically one
//     per served interface for the worker's queue, polled together.
//
// # What the XDP program redirects
//
// The program redirects to the sockets exactly the frames the director owns,
// as the nftables hooks of package khook express it, and passes everything
// else to the kernel (XDP_PASS):
//
//   - IPv4/IPv6 TCP, UDP and SCTP to a service (address, protocol, port; port
//     0 meaning every port), and non-first fragments to a port-0 service;
//   - NAT replies: from a real server (address, protocol, source port) unless
//     addressed to one of the director's own addresses (a health check's
//     reply, for example);
//   - FULLNAT replies: to a local address within its port range;
//   - ICMP errors (IPv4 types 3, 4, 11, 12; ICMPv6 types 1-4) addressed to a
//     VIP, and ICMP errors about a NAT connection (the quoted packet went to
//     a real server's NAT port) unless addressed to a director address;
//   - ARP requests (Ethernet/IPv4) and IPv6 neighbour solicitations whose
//     target is an address uvsd answers for (a VIP the kernel does not own).
//
// Other ARP (replies, requests for the director's own addresses), NDP
// messages, ICMP echo to a VIP, TCP/UDP to ports no service uses, and any
// traffic of the director's own stack reach the kernel unchanged. Limits:
// only untagged Ethernet is classified (802.1Q frames are passed); IPv6
// extension headers are walked for hop-by-hop, routing, destination options
// and fragment headers, at most four of them (more, or any other extension
// such as AH, and the frame is passed); the quoted packet of an ICMPv6 error
// must carry its L4 header right after the IPv6 header.
//
// # Frames and checksums
//
// Every received frame sits in a UMEM frame after at least
// XDP_PACKET_HEADROOM (256) bytes plus Config.Headroom, which the data plane
// may use to prepend an encapsulation header. AF_XDP carries no skb
// metadata, so a frame whose sender left the L4 checksum to offload
// (CHECKSUM_PARTIAL, common on veth) cannot be told from a complete one:
// ReadBatch sets Frame.CsumUnknown on every frame and the worker detects
// partial checksums itself.
//
// WriteBatch copies each frame into a transmit frame of the socket bound to
// the frame's Ifindex (a frame received on one interface may leave by
// another). Frames for an interface without a socket of this IO are sent
// through an AF_PACKET socket instead.
//
// # Segmentation offloads
//
// The program does not support XDP multi-buffer, so a frame must fit a UMEM
// frame. In native mode on a veth the kernel then drops TSO and UDP
// segmentation from the peer's features (veth_fix_features): the peer's
// stack segments before the veth and the sockets only see MTU-sized frames.
// Generic mode runs after GRO and sees a local sender's GSO super-frames
// whole; they do not fit and the kernel drops them (KernelRxDropped), so
// generic mode needs GRO off on the interface and TSO/GSO off on senders in
// the same host.
//
// Like the kernel hooks, the program does not redirect the replies of a
// port-0 (or port-less firewall-mark) NAT service, which can come from any
// port: use DR, TUN or FULLNAT there.
package afxdp
