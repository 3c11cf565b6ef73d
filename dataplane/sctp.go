package dataplane

import (
	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/header"
)

// SCTP in the worker (net/netfilter/ipvs/ip_vs_proto_sctp.c). An SCTP
// packet takes the tracked path of TCP and UDP; what differs is here:
//
//   - classify reads its first chunk (and the chunk after a COOKIE ECHO or
//     COOKIE ACK, where an ABORT may be bundled) and stores the state-table
//     event in Parsed.TCPFlags, which for SCTP carries the
//     conntrack.SCTPEvent to Track, TrackBatch and Create; a packet without
//     a whole chunk header is malformed (sctp_conn_schedule drops it);
//   - only an INIT schedules a new association, or any chunk with
//     sloppy_sctp (sctp_conn_schedule); other packets that match no
//     connection are not IPVS's and are counted as not ours;
//   - an INIT on a CLOSED connection schedules afresh (conn_reuse_mode,
//     is_new_conn_expected);
//   - NAT and FULLNAT recompute the CRC32c when they change a port
//     (modes, sctp_snat_handler / sctp_dnat_handler); DR and TUN leave the
//     SCTP packet untouched.

// sctpClassify reads the chunk event of the SCTP packet of pc into
// pc.p.TCPFlags. It reports false, counted, for a packet without a chunk.
func (w *Worker) sctpClassify(pc *pktCtx) bool {
	p := pc.p
	first, ok, next, hasNext := header.SCTPChunks(pc.f.Data()[p.L4Off:p.End])
	if !ok {
		w.Counters.parse[header.ReasonTruncated].Add(1)
		w.Counters.inc(CntMalformed)
		return false
	}
	p.TCPFlags = conntrack.SCTPEventOf(first, next, hasNext)
	return true
}

// sctpSchedules reports whether an SCTP packet that matched no connection
// may start one (sctp_conn_schedule: an INIT, or anything with
// sloppy_sctp), counting the others.
func (w *Worker) sctpSchedules(p *header.Parsed) bool {
	if p.TCPFlags == conntrack.SCTPEvInit || w.env.SloppySCTP {
		return true
	}
	w.Counters.inc(CntNotOurs)
	return false
}

// sctpReuse reports whether an SCTP packet that matched connection c must
// expire it and be scheduled afresh: an INIT from the client on a CLOSED
// association (ip_vs_in's conn_reuse_mode check, is_new_conn and
// is_new_conn_expected), unless the connection is controlled by a
// template, as for TCP.
func sctpReuse(p *header.Parsed, c *conntrack.Conn) bool {
	return p.Proto == header.ProtoSCTP && c.Dir == conntrack.DirIn && p.TCPFlags == conntrack.SCTPEvInit &&
		c.OldState == conntrack.SCTPClosed && !c.Controlled
}
