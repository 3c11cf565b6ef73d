package header

import (
	"encoding/binary"
	"math/bits"
)

// Checksum returns the 16-bit one's-complement sum (RFC 1071) of b added to
// initial, folded but not complemented. An odd trailing byte is padded with
// zero. The checksum field of a header is ^Checksum(...) computed with the
// field itself zeroed; a packet verifies when the sum including the field is
// 0xffff.
//
// The loop adds 64-bit big-endian words with end-around carry: one's
// complement addition is associative and commutative, so summing wider words
// and folding at the end equals summing 16-bit words (RFC 1071 §2(B)).
func Checksum(b []byte, initial uint16) uint16 {
	acc := uint64(initial)
	var c uint64
	for len(b) >= 32 {
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[0:]), 0)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[8:]), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[16:]), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[24:]), c)
		acc += c
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b), 0)
		acc += c
		b = b[8:]
	}
	if len(b) >= 4 {
		acc, c = bits.Add64(acc, uint64(binary.BigEndian.Uint32(b)), 0)
		acc += c
		b = b[4:]
	}
	if len(b) >= 2 {
		acc, c = bits.Add64(acc, uint64(binary.BigEndian.Uint16(b)), 0)
		acc += c
		b = b[2:]
	}
	if len(b) == 1 {
		acc, c = bits.Add64(acc, uint64(b[0])<<8, 0)
		acc += c
	}
	return fold64(acc)
}

// fold64 folds a 64-bit one's-complement accumulator to 16 bits.
func fold64(acc uint64) uint16 {
	acc = (acc & 0xffffffff) + (acc >> 32) // < 2^33
	acc = (acc & 0xffffffff) + (acc >> 32) // < 2^32
	return fold32(uint32(acc))
}

// fold32 folds a 32-bit one's-complement accumulator to 16 bits.
func fold32(s uint32) uint16 {
	s = (s & 0xffff) + (s >> 16)
	s = (s & 0xffff) + (s >> 16)
	return uint16(s)
}

// CombineChecksums returns the one's-complement sum of two folded sums.
func CombineChecksums(a, b uint16) uint16 { return fold32(uint32(a) + uint32(b)) }

// PseudoHeaderChecksum returns the folded sum of the TCP/UDP/ICMPv6
// pseudo-header: the source and destination addresses (4 or 16 bytes each),
// the protocol and the upper-layer length (RFC 793, RFC 768, RFC 8200 §8.1).
func PseudoHeaderChecksum(proto uint8, src, dst []byte, length uint32) uint16 {
	s := Checksum(src, 0)
	s = Checksum(dst, s)
	return fold32(uint32(s) + uint32(proto) + (length >> 16) + (length & 0xffff))
}

// The incremental update of RFC 1624, section 3, equation 3:
//
//	HC' = ~(~HC + ~m + m')
//
// where HC is the old checksum field, m an old 16-bit word of the covered
// data and m' its new value. The ~m + m' terms of every changed word are
// accumulated first (a "delta", computed with Delta16/DeltaBytes) and then
// applied once with ApplyDelta. Unlike equation 2 (HC' = HC - ~m - m'), this
// form never produces the 0x0000 "negative zero" for a checksum that a full
// recomputation would write as 0xffff (RFC 1624 §3).

// Delta16 adds ~old + new, for one 16-bit word changed from old to new, to
// the running delta acc.
func Delta16(acc uint32, old, new uint16) uint32 {
	return acc + uint32(^old) + uint32(new)
}

// DeltaBytes adds ~m + m' for every 16-bit word of old changed to the word
// at the same position in new (equal, even lengths: a 4- or 16-byte
// address, a port) to the running delta acc.
func DeltaBytes(acc uint32, old, new []byte) uint32 {
	for i := 0; i+1 < len(old) && i+1 < len(new); i += 2 {
		acc += uint32(^binary.BigEndian.Uint16(old[i:])) + uint32(binary.BigEndian.Uint16(new[i:]))
	}
	return acc
}

// ApplyDelta returns the checksum field HC' = ~(~HC + delta) (RFC 1624
// eqn 3) for the old field check and a delta built by Delta16/DeltaBytes.
func ApplyDelta(check uint16, delta uint32) uint16 {
	// The delta of a few hundred words cannot overflow 32 bits; fold it,
	// add ~HC, fold again with end-around carry and complement.
	return ^fold32(uint32(^check) + uint32(fold32(delta)))
}

// UpdateChecksum16 returns the checksum field after one covered 16-bit word
// changed from old to new (RFC 1624 eqn 3: HC' = ~(~HC + ~m + m')).
func UpdateChecksum16(check, old, new uint16) uint16 {
	return ApplyDelta(check, Delta16(0, old, new))
}

// UpdateChecksumAddr returns the checksum field after a covered address (or
// any even-length field) changed from old to new; old and new have the same
// length, 4 bytes for IPv4 or 16 for IPv6 (RFC 1624 eqn 3 applied to each
// 16-bit word).
func UpdateChecksumAddr(check uint16, old, new []byte) uint16 {
	return ApplyDelta(check, DeltaBytes(0, old, new))
}

// UDPChecksumValue maps a computed UDP checksum to the value carried on the
// wire: a computed 0x0000 is sent as 0xffff because 0 means "no checksum"
// (RFC 768; RFC 8200 §8.1 for IPv6).
func UDPChecksumValue(c uint16) uint16 {
	if c == 0 {
		return 0xffff
	}
	return c
}
