package dataplane

import (
	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/modes"
)

// natXmit is the NAT (masquerading, -m) transmitter: the destination
// becomes the real server on the way in (net/netfilter/ipvs/ip_vs_xmit.c,
// ip_vs_nat_xmit) and the source the VIP on the way out
// (net/netfilter/ipvs/ip_vs_core.c, handle_response); related ICMP errors
// are translated alike (ip_vs_core.c, ip_vs_in_icmp and ip_vs_out_icmp,
// through ip_vs_nat_icmp).
type natXmit struct{}

func (natXmit) request(w *Worker, pc *pktCtx, c *conntrack.Conn) {
	csum, ok := w.csumState(pc)
	if !ok {
		return
	}
	p := pc.p
	r := modes.CheckMTU(p, pc.hop.MTU, pc.f.GSO.Size)
	if r.OK() {
		r = modes.NATRequest(pc.f.Data(), p, addrPort(&c.Real), csum)
	}
	w.toHop(pc, r, csum)
}

func (natXmit) reply(w *Worker, pc *pktCtx, c *conntrack.Conn) {
	csum, ok := w.csumState(pc)
	if !ok {
		return
	}
	w.toClient(pc, c, modes.NATReply(pc.f.Data(), pc.p, addrPort(&c.Virtual), csum), csum)
}

// icmpIn: the error quotes VIP:vport → client; it goes to the real server
// as if about RIP:rport → client.
func (natXmit) icmpIn(w *Worker, pc *pktCtx, c *conntrack.Conn) {
	w.toHop(pc, modes.NATICMPIn(pc.f.Data(), pc.p, addrPort(&c.Real)), modes.CsumComplete)
}

// icmpOut: the error quotes client → RIP:rport; it goes to the client as if
// about client → VIP:vport, from the VIP.
func (natXmit) icmpOut(w *Worker, pc *pktCtx, c *conntrack.Conn) {
	w.toClient(pc, c, modes.NATICMPOut(pc.f.Data(), pc.p, addrPort(&c.Virtual)), modes.CsumComplete)
}
