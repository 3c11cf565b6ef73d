package dataplane_test

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/dataplane"
)

// tunFrame builds a client's TCP (or UDP) frame to the VIP with the
// given IP payload size, over IPv4 (DF as asked) or IPv6.
func tunFrame(t *testing.T, src, dst string, sport uint16, udp, df bool, syn bool, payload int) []byte {
	t.Helper()
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(macCli[:]), DstMAC: net.HardwareAddr(macDir0[:]), EthernetType: layers.EthernetTypeIPv4}
	var nl gopacket.NetworkLayer
	var ipl gopacket.SerializableLayer
	proto := layers.IPProtocolTCP
	if udp {
		proto = layers.IPProtocolUDP
	}
	if s.Is4() {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, SrcIP: s.AsSlice(), DstIP: d.AsSlice()}
		if df {
			ip.Flags = layers.IPv4DontFragment
		}
		nl, ipl = ip, ip
	} else {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: s.AsSlice(), DstIP: d.AsSlice()}
		nl, ipl = ip, ip
	}
	var l4 gopacket.SerializableLayer
	if udp {
		u := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: 80}
		_ = u.SetNetworkLayerForChecksum(nl)
		l4 = u
	} else {
		tc := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: 80, SYN: syn, ACK: !syn, Seq: 1, Window: 1000}
		_ = tc.SetNetworkLayerForChecksum(nl)
		l4 = tc
	}
	return serialize(t, eth, ipl, l4, gopacket.Payload(make([]byte, payload)))
}

const tunUDPRules = "-A -u 10.0.1.100:80 -s rr\n-a -u 10.0.1.100:80 -r 10.0.2.11 -i\n"

// oneOut returns the single frame sent, failing otherwise.
func oneOut(t *testing.T, out []dataplane.Frame) []byte {
	t.Helper()
	if len(out) != 1 {
		t.Fatalf("sent %d frames, want 1", len(out))
	}
	return out[0].Data()
}

// TestTunGRE: --tun-type gre with and without --tun-csum sends GRE
// (protocol 47) with the checksum flag as configured and a checksum that
// verifies.
func TestTunGRE(t *testing.T) {
	for _, csum := range []bool{false, true} {
		opt := "--tun-nocsum"
		if csum {
			opt = "--tun-csum"
		}
		r := newRig(t, "-A -t 10.0.1.100:80 -s rr\n-a -t 10.0.1.100:80 -r 10.0.2.11 -i --tun-type gre "+opt+"\n")
		out := oneOut(t, r.run(t, tunFrame(t, "10.0.1.2", "10.0.1.100", 40000, false, true, true, 10)))
		pkt := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
		ip, ok := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if !ok || ip.Protocol != layers.IPProtocolGRE || ip.SrcIP.String() != "10.0.2.1" || ip.DstIP.String() != "10.0.2.11" {
			t.Fatalf("%s: outer %v", opt, pkt)
		}
		g, ok := pkt.Layer(layers.LayerTypeGRE).(*layers.GRE)
		if !ok || g.ChecksumPresent != csum || g.Protocol != layers.EthernetTypeIPv4 {
			t.Fatalf("%s: GRE %+v", opt, g)
		}
		if csum && sum16(out[34:]) != 0xffff {
			t.Errorf("GRE checksum does not verify")
		}
		if [6]byte(out[:6]) != macRS1 {
			t.Errorf("to %x", out[:6])
		}
	}
}

