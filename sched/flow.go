package sched

import (
	"net/netip"

	"github.com/uvs-lb/uvs/spec"
)

// Flow is what a scheduler sees of the first packet of a new connection: the
// fields of struct ip_vs_iphdr and the skb mark the kernel schedulers read.
// It is passed by pointer and never retained.
type Flow struct {
	Proto   spec.Proto
	Src     netip.Addr // client address (packet source)
	Dst     netip.Addr // virtual address (packet destination)
	SrcPort uint16
	DstPort uint16
	Mark    uint32 // firewall mark (skb->mark)
	// Inverse is set when the header describes the reverse direction, as
	// for the packet quoted inside an ICMP error (IP_VS_HDR_INVERSE): the
	// source-hashing schedulers then hash Dst/DstPort instead of
	// Src/SrcPort.
	Inverse bool
}

// hashAddr returns the client address and port sh and mh hash
// (ip_vs_sh_get_port / ip_vs_iph_inverse): the source, or the destination
// for an inverse header. The port is 0 unless withPort is set and the
// protocol has ports.
func (f *Flow) hashAddr(withPort bool) (uint32, uint16) {
	a, p := f.Src, f.SrcPort
	if f.Inverse {
		a, p = f.Dst, f.DstPort
	}
	if !withPort {
		return fold(a), 0
	}
	switch f.Proto {
	case spec.ProtoTCP, spec.ProtoUDP, spec.ProtoSCTP:
		return fold(a), p
	}
	return fold(a), 0
}

// fold is the kernel's address fold, already in host byte order
// (ntohl(addr_fold)): the IPv4 address, or the XOR of the four 32-bit words
// of an IPv6 address. XOR commutes with the byte swap, so folding
// big-endian words read as big-endian equals ntohl of the folded value.
// An IPv4-mapped IPv6 address is treated as IPv4.
func fold(a netip.Addr) uint32 {
	if a.Is4() || a.Is4In6() {
		b := a.As4()
		return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	}
	b := a.As16()
	var v uint32
	for i := 0; i < 16; i += 4 {
		v ^= uint32(b[i])<<24 | uint32(b[i+1])<<16 | uint32(b[i+2])<<8 | uint32(b[i+3])
	}
	return v
}

// hash32 is the kernel's hash_32 (include/linux/hash.h): multiply by
// GOLDEN_RATIO_32 and keep the top bits.
func hash32(v uint32, bits uint) uint32 {
	return (v * 0x61C88647) >> (32 - bits)
}

// gcd returns the greatest common divisor of two positive ints.
func gcd(a, b int32) int32 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
