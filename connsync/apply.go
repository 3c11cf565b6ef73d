package connsync

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/uvs-lb/uvs/connsync/wire"
	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/sched"
	"github.com/uvs-lb/uvs/snapshot"
	"github.com/uvs-lb/uvs/spec"
)

// TableApplier is the backup's end of the sync daemon: it applies each
// received entry to the connection table (conntrack.Table.ApplySync), as
// the kernel's ip_vs_proc_conn does, resolving the entry against the
// backup's own configuration: the service for (protocol, vaddr, vport,
// fwmark, family) in the current snapshot and, in it, the destination at
// daddr:dport (ip_vs_find_dest). An entry without such a destination is
// still created, unbound; a bound one takes its forwarding method from
// the backup's destination.
//
// Apply is called by one receiving goroutine at a time; Stats may be read
// from any.
type TableApplier struct {
	table     *conntrack.Table
	snap      *atomic.Pointer[snapshot.Snapshot]
	now       func() int64
	threshold uint32

	applied, created, replaced, updated, unbound, ignored, failed atomic.Uint64
}

// ApplierStats counts what a TableApplier did with the entries it was
// given: Applied = Created + Replaced + Updated + Ignored; Unbound counts
// the created or updated entries left without destination; Failed the
// entries refused (invalid, or the table full).
type ApplierStats struct {
	Applied, Created, Replaced, Updated, Unbound, Ignored, Failed uint64
}

var _ Applier = (*TableApplier)(nil)

// NewTableApplier returns an applier writing to table. snap is the
// published configuration; now reads the table's clock (nanoseconds since
// the data plane's epoch); threshold is the backup's sync_threshold, which
// a created or refreshed connection's inbound packet count is set to (0:
// DefaultPolicy's).
func NewTableApplier(table *conntrack.Table, snap *atomic.Pointer[snapshot.Snapshot], now func() int64, threshold uint32) *TableApplier {
	if threshold == 0 {
		threshold = DefaultPolicy.Threshold
	}
	return &TableApplier{table: table, snap: snap, now: now, threshold: threshold}
}

// Stats returns the counters.
func (a *TableApplier) Stats() ApplierStats {
	return ApplierStats{
		Applied: a.applied.Load(), Created: a.created.Load(), Replaced: a.replaced.Load(),
		Updated: a.updated.Load(), Unbound: a.unbound.Load(), Ignored: a.ignored.Load(),
		Failed: a.failed.Load(),
	}
}

// Apply applies one decoded entry of a message of the given version (0 or
// 1; a version 0 entry has no timeout and no fwmark).
func (a *TableApplier) Apply(e *wire.Entry, version int) {
	var s conntrack.SyncConn
	if !a.resolve(e, &s) {
		a.failed.Add(1)
		return
	}
	res, err := a.table.ApplySync(&s, a.now())
	if err != nil {
		a.failed.Add(1)
		return
	}
	a.applied.Add(1)
	switch res.Action {
	case conntrack.SyncCreated:
		a.created.Add(1)
	case conntrack.SyncReplaced:
		a.replaced.Add(1)
	case conntrack.SyncUpdated:
		a.updated.Add(1)
	case conntrack.SyncIgnored:
		a.ignored.Add(1)
	}
	if res.Unbound && res.Action != conntrack.SyncIgnored {
		a.unbound.Add(1)
	}
}

// resolve fills s from e and the backup's configuration; it reports false
// for an entry that cannot be represented (a state beyond 8 bits).
func (a *TableApplier) resolve(e *wire.Entry, s *conntrack.SyncConn) bool {
	tmpl := e.Flags&wire.FlagTemplate != 0
	if e.State > 0xff {
		if !tmpl {
			return false
		}
		// The kernel does not check a template's state.
		e2 := *e
		e2.State = uint16(conntrack.StateNone)
		e = &e2
	}
	vaddr := e.VAddr
	if tmpl && e.Proto == 0 && e.IPv6 {
		// An IPv6 firewall-mark template: the kernel's key holds the mark
		// in the first 4 bytes of the address; the table's holds it as
		// an IPv4-mapped address, as for IPv4 (NewFWMarkTemplateKey).
		vaddr = mappedMark(binary.BigEndian.Uint32(e.VAddr[:4]))
	}
	mark := e.FWMark
	if tmpl && e.Proto == 0 && mark == 0 {
		mark = binary.BigEndian.Uint32(vaddr[12:])
	}
	*s = conntrack.SyncConn{
		Proto:    e.Proto,
		Template: tmpl,
		Flags:    e.Flags,
		State:    conntrack.State(e.State),
		Client:   conntrack.Endpoint{Addr: e.CAddr, Port: e.CPort},
		Virtual:  conntrack.Endpoint{Addr: vaddr, Port: e.VPort},
		Real:     conntrack.Endpoint{Addr: e.DAddr, Port: e.DPort},
		FWMark:   e.FWMark,
		Timeout:  time.Duration(e.Timeout) * time.Second,
		Fwd:      spec.Fwd(e.Flags & wire.FlagFwdMask),
		InPkts:   a.threshold,
	}
	if e.HasLocal {
		s.Local = conntrack.Endpoint{Addr: e.LAddr, Port: e.LPort}
	}
	if sn := a.snap.Load(); sn != nil {
		if svc := sn.Lookup(spec.Proto(e.Proto), vaddr, e.VPort, mark, e.IPv6); svc != nil {
			s.Service = svc.ID
			if d := findDest(svc, e, mark); d != nil {
				s.Dest, s.Fwd = d, d.Fwd()
			}
		}
	}
	return true
}

// findDest finds the destination of entry e in svc as ip_vs_find_dest
// does: at daddr:dport, or for a firewall-mark entry not in NAT at
// daddr:0; then at the other of the two ports.
func findDest(svc *snapshot.Service, e *wire.Entry, mark uint32) *sched.Dest {
	daddr := netip.AddrFrom16(e.DAddr)
	if !e.IPv6 {
		daddr = daddr.Unmap()
	}
	port := e.DPort
	if mark != 0 && e.Flags&wire.FlagFwdMask != wire.FwdMasq {
		port = 0
	}
	if d := svc.Sched.Dest(netip.AddrPortFrom(daddr, port)); d != nil {
		return d
	}
	return svc.Sched.Dest(netip.AddrPortFrom(daddr, port^e.DPort))
}

// mappedMark returns a firewall mark as the IPv4-mapped address the
// table's template keys use.
func mappedMark(mark uint32) [16]byte {
	a := [16]byte{10: 0xff, 11: 0xff}
	binary.BigEndian.PutUint32(a[12:], mark)
	return a
}
