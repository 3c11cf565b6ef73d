package dataplane_test

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/ip4defrag"
	"github.com/gopacket/gopacket/ip6defrag"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/spec"
)

// The egress MTU as a router applies it (issue #16): software
// fragmentation of what may be fragmented, ICMP fragmentation needed /
// packet too big for the rest, in both directions, per GSO segment.

const mtuRules = `-A -u 10.0.1.100:53 -s rr
-a -u 10.0.1.100:53 -r 10.0.2.11:5353 -m
-A -u 10.0.1.101:53 -s rr
-a -u 10.0.1.101:53 -r 10.0.2.11:53 -g
-A -u [2001:db8:1::100]:53 -s rr
-a -u [2001:db8:1::100]:53 -r [2001:db8:2::11]:5353 -m
-A -u [2001:db8:1::102]:53 -s rr
-a -u [2001:db8:1::102]:53 -r [2001:db8:2::11]:53 -b
`

var (
	rs6   = netip.MustParseAddr("2001:db8:2::11")
	cli6  = "2001:db8:1::2"
	vip6  = "2001:db8:1::100"
	cliV4 = "10.0.1.2"
)

// mtuRig is a rig whose client side (ifindex 1) has a 9000-byte MTU and
// whose real servers are behind a 1500-byte one (ifindex 2), writing into
// a recordIO.
func mtuRig(t testing.TB) (*rig, *dataplane.Worker, *recordIO) {
	t.Helper()
	r := newRig(t, mtuRules)
	h := r.env.Host.Load()
	ifs := map[int]dataplane.Iface{}
	for k, v := range h.Ifaces {
		ifs[k] = v
	}
	i1 := ifs[1]
	i1.MTU = 9000
	ifs[1] = i1
	nh := *h
	nh.Ifaces = ifs
	r.env.Host.Store(&nh)
	hops := testHops()
	hops[rs6] = dataplane.Hop{Ifindex: 2, SrcMAC: macDir1, DstMAC: macRS1, Src: netip.MustParseAddr("2001:db8:2::1"), MTU: 1500}
	r.env.Hops = hops
	rec := &recordIO{}
	return r, dataplane.NewWorker(rec, r.env), rec
}

// mtuUDPFrame builds an Ethernet frame with a UDP datagram of payload bytes
// (IPv4 with DF as df says, or IPv6 when src is an IPv6 address).
func mtuUDPFrame(t testing.TB, srcMAC, dstMAC [6]byte, src, dst string, sport, dport uint16, payload int, df bool) []byte {
	t.Helper()
	pl := make([]byte, payload)
	for i := range pl {
		pl[i] = byte(i*7 + 3)
	}
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	var ls []gopacket.SerializableLayer
	if netip.MustParseAddr(src).Is6() {
		eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(srcMAC[:]), DstMAC: net.HardwareAddr(dstMAC[:]), EthernetType: layers.EthernetTypeIPv6}
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst)}
		if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		ls = []gopacket.SerializableLayer{eth, ip, udp, gopacket.Payload(pl)}
	} else {
		eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(srcMAC[:]), DstMAC: net.HardwareAddr(dstMAC[:]), EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, TTL: 64, Id: 4242, Protocol: layers.IPProtocolUDP, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst)}
		if df {
			ip.Flags = layers.IPv4DontFragment
		}
		if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		ls = []gopacket.SerializableLayer{eth, ip, udp, gopacket.Payload(pl)}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// process hands frames to w in one batch (with headroom) and returns what
// it wrote since the last call.
func process(w *dataplane.Worker, rec *recordIO, frames ...dataplane.Frame) []dataplane.Frame {
	rec.out = nil
	w.ProcessBatch(frames)
	return rec.out
}

// frameOf wraps a frame for ProcessBatch, arriving on ifindex.
func frameOf(b []byte, ifindex int) dataplane.Frame {
	buf := make([]byte, 64+len(b))
	copy(buf[64:], b)
	return dataplane.Frame{Buf: buf, Off: 64, Len: len(b), Ifindex: ifindex}
}

