package realserver

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/gopacket/gopacket/layers"
)

// frames is a fake source: it returns one frame per Read, then io.EOF.
type frames struct{ q [][]byte }

func (f *frames) Read(b []byte) (int, error) {
	if len(f.q) == 0 {
		return 0, io.EOF
	}
	n := copy(b, f.q[0])
	f.q = f.q[1:]
	return n, nil
}

// sink is a fake TUN device recording each write; it fails writes while
// fail is set.
type sink struct {
	got  [][]byte
	fail error
}

func (s *sink) Write(b []byte) (int, error) {
	if s.fail != nil {
		return 0, s.fail
	}
	s.got = append(s.got, append([]byte(nil), b...))
	return len(b), nil
}

func TestServeDecapsulatesAndCounts(t *testing.T) {
	v4, in4 := ipip(t, 0, innerUDP4("one", 0)...)
	v6, in6 := ipip(t, 0, innerTCP6(0)...)
	otherLayers := innerUDP4("other", 0)
	otherLayers[0].(*layers.IPv4).DstIP = net.IPv4(198, 18, 0, 11)
	other, _ := ipip(t, 0, otherLayers...)
	src := &frames{q: [][]byte{v4, v6, {0x45}, other, v4}}
	dst := &sink{}
	d := NewDecapsulator([]netip.Addr{netip.MustParseAddr("198.18.0.10"), netip.MustParseAddr("::ffff:198.18.0.10"), netip.MustParseAddr("fd00::10")})
	if got := d.VIPs(); len(got) != 2 {
		t.Fatalf("VIPs %v: want mapped duplicate folded, 2 left", got)
	}
	if err := d.Serve(EncapIPIP, src, dst, make([]byte, MaxPacket)); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if len(dst.got) != 3 || string(dst.got[0]) != string(in4) || string(dst.got[1]) != string(in6) || string(dst.got[2]) != string(in4) {
		t.Fatalf("wrote %d packets, want inner v4, v6, v4", len(dst.got))
	}
	c := d.Counters()
	if c.Decapsulated.Load() != 3 || c.Rejected[ReasonOuterShort].Load() != 1 || c.Rejected[ReasonNotVIP].Load() != 1 {
		t.Fatalf("counters %v", c.Snapshot())
	}
	snap := c.Snapshot()
	if snap["decapsulated"] != 3 || snap["not-vip"] != 1 || snap["outer-short"] != 1 || snap["tun-writes"] != 3 || len(snap) != 4 {
		t.Fatalf("snapshot %v", snap)
	}

	// Removing the VIP makes the same packet a not-vip reject.
	d.SetVIPs([]netip.Addr{netip.MustParseAddr("fd00::10")})
	if _, r := d.Handle(EncapIPIP, v4); r != ReasonNotVIP {
		t.Fatalf("after SetVIPs: %v, want not-vip", r)
	}
}

func TestServeWriteErrors(t *testing.T) {
	v4, _ := ipip(t, 0, innerUDP4("one", 0)...)
	d := NewDecapsulator([]netip.Addr{netip.MustParseAddr("198.18.0.10")})
	// A transient write error is counted and the loop goes on.
	dst := &sink{fail: errors.New("EIO")}
	if err := d.Serve(EncapIPIP, &frames{q: [][]byte{v4, v4}}, dst, make([]byte, MaxPacket)); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if d.Counters().Rejected[ReasonWrite].Load() != 2 || d.Counters().Decapsulated.Load() != 0 {
		t.Fatalf("counters %v", d.Counters().Snapshot())
	}
	// A closed device ends the loop without error.
	dst.fail = os.ErrClosed
	if err := d.Serve(EncapIPIP, &frames{q: [][]byte{v4, v4}}, dst, make([]byte, MaxPacket)); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if d.Counters().Rejected[ReasonWrite].Load() != 3 {
		t.Fatalf("loop went on after close: %v", d.Counters().Snapshot())
	}
	// Other read errors are returned.
	boom := errors.New("boom")
	if err := d.Serve(EncapIPIP, errReader{boom}, dst, make([]byte, MaxPacket)); !errors.Is(err, boom) {
		t.Fatalf("Serve = %v, want boom", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
