package header

import (
	"encoding/binary"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/internal/pkttest"
)

// refPseudo sums the pseudo-header the way Linux does before it hands a
// CHECKSUM_PARTIAL packet on: 16-bit words of the addresses, the protocol
// and the L4 length, end-around carry, folded, not complemented.
func refPseudo(frame []byte, p *Parsed) uint16 {
	var s uint32
	for _, a := range [][]byte{p.SrcIP(), p.DstIP()} {
		for i := 0; i < len(a); i += 2 {
			s += uint32(a[i])<<8 | uint32(a[i+1])
		}
	}
	l := uint32(p.End - p.L4Off)
	s += uint32(p.Proto) + l>>16 + l&0xffff
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// makePartial turns a parsed frame's complete checksum into what the
// sender's stack leaves for offload.
func makePartial(frame []byte, p *Parsed) {
	binary.BigEndian.PutUint16(frame[p.L4Off+L4ChecksumOffset(p.Proto):], refPseudo(frame, p))
}

func TestLooksPartial(t *testing.T) {
	for _, f := range []pkttest.Flow{
		{Proto: layers.IPProtocolTCP, Src: "10.0.1.2", Dst: "10.0.1.100", Sport: 40000, Dport: 80, TTL: 64, Flags: "PA", Payload: 333},
		{Proto: layers.IPProtocolUDP, Src: "10.0.1.2", Dst: "10.0.1.100", Sport: 40000, Dport: 53, TTL: 64, Payload: 17},
		{V6: true, Proto: layers.IPProtocolTCP, Src: "fd00:1::2", Dst: "fd00:1::100", Sport: 40000, Dport: 80, TTL: 64, Flags: "S"},
		{V6: true, Proto: layers.IPProtocolUDP, Src: "fd00:1::2", Dst: "fd00:1::100", Sport: 40000, Dport: 53, TTL: 64, Payload: 1000},
	} {
		frame := f.Frame(t)
		var p Parsed
		p.Parse(frame)
		if p.Reason != ReasonNone {
			t.Fatalf("%+v: parse %v", f, p.Reason)
		}
		if LooksPartial(frame, &p) {
			t.Errorf("%+v: a complete checksum looks partial", f)
		}
		makePartial(frame, &p)
		if !LooksPartial(frame, &p) {
			t.Errorf("%+v: a partial checksum is not detected", f)
		}
		if n := testing.AllocsPerRun(100, func() { LooksPartial(frame, &p) }); n != 0 {
			t.Errorf("%v allocs", n)
		}
		// Completing it makes it an ordinary frame again.
		SetL4Checksum(frame, &p)
		if LooksPartial(frame, &p) || !L4ChecksumValid(frame, &p) {
			t.Errorf("%+v: completed checksum still looks partial", f)
		}
	}
}

// TestLooksPartialCoincidence: a complete checksum that happens to equal
// the pseudo-header sum verifies, so it is not partial.
func TestLooksPartialCoincidence(t *testing.T) {
	frame := pkttest.Flow{Proto: layers.IPProtocolUDP, Src: "10.0.1.2", Dst: "10.0.1.100", Sport: 1, Dport: 2, TTL: 64, Payload: 8}.Frame(t)
	var p Parsed
	p.Parse(frame)
	makePartial(frame, &p)
	// Adjust the last payload word so the whole checksum verifies with
	// the field left at the pseudo-header sum.
	s := Checksum(frame[p.L4Off:p.End], refPseudo(frame, &p))
	w := frame[p.End-2:]
	binary.BigEndian.PutUint16(w, CombineChecksums(binary.BigEndian.Uint16(w), ^s))
	if !L4ChecksumValid(frame, &p) {
		t.Fatal("could not build the coincidence")
	}
	if LooksPartial(frame, &p) {
		t.Fatal("a verifying checksum equal to the pseudo-header sum looks partial")
	}
}

func TestLooksPartialOther(t *testing.T) {
	udp := pkttest.Flow{Proto: layers.IPProtocolUDP, Src: "10.0.1.2", Dst: "10.0.1.100", Sport: 1, Dport: 2, TTL: 64, Payload: 8}.Frame(t)
	var p Parsed
	p.Parse(udp)
	binary.BigEndian.PutUint16(udp[p.L4Off+UDPChecksumOff:], 0) // no checksum
	if LooksPartial(udp, &p) {
		t.Error("UDP without checksum looks partial")
	}
	p.Proto = ProtoICMPv4
	if LooksPartial(udp, &p) {
		t.Error("ICMP looks partial")
	}
}
