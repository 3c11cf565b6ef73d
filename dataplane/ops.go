package dataplane

import (
	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/sched"
	"github.com/uvs-lb/uvs/snapshot"
	"github.com/uvs-lb/uvs/spec"
)

// onePacketApplies reports whether a new flow of svc to destination d is
// forwarded as one-packet scheduling (-o, IP_VS_SVC_F_ONEPACKET): only
// for UDP, as ip_vs_schedule sets IP_VS_CONN_F_ONE_PACKET only when
// svc->flags has ONEPACKET and the protocol is UDP.
//
// FULLNAT is left out: it is not in the kernel, and its replies come back
// to a local address:port that only a connection maps to the client, so a
// FULLNAT service with -o keeps connections.
func onePacketApplies(svc *snapshot.Service, proto uint8, d *sched.Dest) bool {
	return svc.OPS && proto == header.ProtoUDP && d.Fwd() != spec.FwdFullNAT
}

// onePacket forwards a datagram of a one-packet-scheduled service to the
// destination the scheduler chose for it, without a connection. The
// kernel creates the connection with IP_VS_CONN_F_ONE_PACKET, which
// ip_vs_conn_hash never hashes and ip_vs_in frees right after the
// transmitter (nor does ip_vs_sync_conn sync it): the next datagram of the
// same flow finds nothing and is scheduled again, and a NAT real
// server's reply finds no connection either (ip_vs_out lets it pass
// unchanged; here it is not translated and is counted as not ours). The
// connection counts of the service and destination grow as for any
// scheduled connection (ip_vs_conn_stats); the destination's
// active/inactive counts do not, the kernel's bind and unbind cancelling
// out.
func (w *Worker) onePacket(pc *pktCtx, key *conntrack.Key, svc *snapshot.Service, dec *sched.Decision, mark uint32) {
	d := dec.Dest
	c := &w.cn
	*c = conntrack.Conn{
		Dir:     conntrack.DirIn,
		Proto:   key.Proto,
		Fwd:     d.Fwd(),
		State:   conntrack.StateNormal,
		Client:  conntrack.Endpoint{Addr: key.Src, Port: key.SrcPort},
		Virtual: conntrack.Endpoint{Addr: key.Dst, Port: key.DstPort},
		Real:    conntrack.Endpoint{Addr: d.Addr().As16(), Port: dec.Port},
		Dest:    d,
		MAC:     header.Ethernet(pc.f.Data()).Src(),
		Ifindex: int32(pc.f.Ifindex),
		FWMark:  mark,
		Service: svc.ID,
		InPkts:  1,
	}
	w.Counters.inc(CntOnePacket)
	w.stats.blk.Conn(svc.Stats, d)
	w.stats.blk.In(d, pc.p.IPLen)
	w.toReal(pc, c, pendRequest)
}
