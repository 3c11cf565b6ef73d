package dataplane

import (
	"time"

	"github.com/uvs-lb/uvs/header"
)

// icmpKind is an ICMP error the worker sends itself.
type icmpKind uint8

const (
	icmpPortUnreach  icmpKind = iota // no destination for a new flow
	icmpTimeExceeded                 // TTL or hop limit exhausted
	icmpFragNeeded                   // larger than the path MTU
)

// arp answers an ARP request for a VIP the kernel does not own (the VIP is
// not configured on a director interface), so clients can reach it either
// way.
func (w *Worker) arp(pc *pktCtx) {
	f, p := pc.f, pc.p
	if p.Reason != header.ReasonNone || p.ARPOp != header.ARPRequest {
		return
	}
	a, host := p.Dst, pc.host // the target address, As16 form
	if !(pc.snap.IsVIP(a) || host.Marked[a]) || host.Local[a] || w.standbyVIP(host, a) {
		return
	}
	ifc, ok := host.Ifaces[f.Ifindex]
	if !ok {
		return
	}
	if header.ARPReplyInPlace(f.Data(), p, ifc.MAC) {
		w.Counters.inc(CntARPReply)
		f.VLAN = vlanOf(p) // back on the VLAN it came from (vlan.go)
		w.emit(f, f.Ifindex)
	}
}

// standbyVIP reports whether a VIP (or marked destination) that ARP or NDP
// asks for is one this node must not answer for now: in Host.Standby (the
// VRRP master answers), or any while Host.BackupOnly. It counts the
// request as left to the kernel.
func (w *Worker) standbyVIP(host *Host, a [16]byte) bool {
	switch {
	case host.BackupOnly:
		w.Counters.inc(CntBackupOnly)
	case len(host.Standby) > 0 && host.Standby[a]:
		w.Counters.inc(CntStandby)
	default:
		return false
	}
	return true
}

// ndp answers an IPv6 neighbour solicitation for a VIP the kernel does not own.
func (w *Worker) ndp(pc *pktCtx) {
	f, p, data, host := pc.f, pc.p, pc.f.Data(), pc.host
	if p.L4Off+24 > p.End {
		return
	}
	target := header.ICMPv6(data[p.L4Off:p.End]).Target()
	if !(pc.snap.IsVIP(target) || host.Marked[target]) || host.Local[target] || w.standbyVIP(host, target) {
		return
	}
	ifc, ok := host.Ifaces[f.Ifindex]
	if !ok || w.nctl >= len(w.ctl) {
		return
	}
	buf := w.ctl[w.nctl]
	n := header.NeighborAdvert(buf, data, p, ifc.MAC, false)
	if n == 0 {
		return
	}
	w.nctl++
	w.Counters.inc(CntARPReply)
	w.out = append(w.out, Frame{Buf: buf, Len: n, Ifindex: f.Ifindex})
}

// ICMPLimit is the rate limit on the ICMP errors the workers generate
// (port unreachable for a flow with no destination, time exceeded, frag
// needed / packet too big), the kernel's global ICMP limit
// (net.ipv4.icmp_msgs_per_sec, icmp_msgs_burst) applied to the types its
// default masks select (icmp_ratemask 0x1818 — destination unreachable,
// including frag needed, and time exceeded; icmpv6 ratemask 0-1,3-127 —
// everything but packet too big, which is never limited). The kernel's
// per-destination limit (icmp_ratelimit, 1 s per peer) is not kept: it
// needs a table keyed by peer; the global bucket bounds the reflection.
//
// Each worker holds its own bucket (no state shared between workers): it
// gets PerSec/Workers tokens a second up to Burst/Workers (at least one),
// so the director as a whole sends at most PerSec a second after a burst
// of Burst.
type ICMPLimit struct {
	PerSec  int // tokens a second (0: DefaultICMPPerSec; negative: no limit)
	Burst   int // bucket size (0: DefaultICMPBurst)
	Workers int // workers sharing the allowance (0: 1)
}

// The kernel's defaults: net.ipv4.icmp_msgs_per_sec and icmp_msgs_burst.
const (
	DefaultICMPPerSec = 1000
	DefaultICMPBurst  = 50
)

// icmpBucket is a worker's token bucket for ICMPLimit, in nanoseconds of
// credit (the kernel's xrlim shape): each error costs cost ns, the credit
// grows with elapsed time up to max.
type icmpBucket struct {
	init   bool
	off    bool  // no limit
	cost   int64 // ns of credit an error costs
	max    int64 // ns of credit the bucket holds at most
	credit int64
	last   int64 // connection-table clock of the last refill
}