// sum16 is the one's-complement sum of b.
func sum16(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// TestTunIPv6Outer: an IPv6 real server gets IP6IP6 from an IPv6 service
// and IPv4-in-IPv6 from an IPv4 one (tunnelling allows mixed families),
// from the director's IPv6 address on that route; GRE works over IPv6 too.
func TestTunIPv6Outer(t *testing.T) {
	rs6 := netip.MustParseAddr("2001:db8:2::11")
	hops := testHops()
	hops[rs6] = dataplane.Hop{Ifindex: 2, SrcMAC: macDir1, DstMAC: macRS1, Src: netip.MustParseAddr("2001:db8:2::1"), MTU: 1500}
	for _, tc := range []struct {
		name, rules, src, vip string
		next                  layers.IPProtocol
	}{
		{"ip6ip6", "-A -t [2001:db8:1::100]:80 -s rr\n-a -t [2001:db8:1::100]:80 -r [2001:db8:2::11]:80 -i\n", "2001:db8:1::2", "2001:db8:1::100", layers.IPProtocolIPv6},
		{"ip4in6", "-A -t 10.0.1.100:80 -s rr\n-a -t 10.0.1.100:80 -r [2001:db8:2::11]:80 -i\n", "10.0.1.2", "10.0.1.100", layers.IPProtocolIPv4},
		{"gre6", "-A -t 10.0.1.100:80 -s rr\n-a -t 10.0.1.100:80 -r [2001:db8:2::11]:80 -i --tun-type gre --tun-csum\n", "10.0.1.2", "10.0.1.100", layers.IPProtocolGRE},
		{"gue6", "-A -t [2001:db8:1::100]:80 -s rr\n-a -t [2001:db8:1::100]:80 -r [2001:db8:2::11]:80 -i --tun-type gue --tun-port 6080\n", "2001:db8:1::2", "2001:db8:1::100", layers.IPProtocolUDP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.rules)
			r.env.Hops = hops
			in := tunFrame(t, tc.src, tc.vip, 40000, false, true, true, 10)
			out := oneOut(t, r.run(t, in))
			pkt := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
			ip, ok := pkt.Layers()[1].(*layers.IPv6)
			if !ok {
				t.Fatalf("no outer IPv6: %v", pkt)
			}
			if ip.SrcIP.String() != "2001:db8:2::1" || ip.DstIP.String() != rs6.String() || ip.NextHeader != tc.next || ip.HopLimit != 63 || ip.FlowLabel != 0 {
				t.Errorf("outer %+v", ip)
			}
			if !strings.HasSuffix(string(out), string(in[len(in)-10:])) {
				t.Errorf("inner payload lost")
			}
		})
	}
}

// TestTunOuterID: an outer IPv4 header without DF (the client's packet had
// none) gets an identification that changes from packet to packet, as
// __ip_select_ident gives; one with DF gets 0.
func TestTunOuterID(t *testing.T) {
	r := newRig(t, tunUDPRules)
	var ids []uint16
	for i := range 3 {
		out := oneOut(t, r.run(t, tunFrame(t, "10.0.1.2", "10.0.1.100", 40000, true, false, false, 100+i)))
		if binary.BigEndian.Uint16(out[20:])&0x4000 != 0 {
			t.Fatal("outer DF set for a packet without DF")
		}
		ids = append(ids, binary.BigEndian.Uint16(out[18:]))
	}
	if ids[1] == ids[0] || ids[2] == ids[1] {
		t.Errorf("outer IDs %v do not change", ids)
	}
	out := oneOut(t, r.run(t, tunFrame(t, "10.0.1.2", "10.0.1.100", 40001, true, true, false, 100)))
	if binary.BigEndian.Uint16(out[20:])&0x4000 == 0 || binary.BigEndian.Uint16(out[18:]) != 0 {
		t.Errorf("DF packet: outer flags %#x id %d", binary.BigEndian.Uint16(out[20:]), binary.BigEndian.Uint16(out[18:]))
	}
}

// fragNeededAbout builds a router's ICMP fragmentation-needed to the
// director about the tunnelled frame sent (Ethernet stripped, as much
// quoted as Linux quotes: 548 bytes).
func fragNeededAbout(t *testing.T, sent []byte, mtu uint16) []byte {
	t.Helper()
	quoted := append([]byte(nil), sent[14:min(len(sent), 14+548)]...)
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(macRS2[:]), DstMAC: net.HardwareAddr(macDir1[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: net.IP{10, 0, 2, 254}, DstIP: net.IP{10, 0, 2, 1}}
	ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeFragmentationNeeded), Seq: mtu}
	return serialize(t, eth, ip, ic, gopacket.Payload(quoted))
}