// reassemble4 checks that out are IPv4 fragments of at most mtu bytes on
// ifindex, from srcMAC to dstMAC, reassembles them with gopacket's
// defragmenter (an independent implementation) and returns the datagram's
// UDP layer, its checksum verified.
func reassemble4(t *testing.T, out []dataplane.Frame, ifindex, mtu int, srcMAC, dstMAC [6]byte) (*layers.IPv4, *layers.UDP) {
	t.Helper()
	if len(out) < 2 {
		t.Fatalf("sent %d frames, want fragments", len(out))
	}
	d := ip4defrag.NewIPv4Defragmenter()
	var whole *layers.IPv4
	for i, f := range out {
		if f.Ifindex != ifindex || f.GSO.IsGSO() || f.CsumPartial {
			t.Fatalf("fragment %d: ifindex %d gso %v partial %v", i, f.Ifindex, f.GSO, f.CsumPartial)
		}
		p := gopacket.NewPacket(f.Data(), layers.LayerTypeEthernet, gopacket.DecodeOptions{NoCopy: false})
		eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if eth == nil || ip == nil || [6]byte(eth.SrcMAC) != srcMAC || [6]byte(eth.DstMAC) != dstMAC {
			t.Fatalf("fragment %d: %v", i, p)
		}
		if int(ip.Length) > mtu || int(ip.Length) != len(f.Data())-14 {
			t.Fatalf("fragment %d: IP length %d, MTU %d, frame %d", i, ip.Length, mtu, len(f.Data()))
		}
		if ip.Flags&layers.IPv4DontFragment != 0 {
			t.Fatalf("fragment %d keeps DF", i)
		}
		c := ip.Checksum
		raw := bytes.Clone(f.Data()[14 : 14+int(ip.IHL)*4])
		binary.BigEndian.PutUint16(raw[10:], 0)
		if sum := ipChecksum(raw); sum != c {
			t.Fatalf("fragment %d: header checksum %#04x, want %#04x", i, c, sum)
		}
		got, err := d.DefragIPv4(ip)
		if err != nil {
			t.Fatalf("fragment %d: %v", i, err)
		}
		if got != nil {
			if i != len(out)-1 {
				t.Fatalf("datagram complete after fragment %d of %d", i, len(out))
			}
			whole = got
		}
	}
	if whole == nil {
		t.Fatal("fragments do not reassemble")
	}
	p := gopacket.NewPacket(whole.Payload, layers.LayerTypeUDP, gopacket.Default)
	udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if udp == nil {
		t.Fatal("reassembled datagram is not UDP")
	}
	want := udp.Checksum
	if err := udp.SetNetworkLayerForChecksum(whole); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, udp, gopacket.Payload(udp.Payload)); err != nil {
		t.Fatal(err)
	}
	if sum := binary.BigEndian.Uint16(buf.Bytes()[6:]); sum != want {
		t.Fatalf("reassembled UDP checksum %#04x, want %#04x", want, sum)
	}
	return whole, udp
}

func ipChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

// payloadOK checks the datagram's payload is udpFrame's.
func payloadOK(t *testing.T, pl []byte, n int) {
	t.Helper()
	if len(pl) != n {
		t.Fatalf("payload %d bytes, want %d", len(pl), n)
	}
	for i, b := range pl {
		if b != byte(i*7+3) {
			t.Fatalf("payload byte %d is %d", i, b)
		}
	}
}

