package ownership_test

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"slices"

	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/ownership"
)

// frameGen generates frames from a seeded source: mostly near-misses of
// the fixture (its addresses and ports, every protocol, fragments,
// options, extension headers, ICMP errors quoting such packets), then
// mutated (truncated, with a byte or a length field changed). It never
// makes a frame longer than an untagged 1500-byte MTU allows, nor an IPv6
// frame with more than 8 extension headers (newer kernels stop walking at
// 12: see ownership's documentation).
type frameGen struct {
	r *rand.Rand
	s *ownership.Set // half of the flows start from one of its entries
}

func newFrameGen(seed uint64, s *ownership.Set) *frameGen {
	return &frameGen{r: rand.New(rand.NewPCG(seed, seed^0x75767300)), s: s}
}

var (
	pool4 = []string{vip4, vip4any, vip4sctp, vip4udp0, vip4fn, vip4fn2, mark4, mark4any, mark4off, vip4loc, lip4, dir4, rs4, rs4b, cli4, router4, "198.19.0.6", "127.0.0.1", vip4tun, rs4t, rs4g, rs4u}
	pool6 = []string{vip6, vip6any, vip6fn, mark6, lip6, dir6, rs6, cli6, router6, "::1", "::ffff:" + vip4, "::ffff:" + rs4}
	ports = []uint16{0, 1, 22, 53, 80, 443, 5000, 5001, 5353, 7777, 8000, 8001, 8002, 8080, 8443, 9000,
		60999, 61000, 61001, 61999, 62000, 65535}
)

func (g *frameGen) pick(n int) int { return g.r.IntN(n) }

func (g *frameGen) chance(p float64) bool { return g.r.Float64() < p }

func (g *frameGen) addr(v6 bool) string {
	if v6 {
		if g.chance(0.1) {
			var b [16]byte
			for i := range b {
				b[i] = byte(g.r.Uint32())
			}
			return netip.AddrFrom16(b).String()
		}
		return pool6[g.pick(len(pool6))]
	}
	if g.chance(0.1) {
		return netip.AddrFrom4([4]byte{byte(g.r.Uint32()), byte(g.r.Uint32()), byte(g.r.Uint32()), byte(g.r.Uint32())}).String()
	}
	return pool4[g.pick(len(pool4))]
}

func (g *frameGen) port() uint16 {
	if g.chance(0.15) {
		return uint16(g.r.Uint32())
	}
	return ports[g.pick(len(ports))]
}

func (g *frameGen) proto(v6 bool) uint8 {
	ps := []uint8{header.ProtoTCP, header.ProtoUDP, header.ProtoSCTP, header.ProtoTCP, header.ProtoUDP, header.ProtoGRE, header.ProtoIPIP}
	if g.chance(0.05) {
		return uint8(g.r.Uint32())
	}
	return ps[g.pick(len(ps))]
}

// flow returns a TCP/UDP/SCTP (or other) packet with the fixture's
// addresses and ports: half the time one an entry of the Set owns (a
// service, a NAT reply, a FULLNAT reply) before headers and mutations.
func (g *frameGen) flow(v6 bool) pkt {
	p := g.proto(v6)
	src, dst, sport, dport := g.addr(v6), g.addr(v6), g.port(), g.port()
	if g.chance(0.5) {
		fam := func(a netip.Addr) bool { return a.Is6() == v6 }
		switch g.pick(4) {
		case 0:
			es := slices.DeleteFunc(slices.Clone(g.s.Services), func(e ownership.Endpoint) bool { return !fam(e.Addr) })
			if len(es) > 0 {
				e := es[g.pick(len(es))]
				dst, p = e.Addr.String(), uint8(e.Proto)
				if e.Port != 0 {
					dport = e.Port
				}
			}
		case 1:
			es := slices.DeleteFunc(slices.Clone(g.s.NATReplies), func(e ownership.Endpoint) bool { return !fam(e.Addr) })
			if len(es) > 0 {
				e := es[g.pick(len(es))]
				src, p, sport = e.Addr.String(), uint8(e.Proto), e.Port
			}
		case 2:
			rs := slices.DeleteFunc(slices.Clone(g.s.LocalRanges), func(r ownership.PortRange) bool { return !fam(r.Addr) })
			if len(rs) > 0 {
				r := rs[g.pick(len(rs))]
				dst, p = r.Addr.String(), uint8(r.Proto)
				dport = r.First + uint16(g.pick(int(r.Last-r.First)+1))
			}
		case 3:
			// To a TUN real server, as the director's encapsulated
			// packets go (ICMP errors quote them).
			if ts := g.s.Tunnels; !v6 && len(ts) > 0 {
				t := ts[g.pick(len(ts))]
				dst, p = t.Addr.String(), t.Proto
				if t.Port != 0 {
					dport = t.Port
				}
			}
		}
	}
	fl := pkt{v6: v6, src: src, dst: dst, proto: p, l4: l4H(p, sport, dport)}
	g.headers(&fl)
	return fl
}

