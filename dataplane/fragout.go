package dataplane

import (
	"encoding/binary"
	"math/rand/v2"

	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/modes"
	"github.com/uvs-lb/uvs/spec"
)

// The egress MTU, as a router applies it (issue #16).
//
// Requests: the transmitters check the packet as received against the
// next hop's MTU before rewriting it (checkMTU: ensure_mtu_is_adequate in
// net/netfilter/ipvs/ip_vs_xmit.c), so that the ICMP fragmentation-needed
// (ICMPv6 packet too big) quotes what the sender sent. A packet that
// passes and still exceeds the MTU once rewritten — IPv4 without DF, an
// ICMP error, a datagram reassembled from fragments, an encapsulated one —
// is fragmented in software on the way out (output): IPVS sets ignore_df
// on what it transmits ("avoid icmp_send in ip_fragment") and
// ip_finish_output fragments it (ip_do_fragment, ip6_fragment).
//
// Replies (NAT and FULLNAT, real server to client): the kernel forwards
// them, and ip_forward (net/ipv4/ip_forward.c: ip_exceeds_mtu; ip6_forward
// with ip6_pkt_too_big) checks the packet as received against the route
// to the client before IPVS rewrites it. replyFits does the same before
// the transmitter's reply; a reply that passes and exceeds the MTU (IPv4
// without DF, a reassembled datagram) is fragmented by output.
//
// A datagram the worker reassembled (Frame.FragMax, frag_max_size) leaves
// in fragments of no more than the largest it arrived in, and is refused
// only when that fragment exceeds the MTU. GSO super-frames are checked
// per segment (skb_gso_validate_network_len); one whose segments exceed
// the MTU and may be fragmented is cut into segments and each segment
// fragmented (ip_finish_output_gso).
//
// Fragments go to the worker's segment slab, like software GSO segments
// (offload.go); nothing is allocated.

// checkMTU is the transmitters' MTU check of the frame of pc, as received,
// against mtu (the next hop's, or what is left of it after an
// encapsulation): modes.CheckMTUFrag with the frame's GSO size and
// FragMax.
func (w *Worker) checkMTU(pc *pktCtx, mtu int) modes.Result {
	return modes.CheckMTUFrag(pc.p, mtu, pc.f.GSO.Size, int(pc.f.FragMax))
}

// output queues the rewritten frame of pc on the next hop h: whole when
// it fits h.MTU (and FragMax), else fragmented (fragment). ignoreDF is set
// for what IPVS transmits (requests and the errors related to them: the
// transmitters checked DF before the rewrite), clear for forwarded
// replies.
func (w *Worker) output(pc *pktCtx, h *Hop, ignoreDF bool) {
	w.outputFrame(pc.f, pc.p, h, ignoreDF)
}

// outputFrame is output for a rewritten frame f parsed into p (as far as
// its L4 header and GSO go: a frame the neighbour queue kept, with the
// parse it kept).
func (w *Worker) outputFrame(f *Frame, p *header.Parsed, h *Hop, ignoreDF bool) {
	if limit := fragLimit(f, h.MTU); oversize(f, p, limit) {
		w.fragment(f, p, h, limit, ignoreDF)
		return
	}
	w.transmit(f, &h.DstMAC, &h.SrcMAC, h.Ifindex)
}

// fragLimit returns the largest IP packet f may leave as on a link of the
// given MTU (0: unknown): the MTU, or the largest fragment f was
// reassembled from when that is smaller (ip_do_fragment and ip6_fragment
// lower the MTU to frag_max_size).
func fragLimit(f *Frame, mtu int) int {
	if fm := int(f.FragMax); fm > 0 && (mtu <= 0 || fm < mtu) {
		return fm
	}
	return mtu
}

// oversize reports whether the IP packet in f exceeds limit (0: no
// limit); a GSO super-frame (parsed into p) is measured by its largest
// segment.
func oversize(f *Frame, p *header.Parsed, limit int) bool {
	if limit <= 0 || f.Len-header.EthernetMinSize <= limit {
		return false
	}
	data := f.Data()
	l3 := l3Of(data)
	n := ipLen(data, l3)
	if f.GSO.IsGSO() {
		n = min(n, p.PayloadOff-p.L3Off+int(f.GSO.Size))
	}
	return n > limit
}

