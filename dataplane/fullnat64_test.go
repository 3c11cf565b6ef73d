package dataplane_test

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/connsync"
	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/header"
)

// FULLNAT across families, packet in / packet out: NAT64 (IPv6 client and
// VIP, IPv4 real server) and NAT46 (the reverse). Without a pool the local
// address is the route's source towards the real server (10.0.2.1 or
// 2001:db8:2::1), of the real server's family.

// xnet is one cross-family FULLNAT topology.
type xnet struct {
	name         string
	cli, vip, rs netip.Addr
	lip          netip.Addr // the local address the connection must use
	rules        string
}

var (
	xnat64 = xnet{name: "nat64",
		cli: netip.MustParseAddr("2001:db8:1::2"), vip: netip.MustParseAddr("2001:db8:1::100"),
		rs: netip.MustParseAddr("10.0.2.11"), lip: netip.MustParseAddr("10.0.2.1"),
		rules: "-A -t [2001:db8:1::100]:80 -s rr\n-a -t [2001:db8:1::100]:80 -r 10.0.2.11:8080 -b\n" +
			"-A -u [2001:db8:1::100]:5300 -s rr\n-a -u [2001:db8:1::100]:5300 -r 10.0.2.11:5353 -b\n"}
	xnat46 = xnet{name: "nat46",
		cli: netip.MustParseAddr("10.0.1.2"), vip: netip.MustParseAddr("10.0.1.100"),
		rs: netip.MustParseAddr("2001:db8:2::11"), lip: netip.MustParseAddr("2001:db8:2::1"),
		rules: "-A -t 10.0.1.100:80 -s rr\n-a -t 10.0.1.100:80 -r [2001:db8:2::11]:8080 -b\n" +
			"-A -u 10.0.1.100:5300 -s rr\n-a -u 10.0.1.100:5300 -r [2001:db8:2::11]:5353 -b\n"}
)

func xhops() fakeHops {
	h := testHops()
	h[netip.MustParseAddr("2001:db8:2::11")] = dataplane.Hop{Ifindex: 2, SrcMAC: macDir1, DstMAC: macRS1,
		Src: netip.MustParseAddr("2001:db8:2::1"), MTU: 1500}
	return h
}

func (n *xnet) rig(t testing.TB) *rig {
	r := newRig(t, n.rules)
	r.withHops(xhops(), 0)
	return r
}

// xframe builds an Ethernet frame with a TCP (flags non-empty) or UDP
// packet from src to dst, of their family.
func xframe(t testing.TB, srcMAC, dstMAC [6]byte, src, dst netip.AddrPort, tcpFlags string, payload []byte) []byte {
	t.Helper()
	et := layers.EthernetTypeIPv4
	var ip gopacket.SerializableLayer
	var nl gopacket.NetworkLayer
	proto := layers.IPProtocolUDP
	if tcpFlags != "" {
		proto = layers.IPProtocolTCP
	}
	if src.Addr().Is6() {
		et = layers.EthernetTypeIPv6
		x := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
		ip, nl = x, x
	} else {
		x := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, Flags: layers.IPv4DontFragment, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
		ip, nl = x, x
	}
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(srcMAC[:]), DstMAC: net.HardwareAddr(dstMAC[:]), EthernetType: et}
	if tcpFlags == "" {
		u := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
		if err := u.SetNetworkLayerForChecksum(nl); err != nil {
			t.Fatal(err)
		}
		return serializeTB(t, eth, ip, u, gopacket.Payload(payload))
	}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()), Seq: 1000, Ack: 1, Window: 65535,
		Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xa0}}}} // 1440
	for _, c := range tcpFlags {
		switch c {
		case 'S':
			tcp.SYN = true
		case 'A':
			tcp.ACK = true
		}
	}
	if err := tcp.SetNetworkLayerForChecksum(nl); err != nil {
		t.Fatal(err)
	}
	return serializeTB(t, eth, ip, tcp, gopacket.Payload(payload))
}

