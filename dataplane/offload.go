package dataplane

import (
	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/modes"
)

// Offloads in the worker (issue 8).
//
// A backend with Frame.Offload (AF_PACKET with PACKET_VNET_HDR) hands the
// worker TCP and UDP GSO super-frames of up to 64 KB and partial checksums
// with their csum_start/csum_offset. The worker rewrites a super-frame once
// (NAT, FULLNAT: addresses, ports, TTL, IPv4 header checksum; DR: TTL and
// MACs) and sends it on with the same GSO metadata, so the egress device
// (or the kernel's software GSO in front of it) cuts it into segments. A
// partial checksum stays partial: the pseudo-header sum in the field is
// updated for the changed addresses (modes.CsumKeepPartial) and the
// kernel or the device completes it. The MTU check applies to the
// segments (modes.CheckMTU with the GSO size).
//
// TUN cannot pass a super-frame on: IPIP (or GUE) around a GSO frame has no
// virtio_net_hdr GSO type that AF_PACKET takes, and the real server's
// decapsulator may be a raw socket that must receive complete packets.
// Measured on Linux 6.18 (AF_PACKET, PACKET_VNET_HDR, veth): a TCPV4
// super-frame inside IPIP or GUE, csum_start at the inner TCP header, is
// refused by sendmsg with ENOMEM (the skb lacks SKB_GSO_IPXIP4 or
// SKB_GSO_UDP_TUNNEL, which virtio_net_hdr_to_skb cannot set, so its
// software segmentation fails: ipip_gso_segment, udp4_ufo_fragment); the
// UDP-tunnel GSO bits (VIRTIO_NET_HDR_GSO_UDP_TUNNEL_IPV4, 0x20) give
// EINVAL (packet_snd uses virtio_net_hdr_to_skb, not the tunnel variant
// tun and virtio-net use), and PACKET_VNET_HDR_SZ takes only 10 or 12,
// not the 24-byte virtio_net_hdr_v1_hash_tunnel; the same plain TCPV4
// super-frame is delivered whole. The real server's uvs-rs coalesces
// the segments again (realserver/gro.go). The worker therefore cuts the
// super-frame in software (modes.Segmenter) into segments with complete
// checksums, in a per-worker slab, and encapsulates each; the slab and the
// output batch are flushed early when full, so nothing is allocated.

const (
	// segSlabSize is the per-worker buffer for software segments: about
	// four 64 KB super-frames' worth of MTU-sized segments between flushes.
	segSlabSize = 256 << 10
	// segHeadroom is reserved in front of each segment for the tunnel
	// header (GUE: 32 bytes).
	segHeadroom = 64
	// segAlign keeps segments cache-line aligned in the slab.
	segAlign = 64
)

// csumState checks the offload metadata of the frame of pc against its
// parse and says how the rewrite must treat its L4 checksum. A
// super-frame without a usable partial checksum gets one
// (modes.SeedPartial): segmentation needs it. ok is false, and CntGSOBad
// counted, for a super-frame whose GSO type does not match its headers,
// which is dropped.
func (w *Worker) csumState(pc *pktCtx) (modes.Csum, bool) {
	f, p := pc.f, pc.p
	if f.GSO.IsGSO() {
		if !gsoMatches(f.GSO, p) {
			w.Counters.inc(CntGSOBad)
			return modes.CsumComplete, false
		}
		if !f.CsumPartial || !partialAt(f, p) {
			start, off, ok := modes.SeedPartial(f.Data(), p)
			if !ok {
				w.Counters.inc(CntGSOBad)
				return modes.CsumComplete, false
			}
			f.CsumPartial, f.CsumStart, f.CsumOffset = true, start, off
		}
		return modes.CsumKeepPartial, true
	}
	switch {
	case !f.CsumPartial:
		return modes.CsumComplete, true
	case f.Offload && partialAt(f, p):
		return modes.CsumKeepPartial, true
	}
	return modes.CsumPartial, true
}

// partialAt reports whether the frame's partial checksum is the L4
// checksum of the parsed packet.
func partialAt(f *Frame, p *header.Parsed) bool {
	co := header.L4ChecksumOffset(p.Proto)
	return co >= 0 && int(f.CsumStart) == p.L4Off && int(f.CsumOffset) == co
}

// gsoMatches reports whether a GSO description fits the parsed packet.
func gsoMatches(g GSO, p *header.Parsed) bool {
	if g.Size == 0 || p.Reason != header.ReasonNone {
		return false
	}
	switch g.Type.Kind() {
	case GSOTCPv4:
		return p.IPVersion == 4 && p.Proto == header.ProtoTCP
	case GSOTCPv6:
		return p.IPVersion == 6 && p.Proto == header.ProtoTCP
	case GSOUDPL4:
		return p.Proto == header.ProtoUDP
	}
	return false
}

// sent updates a rewritten frame's offload state before it is queued: a
// checksum the rewrite completed in software is no longer partial.
func (w *Worker) sent(f *Frame, csum modes.Csum) {
	if csum == modes.CsumPartial {
		f.CsumPartial = false
	}
	if f.GSO.IsGSO() {
		w.Counters.inc(CntGSO)
	}
}

// gsoAccECN is VIRTIO_NET_HDR_GSO_ACCECN: segments keep TCP CWR.
const gsoAccECN GSOType = 0x10
