package modes_test

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/header"
)

// reserialize decodes frame with gopacket and serializes the decoded layers
// again with gopacket computing every checksum. Equal bytes mean every
// checksum in frame is the one gopacket computes.
func reserialize(t *testing.T, frame []byte) []byte {
	t.Helper()
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	if el := pkt.ErrorLayer(); el != nil {
		t.Fatalf("gopacket decode: %v", el.Error())
	}
	var ls []gopacket.SerializableLayer
	var nl gopacket.NetworkLayer
	for _, l := range pkt.Layers() {
		switch l := l.(type) {
		case *layers.IPv4:
			nl = l
		case *layers.IPv6:
			nl = l
		case *layers.TCP:
			_ = l.SetNetworkLayerForChecksum(nl)
		case *layers.UDP:
			_ = l.SetNetworkLayerForChecksum(nl)
		case *layers.ICMPv6:
			_ = l.SetNetworkLayerForChecksum(nl)
		}
		sl, ok := l.(gopacket.SerializableLayer)
		if !ok {
			// Layers gopacket cannot re-serialize (e.g. the quoted packet of
			// an ICMP error): keep their bytes verbatim.
			sl = gopacket.Payload(append(l.LayerContents(), l.LayerPayload()...))
			ls = append(ls, sl)
			break
		}
		ls = append(ls, sl)
		if _, isICMP := l.(*layers.ICMPv4); isICMP {
			ls = append(ls, gopacket.Payload(l.LayerPayload()))
			break
		}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, ls...); err != nil {
		t.Fatalf("gopacket serialize: %v", err)
	}
	return buf.Bytes()
}

// checkChecksums fails unless every checksum in frame is correct.
func checkChecksums(t *testing.T, frame []byte) {
	t.Helper()
	if got := reserialize(t, frame); !bytes.Equal(got, frame) {
		t.Fatalf("checksums differ from gopacket's recomputation:\n got  %x\n want %x", frame, got)
	}
}

// makePartial replaces the L4 checksum of a parsed frame with the
// pseudo-header sum, as a sender using checksum offload leaves it
// (CHECKSUM_PARTIAL: the field holds ~csum_tcpudp_magic(...) of the
// pseudo-header only).
func makePartial(t *testing.T, frame []byte, p *header.Parsed) {
	t.Helper()
	l := uint32(p.End - p.L4Off)
	var s uint32
	add := func(b []byte) {
		for i := 0; i < len(b); i += 2 {
			s += uint32(binary.BigEndian.Uint16(b[i:]))
		}
	}
	if p.IPVersion == 4 {
		add(frame[p.L3Off+12 : p.L3Off+20])
	} else {
		add(frame[p.L3Off+8 : p.L3Off+40])
	}
	s += uint32(p.Proto) + l
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	off := p.L4Off + 16
	if p.Proto == header.ProtoUDP {
		off = p.L4Off + 6
	}
	binary.BigEndian.PutUint16(frame[off:], uint16(s))
}

// completePartial does what an egress device does with a CHECKSUM_PARTIAL
// frame: it sums the L4 segment from csum_start to the end, the field
// (holding the pseudo-header sum) included, and stores the complement.
func completePartial(frame []byte, p *header.Parsed) {
	off := p.L4Off + header.L4ChecksumOffset(p.Proto)
	c := ^header.Checksum(frame[p.L4Off:p.End], 0)
	if p.Proto == header.ProtoUDP {
		c = header.UDPChecksumValue(c)
	}
	binary.BigEndian.PutUint16(frame[off:], c)
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