// checkFragNeeded checks the frame is an ICMP fragmentation-needed from
// the VIP to the client with the given MTU.
func checkFragNeeded(t *testing.T, f []byte, mtu uint16) {
	t.Helper()
	pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	ic, _ := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if ip == nil || ic == nil || ip.SrcIP.String() != "10.0.1.100" || ip.DstIP.String() != "10.0.1.2" ||
		ic.TypeCode != layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeFragmentationNeeded) || ic.Seq != mtu {
		t.Fatalf("want frag-needed %d to the client, got %v", mtu, pkt)
	}
	if [6]byte(f[:6]) != macCli || sum16(f[34:]) != 0xffff || sum16(f[14:34]) != 0xffff {
		t.Errorf("frag-needed to %x, checksums wrong", f[:6])
	}
}

// TestTunPMTULearned: an ICMP fragmentation-needed (MTU 1400) from a
// router about the director's IPIP packet lowers the path MTU to the real
// server; the client, whose packet had DF, is told 1380 (MTU less the
// IPIP header, ip_vs_in_icmp), and so is the next big DF packet instead of
// being black-holed. With GRE and its checksum the overhead is 28.
func TestTunPMTULearned(t *testing.T) {
	for _, tc := range []struct {
		name, opts string
		ov         int
	}{{"ipip", "", 20}, {"gre-csum", " --tun-type gre --tun-csum", 28}, {"gue", " --tun-type gue --tun-port 6080", 32}} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, "-A -t 10.0.1.100:80 -s rr\n-a -t 10.0.1.100:80 -r 10.0.2.11 -i"+tc.opts+"\n")
			h := *r.env.Host.Load()
			h.Local = map[[16]byte]bool{netip.MustParseAddr("10.0.2.1").As16(): true}
			r.env.Host.Store(&h)
			sent := oneOut(t, r.run(t, tunFrame(t, "10.0.1.2", "10.0.1.100", 40000, false, true, true, 1000)))
			icmp := fragNeededAbout(t, sent, 1400)
			checkFragNeeded(t, oneOut(t, r.run(t, icmp)), uint16(1400-tc.ov))
			if n := r.w.Counters.Load(dataplane.CntPMTULearned); n != 1 {
				t.Errorf("pmtu-learned %d", n)
			}
			// A 1400-byte DF packet fitted the interface's 1500 before.
			checkFragNeeded(t, oneOut(t, r.run(t, tunFrame(t, "10.0.1.2", "10.0.1.100", 40000, false, true, false, 1360))), uint16(1400-tc.ov))
			// One that fits the learnt MTU still goes.
			out := oneOut(t, r.run(t, tunFrame(t, "10.0.1.2", "10.0.1.100", 40000, false, true, false, 1400-tc.ov-40)))
			if [6]byte(out[:6]) != macRS1 || len(out) != 14+1400 {
				t.Errorf("fitting packet: %d bytes to %x", len(out), out[:6])
			}
			// Another worker of the same director, which saw no error,
			// knows it too.
			rec := &recordIO{}
			w2 := dataplane.NewWorker(rec, r.env)
			big := tunFrame(t, "10.0.1.2", "10.0.1.100", 40000, false, true, false, 1360)
			buf := make([]byte, 64+len(big))
			copy(buf[64:], big)
			w2.ProcessBatch([]dataplane.Frame{{Buf: buf, Off: 64, Len: len(big), Ifindex: 1}})
			checkFragNeeded(t, oneOut(t, rec.out), uint16(1400-tc.ov))
			// The same error again lowers nothing.
			r.run(t, icmp)
			if n := r.w.Counters.Load(dataplane.CntPMTULearned); n != 1 {
				t.Errorf("pmtu-learned %d after a repeat", n)
			}
		})
	}
}

