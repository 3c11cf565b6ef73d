package dataplane

import (
	"encoding/binary"

	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/modes"
)

// natXmit is the NAT (masquerading, -m) transmitter: the destination
// becomes the real server on the way in (net/netfilter/ipvs/ip_vs_xmit.c,
// ip_vs_nat_xmit) and the source the VIP on the way out
// (net/netfilter/ipvs/ip_vs_core.c, handle_response); related ICMP errors
// are translated alike (ip_vs_core.c, ip_vs_in_icmp and ip_vs_out_icmp,
// through ip_vs_nat_icmp). A real server that is one of the director's
// addresses gets the rewritten packet through the director's own stack
// (natLocal).
type natXmit struct{}

func (natXmit) request(w *Worker, pc *pktCtx, c *conntrack.Conn) {
	csum, ok := w.csumState(pc)
	if !ok {
		return
	}
	if pc.hop.Local {
		w.natLocal(pc, c, csum)
		return
	}
	p := pc.p
	r := w.checkMTU(pc, pc.hop.MTU)
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
	if pc.hop.Local && header.AddrFrom16(c.Real.Addr).IsLoopback() {
		w.Counters.inc(CntRewriteFail) // as natLocal
		return
	}
	r := modes.NATICMPIn(pc.f.Data(), pc.p, addrPort(&c.Real))
	if pc.hop.Local {
		if w.verdict(pc, r) {
			undoTTL(pc.f.Data(), pc.p)
			w.toLocal(pc, modes.CsumComplete)
		}
		return
	}
	w.toHop(pc, r, modes.CsumComplete)
}

// natLocal is the request path towards a real server that is one of the
// director's addresses: ip_vs_nat_xmit with a local route refuses a
// loopback real server for packets from the network ("stopping DNAT to
// loopback address"), rewrites the destination as for any real server and
// lets the packet continue to local input. The rewrite completes a
// partial checksum, and the TTL it took off is given back.
//
// The local real server's replies leave through the kernel's own output
// path, which uvsd does not see: unlike the kernel's (its LOCAL_OUT hook
// undoes the translation) they keep the real server's address.
func (w *Worker) natLocal(pc *pktCtx, c *conntrack.Conn, csum modes.Csum) {
	if header.AddrFrom16(c.Real.Addr).IsLoopback() {
		w.Counters.inc(CntRewriteFail)
		return
	}
	if csum != modes.CsumComplete {
		csum = modes.CsumPartial
	}
	data, p := pc.f.Data(), pc.p
	if !w.verdict(pc, modes.NATRequest(data, p, addrPort(&c.Real), csum)) {
		return
	}
	undoTTL(data, p)
	w.toLocal(pc, modes.CsumComplete)
}

// undoTTL gives back the TTL (hop limit) a rewrite took off the parsed
// packet in frame: a packet delivered locally is not forwarded. The IPv4
// header checksum is updated for the word TTL|protocol (RFC 1624).
func undoTTL(frame []byte, p *header.Parsed) {
	ip := frame[p.L3Off:]
	p.TTL++
	if p.IPVersion == 6 {
		ip[header.IPv6HopLimitOff]++
		return
	}
	old := binary.BigEndian.Uint16(ip[header.IPv4TTLOff:])
	ip[header.IPv4TTLOff]++
	h := header.IPv4(ip)
	h.SetChecksum(header.ApplyDelta(h.Checksum(), header.Delta16(0, old, old+0x0100)))
}

// icmpOut: the error quotes client → RIP:rport; it goes to the client as if
// about client → VIP:vport, from the VIP.
func (natXmit) icmpOut(w *Worker, pc *pktCtx, c *conntrack.Conn) {
	w.toClient(pc, c, modes.NATICMPOut(pc.f.Data(), pc.p, addrPort(&c.Virtual)), modes.CsumComplete)
}
