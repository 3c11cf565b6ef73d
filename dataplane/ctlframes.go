package dataplane

import (
	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/modes"
	"github.com/uvs-lb/uvs/snapshot"
	"github.com/uvs-lb/uvs/spec"
)

// ICMP errors the worker sends itself.
const (
	icmpPortUnreach = iota
	icmpTimeExceeded
)

// arp answers an ARP request for a VIP the kernel does not own (the VIP is
// not configured on a director interface), so clients can reach it either
// way.
func (w *Worker) arp(f *Frame, data []byte, snap *snapshot.Snapshot, host *Host) {
	p := w.p
	if p.Reason != header.ReasonNone || p.ARPOp != header.ARPRequest {
		return
	}
	a := p.Dst
	if !(snap.IsVIP(a) || host.Marked[a]) || host.Local[a] {
		return
	}
	ifc, ok := host.Ifaces[f.Ifindex]
	if !ok {
		return
	}
	if header.ARPReplyInPlace(data, p, ifc.MAC) {
		w.Counters.inc(CntARPReply)
		w.emit(f, f.Ifindex)
	}
}

// ndp answers an IPv6 neighbour solicitation for a VIP the kernel does not own.
func (w *Worker) ndp(f *Frame, data []byte, snap *snapshot.Snapshot, host *Host) {
	p := w.p
	if p.L4Off+24 > p.End {
		return
	}
	target := header.ICMPv6(data[p.L4Off:p.End]).Target()
	if !(snap.IsVIP(target) || host.Marked[target]) || host.Local[target] {
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

// sendICMP sends an ICMP error about the frame back to its source (out the
// interface it came in by), from the address it was sent to.
func (w *Worker) sendICMP(f *Frame, data []byte, host *Host, kind int) {
	w.icmp(f, data, kind, 0)
}

func (w *Worker) sendICMPMTU(f *Frame, data []byte, host *Host, mtu uint16) {
	w.icmp(f, data, -1, mtu)
}

func (w *Worker) icmp(f *Frame, data []byte, kind int, mtu uint16) {
	p := w.p
	if w.nctl >= len(w.ctl) {
		return
	}
	buf := w.ctl[w.nctl]
	n := 0
	if p.IPVersion == 4 {
		typ, code := uint8(3), uint8(3) // destination unreachable, port unreachable
		switch kind {
		case icmpTimeExceeded:
			typ, code = 11, 0
		case -1:
			typ, code = 3, 4 // fragmentation needed
		}
		n = header.ICMPv4Error(buf, data, p, [4]byte(p.DstIP()), typ, code, mtu)
	} else {
		typ, code, param := uint8(1), uint8(4), uint32(0) // destination unreachable, port unreachable
		switch kind {
		case icmpTimeExceeded:
			typ, code = 3, 0
		case -1:
			typ, code, param = 2, 0, uint32(mtu)
		}
		n = header.ICMPv6Error(buf, data, p, p.Dst, typ, code, param)
	}
	if n == 0 {
		return
	}
	w.nctl++
	w.out = append(w.out, Frame{Buf: buf, Len: n, Ifindex: f.Ifindex})
}

// icmpError relates an ICMP error to a connection (net/netfilter/ipvs/ip_vs_core.c, ip_vs_in_icmp and ip_vs_out_icmp): the
// quoted packet is one the connection sent, so its reversed tuple is the
// connection key. NAT rewrites the addresses; the other methods forward
// the error unchanged to the real server.
func (w *Worker) icmpError(f *Frame, data []byte, host *Host, mono int64) {
	p := w.p
	in := &p.Inner
	if in.Proto != header.ProtoTCP && in.Proto != header.ProtoUDP {
		return
	}
	var key conntrack.Key
	key.Src, key.Dst = in.Dst, in.Src
	key.SrcPort, key.DstPort, key.Proto = in.DstPort, in.SrcPort, in.Proto
	c := &w.cn
	if !w.env.Conns.Lookup(key, mono, c) {
		return
	}
	w.Counters.inc(CntICMPRelated)
	if c.Dir == conntrack.DirIn && c.Fwd != spec.FwdMasq {
		// DR, TUN: forward the error unchanged through the connection's
		// transmitter (MAC rewrite or encapsulation), as ip_vs_in_icmp does.
		switch c.Fwd {
		case spec.FwdRoute, spec.FwdLocal, spec.FwdTunnel:
			w.request(f, data, c, host)
		default:
			w.Counters.inc(CntUnsupported) // FULLNAT: not translated yet
		}
		return
	}
	if c.Dir == conntrack.DirIn {
		// From the client's side, about a reply we sent it.
		real := header.AddrFrom16(c.Real.Addr)
		hop, ok := w.hop(real)
		if !ok {
			if e := w.enqueue(pendICMPIn, f, real); e != nil {
				e.c = *c
			}
			return
		}
		w.icmpIn(f, data, c, &hop, host)
		return
	}
	// From a real server, about a request we forwarded to it.
	if c.Fwd != spec.FwdMasq {
		return
	}
	if r := modes.NATICMPOut(data, p, addrPort(c.Virtual)); !w.verdict(f, data, r, host) {
		return
	}
	ifc, ok := host.Ifaces[int(c.Ifindex)]
	if !ok {
		return
	}
	eth := header.Ethernet(data)
	eth.SetDst(c.MAC)
	eth.SetSrc(ifc.MAC)
	w.emit(f, int(c.Ifindex))
}
