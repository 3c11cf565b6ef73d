package dataplane

import (
	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/modes"
)

// fullnatXmit is the FULLNAT (-b) transmitter. Mainline Linux has none; it
// is the FULLNAT of Alibaba's LVS patch and of DPVS (src/ipvs/ip_vs_xmit.c,
// dp_vs_xmit_fnat and dp_vs_out_xmit_fnat): a connection client CIP:cport →
// VIP:vport is sent on as LIP:lport → RIP:rport (the local address and
// port chosen at creation, fullnatLocal), its replies RIP:rport →
// LIP:lport go back as VIP:vport → CIP:cport, and related ICMP errors are
// translated at both ends of the tuple (modes.FullNATICMPIn/Out; DPVS's
// src/ipvs/ip_vs_core.c, xmit_inbound_icmp and xmit_outbound_icmp).
//
// A real server that is one of the director's addresses is not served:
// its replies, to a local address of the director, would stay in the
// director's stack and never reach uvsd. Such requests are dropped,
// counted as unsupported.
type fullnatXmit struct{}

func (fullnatXmit) request(w *Worker, pc *pktCtx, c *conntrack.Conn) {
	if pc.hop.Local {
		w.Counters.inc(CntUnsupported)
		return
	}
	csum, ok := w.csumState(pc)
	if !ok {
		return
	}
	p := pc.p
	r := modes.CheckMTU(p, pc.hop.MTU, pc.f.GSO.Size)
	if r.OK() {
		r = modes.FullNATRequest(pc.f.Data(), p, addrPort(&c.Local), addrPort(&c.Real), csum)
	}
	w.toHop(pc, r, csum)
}

func (fullnatXmit) reply(w *Worker, pc *pktCtx, c *conntrack.Conn) {
	csum, ok := w.csumState(pc)
	if !ok {
		return
	}
	r := modes.FullNATReply(pc.f.Data(), pc.p, addrPort(&c.Virtual), addrPort(&c.Client), csum)
	w.toClient(pc, c, r, csum)
}

// icmpIn: an error addressed to the VIP quoting VIP:vport → CIP:cport goes
// to the real server from LIP, quoting RIP:rport → LIP:lport.
func (fullnatXmit) icmpIn(w *Worker, pc *pktCtx, c *conntrack.Conn) {
	if pc.hop.Local {
		w.Counters.inc(CntUnsupported)
		return
	}
	r := modes.FullNATICMPIn(pc.f.Data(), pc.p, addrPort(&c.Local), addrPort(&c.Real))
	w.toHop(pc, r, modes.CsumComplete)
}

// icmpOut: an error addressed to LIP quoting LIP:lport → RIP:rport goes to
// the client from the VIP, quoting CIP:cport → VIP:vport, like a reply.
func (fullnatXmit) icmpOut(w *Worker, pc *pktCtx, c *conntrack.Conn) {
	r := modes.FullNATICMPOut(pc.f.Data(), pc.p, addrPort(&c.Virtual), addrPort(&c.Client))
	w.toClient(pc, c, r, modes.CsumComplete)
}
