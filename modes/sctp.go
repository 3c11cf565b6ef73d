package modes

import (
	"encoding/binary"
	"net/netip"

	"github.com/uvs-lb/uvs/header"
)

// translateSCTP is translate for SCTP: the addresses, ports and TTL as for
// TCP and UDP, but SCTP has no pseudo-header (RFC 9260 section 6.8): the
// CRC32c covers the SCTP packet alone, so only a changed port needs it
// recomputed, as sctp_snat_handler / sctp_dnat_handler
// (ip_vs_proto_sctp.c) recompute it "only if we really have to": the port
// changed, or the sender left the checksum to offload (csum not
// CsumComplete; the field then holds nothing to keep, and the frame leaves
// with a complete CRC — the caller clears its partial flag).
//
// The kernel recomputes without looking at the old value (sctp_csum_check
// runs only for an application helper, which SCTP never has), which would
// give a corrupted packet a valid CRC. Here the old error is carried over:
// the new field is the new packet's CRC32c xor (old field xor old packet's
// CRC32c). CRC32c is affine, so a packet that verified leaves verifying —
// the kernel's result, bit for bit — and one that did not leaves not
// verifying, for the receiver to drop as it would have. A packet whose
// ports stay is not read at all.
func translateSCTP(frame []byte, p *header.Parsed, setSrc bool, src netip.AddrPort, setDst bool, dst netip.AddrPort, csum Csum) Result {
	if (setSrc && !familyOK(p, src.Addr())) || (setDst && !familyOK(p, dst.Addr())) {
		return verdict(Unsupported)
	}
	if p.L4Off+header.SCTPHeaderSize > p.End {
		return verdict(Unsupported)
	}
	if p.TTL <= 1 {
		return verdict(TTLExceeded)
	}
	v := p.IPVersion
	ip := frame[p.L3Off:p.End]
	l4 := frame[p.L4Off:p.End]
	srcOff, dstOff := ipOffsets(v)
	alen := p.AddrLen()
	sport, dport := binary.BigEndian.Uint16(l4[0:]), binary.BigEndian.Uint16(l4[2:])
	recompute := csum != CsumComplete || (setSrc && sport != src.Port()) || (setDst && dport != dst.Port())
	var syndrome uint32
	if recompute && csum == CsumComplete {
		syndrome = header.SCTPStoredChecksum(l4) ^ header.SCTPChecksum(l4)
	}
	var ipDelta uint32
	var nb [16]byte
	if setSrc {
		na := addrBytes(&nb, src.Addr())
		old := ip[srcOff : srcOff+alen]
		ipDelta = header.DeltaBytes(ipDelta, old, na)
		copy(old, na)
		binary.BigEndian.PutUint16(l4[0:], src.Port())
		setAddr(&p.Src, na)
		p.SrcPort = src.Port()
	}
	if setDst {
		na := addrBytes(&nb, dst.Addr())
		old := ip[dstOff : dstOff+alen]
		ipDelta = header.DeltaBytes(ipDelta, old, na)
		copy(old, na)
		binary.BigEndian.PutUint16(l4[2:], dst.Port())
		setAddr(&p.Dst, na)
		p.DstPort = dst.Port()
	}
	ipDelta = decTTL(ip, v, ipDelta)
	p.TTL--
	if v == 4 {
		ih := header.IPv4(ip)
		ih.SetChecksum(header.ApplyDelta(ih.Checksum(), ipDelta))
	}
	if recompute {
		header.SetSCTPChecksum(l4, header.SCTPChecksum(l4)^syndrome)
	}
	return verdict(OK)
}
