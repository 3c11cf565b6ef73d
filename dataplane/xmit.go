package dataplane

import (
	"net/netip"

	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/modes"
	"github.com/uvs-lb/uvs/spec"
)

// Transmitters.
//
// The kernel binds a transmitter to each connection when it creates it
// (ip_vs_bind_xmit in net/netfilter/ipvs/ip_vs_conn.c sets cp->packet_xmit
// from the forwarding method: ip_vs_nat_xmit, ip_vs_tunnel_xmit,
// ip_vs_dr_xmit, ip_vs_null_xmit for local nodes, ip_vs_bypass_xmit) and
// sends the connection's requests, and the ICMP errors related to them,
// through it (ip_vs_in, ip_vs_in_icmp → ip_vs_icmp_xmit). Replies and the
// errors about requests come back through handle_response and
// ip_vs_out_icmp (net/netfilter/ipvs/ip_vs_core.c), which only NAT needs
// in the kernel. Here one xmitter per forwarding method holds all four
// paths, so each method is in one place (xmit_nat.go, xmit_fullnat.go,
// xmit_dr.go, xmit_tun.go); a connection's is xmitFor(c.Fwd), the method
// fixed when it was created. A request whose next hop is Local (the real
// server is one of the director's addresses) is delivered to the
// director's own stack by toLocal instead: unchanged for DR and TUN,
// after the DNAT rewrite for NAT, as the kernel's transmitters do when
// the route to the real server is local; FULLNAT drops it.

// xmitter is a forwarding method's transmitter. Its methods handle the
// frame of pc, a packet of connection c, and count what they drop.
type xmitter interface {
	// request sends a client's packet (DirIn) to the real server through
	// pc.hop.
	request(w *Worker, pc *pktCtx, c *conntrack.Conn)
	// reply sends a real server's packet (DirOut) to the client.
	reply(w *Worker, pc *pktCtx, c *conntrack.Conn)
	// icmpIn sends an ICMP error from the client's side, about a packet
	// the director sent the client, to the real server through pc.hop.
	icmpIn(w *Worker, pc *pktCtx, c *conntrack.Conn)
	// icmpOut sends an ICMP error from the real server's side, about a
	// packet the director sent the real server, to the client.
	icmpOut(w *Worker, pc *pktCtx, c *conntrack.Conn)
}

// xmitters is indexed by spec.Fwd: the transmitter each forwarding method
// binds (ip_vs_bind_xmit). Cache bypass has none here.
var xmitters = [...]xmitter{
	spec.FwdMasq:    natXmit{},
	spec.FwdLocal:   drXmit{},
	spec.FwdTunnel:  tunXmit{},
	spec.FwdRoute:   drXmit{},
	spec.FwdBypass:  noXmit{},
	spec.FwdFullNAT: fullnatXmit{},
}

// xmitFor returns the transmitter of forwarding method fwd.
func xmitFor(fwd spec.Fwd) xmitter {
	if int(fwd) < len(xmitters) {
		return xmitters[fwd]
	}
	return noXmit{}
}

// noXmit is the transmitter of a method the data plane does not forward.
type noXmit struct{}

func (noXmit) request(w *Worker, _ *pktCtx, _ *conntrack.Conn) { w.Counters.inc(CntUnsupported) }
func (noXmit) reply(w *Worker, _ *pktCtx, _ *conntrack.Conn)   { w.Counters.inc(CntNotOurs) }
func (noXmit) icmpIn(w *Worker, _ *pktCtx, _ *conntrack.Conn)  { w.Counters.inc(CntUnsupported) }
func (noXmit) icmpOut(*Worker, *pktCtx, *conntrack.Conn)       {}

// toReal sends the frame of pc towards connection c's real server with
// its transmitter's request (kind pendRequest) or icmpIn (pendICMPIn),
// or queues it until the next hop resolves.
func (w *Worker) toReal(pc *pktCtx, c *conntrack.Conn, kind pendKind) {
	real := header.AddrFrom16(c.Real.Addr)
	if !w.hop(real, &pc.hop) {
		if e := w.enqueue(pc, kind, real); e != nil {
			e.c = *c
		}
		return
	}
	if kind == pendICMPIn {
		xmitFor(c.Fwd).icmpIn(w, pc, c)
		return
	}
	xmitFor(c.Fwd).request(w, pc, c)
}

