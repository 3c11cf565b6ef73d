package header

import (
	"encoding/binary"
	"hash/crc32"
)

// SCTP common header (RFC 9260 section 3.1): source port, destination
// port, verification tag, checksum; chunks follow, each a type, flags and
// a 16-bit length that counts the 4-byte chunk header and excludes the
// padding to a multiple of 4 (section 3.2).
const (
	SCTPHeaderSize  = 12
	SCTPChecksumOff = 8
	SCTPChunkSize   = 4 // chunk header: type, flags, length
)

// SCTP chunk types (RFC 9260 section 3.2, RFC 4960 for ECNE/CWR).
const (
	SCTPChunkData             uint8 = 0
	SCTPChunkInit             uint8 = 1
	SCTPChunkInitAck          uint8 = 2
	SCTPChunkSack             uint8 = 3
	SCTPChunkHeartbeat        uint8 = 4
	SCTPChunkHeartbeatAck     uint8 = 5
	SCTPChunkAbort            uint8 = 6
	SCTPChunkShutdown         uint8 = 7
	SCTPChunkShutdownAck      uint8 = 8
	SCTPChunkError            uint8 = 9
	SCTPChunkCookieEcho       uint8 = 10
	SCTPChunkCookieAck        uint8 = 11
	SCTPChunkECNE             uint8 = 12
	SCTPChunkCWR              uint8 = 13
	SCTPChunkShutdownComplete uint8 = 14
)

// SCTPChunks returns the type of the first chunk of the SCTP packet l4
// (the common header and what follows, up to the end of the IP packet)
// and, when that chunk is a COOKIE ECHO or COOKIE ACK with a valid
// length, the type of the chunk after it (next, ok2): the kernel's
// set_sctp_state (ip_vs_proto_sctp.c) looks there for an ABORT bundled
// after the cookie. ok is false when the packet holds no whole chunk
// header. It does not allocate.
func SCTPChunks(l4 []byte) (first uint8, ok bool, next uint8, ok2 bool) {
	if len(l4) < SCTPHeaderSize+SCTPChunkSize {
		return 0, false, 0, false
	}
	c := l4[SCTPHeaderSize:]
	first = c[0]
	if first != SCTPChunkCookieEcho && first != SCTPChunkCookieAck {
		return first, true, 0, false
	}
	clen := int(binary.BigEndian.Uint16(c[2:]))
	if clen < SCTPChunkSize {
		return first, true, 0, false
	}
	off := (clen + 3) &^ 3 // chunks are padded to 4 bytes
	if off+SCTPChunkSize > len(c) {
		return first, true, 0, false
	}
	return first, true, c[off], true
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var zero4 [4]byte

// SCTPChecksum returns the CRC32c of the SCTP packet l4 computed with its
// checksum field taken as zero (RFC 9260 appendix A), in the form the
// field holds it: SCTPStoredChecksum reads the field the same way. l4
// must hold at least the common header. It does not allocate.
func SCTPChecksum(l4 []byte) uint32 {
	c := crc32.Update(0, castagnoli, l4[:SCTPChecksumOff])
	c = crc32.Update(c, castagnoli, zero4[:])
	return crc32.Update(c, castagnoli, l4[SCTPChecksumOff+4:])
}

// SCTPStoredChecksum returns the checksum field of the SCTP packet l4. The
// CRC32c is transmitted least significant byte first (the reflected
// algorithm of appendix A; Linux's sctp_compute_cksum stores it
// cpu_to_le32), so the field is read little-endian.
func SCTPStoredChecksum(l4 []byte) uint32 {
	return binary.LittleEndian.Uint32(l4[SCTPChecksumOff:])
}

// SetSCTPChecksum stores c as the checksum field of the SCTP packet l4.
func SetSCTPChecksum(l4 []byte, c uint32) {
	binary.LittleEndian.PutUint32(l4[SCTPChecksumOff:], c)
}

// SCTPChecksumOK reports whether the checksum field of the SCTP packet l4
// is the CRC32c of the packet (the kernel's sctp_csum_check).
func SCTPChecksumOK(l4 []byte) bool {
	return len(l4) >= SCTPHeaderSize && SCTPChecksum(l4) == SCTPStoredChecksum(l4)
}