func serializeTB(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// sentPkt is what a sent frame holds, checked: its checksums verify.
type sentPkt struct {
	p        header.Parsed
	src, dst netip.AddrPort
	ttl      uint8
	mss      uint16
	payload  []byte
}

func checkSent(t *testing.T, frame []byte, what string) sentPkt {
	t.Helper()
	var s sentPkt
	s.p.Parse(frame)
	p := &s.p
	if p.Reason != header.ReasonNone {
		t.Fatalf("%s: sent frame does not parse: %v", what, p.Reason)
	}
	if p.Kind == header.KindIPv4 && !header.IPv4(frame[p.L3Off:]).ChecksumValid() {
		t.Errorf("%s: IPv4 header checksum", what)
	}
	if !header.L4ChecksumValid(frame, p) {
		t.Errorf("%s: L4 checksum does not verify", what)
	}
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	if el := pkt.ErrorLayer(); el != nil {
		t.Fatalf("%s: gopacket: %v", what, el.Error())
	}
	s.src, s.dst, s.ttl = netip.AddrPortFrom(p.SrcAddr(), p.SrcPort), netip.AddrPortFrom(p.DstAddr(), p.DstPort), p.TTL
	if tcp, ok := pkt.TransportLayer().(*layers.TCP); ok {
		for _, o := range tcp.Options {
			if o.OptionType == layers.TCPOptionKindMSS {
				s.mss = binary.BigEndian.Uint16(o.OptionData)
			}
		}
	}
	if pkt.ApplicationLayer() != nil {
		s.payload = pkt.ApplicationLayer().Payload()
	}
	return s
}

// TestFullNATAcrossFamilies: a TCP connection and a UDP flow each way.
// The request reaches the real server from the local address of its
// family with the checksums right (the SYN going to IPv4 with its MSS
// lowered by 20), the reply reaches the client from the VIP, each
// translated packet counted.
func TestFullNATAcrossFamilies(t *testing.T) {
	for _, n := range []*xnet{&xnat64, &xnat46} {
		for _, tcp := range []bool{true, false} {
			name := n.name + "/udp"
			vport, rport := uint16(5300), uint16(5353)
			syn, data := "", ""
			if tcp {
				name, vport, rport, syn, data = n.name+"/tcp", 80, 8080, "S", "A"
			}
			t.Run(name, func(t *testing.T) {
				r := n.rig(t)
				cli, vip := netip.AddrPortFrom(n.cli, 40000), netip.AddrPortFrom(n.vip, vport)
				req := xframe(t, macCli, macDir0, cli, vip, syn, []byte("query"))
				fwd := checkSent(t, only(t, r.run(t, req), 2, "request"), "request")
				if fwd.src.Addr() != n.lip || fwd.dst != netip.AddrPortFrom(n.rs, rport) || fwd.ttl != 63 || string(fwd.payload) != "query" {
					t.Fatalf("request sent %v → %v ttl %d %q; want %v:* → %v:%d ttl 63", fwd.src, fwd.dst, fwd.ttl, fwd.payload, n.lip, n.rs, rport)
				}
				if tcp {
					want := uint16(1440)
					if n.cli.Is6() {
						want = 1420
					}
					if fwd.mss != want {
						t.Errorf("SYN's MSS %d at the real server, want %d", fwd.mss, want)
					}
				}
				rep := xframe(t, macRS1, macDir1, fwd.dst, fwd.src, syn+data, []byte("answer"))
				back := checkSent(t, only(t, r.run(t, rep), 1, "reply"), "reply")
				if back.src != vip || back.dst != cli || back.ttl != 63 || string(back.payload) != "answer" {
					t.Fatalf("reply sent %v → %v ttl %d %q; want %v → %v ttl 63", back.src, back.dst, back.ttl, back.payload, vip, cli)
				}
				if tcp {
					want := uint16(1440)
					if n.rs.Is6() {
						want = 1420 // the NAT46 real server's SYN-ACK goes to IPv4
					}
					if back.mss != want {
						t.Errorf("SYN-ACK's MSS %d at the client, want %d", back.mss, want)
					}
				}
				if c := r.w.Counters.Load(dataplane.CntFamilyXlate); c != 2 {
					t.Errorf("family-xlate %d, want 2", c)
				}
			})
		}
	}
}

// TestFullNATAcrossFamiliesPool: with a pool of both families, the IPv4
// real server of an IPv6 service is reached from the pool's IPv4 address.
func TestFullNATAcrossFamiliesPool(t *testing.T) {
	n := xnat64
	n.rules += "-P -t [2001:db8:1::100]:80 -z 2001:db8:2::50\n-P -t [2001:db8:1::100]:80 -z 10.0.2.50\n"
	r := n.rig(t)
	for i := range 4 {
		req := xframe(t, macCli, macDir0, netip.AddrPortFrom(n.cli, uint16(40000+i)), netip.AddrPortFrom(n.vip, 80), "S", nil)
		fwd := checkSent(t, only(t, r.run(t, req), 2, "request"), "request")
		if fwd.src.Addr() != netip.MustParseAddr("10.0.2.50") {
			t.Fatalf("connection %d from %v, want the pool's IPv4 address", i, fwd.src)
		}
	}
}

// xicmp builds an ICMP error frame from src to dst (ICMPv4 or ICMPv6 by
// their family), type/code given, quoting quoted (an IP packet).
func xicmp(t *testing.T, srcMAC, dstMAC [6]byte, src, dst netip.Addr, typ, code uint8, mtu uint32, quoted []byte) []byte {
	t.Helper()
	var rest [4]byte
	binary.BigEndian.PutUint32(rest[:], mtu)
	if src.Is6() {
		eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(srcMAC[:]), DstMAC: net.HardwareAddr(dstMAC[:]), EthernetType: layers.EthernetTypeIPv6}
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, code)}
		if err := ic.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		return serializeTB(t, eth, ip, ic, gopacket.Payload(append(rest[:], quoted...)))
	}
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(srcMAC[:]), DstMAC: net.HardwareAddr(dstMAC[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, code), Id: uint16(mtu >> 16), Seq: uint16(mtu)}
	return serializeTB(t, eth, ip, ic, gopacket.Payload(quoted))
}