// TestMTUNonDFRequestFragmented: a 3028-byte datagram without DF from a
// 9000-MTU client to a real server behind a 1500-MTU link leaves in
// fragments of at most 1500 bytes that reassemble to the rewritten
// datagram (NAT) or the datagram itself (DR), as ip_finish_output's
// ip_fragment does after ip_vs_nat_xmit / ip_vs_dr_xmit.
func TestMTUNonDFRequestFragmented(t *testing.T) {
	for _, tc := range []struct {
		name, vip string
		port      uint16
	}{{"nat", "10.0.1.100", 5353}, {"dr", "10.0.1.101", 53}} {
		t.Run(tc.name, func(t *testing.T) {
			_, w, rec := mtuRig(t)
			in := mtuUDPFrame(t, macCli, macDir0, cliV4, tc.vip, 40000, 53, 3000, false)
			if len(in)-14 != 3028 {
				t.Fatalf("built a %d-byte datagram", len(in)-14)
			}
			out := process(w, rec, frameOf(in, 1))
			if len(out) != 3 {
				t.Fatalf("sent %d frames, want 3 fragments", len(out))
			}
			ip, udp := reassemble4(t, out, 2, 1500, macDir1, macRS1)
			if ip.DstIP.String() != map[string]string{"nat": "10.0.2.11", "dr": tc.vip}[tc.name] || ip.SrcIP.String() != cliV4 ||
				ip.TTL != 63 || ip.Id != 4242 || uint16(udp.DstPort) != tc.port {
				t.Fatalf("datagram %s -> %s:%d ttl %d id %d", ip.SrcIP, ip.DstIP, udp.DstPort, ip.TTL, ip.Id)
			}
			payloadOK(t, udp.Payload, 3000)
			c := &w.Counters
			if c.Load(dataplane.CntFragmented) != 1 || c.Load(dataplane.CntFragOut) != 3 || c.Load(dataplane.CntTooBig) != 0 {
				t.Fatalf("fragmented %d frag-out %d too-big %d", c.Load(dataplane.CntFragmented), c.Load(dataplane.CntFragOut), c.Load(dataplane.CntTooBig))
			}
		})
	}
}

// icmpOf decodes an ICMPv4 error frame: outer IP, ICMP, quoted IP.
func icmpOf(t *testing.T, f dataplane.Frame) (*layers.IPv4, *layers.ICMPv4, *layers.IPv4) {
	t.Helper()
	p := gopacket.NewPacket(f.Data(), layers.LayerTypeEthernet, gopacket.Default)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	ic, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if ip == nil || ic == nil {
		t.Fatalf("not an ICMP error: %v", p)
	}
	q := gopacket.NewPacket(ic.Payload, layers.LayerTypeIPv4, gopacket.Default)
	qip, _ := q.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if qip == nil {
		t.Fatalf("no quoted packet: %v", p)
	}
	return ip, ic, qip
}

// TestMTUDFRequestFragNeeded: with DF the same datagram is answered with
// ICMP fragmentation needed, MTU 1500, from the VIP, quoting the datagram
// as the client sent it (ensure_mtu_is_adequate before the rewrite).
func TestMTUDFRequestFragNeeded(t *testing.T) {
	_, w, rec := mtuRig(t)
	out := process(w, rec, frameOf(mtuUDPFrame(t, macCli, macDir0, cliV4, "10.0.1.100", 40000, 53, 3000, true), 1))
	if len(out) != 1 || out[0].Ifindex != 1 {
		t.Fatalf("sent %d frames, want one ICMP error to the client", len(out))
	}
	ip, ic, q := icmpOf(t, out[0])
	if ic.TypeCode != layers.CreateICMPv4TypeCode(3, 4) || ip.SrcIP.String() != "10.0.1.100" || ip.DstIP.String() != cliV4 {
		t.Fatalf("ICMP %v %s -> %s", ic.TypeCode, ip.SrcIP, ip.DstIP)
	}
	if mtu := ic.Seq; mtu != 1500 {
		t.Fatalf("next-hop MTU %d, want 1500", mtu)
	}
	if q.DstIP.String() != "10.0.1.100" || q.TTL != 64 || q.Length != 3028 {
		t.Fatalf("quoted %s ttl %d len %d: not the packet as received", q.DstIP, q.TTL, q.Length)
	}
	if w.Counters.Load(dataplane.CntTooBig) != 1 || w.Counters.Load(dataplane.CntFragmented) != 0 {
		t.Fatal("too-big not counted")
	}
}

