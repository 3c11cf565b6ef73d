package dataplane

import (
	"net/netip"

	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/header"
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
//
// A connection whose real server is of the other address family than its
// client (an IPv6 VIP served by IPv4 real servers, DPVS's NAT64, or the
// reverse) has a local address of the real server's family (fullnatLocal),
// and each of its packets is translated between IPv4 and IPv6 on the way
// (modes.FullNATXlate, modes.FullNATXlateICMP; DPVS's dp_vs_xmit_fnat64,
// dp_vs_out_xmit_fnat64 and its ICMP translation in ip_vs_nat64.c):
// xlate, xlateICMP below.
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
	if crossFamily(p, &c.Real) {
		r := xlateFits(pc, pc.hop.MTU)
		if r.OK() {
			r = w.xlate(pc, addrPort(&c.Local), addrPort(&c.Real), csum)
		}
		w.toHop(pc, r, csum)
		return
	}
	r := w.checkMTU(pc, pc.hop.MTU)
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
	if crossFamily(pc.p, &c.Client) {
		// The reply's MTU check (replyFits) leaves translated replies
		// to the transmitter: the size that counts is the translated one.
		r := xlateFits(pc, w.clientMTU(pc, c))
		if r.OK() {
			r = w.xlate(pc, addrPort(&c.Virtual), addrPort(&c.Client), csum)
		}
		w.toClient(pc, c, r, csum)
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
	if crossFamily(pc.p, &c.Real) {
		w.toHop(pc, w.xlateICMP(pc, &c.Local, &c.Real), modes.CsumComplete)
		return
	}
	r := modes.FullNATICMPIn(pc.f.Data(), pc.p, addrPort(&c.Local), addrPort(&c.Real))
	w.toHop(pc, r, modes.CsumComplete)
}

// icmpOut: an error addressed to LIP quoting LIP:lport → RIP:rport goes to
// the client from the VIP, quoting CIP:cport → VIP:vport, like a reply.
func (fullnatXmit) icmpOut(w *Worker, pc *pktCtx, c *conntrack.Conn) {
	if crossFamily(pc.p, &c.Client) {
		w.toClient(pc, c, w.xlateICMP(pc, &c.Virtual, &c.Client), modes.CsumComplete)
		return
	}
	r := modes.FullNATICMPOut(pc.f.Data(), pc.p, addrPort(&c.Virtual), addrPort(&c.Client))
	w.toClient(pc, c, r, modes.CsumComplete)
}

// crossFamily reports whether the packet of p goes to an endpoint (the
// real server of a request, the client of a reply) of the other address
// family: the connection translates between IPv4 and IPv6.
func crossFamily(p *header.Parsed, to *conntrack.Endpoint) bool {
	return (p.IPVersion == 6) == is4Mapped(&to.Addr)
}

// is4Mapped reports whether a 16-byte connection address is an IPv4
// address (IPv4-mapped, as the connection table keeps them).
func is4Mapped(a *[16]byte) bool {
	return a[10] == 0xff && a[11] == 0xff && [10]byte(a[:10]) == [10]byte{}
}

// xlateFits checks the packet of pc against the MTU towards where it goes
// once translated (modes.XlateCheckMTU: TooBig, with the MTU in the
// sender's family, for what does not fit; the verdict's ICMP error goes
// to the sender untranslated). A datagram reassembled here (FragMax) is
// not checked: output fragments it again in the new family, as RFC 7915
// section 4.1 has a translator fragment what its IPv4 sender let be
// fragmented.
func xlateFits(pc *pktCtx, mtu int) modes.Result {
	if pc.f.FragMax > 0 {
		return modes.Result{Verdict: modes.OK}
	}
	return modes.XlateCheckMTU(pc.p, mtu, pc.f.GSO.Size)
}

// xlate translates the TCP or UDP packet of pc to the other family, from
// src to dst, and updates the frame's offsets and offload metadata: the
// partial checksum's csum_start follows the L4 header, a GSO super-frame's
// type follows the family (TCPv4 ↔ TCPv6; UDP_L4 is either). The frame
// may start earlier (into its headroom) or later than before.
func (w *Worker) xlate(pc *pktCtx, src, dst netip.AddrPort, csum modes.Csum) modes.Result {
	f := pc.f
	r, off, n := modes.FullNATXlate(f.Buf, f.Off, f.Len, pc.p, src, dst, csum)
	if !r.OK() {
		return r
	}
	w.xlated(f, off, n)
	if csum == modes.CsumKeepPartial {
		f.CsumStart = uint16(pc.p.L4Off)
	}
	if g := f.GSO.Type; g.Kind() == GSOTCPv4 || g.Kind() == GSOTCPv6 {
		k := GSOTCPv4
		if pc.p.IPVersion == 6 {
			k = GSOTCPv6
		}
		f.GSO.Type = g&GSOFlags | k
	}
	return r
}

// xlateICMP translates the ICMP error of pc about a packet of a
// connection to the other family: from the director's address at this
// end of the connection, from, to the endpoint to, quoting to → from.
func (w *Worker) xlateICMP(pc *pktCtx, from, to *conntrack.Endpoint) modes.Result {
	f := pc.f
	r, off, n := modes.FullNATXlateICMP(f.Buf, f.Off, f.Len, pc.p,
		header.AddrFrom16(from.Addr), header.AddrFrom16(to.Addr), addrPort(to), addrPort(from))
	if r.OK() {
		w.xlated(f, off, n)
	}
	return r
}

// xlated records a translated frame's new place in its buffer.
func (w *Worker) xlated(f *Frame, off, n int) {
	f.Off, f.Len = off, n
	w.Counters.inc(CntFamilyXlate)
}