// checkICMP checks a sent ICMP error: outer src → dst, type/code and the
// 32-bit MTU/unused word, the quoted packet's endpoints, checksums.
func checkICMP(t *testing.T, frame []byte, src, dst netip.Addr, typ, code uint8, rest uint32, qsrc, qdst netip.AddrPort) {
	t.Helper()
	var p header.Parsed
	p.Parse(frame)
	if p.Reason != header.ReasonNone || !p.Inner.OK {
		t.Fatalf("sent frame is not an ICMP error: %v", p.Reason)
	}
	if p.Kind == header.KindIPv4 && (!header.IPv4(frame[p.L3Off:]).ChecksumValid() || !header.IPv4(frame[p.Inner.L3Off:]).ChecksumValid()) {
		t.Errorf("IPv4 header checksums")
	}
	if !header.L4ChecksumValid(frame, &p) {
		t.Errorf("ICMP checksum does not verify")
	}
	got := [...]any{p.SrcAddr(), p.DstAddr(), p.ICMPType, p.ICMPCode, binary.BigEndian.Uint32(frame[p.L4Off+4:]),
		netip.AddrPortFrom(p.Inner.SrcAddr(), p.Inner.SrcPort), netip.AddrPortFrom(p.Inner.DstAddr(), p.Inner.DstPort)}
	want := [...]any{src, dst, typ, code, rest, qsrc, qdst}
	if got != want {
		t.Errorf("ICMP error\n got  %v\n want %v", got, want)
	}
	if pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default); pkt.ErrorLayer() != nil {
		t.Errorf("gopacket: %v", pkt.ErrorLayer().Error())
	}
}

