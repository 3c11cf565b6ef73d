package dataplane

import "github.com/uvs-lb/uvs/header"

// defrag takes the IP fragment of pc (p.Reason == header.ReasonFragment).
// It reports true when pc now holds a whole datagram to handle like any
// other packet (pc.f and pc.p refilled), false when the fragment was kept
// for reassembly or dropped and counted.
//
// Not implemented yet (issue #16): every fragment is dropped as malformed.
func (w *Worker) defrag(pc *pktCtx) bool {
	w.Counters.parse[header.ReasonFragment].Add(1)
	w.Counters.inc(CntMalformed)
	return false
}
