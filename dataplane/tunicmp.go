package dataplane

import (
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/spec"
)

// Path MTUs learnt for the TUN real servers.
//
// The kernel tunnels towards a real server on the route to it, whose MTU
// an ICMP fragmentation-needed about one of the director's own IPIP, GUE
// or GRE packets lowers (ip_vs_in_icmp calls ipv4_update_pmtu,
// net/netfilter/ipvs/ip_vs_core.c), for ip_rt_mtu_expires (600 s), never
// below ip_rt_min_pmtu (552) unless the route's MTU already is
// (__ip_rt_update_pmtu, net/ipv4/route.c). Here the learnt MTUs live in
// one table shared by the workers of an Env: an error about a real server
// arrives on whichever worker the fan-out hashes the router's packet to,
// while that real server's traffic is spread over every worker. It is
// copied on write (an ICMP error, rare) and read with one atomic load per
// tunnelled packet when it is not empty; no atomic is written per packet.

// PMTU ageing and bounds (net/ipv4/route.c).
const (
	pmtuExpires = 600 * time.Second // ip_rt_mtu_expires
	pmtuMin     = 552               // ip_rt_min_pmtu
	pmtuMax     = 4096              // entries kept; more real servers' errors are ignored
)

// pmtuEntry is a learnt path MTU and when it expires (on the
// connection table's clock, pktCtx.mono).
type pmtuEntry struct {
	mtu     int
	expires int64
}

// pmtuTable maps a real server's address (As16) to its learnt path MTU.
type pmtuTable struct {
	mu sync.Mutex // serialises writers
	m  atomic.Pointer[map[[16]byte]pmtuEntry]
}

// get returns the path MTU learnt for dst, or 0.
func (t *pmtuTable) get(dst *[16]byte, now int64) int {
	if t == nil {
		return 0
	}
	m := t.m.Load()
	if m == nil || len(*m) == 0 {
		return 0
	}
	e, ok := (*m)[*dst]
	if !ok || e.expires <= now {
		return 0
	}
	return e.mtu
}

// learn records an ICMP fragmentation-needed MTU for dst, whose route MTU
// (the interface's) is routeMTU, as __ip_rt_update_pmtu does: an MTU below
// 552 becomes 552 (or the current MTU, if lower); one that is not lower
// than the current MTU changes nothing. It returns the route's MTU
// afterwards and whether it was lowered.
func (t *pmtuTable) learn(dst [16]byte, mtu, routeMTU int, now int64) (int, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.m.Load()
	cur := routeMTU
	if old != nil {
		if e, ok := (*old)[dst]; ok && e.expires > now && e.mtu < cur {
			cur = e.mtu
		}
	}
	if mtu < pmtuMin {
		mtu = min(cur, pmtuMin)
	}
	if mtu >= cur {
		return cur, false
	}
	m := make(map[[16]byte]pmtuEntry, 1)
	if old != nil {
		for k, e := range *old {
			if e.expires > now {
				m[k] = e
			}
		}
	}
	if _, ok := m[dst]; !ok && len(m) >= pmtuMax {
		return cur, false
	}
	m[dst] = pmtuEntry{mtu: mtu, expires: now + int64(pmtuExpires)}
	t.m.Store(&m)
	return mtu, true
}

// tunIdents hands out outer IPv4 identifications for tunnelled packets
// without DF, as __ip_select_ident does (net/ipv4/route.c): a counter per
// bucket of (destination, protocol), starting at a random value. The
// buckets are per worker (no shared write per packet); each worker's start
// is random, so the workers' sequences for one real server do not move in
// step.
type tunIdents struct {
	seeded bool
	id     [64]uint16
}

// next returns the identification for a packet to dst of protocol proto.
func (t *tunIdents) next(dst *[16]byte, proto uint8) uint16 {
	if !t.seeded {
		for i := range t.id {
			t.id[i] = uint16(rand.Uint32())
		}
		t.seeded = true
	}
	h := uint32(proto)
	for _, b := range dst[12:] {
		h = h*31 + uint32(b)
	}
	h ^= uint32(dst[0])<<8 | uint32(dst[15])
	i := h % uint32(len(t.id))
	t.id[i]++
	return t.id[i]
}

