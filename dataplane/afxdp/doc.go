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
//   - FastMap: the fast path's flow table (fast.go), shared by every program
//     instance: established IPv4 NAT, FULLNAT and DR flows the program rewrites and
//     redirects itself (bpf_redirect) instead of handing them to a socket;
//     dataplane.FastPath installs them and reads their counters back.
//
// # What the XDP program redirects
//
// The program redirects to the sockets exactly the frames an ownership.Set
// gives uvsd (ownership.Director and ownership.Shared, as
// ownership.Set.Classify defines them: services, NAT and FULLNAT replies,
// ICMP errors about their connections, ARP requests and neighbour
// solicitations for the addresses uvsd answers for), and passes everything
// else to the kernel (XDP_PASS). Program.SetOwnership loads a Set into two
// hash maps the program looks frames up in: addresses with flags (VIP,
// neighbour, director address) and (address, protocol, kind, port) keys
// for services, NAT replies and local port ranges; IPv6 entries carry
// their own flag bits and kind, so that an IPv6 packet's IPv4-mapped
// address never matches an IPv4 entry. The tests run the program in the
// kernel (TestRunner, BPF_PROG_TEST_RUN) against Classify.
//
// The limits are ownership's: untagged Ethernet or one 802.1Q tag, which
// is classified by what it carries (802.1ad and QinQ frames are passed; a
// NIC with receive VLAN offload hands the program tagged frames untagged,
// so turn rxvlan off on interfaces with tagged traffic), at most
// ownership.MaxExtHeaders IPv6 extension headers, the quoted packet of an
// ICMPv6 error with its transport header right after its IPv6 header. The
// maps hold one local port range per address and protocol: a Set with two
// disjoint ranges for one address and protocol is refused.
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
// frame. In native mode on a veth the kernel drops TSO and UDP
// segmentation from the peer's features (veth_xdp_set, veth_fix_features):
// the peer's stack segments before the veth and the sockets only see
// MTU-sized frames. A frags-capable program (BPF_F_XDP_HAS_FRAGS) does not
// keep them (Linux 6.18: veth_xdp_set clears NETIF_F_GSO_SOFTWARE from the
// peer whatever the program's flags and only raises its max_mtu), so uvs
// does not use one.
//
// Instead ReadBatch merges the TCP segments of one flow that arrive in one
// batch into a super-frame, by the kernel's GRO rules (gro.go), and hands
// it to the worker with its GSO description and a partial checksum
// (Frame.Offload); WriteBatch sends such frames through an AF_PACKET
// socket with PACKET_VNET_HDR, so the egress veth (or the kernel's
// software GSO) segments them again and a real server's stack receives
// them whole. Config.NoCoalesce turns this off.
//
// Generic mode runs after GRO and sees a local sender's GSO super-frames
// whole; they do not fit and the kernel drops them (KernelRxDropped), so
// generic mode needs GRO off on the interface and TSO/GSO off on senders in
// the same host.
package afxdp