// TestMTUIPv6PacketTooBig: IPv6 is never fragmented by a router: packet
// too big with MTU 1500 (__mtu_check_toobig_v6).
func TestMTUIPv6PacketTooBig(t *testing.T) {
	_, w, rec := mtuRig(t)
	out := process(w, rec, frameOf(mtuUDPFrame(t, macCli, macDir0, cli6, vip6, 40000, 53, 3000, false), 1))
	if len(out) != 1 || out[0].Ifindex != 1 {
		t.Fatalf("sent %d frames, want one ICMPv6 error to the client", len(out))
	}
	p := gopacket.NewPacket(out[0].Data(), layers.LayerTypeEthernet, gopacket.Default)
	ip, _ := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	ic, _ := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
	if ip == nil || ic == nil || ic.TypeCode.Type() != layers.ICMPv6TypePacketTooBig || ip.DstIP.String() != cli6 {
		t.Fatalf("not a packet too big to the client: %v", p)
	}
	if mtu := binary.BigEndian.Uint32(ic.Payload[:4]); mtu != 1500 {
		t.Fatalf("MTU %d, want 1500", mtu)
	}
}

// TestMTUReassembledRefragmented: a datagram the worker reassembled
// (FragMax) leaves in fragments no larger than the largest it came in
// (ip_do_fragment / ip6_fragment with frag_max_size), even where the link
// would take it whole; IPv6 too, with a fragment header, not a packet
// too big.
func TestMTUReassembledRefragmented(t *testing.T) {
	_, w, rec := mtuRig(t)
	f := frameOf(mtuUDPFrame(t, macCli, macDir0, cliV4, "10.0.1.100", 40000, 53, 1400, false), 1)
	f.FragMax = 1000
	out := process(w, rec, f)
	if len(out) != 2 {
		t.Fatalf("sent %d frames, want 2 fragments of at most 1000 bytes", len(out))
	}
	_, udp := reassemble4(t, out, 2, 1000, macDir1, macRS1)
	payloadOK(t, udp.Payload, 1400)

	f = frameOf(mtuUDPFrame(t, macCli, macDir0, cli6, vip6, 40000, 53, 3000, false), 1)
	f.FragMax = 1280
	out = process(w, rec, f)
	if len(out) != 3 {
		t.Fatalf("IPv6: sent %d frames, want 3 fragments of at most 1280 bytes", len(out))
	}
	d := ip6defrag.NewIPv6Defragmenter()
	var whole *layers.IPv6
	for i, o := range out {
		p := gopacket.NewPacket(o.Data(), layers.LayerTypeEthernet, gopacket.Default)
		ip, _ := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		fg, _ := p.Layer(layers.LayerTypeIPv6Fragment).(*layers.IPv6Fragment)
		if ip == nil || fg == nil || len(o.Data())-14 > 1280 || o.Ifindex != 2 {
			t.Fatalf("fragment %d (%d bytes): %v", i, len(o.Data()), p)
		}
		if got := d.DefragIPv6(ip, fg); got != nil {
			whole = got
		}
	}
	if whole == nil || whole.DstIP.String() != rs6.String() {
		t.Fatalf("IPv6 fragments do not reassemble to a datagram for the real server: %v", whole)
	}
	p := gopacket.NewPacket(whole.Payload, layers.LayerTypeUDP, gopacket.Default)
	udp6, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if udp6 == nil || udp6.DstPort != 5353 {
		t.Fatalf("reassembled IPv6 datagram: %v", p)
	}
	payloadOK(t, udp6.Payload, 3000)

	// The largest fragment did not fit: packet too big (it is never
	// refragmented smaller than it came).
	f = frameOf(mtuUDPFrame(t, macCli, macDir0, cli6, vip6, 40000, 53, 3000, false), 1)
	f.FragMax = 1600
	out = process(w, rec, f)
	if len(out) != 1 || out[0].Ifindex != 1 {
		t.Fatalf("FragMax above the MTU: sent %d frames, want a packet too big", len(out))
	}
}

