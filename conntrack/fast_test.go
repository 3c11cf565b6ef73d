package conntrack

import (
	"sync"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/spec"
)

// udpConn creates a UDP NAT connection at now 0 and returns it.
func udpConn(t *testing.T, tb *Table) (Key, Conn) {
	t.Helper()
	d := newDest("10.1.0.1", 53, spec.FwdMasq)
	in := KeyFrom(ProtoUDP, ap("10.0.0.1:5353"), ap("192.0.2.1:53"))
	var c Conn
	if err := tb.Create(&NewConn{In: in, Fwd: spec.FwdMasq, Dest: d}, 0, 0, &c); err != nil {
		t.Fatal(err)
	}
	return in, c
}

// TestSetFast: the fast-path directions are set and cleared by handle,
// shown in Conn.Fast, never in Conn.Flags, and a stale handle sets none.
func TestSetFast(t *testing.T) {
	tb := newTable(t, 8)
	in, c := udpConn(t, tb)
	if !tb.SetFast(c.Handle, DirIn, true) || !tb.SetFast(c.Handle, DirOut, true) {
		t.Fatal("SetFast on a live connection failed")
	}
	tb.Lookup(outKeyOf(&c), 0, &c)
	if c.Fast != FastIn|FastOut || !c.Fast.Has(DirIn) || !c.Fast.Has(DirOut) {
		t.Fatalf("Fast %v, want both directions", c.Fast)
	}
	if c.Flags&Flags(FastIn|FastOut) != 0 {
		t.Fatalf("Flags %#x show the fast-path bits", c.Flags)
	}
	tb.SetFast(c.Handle, DirIn, false)
	tb.Lookup(in, 0, &c)
	if c.Fast != FastOut {
		t.Fatalf("Fast %v after clearing the inbound direction, want FastOut", c.Fast)
	}
	h := c.Handle
	if !tb.ExpireNow(h, 0) {
		t.Fatal("ExpireNow")
	}
	if tb.SetFast(h, DirIn, true) {
		t.Fatal("SetFast on an expired connection's handle succeeded")
	}
}

// TestRefreshFast: traffic the fast path reports re-arms the timer from
// its last packet, never earlier than it was.
func TestRefreshFast(t *testing.T) {
	tb := newTable(t, 8)
	tb.SetTimeouts(0, 0, 20*time.Second)
	in, c := udpConn(t, tb)
	var got Conn
	if !tb.RefreshFast(in, 5*sec, &got) || got.Expires != 25*sec || got.Dir != DirIn {
		t.Fatalf("refresh at 5 s: found %v, expires %v, dir %v; want 25 s, in", got.Handle == c.Handle, time.Duration(got.Expires), got.Dir)
	}
	if !tb.RefreshFast(outKeyOf(&c), 2*sec, &got) || got.Expires != 25*sec || got.Dir != DirOut {
		t.Fatalf("an older packet moved the timer to %v (dir %v)", time.Duration(got.Expires), got.Dir)
	}
	if !tb.RefreshFast(in, 0, &got) || got.Expires != 25*sec {
		t.Fatalf("no packet moved the timer to %v", time.Duration(got.Expires))
	}
	if tb.RefreshFast(KeyFrom(ProtoUDP, ap("10.0.0.9:1"), ap("192.0.2.1:53")), 5*sec, &got) {
		t.Fatal("RefreshFast found a connection that does not exist")
	}
}

// TestFastGraceAndGone: a connection with a fast-path direction outlives
// its timer by FastGrace (the counters are read back about once a second),
// and when it goes the hook gets both its keys; one without goes on time
// and calls no hook.
func TestFastGraceAndGone(t *testing.T) {
	tb := newTable(t, 8)
	tb.SetTimeouts(0, 0, 20*time.Second)
	var mu sync.Mutex
	var gone [][2]Key
	tb.SetFastGone(func(in, out Key) {
		mu.Lock()
		gone = append(gone, [2]Key{in, out})
		mu.Unlock()
	})
	in, c := udpConn(t, tb)
	tb.SetFast(c.Handle, DirIn, true)
	if n := tb.Reap(20*sec, 8); n != 0 {
		t.Fatalf("reaped %d at the timer, want none within FastGrace", n)
	}
	var got Conn
	if !tb.Track(in, 0, 20*sec+int64(FastGrace)/2, &got) {
		t.Fatal("a packet within FastGrace found no connection")
	}
	// The packet re-armed it: 20 s from then, then FastGrace.
	at := got.Expires + int64(FastGrace)
	if n := tb.Reap(at-1, 8); n != 0 {
		t.Fatal("reaped before its timer and FastGrace")
	}
	if n := tb.Reap(at, 8); n != 1 {
		t.Fatalf("reaped %d at its timer plus FastGrace, want 1", n)
	}
	mu.Lock()
	if len(gone) != 1 || gone[0] != [2]Key{in, outKeyOf(&c)} {
		t.Fatalf("hook called with %v, want once with the inbound and reply keys", gone)
	}
	mu.Unlock()

	// Without a fast-path direction: on time, no hook.
	_, c2 := udpConn(t, tb)
	if n := tb.Reap(c2.Expires, 8); n != 1 {
		t.Fatalf("reaped %d of a plain connection at its timer, want 1", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(gone) != 1 {
		t.Fatalf("hook called for a connection without a fast-path direction: %v", gone)
	}
}