// headers adds IPv4 options, fragments or IPv6 extension headers.
func (g *frameGen) headers(p *pkt) {
	if p.v6 {
		if g.chance(0.3) {
			exts := []uint8{header.ProtoHopByHop, header.ProtoDstOpts, header.ProtoRouting, header.ProtoAH, header.ProtoDstOpts}
			for range 1 + g.pick(7) {
				p.exts = append(p.exts, exts[g.pick(len(exts))])
			}
		}
		if g.chance(0.15) {
			p.frag6 = true
			if g.chance(0.6) {
				p.fragOff = uint16(1 + g.pick(200))
			}
			p.lastFrag = g.chance(0.3)
		}
		return
	}
	if g.chance(0.15) {
		p.opts = g.pick(11)
	}
	if g.chance(0.15) {
		p.fragOff = uint16(g.pick(3) * 50)
		p.mf = g.chance(0.5)
	}
}

// icmp returns an ICMP message, mostly an error quoting a flow.
func (g *frameGen) icmp(v6 bool) pkt {
	var types []uint8
	if v6 {
		types = []uint8{0, 1, 2, 3, 4, 5, 128, 135, 136}
	} else {
		types = []uint8{0, 3, 4, 5, 8, 11, 12, 13}
	}
	typ := types[g.pick(len(types))]
	if v6 && typ == header.ICMPv6NeighborSolicit {
		p := ndp(typ, g.addr(true))
		g.headers(&p)
		return p
	}
	qv6 := v6 != g.chance(0.05) // now and then a quote of the other version
	q := g.flow(qv6)
	if g.chance(0.5) {
		// From a local range address or a client, as the FULLNAT and
		// NAT connections' packets are.
		if qv6 {
			q.src = []string{lip6, dir6, cli6}[g.pick(3)]
		} else {
			q.src = []string{lip4, dir4, cli4}[g.pick(3)]
		}
	}
	tun := !v6 && !qv6 && len(g.s.Tunnels) > 0 && g.chance(0.25)
	if tun {
		// About the director's own tunnelled packet: from one of its
		// addresses (or not) to a TUN real server (or another host),
		// with the outer protocol and GUE port of one (or another).
		t := g.s.Tunnels[g.pick(len(g.s.Tunnels))]
		q.dst, q.proto = t.Addr.String(), t.Proto
		if g.chance(0.2) {
			q.dst = g.addr(false)
		}
		if g.chance(0.2) {
			q.proto = g.proto(false)
		}
		dport := t.Port
		if dport == 0 || g.chance(0.2) {
			dport = g.port()
		}
		q.l4 = l4H(q.proto, g.port(), dport)
		local := slices.DeleteFunc(slices.Clone(g.s.Local), netip.Addr.Is6)
		if len(local) > 0 && g.chance(0.8) {
			q.src = local[g.pick(len(local))].String()
		}
	}
	p := icmpErr(typ, g.addr(v6), g.addr(v6), q)
	if qv6 == v6 && g.chance(0.4) || tun && g.chance(0.8) {
		p.dst = q.src // errors go back to the sender of the quoted packet
	}
	g.headers(&p)
	return p
}