// TestMTUReply: replies of a NAT connection towards a client behind a
// 1500-byte link: without DF fragmented after the rewrite, with DF
// answered with ICMP fragmentation needed to the real server, quoting
// the reply as it sent it (ip_forward's ip_exceeds_mtu before IPVS's
// rewrite).
func TestMTUReply(t *testing.T) {
	r, w, rec := mtuRig(t)
	h := *r.env.Host.Load()
	h.Ifaces = map[int]dataplane.Iface{
		1: {Index: 1, Name: "d0", MAC: macDir0, MTU: 1500},
		2: {Index: 2, Name: "d1", MAC: macDir1, MTU: 9000},
	}
	r.env.Host.Store(&h)
	if out := process(w, rec, frameOf(mtuUDPFrame(t, macCli, macDir0, cliV4, "10.0.1.100", 40000, 53, 10, false), 1)); len(out) != 1 {
		t.Fatalf("request: sent %d frames", len(out))
	}

	out := process(w, rec, frameOf(mtuUDPFrame(t, macRS1, macDir1, "10.0.2.11", cliV4, 5353, 40000, 3000, false), 2))
	if len(out) != 3 {
		t.Fatalf("reply: sent %d frames, want 3 fragments", len(out))
	}
	ip, udp := reassemble4(t, out, 1, 1500, macDir0, macCli)
	if ip.SrcIP.String() != "10.0.1.100" || udp.SrcPort != 53 || ip.DstIP.String() != cliV4 {
		t.Fatalf("reply %s:%d -> %s", ip.SrcIP, udp.SrcPort, ip.DstIP)
	}
	payloadOK(t, udp.Payload, 3000)

	out = process(w, rec, frameOf(mtuUDPFrame(t, macRS1, macDir1, "10.0.2.11", cliV4, 5353, 40000, 3000, true), 2))
	if len(out) != 1 || out[0].Ifindex != 2 {
		t.Fatalf("DF reply: sent %d frames, want one ICMP error to the real server", len(out))
	}
	oip, ic, q := icmpOf(t, out[0])
	if ic.TypeCode != layers.CreateICMPv4TypeCode(3, 4) || ic.Seq != 1500 || oip.DstIP.String() != "10.0.2.11" {
		t.Fatalf("ICMP %v mtu %d to %s", ic.TypeCode, ic.Seq, oip.DstIP)
	}
	if q.SrcIP.String() != "10.0.2.11" || q.TTL != 64 {
		t.Fatalf("quoted %s ttl %d: not the reply as received", q.SrcIP, q.TTL)
	}

	// IPv6: packet too big to the real server (ip6_forward).
	if out := process(w, rec, frameOf(mtuUDPFrame(t, macCli, macDir0, cli6, vip6, 40000, 53, 10, false), 1)); len(out) != 1 {
		t.Fatalf("IPv6 request: sent %d frames", len(out))
	}
	out = process(w, rec, frameOf(mtuUDPFrame(t, macRS1, macDir1, rs6.String(), cli6, 5353, 40000, 3000, false), 2))
	if len(out) != 1 || out[0].Ifindex != 2 {
		t.Fatalf("IPv6 reply: sent %d frames, want one packet too big to the real server", len(out))
	}
	p := gopacket.NewPacket(out[0].Data(), layers.LayerTypeEthernet, gopacket.Default)
	ip6, _ := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	ic6, _ := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
	if ip6 == nil || ic6 == nil || ic6.TypeCode.Type() != layers.ICMPv6TypePacketTooBig || ip6.DstIP.String() != rs6.String() ||
		binary.BigEndian.Uint32(ic6.Payload[:4]) != 1500 {
		t.Fatalf("not a packet too big (MTU 1500) to the real server: %v", p)
	}
	if w.Counters.Load(dataplane.CntTooBig) != 2 {
		t.Fatalf("too-big %d, want 2", w.Counters.Load(dataplane.CntTooBig))
	}
}