// Tunnel header sizes after the outer IPv4 header, for ICMP errors.
const (
	greHdr     = 4
	greCsumLen = 4
	gueHdr     = header.UDPSize + 4
)

// tunICMP handles an ICMPv4 error about one of the director's own
// tunnelled packets (ip_vs_in_icmp, net/netfilter/ipvs/ip_vs_core.c): the
// quoted packet is an outer IPv4 header from a director address to a TUN
// real server, carrying IPIP, GRE (version 0, protocol IPv4) or GUE (UDP
// to the real server's tunnel port, GUE version 0, IPv4), and after it the
// start of a client's IPv4 request of a tunnelled connection. A
// fragmentation-needed lowers the path MTU to the real server
// (CntPMTULearned) and, when the client's packet had DF, sends the client
// a fragmentation-needed with the route's MTU less the tunnel overhead;
// any other error is relayed to the client with its type and code. It
// reports whether the error was such an error (handled or dropped here).
// As in the kernel, only IPv4 outer and inner headers are understood.
func (w *Worker) tunICMP(pc *pktCtx) bool {
	p := pc.p
	in := &p.Inner
	if p.IPVersion != 4 || in.IPVersion != 4 {
		return false
	}
	var ulen int
	data := pc.f.Data()
	end := min(p.End, len(data))
	l4 := in.L4Off
	switch in.Proto {
	case header.ProtoIPIP:
	case header.ProtoGRE:
		if l4+greHdr > end {
			return false
		}
		flags := binary.BigEndian.Uint16(data[l4:])
		if flags&^0x8000 != 0 || binary.BigEndian.Uint16(data[l4+2:]) != header.EtherTypeIPv4 {
			return false // not a header ipvs_gre_encap writes
		}
		ulen = greHdr
		if flags != 0 {
			ulen += greCsumLen
		}
	case header.ProtoUDP:
		if l4+gueHdr > end || data[l4+8]>>5 != 0 || data[l4+9] != header.ProtoIPIP {
			return false
		}
		ulen = gueHdr + int(data[l4+8]&0x1f)*4
	default:
		return false
	}
	outerSrc, real := in.Src, in.Dst
	if !pc.host.Local[outerSrc] {
		return false // not the director's packet
	}
	ci := l4 + ulen // the client's packet
	if ci+header.IPv4MinSize > end || data[ci]>>4 != 4 {
		return false
	}
	ihl := int(data[ci]&0x0f) * 4
	if ihl < header.IPv4MinSize || ci+ihl+4 > end {
		return false
	}
	proto := data[ci+9]
	if proto != header.ProtoTCP && proto != header.ProtoUDP {
		return false
	}
	var key conntrack.Key
	copy(key.Src[:], real[:12]) // the IPv4-mapped prefix
	key.Dst = key.Src
	copy(key.Src[12:], data[ci+12:ci+16])
	copy(key.Dst[12:], data[ci+16:ci+20])
	key.SrcPort = binary.BigEndian.Uint16(data[ci+ihl:])
	key.DstPort = binary.BigEndian.Uint16(data[ci+ihl+2:])
	key.Proto = proto
	c := &w.cn
	if !w.env.Conns.Lookup(key, pc.mono, c) || c.Dir != conntrack.DirIn || c.Fwd != spec.FwdTunnel || c.Real.Addr != real {
		return false
	}
	switch cfg := c.Dest.Config(); {
	case in.Proto == header.ProtoGRE && cfg.TunType != spec.TunGRE,
		in.Proto == header.ProtoUDP && (cfg.TunType != spec.TunGUE || cfg.TunPort != in.DstPort),
		in.Proto == header.ProtoIPIP && cfg.TunType != spec.TunIPIP:
		return false
	}
	icmp := data[p.L4Off:end]
	if header.Checksum(icmp, 0) != 0xffff {
		w.Counters.inc(CntMalformed)
		return true
	}
	w.Counters.inc(CntICMPRelated)
	var info uint16
	if p.ICMPType == header.ICMPv4DestUnreachable && p.ICMPCode == header.ICMPv4CodeFragNeeded {
		h, ok := w.env.Hops.Lookup(header.AddrFrom16(real))
		if !ok || h.MTU <= 0 || w.env.tunPMTU == nil {
			return true
		}
		routeMTU := h.MTU
		if l := w.env.tunPMTU.get(&real, pc.mono); l > 0 {
			routeMTU = min(routeMTU, l)
		}
		mtu, lowered := w.env.tunPMTU.learn(real, int(binary.BigEndian.Uint16(icmp[6:])), routeMTU, pc.mono)
		if lowered {
			w.Counters.inc(CntPMTULearned)
		}
		// Client uses PMTUD? (the outer DF is the client's).
		if binary.BigEndian.Uint16(data[in.L3Off+6:])&header.IPv4FlagDF == 0 {
			return true
		}
		if ov := header.IPv4MinSize + ulen; mtu > 68+ov {
			mtu -= ov
		}
		info = uint16(mtu)
	}
	w.tunICMPToClient(pc, c, data[ci:end], info)
	return true
}