// TestFullNATAcrossFamiliesICMP: an ICMP error each way, for NAT64 and
// NAT46. The real server's "fragmentation needed" (or "packet too big")
// about the director's request reaches the client from the VIP as the
// other family's error, its MTU adjusted by 20 and quoting the client's
// own packet; the client's port unreachable about a reply reaches the
// real server from the local address, quoting the real server's reply.
func TestFullNATAcrossFamiliesICMP(t *testing.T) {
	for _, n := range []*xnet{&xnat64, &xnat46} {
		t.Run(n.name, func(t *testing.T) {
			r := n.rig(t)
			cli, vip := netip.AddrPortFrom(n.cli, 40000), netip.AddrPortFrom(n.vip, 5300)
			fwdFrame := only(t, r.run(t, xframe(t, macCli, macDir0, cli, vip, "", []byte("query"))), 2, "request")
			fwd := checkSent(t, fwdFrame, "request")

			// From the real server: too big, MTU 1400 on its side.
			var e []byte
			if n.rs.Is4() {
				e = xicmp(t, macRS1, macDir1, n.rs, fwd.src.Addr(), 3, 4, 1400, fwdFrame[14:])
			} else {
				e = xicmp(t, macRS1, macDir1, n.rs, fwd.src.Addr(), 2, 0, 1400, fwdFrame[14:])
			}
			got := only(t, r.run(t, e), 1, "error for the client")
			if n.cli.Is6() {
				checkICMP(t, got, n.vip, n.cli, 2, 0, 1420, cli, vip)
			} else {
				checkICMP(t, got, n.vip, n.cli, 3, 4, 1380, cli, vip)
			}

			// From the client: port unreachable about a reply.
			rep := xframe(t, macRS1, macDir1, fwd.dst, fwd.src, "", []byte("answer"))
			backFrame := only(t, r.run(t, rep), 1, "reply")
			if n.cli.Is6() {
				e = xicmp(t, macCli, macDir0, n.cli, n.vip, 1, 4, 0, backFrame[14:])
			} else {
				e = xicmp(t, macCli, macDir0, n.cli, n.vip, 3, 3, 0, backFrame[14:])
			}
			got = only(t, r.run(t, e), 2, "error for the real server")
			if n.rs.Is4() {
				checkICMP(t, got, fwd.src.Addr(), n.rs, 3, 3, 0, fwd.dst, fwd.src)
			} else {
				checkICMP(t, got, fwd.src.Addr(), n.rs, 1, 4, 0, fwd.dst, fwd.src)
			}
			if c := r.w.Counters.Load(dataplane.CntICMPRelated); c != 2 {
				t.Errorf("icmp-related %d, want 2", c)
			}
		})
	}
}

// TestFullNATAcrossFamiliesTooBig: an IPv4 client's 1500-byte DF packet
// becomes 1520 bytes of IPv6 towards a 1500-byte path: the client gets
// "fragmentation needed" with MTU 1480, the packet is not sent.
func TestFullNATAcrossFamiliesTooBig(t *testing.T) {
	n := xnat46
	r := n.rig(t)
	big := make([]byte, 1500-20-8)
	out := r.run(t, xframe(t, macCli, macDir0, netip.AddrPortFrom(n.cli, 40000), netip.AddrPortFrom(n.vip, 5300), "", big))
	got := only(t, out, 1, "frag needed")
	var p header.Parsed
	p.Parse(got)
	if p.ICMPType != 3 || p.ICMPCode != 4 || binary.BigEndian.Uint16(got[p.L4Off+6:]) != 1480 || p.DstAddr() != n.cli {
		t.Fatalf("sent %d/%d mtu %d to %v, want 3/4 mtu 1480 to the client", p.ICMPType, p.ICMPCode, binary.BigEndian.Uint16(got[p.L4Off+6:]), p.DstAddr())
	}
}

