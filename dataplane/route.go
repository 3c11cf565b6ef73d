package dataplane

import (
	"net/netip"

	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/header"
)

// clientHop fills h with the next hop towards connection c's client, for a
// reply or an ICMP error the director sends it. A connection this director
// created holds the client's MAC and the interface its first packet came
// in by; a synchronised one (created from a sync message, FlagSync) holds
// no MAC, and its client is reached as the kernel reaches it, by route:
// the next hop of the client's address from Env.Hops. When that is not
// resolved yet, the frame of pc — already rewritten, ready to go — waits
// in the neighbour queue and is sent once it resolves (pendToClient); a
// frame must not overtake others waiting for that address. clientHop
// reports false when the frame is not to be sent now: queued, or dropped
// and counted (the connection's interface is gone, the queue is full).
func (w *Worker) clientHop(pc *pktCtx, c *conntrack.Conn, h *Hop) bool {
	if c.MAC != ([6]byte{}) {
		ifc, ok := pc.host.Ifaces[int(c.Ifindex)]
		if !ok {
			w.Counters.inc(CntNeighMiss)
			return false
		}
		h.Ifindex, h.DstMAC, h.SrcMAC, h.MTU = int(c.Ifindex), c.MAC, ifc.MAC, ifc.MTU
		return true
	}
	client := header.AddrFrom16(c.Client.Addr)
	if w.hop(client, h) {
		return true
	}
	w.enqueue(pc, pendToClient, client)
	return false
}

// hop looks up the next hop towards addr (a real server) into h, unless
// frames wait for it in the neighbour queue: a frame must not overtake
// them. (Filled in place: a Hop copied from call to call costs more than
// the lookup.)
func (w *Worker) hop(addr netip.Addr, h *Hop) bool {
	if w.pq.n > 0 && w.pq.blocked(addr) {
		return false
	}
	var ok bool
	*h, ok = w.env.Hops.Lookup(addr)
	return ok
}
