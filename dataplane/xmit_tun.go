package dataplane

import (
	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/modes"
	"github.com/uvs-lb/uvs/spec"
)

// tunXmit is the tunnelling (-i) transmitter: the packet is encapsulated
// in IPIP, or GUE or GRE when the destination says so (--tun-type, with
// --tun-csum), under an outer IPv4 header or, for an IPv6 real server, an
// outer IPv6 one, towards the real server (net/netfilter/ipvs/ip_vs_xmit.c,
// ip_vs_tunnel_xmit, ip_vs_tunnel_xmit_v6). The path MTU is the route's,
// lowered by ICMP errors about the director's tunnelled packets
// (tunicmp.go). A GSO super-frame
// is cut into segments first (tunnelGSO, see offload.go). A real server
// that is one of the director's addresses gets the packet unchanged, not
// encapsulated, through the director's own stack (toLocal), as from
// ip_vs_tunnel_xmit.
type tunXmit struct{ directXmit }

func (tunXmit) request(w *Worker, pc *pktCtx, c *conntrack.Conn) {
	csum, ok := w.csumState(pc)
	if !ok {
		return
	}
	if pc.hop.Local {
		w.toLocal(pc, csum)
		return
	}
	f, p := pc.f, pc.p
	t := modes.Tunnel{Src: pc.hop.Src, Dst: header.AddrFrom16(c.Real.Addr), MTU: w.tunnelMTU(pc, &c.Real.Addr)}
	cfg := c.Dest.Config()
	switch cfg.TunType {
	case spec.TunGUE:
		t.GUEPort = cfg.TunPort
		t.GUESrcPort = modes.FlowSourcePort(p)
		t.Csum = cfg.TunCsum&spec.TunCsumOn != 0
	case spec.TunGRE:
		t.GRE = true
		t.Csum = cfg.TunCsum&spec.TunCsumOn != 0
	}
	// Output fragments what exceeds the route's MTU, the learnt one
	// included (ip_local_out on the route to the real server).
	pc.hop.MTU = t.MTU
	if !t.Outer6() && (p.Kind != header.KindIPv4 || !p.DF) {
		// An outer IPv4 header without DF gets an identification
		// (ip_select_ident → __ip_select_ident); with DF it is 0.
		t.ID = w.tunIDs.next(&c.Real.Addr, header.ProtoIPIP)
	}
	if f.GSO.IsGSO() {
		w.tunnelGSO(pc, &t)
		return
	}
	off, n, r := modes.Encap(f.Buf, f.Off, f.Len, p, &t, csum)
	if r.OK() {
		f.Off, f.Len = off, n
		f.CsumPartial = false // completed by Encap
	}
	w.toHop(pc, r, csum)
}

// icmpIn forwards the error encapsulated, as ip_vs_in_icmp does
// (ip_vs_icmp_xmit calls cp->packet_xmit).
func (x tunXmit) icmpIn(w *Worker, pc *pktCtx, c *conntrack.Conn) { x.request(w, pc, c) }

// tunnelGSO cuts the super-frame of pc into segments and encapsulates
// each towards the real server through pc.hop. The first segment decides
// for all (TTL, MTU): a failure there is reported once, about the
// super-frame.
func (w *Worker) tunnelGSO(pc *pktCtx, t *modes.Tunnel) {
	f := pc.f
	sg := &w.seg
	if !sg.Init(f.Data(), pc.p, int(f.GSO.Size), f.GSO.Type&gsoAccECN != 0) {
		w.Counters.inc(CntGSOBad)
		return
	}
	need := (segHeadroom + sg.MaxLen() + segAlign - 1) &^ (segAlign - 1)
	if need > len(w.slab) {
		w.Counters.inc(CntGSOBad)
		return
	}
	hop := &pc.hop
	for i := 0; ; i++ {
		if len(w.slab)-w.slabOff < need || len(w.out) == cap(w.out) {
			w.flush()
		}
		buf := w.slab[w.slabOff : w.slabOff+need]
		n := sg.Next(buf[segHeadroom:])
		if n == 0 {
			return
		}
		sp := &w.sp
		sp.Parse(buf[segHeadroom : segHeadroom+n])
		off, m, r := modes.Encap(buf, segHeadroom, n, sp, t, modes.CsumComplete)
		if !r.OK() {
			if i == 0 {
				w.verdict(pc, r)
			} else {
				w.Counters.inc(CntRewriteFail)
			}
			return
		}
		w.slabOff += need
		seg := Frame{Buf: buf, Off: off, Len: m}
		w.transmit(&seg, &hop.DstMAC, &hop.SrcMAC, hop.Ifindex)
		w.Counters.inc(CntGSOSegment)
	}
}
