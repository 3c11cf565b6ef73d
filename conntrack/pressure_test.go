package conntrack

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/spec"
)

// spoofed returns the inbound key of a flood packet: a random source.
func spoofed(r *rand.Rand, proto uint8) Key {
	var a [4]byte
	v := r.Uint32()
	a[0], a[1], a[2], a[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
	return KeyFrom(proto, netip.AddrPortFrom(netip.AddrFrom4(a), uint16(r.Uint32())), ap("192.0.2.1:80"))
}

func natConn(in Key) *NewConn {
	return &NewConn{In: in, Fwd: spec.FwdMasq, Real: EndpointFrom(ap("10.1.0.1:80"))}
}

// A full table whose entries have all timed out, but that the reaper has
// not reached: Create reclaims one instead of failing (before issue #15,
// ErrFull until the reaper came by).
func TestCreateReclaimsExpired(t *testing.T) {
	tb := newTable(t, 64)
	var c Conn
	for i := range 64 {
		in := tcpKey("10.0.0.1:1", "192.0.2.1:80")
		in.SrcPort = uint16(1000 + i)
		if err := tb.Create(natConn(in), TCPAck, 0, &c); err != nil { // ESTABLISHED, 900 s
			t.Fatal(err)
		}
	}
	now := int64(901 * time.Second)
	for i := range 64 {
		in := tcpKey("10.0.0.2:1", "192.0.2.1:80")
		in.SrcPort = uint16(1000 + i)
		if err := tb.Create(natConn(in), TCPAck, now, &c); err != nil {
			t.Fatalf("create %d in a table of timed-out entries: %v", i, err)
		}
	}
	if c.Evicted {
		t.Error("reclaiming a timed-out entry set Conn.Evicted")
	}
	if s := tb.Stats(); s.Reclaimed != 64 || s.Evicted != 0 || s.Full != 0 {
		t.Fatalf("stats %v, want 64 reclaimed", s)
	}
	if tb.Len() != 64 {
		t.Fatalf("Len %d", tb.Len())
	}
}

// A full table evicts half-open TCP connections and UDP flows, the one
// idle the longest first, never an established connection or a template;
// with nothing evictable Create fails with ErrFull as before.
func TestCreateEvictsHalfOpen(t *testing.T) {
	const n = 32
	tb := newTable(t, n)
	d := newDest("10.1.0.1", 80, spec.FwdMasq)
	var c Conn
	keep := map[Key]bool{}
	var halfOpen []Key
	for i := range n {
		in := tcpKey("10.0.0.1:1", "192.0.2.1:80")
		in.SrcPort = uint16(1000 + i)
		now := int64(i) * sec / 10
		switch i % 4 {
		case 0: // SYN_RECV: half-open
			halfOpen = append(halfOpen, in)
			if err := tb.Create(&NewConn{In: in, Fwd: spec.FwdMasq, Dest: d}, TCPSyn, now, &c); err != nil {
				t.Fatal(err)
			}
		case 1: // ESTABLISHED after a handshake
			keep[in] = true
			if err := tb.Create(&NewConn{In: in, Fwd: spec.FwdMasq, Dest: d}, TCPSyn, now, &c); err != nil {
				t.Fatal(err)
			}
			tb.Track(outKeyOf(&c), TCPSyn|TCPAck, now, &c)
			tb.Track(in, TCPAck, now, &c)
		case 2: // UDP with a reply
			in.Proto = ProtoUDP
			keep[in] = true
			if err := tb.Create(natConn(in), 0, now, &c); err != nil {
				t.Fatal(err)
			}
			tb.Track(outKeyOf(&c), 0, now, &c)
		case 3: // SYN_RECV too
			halfOpen = append(halfOpen, in)
			if err := tb.Create(&NewConn{In: in, Fwd: spec.FwdMasq, Dest: d}, TCPSyn, now, &c); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Each new (established) flow takes the place of a half-open
	// connection or a UDP flow, the oldest first among those examined:
	// after as many creations as there are, none is left.
	var evictable []Key
	evictable = append(evictable, halfOpen...)
	for k := range keep {
		if k.Proto == ProtoUDP {
			evictable = append(evictable, k)
			delete(keep, k)
		}
	}
	now := int64(n) * sec / 10
	for i := range evictable {
		in := tcpKey("10.0.0.9:1", "192.0.2.1:80")
		in.SrcPort = uint16(2000 + i)
		if err := tb.Create(&NewConn{In: in, Fwd: spec.FwdMasq, Dest: d}, TCPAck, now, &c); err != nil {
			t.Fatalf("create %d: %v (stats %v)", i, err, tb.Stats())
		}
		if !c.Evicted {
			t.Errorf("create %d evicted a connection but Conn.Evicted is false", i)
		}
		if tb.Track(in, TCPAck, now, &c); c.Evicted {
			t.Errorf("Track left Conn.Evicted set")
		}
		if i == 0 && tb.Lookup(halfOpen[0], now, &c) {
			t.Errorf("the oldest half-open connection (%v) survived the first eviction", halfOpen[0].SrcAddrPort())
		}
	}
	for _, k := range evictable {
		if tb.Lookup(k, now, &c) {
			t.Errorf("evictable %v %v still in the table", ProtoName(k.Proto), k.SrcAddrPort())
		}
	}
	for k := range keep {
		if !tb.Lookup(k, now, &c) {
			t.Errorf("established %v %v evicted", ProtoName(k.Proto), k.SrcAddrPort())
		}
	}
	in := tcpKey("10.0.0.10:1", "192.0.2.1:80")
	if err := tb.Create(natConn(in), TCPSyn, now, &c); !errors.Is(err, ErrFull) {
		t.Fatalf("create in a table of established connections: %v, want ErrFull", err)
	}
	s := tb.Stats()
	if want := uint64(len(evictable)); s.Evicted != want || s.Full != 1 || s.Reclaimed != 0 {
		t.Fatalf("stats %v, want %d evicted and 1 full", s, want)
	}
	recount(t, tb, d)
	checkIndex(t, tb)
}

// The flood of issue #15 on the table alone: spoofed SYNs (or new UDP
// flows) at 50 per legitimate handshake fill a table of 4096 many times
// over; every legitimate client (SYN, the real server's SYN-ACK, the
// client's ACK a round trip of 10 flood packets later) must end
// ESTABLISHED. Before issue #15 the first full table refused every new
// flow for the SYN_RECV timeout (60 s).
func TestFloodKeepsLegitimateClients(t *testing.T) {
	for _, proto := range []uint8{ProtoTCP, ProtoUDP} {
		t.Run(ProtoName(proto), func(t *testing.T) {
			const capacity, clients, perClient, rtt = 4096, 400, 50, 10
			tb := newTable(t, capacity)
			d := newDest("10.1.0.1", 80, spec.FwdMasq)
			r := rand.New(rand.NewPCG(1, 2))
			now := int64(0)
			var c Conn
			flood := func(k int) {
				for range k {
					now += int64(10 * time.Microsecond) // 100 k/s
					in := spoofed(r, proto)
					if !tb.Track(in, TCPSyn, now, &c) {
						_ = tb.Create(&NewConn{In: in, Fwd: spec.FwdMasq, Dest: d}, TCPSyn, now, &c)
					}
				}
			}
			ok := 0
			for i := range clients {
				flood(perClient - rtt)
				in := KeyFrom(ProtoTCP, netip.AddrPortFrom(netip.MustParseAddr("198.51.100.7"), uint16(10000+i)), ap("192.0.2.1:80"))
				if err := tb.Create(&NewConn{In: in, Fwd: spec.FwdMasq, Dest: d}, TCPSyn, now, &c); err != nil {
					continue
				}
				out := outKeyOf(&c)
				tb.Track(out, TCPSyn|TCPAck, now, &c)
				flood(rtt)
				if tb.Track(in, TCPAck, now, &c) && c.State == StateEstablished {
					ok++
				}
			}
			if ok != clients {
				t.Errorf("%d of %d legitimate clients established under the flood (stats %v)", ok, clients, tb.Stats())
			}
			if tb.Len() > capacity {
				t.Errorf("Len %d above capacity", tb.Len())
			}
			if s := tb.Stats(); s.Evicted == 0 {
				t.Errorf("flood evicted nothing: %v", s)
			}
			recount(t, tb, d)
			checkIndex(t, tb)
		})
	}
}

// The automatic levels follow occupancy (free entries below amemthresh)
// as the kernel's follow free memory; 3 is always on, 0 always off.
func TestDefenseLevels(t *testing.T) {
	tb := newTable(t, 100)
	if err := tb.SetDefense(Defense{DropEntry: 1, DropPacket: 1, SecureTCP: 1, AmemThresh: 20}); err != nil {
		t.Fatal(err)
	}
	check := func(when string, want Defense, secure bool) {
		t.Helper()
		want.AmemThresh = 20
		if got := tb.Defense(); got != want {
			t.Errorf("%s: levels %+v, want %+v", when, got, want)
		}
		if tb.secure.Load() != secure {
			t.Errorf("%s: secure_tcp table in use %v, want %v", when, tb.secure.Load(), secure)
		}
	}
	check("empty", Defense{DropEntry: 1, DropPacket: 1, SecureTCP: 1}, false)
	var c Conn
	now := int64(0)
	for i := range 90 { // 10 free: below 20
		in := tcpKey("10.0.0.1:1", "192.0.2.1:80")
		in.SrcPort = uint16(1000 + i)
		if err := tb.Create(natConn(in), TCPSyn, now, &c); err != nil {
			t.Fatal(err)
		}
	}
	now += sec / 2
	tb.Reap(now, 0)
	check("90 % full, first evaluation", Defense{DropEntry: 2, DropPacket: 2, SecureTCP: 2}, true)
	// drop_packet: rate amemthresh/(amemthresh−free) = 20/10 = 2.
	dropped := 0
	for i := range 4 {
		in := tcpKey("10.0.0.2:1", "192.0.2.1:80")
		in.SrcPort = uint16(1000 + i)
		if err := tb.Create(natConn(in), TCPSyn, now, &c); errors.Is(err, ErrDropped) {
			dropped++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if dropped != 2 || tb.Stats().DropPacket != 2 {
		t.Errorf("drop_packet at rate 2 dropped %d of 4 (stats %v)", dropped, tb.Stats())
	}
	// drop_entry: within the second nothing is re-evaluated; then the
	// reaper removes the half-open connections idle DropEntryIdle.
	now += int64(DropEntryIdle)
	if n := tb.Reap(now, 100); n != 92 || tb.Len() != 0 {
		t.Errorf("drop_entry reap removed %d, Len %d; want all 92 half-open", n, tb.Len())
	}
	if s := tb.Stats(); s.DropEntry != 92 {
		t.Errorf("stats %v, want drop_entry 92", s)
	}
	now += sec
	tb.Reap(now, 0)
	check("empty again", Defense{DropEntry: 1, DropPacket: 1, SecureTCP: 1}, false)
	if err := tb.SetDefense(Defense{DropPacket: 3, SecureTCP: 3, AmDropRate: 3, AmemThresh: 20}); err != nil {
		t.Fatal(err)
	}
	check("always", Defense{DropPacket: 3, SecureTCP: 3, AmDropRate: 3}, true)
	dropped = 0
	for i := range 9 {
		in := tcpKey("10.0.0.3:1", "192.0.2.1:80")
		in.SrcPort = uint16(1000 + i)
		if err := tb.Create(natConn(in), TCPSyn, now, &c); errors.Is(err, ErrDropped) {
			dropped++
		}
	}
	if dropped != 3 {
		t.Errorf("drop_packet always at am_droprate 3 dropped %d of 9", dropped)
	}
	tb.SetSecureTCP(false)
	if err := tb.SetDefense(Defense{AmemThresh: 20}); err != nil {
		t.Fatal(err)
	}
	check("off", Defense{}, false)
	// Established connections are not drop_entry's to take.
	if err := tb.SetDefense(Defense{DropEntry: 3}); err != nil {
		t.Fatal(err)
	}
	n := tb.Len()
	now += int64(time.Hour)
	in := tcpKey("10.0.0.4:1", "192.0.2.1:80")
	if err := tb.Create(natConn(in), TCPAck, now, &c); err != nil {
		t.Fatal(err)
	}
	tb.Reap(now+int64(DropEntryIdle), 100)
	if !tb.Lookup(in, now, &c) || tb.Len() != 1 {
		t.Errorf("drop_entry removed an ESTABLISHED connection (Len %d, %d before)", tb.Len(), n)
	}
}

func TestSetDefenseRefusesBadValues(t *testing.T) {
	tb := newTable(t, 100)
	good := Defense{DropEntry: 1, AmemThresh: 10}
	if err := tb.SetDefense(good); err != nil {
		t.Fatal(err)
	}
	for _, d := range []Defense{
		{DropEntry: 4}, {DropPacket: -1}, {SecureTCP: 9}, {AmemThresh: -1}, {AmemThresh: 101}, {AmDropRate: -2},
	} {
		if err := tb.SetDefense(d); err == nil {
			t.Errorf("SetDefense(%+v) accepted", d)
		}
		if got := tb.Defense(); got != good {
			t.Errorf("SetDefense(%+v) refused but changed the settings to %+v", d, got)
		}
	}
}

// Eviction and reclaiming allocate nothing (Create's budget).
func TestPressureNoAllocs(t *testing.T) {
	tb := newTable(t, 256)
	d := newDest("10.1.0.1", 80, spec.FwdMasq)
	r := rand.New(rand.NewPCG(3, 4))
	var c Conn
	now := int64(0)
	for range 512 {
		_ = tb.Create(&NewConn{In: spoofed(r, ProtoTCP), Fwd: spec.FwdMasq, Dest: d}, TCPSyn, now, &c)
	}
	keys := make([]Key, 200)
	for i := range keys {
		keys[i] = spoofed(r, ProtoTCP)
	}
	i := 0
	if n := testing.AllocsPerRun(100, func() {
		now += int64(time.Millisecond)
		if err := tb.Create(&NewConn{In: keys[i%len(keys)], Fwd: spec.FwdMasq, Dest: d}, TCPSyn, now, &c); err != nil {
			t.Fatal(err)
		}
		i++
	}); n != 0 {
		t.Errorf("Create evicting: %v allocs", n)
	}
	if tb.Stats().Evicted == 0 {
		t.Fatal("nothing evicted")
	}
}

// Workers flood a small table from several goroutines while a reaper
// runs with drop_entry on and legitimate handshakes complete; run with
// -race. The counters and the index must match the table at the end.
func TestConcurrentFlood(t *testing.T) {
	tb, err := New(Config{Capacity: 512, Shards: 4, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.SetDefense(Defense{DropEntry: 1, SecureTCP: 1}); err != nil {
		t.Fatal(err)
	}
	d := newDest("10.1.0.1", 80, spec.FwdMasq)
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	var clk atomic.Int64
	clock := func() int64 { return clk.Add(int64(time.Millisecond)) }
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			var c Conn
			for i := range 4000 {
				now := clock()
				if i%50 == 0 {
					in := KeyFrom(ProtoTCP, netip.AddrPortFrom(netip.MustParseAddr("198.51.100.7"), uint16(w*10000+i)), ap("192.0.2.1:80"))
					if tb.Create(&NewConn{In: in, Fwd: spec.FwdMasq, Dest: d}, TCPSyn, now, &c) == nil {
						tb.Track(outKeyOf(&c), TCPSyn|TCPAck, now, &c)
						// Under secure_tcp (automatic here) the client's
						// ACK leaves it SYNACK until the server's next
						// packet: found is what counts.
						if tb.Track(in, TCPAck, now, &c) {
							continue
						}
					}
					mu.Lock()
					failed++
					mu.Unlock()
					continue
				}
				proto := ProtoTCP
				if i%2 == 1 {
					proto = ProtoUDP
				}
				_ = tb.Create(&NewConn{In: spoofed(r, proto), Fwd: spec.FwdMasq, Dest: d}, TCPSyn, now, &c)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 400 {
			tb.Reap(clk.Load(), 64+i%2)
		}
	}()
	wg.Wait()
	// A goroutine descheduled between its SYN and its ACK can see its
	// connection evicted (the others create hundreds meanwhile): that is
	// timing, so it is only logged; TestFloodKeepsLegitimateClients
	// asserts the rate in a deterministic interleaving.
	t.Logf("%d legitimate handshakes failed; stats %v", failed, tb.Stats())
	recount(t, tb, d)
	checkIndex(t, tb)
	if tb.Len() > tb.Capacity() {
		t.Errorf("Len %d above capacity", tb.Len())
	}
}
