package dataplane_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/sched"
	"github.com/uvs-lb/uvs/spec"
)

// lportRig is a connection table with FULLNAT connections from one client
// to real servers, their local ports taken from a small allocator.
type lportRig struct {
	t     *conntrack.Table
	a     *dataplane.PortAllocator
	c     dataplane.PortCursor
	dest  *sched.Dest
	lip   conntrack.Endpoint
	cport uint16
}

func newLportRig(t *testing.T, min, max uint16) *lportRig {
	t.Helper()
	ct, err := conntrack.New(conntrack.Config{Capacity: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	return &lportRig{
		t:     ct,
		a:     dataplane.NewPortAllocator(min, max),
		dest:  sched.NewDest(spec.Dest{Addr: netip.MustParseAddr("10.0.11.11"), Port: 80, Weight: 1, Fwd: spec.FwdFullNAT}),
		lip:   conntrack.Endpoint{Addr: netip.MustParseAddr("10.0.11.1").As16()},
		cport: 40000,
	}
}

func ep(s string) conntrack.Endpoint {
	ap := netip.MustParseAddrPort(s)
	return conntrack.Endpoint{Addr: ap.Addr().As16(), Port: ap.Port()}
}

// open allocates a port for a TCP connection to rs and creates it with a
// SYN at now; it reports false when no port was free.
func (r *lportRig) open(t *testing.T, rs conntrack.Endpoint, now int64) (conntrack.Conn, bool) {
	t.Helper()
	port, ok := r.a.Allocate(&r.c, r.t, conntrack.ProtoTCP, rs, r.lip, now)
	if !ok {
		return conntrack.Conn{}, false
	}
	if port < r.a.Min || port > r.a.Max {
		t.Fatalf("port %d outside %d-%d", port, r.a.Min, r.a.Max)
	}
	r.cport++
	cli, vip := ep("10.0.1.2:0"), ep("10.0.1.100:80")
	nc := conntrack.NewConn{
		In:   conntrack.Key{Src: cli.Addr, Dst: vip.Addr, SrcPort: r.cport, DstPort: vip.Port, Proto: conntrack.ProtoTCP},
		Fwd:  spec.FwdFullNAT,
		Dest: r.dest, Real: rs,
		Local: conntrack.Endpoint{Addr: r.lip.Addr, Port: port},
	}
	var c conntrack.Conn
	if err := r.t.Create(&nc, conntrack.TCPSyn, now, &c); err != nil {
		t.Fatalf("create with local port %d: %v", port, err)
	}
	return c, true
}

// clientClose runs c through the handshake and a client-first close to
// TIME_WAIT at now.
func (r *lportRig) clientClose(t *testing.T, c conntrack.Conn, now int64) {
	t.Helper()
	in := conntrack.Key{Src: c.Client.Addr, Dst: c.Virtual.Addr, SrcPort: c.Client.Port, DstPort: c.Virtual.Port, Proto: conntrack.ProtoTCP}
	out := conntrack.Key{Src: c.Real.Addr, Dst: c.Local.Addr, SrcPort: c.Real.Port, DstPort: c.Local.Port, Proto: conntrack.ProtoTCP}
	var x conntrack.Conn
	for _, s := range []struct {
		k     conntrack.Key
		flags uint8
	}{{out, conntrack.TCPSyn | conntrack.TCPAck}, {in, conntrack.TCPAck}, {in, conntrack.TCPFin | conntrack.TCPAck},
		{out, conntrack.TCPFin | conntrack.TCPAck}, {in, conntrack.TCPAck}} {
		if !r.t.Track(s.k, s.flags, now, &x) {
			t.Fatalf("connection of local port %d lost", c.Local.Port)
		}
	}
	if x.State != conntrack.StateTimeWait {
		t.Fatalf("connection of local port %d in %s after a client-first close, want TIME_WAIT", c.Local.Port, x.StateName())
	}
}

// TestPortAllocatorTimeWaitReuse: with every port of the range used by
// connections to one real server, allocation for it fails (and succeeds
// for another real server: ports are per real server); once those
// connections are in TIME_WAIT, their ports are reused only after
// TimeWaitReuseDelay, and the previous connection is gone.
func TestPortAllocatorTimeWaitReuse(t *testing.T) {
	const min, max = 2000, 2007
	r := newLportRig(t, min, max)
	rs1, rs2 := ep("10.0.11.11:80"), ep("10.0.11.12:80")
	var conns []conntrack.Conn
	seen := map[uint16]bool{}
	for range max - min + 1 {
		c, ok := r.open(t, rs1, 0)
		if !ok {
			t.Fatalf("no port after %d connections of a range of %d", len(conns), max-min+1)
		}
		if seen[c.Local.Port] {
			t.Fatalf("port %d handed out twice to live connections", c.Local.Port)
		}
		seen[c.Local.Port] = true
		conns = append(conns, c)
	}
	if _, ok := r.open(t, rs1, 0); ok {
		t.Fatal("a port was handed out while every port had a live connection to the same real server")
	}
	if _, ok := r.open(t, rs2, 0); !ok {
		t.Fatal("no port for a second real server: ports must be allocated per real server")
	}
	tw := int64(time.Second)
	for _, c := range conns {
		r.clientClose(t, c, tw)
	}
	if _, ok := r.open(t, rs1, tw+int64(dataplane.TimeWaitReuseDelay)/2); ok {
		t.Fatal("a port in TIME_WAIT was reused before TimeWaitReuseDelay")
	}
	now := tw + int64(dataplane.TimeWaitReuseDelay)
	for i := range conns {
		c, ok := r.open(t, rs1, now)
		if !ok {
			t.Fatalf("TIME_WAIT port not reused (%d reused of %d)", i, len(conns))
		}
		var old conntrack.Conn
		if !r.t.Lookup(conntrack.Key{Src: c.Client.Addr, Dst: c.Virtual.Addr, SrcPort: c.Client.Port, DstPort: c.Virtual.Port,
			Proto: conntrack.ProtoTCP}, now, &old) || old.Handle != c.Handle {
			t.Fatalf("new connection on port %d not found", c.Local.Port)
		}
	}
	if n := r.t.Len(); n != len(conns)+1 {
		t.Fatalf("%d entries after reuse, want %d (the TIME_WAIT connections replaced, plus rs2's)", n, len(conns)+1)
	}
}

// TestPortAllocatorPerDestination: each (local address, real server,
// port) walks the whole range before it reuses a port, however many
// real servers share the allocator. With one cursor for all, two real
// servers taking turns got every other port each and reused a port after
// half the range, while the real server still held the first
// connection's TIME_WAIT (60 s on Linux): on kernels whose clients use a
// random timestamp offset per connection, that SYN fails the real
// server's PAWS check about half the time and waits a second for its
// retransmission (the bench's FULLNAT conn/s ceiling of ~32 000
// connections per run).
func TestPortAllocatorPerDestination(t *testing.T) {
	const min, max = 2000, 2007
	r := newLportRig(t, min, max)
	rss := []conntrack.Endpoint{ep("10.0.11.11:80"), ep("10.0.11.12:80")}
	used := map[conntrack.Endpoint]map[uint16]bool{}
	now := int64(0)
	for i := range 2 * (max - min + 1) {
		rs := rss[i%2]
		now += int64(2 * dataplane.TimeWaitReuseDelay)
		c, ok := r.open(t, rs, now)
		if !ok {
			t.Fatalf("connection %d to %v: no port", i, rs)
		}
		if used[rs] == nil {
			used[rs] = map[uint16]bool{}
		}
		if used[rs][c.Local.Port] {
			t.Fatalf("connection %d to %v reuses port %d while %d of the range's %d ports were never used for it",
				i, rs, c.Local.Port, max-min+1-len(used[rs]), max-min+1)
		}
		used[rs][c.Local.Port] = true
		r.clientClose(t, c, now)
	}
	// The range used up for both: the oldest TIME_WAIT port is taken over.
	now += int64(2 * dataplane.TimeWaitReuseDelay)
	if _, ok := r.open(t, rss[0], now); !ok {
		t.Fatal("no port once every port was in TIME_WAIT")
	}
}

// TestPortAllocatorStartsApart: a new allocator (a restarted uvsd) does
// not walk the ports in the order its predecessor did (from the range's
// first port), over ports the real servers may still hold in TIME_WAIT
// from the predecessor's connections.
func TestPortAllocatorStartsApart(t *testing.T) {
	lip := conntrack.Endpoint{Addr: netip.MustParseAddr("10.0.11.1").As16()}
	first := func(a *dataplane.PortAllocator, rs conntrack.Endpoint) uint16 {
		ct, err := conntrack.New(conntrack.Config{Capacity: 1 << 4})
		if err != nil {
			t.Fatal(err)
		}
		var c dataplane.PortCursor
		p, ok := a.Allocate(&c, ct, conntrack.ProtoTCP, rs, lip, 0)
		if !ok {
			t.Fatal("no port in an empty table")
		}
		return p
	}
	a1, a2 := dataplane.NewPortAllocator(1024, 32767), dataplane.NewPortAllocator(1024, 32767)
	var ports []uint16
	for _, s := range []string{"10.0.11.11:80", "10.0.11.12:80", "10.0.11.13:80", "10.0.11.14:443"} {
		p1, p2 := first(a1, ep(s)), first(a2, ep(s))
		if p1 != p2 {
			return
		}
		ports = append(ports, p1, p2)
	}
	t.Fatalf("two allocators gave four destinations the same first ports: %v", ports)
}

// TestPortAllocatorPositionsContinue: an allocator given the positions
// of another over the same range (a restarted uvsd given its
// predecessor's) hands each destination the ports the other would have
// handed out next, none of those it handed out already.
func TestPortAllocatorPositionsContinue(t *testing.T) {
	const min, max = 1024, 32767
	lip := conntrack.Endpoint{Addr: netip.MustParseAddr("10.0.11.1").As16()}
	ct, err := conntrack.New(conntrack.Config{Capacity: 1 << 4})
	if err != nil {
		t.Fatal(err)
	}
	rss := []conntrack.Endpoint{ep("10.0.11.11:80"), ep("10.0.11.12:80"), ep("10.0.11.13:443")}
	a1 := dataplane.NewPortAllocator(min, max)
	used := map[conntrack.Endpoint]map[uint16]bool{}
	var c1 dataplane.PortCursor // the predecessor's worker
	for i := range 300 {
		rs := rss[i%len(rss)]
		p, ok := a1.Allocate(&c1, ct, conntrack.ProtoTCP, rs, lip, 0)
		if !ok {
			t.Fatal("no port in an empty table")
		}
		if used[rs] == nil {
			used[rs] = map[uint16]bool{}
		}
		used[rs][p] = true
	}
	saved := a1.Positions()
	if saved.Min != min || saved.Max != max {
		t.Fatalf("positions of range %d-%d, want %d-%d", saved.Min, saved.Max, min, max)
	}
	a2 := dataplane.NewPortAllocator(min, max)
	if err := a2.SetPositions(saved); err != nil {
		t.Fatal(err)
	}
	if got := a2.Positions(); got != saved {
		t.Fatal("positions set differ from the positions read back")
	}
	var c2, c1next dataplane.PortCursor // the successor's worker; a new worker of the predecessor
	for _, rs := range rss {
		for range 100 {
			p2, ok2 := a2.Allocate(&c2, ct, conntrack.ProtoTCP, rs, lip, 0)
			p1, ok1 := a1.Allocate(&c1next, ct, conntrack.ProtoTCP, rs, lip, 0)
			if !ok1 || !ok2 {
				t.Fatal("no port in an empty table")
			}
			if p2 != p1 {
				t.Fatalf("%v: the restored allocator gives port %d, the predecessor would have given %d", rs, p2, p1)
			}
			if used[rs][p2] {
				t.Fatalf("%v: the restored allocator gives port %d again, of the %d the predecessor handed out", rs, p2, len(used[rs]))
			}
		}
	}
}

// TestPortAllocatorPositionsRefused: positions of another range, or
// beyond the range, are refused and change nothing.
func TestPortAllocatorPositionsRefused(t *testing.T) {
	a := dataplane.NewPortAllocator(1024, 32767)
	before := a.Positions()
	other := dataplane.NewPortAllocator(1024, 32768).Positions()
	if err := a.SetPositions(other); err == nil {
		t.Error("positions of range 1024-32768 accepted by an allocator over 1024-32767")
	}
	beyond := before
	for i := range beyond.Next {
		beyond.Next[i] = 0
	}
	beyond.Next[dataplane.NumPortSlots-1] = 32767 - 1024 + 1
	if err := a.SetPositions(beyond); err == nil {
		t.Error("a position beyond the range accepted")
	}
	if a.Positions() != before {
		t.Error("refused positions changed the allocator")
	}
}

// TestPortAllocatorNoReuseOfLive: a connection still open (ESTABLISHED or
// FIN_WAIT) keeps its port however old it is.
func TestPortAllocatorNoReuseOfLive(t *testing.T) {
	r := newLportRig(t, 3000, 3000)
	rs := ep("10.0.11.11:80")
	if _, ok := r.open(t, rs, 0); !ok {
		t.Fatal("no port in an empty range")
	}
	if _, ok := r.open(t, rs, int64(2*time.Second)); ok {
		t.Fatal("the port of a live (SYN_RECV) connection was reused")
	}
}

// TestPortAllocatorNoAllocs: allocation does not allocate, whether the
// port is free, in use, or taken over from TIME_WAIT.
func TestPortAllocatorNoAllocs(t *testing.T) {
	r := newLportRig(t, 4000, 4003)
	rs := ep("10.0.11.11:80")
	c, _ := r.open(t, rs, 0)
	r.clientClose(t, c, 0)
	now := int64(5 * time.Second)
	if n := testing.AllocsPerRun(200, func() {
		_, _ = r.a.Allocate(&r.c, r.t, conntrack.ProtoTCP, rs, r.lip, now)
	}); n != 0 {
		t.Fatalf("Allocate: %v allocations, want 0", n)
	}
}

func BenchmarkPortAllocate(b *testing.B) {
	ct, err := conntrack.New(conntrack.Config{Capacity: 1 << 10})
	if err != nil {
		b.Fatal(err)
	}
	a := dataplane.NewPortAllocator(1024, 32767)
	var c dataplane.PortCursor
	rs, lip := ep("10.0.11.11:80"), conntrack.Endpoint{Addr: netip.MustParseAddr("10.0.11.1").As16()}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := a.Allocate(&c, ct, conntrack.ProtoTCP, rs, lip, 0); !ok {
			b.Fatal("no port")
		}
	}
}

// TestFullNATLocalAddrRoundRobin: a service with a local-address pool
// (--add-laddr) sends its new connections from each pool address in turn.
func TestFullNATLocalAddrRoundRobin(t *testing.T) {
	r := newRig(t, "-A -t 10.0.1.100:80 -s rr\n-a -t 10.0.1.100:80 -r 10.0.2.11:80 -b\n"+
		"-P -t 10.0.1.100:80 -z 10.0.2.201\n-P -t 10.0.1.100:80 -z 10.0.2.202\n")
	want := []string{"10.0.2.201", "10.0.2.202", "10.0.2.201", "10.0.2.202"}
	for i, w := range want {
		out := r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", uint16(50000+i), 80, true, false))
		if len(out) != 1 {
			t.Fatalf("SYN %d: %d frames sent, want 1", i, len(out))
		}
		_, ip, _ := decode(t, out[0].Data())
		if got := ip.SrcIP.String(); got != w {
			t.Fatalf("SYN %d sent from %s, want %s (pool round-robin)", i, got, w)
		}
	}
}

// TestFullNATConflictsPerLocalAddr: with one local port and a pool of two
// addresses, a third connection to the same real server finds no port on
// either address: it is dropped, counted as fullnat-no-port, and each
// address counts one conflict (what -G shows).
func TestFullNATConflictsPerLocalAddr(t *testing.T) {
	r := newRig(t, "-A -t 10.0.1.100:80 -s rr\n-a -t 10.0.1.100:80 -r 10.0.2.11:80 -b\n"+
		"-P -t 10.0.1.100:80 -z 10.0.2.201\n-P -t 10.0.1.100:80 -z 10.0.2.202\n")
	a := dataplane.NewPortAllocator(5000, 5000)
	r.env.Ports = a
	for i := range 3 {
		out := r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", uint16(50000+i), 80, true, false))
		if want := min(1, 2-i); len(out) != want {
			t.Fatalf("SYN %d: %d frames sent, want %d", i, len(out), want)
		}
	}
	if n := r.w.Counters.Load(dataplane.CntFullNATNoPort); n != 1 {
		t.Fatalf("fullnat-no-port %d, want 1", n)
	}
	for _, la := range []string{"10.0.2.201", "10.0.2.202"} {
		if n := a.Conflicts(netip.MustParseAddr(la)); n != 1 {
			t.Errorf("conflicts of %s: %d, want 1", la, n)
		}
	}
	if n := a.Conflicts(netip.MustParseAddr("10.0.2.1")); n != 0 {
		t.Errorf("conflicts of an address not in the pool: %d", n)
	}
}