// frame returns the next frame.
func (g *frameGen) frame() []byte {
	var f []byte
	switch n := g.pick(100); {
	case n < 8:
		ops := []uint16{header.ARPRequest, header.ARPRequest, header.ARPReply, 3}
		f = arpFrame(ops[g.pick(len(ops))], g.addr(false), nil)
		if g.chance(0.1) {
			f[header.EthernetMinSize+g.pick(8)] ^= byte(1 << g.pick(8))
		}
	case n < 36:
		f = g.flow(false).frame()
	case n < 60:
		f = g.flow(true).frame()
	case n < 78:
		f = g.icmp(false).frame()
	case n < 94:
		f = g.icmp(true).frame()
	case n < 97:
		p := g.flow(g.chance(0.5))
		p.tpid = []uint16{header.EtherTypeVLAN, header.EtherTypeQinQ}[g.pick(2)]
		f = p.frame()
		return g.mutate(f)
	default:
		f = make([]byte, 14+g.pick(80))
		for i := range f {
			f[i] = byte(g.r.Uint32())
		}
		return g.mutate(f)
	}
	if g.chance(0.12) {
		// Tagged: one 802.1Q tag (uvsd's when what it carries is), now
		// and then an 802.1ad one or two tags (the kernel's).
		tags := [][]byte{{0x81, 0, 0, byte(g.pick(8))}, {0x81, 0, 0x0f, 0xff}}
		switch g.pick(6) {
		case 0:
			tags = append(tags, []byte{0x88, 0xa8, 0, 7})
		case 1:
			tags = append(tags, []byte{0x88, 0xa8, 0, 7, 0x81, 0, 0, 9})
		case 2:
			tags = append(tags, []byte{0x81, 0, 0, 7, 0x81, 0, 0, 9})
		}
		tag := tags[g.pick(len(tags))]
		f = slices.Concat(f[:header.EthernetTypeOff], tag, f[header.EthernetTypeOff:])
	}
	return g.mutate(f)
}

// mutate changes f a little, a third of the time.
func (g *frameGen) mutate(f []byte) []byte {
	if !g.chance(0.35) || len(f) <= header.EthernetMinSize {
		return f
	}
	ip := f[header.EthernetMinSize:]
	switch g.pick(4) {
	case 0: // cut, keeping the IP length field true or not
		n := header.EthernetMinSize + g.pick(len(ip))
		f = f[:n]
		if g.chance(0.6) {
			fixLen(f)
		}
	case 1: // one byte of the headers
		i := header.EthernetMinSize + g.pick(min(len(ip), 80))
		f[i] = byte(g.r.Uint32())
	case 2: // the IP length field
		if len(ip) >= header.IPv6PayloadLenOff+2 {
			off := header.IPv4TotalLenOff
			if binary.BigEndian.Uint16(f[header.EthernetTypeOff:]) == header.EtherTypeIPv6 {
				off = header.IPv6PayloadLenOff
			}
			binary.BigEndian.PutUint16(ip[off:], uint16(g.pick(len(ip)+8)))
		}
	case 3: // Ethernet padding
		f = append(f, make([]byte, 1+g.pick(20))...)
	}
	return f
}

// fixLen sets the IP length field of a cut frame to the bytes left.
func fixLen(f []byte) {
	ip := f[header.EthernetMinSize:]
	switch binary.BigEndian.Uint16(f[header.EthernetTypeOff:]) {
	case header.EtherTypeIPv4:
		if len(ip) >= header.IPv4MinSize {
			binary.BigEndian.PutUint16(ip[header.IPv4TotalLenOff:], uint16(len(ip)))
		}
	case header.EtherTypeIPv6:
		if len(ip) >= header.IPv6Size {
			binary.BigEndian.PutUint16(ip[header.IPv6PayloadLenOff:], uint16(len(ip)-header.IPv6Size))
		}
	}
}
