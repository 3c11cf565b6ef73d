package modes_test

import (
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xaa}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xbb}
)

// serialize builds a frame with gopacket, fixing lengths and checksums.
func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// l2 returns the Ethernet (and optional 802.1Q) layers for payload type et.
func l2(vlan bool, et layers.EthernetType) []gopacket.SerializableLayer {
	if vlan {
		return []gopacket.SerializableLayer{
			&layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: layers.EthernetTypeDot1Q},
			&layers.Dot1Q{VLANIdentifier: 42, Type: et},
		}
	}
	return []gopacket.SerializableLayer{&layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: et}}
}

// flow describes a test packet.
type flow struct {
	v6       bool
	vlan     bool
	proto    layers.IPProtocol
	src, dst string
	sport    uint16
	dport    uint16
	ttl      uint8
	tos      uint8
	df       bool
	ipOpts   bool // IPv4 options (IHL 7)
	ext      bool // IPv6 hop-by-hop + destination options
	flags    string
	payload  int
}

func (f flow) layers(t testing.TB) []gopacket.SerializableLayer {
	et := layers.EthernetTypeIPv4
	if f.v6 {
		et = layers.EthernetTypeIPv6
	}
	ls := l2(f.vlan, et)
	src, dst := net.IP(netip.MustParseAddr(f.src).AsSlice()), net.IP(netip.MustParseAddr(f.dst).AsSlice())
	var nl gopacket.NetworkLayer
	if f.v6 {
		ip := &layers.IPv6{Version: 6, TrafficClass: f.tos, HopLimit: f.ttl, SrcIP: src, DstIP: dst, NextHeader: f.proto}
		ls = append(ls, ip)
		if f.ext {
			ip.NextHeader = layers.IPProtocolIPv6HopByHop
			hbh := &layers.IPv6HopByHop{}
			hbh.NextHeader = layers.IPProtocolIPv6Destination
			hbh.Options = []*layers.IPv6HopByHopOption{{OptionType: 1, OptionLength: 4, OptionData: []byte{0, 0, 0, 0}}}
			ls = append(ls, hbh)
			ls = append(ls, &ipv6DstOpts{next: f.proto})
		}
		nl = ip
	} else {
		ip := &layers.IPv4{Version: 4, IHL: 5, TOS: f.tos, TTL: f.ttl, SrcIP: src, DstIP: dst, Protocol: f.proto, Id: 0x1234}
		if f.df {
			ip.Flags = layers.IPv4DontFragment
		}
		if f.ipOpts {
			ip.Options = []layers.IPv4Option{{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}}, {OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
		}
		ls = append(ls, ip)
		nl = ip
	}
	pl := make([]byte, f.payload)
	for i := range pl {
		pl[i] = byte(i*7 + 3)
	}
	switch f.proto {
	case layers.IPProtocolTCP:
		tcp := &layers.TCP{SrcPort: layers.TCPPort(f.sport), DstPort: layers.TCPPort(f.dport), Seq: 1000, Ack: 2000, Window: 65535}
		for _, c := range f.flags {
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
		udp := &layers.UDP{SrcPort: layers.UDPPort(f.sport), DstPort: layers.UDPPort(f.dport)}
		if err := udp.SetNetworkLayerForChecksum(nl); err != nil {
			t.Fatal(err)
		}
		ls = append(ls, udp)
	}
	return append(ls, gopacket.Payload(pl))
}

func (f flow) frame(t testing.TB) []byte { return serialize(t, f.layers(t)...) }

// ipv6DstOpts is a minimal 8-byte destination-options header (gopacket's
// own serializer for it needs options set up just so).
type ipv6DstOpts struct{ next layers.IPProtocol }

func (d *ipv6DstOpts) LayerType() gopacket.LayerType { return layers.LayerTypeIPv6Destination }

func (d *ipv6DstOpts) SerializeTo(b gopacket.SerializeBuffer, _ gopacket.SerializeOptions) error {
	h, err := b.PrependBytes(8)
	if err != nil {
		return err
	}
	copy(h, []byte{byte(d.next), 0, 1, 4, 0, 0, 0, 0}) // PadN of 4 bytes
	return nil
}

// offsetOf returns the offset of sub within frame (sub must alias frame).
func offsetOf(frame, sub []byte) int { return cap(frame) - cap(sub) }

// decode decodes frame with gopacket without copying, so that layer
// contents alias frame.
func decode(frame []byte) gopacket.Packet {
	return gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.DecodeOptions{NoCopy: true})
}
