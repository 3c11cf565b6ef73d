package dataplane_test

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/header"
)

// fullnatNet is a FULLNAT topology of the rig: client, VIP, the real
// server and the director's address towards it (the connection's local
// address: the service has no pool).
type fullnatNet struct {
	v6                bool
	cli, vip, rs, lip netip.Addr
	rules             string
	hops              fakeHops
}

var (
	fullnat4 = fullnatNet{
		cli: netip.MustParseAddr("10.0.1.2"), vip: netip.MustParseAddr("10.0.1.100"),
		rs: netip.MustParseAddr("10.0.2.11"), lip: netip.MustParseAddr("10.0.2.1"),
		rules: "-A -u 10.0.1.100:53 -s rr\n-a -u 10.0.1.100:53 -r 10.0.2.11:5353 -b\n",
		hops:  testHops(),
	}
	fullnat6 = fullnatNet{
		v6:  true,
		cli: netip.MustParseAddr("2001:db8:1::2"), vip: netip.MustParseAddr("2001:db8:1::100"),
		rs: netip.MustParseAddr("2001:db8:2::11"), lip: netip.MustParseAddr("2001:db8:2::1"),
		rules: "-A -u [2001:db8:1::100]:53 -s rr\n-a -u [2001:db8:1::100]:53 -r [2001:db8:2::11]:5353 -b\n",
		hops: fakeHops{netip.MustParseAddr("2001:db8:2::11"): {Ifindex: 2, SrcMAC: macDir1, DstMAC: macRS1,
			Src: netip.MustParseAddr("2001:db8:2::1"), MTU: 1500}},
	}
)

func (n *fullnatNet) rig(t *testing.T) *rig {
	r := newRig(t, n.rules)
	r.withHops(n.hops, 0)
	return r
}

// ipLayer returns the IP layer of a test frame from src to dst.
func (n *fullnatNet) ipLayer(src, dst netip.Addr, ttl uint8, proto layers.IPProtocol) (gopacket.SerializableLayer, gopacket.NetworkLayer) {
	if n.v6 {
		ip := &layers.IPv6{Version: 6, HopLimit: ttl, NextHeader: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		return ip, ip
	}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: ttl, Protocol: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	return ip, ip
}

func (n *fullnatNet) ethType() layers.EthernetType {
	if n.v6 {
		return layers.EthernetTypeIPv6
	}
	return layers.EthernetTypeIPv4
}

// udp builds a UDP datagram frame.
func (n *fullnatNet) udp(t *testing.T, srcMAC, dstMAC [6]byte, src, dst netip.AddrPort, payload string) []byte {
	t.Helper()
	ip, nl := n.ipLayer(src.Addr(), dst.Addr(), 64, layers.IPProtocolUDP)
	u := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
	if err := u.SetNetworkLayerForChecksum(nl); err != nil {
		t.Fatal(err)
	}
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(srcMAC[:]), DstMAC: net.HardwareAddr(dstMAC[:]), EthernetType: n.ethType()}
	return serialize(t, eth, ip, u, gopacket.Payload(payload))
}

// portUnreach builds an ICMP port unreachable from src to dst quoting
// quoted (an IP packet), with the given TTL.
func (n *fullnatNet) portUnreach(t *testing.T, srcMAC, dstMAC [6]byte, src, dst netip.Addr, ttl uint8, quoted []byte) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(srcMAC[:]), DstMAC: net.HardwareAddr(dstMAC[:]), EthernetType: n.ethType()}
	if n.v6 {
		ip, nl := n.ipLayer(src, dst, ttl, layers.IPProtocolICMPv6)
		ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeDestinationUnreachable, layers.ICMPv6CodePortUnreachable)}
		if err := ic.SetNetworkLayerForChecksum(nl); err != nil {
			t.Fatal(err)
		}
		return serialize(t, eth, ip, ic, gopacket.Payload(append(make([]byte, 4), quoted...)))
	}
	ip, _ := n.ipLayer(src, dst, ttl, layers.IPProtocolICMPv4)
	ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodePort)}
	return serialize(t, eth, ip, ic, gopacket.Payload(quoted))
}

