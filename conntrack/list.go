package conntrack

import (
	"net/netip"
	"time"

	"github.com/uvs-lb/uvs/sched"
	"github.com/uvs-lb/uvs/spec"
)

// Listing is a value copy of one entry for listings (ipvsadm -Lnc,
// /proc/net/ip_vs_conn).
type Listing struct {
	Handle    Handle
	Proto     uint8
	Template  bool
	State     State
	Flags     Flags
	Fwd       spec.Fwd
	Remaining time.Duration // until expiry, never negative
	Timeout   time.Duration
	Client    netip.AddrPort // for templates: client network, port 0
	Virtual   netip.AddrPort // for fwmark templates: the mark as an IPv4 address
	Real      netip.AddrPort
	Local     netip.AddrPort // FULLNAT only
	Dest      *sched.Dest
	NControl  int32
	FWMark    uint32
	Service   uint32
}

// ProtoName returns the protocol as ipvsadm prints it ("TCP", "UDP", "IP").
func (l *Listing) ProtoName() string { return ProtoName(l.Proto) }

// StateName returns the state as ipvsadm prints it.
func (l *Listing) StateName() string { return StateName(l.Proto, l.Template, l.State) }

// Range calls fn with a copy of every live entry, in table order (tests
// and listings sort), until fn returns false. fn runs with no lock held.
func (t *Table) Range(now int64, fn func(*Listing) bool) {
	hw := t.highWater()
	var l Listing
	for idx := uint32(1); idx < hw; idx++ {
		e := &t.ents[idx]
		e.lock()
		if e.flags&FlagHashed == 0 {
			e.unlock()
			continue
		}
		rem := time.Duration(e.expires - now)
		if rem < 0 {
			rem = 0
		}
		l = Listing{
			Handle: mkHandle(idx, e.gen()), Proto: e.proto, Template: e.tmpl,
			State: e.state, Flags: e.flags &^ flagsInternal, Fwd: spec.Fwd(e.fwd),
			Remaining: rem, Timeout: time.Duration(e.timeout) * time.Millisecond,
			Client: addrPort(e.caddr, e.cport), Virtual: addrPort(e.vaddr, e.vport),
			Real: addrPort(e.daddr, e.dport), Dest: t.dests.get(e.dest),
			NControl: e.nControl, FWMark: e.fwmark, Service: e.svc,
		}
		if spec.Fwd(e.fwd) == spec.FwdFullNAT && !e.tmpl {
			l.Local = addrPort(e.laddr, e.lport)
		}
		e.unlock()
		if !fn(&l) {
			return
		}
	}
}

// Snapshot appends a copy of every live entry to dst.
func (t *Table) Snapshot(now int64, dst []Listing) []Listing {
	t.Range(now, func(l *Listing) bool {
		dst = append(dst, *l)
		return true
	})
	return dst
}
