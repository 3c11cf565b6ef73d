package conntrack

import (
	"testing"

	"github.com/uvs-lb/uvs/spec"
)

// TestConnVLAN: a connection keeps the VLAN id of its client side for
// both directions, hides the internal flag that says so, and an entry
// reused by an untagged connection has none.
func TestConnVLAN(t *testing.T) {
	tb := newTable(t, 1) // one entry: the second connection reuses it
	d := newDest("10.0.2.11", 8080, spec.FwdMasq)
	in := tcpKey("10.0.1.2:40000", "10.0.1.100:80")
	var c Conn
	if err := tb.Create(&NewConn{In: in, Fwd: spec.FwdMasq, Dest: d, VLAN: 0xa064}, 0x02, 0, &c); err != nil {
		t.Fatal(err)
	}
	if c.VLAN != 100 || c.Flags&flagVLAN != 0 {
		t.Fatalf("created: VLAN %d flags %#x, want 100 and the internal flag hidden", c.VLAN, c.Flags)
	}
	var r Conn
	if !tb.Track(outKeyOf(&c), 0x12, sec, &r) || r.Dir != DirOut || r.VLAN != 100 {
		t.Fatalf("reply lookup: dir %v VLAN %d, want out and 100", r.Dir, r.VLAN)
	}
	tb.Range(sec, func(l *Listing) bool {
		if l.Flags&flagVLAN != 0 {
			t.Errorf("listing shows the internal VLAN flag: %#x", l.Flags)
		}
		return true
	})
	if !tb.ExpireNow(c.Handle, 2*sec) || tb.Len() != 0 {
		t.Fatalf("connection not expired: %d live", tb.Len())
	}
	in2 := tcpKey("10.0.1.3:40000", "10.0.1.100:80")
	if err := tb.Create(&NewConn{In: in2, Fwd: spec.FwdMasq, Dest: d}, 0x02, 4*sec, &c); err != nil {
		t.Fatal(err)
	}
	if c.VLAN != 0 {
		t.Fatalf("untagged connection in a reused entry has VLAN %d", c.VLAN)
	}
}
