package header

import "encoding/binary"

// LooksPartial reports whether a parsed, unfragmented TCP or UDP packet
// looks like its sender left the L4 checksum to offload (CHECKSUM_PARTIAL)
// when the receive path cannot say so (AF_XDP has no skb metadata): the
// checksum field holds exactly the folded, non-complemented pseudo-header
// sum, and the checksum does not verify.
//
// That is what Linux writes before handing such a packet on: th->check =
// ~tcp_v4_check(len, saddr, daddr, 0) in __tcp_v4_send_check,
// ~csum_tcpudp_magic(...) in udp4_hwcsum, ~csum_ipv6_magic(...) for IPv6,
// and ~csum_fold(s) is the folded sum s. A folded non-zero sum is never 0,
// so a UDP checksum of 0 ("none") never looks partial. A complete checksum
// that happens to equal the pseudo-header sum verifies, so it is not taken
// for a partial one.
func LooksPartial(frame []byte, p *Parsed) bool {
	if p.Proto != ProtoTCP && p.Proto != ProtoUDP {
		return false
	}
	co := L4ChecksumOffset(p.Proto)
	if p.L4Off+co+2 > p.End || p.End > len(frame) {
		return false
	}
	field := binary.BigEndian.Uint16(frame[p.L4Off+co:])
	if field != pseudoFromFrame(frame, p, uint32(p.End-p.L4Off)) {
		return false
	}
	return !L4ChecksumValid(frame, p)
}
