package realserver

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

func TestDecapIPIPMatchesOracle(t *testing.T) {
	cases := []struct {
		name  string
		inner []gopacket.SerializableLayer
	}{
		{"ipv4-udp", innerUDP4("hello", 0)},
		{"ipv4-udp-empty", innerUDP4("", 0)},
		{"ipv4-udp-big", innerUDP4(string(bytes.Repeat([]byte{'x'}, 1400)), 0)},
		{"ipv6-tcp-syn", innerTCP6(0)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pkt, want := ipip(t, 0, c.inner...)
			got, r := DecapIPIP(pkt)
			if r != ReasonOK {
				t.Fatalf("reason %v", r)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("inner\n got %x\nwant %x", got, want)
			}
			// The inner packet decodes as the layers we built.
			first := layers.LayerTypeIPv4
			if got[0]>>4 == 6 {
				first = layers.LayerTypeIPv6
			}
			p := gopacket.NewPacket(got, first, gopacket.Default)
			if el := p.ErrorLayer(); el != nil {
				t.Fatalf("inner does not decode: %v", el.Error())
			}
		})
	}
}

func TestDecapIPIPTrimsPadding(t *testing.T) {
	pkt, want := ipip(t, 0, innerUDP4("pad", 0)...)
	padded := append(pkt, 0, 0, 0, 0) // bytes beyond the outer total length
	got, r := DecapIPIP(padded)
	if r != ReasonOK || !bytes.Equal(got, want) {
		t.Fatalf("got %x %v, want %x", got, r, want)
	}
}

func TestDecapIPIPOptions(t *testing.T) {
	inner := serialize(t, innerUDP4("opt", 0)...)
	o := outer4(layers.IPProtocolIPv4, 0)
	o.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
	pkt := serialize(t, o, gopacket.Payload(inner))
	if ihl := pkt[0] & 0x0f; ihl != 6 {
		t.Fatalf("oracle built IHL %d, want 6", ihl)
	}
	got, r := DecapIPIP(pkt)
	if r != ReasonOK || !bytes.Equal(got, inner) {
		t.Fatalf("got %x %v, want %x", got, r, inner)
	}
}

func TestDecapGUEMatchesOracle(t *testing.T) {
	cases := []struct {
		name  string
		ext   []byte
		flags uint16
		inner []gopacket.SerializableLayer
	}{
		{"v4", nil, 0, innerUDP4("gue", 0)},
		{"v6", nil, 0, innerTCP6(0)},
		{"private-flags-zero", []byte{0, 0, 0, 0}, gueFlagPriv, innerUDP4("priv", 0)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			payload, want := gue(t, c.ext, c.flags, c.inner...)
			got, r := DecapGUE(payload)
			if r != ReasonOK || !bytes.Equal(got, want) {
				t.Fatalf("got %x %v, want %x", got, r, want)
			}
		})
	}
	// GUE version 1: the UDP payload is the IP packet itself.
	for _, inner := range [][]gopacket.SerializableLayer{innerUDP4("v1", 0), innerTCP6(0)} {
		want := serialize(t, inner...)
		got, r := DecapGUE(want)
		if r != ReasonOK || !bytes.Equal(got, want) {
			t.Fatalf("gue v1: got %x %v, want %x", got, r, want)
		}
	}
}

// mutate returns a copy of b changed by f.
func mutate(b []byte, f func([]byte) []byte) []byte {
	return f(append([]byte(nil), b...))
}

