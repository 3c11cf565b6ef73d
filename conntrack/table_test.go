package conntrack

import (
	"errors"
	"net/netip"
	"sort"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/spec"
)

type step struct {
	dir    Dir
	flags  uint8
	state  string
	active bool
	to     time.Duration
}

func runTrace(t *testing.T, fwd spec.Fwd, first step, steps []step) {
	t.Helper()
	tb := newTable(t, 16)
	d := newDest("10.1.0.1", 8080, fwd)
	in := tcpKey("10.0.0.1:40000", "192.0.2.1:80")
	var c Conn
	if err := tb.Create(&NewConn{In: in, Fwd: fwd, Dest: d}, first.flags, 0, &c); err != nil {
		t.Fatal(err)
	}
	check := func(i int, s step, c *Conn) {
		t.Helper()
		if c.StateName() != s.state || c.Timeout != s.to {
			t.Fatalf("step %d: state %s timeout %v, want %s %v", i, c.StateName(), c.Timeout, s.state, s.to)
		}
		want := [3]int32{0, 1, 0}
		if s.active {
			want = [3]int32{1, 0, 0}
		}
		if got := counters(d); got != want {
			t.Fatalf("step %d (%s): dest counters %v, want %v", i, s.state, got, want)
		}
		if (c.Flags&FlagInactive == 0) != s.active {
			t.Fatalf("step %d: INACTIVE flag wrong: %#x", i, c.Flags)
		}
	}
	check(0, first, &c)
	out := outKeyOf(&c)
	for i, s := range steps {
		k := in
		if s.dir == DirOut {
			k = out
		}
		if !tb.Track(k, s.flags, int64(i+1)*sec, &c) || c.Dir != s.dir {
			t.Fatalf("step %d: lookup failed or wrong direction %v", i+1, c.Dir)
		}
		check(i+1, s, &c)
	}
	// Expiry unbinds from the right counter.
	if n := tb.Reap(int64(len(steps))*sec+int64(time.Hour), 100); n != 1 {
		t.Fatalf("Reap expired %d, want 1", n)
	}
	if got := counters(d); got != [3]int32{} {
		t.Fatalf("after expiry counters %v", got)
	}
}

// The NAT and DR traces of ip_vs_proto_tcp.c's state tables.
func TestNATTrace(t *testing.T) {
	runTrace(t, spec.FwdMasq, step{DirIn, TCPSyn, "SYN_RECV", true, 60 * time.Second}, []step{
		{DirOut, TCPSyn | TCPAck, "SYN_RECV", true, 60 * time.Second},
		{DirIn, TCPAck, "ESTABLISHED", true, 900 * time.Second},
		{DirIn, TCPFin | TCPAck, "CLOSE_WAIT", false, 60 * time.Second},
		{DirOut, TCPFin | TCPAck, "TIME_WAIT", false, 120 * time.Second},
	})
}

func TestDRTrace(t *testing.T) {
	runTrace(t, spec.FwdRoute, step{DirIn, TCPSyn, "SYN_RECV", true, 60 * time.Second}, []step{
		{DirIn, TCPAck, "ESTABLISHED", true, 900 * time.Second},
		{DirIn, TCPFin | TCPAck, "FIN_WAIT", false, 120 * time.Second},
		{DirIn, TCPRst, "CLOSE", false, 10 * time.Second},
	})
}

func TestTunnelFirstReplyClearsNoOutput(t *testing.T) {
	tb := newTable(t, 4)
	d := newDest("10.1.0.1", 80, spec.FwdTunnel)
	in := tcpKey("10.0.0.1:1000", "192.0.2.1:80")
	var c Conn
	if err := tb.Create(&NewConn{In: in, Fwd: spec.FwdTunnel, Dest: d}, TCPSyn, 0, &c); err != nil {
		t.Fatal(err)
	}
	if c.Flags&FlagNoOutput == 0 {
		t.Fatal("tunnel conn lacks NOOUTPUT")
	}
	if !tb.Track(outKeyOf(&c), TCPSyn|TCPAck, 0, &c) || c.Dir != DirOut || c.Flags&FlagNoOutput != 0 {
		t.Fatalf("reply: dir %v flags %#x", c.Dir, c.Flags)
	}
	// Now INPUT (not INPUT_ONLY): fin from ESTABLISHED → CLOSE_WAIT.
	tb.Track(in, TCPAck, 0, &c)
	tb.Track(in, TCPFin, 0, &c)
	if c.StateName() != "CLOSE_WAIT" {
		t.Fatalf("after output seen, fin → %s, want CLOSE_WAIT", c.StateName())
	}
}