// TestFullNATAcrossFamiliesReplyTooBig: an IPv4 real server's 1500-byte
// DF reply would be 1520 bytes of IPv6 towards the client's 1500-byte
// link: the real server gets "fragmentation needed" with MTU 1480 from
// the director, nothing goes to the client.
func TestFullNATAcrossFamiliesReplyTooBig(t *testing.T) {
	n := xnat64
	r := n.rig(t)
	cli, vip := netip.AddrPortFrom(n.cli, 40000), netip.AddrPortFrom(n.vip, 5300)
	fwd := checkSent(t, only(t, r.run(t, xframe(t, macCli, macDir0, cli, vip, "", []byte("query"))), 2, "request"), "request")
	big := make([]byte, 1500-20-8)
	got := only(t, r.run(t, xframe(t, macRS1, macDir1, fwd.dst, fwd.src, "", big)), 2, "frag needed")
	var p header.Parsed
	p.Parse(got)
	if p.ICMPType != 3 || p.ICMPCode != 4 || binary.BigEndian.Uint16(got[p.L4Off+6:]) != 1480 || p.DstAddr() != n.rs {
		t.Fatalf("sent %d/%d mtu %d to %v, want 3/4 mtu 1480 to the real server", p.ICMPType, p.ICMPCode, binary.BigEndian.Uint16(got[p.L4Off+6:]), p.DstAddr())
	}
	// 1480 bytes fit.
	back := checkSent(t, only(t, r.run(t, xframe(t, macRS1, macDir1, fwd.dst, fwd.src, "", big[:1480-28])), 1, "reply"), "reply")
	if back.dst != cli {
		t.Fatalf("reply to %v", back.dst)
	}
}

// TestFullNATAcrossFamiliesNotSynced: a sync entry is IPv4 or IPv6 as a
// whole and cannot carry a connection across families: none is queued,
// where a connection of one family is (the third datagram, sync_threshold
// 3).
func TestFullNATAcrossFamiliesNotSynced(t *testing.T) {
	for _, n := range []*xnet{&xnat64, &xnat46} {
		t.Run(n.name, func(t *testing.T) {
			r := n.rig(t)
			tap := r.withSync(connsync.DefaultPolicy)
			req := xframe(t, macCli, macDir0, netip.AddrPortFrom(n.cli, 40000), netip.AddrPortFrom(n.vip, 5300), "", []byte("q"))
			for range 5 {
				only(t, r.run(t, req), 2, "request")
			}
			if es := drain(tap); len(es) != 0 {
				t.Fatalf("%d sync entries queued for a connection across families: %+v", len(es), es)
			}
		})
	}
}

// captureIO keeps the frames written with their offload metadata.
type captureIO struct{ out []dataplane.Frame }

func (*captureIO) ReadBatch([]dataplane.Frame) (int, error) { return 0, dataplane.ErrClosed }
func (c *captureIO) WriteBatch(f []dataplane.Frame) (int, error) {
	for _, fr := range f {
		d := append([]byte(nil), fr.Data()...)
		fr.Buf, fr.Off, fr.Len = d, 0, len(d)
		c.out = append(c.out, fr)
	}
	return len(f), nil
}
func (*captureIO) Close() error { return nil }

// TestFullNATAcrossFamiliesGSO: a TCPv6 super-frame with a partial
// checksum (AF_PACKET with offload) leaves as a TCPv4 super-frame, its
// partial checksum the new pseudo-header sum at the new L4 offset; the
// reverse way TCPv4 becomes TCPv6.
func TestFullNATAcrossFamiliesGSO(t *testing.T) {
	for _, n := range []*xnet{&xnat64, &xnat46} {
		t.Run(n.name, func(t *testing.T) {
			r := n.rig(t)
			cli, vip := netip.AddrPortFrom(n.cli, 40000), netip.AddrPortFrom(n.vip, 80)
			fwd := checkSent(t, only(t, r.run(t, xframe(t, macCli, macDir0, cli, vip, "S", nil)), 2, "SYN"), "SYN")
			super := xframe(t, macCli, macDir0, cli, vip, "A", make([]byte, 4000))
			var p header.Parsed
			p.Parse(super)
			start, off, ok := seedPartial(super, &p)
			if !ok {
				t.Fatal("cannot seed the partial checksum")
			}
			gt := dataplane.GSOTCPv4
			if n.cli.Is6() {
				gt = dataplane.GSOTCPv6
			}
			buf := make([]byte, 64+len(super))
			copy(buf[64:], super)
			io := &captureIO{}
			w := dataplane.NewWorker(io, r.env)
			w.ProcessBatch([]dataplane.Frame{{Buf: buf, Off: 64, Len: len(super), Ifindex: 1, Offload: true, CsumPartial: true,
				CsumStart: start, CsumOffset: off, GSO: dataplane.GSO{Type: gt, Size: 1000}}})
			if len(io.out) != 1 {
				t.Fatalf("sent %d frames, want 1", len(io.out))
			}
			f := io.out[0]
			wantType := dataplane.GSOTCPv6
			if n.rs.Is4() {
				wantType = dataplane.GSOTCPv4
			}
			var q header.Parsed
			q.Parse(f.Data())
			if f.GSO.Type != wantType || f.GSO.Size != 1000 || !f.CsumPartial || int(f.CsumStart) != q.L4Off || f.CsumOffset != 16 {
				t.Fatalf("offload metadata %+v csum %v start %d/%d, want %v, partial at %d", f.GSO, f.CsumPartial, f.CsumStart, f.CsumOffset, wantType, q.L4Off)
			}
			if q.SrcAddr() != fwd.src.Addr() || q.DstAddr() != n.rs {
				t.Fatalf("super-frame sent %v → %v", q.SrcAddr(), q.DstAddr())
			}
			// The device completes the checksum: it must then verify.
			d := f.Data()
			c := ^header.Checksum(d[q.L4Off:q.End], 0)
			binary.BigEndian.PutUint16(d[q.L4Off+16:], c)
			if !header.L4ChecksumValid(d, &q) {
				t.Error("completed checksum does not verify: the partial sum is not the new pseudo-header's")
			}
		})
	}
}