func TestDecapRejects(t *testing.T) {
	v4, _ := ipip(t, 0, innerUDP4("hello", 0)...)
	v6, _ := ipip(t, 0, innerTCP6(0)...)
	g4, _ := gue(t, nil, 0, innerUDP4("hello", 0)...)
	setTotal := func(b []byte, off, n int) { binary.BigEndian.PutUint16(b[off+2:], uint16(n)) }
	ipipCases := []struct {
		name string
		pkt  []byte
		want Reason
	}{
		{"empty", nil, ReasonOuterShort},
		{"19-bytes", v4[:19], ReasonOuterShort},
		{"outer-v6", mutate(v4, func(b []byte) []byte { b[0] = 0x65; return b }), ReasonOuterVersion},
		{"outer-ihl-4", mutate(v4, func(b []byte) []byte { b[0] = 0x44; return b }), ReasonOuterHeaderLen},
		{"outer-ihl-beyond", mutate(v4[:24], func(b []byte) []byte { b[0] = 0x4f; return b }), ReasonOuterHeaderLen},
		{"outer-total-short", mutate(v4, func(b []byte) []byte { setTotal(b, 0, 19); return b }), ReasonOuterLength},
		{"outer-total-long", mutate(v4, func(b []byte) []byte { setTotal(b, 0, len(b)+1); return b }), ReasonOuterLength},
		{"outer-mf", mutate(v4, func(b []byte) []byte { b[6] |= 0x20; return b }), ReasonOuterFragment},
		{"outer-offset", mutate(v4, func(b []byte) []byte { b[7] = 1; return b }), ReasonOuterFragment},
		{"outer-proto-udp", mutate(v4, func(b []byte) []byte { b[9] = 17; return b }), ReasonOuterProto},
		{"proto4-inner-v6", mutate(v6, func(b []byte) []byte { b[9] = 4; return b }), ReasonInnerVersion},
		{"proto41-inner-v4", mutate(v4, func(b []byte) []byte { b[9] = 41; return b }), ReasonInnerShort},
		{"inner-short", mutate(v4, func(b []byte) []byte { b = b[:39]; setTotal(b, 0, 39); return b }), ReasonInnerShort},
		{"inner-ihl-4", mutate(v4, func(b []byte) []byte { b[20] = 0x44; return b }), ReasonInnerHeaderLen},
		{"inner-total-long", mutate(v4, func(b []byte) []byte { setTotal(b, 20, 2000); return b }), ReasonInnerLength},
		{"inner-total-below-ihl", mutate(v4, func(b []byte) []byte { setTotal(b, 20, 10); return b }), ReasonInnerLength},
		{"inner-checksum", mutate(v4, func(b []byte) []byte { b[20+8]--; return b }), ReasonInnerChecksum},
		{"inner6-payload-long", mutate(v6, func(b []byte) []byte { binary.BigEndian.PutUint16(b[24:], 999); return b }), ReasonInnerLength},
		{"inner6-short", mutate(v6, func(b []byte) []byte { b = b[:59]; setTotal(b, 0, 59); return b }), ReasonInnerShort},
	}
	for _, c := range ipipCases {
		if got, r := DecapIPIP(c.pkt); r != c.want || got != nil {
			t.Errorf("ipip %s: reason %v (inner %d bytes), want %v", c.name, r, len(got), c.want)
		}
	}
	gueCases := []struct {
		name string
		pkt  []byte
		want Reason
	}{
		{"empty", nil, ReasonGUEShort},
		{"3-bytes", g4[:3], ReasonGUEShort},
		{"version-2", mutate(g4, func(b []byte) []byte { b[0] = 0x80; return b }), ReasonGUEVersion},
		{"version-3", mutate(g4, func(b []byte) []byte { b[0] = 0xc0; return b }), ReasonGUEVersion},
		{"control", mutate(g4, func(b []byte) []byte { b[0] |= 0x20; return b }), ReasonGUEControl},
		{"hlen-beyond", mutate(g4[:8], func(b []byte) []byte { b[0] |= 0x02; return b }), ReasonGUEHeaderLen},
		{"flags-unknown", mutate(g4, func(b []byte) []byte { b[2] = 0x80; return b }), ReasonGUEFlags},
		{"priv-without-room", mutate(g4, func(b []byte) []byte { b[3] = 1; return b }), ReasonGUEFlags},
		{"priv-remcsum", mutate(g4, func(b []byte) []byte {
			b[0] |= 1
			b[3] = 1
			return append(b[:4], append([]byte{0x80, 0, 0, 0}, b[4:]...)...)
		}), ReasonGUEFlags},
		{"proto-udp", mutate(g4, func(b []byte) []byte { b[1] = 17; return b }), ReasonGUEProto},
		{"proto41-inner-v4", mutate(g4, func(b []byte) []byte { b[1] = 41; return b }), ReasonInnerShort},
		{"v1-not-ip", []byte{0x50, 0, 0, 0}, ReasonInnerVersion},
		{"inner-truncated", g4[:len(g4)-1], ReasonInnerLength},
	}
	for _, c := range gueCases {
		if got, r := DecapGUE(c.pkt); r != c.want || got != nil {
			t.Errorf("gue %s: reason %v (inner %d bytes), want %v", c.name, r, len(got), c.want)
		}
	}
}

