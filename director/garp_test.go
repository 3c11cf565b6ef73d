package director

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/header"
)

var testMAC = [6]byte{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}

// TestGratuitousARP decodes the frame with gopacket (the oracle).
func TestGratuitousARP(t *testing.T) {
	f := garpFrame(netip.MustParseAddr("192.168.0.239"), testMAC)
	p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	arp, _ := p.Layer(layers.LayerTypeARP).(*layers.ARP)
	if eth == nil || arp == nil {
		t.Fatalf("not Ethernet/ARP: %v", p)
	}
	if eth.DstMAC.String() != "ff:ff:ff:ff:ff:ff" || !bytes.Equal(eth.SrcMAC, testMAC[:]) {
		t.Errorf("ethernet %v -> %v", eth.SrcMAC, eth.DstMAC)
	}
	vip := []byte{192, 168, 0, 239}
	if arp.Operation != layers.ARPRequest || arp.AddrType != layers.LinkTypeEthernet || arp.Protocol != layers.EthernetTypeIPv4 ||
		!bytes.Equal(arp.SourceHwAddress, testMAC[:]) || !bytes.Equal(arp.SourceProtAddress, vip) ||
		!bytes.Equal(arp.DstProtAddress, vip) || !bytes.Equal(arp.DstHwAddress, make([]byte, 6)) {
		t.Errorf("ARP %+v", arp)
	}
	// An IPv4-mapped VIP is announced as IPv4.
	if g := garpFrame(netip.MustParseAddr("::ffff:192.168.0.239"), testMAC); !bytes.Equal(g, f) {
		t.Error("mapped VIP: another frame")
	}
}

// TestUnsolicitedNA decodes the frame with gopacket and checks the
// ICMPv6 checksum with the header package's sum.
func TestUnsolicitedNA(t *testing.T) {
	vip := netip.MustParseAddr("2001:db8::239")
	f := garpFrame(vip, testMAC)
	p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	ip6, _ := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	na, _ := p.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
	if ip6 == nil || na == nil {
		t.Fatalf("not IPv6/NA: %v", p)
	}
	if ip6.HopLimit != 255 || !ip6.SrcIP.Equal(net.IP(vip.AsSlice())) || ip6.DstIP.String() != "ff02::1" {
		t.Errorf("IPv6 %v -> %v hop limit %d", ip6.SrcIP, ip6.DstIP, ip6.HopLimit)
	}
	if !na.TargetAddress.Equal(net.IP(vip.AsSlice())) || !na.Override() || na.Solicited() || na.Router() {
		t.Errorf("NA target %v flags %#x", na.TargetAddress, na.Flags)
	}
	if len(na.Options) != 1 || na.Options[0].Type != layers.ICMPv6OptTargetAddress || !bytes.Equal(na.Options[0].Data, testMAC[:]) {
		t.Errorf("NA options %v", na.Options)
	}
	src, dst := vip.As16(), netip.IPv6LinkLocalAllNodes().As16()
	icmp := f[54:]
	if sum := header.Checksum(icmp, header.PseudoHeaderChecksum(58, src[:], dst[:], uint32(len(icmp)))); sum != 0xffff {
		t.Errorf("ICMPv6 checksum does not verify: sum %#04x", sum)
	}
}
