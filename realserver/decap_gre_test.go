package realserver

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// greLayers returns the GRE layer (gopacket's, checksum computed by it
// when present) for the inner packet.
func greLayer(csum, key, seq bool, inner6 bool) *layers.GRE {
	g := &layers.GRE{Protocol: layers.EthernetTypeIPv4, ChecksumPresent: csum, KeyPresent: key, SeqPresent: seq, Key: 7, Seq: 9}
	if inner6 {
		g.Protocol = layers.EthernetTypeIPv6
	}
	return g
}

// gre4 returns a raw IPv4 socket's view of a GRE packet and the inner one.
func gre4(t testing.TB, csum, key, seq bool, inner ...gopacket.SerializableLayer) (pkt, want []byte) {
	t.Helper()
	_, v6 := inner[0].(*layers.IPv6)
	want = serialize(t, inner...)
	pkt = serialize(t, append([]gopacket.SerializableLayer{outer4(layers.IPProtocolGRE, 0), greLayer(csum, key, seq, v6)}, inner...)...)
	return pkt, want
}

// outer6Payload returns what a raw IPv6 socket for next returns: the
// payload after the outer IPv6 header gopacket built (director →
// real server), and the inner packet.
func outer6Payload(t testing.TB, next layers.IPProtocol, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	o := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: next, SrcIP: net.ParseIP("fd00:2::1"), DstIP: net.ParseIP("fd00:2::11")}
	frame := serialize(t, append([]gopacket.SerializableLayer{o}, ls...)...)
	if int(binary.BigEndian.Uint16(frame[4:]))+40 != len(frame) {
		t.Fatalf("outer IPv6 length")
	}
	return frame[40:]
}

// TestDecapGRE: GRE over IPv4 with and without checksum (and with key and
// sequence fields, which the kernel's parser skips), carrying IPv4 or
// IPv6, gives the inner packet byte for byte.
func TestDecapGRE(t *testing.T) {
	for _, c := range []struct {
		name           string
		csum, key, seq bool
		v6             bool
	}{{"plain", false, false, false, false}, {"csum", true, false, false, false}, {"csum-v6", true, false, false, true},
		{"key-seq", false, true, true, false}, {"all", true, true, true, true}} {
		inner := innerUDP4("gre", 0)
		if c.v6 {
			inner = innerTCP6(0)
		}
		pkt, want := gre4(t, c.csum, c.key, c.seq, inner...)
		got, r := DecapIPIP(pkt)
		if r != ReasonOK || !bytes.Equal(got, want) {
			t.Errorf("%s: %v, inner %x want %x", c.name, r, got, want)
		}
	}
}

// TestDecapGRERejects: a wrong GRE checksum, a version other than 0, the
// routing bit, an unknown protocol and a truncated header are refused with
// their reason.
func TestDecapGRERejects(t *testing.T) {
	pkt, _ := gre4(t, true, false, false, innerUDP4("gre", 0)...)
	plain, _ := gre4(t, false, false, false, innerUDP4("gre", 0)...)
	for _, c := range []struct {
		name string
		pkt  []byte
		want Reason
	}{
		{"checksum", mutate(pkt, func(b []byte) []byte { b[len(b)-1]++; return b }), ReasonGREChecksum},
		{"version-1", mutate(plain, func(b []byte) []byte { b[21] |= 1; return b }), ReasonGREVersion},
		{"routing", mutate(plain, func(b []byte) []byte { b[20] |= 0x40; return b }), ReasonGREVersion},
		{"proto-arp", mutate(plain, func(b []byte) []byte { b[22], b[23] = 0x08, 0x06; return b }), ReasonGREProto},
		{"short", mutate(plain[:23], func(b []byte) []byte { binary.BigEndian.PutUint16(b[2:], 23); return b }), ReasonGREShort},
		{"csum-field-missing", mutate(plain[:26], func(b []byte) []byte { b[20] = 0x80; binary.BigEndian.PutUint16(b[2:], 26); return b }), ReasonGREShort},
	} {
		// The outer IPv4 header checksum is not checked (the kernel did).
		if got, r := DecapIPIP(c.pkt); r != c.want || got != nil {
			t.Errorf("%s: %v, want %v", c.name, r, c.want)
		}
	}
}

// TestDecapIPv6Outer: the payloads raw IPv6 sockets return for IP6IP6,
// IPv4-in-IPv6 and GRE over IPv6 give the inner packets; through the
// Decapsulator they are accepted for the VIPs.
func TestDecapIPv6Outer(t *testing.T) {
	in4, in6 := serialize(t, innerUDP4("v4in6", 0)...), serialize(t, innerTCP6(0)...)
	d := NewDecapsulator([]netip.Addr{netip.MustParseAddr("198.18.0.10"), netip.MustParseAddr("fd00::10")})
	for _, c := range []struct {
		name string
		kind Encap
		pkt  []byte
		want []byte
	}{
		{"ip6ip6", EncapIPv6IPv6, outer6Payload(t, layers.IPProtocolIPv6, innerTCP6(0)...), in6},
		{"ip4in6", EncapIPv6IPIP, outer6Payload(t, layers.IPProtocolIPv4, innerUDP4("v4in6", 0)...), in4},
		{"gre6-csum", EncapIPv6GRE, outer6Payload(t, layers.IPProtocolGRE, append([]gopacket.SerializableLayer{greLayer(true, false, false, false)}, innerUDP4("v4in6", 0)...)...), in4},
		{"gre6", EncapIPv6GRE, outer6Payload(t, layers.IPProtocolGRE, append([]gopacket.SerializableLayer{greLayer(false, false, false, true)}, innerTCP6(0)...)...), in6},
	} {
		got, r := d.Handle(c.kind, c.pkt)
		if r != ReasonOK || !bytes.Equal(got, c.want) {
			t.Errorf("%s: %v, inner %x want %x", c.name, r, got, c.want)
		}
	}
	if _, r := DecapIPv6Payload(17, in4); r != ReasonOuter6Proto {
		t.Errorf("next header 17: %v", r)
	}
	if _, r := d.Handle(EncapIPv6IPIP, in6); r != ReasonInnerVersion {
		t.Errorf("IPv6 in a protocol-4 payload: %v", r)
	}
}

// TestDecapGRENoAllocs: GRE and IPv6-outer decapsulation allocate nothing.
func TestDecapGRENoAllocs(t *testing.T) {
	pkt, _ := gre4(t, true, false, false, innerUDP4("alloc", 0)...)
	p6 := outer6Payload(t, layers.IPProtocolIPv6, innerTCP6(0)...)
	d := NewDecapsulator([]netip.Addr{netip.MustParseAddr("198.18.0.10"), netip.MustParseAddr("fd00::10")})
	if n := testing.AllocsPerRun(1000, func() {
		if _, r := d.Handle(EncapIPIP, pkt); r != ReasonOK {
			t.Fatal(r)
		}
		if _, r := d.Handle(EncapIPv6IPv6, p6); r != ReasonOK {
			t.Fatal(r)
		}
	}); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}
