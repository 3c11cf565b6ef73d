// Package explain shows how a load balancer rewrote one TCP connection, hop
// by hop, from pcap files captured along its path (see package capture).
//
// Flow finds the client's first SYN to the virtual service in the captures
// and follows that same connection through every hop by its TCP initial
// sequence number, which no LVS forwarding mode changes: the SYN carries
// it as seq, the SYN-ACK as ack-1, the first request as seq-1. For every
// hop it prints the connection's SYN, SYN-ACK, first request and response
// and any reset, with Ethernet addresses, IP addresses and ports, TTL and,
// for tunnelled packets (IPIP, or GUE: UDP with a GUE header), the outer
// IP header, so that each mode's rewrite can be read off the table:
//
//	NAT      the destination IP (and port) of the SYN changes at the director
//	DR       only the MAC addresses change (and the TTL drops by one)
//	TUN      an outer IP header appears around the unchanged packet
//	FULLNAT  source and destination IP and port both change
//
// Each SYN row ends with what changed since the previous SYN row. A hop
// where the connection never appears prints "(not seen)", which is what
// to look for when a lab is broken on purpose.
//
// A program that transmits through a packet socket with
// PACKET_QDISC_BYPASS, as the uvsd data plane does, is invisible to
// captures on its own sending interface: capture a director's output at
// the other end of the link (the real server's or client's interface, or
// a bridge port), or its rows there read "(not seen at this hop)".
//
// It reads pcap files (Ethernet, Linux cooked or raw IP link types) with
// gopacket's pcapgo and decodes headers with gopacket's layers; it is an
// offline tool, not part of the data path.
package explain
