package dataplane

import (
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

// sendICMP sends an ICMP error of the given kind about the frame of pc
// back to its source, out the interface it came in by, from the address it
// was sent to; mtu is the next-hop MTU of icmpFragNeeded.
func (w *Worker) sendICMP(pc *pktCtx, kind icmpKind, mtu uint16) {
	f, p := pc.f, pc.p
	if w.nctl >= len(w.ctl) {
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
		n = header.ICMPv4Error(buf, data, p, [4]byte(p.DstIP()), typ, code, mtu)
	} else {
		typ, code, param := uint8(header.ICMPv6DestUnreachable), uint8(header.ICMPv6CodePortUnreach), uint32(0)
		switch kind {
		case icmpTimeExceeded:
			typ, code = header.ICMPv6TimeExceeded, header.ICMPv6CodeHopLimitExc
		case icmpFragNeeded:
			typ, code, param = header.ICMPv6PacketTooBig, 0, uint32(mtu)
		}
		n = header.ICMPv6Error(buf, data, p, p.Dst, typ, code, param)
	}
	if n == 0 {
		return
	}
	w.nctl++
	w.out = append(w.out, Frame{Buf: buf, Len: n, Ifindex: f.Ifindex})
}