// TestMTUGSO: super-frames are checked per segment. A TCP super-frame
// with DF whose segments fit is forwarded whole, in both directions
// (not refused for its 64 KB); a UDP super-frame without DF whose
// segments do not fit is cut into segments and each fragmented
// (ip_finish_output_gso).
func TestMTUGSO(t *testing.T) {
	r := newRig(t, natRules)
	rec := &recordIO{}
	w := dataplane.NewWorker(rec, r.env)
	process(w, rec, frameOf(tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false), 1))
	f := gsoFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, 20000, 1448)
	if out := process(w, rec, f); len(out) != 1 || !out[0].GSO.IsGSO() || out[0].Ifindex != 2 {
		t.Fatalf("request super-frame: sent %d frames", len(out))
	}
	g := gsoFrame(t, macRS2, macDir1, "10.0.2.12", "10.0.1.2", 8080, 40000, 20000, 1448)
	g.Ifindex = 2
	if out := process(w, rec, g); len(out) != 1 || !out[0].GSO.IsGSO() || out[0].Ifindex != 1 {
		t.Fatalf("reply super-frame: sent %d frames (%+v)", len(out), out)
	}
	if w.Counters.Load(dataplane.CntTooBig) != 0 {
		t.Fatal("a super-frame with fitting segments counted too big")
	}

	// UDP GSO, no DF, 2000-byte segments to a 1500-byte link.
	_, w, rec = mtuRig(t)
	b := mtuUDPFrame(t, macCli, macDir0, cliV4, "10.0.1.100", 40000, 53, 6000, false)
	u := frameOf(b, 1)
	u.Offload = true
	u.CsumPartial = true
	u.CsumStart, u.CsumOffset = 34, 6
	u.GSO = dataplane.GSO{Type: dataplane.GSOUDPL4, Size: 2000}
	// The checksum field holds the pseudo-header sum, as for CHECKSUM_PARTIAL.
	binary.BigEndian.PutUint16(u.Buf[u.Off+40:], 0)
	out := process(w, rec, u)
	if len(out) != 6 || w.Counters.Load(dataplane.CntGSOSegment) != 3 || w.Counters.Load(dataplane.CntFragOut) != 6 {
		t.Fatalf("sent %d frames, segments %d, fragments %d; want 3 segments of 2 fragments",
			len(out), w.Counters.Load(dataplane.CntGSOSegment), w.Counters.Load(dataplane.CntFragOut))
	}
	for i := 0; i < 6; i += 2 {
		_, udp := reassemble4(t, out[i:i+2], 2, 1500, macDir1, macRS1)
		if len(udp.Payload) != 2000 || udp.DstPort != 5353 {
			t.Fatalf("segment %d: %d bytes to port %d", i/2, len(udp.Payload), udp.DstPort)
		}
	}
}

// TestMTUFragmentNoAllocs: the fragmenting path allocates nothing.
func TestMTUFragmentNoAllocs(t *testing.T) {
	_, w0, _ := mtuRig(t)
	_ = w0
	r, _, _ := mtuRig(t)
	w := dataplane.NewWorker(discardIO{}, r.env)
	data := mtuUDPFrame(t, macCli, macDir0, cliV4, "10.0.1.100", 40000, 53, 3000, false)
	buf := make([]byte, 64+len(data))
	frames := []dataplane.Frame{{}}
	allocs := testing.AllocsPerRun(100, func() {
		copy(buf[64:], data)
		frames[0] = dataplane.Frame{Buf: buf, Off: 64, Len: len(data), Ifindex: 1}
		w.ProcessBatch(frames)
	})
	if w.Counters.Load(dataplane.CntFragOut) == 0 {
		t.Fatal("the measured path sent no fragment")
	}
	if allocs != 0 {
		t.Fatalf("fragmenting path allocates %.1f times per packet", allocs)
	}
}