func TestUDPNeverActive(t *testing.T) {
	tb := newTable(t, 4)
	d := newDest("10.1.0.1", 53, spec.FwdMasq)
	in := KeyFrom(ProtoUDP, ap("10.0.0.1:5353"), ap("192.0.2.1:53"))
	var c Conn
	if err := tb.Create(&NewConn{In: in, Dest: d}, 0, 0, &c); err != nil {
		t.Fatal(err)
	}
	for i, k := range []Key{in, outKeyOf(&c), in} {
		if !tb.Track(k, TCPSyn, int64(i)*sec, &c) {
			t.Fatal("lookup")
		}
		if c.StateName() != "UDP" || c.Timeout != 300*time.Second || counters(d) != [3]int32{0, 1, 0} {
			t.Fatalf("UDP: %s %v counters %v", c.StateName(), c.Timeout, counters(d))
		}
	}
	tb.SetTimeouts(0, 0, 20*time.Second)
	tb.Track(in, 0, 10*sec, &c)
	if c.Expires != 30*sec {
		t.Fatalf("UDP expires %d, want 30s", c.Expires)
	}
}

func TestExpiryWithClock(t *testing.T) {
	tb := newTable(t, 8)
	d := newDest("10.1.0.1", 80, spec.FwdMasq)
	in := tcpKey("10.0.0.1:1000", "192.0.2.1:80")
	var c Conn
	// SYN at 100 s: SYN_RECV, expires at 160 s.
	if err := tb.Create(&NewConn{In: in, Dest: d}, TCPSyn, 100*sec, &c); err != nil {
		t.Fatal(err)
	}
	if n := tb.Reap(159*sec, 8); n != 0 || tb.Len() != 1 {
		t.Fatalf("reaped %d before SYN_RECV timeout", n)
	}
	tb.Track(in, TCPAck, 150*sec, &c) // ESTABLISHED, 900 s from 150
	if n := tb.Reap(1049*sec, 8); n != 0 {
		t.Fatal("reaped an established conn early")
	}
	if n := tb.Reap(1050*sec, 8); n != 1 || tb.Len() != 0 {
		t.Fatalf("Reap at expiry removed %d, len %d", n, tb.Len())
	}
	if tb.Lookup(in, 0, &c) || tb.Lookup(outKeyOf(&c), 0, &c) {
		t.Fatal("expired conn still found")
	}
	if counters(d) != [3]int32{} {
		t.Fatalf("counters %v", counters(d))
	}
}

func TestReapIsIncremental(t *testing.T) {
	tb := newTable(t, 100)
	for i := range 100 {
		k := KeyFrom(ProtoUDP, netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), uint16(1000+i)), ap("192.0.2.1:53"))
		if err := tb.Create(&NewConn{In: k, Real: EndpointFrom(ap("10.1.0.1:53"))}, 0, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	now := int64(time.Hour)
	total := 0
	for i := 0; i < 10; i++ {
		n := tb.Reap(now, 10)
		if n > 10 {
			t.Fatalf("Reap with budget 10 removed %d", n)
		}
		total += n
	}
	if total != 100 || tb.Len() != 0 {
		t.Fatalf("10 rounds of budget 10 removed %d, len %d", total, tb.Len())
	}
}

