// Package modes implements the IPVS forwarding methods as pure, in-place
// rewrites of a parsed frame: NAT (masquerading) in both directions and for
// related ICMP errors, FULLNAT, direct routing and tunnelling (IPIP and
// GUE encapsulation into headroom).
//
// Every function takes the frame bytes and the header.Parsed that describes
// them, mutates the frame in place, fixes the IP and L4 checksums (RFC 1624
// incremental updates; a full recomputation when the frame arrived
// CHECKSUM_PARTIAL or carried no UDP checksum), and returns a Result. The
// functions do no I/O, keep no state and never allocate. After a rewrite
// the Parsed value describes the rewritten frame (addresses, ports, TTL),
// except after an encapsulation, which moves the frame.
//
// On CHECKSUM_PARTIAL input (csumPartial true) the L4 checksum is completed
// in software, so the caller must clear the frame's partial flag.
package modes
