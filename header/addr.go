package header

import (
	"encoding/binary"
	"net/netip"
)

// Addresses.
//
// Every 16-byte address in uvs is in netip's As16 form: Parsed.Src and
// Dst, Inner.Src and Dst, the connection table's keys and endpoints, the
// snapshot's and the host's address sets. An IPv6 address is stored as is
// and an IPv4 address IPv4-mapped (RFC 4291 §2.5.5.2): ten zero bytes,
// 0xff, 0xff, then the four IPv4 bytes, what netip.Addr.As16 returns. A
// parsed address is thus a connection key's address by plain copy, and the
// address field of an IPv4 header is the last four bytes.

// v4InV6Prefix is the IPv4-mapped prefix ::ffff:0:0/96.
var v4InV6Prefix = [12]byte{10: 0xff, 11: 0xff}

// PutAddr stores an address field of a packet, 4 bytes for IPv4 or 16 for
// IPv6, into a in As16 form. It reports false, leaving a alone, for any
// other length.
func PutAddr(a *[16]byte, b []byte) bool {
	switch len(b) {
	case 4:
		put4(a, b)
		return true
	case 16:
		*a = [16]byte(b)
		return true
	}
	return false
}

// put4 stores the IPv4 address b[:4] IPv4-mapped: two 8-byte stores.
func put4(a *[16]byte, b []byte) {
	binary.LittleEndian.PutUint64(a[:8], 0)
	binary.BigEndian.PutUint64(a[8:], 0xffff<<32|uint64(binary.BigEndian.Uint32(b)))
}

// put4z is put4 for an a known to be zero (Parse clears Parsed first):
// only the prefix's 0xffff and the address are stored.
func put4z(a *[16]byte, b []byte) {
	binary.BigEndian.PutUint16(a[10:], 0xffff)
	copy(a[12:16], b[:4])
}

// AddrFrom16 returns the address held in As16 form, an IPv4-mapped one as
// IPv4 (netip.AddrFrom16(a).Unmap()). Use it where the IP version is not
// known otherwise (connection endpoints); Parsed.SrcAddr and DstAddr keep
// an IPv4-mapped address of an IPv6 packet IPv6.
func AddrFrom16(a [16]byte) netip.Addr {
	if [12]byte(a[:12]) == v4InV6Prefix {
		return netip.AddrFrom4([4]byte(a[12:]))
	}
	return netip.AddrFrom16(a)
}

// wireAddr returns the bytes of a as they appear in a header of IP
// version v: the last 4 for IPv4 (and ARP, version 0), all 16 for IPv6.
func wireAddr(a *[16]byte, v uint8) []byte {
	if v == 6 {
		return a[:]
	}
	return a[12:]
}