func serialize(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// withTTL returns a copy of the IP packet of frame (Ethernet stripped)
// with its TTL or hop limit set, the IPv4 header checksum fixed: the
// packet as a later hop sees it.
func withTTL(frame []byte, ttl uint8) []byte {
	ip := append([]byte(nil), frame[14:]...)
	if ip[0]>>4 == 6 {
		ip[header.IPv6HopLimitOff] = ttl
		return ip
	}
	ip[header.IPv4TTLOff] = ttl
	header.IPv4(ip).UpdateChecksum()
	return ip
}

// only returns the one frame sent, on ifindex.
func only(t *testing.T, out []dataplane.Frame, ifindex int, what string) []byte {
	t.Helper()
	if len(out) != 1 || out[0].Ifindex != ifindex {
		t.Fatalf("%s: sent %d frames %+v, want one on ifindex %d", what, len(out), out, ifindex)
	}
	return out[0].Data()
}

// TestFullNATICMPFromRealServer: the real server refuses the datagram the
// director sent it from LIP:lport; its port unreachable, addressed to LIP,
// reaches the client from the VIP quoting the client's own datagram,
// exactly as a port unreachable from the VIP itself would.
func TestFullNATICMPFromRealServer(t *testing.T) {
	for _, n := range []*fullnatNet{&fullnat4, &fullnat6} {
		r := n.rig(t)
		cli, vip := netip.AddrPortFrom(n.cli, 40000), netip.AddrPortFrom(n.vip, 53)
		req := n.udp(t, macCli, macDir0, cli, vip, "query")
		fwd := only(t, r.run(t, req), 2, "request")
		var fp header.Parsed
		fp.Parse(fwd)
		if fp.SrcAddr() != n.lip || fp.DstAddr() != n.rs || fp.DstPort != 5353 {
			t.Fatalf("v6=%v: request sent %v:%d -> %v:%d", n.v6, fp.SrcAddr(), fp.SrcPort, fp.DstAddr(), fp.DstPort)
		}

		icmp := n.portUnreach(t, macRS1, macDir1, n.rs, n.lip, 64, fwd[14:])
		got := only(t, r.run(t, icmp), 1, "icmp error")
		want := n.portUnreach(t, macDir0, macCli, n.vip, n.cli, 63, withTTL(req, 63))
		if !bytes.Equal(got, want) {
			t.Fatalf("v6=%v: error for the client\n got  %x\n want %x", n.v6, got, want)
		}
		if c := r.w.Counters.Load(dataplane.CntICMPRelated); c != 1 {
			t.Fatalf("v6=%v: icmp-related %d, want 1", n.v6, c)
		}
	}
}

// TestFullNATICMPFromClient: the client refuses the director's reply
// VIP → client; its port unreachable, addressed to the VIP, reaches the real
// server from LIP quoting the real server's own reply.
func TestFullNATICMPFromClient(t *testing.T) {
	for _, n := range []*fullnatNet{&fullnat4, &fullnat6} {
		r := n.rig(t)
		cli, vip := netip.AddrPortFrom(n.cli, 40000), netip.AddrPortFrom(n.vip, 53)
		fwd := only(t, r.run(t, n.udp(t, macCli, macDir0, cli, vip, "query")), 2, "request")
		var fp header.Parsed
		fp.Parse(fwd)
		local := netip.AddrPortFrom(fp.SrcAddr(), fp.SrcPort)

		rep := n.udp(t, macRS1, macDir1, netip.AddrPortFrom(n.rs, 5353), local, "answer")
		back := only(t, r.run(t, rep), 1, "reply")

		icmp := n.portUnreach(t, macCli, macDir0, n.cli, n.vip, 64, back[14:])
		got := only(t, r.run(t, icmp), 2, "icmp error")
		want := n.portUnreach(t, macDir1, macRS1, n.lip, n.rs, 63, withTTL(rep, 63))
		if !bytes.Equal(got, want) {
			t.Fatalf("v6=%v: error for the real server\n got  %x\n want %x", n.v6, got, want)
		}
	}
}

// TestFullNATICMPFromClientQueued: the error waits for the real server's
// next hop like a request, and leaves translated once it resolves.
func TestFullNATICMPFromClientQueued(t *testing.T) {
	n := &fullnat4
	r := n.rig(t)
	cli, vip := netip.AddrPortFrom(n.cli, 40000), netip.AddrPortFrom(n.vip, 53)
	fwd := only(t, r.run(t, n.udp(t, macCli, macDir0, cli, vip, "query")), 2, "request")
	lport := binary.BigEndian.Uint16(fwd[14+20:])
	rep := n.udp(t, macRS1, macDir1, netip.AddrPortFrom(n.rs, 5353), netip.AddrPortFrom(n.lip, lport), "answer")
	back := only(t, r.run(t, rep), 1, "reply")

	h := newFlakyHops()
	r.withHops(h, 0)
	icmp := n.portUnreach(t, macCli, macDir0, n.cli, n.vip, 64, back[14:])
	if out := r.run(t, icmp); len(out) != 0 || r.w.Counters.Load(dataplane.CntNeighQueued) != 1 {
		t.Fatalf("sent %d, queued %d; want 0, 1", len(out), r.w.Counters.Load(dataplane.CntNeighQueued))
	}
	h.set(n.rs.String(), true)
	got := only(t, r.retry(), 2, "queued icmp error")
	if want := n.portUnreach(t, macDir1, macRS1, n.lip, n.rs, 63, withTTL(rep, 63)); !bytes.Equal(got, want) {
		t.Fatalf("error for the real server\n got  %x\n want %x", got, want)
	}
}

// TestFullNATICMPNoAllocs: relating and translating a FULLNAT ICMP error
// allocates nothing.
func TestFullNATICMPNoAllocs(t *testing.T) {
	n := &fullnat4
	r := n.rig(t)
	req := n.udp(t, macCli, macDir0, netip.AddrPortFrom(n.cli, 40000), netip.AddrPortFrom(n.vip, 53), "query")
	fwd := only(t, r.run(t, req), 2, "request")
	icmp := n.portUnreach(t, macRS1, macDir1, n.rs, n.lip, 64, fwd[14:])
	w := dataplane.NewWorker(discardIO{}, r.env)
	buf := make([]byte, 64+len(icmp))
	frames := []dataplane.Frame{{}}
	allocs := testing.AllocsPerRun(200, func() {
		copy(buf[64:], icmp)
		frames[0] = dataplane.Frame{Buf: buf, Off: 64, Len: len(icmp), Ifindex: 2}
		w.ProcessBatch(frames)
	})
	if w.Counters.Load(dataplane.CntICMPRelated) == 0 || w.Counters.Load(dataplane.CntTx) == 0 {
		t.Fatal("the measured path translated nothing")
	}
	if allocs != 0 {
		t.Fatalf("FULLNAT ICMP path allocates %.1f times", allocs)
	}
}
