package dataplane

import (
	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/ipfrag"
)

// Fragments.
//
// IPVS sees whole datagrams (nf_defrag_ipv4/ipv6 in PREROUTING, ip_defrag
// in ip_vs_in_icmp), so a worker reassembles every fragment the hooks hand
// it (package ipfrag says how, and why not Maglev's first-fragment
// tracking) and handles the datagram like a frame received whole: the
// first fragment's link header, the first fragment's IP header, the whole
// payload. Frame.FragMax carries the largest fragment's size so that the
// transmitter fragments it again to no more than that (the kernel's
// frag_max_size); a frame reassembled is an ordinary one otherwise (no
// offload metadata: the fragments' checksums were complete on the wire).
//
// Memory: each worker has its own Reassembler (Env.FragMemory bytes,
// allocated by NewWorker) and a slab the datagrams completed in a batch are
// written to, free again once the batch is sent. A datagram that completes
// when the slab has no room for it is dropped (CntFragOverflow): the slab
// holds at least three datagrams of the largest size, more than a batch
// completes unless it carries the last fragments of several 64 KiB
// datagrams.
//
// All fragments of a datagram must reach the same worker:
//   - AF_PACKET: uvsd joins its sockets with PACKET_FANOUT_HASH
//     (director/backend.go), which picks a socket by
//     __skb_get_hash_symmetric (fanout_demux_hash). Its flow dissector
//     stops at the IP header of every fragment, the first included
//     (FLOW_DIS_IS_FRAGMENT; ports are parsed from a first fragment only
//     with FLOW_DISSECTOR_F_PARSE_1ST_FRAG, which that hash does not
//     pass), so all fragments of a datagram hash on its addresses (IPv6:
//     and flow label) alike: e2e TestFragFanout. PACKET_FANOUT_LB or
//     _CPU would scatter them (the same test fails with LB).
//   - AF_XDP binds one socket per RX queue and the NIC's RSS picks the
//     queue. The RSS hash of the common NICs and of the kernel's
//     software fallback takes ports only from unfragmented TCP/UDP
//     packets, so fragments of one datagram share a queue too. A NIC
//     configured to hash the ports of first fragments would split them;
//     such a datagram then times out (CntFragTimeout). Not testable on
//     veth (no RSS).

// Reassembly sizes, per worker.
const (
	// DefaultFragMemory is a worker's reassembly memory when
	// Env.FragMemory is zero: the kernel's ipfrag_high_thresh (4 MiB)
	// shared by four workers.
	DefaultFragMemory = ipfrag.DefaultMemory / 4
	// fragHeadroom is kept in front of a reassembled frame for an
	// encapsulation header (TUN), as in front of a received one.
	fragHeadroom = 128
	fragMaxFrame = fragHeadroom + ipfrag.MaxHeader + ipfrag.MaxPayload
	fragSlabSize = 3 * fragMaxFrame
)

// fragState is a worker's reassembly state.
type fragState struct {
	r *ipfrag.Reassembler
	// slab[:off] holds the datagrams reassembled in the current
	// ProcessBatch; refilled lists the frames pointed at them.
	slab     []byte
	off      int
	refilled []*Frame
}

// init allocates the worker's reassembly memory: Env.FragMemory, clamped
// to what ipfrag accepts.
func (s *fragState) init(env *Env) {
	mem := env.FragMemory
	if mem <= 0 {
		mem = DefaultFragMemory
	}
	mem = min(max(mem, ipfrag.MinMemory), ipfrag.MaxMemory)
	r, err := ipfrag.New(ipfrag.Config{Memory: mem})
	if err != nil {
		panic("dataplane: reassembly memory: " + err.Error()) // unreachable: mem was clamped
	}
	s.r = r
	s.slab = make([]byte, fragSlabSize)
	// A datagram takes at least 192 bytes of the slab (headroom, the
	// smallest packet, alignment): the slab fills before this does.
	s.refilled = make([]*Frame, 0, fragSlabSize/192)
}

// defrag takes the IP fragment of pc (p.Reason == header.ReasonFragment).
// It reports true when pc now holds a whole datagram to handle like any
// other packet (pc.f and pc.p refilled), false when the fragment was kept
// for reassembly or dropped and counted.
func (w *Worker) defrag(pc *pktCtx) bool {
	s := &w.frag
	f, p := pc.f, pc.p
	w.Counters.inc(CntFragIn)
	start := s.off + fragHeadroom
	var res ipfrag.Result
	var d ipfrag.Datagram
	if start < len(s.slab) {
		res, d = s.r.Add(f.Data(), p, pc.mono, s.slab[start:])
	} else {
		res, d = s.r.Add(f.Data(), p, pc.mono, nil)
	}
	w.countFragDrops()
	switch res {
	case ipfrag.Complete:
	case ipfrag.NotFragment:
		// Parse said fragment, ipfrag did not find one: malformed.
		w.Counters.parse[header.ReasonFragment].Add(1)
		w.Counters.inc(CntMalformed)
		return false
	default:
		return false
	}
	w.Counters.inc(CntReassembled)
	end := start + d.Len
	f.Buf = s.slab[s.off:end:end]
	f.Off, f.Len = fragHeadroom, d.Len
	f.FragMax = uint16(min(d.FragMax, 0xffff))
	f.CsumPartial, f.CsumUnknown, f.Offload = false, false, false
	f.GSO, f.CsumStart, f.CsumOffset = GSO{}, 0, 0
	s.off = (end + 63) &^ 63
	if len(s.refilled) < cap(s.refilled) {
		s.refilled = append(s.refilled, f)
	}
	p.Parse(f.Data())
	return true
}

// countFragDrops adds the fragments the reassembler dropped since the last
// call to the counters.
func (w *Worker) countFragDrops() {
	d := w.frag.r.TakeDrops()
	if d.Timeout != 0 {
		w.Counters.c[CntFragTimeout].Add(d.Timeout)
	}
	if d.Overflow != 0 {
		w.Counters.c[CntFragOverflow].Add(d.Overflow)
	}
	if d.Bad != 0 {
		w.Counters.c[CntFragBad].Add(d.Bad)
	}
}

// fragRelease frees the slab once the batch's frames are sent, and clears
// FragMax on the frames refilled from it: the backends refill the frames
// they read into but not that field.
func (w *Worker) fragRelease() {
	s := &w.frag
	for i, f := range s.refilled {
		f.FragMax = 0
		s.refilled[i] = nil
	}
	s.refilled = s.refilled[:0]
	s.off = 0
}

// expireFrags drops the datagrams whose reassembly time is up; the worker
// calls it when a read returns nothing (fragments arriving expire the
// others as they come).
func (w *Worker) expireFrags() {
	s := &w.frag
	if q, _ := s.r.Usage(); q == 0 {
		return
	}
	s.r.Expire(int64(w.env.Now().Sub(w.env.Epoch)))
	w.countFragDrops()
}