// BenchmarkMTUFragment measures a 3028-byte datagram through NAT cut into
// three fragments.
func BenchmarkMTUFragment(b *testing.B) {
	r, _, _ := mtuRig(b)
	w := dataplane.NewWorker(discardIO{}, r.env)
	data := mtuUDPFrame(b, macCli, macDir0, cliV4, "10.0.1.100", 40000, 53, 3000, false)
	buf := make([]byte, 64+len(data))
	frames := []dataplane.Frame{{}}
	b.ReportAllocs()
	for b.Loop() {
		copy(buf[64:], data)
		frames[0] = dataplane.Frame{Buf: buf, Off: 64, Len: len(data), Ifindex: 1}
		w.ProcessBatch(frames)
	}
}

// TestMTUQueuedReply: a reply that waited in the neighbour queue for the
// client's next hop (a synchronised connection, which holds no client
// MAC) is checked against that hop's MTU when it leaves, and fragmented.
func TestMTUQueuedReply(t *testing.T) {
	r := newRig(t, mtuRules)
	hops := &switchHops{m: testHops()}
	r.withHops(hops, time.Second)
	svc := r.env.Snap.Load().Services()[0]
	d := svc.Sched.Dest(netip.MustParseAddrPort("10.0.2.11:5353"))
	s := conntrack.SyncConn{Proto: 17, State: conntrack.StateNormal,
		Client:  conntrack.EndpointFrom(netip.MustParseAddrPort("10.0.1.2:40000")),
		Virtual: conntrack.EndpointFrom(netip.MustParseAddrPort("10.0.1.100:53")),
		Real:    conntrack.EndpointFrom(netip.MustParseAddrPort("10.0.2.11:5353")),
		Timeout: 300 * time.Second, Dest: d, Fwd: spec.FwdMasq, Service: svc.ID}
	if _, err := r.conns.ApplySync(&s, int64(r.clock.Sub(time.Unix(0, 0)))); err != nil {
		t.Fatal(err)
	}
	reply := mtuUDPFrame(t, macRS1, macDir1, "10.0.2.11", cliV4, 5353, 40000, 3000, false)
	if out := r.run(t, reply); len(out) != 0 {
		t.Fatalf("unresolved client: sent %d", len(out))
	}
	gw := [6]byte{2, 0, 0, 0, 1, 0xfe}
	hops.mu.Lock()
	hops.m[netip.MustParseAddr(cliV4)] = dataplane.Hop{Ifindex: 1, SrcMAC: macDir0, DstMAC: gw, MTU: 1500}
	hops.mu.Unlock()
	out := r.retry()
	if len(out) != 3 {
		t.Fatalf("after resolution: sent %d frames, want 3 fragments", len(out))
	}
	ip, udp := reassemble4(t, out, 1, 1500, macDir0, gw)
	if ip.SrcIP.String() != "10.0.1.100" || udp.SrcPort != 53 {
		t.Fatalf("reply from %s:%d", ip.SrcIP, udp.SrcPort)
	}
	payloadOK(t, udp.Payload, 3000)
}

// TestMTUReassembledFullNAT: an IPv6 datagram reassembled from fragments
// of at most 1280 bytes leaves a FULLNAT service in fragments again (the
// FragMax check), not refused with packet too big as a whole 3000-byte
// packet would be.
func TestMTUReassembledFullNAT(t *testing.T) {
	_, w, rec := mtuRig(t)
	f := frameOf(mtuUDPFrame(t, macCli, macDir0, cli6, "2001:db8:1::102", 40000, 53, 3000, false), 1)
	f.FragMax = 1280
	out := process(w, rec, f)
	if len(out) != 3 {
		t.Fatalf("sent %d frames, want 3 fragments of at most 1280 bytes", len(out))
	}
	for i, o := range out {
		if len(o.Data())-14 > 1280 || o.Ifindex != 2 {
			t.Fatalf("fragment %d: %d bytes on interface %d", i, len(o.Data()), o.Ifindex)
		}
	}
}