// l3Of returns the offset of the IP header in an Ethernet frame: after
// the MAC addresses, an 802.1Q tag if there is one, and the EtherType.
// (Read from the frame, not from a parse: after an encapsulation the
// parse describes the inner packet.)
func l3Of(data []byte) int {
	if len(data) >= header.EthernetMinSize+4 && binary.BigEndian.Uint16(data[header.EthernetTypeOff:]) == header.EtherTypeVLAN {
		return header.EthernetMinSize + 4
	}
	return header.EthernetMinSize
}

// ipLen returns the length of the IP packet at data[l3:] as its header
// states it (0 when it is not IPv4 or IPv6).
func ipLen(data []byte, l3 int) int {
	if len(data) < l3+header.IPv4MinSize {
		return 0
	}
	switch data[l3] >> 4 {
	case 4:
		return int(binary.BigEndian.Uint16(data[l3+header.IPv4TotalLenOff:]))
	case 6:
		if len(data) >= l3+header.IPv6Size {
			return header.IPv6Size + int(binary.BigEndian.Uint16(data[l3+header.IPv6PayloadLenOff:]))
		}
	}
	return 0
}

// fragment sends f (parsed into p), which exceeds limit, in fragments to h,
// or drops it (CntTooBig) when it may not be fragmented: IPv4 with DF
// forwarded (ip_fragment sends no fragments then), IPv6 not reassembled
// here and not transmitted by IPVS, a super-frame of IPv6 (ip6_finish_output
// does not fragment GSO).
func (w *Worker) fragment(f *Frame, p *header.Parsed, h *Hop, limit int, ignoreDF bool) {
	if f.GSO.IsGSO() {
		w.fragmentGSO(f, p, h, limit, ignoreDF)
		return
	}
	if f.CsumPartial {
		// Left partial (CsumKeepPartial) for the device: fragments carry
		// no offload, so complete it. The parse describes the frame (an
		// encapsulation completes the checksum itself).
		if !header.SetL4Checksum(f.Data(), p) {
			w.Counters.inc(CntRewriteFail)
			return
		}
		f.CsumPartial = false
	}
	if !w.sendFragments(f, limit, ignoreDF, h) {
		w.Counters.inc(CntTooBig)
	}
}

// sendFragments fragments the IP packet in f (a complete L4 checksum, no
// GSO) into packets of at most mtu bytes and queues each to h (counted
// CntFragmented once, CntFragOut per fragment). ignoreDF allows an IPv4
// packet with DF, and an IPv6 packet, to be fragmented (IPVS's
// ignore_df); without it only non-DF IPv4 and a datagram reassembled here
// (f.FragMax, whose DF, if set, the fragments keep: IPSKB_FRAG_PMTU) are.
// IPv6 fragments get a random identification, as ipv6_select_ident's
// hash would. It reports false, sending nothing, when f may not or cannot
// be fragmented.
//
// It is the one fragmentation entry point of the transmitters: a tunnel
// transmitter calls it with the outer packet and the path MTU.
func (w *Worker) sendFragments(f *Frame, mtu int, ignoreDF bool, h *Hop) bool {
	data := f.Data()
	l3 := l3Of(data)
	if len(data) <= l3 {
		return false
	}
	reassembled := f.FragMax > 0
	var fr modes.Fragmenter
	switch data[l3] >> 4 {
	case 4:
		if len(data) < l3+header.IPv4MinSize {
			return false
		}
		df := binary.BigEndian.Uint16(data[l3+header.IPv4FlagsFragOff:])&header.IPv4FlagDF != 0
		if df && !ignoreDF && !reassembled {
			return false
		}
		if !fr.InitIPv4(data, l3, mtu, reassembled) {
			return false
		}
	case 6:
		if !ignoreDF && !reassembled {
			return false
		}
		if !fr.InitIPv6(data, l3, mtu, rand.Uint32()) {
			return false
		}
	default:
		return false
	}
	need := fragNeed(&fr)
	if need > len(w.slab) {
		return false
	}
	w.Counters.inc(CntFragmented)
	w.queueFragments(&fr, f, h, len(w.slab), need)
	return true
}

// fragNeed returns the slab space of one fragment of fr: headroom (for a
// VLAN tag the backend inserts) and the longest fragment, aligned.
func fragNeed(fr *modes.Fragmenter) int { return alignSeg(segHeadroom + fr.MaxLen()) }

// alignSeg rounds a slab allocation up to segAlign.
func alignSeg(n int) int { return (n + segAlign - 1) &^ (segAlign - 1) }