func TestDecapECN(t *testing.T) {
	const (
		notECT = 0
		ect0   = 2
		ce     = 3
	)
	cases := []struct {
		outer, inner uint8
		want         Reason
		wantInner    uint8
	}{
		{notECT, ect0, ReasonOK, ect0},
		{ect0, notECT, ReasonOK, notECT},
		{ce, ect0, ReasonOK, ce},
		{ce, 1, ReasonOK, ce},
		{ce, ce, ReasonOK, ce},
		{ce, notECT, ReasonECN, 0},
	}
	for _, c := range cases {
		pkt, _ := ipip(t, c.outer, innerUDP4("ecn", 0x28|c.inner)...)
		got, r := DecapIPIP(pkt)
		if r != c.want {
			t.Errorf("outer %d inner %d: reason %v, want %v", c.outer, c.inner, r, c.want)
			continue
		}
		if r != ReasonOK {
			continue
		}
		want := serialize(t, innerUDP4("ecn", 0x28|c.wantInner)...)
		if !bytes.Equal(got, want) {
			t.Errorf("outer %d inner %d: inner\n got %x\nwant %x", c.outer, c.inner, got, want)
		}
		// IPv6 inner: the traffic class's ECN bits.
		pkt6, _ := ipip(t, c.outer, innerTCP6(0x28|c.inner)...)
		got6, r6 := DecapIPIP(pkt6)
		want6 := serialize(t, innerTCP6(0x28|c.wantInner)...)
		if r6 != c.want || !bytes.Equal(got6, want6) {
			t.Errorf("v6 outer %d inner %d: %v\n got %x\nwant %x", c.outer, c.inner, r6, got6, want6)
		}
	}
}

func TestReasonString(t *testing.T) {
	seen := map[string]bool{}
	for r := Reason(0); r < NumReasons; r++ {
		s := r.String()
		if s == "" || s == "unknown" || seen[s] {
			t.Errorf("reason %d has name %q (duplicate or missing)", r, s)
		}
		seen[s] = true
	}
	if NumReasons.String() != "unknown" {
		t.Errorf("NumReasons.String() = %q", NumReasons.String())
	}
}

func TestDecapNoAllocs(t *testing.T) {
	v4, _ := ipip(t, 3, innerUDP4("alloc", 2)...)
	g, _ := gue(t, nil, 0, innerTCP6(0)...)
	d := NewDecapsulator(nil)
	d.SetVIPs([]netip.Addr{netip.MustParseAddr("198.18.0.10"), netip.MustParseAddr("fd00::10")})
	allocs := testing.AllocsPerRun(1000, func() {
		if _, r := d.Handle(EncapIPIP, v4); r != ReasonOK {
			t.Fatalf("ipip: %v", r)
		}
		if _, r := d.Handle(EncapGUE, g); r != ReasonOK {
			t.Fatalf("gue: %v", r)
		}
		if _, r := DecapIPIP(v4[:10]); r != ReasonOuterShort {
			t.Fatalf("short: %v", r)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run, want 0", allocs)
	}
}

func BenchmarkDecapIPIP(b *testing.B) {
	pkt, _ := ipip(b, 0, innerUDP4(string(bytes.Repeat([]byte{'x'}, 64)), 0)...)
	d := NewDecapsulator([]netip.Addr{netip.MustParseAddr("198.18.0.10")})
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		if _, r := d.Handle(EncapIPIP, pkt); r != ReasonOK {
			b.Fatal(r)
		}
	}
}

func BenchmarkDecapGUE(b *testing.B) {
	pkt, _ := gue(b, nil, 0, innerUDP4(string(bytes.Repeat([]byte{'x'}, 64)), 0)...)
	d := NewDecapsulator([]netip.Addr{netip.MustParseAddr("198.18.0.10")})
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		if _, r := d.Handle(EncapGUE, pkt); r != ReasonOK {
			b.Fatal(r)
		}
	}
}
