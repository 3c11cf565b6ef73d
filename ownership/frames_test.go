package ownership_test

import (
	"encoding/binary"
	"net/netip"

	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/ownership"
	"github.com/uvs-lb/uvs/spec"
)

// The fixture: services of every kind, IPv4 and IPv6, with the addresses
// the frame table and the frame generator use.
var (
	vip4     = "198.18.0.10"  // TCP 80 -> rs4:8080 NAT, UDP 53 -> rs4:5353 NAT
	vip4any  = "198.18.0.11"  // TCP port 0, DR
	vip4sctp = "198.18.0.12"  // SCTP 9000 -> rs4:9000 NAT
	vip4udp0 = "198.18.0.13"  // UDP port 0 -> rs4:0 NAT (replies not owned)
	vip4fn   = "198.18.0.30"  // TCP 80 FULLNAT -> rs4:80, pool lip4
	vip4fn2  = "198.18.0.31"  // TCP 80 FULLNAT -> 198.19.0.6:80, route source dir4
	mark4    = "198.18.0.20"  // MARK 7: TCP 8000, 8001 -> rs4b NAT
	mark4any = "198.18.0.21"  // MARK 7: any protocol, any port
	mark4off = "198.18.0.99"  // MARK 9: no service uses the mark
	vip4loc  = "198.18.1.1"   // TCP 443 -> rs4:8443 NAT; a director address
	lip4     = "198.18.1.100" // FULLNAT pool address
	dir4     = "198.19.0.1"   // director address, FULLNAT route source
	rs4      = "198.19.0.2"
	rs4b     = "198.19.0.3"
	vip4tun  = "198.18.0.40" // TCP 80 TUN -> rs4t (ipip), rs4g (gre), rs4u (gue, port 6080), rs6 (not a Tunnel: IPv6)
	rs4t     = "198.19.0.7"
	rs4g     = "198.19.0.8"
	rs4u     = "198.19.0.9"
	cli4     = "203.0.113.7"
	router4  = "203.0.113.254"

	vip6    = "2001:db8::10"    // TCP 80 -> [rs6]:8080 NAT
	vip6any = "2001:db8::11"    // UDP port 0, DR
	vip6fn  = "2001:db8::30"    // TCP 443 FULLNAT -> [rs6]:443, pool lip6
	mark6   = "2001:db8::20"    // MARK 8: UDP 5000
	lip6    = "2001:db8:1::100" // FULLNAT pool address
	dir6    = "2001:db8:1::1"   // director address, FULLNAT route source
	rs6     = "2001:db8:1::2"
	cli6    = "2001:db8:2::7"
	router6 = "2001:db8:2::ff"
)

const lportMin, lportMax = 61000, 65535

func a(s string) netip.Addr { return netip.MustParseAddr(s) }

func svc(proto spec.Proto, vip string, port uint16, pool []string, dests ...spec.Dest) ownership.Service {
	s := ownership.Service{Config: spec.Service{Key: spec.ServiceKey{Proto: proto, Addr: a(vip), Port: port}}, Dests: dests}
	for _, p := range pool {
		s.Config.LocalAddrs = append(s.Config.LocalAddrs, a(p))
	}
	return s
}

func fwm(mark uint32, v6 bool, dests ...spec.Dest) ownership.Service {
	return ownership.Service{Config: spec.Service{Key: spec.ServiceKey{FWMark: mark, IPv6: v6, Proto: spec.ProtoTCP}}, Dests: dests}
}

func dest(addr string, port uint16, fwd spec.Fwd) spec.Dest {
	return spec.Dest{Addr: a(addr), Port: port, Fwd: fwd, Weight: 1}
}

func tunDest(addr string, typ spec.TunType, port uint16) spec.Dest {
	d := dest(addr, 0, spec.FwdTunnel)
	d.TunType, d.TunPort = typ, port
	return d
}

// gueTunPort is rs4u's --tun-port.
const gueTunPort = 6080

