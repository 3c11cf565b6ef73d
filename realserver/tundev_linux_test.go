package realserver

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/internal/netnstest"
)

// TestTUNVnetRoundTrip opens the decapsulator's TUN device with
// IFF_VNET_HDR in a namespace, plays a TCP client through it towards a
// listener on the VIP — the SYN-ACK is read back with its virtio_net_hdr —
// and writes the client's data as three segments coalesced by GRO into one
// super-frame with a partial checksum: the listener must read exactly the
// bytes sent.
func TestTUNVnetRoundTrip(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	ns := netnstest.New(t, "rsvnet")
	var tun *tunDev
	if err := ns.Do(func() (err error) { tun, err = openTUN("uvsvnet0", true); return err }); err != nil {
		t.Fatalf("open TUN: %v", err)
	}
	t.Cleanup(func() { tun.Close() })
	if !tun.vnet {
		t.Fatal("the kernel refused IFF_VNET_HDR; the fallback device has none")
	}
	ns.AddrAdd(t, tun.Name(), "198.18.0.10/32")
	ns.LinkUp(t, tun.Name())
	ns.RouteAdd(t, "198.18.1.2/32", "dev", tun.Name())
	ns.Sysctl(t, "net.ipv4.conf.all.rp_filter", "0")
	ns.Sysctl(t, "net.ipv4.conf."+tun.Name()+".rp_filter", "0")
	var ln *net.TCPListener
	if err := ns.Do(func() (err error) {
		ln, err = net.ListenTCP("tcp4", &net.TCPAddr{IP: vipIP, Port: 80})
		return err
	}); err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })

	const isn = 1000
	write := func(frame []byte) {
		t.Helper()
		if _, err := tun.Write(frame); err != nil {
			t.Fatalf("TUN write: %v", err)
		}
	}
	plain := func(pkt []byte) []byte { return append(make([]byte, vnetHdrLen), pkt...) }
	syn := seg{sport: 40000, seq: isn, syn: true, win: 65535}
	write(plain(syn.build(t)))

	// The SYN-ACK comes back through the device, after a virtio_net_hdr.
	buf := make([]byte, 65536)
	var synack *layers.TCP
	_ = tun.SetReadDeadline(time.Now().Add(5 * time.Second))
	for synack == nil {
		n, err := tun.Read(buf)
		if err != nil {
			t.Fatalf("no SYN-ACK from the listener: %v", err)
		}
		if n < vnetHdrLen+40 || buf[vnetHdrLen]>>4 != 4 {
			continue
		}
		if buf[1] != 0 {
			t.Fatalf("SYN-ACK with gso_type %d", buf[1])
		}
		p := gopacket.NewPacket(buf[vnetHdrLen:n], layers.LayerTypeIPv4, gopacket.Default)
		if l, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP); ok && l.SYN && l.ACK && l.Ack == isn+1 {
			synack = l
		}
	}
	ack := seg{sport: 40000, seq: isn + 1, ack: synack.Seq + 1, id: 1, win: 65535}
	write(plain(ack.build(t)))

	// Three full segments and a short one, coalesced.
	data := train(seg{sport: 40000, seq: isn + 1, ack: synack.Seq + 1, id: 2, win: 65535}, 4, 1400)
	data[3].n, data[3].psh = 600, true
	var want []byte
	var pkts [][]byte
	for _, s := range data {
		p := s.build(t)
		pkts = append(pkts, p)
		want = append(want, p[40:]...)
	}
	frames, segs := runGRO(t, pkts)
	if len(frames) != 1 || segs[0] != 4 || frames[0][1] != vnetGSOTCPv4 {
		t.Fatalf("GRO made %d frames %v", len(frames), segs)
	}
	write(frames[0])

	_ = ln.SetDeadline(time.Now().Add(5 * time.Second))
	c, err := ln.AcceptTCP()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read the coalesced data: %v (the stack dropped the super-frame?)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("the listener read different bytes")
	}
	if binary.NativeEndian.Uint16(frames[0][4:]) != 1400 {
		t.Fatalf("gso_size %d", binary.NativeEndian.Uint16(frames[0][4:]))
	}
}

// TestTUNPlainFallback: without vnet (--no-offload, or a kernel refusing
// IFF_VNET_HDR) the device takes bare packets, and ServeBatch writes each
// decapsulated packet as it is.
func TestTUNPlainFallback(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	ns := netnstest.New(t, "rsplain")
	var tun *tunDev
	if err := ns.Do(func() (err error) { tun, err = openTUN("uvsplain0", false); return err }); err != nil {
		t.Fatalf("open TUN: %v", err)
	}
	t.Cleanup(func() { tun.Close() })
	if tun.vnet {
		t.Fatal("vnet set on a device opened without it")
	}
	ns.AddrAdd(t, tun.Name(), "198.18.0.10/32")
	ns.LinkUp(t, tun.Name())
	ns.Sysctl(t, "net.ipv4.conf.all.rp_filter", "0")
	ns.Sysctl(t, "net.ipv4.conf."+tun.Name()+".rp_filter", "0")
	var ln *net.UDPConn
	if err := ns.Do(func() (err error) {
		ln, err = net.ListenUDP("udp4", &net.UDPAddr{IP: vipIP, Port: 80})
		return err
	}); err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	pkt, _ := ipip(t, 0, innerUDP4("plain", 0)...)
	d := NewDecapsulator([]netip.Addr{netip.MustParseAddr("198.18.0.10")})
	if err := d.ServeBatch(EncapIPIP, &fakeBatch{pkts: [][]byte{pkt}, left: 1}, tun, tun.vnet, NewBatch(4)); err != nil {
		t.Fatalf("ServeBatch: %v", err)
	}
	buf := make([]byte, 100)
	_ = ln.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := ln.Read(buf)
	if err != nil || string(buf[:n]) != "plain" {
		t.Fatalf("read %q, %v: want the datagram", buf[:n], err)
	}
}