// TestTunPMTUExpires: a learnt path MTU is forgotten after 600 s
// (ip_rt_mtu_expires).
func TestTunPMTUExpires(t *testing.T) {
	r := newRig(t, tunUDPRules)
	h := *r.env.Host.Load()
	h.Local = map[[16]byte]bool{netip.MustParseAddr("10.0.2.1").As16(): true}
	r.env.Host.Store(&h)
	sent := oneOut(t, r.run(t, tunFrame(t, "10.0.1.2", "10.0.1.100", 40000, true, true, false, 1000)))
	r.run(t, fragNeededAbout(t, sent, 1300))
	big := tunFrame(t, "10.0.1.2", "10.0.1.100", 40000, true, true, false, 1400)
	checkFragNeeded(t, oneOut(t, r.run(t, big)), 1280)
	r.clock = r.clock.Add(601e9)
	big = tunFrame(t, "10.0.1.2", "10.0.1.100", 40000, true, true, false, 1400)
	if out := oneOut(t, r.run(t, big)); [6]byte(out[:6]) != macRS1 {
		t.Errorf("after 600 s the big packet went to %x", out[:6])
	}
}

// TestTunICMPNotOurs: a fragmentation-needed quoting an IPIP packet that
// the director did not send (its source is not a director address)
// teaches nothing.
func TestTunICMPNotOurs(t *testing.T) {
	r := newRig(t, tunRules)
	sent := oneOut(t, r.run(t, tunFrame(t, "10.0.1.2", "10.0.1.100", 40000, false, true, true, 1000)))
	r.run(t, fragNeededAbout(t, sent, 1400)) // Host.Local is empty
	if n := r.w.Counters.Load(dataplane.CntPMTULearned); n != 0 {
		t.Errorf("pmtu-learned %d", n)
	}
}

// TestTunNoAllocs: GRE, IPv6-outer and PMTU-limited tunnelling allocate
// nothing per packet.
func TestTunNoAllocs(t *testing.T) {
	r := newRig(t, "-A -t 10.0.1.100:80 -s rr\n-a -t 10.0.1.100:80 -r 10.0.2.11 -i --tun-type gre --tun-csum\n")
	h := *r.env.Host.Load()
	h.Local = map[[16]byte]bool{netip.MustParseAddr("10.0.2.1").As16(): true}
	r.env.Host.Store(&h)
	sent := oneOut(t, r.run(t, tunFrame(t, "10.0.1.2", "10.0.1.100", 40000, false, true, true, 1000)))
	r.run(t, fragNeededAbout(t, sent, 1400))
	data := tunFrame(t, "10.0.1.2", "10.0.1.100", 40000, true, false, false, 1000)
	w := dataplane.NewWorker(discardIO{}, r.env)
	buf := make([]byte, 64+len(data))
	frames := make([]dataplane.Frame, 1)
	if n := testing.AllocsPerRun(100, func() {
		copy(buf[64:], data)
		frames[0] = dataplane.Frame{Buf: buf, Off: 64, Len: len(data), Ifindex: 1}
		w.ProcessBatch(frames)
	}); n != 0 {
		t.Errorf("%v allocations per packet", n)
	}
}

