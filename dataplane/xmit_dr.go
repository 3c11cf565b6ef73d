package dataplane

import (
	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/modes"
)

// directXmit holds what the methods whose replies bypass the director
// (DR, TUN) share.
type directXmit struct{}

// reply: the real server answers the client directly; a reply seen here
// (a local real server, a shared segment) is left to the kernel.
func (directXmit) reply(w *Worker, _ *pktCtx, _ *conntrack.Conn) { w.Counters.inc(CntNotOurs) }

// icmpOut: an error from the real server's side is the kernel's
// (ip_vs_out_icmp accepts it for methods other than NAT).
func (directXmit) icmpOut(*Worker, *pktCtx, *conntrack.Conn) {}

// drXmit is the direct-routing (-g) transmitter: the packet goes to the
// real server's MAC unchanged but for its TTL
// (net/netfilter/ipvs/ip_vs_xmit.c, ip_vs_dr_xmit). A real server that is
// one of the director's addresses gets the packet unchanged through the
// director's own stack (toLocal), as from ip_vs_dr_xmit (and
// ip_vs_null_xmit, the LOCALNODE method, which also binds drXmit here).
type drXmit struct{ directXmit }

func (drXmit) request(w *Worker, pc *pktCtx, _ *conntrack.Conn) {
	csum, ok := w.csumState(pc)
	if !ok {
		return
	}
	if pc.hop.Local {
		w.toLocal(pc, csum)
		return
	}
	p, data := pc.p, pc.f.Data()
	r := w.checkMTU(pc, pc.hop.MTU)
	if r.OK() {
		if csum == modes.CsumPartial {
			header.SetL4Checksum(data, p)
		}
		r = modes.DR(data, p, pc.hop.DstMAC, pc.hop.SrcMAC)
	}
	w.toHop(pc, r, csum)
}

// icmpIn forwards the error unchanged through the transmitter, as
// ip_vs_in_icmp does for every method but NAT (ip_vs_icmp_xmit calls
// cp->packet_xmit).
func (x drXmit) icmpIn(w *Worker, pc *pktCtx, c *conntrack.Conn) { x.request(w, pc, c) }
