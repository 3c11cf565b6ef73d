// Package header holds the wire formats the uvs data plane works on:
// zero-copy typed views over Ethernet (with 802.1Q), ARP, IPv4, IPv6, TCP,
// UDP, ICMPv4 and ICMPv6 headers, a single-pass frame parser that fills a
// reused Parsed value, RFC 1071 checksums with RFC 1624 incremental updates,
// and in-place builders for the control frames the director answers itself
// (ARP replies, neighbour advertisements, ICMP errors). Parsed addresses
// are 16 bytes in netip's As16 form, IPv4 IPv4-mapped (addr.go), the form
// every 16-byte address of uvs takes.
//
// It is the lowest layer of the data plane and imports nothing from uvs.
// Nothing in this package allocates on the per-packet path; malformed input
// is reported as a Reason, never as an error value.
package header
