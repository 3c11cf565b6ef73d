package dataplane

import (
	"net/netip"

	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/header"
)

// Routed replies (issue 16).
//
// The kernel sends a NAT reply where its routing table says the client
// is: handle_response (net/netfilter/ipvs/ip_vs_core.c) rewrites the
// packet and lets it continue through FORWARD and POST_ROUTING, where the
// route of the rewritten destination — the client — picks the egress
// device and the neighbour layer the next hop's MAC (ip_finish_output2 →
// neigh_output). The MAC the request came from plays no part: with two
// routers on the client side, or ECMP, the reply may leave by another
// router than the request came in by. clientHop does the same through
// Env.Hops, which resolves routes and neighbours (package
// dataplane/neigh).
//
// Two cases keep the request's MAC and interface:
//
//   - A client on a VLAN (Conn.VLAN): the director serves the VLAN's
//     parent without a VLAN device, so no route of its table can lead to
//     that VLAN; the reply goes back on the VLAN, to the MAC, by the
//     interface its request came from.
//   - A route not resolved yet (the lookup has started its resolution,
//     or, for a client that has sent a single packet so far — a spoofed
//     source's only packet looks like that — not even started it,
//     minRoutedInPkts): the reply
//     goes to the request's MAC, as it did before, rather than wait. The
//     next replies take the route. A connection without a MAC (created
//     from a sync message) has no such fallback: its frame waits in the
//     neighbour queue.
//
// Each reply costs one next-hop lookup: in the worker's cache while the
// resolver's table and the host facts are unchanged (hopcache.go), else
// one Env.Hops lookup (map reads, no allocation).

// minRoutedInPkts is how many packets a client must have sent on a
// connection before a miss of its route starts resolving it: a spoofed
// source sends one (a SYN flood, a UDP new-flow flood), and resolving
// the route and neighbour of every spoofed address cost a resolution
// (and a goroutine) each and kept up to 65 536 junk entries refreshed
// every 5 s (a SYN flood grew uvsd from 51 to 525 MiB). Before that a
// reply takes the route only if it is resolved already (another
// connection of the same client resolved it), else it goes where the
// request came from, as the first replies of a new client do anyway.
const minRoutedInPkts = 2

// clientHop fills h with the next hop towards connection c's client, for a
// reply or an ICMP error the director sends it, and sets the VLAN the frame
// of pc leaves on (the client's). The next hop is the route's (Env.Hops)
// but for a client on a VLAN or one whose route is not resolved yet, which
// are reached by the interface and MAC the connection's first packet came
// from (see above). A connection without a MAC (created from a sync
// message, FlagSync) whose route is not resolved yet waits: the frame of pc
// — already rewritten, ready to go — waits in the neighbour queue and is
// sent once it resolves (pendToClient); so does a frame for a client others
// wait for, which it must not overtake. clientHop reports false when the
// frame is not to be sent now: queued, or dropped and counted (the
// connection's interface is gone, the queue is full). h.MTU is the egress
// interface's MTU.
func (w *Worker) clientHop(pc *pktCtx, c *conntrack.Conn, h *Hop) bool {
	hasMAC := c.MAC != ([6]byte{})
	if c.VLAN == 0 || !hasMAC {
		pc.f.VLAN = 0 // no route of the director's leads to a VLAN
		client := header.AddrFrom16(c.Client.Addr)
		if w.clientRoute(c, client, h) && (!h.Local || !hasMAC) {
			return true
		}
		if !hasMAC || (w.pq.n > 0 && w.pq.blocked(client)) {
			w.enqueue(pc, pendToClient, client)
			return false
		}
		// Not resolved yet (or, oddly, one of the director's own
		// addresses): where the request came from.
	}
	ifc, ok := pc.host.Ifaces[int(c.Ifindex)]
	if !ok {
		w.Counters.inc(CntNeighMiss)
		return false
	}
	pc.f.VLAN = c.VLAN
	h.Ifindex, h.DstMAC, h.SrcMAC, h.MTU = int(c.Ifindex), c.MAC, ifc.MAC, ifc.MTU
	return true
}

// clientRoute looks up the route towards connection c's client into h:
// resolving it on a miss once the client has sent minRoutedInPkts
// packets (or the connection has no MAC to fall back on), else only from
// what is resolved already (HopPeeker), so that a spoofed source starts
// no resolution.
func (w *Worker) clientRoute(c *conntrack.Conn, client netip.Addr, h *Hop) bool {
	if c.InPkts >= minRoutedInPkts || c.MAC == ([6]byte{}) {
		return w.hop(client, h)
	}
	if w.pq.n > 0 && w.pq.blocked(client) {
		return false
	}
	return w.hc.peek(w.env.Hops, client, h)
}

// hop looks up the next hop towards addr (a real server, or a client)
// into h, unless frames wait for it in the neighbour queue: a frame must
// not overtake them. The answer comes from the worker's next-hop cache
// when Env.Hops has generations (hopcache.go). (Filled in place: a Hop
// copied from call to call costs more than the lookup.)
func (w *Worker) hop(addr netip.Addr, h *Hop) bool {
	if w.pq.n > 0 && w.pq.blocked(addr) {
		return false
	}
	return w.hc.lookup(w.env.Hops, addr, h)
}