// seedPartial puts the pseudo-header sum in a parsed TCP frame's checksum
// field, as a sender with checksum offload leaves it.
func seedPartial(frame []byte, p *header.Parsed) (start, off uint16, ok bool) {
	al := p.AddrLen()
	so, do := header.IPv4SrcOff, header.IPv4DstOff
	if p.IPVersion == 6 {
		so, do = header.IPv6SrcOff, header.IPv6DstOff
	}
	ip := frame[p.L3Off:]
	s := header.PseudoHeaderChecksum(p.Proto, ip[so:so+al], ip[do:do+al], uint32(p.End-p.L4Off))
	binary.BigEndian.PutUint16(frame[p.L4Off+16:], s)
	return uint16(p.L4Off), 16, p.Proto == header.ProtoTCP
}

// TestFullNATAcrossFamiliesNoAllocs: translating requests, replies and
// ICMP errors across families allocates nothing.
func TestFullNATAcrossFamiliesNoAllocs(t *testing.T) {
	for _, n := range []*xnet{&xnat64, &xnat46} {
		t.Run(n.name, func(t *testing.T) {
			r := n.rig(t)
			cli, vip := netip.AddrPortFrom(n.cli, 40000), netip.AddrPortFrom(n.vip, 5300)
			fwdFrame := only(t, r.run(t, xframe(t, macCli, macDir0, cli, vip, "", []byte("query"))), 2, "request")
			fwd := checkSent(t, fwdFrame, "request")
			frames := [][]byte{
				xframe(t, macCli, macDir0, cli, vip, "", []byte("query")),
				xframe(t, macRS1, macDir1, fwd.dst, fwd.src, "", []byte("answer")),
				xicmp(t, macRS1, macDir1, n.rs, fwd.src.Addr(), map[bool]uint8{true: 3, false: 1}[n.rs.Is4()], map[bool]uint8{true: 3, false: 4}[n.rs.Is4()], 0, fwdFrame[14:]),
			}
			w := dataplane.NewWorker(discardIO{}, r.env)
			bufs := make([][]byte, len(frames))
			for i := range bufs {
				bufs[i] = make([]byte, 64+len(frames[i]))
			}
			batch := make([]dataplane.Frame, len(frames))
			ifx := []int{1, 2, 2}
			allocs := testing.AllocsPerRun(200, func() {
				for i, f := range frames {
					copy(bufs[i][64:], f)
					batch[i] = dataplane.Frame{Buf: bufs[i], Off: 64, Len: len(f), Ifindex: ifx[i]}
				}
				w.ProcessBatch(batch)
			})
			if x := w.Counters.Load(dataplane.CntFamilyXlate); x < 3*200 {
				t.Fatalf("the measured path translated %d packets", x)
			}
			if allocs != 0 {
				t.Fatalf("cross-family FULLNAT allocates %.1f times per batch", allocs)
			}
		})
	}
}
