// Package ipfrag reassembles IPv4 and IPv6 fragments, one Reassembler per
// worker, in preallocated and bounded memory.
//
// # Why reassembly
//
// IPVS never sees a fragment: netfilter's defragmentation (nf_defrag_ipv4,
// and nf_defrag_ipv6 once an IPv6 service exists) reassembles every
// datagram in PREROUTING, and ip_vs_in_icmp reassembles ICMP errors with
// ip_defrag itself. The director schedules and rewrites whole datagrams and
// the output path fragments them again to no more than the largest
// fragment received (frag_max_size). uvs does the same: a worker feeds each
// fragment it is handed to its Reassembler, and handles the datagram that
// comes out like any frame received whole, with Frame.FragMax set so that
// the transmitter can fragment it again.
//
// The other way, Maglev's (schedule on the first fragment, forward later
// fragments along the connection it made), needs no memory for data but
// cannot forward a fragment that arrives before the first one, cannot see
// the L4 header of an ICMP error split across fragments, and would carry
// fragments whose ports the NAT and FULLNAT rewrites must change but cannot
// reach (they are in the first fragment only; the UDP checksum covers the
// whole datagram). Reassembly is what IPVS does and handles all of those.
//
// # Limits, as the kernel's ipfrag_* sysctls
//
//   - Config.Memory (ipfrag_high_thresh, 4 MiB per network namespace in
//     the kernel; a worker gets its share) is allocated once, by New: a
//     block arena holding the data (1 KiB blocks) and a table of queues (one
//     per datagram being reassembled). Nothing is allocated per fragment.
//   - When a fragment needs a block or a queue and none is free, the oldest
//     queues are dropped until at most Config.LowThresh of either is in use
//     (ipfrag_low_thresh, 3/4 of the memory by default). This is the
//     evictor the kernel had up to 4.16 (inet_frag_evictor); since 4.17 the
//     kernel instead refuses every fragment while it is over high_thresh
//     (inet_frag_find), so that a flood of incomplete datagrams blocks all
//     reassembly until ipfrag_time has passed. Dropping the oldest keeps
//     datagrams whose fragments arrive together reassembling under such a
//     flood (TestFloodBounded).
//   - A datagram not complete Config.Timeout4 (ipfrag_time, 30 s) or
//     Config.Timeout6 (ip6frag_time, 60 s) after its first fragment arrived
//     is dropped. Time is the caller's: Add and Expire take a monotonic
//     clock reading. No ICMP "fragment reassembly time exceeded" is sent
//     (the kernel sends one only as the datagram's final destination).
//   - A datagram is at most 65 535 bytes (the IPv4 total length, the IPv6
//     payload length); the link header and the IP header (IPv6: the
//     unfragmentable part) of the first fragment at most MaxHeader bytes.
//
// # Fragments, as ip_frag_queue and ip6_frag_queue take them
//
//   - Queues are keyed by source, destination, identification and (IPv4)
//     protocol (ip4_frag_match, ip6frag_key). The interface (vif/iif) is
//     not part of the key.
//   - A fragment that overlaps data already received drops the whole
//     datagram, for IPv4 as for IPv6 (RFC 5722, which the kernel applies to
//     IPv4 as well since 4.19: inet_frag_queue_insert returns
//     IPFRAG_OVERLAP and the queue is killed). A fragment wholly inside
//     data already received is a duplicate: it is dropped and the queue
//     kept (IPFRAG_DUP). The kernel tells duplicates by the runs of
//     fragments it received in order; here by any range received, so a
//     retransmitted fragment that fills nothing new is a duplicate wherever
//     its neighbours came from.
//   - A last fragment (MF clear) ending before data already received, or a
//     second last fragment with another end, is dropped; so is a fragment
//     reaching past the end a last fragment set, and an empty one. IPv4
//     trims a non-last fragment to a multiple of 8 bytes; IPv6 drops it
//     (the kernel answers with a parameter problem).
//   - An IPv6 first fragment must hold the upper-layer header (RFC 7112,
//     ipv6frag_thdr_truncated). An atomic fragment (offset 0, M clear,
//     RFC 6946) is returned at once without its fragment header and never
//     meets a queue. A first fragment whose chain holds a second fragment
//     header is dropped (RFC 8200 4.1; it would stay a fragment).
//     header.Parse reports the last fragment header of a chain, Add the
//     first: with one per packet they are the same.
//   - The reassembled datagram takes the first fragment's headers; the
//     ECN codepoints of the fragments are combined as ip_frag_ecn_table
//     does (CE wins; Not-ECT mixed with ECT drops the datagram); an IPv4
//     datagram keeps DF when its largest fragment had DF (ip_frag_reasm,
//     max_df_size).
//
// Memory use, speed and the flood bound are measured by BenchmarkAdd and
// TestFloodBounded.
package ipfrag