// queueFragments writes the fragments of fr into w.slab[:slabEnd], need
// bytes each (fragNeed) with segHeadroom in front, and queues them to h as
// frames like f (its VLAN; no offload), flushing when the slab or the
// output batch is full.
func (w *Worker) queueFragments(fr *modes.Fragmenter, f *Frame, h *Hop, slabEnd, need int) {
	tmpl := *f
	tmpl.GSO, tmpl.CsumPartial, tmpl.CsumUnknown, tmpl.CsumStart, tmpl.CsumOffset, tmpl.FragMax = GSO{}, false, false, 0, 0, 0
	for {
		if slabEnd-w.slabOff < need || len(w.out) == cap(w.out) {
			w.flush()
		}
		buf := w.slab[w.slabOff : w.slabOff+need]
		n := fr.Next(buf[segHeadroom:])
		if n == 0 {
			return
		}
		w.slabOff += need
		frag := tmpl // the frame's VLAN and backend flags
		frag.Buf, frag.Off, frag.Len = buf, segHeadroom, n
		w.transmit(&frag, &h.DstMAC, &h.SrcMAC, h.Ifindex)
		w.Counters.inc(CntFragOut)
	}
}

// fragmentGSO cuts a super-frame whose segments exceed limit into
// segments (modes.Segmenter, complete checksums) and fragments each, as
// ip_finish_output_gso does. Each segment is written at the end of the
// slab, its fragments in front of it.
func (w *Worker) fragmentGSO(f *Frame, p *header.Parsed, h *Hop, limit int, ignoreDF bool) {
	if p.IPVersion != 4 || (p.DF && !ignoreDF) {
		w.Counters.inc(CntTooBig)
		return
	}
	sg := &w.seg
	if !sg.Init(f.Data(), p, int(f.GSO.Size), f.GSO.Type&gsoAccECN != 0) {
		w.Counters.inc(CntGSOBad)
		return
	}
	end := len(w.slab) - alignSeg(sg.MaxLen())
	if end <= 0 {
		w.Counters.inc(CntGSOBad)
		return
	}
	src := w.slab[end:]
	for first := true; ; first = false {
		if w.slabOff > end {
			w.flush()
		}
		n := sg.Next(src)
		if n == 0 {
			return
		}
		w.Counters.inc(CntGSOSegment)
		var fr modes.Fragmenter
		if !fr.InitIPv4(src[:n], l3Of(src), limit, false) {
			w.Counters.inc(CntTooBig)
			return
		}
		need := fragNeed(&fr)
		if need > end {
			w.Counters.inc(CntTooBig)
			return
		}
		if first {
			w.Counters.inc(CntFragmented)
		}
		w.queueFragments(&fr, f, h, end, need)
	}
}

// replyFits applies the forwarding path's MTU check to a reply of a NAT
// or FULLNAT connection c, as received, before its transmitter rewrites
// it: towards the client's next hop, an IPv4 packet with DF or an IPv6
// packet that exceeds the MTU (per segment, or by its largest fragment)
// is answered with an ICMP fragmentation needed (packet too big) to the
// real server and dropped (ip_forward / ip6_forward). It reports whether
// to go on. A reply whose next hop is not resolved yet, or that changes
// address family (FULLNAT across families), is not checked here; output
// still fragments what may be fragmented.
func (w *Worker) replyFits(pc *pktCtx, c *conntrack.Conn) bool {
	if c.Fwd != spec.FwdMasq && c.Fwd != spec.FwdFullNAT {
		return true
	}
	if header.AddrFrom16(c.Client.Addr).Is4() != (pc.p.IPVersion == 4) {
		return true
	}
	mtu := w.clientMTU(pc, c)
	r := w.checkMTU(pc, mtu)
	if r.OK() {
		return true
	}
	w.Counters.inc(CntTooBig)
	w.sendICMP(pc, icmpFragNeeded, r.MTU)
	return false
}

// clientMTU returns the MTU towards connection c's client as clientHop
// (route.go) reaches it, without its side effects (0: not known yet): the
// route's next hop when resolved, else the interface the connection came
// in by. (A client on a VLAN is reached by that interface, whose MTU is
// its parent's, as the route's normally is.)
func (w *Worker) clientMTU(pc *pktCtx, c *conntrack.Conn) int {
	var h Hop // from the next-hop cache, as clientHop will take it (hopcache.go)
	if (c.VLAN == 0 || c.MAC == ([6]byte{})) && w.clientRoute(c, header.AddrFrom16(c.Client.Addr), &h) && !h.Local {
		return h.MTU
	}
	if c.MAC != ([6]byte{}) {
		return pc.host.Ifaces[int(c.Ifindex)].MTU
	}
	return 0
}