func fixtureInput() ownership.Input {
	tcp, udp, sctp := spec.ProtoTCP, spec.ProtoUDP, spec.ProtoSCTP
	nat, dr, fn := spec.FwdMasq, spec.FwdRoute, spec.FwdFullNAT
	return ownership.Input{
		Services: []ownership.Service{
			svc(tcp, vip4, 80, nil, dest(rs4, 8080, nat)),
			svc(udp, vip4, 53, nil, dest(rs4, 5353, nat)),
			svc(tcp, vip4any, 0, nil, dest("198.19.0.5", 0, dr)),
			svc(sctp, vip4sctp, 9000, nil, dest(rs4, 9000, nat)),
			svc(udp, vip4udp0, 0, nil, dest(rs4, 0, nat)),
			svc(tcp, vip4fn, 80, []string{lip4}, dest(rs4, 80, fn)),
			svc(tcp, vip4fn2, 80, nil, dest("198.19.0.6", 80, fn)),
			svc(tcp, vip4loc, 443, nil, dest(rs4, 8443, nat)),
			fwm(7, false, dest(rs4b, 0, nat)),
			svc(tcp, vip4tun, 80, nil, tunDest(rs4t, spec.TunIPIP, 0), tunDest(rs4g, spec.TunGRE, 0),
				tunDest(rs4u, spec.TunGUE, gueTunPort), tunDest(rs6, spec.TunIPIP, 0)),
			svc(tcp, vip6, 80, nil, dest(rs6, 8080, nat)),
			svc(udp, vip6any, 0, nil, dest("2001:db8:1::5", 0, dr)),
			svc(tcp, vip6fn, 443, []string{lip6}, dest(rs6, 443, fn)),
			fwm(8, true, dest(rs6, 0, dr)),
		},
		Marks: []ownership.MarkTarget{
			{Mark: 7, Addr: a(mark4), Proto: tcp, Ports: []uint16{8000, 8001}},
			{Mark: 7, Addr: a(mark4any)},
			{Mark: 8, Addr: a(mark6), Proto: udp, Ports: []uint16{5000}},
			{Mark: 9, Addr: a(mark4off), Proto: tcp, Ports: []uint16{1}},
		},
		Host:         []netip.Addr{a(vip4loc), a(dir4), a("127.0.0.1"), a(dir6), a("::1")},
		RouteSources: []netip.Addr{a(dir4), a(dir6)},
		LocalPortMin: lportMin, LocalPortMax: lportMax,
	}
}

// pkt describes a test frame, built byte by byte so that every field can
// be made wrong. Only the IPv4 header checksum is computed: nothing under
// test reads the others.
type pkt struct {
	tpid     uint16 // an 802.1Q/802.1ad tag with this TPID (0: untagged)
	v6       bool
	src, dst string
	proto    uint8
	l4       []byte  // transport header and payload
	opts     int     // IPv4: option words (IHL 5+opts)
	fragOff  uint16  // fragment offset in 8-byte units
	mf       bool    // IPv4: the MF flag
	lastFrag bool    // IPv6: the fragment header's M flag clear
	frag6    bool    // IPv6: a fragment header right before l4
	exts     []uint8 // IPv6: extension headers before the fragment header and l4
	fix      func(ip []byte)
	cut      int // keep only this many bytes of the frame (0: all)
	pad      int // Ethernet padding after the IP packet
	etherTyp uint16
}

var (
	macSrc = [6]byte{0x02, 0x75, 0x76, 0x73, 0, 1}
	macDst = [6]byte{0x02, 0x75, 0x76, 0x73, 0, 2}
)

// ip returns the IP packet.
func (p pkt) ip() []byte {
	var b []byte
	if p.v6 {
		b = make([]byte, header.IPv6Size)
		b[0] = 0x60
		s, d := a(p.src).As16(), a(p.dst).As16()
		copy(b[header.IPv6SrcOff:], s[:])
		copy(b[header.IPv6DstOff:], d[:])
		b[7] = 64
		types := append([]uint8(nil), p.exts...)
		if p.frag6 {
			types = append(types, header.ProtoFragment)
		}
		next := &b[header.IPv6NextHeaderOff]
		for _, t := range types {
			*next = t
			var e []byte
			switch t {
			case header.ProtoFragment:
				e = make([]byte, 8)
				m := uint16(1)
				if p.lastFrag {
					m = 0
				}
				binary.BigEndian.PutUint16(e[2:], p.fragOff<<3|m)
				binary.BigEndian.PutUint32(e[4:], 0xabcd)
			case header.ProtoAH:
				e = make([]byte, 12)
				e[1] = 1 // (1+2)*4 bytes
			case header.ProtoRouting:
				e = []byte{0, 0, 4, 0, 0, 0, 0, 0}
			default:
				e = []byte{0, 0, 1, 4, 0, 0, 0, 0} // PadN
			}
			b = append(b, e...)
			next = &b[len(b)-len(e)]
		}
		*next = p.proto
		b = append(b, p.l4...)
		binary.BigEndian.PutUint16(b[header.IPv6PayloadLenOff:], uint16(len(b)-header.IPv6Size))
	} else {
		hl := header.IPv4MinSize + 4*p.opts
		b = make([]byte, hl)
		b[0] = 0x40 | byte(hl/4)
		for i := header.IPv4MinSize; i < hl; i++ {
			b[i] = 1 // NOP options
		}
		b[header.IPv4TTLOff] = 64
		b[header.IPv4ProtoOff] = p.proto
		ff := p.fragOff & header.IPv4FragOffMask
		if p.mf {
			ff |= header.IPv4FlagMF
		}
		binary.BigEndian.PutUint16(b[header.IPv4FlagsFragOff:], ff)
		s, d := a(p.src).As4(), a(p.dst).As4()
		copy(b[header.IPv4SrcOff:], s[:])
		copy(b[header.IPv4DstOff:], d[:])
		b = append(b, p.l4...)
		binary.BigEndian.PutUint16(b[header.IPv4TotalLenOff:], uint16(len(b)))
	}
	if !p.v6 {
		header.IPv4(b).UpdateChecksum()
	}
	if p.fix != nil {
		p.fix(b)
	}
	return b
}

