package header_test

import (
	"net/netip"
	"testing"

	"github.com/uvs-lb/uvs/header"
)

func TestAddrConvention(t *testing.T) {
	for _, s := range []string{"10.0.1.2", "0.0.0.0", "255.255.255.255", "2001:db8::1", "::", "::ffff:10.0.0.1", "::1.2.3.4"} {
		a := netip.MustParseAddr(s)
		var got [16]byte
		if !header.PutAddr(&got, a.AsSlice()) || got != a.As16() {
			t.Errorf("PutAddr(%v) = %x, want As16 %x", a, got, a.As16())
		}
		if back := header.AddrFrom16(got); back != a.Unmap() {
			t.Errorf("AddrFrom16(%x) = %v, want %v", got, back, a.Unmap())
		}
	}
	var a [16]byte
	if header.PutAddr(&a, make([]byte, 5)) || a != ([16]byte{}) {
		t.Error("PutAddr accepted a 5-byte address")
	}
}

func TestParsedWireAddr(t *testing.T) {
	var p header.Parsed
	p.Parse(parseCases[0].f.Frame(t))
	if s, d := p.SrcIP(), p.DstIP(); string(s) != string(p.SrcAddr().AsSlice()) || string(d) != string(p.DstAddr().AsSlice()) {
		t.Errorf("v4 wire addresses %x %x", s, d)
	}
	p.Parse(parseCases[5].f.Frame(t))
	if s, d := p.SrcIP(), p.DstIP(); string(s) != string(p.SrcAddr().AsSlice()) || string(d) != string(p.DstAddr().AsSlice()) {
		t.Errorf("v6 wire addresses %x %x", s, d)
	}
	var k [16]byte
	if n := testing.AllocsPerRun(100, func() {
		_, _ = p.SrcIP(), p.DstIP()
		header.PutAddr(&k, p.SrcIP())
		_ = header.AddrFrom16(k)
	}); n != 0 {
		t.Errorf("address helpers allocate %v times", n)
	}
}
