package dataplane

import (
	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/snapshot"
	"github.com/uvs-lb/uvs/spec"
)

// Handing back what turns out not to be uvsd's.
//
// The ownership hooks (package ownership, "Frames that turn out not to be
// uvsd's") keep from the kernel two kinds of frames that may belong to
// nobody in uvsd:
//
//   - a datagram the worker reassembled (frag.go) that is not uvsd's once
//     whole: its fragments were owned by their addresses and protocol
//     alone (UDP to a VIP port without a service, an ICMP echo to a VIP,
//     a fragmented datagram to a FULLNAT local address from a port
//     outside the local range, one from a NAT real server that belongs to
//     no connection);
//   - a packet from a NAT real server's port (any port of the real
//     servers of a port-0 service) that belongs to no connection: traffic
//     the real server starts itself through the director, its default
//     gateway. IPVS lets the kernel have it: ip_vs_out
//     (net/netfilter/ipvs/ip_vs_core.c) finds no connection and returns
//     NF_ACCEPT (nat_icmp_send off, the default), and the kernel forwards
//     it.
//
// The worker hands such a packet to the director's own stack through
// Env.LocalNode, unchanged (the IP packet without its link header, a
// partial checksum completed, a GSO super-frame cut into its segments:
// the device carries no offload metadata), which is what the kernel would
// have received without the hooks, and counts it CntHandedBack. Without a
// LocalNode it is dropped, counted CntHandBackDrop.
//
// A frame the hooks did not keep (the coarse BPF fallback of afpacket
// accepts more than ownership, and the AF_PACKET sockets get copies)
// reached the kernel too: it is counted not-ours and dropped, never
// delivered again. Which frames were kept is decided from the ownership
// rules applied to the batch's snapshot and host facts: a reassembled
// datagram by the fragment rule (its addresses and protocol), a whole
// packet by the NAT reply rule. Known gaps: the NAT real servers of
// firewall-mark services are not recognised (the MARK rules' targets are
// not in the snapshot); a firewall-mark target counts as a VIP of every
// protocol.
//
// The address facts come from a snapshot.AddrIndex the worker rebuilds
// when the snapshot changes, on the first frame that needs it: frames
// that are uvsd's never pay for it.

// addrIndex returns the worker's address index for the batch's snapshot.
func (w *Worker) addrIndex(pc *pktCtx) *snapshot.AddrIndex {
	x := &w.addrs
	if x.For() != pc.snap {
		x.Build(pc.snap)
	}
	return x
}

// notOurs handles a TCP, UDP or SCTP packet that matched no connection
// and no service (tracked): handed back when the hooks kept it from the
// kernel, else counted not-ours.
func (w *Worker) notOurs(pc *pktCtx) {
	if w.keptL4(pc) {
		w.handBack(pc)
		return
	}
	w.Counters.inc(CntNotOurs)
}

// keptL4 reports whether the hooks kept the TCP, UDP or SCTP packet of pc
// from the kernel although no service or connection takes it.
func (w *Worker) keptL4(pc *pktCtx) bool {
	host, p := pc.host, pc.p
	if host.BackupOnly {
		return false // nothing is owned: the kernel has it all
	}
	x := w.addrIndex(pc)
	v6, proto := p.IPVersion == 6, spec.Proto(p.Proto)
	if pc.f.FragMax != 0 {
		// Its fragments were classified by addresses and protocol
		// (ownership: fragments).
		if x.ServiceAddr(p.Dst, v6, proto) || host.Marked[p.Dst] || x.Pool(p.Dst, v6) || w.routeSource(pc, x) {
			return true
		}
		return x.NATReal(p.Src, v6, proto) && !host.Local[p.Dst]
	}
	// A whole packet: a NAT reply outside any connection.
	return x.NATReply(p.Src, v6, proto, p.SrcPort) && !host.Local[p.Dst]
}

// routeSource reports whether the destination of pc is the source address
// of the route towards a FULLNAT real server of a service without a pool
// (the director's route sources, ownership.Input.RouteSources).
func (w *Worker) routeSource(pc *pktCtx, x *snapshot.AddrIndex) bool {
	rs := x.RoutedReals()
	if len(rs) == 0 {
		return false
	}
	dst := header.AddrFrom16(pc.p.Dst)
	if pc.p.IPVersion == 6 && dst.Is4() {
		return false // an IPv4-mapped address of an IPv6 packet
	}
	for _, a := range rs {
		if h, ok := w.env.Hops.Lookup(a); ok && h.Src.IsValid() && h.Src.Unmap() == dst {
			return true
		}
	}
	return false
}

// fragICMP handles a reassembled ICMP or ICMPv6 datagram that is not an
// error (an echo request, for one): its fragments were the director's
// when it is addressed to a VIP.
func (w *Worker) fragICMP(pc *pktCtx) {
	host := pc.host
	if !host.BackupOnly && (pc.snap.IsVIP(pc.p.Dst) || host.Marked[pc.p.Dst]) {
		w.handBack(pc)
	}
}

// handBack delivers the packet of pc to the director's own stack through
// Env.LocalNode as it came (see above), or drops it, counted, without
// one.
func (w *Worker) handBack(pc *pktCtx) {
	ln := w.env.LocalNode
	if ln == nil {
		w.Counters.inc(CntHandBackDrop)
		return
	}
	f, p := pc.f, pc.p
	if f.GSO.IsGSO() {
		w.handBackGSO(pc, ln)
		return
	}
	data := f.Data()
	if f.CsumPartial && !header.SetL4Checksum(data, p) {
		w.Counters.inc(CntRewriteFail)
		return
	}
	if ln.Deliver(data[p.L3Off:p.End]) != nil {
		w.Counters.inc(CntTxErr)
		return
	}
	w.Counters.inc(CntHandedBack)
}

// handBackGSO delivers a super-frame as the segments the sender's device
// would have put on the wire (modes.Segmenter, complete checksums), each
// written in turn at the end of the segment slab.
func (w *Worker) handBackGSO(pc *pktCtx, ln LocalNode) {
	f, p := pc.f, pc.p
	if !gsoMatches(f.GSO, p) {
		w.Counters.inc(CntGSOBad)
		return
	}
	sg := &w.seg
	if !sg.Init(f.Data(), p, int(f.GSO.Size), f.GSO.Type&gsoAccECN != 0) {
		w.Counters.inc(CntGSOBad)
		return
	}
	start := len(w.slab) - alignSeg(sg.MaxLen())
	if start < 0 {
		w.Counters.inc(CntGSOBad)
		return
	}
	if w.slabOff > start {
		w.flush() // the slab's segments are sent, its end is free
	}
	buf := w.slab[start:]
	for {
		n := sg.Next(buf)
		if n == 0 {
			return
		}
		w.Counters.inc(CntGSOSegment)
		if ln.Deliver(buf[p.L3Off:n]) != nil {
			w.Counters.inc(CntTxErr)
			continue
		}
		w.Counters.inc(CntHandedBack)
	}
}
