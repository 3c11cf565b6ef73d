package ownership_test

import (
	"fmt"
	"strings"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// describe returns frame in hex with a one-line decoding by gopacket (an
// independent decoder), for failure messages.
func describe(f []byte) string {
	p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.DecodeOptions{NoCopy: true})
	var parts []string
	for _, l := range p.Layers() {
		switch l := l.(type) {
		case *layers.Ethernet:
			parts = append(parts, fmt.Sprintf("eth type %#04x", uint16(l.EthernetType)))
		case *layers.Dot1Q:
			parts = append(parts, fmt.Sprintf("vlan %d type %#04x", l.VLANIdentifier, uint16(l.Type)))
		case *layers.ARP:
			parts = append(parts, fmt.Sprintf("arp op %d target %v", l.Operation, fmt.Sprint(l.DstProtAddress)))
		case *layers.IPv4:
			parts = append(parts, fmt.Sprintf("ip4 %v > %v proto %d ihl %d len %d frag %d", l.SrcIP, l.DstIP, l.Protocol, l.IHL, l.Length, l.FragOffset))
		case *layers.IPv6:
			parts = append(parts, fmt.Sprintf("ip6 %v > %v next %d plen %d", l.SrcIP, l.DstIP, l.NextHeader, l.Length))
		case *layers.IPv6Fragment:
			parts = append(parts, fmt.Sprintf("frag6 off %d next %d", l.FragmentOffset, l.NextHeader))
		case *layers.TCP:
			parts = append(parts, fmt.Sprintf("tcp %d > %d", l.SrcPort, l.DstPort))
		case *layers.UDP:
			parts = append(parts, fmt.Sprintf("udp %d > %d", l.SrcPort, l.DstPort))
		case *layers.SCTP:
			parts = append(parts, fmt.Sprintf("sctp %d > %d", l.SrcPort, l.DstPort))
		case *layers.ICMPv4:
			parts = append(parts, fmt.Sprintf("icmp4 %v", l.TypeCode))
		case *layers.ICMPv6:
			parts = append(parts, fmt.Sprintf("icmp6 %v", l.TypeCode))
		default:
			parts = append(parts, l.LayerType().String())
		}
	}
	if e := p.ErrorLayer(); e != nil {
		parts = append(parts, "(gopacket: "+e.Error().Error()+")")
	}
	return fmt.Sprintf("  frame (%d bytes): % x\n  decoded: %s", len(f), f, strings.Join(parts, " | "))
}