// outerFrags checks out is the fragments of one outer IPv4 packet of
// protocol 4 (same non-DF ID, offsets in order, none above mtu) and
// returns how many bytes of the outer payload they carry.
func outerFrags(t *testing.T, out []dataplane.Frame, mtu int) int {
	t.Helper()
	if len(out) < 2 {
		t.Fatalf("sent %d frames, want fragments", len(out))
	}
	id := binary.BigEndian.Uint16(out[0].Data()[18:])
	off := 0
	for i, f := range out {
		d := f.Data()
		ip := d[14:]
		ff := binary.BigEndian.Uint16(ip[6:])
		tot := int(binary.BigEndian.Uint16(ip[2:]))
		if ip[9] != 4 || binary.BigEndian.Uint16(ip[4:]) != id || ff&0x4000 != 0 || int(ff&0x1fff)*8 != off ||
			(ff&0x2000 != 0) != (i < len(out)-1) || tot > mtu || sum16(ip[:20]) != 0xffff {
			t.Fatalf("fragment %d: % x", i, ip[:20])
		}
		off += tot - 20
	}
	return off
}

// TestTunNonDFFragmented: a client's packet without DF that no longer
// fits once encapsulated is sent in outer fragments (ip_vs_tunnel_xmit
// sends it with DF clear and ip_local_out fragments it), at the interface
// MTU and, once learnt, at the path MTU.
func TestTunNonDFFragmented(t *testing.T) {
	r := newRig(t, tunUDPRules)
	h := *r.env.Host.Load()
	h.Local = map[[16]byte]bool{netip.MustParseAddr("10.0.2.1").As16(): true}
	r.env.Host.Store(&h)
	// 1490 bytes: 1510 once encapsulated.
	if n := outerFrags(t, r.run(t, tunFrame(t, "10.0.1.2", "10.0.1.100", 40000, true, false, false, 1490-28)), 1500); n != 1510-20 {
		t.Fatalf("fragments carry %d bytes", n)
	}
	// A DF packet of the same flow teaches the director the path MTU.
	sent := oneOut(t, r.run(t, tunFrame(t, "10.0.1.2", "10.0.1.100", 40001, true, true, false, 1000)))
	r.run(t, fragNeededAbout(t, sent, 1400))
	if n := outerFrags(t, r.run(t, tunFrame(t, "10.0.1.2", "10.0.1.100", 40000, true, false, false, 1450-28)), 1400); n != 1470-20 {
		t.Fatalf("fragments carry %d bytes", n)
	}
}

// TestTunICMPOtherRelayed: another error about the director's IPIP packet
// (a host unreachable from a router on the way) reaches the client with
// its type and code, about the client's own packet, from the VIP; no
// path MTU is learnt.
func TestTunICMPOtherRelayed(t *testing.T) {
	r := newRig(t, tunRules)
	h := *r.env.Host.Load()
	h.Local = map[[16]byte]bool{netip.MustParseAddr("10.0.2.1").As16(): true}
	r.env.Host.Store(&h)
	in := tunFrame(t, "10.0.1.2", "10.0.1.100", 40000, false, true, true, 100)
	sent := oneOut(t, r.run(t, in))
	icmp := fragNeededAbout(t, sent, 0)
	icmp[14+20] = 3   // destination unreachable
	icmp[14+20+1] = 1 // host unreachable
	binary.BigEndian.PutUint16(icmp[14+22:], 0)
	binary.BigEndian.PutUint16(icmp[14+22:], ^sum16(icmp[14+20:]))
	out := oneOut(t, r.run(t, icmp))
	pkt := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
	ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	ic, _ := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if ip == nil || ic == nil || ip.SrcIP.String() != "10.0.1.100" || ip.DstIP.String() != "10.0.1.2" ||
		ic.TypeCode != layers.CreateICMPv4TypeCode(3, 1) || [6]byte(out[:6]) != macCli {
		t.Fatalf("relayed error %v", pkt)
	}
	// The quote is the client's packet as sent (TTL already lowered by one).
	if q := out[14+28:]; binary.BigEndian.Uint16(q[20:]) != 40000 || q[12] != 10 || q[15] != 2 {
		t.Errorf("quote % x", q[:24])
	}
	if n := r.w.Counters.Load(dataplane.CntPMTULearned); n != 0 {
		t.Errorf("pmtu-learned %d", n)
	}
}
