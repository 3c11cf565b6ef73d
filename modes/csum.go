package modes

import (
	"encoding/binary"

	"github.com/uvs-lb/uvs/header"
)

// Csum says what the L4 checksum field of a packet holds and how a rewrite
// must leave it.
type Csum uint8

// Checksum states.
const (
	// CsumComplete: the field holds a complete checksum; a rewrite updates
	// it incrementally (RFC 1624).
	CsumComplete Csum = iota
	// CsumPartial: the sender left the checksum to offload
	// (CHECKSUM_PARTIAL): the field holds only the pseudo-header sum. The
	// frame leaves complete: the rewrite computes the checksum in
	// software, so the caller must clear the frame's partial flag.
	CsumPartial
	// CsumKeepPartial: as CsumPartial, but the frame leaves partial, with
	// its offload metadata (csum_start/csum_offset), for the egress device
	// or the kernel to complete. The rewrite keeps the field a
	// pseudo-header sum: changed addresses are folded in (RFC 1624
	// arithmetic on the non-complemented sum), changed ports are not (they
	// are in the L4 header, which the completion sums anyway), and the
	// length in the sum is left as it was. For a GSO super-frame that
	// length is the whole super-frame's L4 length, which is what the
	// kernel's segmentation expects (tcp_gso_segment replaces it by each
	// segment's length).
	CsumKeepPartial

	numCsums
)

var csumNames = [numCsums]string{"complete", "partial", "keep-partial"}

// String returns a stable lower-case name.
func (c Csum) String() string {
	if c < numCsums {
		return csumNames[c]
	}
	return "csum?"
}

// adjustPseudo returns the non-complemented pseudo-header sum held in a
// CHECKSUM_PARTIAL field after the covered words changed by delta (a
// Delta16/DeltaBytes accumulation of ~old + new). The field holds
// S = sum(pseudo-header); the new field is S' = S + sum(~m + m'), the
// complement-free form of RFC 1624 eqn 3 (HC' = ~(~HC + ~m + m') with
// HC = ~S).
func adjustPseudo(sum uint16, delta uint32) uint16 {
	return ^header.ApplyDelta(^sum, delta)
}

// SeedPartial turns the L4 checksum of a parsed TCP or UDP packet into the
// CHECKSUM_PARTIAL form: the field gets the pseudo-header sum (addresses,
// protocol, L4 length of the whole packet, as Linux's __tcp_v4_send_check
// and udp_v4_check seed it). It is for GSO super-frames received without a
// partial checksum: segmentation needs the seed. It returns the offsets to
// report as csum_start (from the start of frame) and csum_offset, and false
// for other protocols.
func SeedPartial(frame []byte, p *header.Parsed) (start, offset uint16, ok bool) {
	if p.Reason != header.ReasonNone || (p.Proto != header.ProtoTCP && p.Proto != header.ProtoUDP) ||
		p.End > len(frame) || p.L4Off > p.End {
		return 0, 0, false
	}
	co := header.L4ChecksumOffset(p.Proto)
	if p.L4Off+co+2 > p.End {
		return 0, 0, false
	}
	srcOff, dstOff := ipOffsets(p.IPVersion)
	ip := frame[p.L3Off:]
	al := p.AddrLen()
	s := header.PseudoHeaderChecksum(p.Proto, ip[srcOff:srcOff+al], ip[dstOff:dstOff+al], uint32(p.End-p.L4Off))
	binary.BigEndian.PutUint16(frame[p.L4Off+co:], s)
	return uint16(p.L4Off), uint16(co), true
}