// toLocal delivers the packet of pc, its IP packet without the link-layer
// header, to the director's own stack through Env.LocalNode: the real
// server is one of the director's addresses (pc.hop.Local, LOCALNODE). The
// kernel's transmitters let such a packet continue to local input
// (ip_vs_send_or_cont with local set, net/netfilter/ipvs/ip_vs_xmit.c)
// without the TTL decrement and MTU check of a transmitted one
// (__ip_vs_get_out_rt returns before them for a local route). The local
// stack verifies the L4 checksum, and the device passes no offload
// metadata: a partial checksum (csum not CsumComplete) is completed first,
// over the whole of a GSO super-frame, which is delivered as one packet.
// Without a LocalNode the packet is dropped, counted as unsupported.
func (w *Worker) toLocal(pc *pktCtx, csum modes.Csum) {
	ln := w.env.LocalNode
	if ln == nil {
		w.Counters.inc(CntUnsupported)
		return
	}
	data, p := pc.f.Data(), pc.p
	if csum != modes.CsumComplete {
		header.SetL4Checksum(data, p)
	}
	if ln.Deliver(data[p.L3Off:p.End]) != nil {
		w.Counters.inc(CntTxErr)
		return
	}
	w.Counters.inc(CntTx)
	w.Counters.inc(CntLocalDelivered)
	if pc.f.GSO.IsGSO() {
		w.Counters.inc(CntGSO)
	}
}

// related relates an ICMP error to a connection and hands it to the
// connection's transmitter (net/netfilter/ipvs/ip_vs_core.c, ip_vs_in_icmp
// and ip_vs_out_icmp): the quoted packet is one the connection sent, so
// its reversed tuple is a key of the connection, whose direction says
// which side the error comes from.
func (w *Worker) related(pc *pktCtx) {
	if w.tunICMP(pc) { // about a tunnelled packet of the director's (tunicmp.go)
		return
	}
	in := &pc.p.Inner
	if in.Proto != header.ProtoTCP && in.Proto != header.ProtoUDP && in.Proto != header.ProtoSCTP {
		return
	}
	key := conntrack.Key{Src: in.Dst, Dst: in.Src, SrcPort: in.DstPort, DstPort: in.SrcPort, Proto: in.Proto}
	c := &w.cn
	if !w.env.Conns.Lookup(key, pc.mono, c) {
		return
	}
	w.Counters.inc(CntICMPRelated)
	if c.Dir == conntrack.DirIn {
		// From the client's side, about a packet sent to the client.
		w.toReal(pc, c, pendICMPIn)
		return
	}
	// From the real server's side, about a packet sent to it.
	xmitFor(c.Fwd).icmpOut(w, pc, c)
}

// toHop sends a rewritten frame (r: the rewrite's result; csum: how it
// treated the L4 checksum) to the next hop pc.hop, in fragments if it
// exceeds the hop's MTU (output: IPVS transmits with ignore_df, the
// transmitter having checked DF before the rewrite).
func (w *Worker) toHop(pc *pktCtx, r modes.Result, csum modes.Csum) {
	if !w.verdict(pc, r) {
		return
	}
	w.sent(pc.f, csum)
	w.output(pc, &pc.hop, true)
}

// toClient sends a rewritten frame to connection c's client through its
// next hop (clientHop), in fragments if it exceeds the MTU there and may
// be fragmented (output; replyFits refused the DF ones before the
// rewrite).
func (w *Worker) toClient(pc *pktCtx, c *conntrack.Conn, r modes.Result, csum modes.Csum) {
	if !w.verdict(pc, r) {
		return
	}
	w.sent(pc.f, csum)
	h := &pc.hop
	if !w.clientHop(pc, c, h) {
		return
	}
	w.output(pc, h, false)
}

// transmit addresses f to the link-layer destination dst from src, the one
// place the worker rewrites the Ethernet addresses of a forwarded frame,
// and queues it on ifindex.
func (w *Worker) transmit(f *Frame, dst, src *[6]byte, ifindex int) {
	eth := f.Buf[f.Off : f.Off+header.EthernetMinSize]
	copy(eth[0:6], dst[:])
	copy(eth[6:12], src[:])
	w.tx.n++
	w.tx.ifindex = ifindex
	w.emit(f, ifindex)
}

// verdict handles a non-OK rewrite result; it reports whether to send.
func (w *Worker) verdict(pc *pktCtx, r modes.Result) bool {
	switch r.Verdict {
	case modes.OK:
		return true
	case modes.TTLExceeded:
		w.Counters.inc(CntTTL)
		w.sendICMP(pc, icmpTimeExceeded, 0)
	case modes.TooBig:
		w.Counters.inc(CntTooBig)
		w.sendICMP(pc, icmpFragNeeded, r.MTU)
	default:
		w.Counters.inc(CntRewriteFail)
	}
	return false
}

// addrPort returns a connection endpoint as a netip.AddrPort. (By
// pointer: an Endpoint passed by value goes through memory.)
func addrPort(e *conntrack.Endpoint) netip.AddrPort {
	return netip.AddrPortFrom(header.AddrFrom16(e.Addr), e.Port)
}
