package dataplane

import (
	"encoding/binary"
	"time"

	"github.com/uvs-lb/uvs/connsync/wire"
	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/spec"
)

// Connection sync, master side (net/netfilter/ipvs/ip_vs_core.c, ip_vs_in,
// and ip_vs_sync.c, ip_vs_sync_conn): after a request of a connection has
// been handed to its transmitter, a worker whose director runs a master
// sync daemon (Env.Sync.Sending) asks the daemon's policy whether the
// connection is due (Policy.Needed: its state, its state change, its
// inbound packet count against sync_threshold) and if so queues it on the
// worker's ring; then, if a persistence template controls it, the
// template, which the packet rule does not apply to. With
// sync_persist_mode only the template is sent. With sync_version 0 the
// template follows only a connection that was sent, and IPv6 is skipped
// (version 0 cannot carry it). The daemon drains the rings, packs the
// entries into messages and sends them.

// syncConn reports connection c, whose request the frame of pc was, to
// the sync daemon as the kernel's ip_vs_sync_conn does. It does not
// allocate.
func (w *Worker) syncConn(pc *pktCtx, c *conntrack.Conn) {
	if c.Fwd == spec.FwdFullNAT && c.Client.Is4() != c.Real.Is4() {
		// FULLNAT across families (xmit_fullnat.go) is not synced: a sync
		// entry is IPv4 or IPv6 as a whole (struct ip_vs_sync_v4 and
		// ip_vs_sync_v6), so it cannot carry the real server's address.
		return
	}
	pol := w.env.Sync.Policy()
	v0 := pol.Version == 0
	sent := false
	if !(pol.PersistMode && c.Controlled) && !(v0 && !c.Client.Is4()) &&
		pol.Needed(c.Proto, uint16(c.State), uint16(c.OldState), c.InPkts) {
		w.pushSync(c, false)
		sent = true
	}
	if !c.Controlled || (v0 && !sent) {
		return
	}
	tc := &w.tc
	if !w.env.Conns.TemplateOf(c.Handle, pc.mono, tc) {
		return
	}
	// Templates skip the state filter and the packet rule, but with
	// sync_period 0 (ip_vs_sync_conn_needed), counted in the template's
	// own packets.
	if !pol.TemplateNeeded(tc.InPkts) || (v0 && !tc.Client.Is4()) {
		return
	}
	w.pushSync(tc, true)
}

// pushSync queues c (a template when tmpl) on the worker's sync ring as
// the kernel puts it on the wire: its flags without HASHED, the
// forwarding method in the low bits, the timeout in seconds, the state
// number; a FULLNAT connection's local endpoint in the uvs option.
func (w *Worker) pushSync(c *conntrack.Conn, tmpl bool) {
	e := &w.se
	e.IPv6 = !c.Client.Is4()
	e.Proto = c.Proto
	e.Flags = uint32(c.Flags&^conntrack.FlagHashed) | uint32(c.Fwd)&wire.FlagFwdMask
	if tmpl {
		// The kernel's template took its destination's connection flags
		// (ip_vs_bind_dest: INACTIVE, and NOOUTPUT unless NAT), which no
		// packet clears; the table does not keep them on templates.
		e.Flags |= wire.FlagInactive
		if c.Fwd != spec.FwdMasq && c.Fwd != spec.FwdFullNAT {
			e.Flags |= wire.FlagNoOutput
		}
	}
	e.State = uint16(c.State)
	e.CPort, e.VPort, e.DPort = c.Client.Port, c.Virtual.Port, c.Real.Port
	e.FWMark = c.FWMark
	e.Timeout = uint32(c.Timeout / time.Second)
	e.CAddr, e.VAddr, e.DAddr = c.Client.Addr, c.Virtual.Addr, c.Real.Addr
	if tmpl && c.Proto == conntrack.ProtoIP && e.IPv6 {
		// An IPv6 firewall-mark template: the kernel's key holds the
		// mark in the address's first 4 bytes (union nf_inet_addr .ip),
		// the table's as an IPv4-mapped address.
		mark := binary.BigEndian.Uint32(c.Virtual.Addr[12:])
		e.VAddr = [16]byte{}
		binary.BigEndian.PutUint32(e.VAddr[:4], mark)
	}
	e.HasLocal = !tmpl && c.Fwd == spec.FwdFullNAT
	if e.HasLocal {
		e.LAddr, e.LPort = c.Local.Addr, c.Local.Port
	} else {
		e.LAddr, e.LPort = [16]byte{}, 0
	}
	if w.ring.Push(e) {
		w.Counters.inc(CntSyncSent)
	}
}

// pendToClient is the neighbour-queue kind of a frame rewritten for a
// client whose next hop was unresolved (clientHop): once it resolves, the
// frame is only addressed and sent (replayToClient).
const pendToClient = pendReprocess + 1

// replayToClient sends a queued pendToClient frame through hop, now
// resolved. (neighqueue.go's replay dispatches to it.)
func (w *Worker) replayToClient(e *pending, hop *Hop) {
	w.outputFrame(&e.f, &e.p, hop, false) // fragmented for hop's MTU if need be (fragout.go)
}
