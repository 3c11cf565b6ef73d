package dataplane_test

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/internal/fuzzwatch"
	"github.com/uvs-lb/uvs/ipfrag"
)

// FuzzTunICMP feeds ICMPv4 errors to the director with arbitrary type,
// code, MTU and quoted bytes (seeded with the tunnelled packets the
// director sent over IPIP, GRE with checksum and GUE) after a TUN
// connection exists. Whatever the error, the worker must not panic, may
// send at most one frame, and a learnt path MTU is never above the
// interface's nor below 552 (ip_rt_min_pmtu): a later DF packet that fits
// 552 less the overhead always goes to the real server.
func FuzzTunICMP(f *testing.F) {
	for i, opts := range []string{"", " --tun-type gre --tun-csum", " --tun-type gue --tun-port 6080"} {
		r := tunFuzzRig(f, nil, opts)
		sent := oneOutTB(f, r.run(f, tunFrameTB(f, 40000, 1000)))
		q := sent[14:]
		f.Add(uint8(i), uint8(3), uint8(4), uint16(1400), q[:min(len(q), 548)])
		f.Add(uint8(i), uint8(3), uint8(4), uint16(100), q[:64])
		f.Add(uint8(i), uint8(11), uint8(0), uint16(0), q[:60])
	}
	var wc workerCache
	f.Fuzz(func(t *testing.T, kind, typ, code uint8, mtu uint16, quoted []byte) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string {
			return fmt.Sprintf("kind %d type %d code %d mtu %d quoted %x", kind, typ, code, mtu, quoted)
		})()
		opts := [...]string{"", " --tun-type gre --tun-csum", " --tun-type gue --tun-port 6080"}[kind%3]
		r := tunFuzzRig(t, &wc, opts)
		r.run(t, tunFrameTB(t, 40000, 1000))
		eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(macRS2[:]), DstMAC: net.HardwareAddr(macDir1[:]), EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: net.IP{10, 0, 2, 254}, DstIP: net.IP{10, 0, 2, 1}}
		ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, code), Seq: mtu}
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, ic, gopacket.Payload(quoted)); err != nil {
			return
		}
		if out := r.run(t, buf.Bytes()); len(out) > 1 {
			t.Fatalf("%d frames for one ICMP error", len(out))
		}
		ov := map[string]int{"": 20, " --tun-type gre --tun-csum": 28, " --tun-type gue --tun-port 6080": 32}[opts]
		out := r.run(t, tunFrameTB(t, 40000, 552-ov-28))
		if len(out) != 1 || [6]byte(out[0].Data()[:6]) != macRS1 {
			t.Fatalf("a %d-byte DF packet did not reach the real server after the error", 552-ov)
		}
		if n := binary.BigEndian.Uint16(out[0].Data()[16:]); n != 552 {
			t.Fatalf("outer length %d", n)
		}
	})
}

// tunFuzzRig is a rig with one UDP TUN service and the director's address
// 10.0.2.1 as a host address; its worker is wc's (reset) unless wc is nil,
// with the smallest reassembly memory (no input is a fragment).
func tunFuzzRig(t testing.TB, wc *workerCache, opts string) *rig {
	rules := "-A -u 10.0.1.100:80 -s rr\n-a -u 10.0.1.100:80 -r 10.0.2.11 -i" + opts + "\n"
	var r *rig
	if wc == nil {
		r = newRig(t, rules)
	} else {
		r = wc.rig(t, rules)
		r.env.FragMemory = ipfrag.MinMemory
		r.w = wc.worker(r.io, r.env)
	}
	h := *r.env.Host.Load()
	h.Local = map[[16]byte]bool{netip.MustParseAddr("10.0.2.1").As16(): true}
	r.env.Host.Store(&h)
	return r
}

// tunFrameTB is a client's DF UDP datagram to the VIP with payload bytes.
func tunFrameTB(t testing.TB, sport uint16, payload int) []byte {
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(macCli[:]), DstMAC: net.HardwareAddr(macDir0[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{10, 0, 1, 2}, DstIP: net.IP{10, 0, 1, 100}, Flags: layers.IPv4DontFragment}
	u := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: 80}
	_ = u.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, u, gopacket.Payload(make([]byte, payload))); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func oneOutTB(t testing.TB, out []dataplane.Frame) []byte {
	t.Helper()
	if len(out) != 1 {
		t.Fatalf("sent %d frames, want 1", len(out))
	}
	return out[0].Data()
}
