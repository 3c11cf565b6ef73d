package explain

import (
	"net/netip"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// view is what the table shows of one TCP segment at one hop: the headers
// a load balancer may rewrite. Frames of a connection with equal views
// (retransmissions) share one row.
type view struct {
	hasMAC         bool // false for link types without Ethernet addresses
	srcMAC, dstMAC [6]byte
	vlan           int // 802.1Q VLAN id, -1 for none
	tun            tunnel
	src, dst       netip.AddrPort
	ttl            uint8 // TTL or hop limit of the (inner) IP header
	syn, ack, rst  bool
}

// tunnel is the outer header of an encapsulated segment; kind is "" when
// the segment is not tunnelled.
type tunnel struct {
	kind     string         // "IPIP", "SIT" (IPv6 in IP) or "GUE"
	src, dst netip.AddrPort // ports only for GUE
	ttl      uint8
}

// seg is one TCP segment as captured.
type seg struct {
	view
	seq, ackNum uint32
	payload     int
}

// decoder turns captured frames into segments. It reuses its layers for
// every frame: one outer and one inner IP header at most.
type decoder struct {
	link  layers.LinkType
	eth   layers.Ethernet
	sll   layers.LinuxSLL
	dot1q layers.Dot1Q
	ip4   [2]layers.IPv4
	ip6   [2]layers.IPv6
	udp   layers.UDP
	tcp   layers.TCP
}

// gue header layout (draft-ietf-intarea-gue, as modes.Encap writes it):
// version 0 is 4 bytes (2-bit version, C bit, 5-bit hlen in 32-bit words
// of optional fields; proto/ctype; 16 bits of flags) followed by hlen*4
// bytes of options and the inner packet; version 1 has no header at all,
// the UDP payload being an IPv4 or IPv6 packet.
const (
	gueHeaderLen  = 4
	gueVersionOff = 6    // version bits: first byte >> 6
	gueCBit       = 0x20 // control message
	gueHlenMask   = 0x1f
)

// decode returns the TCP segment carried by a frame, if any.
func (d *decoder) decode(data []byte) (s seg, ok bool) {
	s.vlan = -1
	var et layers.EthernetType
	var payload []byte
	switch d.link {
	case layers.LinkTypeEthernet:
		if d.eth.DecodeFromBytes(data, gopacket.NilDecodeFeedback) != nil {
			return s, false
		}
		s.hasMAC = true
		copy(s.srcMAC[:], d.eth.SrcMAC)
		copy(s.dstMAC[:], d.eth.DstMAC)
		et, payload = d.eth.EthernetType, d.eth.Payload
		// At most two tags (QinQ); the inner VLAN id is shown.
		for range 2 {
			if et != layers.EthernetTypeDot1Q && et != layers.EthernetTypeQinQ {
				break
			}
			if d.dot1q.DecodeFromBytes(payload, gopacket.NilDecodeFeedback) != nil {
				return s, false
			}
			s.vlan = int(d.dot1q.VLANIdentifier)
			et, payload = d.dot1q.Type, d.dot1q.Payload
		}
	case layers.LinkTypeLinuxSLL:
		if d.sll.DecodeFromBytes(data, gopacket.NilDecodeFeedback) != nil {
			return s, false
		}
		et, payload = d.sll.EthernetType, d.sll.Payload
	case layers.LinkTypeRaw, layers.LinkTypeIPv4, layers.LinkTypeIPv6:
		if len(data) == 0 {
			return s, false
		}
		et, payload = ipEtherType(data[0]>>4), data
	default:
		return s, false
	}
	return s, d.ip(et, payload, &s, 0)
}

// ipEtherType maps an IP version number to its EtherType (0 if neither).
func ipEtherType(version byte) layers.EthernetType {
	switch version {
	case 4:
		return layers.EthernetTypeIPv4
	case 6:
		return layers.EthernetTypeIPv6
	}
	return 0
}

// ip decodes an IP packet at the given nesting depth (0 outer, 1 inner)
// down to its TCP segment, stepping into IPIP, SIT and GUE once.
func (d *decoder) ip(et layers.EthernetType, b []byte, s *seg, depth int) bool {
	var proto layers.IPProtocol
	var src, dst netip.Addr
	var ttl uint8
	var next []byte
	switch et {
	case layers.EthernetTypeIPv4:
		ip := &d.ip4[depth]
		if ip.DecodeFromBytes(b, gopacket.NilDecodeFeedback) != nil || ip.FragOffset != 0 {
			return false
		}
		src, _ = netip.AddrFromSlice(ip.SrcIP)
		dst, _ = netip.AddrFromSlice(ip.DstIP)
		proto, ttl, next = ip.Protocol, ip.TTL, ip.Payload
	case layers.EthernetTypeIPv6:
		ip := &d.ip6[depth]
		if ip.DecodeFromBytes(b, gopacket.NilDecodeFeedback) != nil {
			return false
		}
		src, _ = netip.AddrFromSlice(ip.SrcIP)
		dst, _ = netip.AddrFromSlice(ip.DstIP)
		proto, ttl, next = ip.NextHeader, ip.HopLimit, ip.Payload
	default:
		return false
	}
	outer := tunnel{src: netip.AddrPortFrom(src, 0), dst: netip.AddrPortFrom(dst, 0), ttl: ttl}
	switch proto {
	case layers.IPProtocolTCP:
		if d.tcp.DecodeFromBytes(next, gopacket.NilDecodeFeedback) != nil {
			return false
		}
		t := &d.tcp
		s.src = netip.AddrPortFrom(src, uint16(t.SrcPort))
		s.dst = netip.AddrPortFrom(dst, uint16(t.DstPort))
		s.ttl = ttl
		s.syn, s.ack, s.rst = t.SYN, t.ACK, t.RST
		s.seq, s.ackNum, s.payload = t.Seq, t.Ack, len(t.Payload)
		return true
	case layers.IPProtocolIPv4, layers.IPProtocolIPv6:
		if depth > 0 {
			return false
		}
		outer.kind = "IPIP"
		inner := layers.EthernetTypeIPv4
		if proto == layers.IPProtocolIPv6 {
			outer.kind, inner = "SIT", layers.EthernetTypeIPv6
		}
		s.tun = outer
		return d.ip(inner, next, s, 1)
	case layers.IPProtocolUDP:
		if depth > 0 || d.udp.DecodeFromBytes(next, gopacket.NilDecodeFeedback) != nil {
			return false
		}
		inner, innerET, ok := gue(d.udp.Payload)
		if !ok {
			return false
		}
		outer.kind = "GUE"
		outer.src = netip.AddrPortFrom(src, uint16(d.udp.SrcPort))
		outer.dst = netip.AddrPortFrom(dst, uint16(d.udp.DstPort))
		s.tun = outer
		return d.ip(innerET, inner, s, 1)
	}
	return false
}

// gue returns the IP packet a GUE data message carries. Any UDP payload
// that parses as GUE is tried; the caller only accepts it if a TCP segment
// of the connection decodes from it.
func gue(b []byte) (inner []byte, et layers.EthernetType, ok bool) {
	if len(b) < 1 {
		return nil, 0, false
	}
	switch b[0] >> gueVersionOff {
	case 0:
		if len(b) < gueHeaderLen || b[0]&gueCBit != 0 {
			return nil, 0, false
		}
		hl := gueHeaderLen + 4*int(b[0]&gueHlenMask)
		if len(b) < hl {
			return nil, 0, false
		}
		switch layers.IPProtocol(b[1]) {
		case layers.IPProtocolIPv4:
			return b[hl:], layers.EthernetTypeIPv4, true
		case layers.IPProtocolIPv6:
			return b[hl:], layers.EthernetTypeIPv6, true
		}
	case 1:
		// The version bits overlap the IP version: 0b01xx is 4 or 6.
		if et := ipEtherType(b[0] >> 4); et != 0 {
			return b, et, true
		}
	}
	return nil, 0, false
}
