// Package pkttest builds test frames with gopacket, the independent oracle
// the wire-format and forwarding-mode tests compare uvs's rewrites against.
// Only tests import it.
package pkttest

import (
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

var (
	MACA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xaa}
	MACB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xbb}
)

// Serialize builds a frame with gopacket, fixing lengths and checksums.
func Serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// L2 returns the Ethernet (and optional 802.1Q) layers for payload type et.
func L2(vlan bool, et layers.EthernetType) []gopacket.SerializableLayer {
	if vlan {
		return []gopacket.SerializableLayer{
			&layers.Ethernet{SrcMAC: MACA, DstMAC: MACB, EthernetType: layers.EthernetTypeDot1Q},
			&layers.Dot1Q{VLANIdentifier: 42, Type: et},
		}
	}
	return []gopacket.SerializableLayer{&layers.Ethernet{SrcMAC: MACA, DstMAC: MACB, EthernetType: et}}
}

// Flow describes a test packet.
type Flow struct {
	V6       bool
	Vlan     bool
	Proto    layers.IPProtocol
	Src, Dst string
	Sport    uint16
	Dport    uint16
	TTL      uint8
	TOS      uint8
	DF       bool
	IPOpts   bool // IPv4 options (IHL 7)
	Ext      bool // IPv6 hop-by-hop + destination options
	Flags    string
	Payload  int
}

func (f Flow) Layers(t testing.TB) []gopacket.SerializableLayer {
	et := layers.EthernetTypeIPv4
	if f.V6 {
		et = layers.EthernetTypeIPv6
	}
	ls := L2(f.Vlan, et)
	src, dst := net.IP(netip.MustParseAddr(f.Src).AsSlice()), net.IP(netip.MustParseAddr(f.Dst).AsSlice())
	var nl gopacket.NetworkLayer
	if f.V6 {
		ip := &layers.IPv6{Version: 6, TrafficClass: f.TOS, HopLimit: f.TTL, SrcIP: src, DstIP: dst, NextHeader: f.Proto}
		ls = append(ls, ip)
		if f.Ext {
			ip.NextHeader = layers.IPProtocolIPv6HopByHop
			hbh := &layers.IPv6HopByHop{}
			hbh.NextHeader = layers.IPProtocolIPv6Destination
			hbh.Options = []*layers.IPv6HopByHopOption{{OptionType: 1, OptionLength: 4, OptionData: []byte{0, 0, 0, 0}}}
			ls = append(ls, hbh)
			ls = append(ls, &IPv6DstOpts{Next: f.Proto})
		}
		nl = ip
	} else {
		ip := &layers.IPv4{Version: 4, IHL: 5, TOS: f.TOS, TTL: f.TTL, SrcIP: src, DstIP: dst, Protocol: f.Proto, Id: 0x1234}
		if f.DF {
			ip.Flags = layers.IPv4DontFragment
		}
		if f.IPOpts {
			ip.Options = []layers.IPv4Option{{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}}, {OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
		}
		ls = append(ls, ip)
		nl = ip
	}
	pl := make([]byte, f.Payload)
	for i := range pl {
		pl[i] = byte(i*7 + 3)
	}
	switch f.Proto {
	case layers.IPProtocolTCP:
		tcp := &layers.TCP{SrcPort: layers.TCPPort(f.Sport), DstPort: layers.TCPPort(f.Dport), Seq: 1000, Ack: 2000, Window: 65535}
		for _, c := range f.Flags {
			switch c {
			case 'S':
				tcp.SYN = true
			case 'A':
				tcp.ACK = true
			case 'F':
				tcp.FIN = true
			case 'R':
				tcp.RST = true
			case 'P':
				tcp.PSH = true
			}
		}
		tcp.Options = []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{5, 0xb4}}}
		if err := tcp.SetNetworkLayerForChecksum(nl); err != nil {
			t.Fatal(err)
		}
		ls = append(ls, tcp)
	case layers.IPProtocolUDP:
		udp := &layers.UDP{SrcPort: layers.UDPPort(f.Sport), DstPort: layers.UDPPort(f.Dport)}
		if err := udp.SetNetworkLayerForChecksum(nl); err != nil {
			t.Fatal(err)
		}
		ls = append(ls, udp)
	}
	return append(ls, gopacket.Payload(pl))
}

func (f Flow) Frame(t testing.TB) []byte { return Serialize(t, f.Layers(t)...) }

// IPv6DstOpts is a minimal 8-byte destination-options header (gopacket's
// own serializer for it needs options set up just so).
type IPv6DstOpts struct{ Next layers.IPProtocol }

func (d *IPv6DstOpts) LayerType() gopacket.LayerType { return layers.LayerTypeIPv6Destination }

func (d *IPv6DstOpts) SerializeTo(b gopacket.SerializeBuffer, _ gopacket.SerializeOptions) error {
	h, err := b.PrependBytes(8)
	if err != nil {
		return err
	}
	copy(h, []byte{byte(d.Next), 0, 1, 4, 0, 0, 0, 0}) // PadN of 4 bytes
	return nil
}

// OffsetOf returns the offset of sub within frame (sub must alias frame).
func OffsetOf(frame, sub []byte) int { return cap(frame) - cap(sub) }

// Decode decodes frame with gopacket without copying, so that layer
// contents alias frame.
func Decode(frame []byte) gopacket.Packet {
	return gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.DecodeOptions{NoCopy: true})
}