func TestCapacity(t *testing.T) {
	tb := newTable(t, 3)
	var keys []Key
	for i := range 4 {
		k := tcpKey("10.0.0.1:1", "192.0.2.1:80")
		k.SrcPort = uint16(100 + i)
		// ESTABLISHED (an ACK first, as sloppy_tcp creates them): a
		// half-open connection would be evicted to make room.
		err := tb.Create(&NewConn{In: k, Real: EndpointFrom(ap("10.1.0.1:80"))}, TCPAck, 0, nil)
		if i < 3 && err != nil {
			t.Fatal(err)
		}
		if i == 3 && !errors.Is(err, ErrFull) {
			t.Fatalf("4th create in a table of 3: %v, want ErrFull", err)
		}
		keys = append(keys, k)
	}
	var c Conn
	tb.Lookup(keys[1], 0, &c)
	tb.ExpireNow(c.Handle, 0)
	if tb.ExpireNow(c.Handle, 0) {
		t.Fatal("stale handle expired something")
	}
	if err := tb.Create(&NewConn{In: keys[3], Real: EndpointFrom(ap("10.1.0.1:80"))}, TCPSyn, 0, nil); err != nil {
		t.Fatalf("create after a free: %v", err)
	}
	if tb.Len() != 3 {
		t.Fatalf("Len %d", tb.Len())
	}
}

func TestDuplicateKeys(t *testing.T) {
	tb := newTable(t, 8)
	in := tcpKey("10.0.0.1:1000", "192.0.2.1:80")
	nc := NewConn{In: in, Real: EndpointFrom(ap("10.1.0.1:80"))}
	if err := tb.Create(&nc, TCPSyn, 0, nil); err != nil {
		t.Fatal(err)
	}
	if err := tb.Create(&nc, TCPSyn, 0, nil); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate inbound: %v", err)
	}
	// Another VIP, same client and real server: same reply tuple.
	nc2 := nc
	nc2.In = tcpKey("10.0.0.1:1000", "192.0.2.2:80")
	if err := tb.Create(&nc2, TCPSyn, 0, nil); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate outbound: %v", err)
	}
	if tb.Len() != 1 {
		t.Fatalf("Len %d", tb.Len())
	}
}

func TestBothDirectionsFullNAT(t *testing.T) {
	tb := newTable(t, 8)
	d := newDest("10.1.0.1", 8080, spec.FwdFullNAT)
	in := tcpKey("[2001:db8::1]:40000", "[2001:db8:ffff::1]:80")
	local := EndpointFrom(ap("[2001:db8:1::10]:5001"))
	var c Conn
	if err := tb.Create(&NewConn{In: in, Fwd: spec.FwdFullNAT, Dest: d, Local: local, MAC: [6]byte{2, 0, 0, 0, 0, 1}, Ifindex: 7, Service: 3, FWMark: 9}, TCPSyn, 0, &c); err != nil {
		t.Fatal(err)
	}
	reply, _ := KeyFromBytes(ProtoTCP, netip.MustParseAddr("10.1.0.1").AsSlice(), local.AddrPort().Addr().AsSlice(), 8080, 5001)
	var r Conn
	if !tb.Lookup(reply, 0, &r) || r.Dir != DirOut || r.Handle != c.Handle {
		t.Fatalf("reply lookup: %v dir %v", r.Handle, r.Dir)
	}
	if r.Client.AddrPort() != in.SrcAddrPort() || r.Virtual.AddrPort() != in.DstAddrPort() ||
		r.Real.AddrPort() != ap("10.1.0.1:8080") || r.Local != local || r.Dest != d ||
		r.MAC != [6]byte{2, 0, 0, 0, 0, 1} || r.Ifindex != 7 || r.Service != 3 || r.FWMark != 9 {
		t.Fatalf("conn data wrong: %+v", r)
	}
	if r.Flags&FlagNoOutput != 0 {
		t.Fatal("FULLNAT conn has NOOUTPUT")
	}
	// The NAT-style reply tuple (to the client) is not a FULLNAT key.
	if tb.Contains(Key{Proto: ProtoTCP, Src: r.Real.Addr, SrcPort: 8080, Dst: in.Src, DstPort: in.SrcPort}) {
		t.Fatal("FULLNAT conn matched the NAT reply tuple")
	}
	if !tb.Contains(in) || tb.Contains(in.Reverse()) {
		t.Fatal("Contains")
	}
}