// allow reports whether one more ICMP error may be sent at mono (the
// connection table's clock), taking its token.
func (b *icmpBucket) allow(l *ICMPLimit, mono int64) bool {
	if !b.init {
		b.setup(l, mono)
	}
	if b.off {
		return true
	}
	if d := mono - b.last; d > 0 {
		b.credit = min(b.credit+d, b.max)
		b.last = mono
	}
	if b.credit < b.cost {
		return false
	}
	b.credit -= b.cost
	return true
}

func (b *icmpBucket) setup(l *ICMPLimit, mono int64) {
	b.init, b.last = true, mono
	rate, burst, n := l.PerSec, l.Burst, int64(max(l.Workers, 1))
	if rate < 0 {
		b.off = true
		return
	}
	if rate == 0 {
		rate = DefaultICMPPerSec
	}
	if burst <= 0 {
		burst = DefaultICMPBurst
	}
	perWorker := max(int64(rate)/n, 1)
	b.cost = int64(time.Second) / perWorker
	b.max = max(int64(burst)/n, 1) * b.cost
	b.credit = b.max
}

// icmpLimited reports whether the kernel's rate mask selects an ICMP error
// kind for the limit: every kind in IPv4 (destination unreachable — frag
// needed too — and time exceeded are in icmp_ratemask's default), all but
// packet too big in IPv6.
func icmpLimited(kind icmpKind, ipVersion uint8) bool {
	return ipVersion == 4 || kind != icmpFragNeeded
}

// icmpSource picks the source address of an ICMP error about the frame of
// pc, as the kernel's icmp_send would: the address the frame was sent to
// when that is the director's own (a VIP or a host address), otherwise the
// route's preferred source towards the frame's sender (a forwarded frame —
// a reply on its way to a client, addressed to the client — must not
// produce an error that claims to come from the client). It reports false
// when no such address is known yet (the route is unresolved).
func (w *Worker) icmpSource(pc *pktCtx) ([16]byte, bool) {
	p := pc.p
	if pc.snap.IsVIP(p.Dst) || pc.host.Local[p.Dst] {
		return p.Dst, true
	}
	h, ok := w.env.Hops.Lookup(p.SrcAddr())
	if !ok || !h.Src.IsValid() || h.Src.Is4() != (p.IPVersion == 4) {
		return [16]byte{}, false
	}
	return h.Src.As16(), true
}

// sendICMP sends an ICMP error of the given kind about the frame of pc
// back to its source, out the interface it came in by, from the
// director's own address (icmpSource); mtu is the next-hop MTU of
// icmpFragNeeded. Errors over the rate limit (ICMPLimit) are counted and
// not sent.
func (w *Worker) sendICMP(pc *pktCtx, kind icmpKind, mtu uint16) {
	f, p := pc.f, pc.p
	if w.nctl >= len(w.ctl) {
		return
	}
	src, ok := w.icmpSource(pc)
	if !ok {
		return
	}
	if icmpLimited(kind, p.IPVersion) && !w.icmp.allow(&w.env.ICMPLimit, pc.mono) {
		w.Counters.inc(CntICMPRateLimited)
		return
	}
	buf, data := w.ctl[w.nctl], f.Data()
	n := 0
	if p.IPVersion == 4 {
		typ, code := uint8(header.ICMPv4DestUnreachable), uint8(header.ICMPv4CodePortUnreach)
		switch kind {
		case icmpTimeExceeded:
			typ, code = header.ICMPv4TimeExceeded, header.ICMPv4CodeTTLExceeded
		case icmpFragNeeded:
			code = header.ICMPv4CodeFragNeeded
		}
		n = header.ICMPv4Error(buf, data, p, [4]byte(src[12:]), typ, code, mtu)
	} else {
		typ, code, param := uint8(header.ICMPv6DestUnreachable), uint8(header.ICMPv6CodePortUnreach), uint32(0)
		switch kind {
		case icmpTimeExceeded:
			typ, code = header.ICMPv6TimeExceeded, header.ICMPv6CodeHopLimitExc
		case icmpFragNeeded:
			typ, code, param = header.ICMPv6PacketTooBig, 0, uint32(mtu)
		}
		n = header.ICMPv6Error(buf, data, p, src, typ, code, param)
	}
	if n == 0 {
		return
	}
	w.nctl++
	w.out = append(w.out, Frame{Buf: buf, Len: n, Ifindex: f.Ifindex})
}