// frame returns the Ethernet frame.
func (p pkt) frame() []byte {
	f := append(macDst[:], macSrc[:]...)
	et := uint16(header.EtherTypeIPv4)
	if p.v6 {
		et = header.EtherTypeIPv6
	}
	if p.etherTyp != 0 {
		et = p.etherTyp
	}
	if p.tpid != 0 {
		f = binary.BigEndian.AppendUint16(f, p.tpid)
		f = binary.BigEndian.AppendUint16(f, 42)
	}
	f = binary.BigEndian.AppendUint16(f, et)
	f = append(f, p.ip()...)
	f = append(f, make([]byte, p.pad)...)
	if p.cut > 0 && p.cut < len(f) {
		f = f[:p.cut]
	}
	return f
}

func tcpH(sport, dport uint16) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b, sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	b[12] = 5 << 4
	b[13] = header.TCPFlagSYN
	return b
}

func udpH(sport, dport uint16) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint16(b, sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], 12)
	return append(b, "data"...)
}

func sctpH(sport, dport uint16) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint16(b, sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	return b
}

// l4H returns a transport header of proto with the ports.
func l4H(proto uint8, sport, dport uint16) []byte {
	switch proto {
	case header.ProtoTCP:
		return tcpH(sport, dport)
	case header.ProtoUDP:
		return udpH(sport, dport)
	case header.ProtoSCTP:
		return sctpH(sport, dport)
	}
	return []byte{byte(sport >> 8), byte(sport), byte(dport >> 8), byte(dport), 0, 0, 0, 0}
}

// icmpH returns an ICMP header of the given type with the quoted packet:
// its IP header and eight bytes more, as an IPv4 router quotes it (RFC 792).
func icmpH(typ, code uint8, quoted []byte) []byte {
	b := []byte{typ, code, 0, 0, 0, 0, 0, 0}
	if len(quoted) > 0 {
		n := header.IPv6Size + 8
		if quoted[0]>>4 == 4 {
			n = int(quoted[0]&15)*4 + 8
		}
		b = append(b, quoted[:min(n, len(quoted))]...)
	}
	return b
}

// flow is a TCP/UDP/SCTP packet.
func flow(proto uint8, src string, sport uint16, dst string, dport uint16) pkt {
	return pkt{v6: a(src).Is6(), src: src, dst: dst, proto: proto, l4: l4H(proto, sport, dport)}
}

func tcp(src string, sport uint16, dst string, dport uint16) pkt {
	return flow(header.ProtoTCP, src, sport, dst, dport)
}

func udp(src string, sport uint16, dst string, dport uint16) pkt {
	return flow(header.ProtoUDP, src, sport, dst, dport)
}

func sctp(src string, sport uint16, dst string, dport uint16) pkt {
	return flow(header.ProtoSCTP, src, sport, dst, dport)
}

// icmpErr is an ICMP (or ICMPv6) message from src to dst quoting q.
func icmpErr(typ uint8, src, dst string, q pkt) pkt {
	v6 := a(src).Is6()
	proto := uint8(header.ProtoICMPv4)
	if v6 {
		proto = header.ProtoICMPv6
	}
	return pkt{v6: v6, src: src, dst: dst, proto: proto, l4: icmpH(typ, 3, q.ip())}
}

func arpFrame(op uint16, target string, mut func([]byte)) []byte {
	f := append(macDst[:], macSrc[:]...)
	f = binary.BigEndian.AppendUint16(f, header.EtherTypeARP)
	b := make([]byte, header.ARPSize)
	binary.BigEndian.PutUint16(b[header.ARPHTypeOff:], header.ARPHTypeEthernet)
	binary.BigEndian.PutUint16(b[header.ARPPTypeOff:], header.EtherTypeIPv4)
	b[header.ARPHLenOff], b[header.ARPPLenOff] = 6, 4
	binary.BigEndian.PutUint16(b[header.ARPOpOff:], op)
	copy(b[8:], macSrc[:])
	s, t := a(cli4).As4(), a(target).As4()
	copy(b[14:], s[:])
	copy(b[header.ARPTargetIPOff:], t[:])
	if mut != nil {
		mut(b)
	}
	return append(f, b...)
}

// ndp is a neighbour solicitation (135) or advertisement (136) for target.
func ndp(typ uint8, target string) pkt {
	t := a(target).As16()
	b := append([]byte{typ, 0, 0, 0, 0, 0, 0, 0}, t[:]...)
	b = append(b, 1, 1, macSrc[0], macSrc[1], macSrc[2], macSrc[3], macSrc[4], macSrc[5])
	return pkt{v6: true, src: cli6, dst: "ff02::1:ff00:10", proto: header.ProtoICMPv6, l4: b}
}
