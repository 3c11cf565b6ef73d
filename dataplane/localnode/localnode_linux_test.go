package localnode

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/wait"
)

// udpPacket builds an IP packet (no link-layer header) carrying a UDP
// datagram src → dst with a correct checksum.
func udpPacket(t *testing.T, src, dst netip.AddrPort, payload []byte) []byte {
	t.Helper()
	u := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
	var ip gopacket.SerializableLayer
	if src.Addr().Is4() {
		ip4 := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP,
			SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
		_ = u.SetNetworkLayerForChecksum(ip4)
		ip = ip4
	} else {
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP,
			SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
		_ = u.SetNetworkLayerForChecksum(ip6)
		ip = ip6
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		ip, u, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestDeliver: a packet written to the device reaches a socket bound to
// an address of the namespace's lo (an LVS-DR VIP) from a client whose
// route is through another interface, with the namespace's conf/all
// rp_filter strict (and RPFilter's changes applied), for IPv4 and IPv6, also far larger than the device's
// MTU (a GSO super-frame delivered whole). The device is up with no
// address, hidden from nothing, and gone after Close.
func TestDeliver(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	ns := netnstest.New(t, "lnode")
	peer := netnstest.New(t, "lnpeer")
	netnstest.Veth(t, ns, "d0", peer, "p0")
	ns.AddrAdd(t, "d0", "198.18.6.1/24")
	ns.IP(t, "-6", "addr", "add", "fd00:6::1/64", "dev", "d0", "nodad")
	ns.AddrAdd(t, "lo", "198.18.6.100/32")
	ns.IP(t, "-6", "addr", "add", "fd00:6::100/128", "dev", "lo")
	ns.Sysctl(t, "net.ipv4.conf.all.rp_filter", "1")

	var dev *Device
	var c4, c6 net.PacketConn
	if err := ns.Do(func() error {
		var err error
		if dev, err = Open(""); err != nil {
			return err
		}
		if c4, err = net.ListenPacket("udp4", "198.18.6.100:7000"); err != nil {
			return err
		}
		c6, err = net.ListenPacket("udp6", "[fd00:6::100]:7000")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close(); c4.Close(); c6.Close() })
	if dev.Name() != DefaultName || dev.Index() <= 0 {
		t.Fatalf("device %q index %d", dev.Name(), dev.Index())
	}
	link := ns.IP(t, "-d", "link", "show", DefaultName)
	if !strings.Contains(link, "UP") || !strings.Contains(link, "tun") {
		t.Fatalf("device not an up TUN device:\n%s", link)
	}
	if addrs := ns.IP(t, "-o", "addr", "show", "dev", DefaultName); strings.TrimSpace(addrs) != "" {
		t.Fatalf("device has addresses:\n%s", addrs)
	}
	// conf/all/rp_filter is 1: RPFilter lowers it after raising d0's
	// and default's, so that they keep strict filtering.
	if err := ns.Do(func() error {
		set, err := RPFilter(dev.Name())
		if err != nil {
			return err
		}
		for _, s := range set {
			if err := os.WriteFile(filepath.Join("/proc/sys", s.Name), []byte(s.Value), 0); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"all": "0", "default": "1", "d0": "1", "lo": "1", DefaultName: "0"} {
		if got := strings.TrimSpace(ns.Exec(t, "sysctl", "-n", "net.ipv4.conf."+k+".rp_filter")); got != want {
			t.Errorf("net.ipv4.conf.%s.rp_filter = %s, want %s", k, got, want)
		}
	}
	if err := ns.Do(func() error {
		set, err := RPFilter(dev.Name())
		if err == nil && len(set) != 0 {
			err = fmt.Errorf("RPFilter with all=0: %v, want nothing", set)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}

	big := make([]byte, 30000)
	for i := range big {
		big[i] = byte(i)
	}
	for _, c := range []struct {
		conn     net.PacketConn
		src, dst netip.AddrPort
	}{
		{c4, netip.MustParseAddrPort("198.18.6.2:4000"), netip.MustParseAddrPort("198.18.6.100:7000")},
		{c6, netip.MustParseAddrPort("[fd00:6::2]:4000"), netip.MustParseAddrPort("[fd00:6::100]:7000")},
	} {
		for _, payload := range [][]byte{[]byte("hello"), big} {
			if err := dev.Deliver(udpPacket(t, c.src, c.dst, payload)); err != nil {
				t.Fatalf("Deliver %d bytes to %s: %v", len(payload), c.dst, err)
			}
			buf := make([]byte, 65536)
			_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, from, err := c.conn.ReadFrom(buf)
			if err != nil {
				t.Fatalf("%d bytes to %s not received: %v", len(payload), c.dst, err)
			}
			if string(buf[:n]) != string(payload) || from.(*net.UDPAddr).AddrPort().Port() != c.src.Port() {
				t.Fatalf("received %d bytes from %v, want %d from %s", n, from, len(payload), c.src)
			}
		}
	}
	pkt := udpPacket(t, netip.MustParseAddrPort("198.18.6.2:4000"), netip.MustParseAddrPort("198.18.6.100:7001"), []byte("x"))
	if n := testing.AllocsPerRun(100, func() { _ = dev.Deliver(pkt) }); n != 0 {
		t.Fatalf("Deliver: %v allocs, want 0", n)
	}

	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 5*time.Second, func() bool {
		_, err := ns.Run("ip", "link", "show", DefaultName)
		return err != nil
	}, "the device to go with its descriptor")
	if err := dev.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestOpenTwice: a second device of the same name cannot be made while
// the first is open (one uvsd per namespace), and a bad name is refused.
func TestOpenTwice(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	ns := netnstest.New(t, "lnode")
	err := ns.Do(func() error {
		a, err := Open("uvs-lt")
		if err != nil {
			return err
		}
		defer a.Close()
		if b, err := Open("uvs-lt"); err == nil {
			b.Close()
			return errors.New("second Open of one name succeeded")
		}
		if _, err := Open("a-name-far-too-long-for-linux"); err == nil {
			return errors.New("Open of a 29-byte name succeeded")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// BenchmarkDeliver measures one delivery of a small UDP packet to a
// socket-less port of a namespace's own address (the kernel takes it,
// routes it locally and drops it at the UDP layer).
func BenchmarkDeliver(b *testing.B) {
	netnstest.SkipIfNotRoot(b)
	ns := netnstest.New(b, "lnbench")
	ns.AddrAdd(b, "lo", "198.18.7.1/32")
	var dev *Device
	if err := ns.Do(func() error {
		var err error
		dev, err = Open("")
		return err
	}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { dev.Close() })
	u := &layers.UDP{SrcPort: 4000, DstPort: 9}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP,
		SrcIP: net.ParseIP("198.18.8.2"), DstIP: net.ParseIP("198.18.7.1")}
	_ = u.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		ip, u, gopacket.Payload(make([]byte, 64))); err != nil {
		b.Fatal(err)
	}
	pkt := buf.Bytes()
	b.ReportAllocs()
	for b.Loop() {
		if err := dev.Deliver(pkt); err != nil {
			b.Fatal(err)
		}
	}
}
