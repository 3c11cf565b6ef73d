package conntrack

import (
	"net/netip"
	"testing"

	"github.com/uvs-lb/uvs/spec"
)

func TestNoAllocs(t *testing.T) {
	tb := newTable(t, 1024)
	d := newDest("10.1.0.1", 80, spec.FwdMasq)
	src := netip.MustParseAddr("10.0.0.1").AsSlice()
	dst := netip.MustParseAddr("192.0.2.1").AsSlice()
	in, _ := KeyFromBytes(ProtoTCP, src, dst, 1000, 80)
	var c Conn
	if err := tb.Create(&NewConn{In: in, Dest: d}, TCPSyn, 0, &c); err != nil { // registers d
		t.Fatal(err)
	}
	out := outKeyOf(&c)
	if n := testing.AllocsPerRun(100, func() {
		k, _ := KeyFromBytes(ProtoTCP, src, dst, 1000, 80)
		_ = k.hash(tb.seed)
	}); n != 0 {
		t.Errorf("KeyFromBytes+hash: %v allocs", n)
	}
	if n := testing.AllocsPerRun(100, func() {
		tb.Track(in, TCPAck, 1, &c)
		tb.Track(out, TCPAck, 1, &c)
		tb.Lookup(in, 1, &c)
	}); n != 0 {
		t.Errorf("Track/Lookup: %v allocs", n)
	}
	ks := []Key{in, out, in, in}
	fl := make([]uint8, len(ks))
	cs := make([]Conn, len(ks))
	found := make([]bool, len(ks))
	if n := testing.AllocsPerRun(100, func() {
		tb.TrackBatch(ks, fl, 1, cs, found)
	}); n != 0 {
		t.Errorf("TrackBatch: %v allocs", n)
	}
	k2 := in
	k2.SrcPort = 2000
	if n := testing.AllocsPerRun(100, func() {
		if err := tb.Create(&NewConn{In: k2, Dest: d}, TCPSyn, 1, &c); err != nil {
			t.Fatal(err)
		}
		tb.ExpireNow(c.Handle, 1)
	}); n != 0 {
		t.Errorf("Create+ExpireNow: %v allocs", n)
	}
	tk := NewTemplateKey(ProtoTCP, netip.MustParseAddr("10.0.0.0"), netip.MustParseAddr("192.0.2.1"), 80)
	if n := testing.AllocsPerRun(100, func() {
		h, err := tb.InsertTemplate(tk, d, 1e9, 1)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, ok := tb.LookupTemplate(tk, 1); !ok {
			t.Fatal("template")
		}
		tb.ExpireNow(h, 1)
	}); n != 0 {
		t.Errorf("templates: %v allocs", n)
	}
	if n := testing.AllocsPerRun(10, func() { tb.Reap(1, 64) }); n != 0 {
		t.Errorf("Reap: %v allocs", n)
	}
}