func TestExpireDest(t *testing.T) {
	tb := newTable(t, 64)
	d1 := newDest("10.1.0.1", 80, spec.FwdMasq)
	d2 := newDest("10.1.0.2", 80, spec.FwdMasq)
	tk := NewTemplateKey(ProtoTCP, netip.MustParseAddr("10.0.0.0"), netip.MustParseAddr("192.0.2.1"), 80)
	th, err := tb.InsertTemplate(tk, d1, 360*time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		d, tmpl := d1, th
		if i%2 == 1 {
			d, tmpl = d2, 0
		}
		k := tcpKey("10.0.0.1:1", "192.0.2.1:80")
		k.SrcPort = uint16(1000 + i)
		if err := tb.Create(&NewConn{In: k, Dest: d, Template: tmpl}, TCPSyn, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	recount(t, tb, d1)
	if counters(d1) != [3]int32{5, 0, 1} {
		t.Fatalf("d1 counters %v", counters(d1))
	}
	d1.SetAvailable(false)
	if n := tb.ExpireDest(d1, sec); n != 6 {
		t.Fatalf("ExpireDest removed %d, want 5 conns + 1 template", n)
	}
	if counters(d1) != [3]int32{} || tb.Len() != 5 {
		t.Fatalf("after: d1 %v len %d", counters(d1), tb.Len())
	}
	recount(t, tb, d2)
}

func TestTimeouts(t *testing.T) {
	tb, err := New(Config{Capacity: 4, TCP: 100 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tcp, fin, udp := tb.Timeouts()
	if tcp != 100*time.Second || fin != 120*time.Second || udp != 300*time.Second {
		t.Fatalf("Timeouts %v %v %v", tcp, fin, udp)
	}
	tb.SetTimeouts(0, 30*time.Second, 0)
	tcp, fin, udp = tb.Timeouts()
	if tcp != 100*time.Second || fin != 30*time.Second || udp != 300*time.Second {
		t.Fatalf("after --set 0 30 0: %v %v %v", tcp, fin, udp)
	}
	in := tcpKey("10.0.0.1:1", "192.0.2.1:80")
	var c Conn
	tb.Create(&NewConn{In: in, Fwd: spec.FwdRoute, Real: EndpointFrom(ap("10.1.0.1:80"))}, TCPSyn, 0, &c)
	tb.Track(in, TCPAck, 0, &c)
	if c.Timeout != 100*time.Second {
		t.Fatalf("ESTABLISHED timeout %v", c.Timeout)
	}
	tb.Track(in, TCPFin, 0, &c)
	if c.StateName() != "FIN_WAIT" || c.Timeout != 30*time.Second {
		t.Fatalf("FIN_WAIT timeout %v", c.Timeout)
	}
}

func TestNewValidation(t *testing.T) {
	for _, c := range []Config{{}, {Capacity: -1}, {Capacity: 10, Shards: 3}, {Capacity: 10, TCP: -time.Second}} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
	tb, err := New(Config{Capacity: 1, Shards: 64})
	if err != nil || tb.Capacity() != 1 {
		t.Fatalf("small table: %v", err)
	}
}

func TestListing(t *testing.T) {
	tb := newTable(t, 8)
	d := newDest("192.168.1.9", 0, spec.FwdRoute)
	tk := NewFWMarkTemplateKey(netip.MustParseAddr("10.1.2.3"), 7)
	th, _ := tb.InsertTemplate(tk, d, 360*time.Second, 0)
	in := KeyFrom(ProtoUDP, ap("10.1.2.3:5060"), ap("10.0.0.1:5060"))
	tb.Create(&NewConn{In: in, Fwd: spec.FwdRoute, Dest: d, Template: th}, 0, 0, nil)
	ls := tb.Snapshot(sec, nil)
	sort.Slice(ls, func(i, j int) bool { return ls[i].Proto < ls[j].Proto })
	if len(ls) != 2 {
		t.Fatalf("%d entries", len(ls))
	}
	tl, cl := ls[0], ls[1]
	if tl.ProtoName() != "IP" || tl.StateName() != "NONE" || tl.Client != ap("10.1.2.3:0") ||
		tl.Virtual != ap("0.0.0.7:0") || tl.Real != ap("192.168.1.9:0") || tl.Remaining != 359*time.Second || tl.NControl != 1 {
		t.Fatalf("template listing %+v", tl)
	}
	if cl.ProtoName() != "UDP" || cl.StateName() != "UDP" || cl.Client != ap("10.1.2.3:5060") ||
		cl.Real != ap("192.168.1.9:5060") || cl.Remaining != 299*time.Second {
		t.Fatalf("conn listing %+v", cl)
	}
}