// tunICMPToClient sends the client of connection c an ICMPv4 error of the
// type and code of the error in pc about its packet quoted (as much as the
// error carried, at most 548 bytes), from the address that packet was
// sent to (a VIP), as icmp_send does; info is the next-hop MTU of a
// fragmentation-needed.
func (w *Worker) tunICMPToClient(pc *pktCtx, c *conntrack.Conn, quoted []byte, info uint16) {
	if w.nctl >= len(w.ctl) {
		return
	}
	if !w.icmp.allow(&w.env.ICMPLimit, pc.mono) {
		w.Counters.inc(CntICMPRateLimited)
		return
	}
	var h Hop
	if c.MAC != ([6]byte{}) {
		ifc, ok := pc.host.Ifaces[int(c.Ifindex)]
		if !ok {
			w.Counters.inc(CntNeighMiss)
			return
		}
		h.Ifindex, h.DstMAC, h.SrcMAC = int(c.Ifindex), c.MAC, ifc.MAC
	} else if h2, ok := w.env.Hops.Lookup(header.AddrFrom16(c.Client.Addr)); ok {
		h = h2
	} else {
		w.Counters.inc(CntNeighMiss)
		return
	}
	quoted = quoted[:min(len(quoted), 576-header.IPv4MinSize-header.ICMPv4MinSize)]
	buf := w.ctl[w.nctl]
	n := header.EthernetMinSize + header.IPv4MinSize + header.ICMPv4MinSize + len(quoted)
	if n > len(buf) {
		return
	}
	copy(buf[0:6], h.DstMAC[:])
	copy(buf[6:12], h.SrcMAC[:])
	binary.BigEndian.PutUint16(buf[12:], header.EtherTypeIPv4)
	ip := header.IPv4(buf[header.EthernetMinSize : header.EthernetMinSize+header.IPv4MinSize])
	ip[0] = 0x45
	ip[1] = quoted[1]&0x1e | 0xc0 // IPTOS_PREC_INTERNETCONTROL, as icmp_send
	binary.BigEndian.PutUint16(ip[header.IPv4TotalLenOff:], uint16(n-header.EthernetMinSize))
	binary.BigEndian.PutUint32(ip[4:], 0)
	ip[header.IPv4TTLOff] = header.ICMPErrorTTL
	ip[9] = header.ProtoICMPv4
	copy(ip[header.IPv4SrcOff:], quoted[16:20]) // the VIP
	copy(ip[header.IPv4DstOff:], quoted[12:16]) // the client
	ip.SetChecksum(0)
	ip.UpdateChecksum()
	m := buf[header.EthernetMinSize+header.IPv4MinSize : n]
	m[0], m[1] = pc.p.ICMPType, pc.p.ICMPCode
	binary.BigEndian.PutUint32(m[2:], 0)
	binary.BigEndian.PutUint16(m[6:], info)
	copy(m[header.ICMPv4MinSize:], quoted)
	binary.BigEndian.PutUint16(m[2:], ^header.Checksum(m, 0))
	w.nctl++
	w.emit(&Frame{Buf: buf, Len: n}, h.Ifindex)
}

// tunnelMTU returns the path MTU towards real (As16) for a tunnelled
// packet: the route's (hop) MTU, lowered by what ICMP errors taught.
func (w *Worker) tunnelMTU(pc *pktCtx, real *[16]byte) int {
	mtu := pc.hop.MTU
	if l := w.env.tunPMTU.get(real, pc.mono); l > 0 && (mtu <= 0 || l < mtu) {
		mtu = l
	}
	return mtu
}
