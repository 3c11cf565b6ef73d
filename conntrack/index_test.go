package conntrack

import (
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/spec"
)

// checkIndex checks the index against the arena (no concurrent writers):
// every live entry is indexed under exactly its keys (a connection under
// two, a template under one unless neutralised), with the right tag,
// nothing else is indexed, and every bucket's ovf equals the number of keys
// whose search passes it.
func checkIndex(t *testing.T, tb *Table) {
	t.Helper()
	nb := uint64(len(tb.buckets))
	want := map[uint32]uint64{} // link → hash
	for idx := uint32(1); idx < tb.highWater(); idx++ {
		e := &tb.ents[idx]
		if e.flags&FlagHashed == 0 {
			continue
		}
		if e.flags&flagUnhashed == 0 {
			k := e.inKey()
			want[idx<<1] = k.hash(tb.seed)
		}
		if !e.tmpl {
			k := e.outKey()
			want[idx<<1|1] = k.hash(tb.seed)
		}
	}
	ovf := make([]uint32, nb)
	seen := map[uint32]bool{}
	for b := range nb {
		bk := &tb.buckets[b]
		for i := range bucketSlots {
			l := bk.links[i]
			if l == 0 {
				continue
			}
			h, ok := want[l]
			if !ok {
				t.Fatalf("bucket %d slot %d: link %#x is not a live key", b, i, l)
			}
			if seen[l] {
				t.Fatalf("link %#x indexed twice", l)
			}
			seen[l] = true
			words := [3]uint64{bk.tags0, bk.tags1, uint64(bk.tags2)}
			if tag := uint32(words[i/4]>>(16*(i%4))) & 0xffff; tag != tagOf(h) {
				t.Fatalf("bucket %d slot %d: tag %#x, want %#x", b, i, tag, tagOf(h))
			}
			for p := tb.home(h); p != b; p = (p + 1) % nb {
				ovf[p]++
			}
		}
	}
	if len(seen) != len(want) {
		t.Fatalf("%d live keys, %d indexed", len(want), len(seen))
	}
	for b := range nb {
		if tb.buckets[b].ovf != ovf[b] {
			t.Fatalf("bucket %d: ovf %d, %d keys pass it", b, tb.buckets[b].ovf, ovf[b])
		}
	}
}

// denseTable returns a table whose index has only nb buckets, so that keys
// overflow their home bucket and searches wrap around the end.
func denseTable(t testing.TB, capacity int, nb int) *Table {
	t.Helper()
	if nb*bucketSlots <= 2*capacity {
		t.Fatalf("%d buckets cannot hold %d entries", nb, capacity)
	}
	tb, err := New(Config{Capacity: capacity, Shards: 4, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	tb.buckets = make([]bucket, nb)
	return tb
}

func TestTagMatches(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for range 20000 {
		var bk bucket
		var tags [bucketSlots]uint32
		tag := uint32(r.IntN(4)) // few values: many equal lanes, zero included
		for i := range bucketSlots {
			tags[i] = uint32(r.IntN(4))
			if r.IntN(8) == 0 {
				tags[i] = uint32(r.Uint32() & 0xffff)
			}
			setTag(&bk, i, tags[i])
		}
		var got, want uint32
		for m := tagMatches(&bk, uint64(tag)*lanesLow); m != 0; m &= m - 1 {
			got |= 1 << slotOf(m)
		}
		for i, tg := range tags {
			if tg == tag {
				want |= 1 << i
			}
		}
		if got != want {
			t.Fatalf("tags %v, tag %d: matches %010b, want %010b", tags, tag, got, want)
		}
	}
}

func TestNumBuckets(t *testing.T) {
	for _, c := range []int{1, 2, 3, 7, 100, 1 << 20, 1 << 30} {
		nb := numBuckets(c)
		if nb*bucketSlots*maxLoadNum < 2*uint64(c)*maxLoadDen {
			t.Errorf("capacity %d: %d buckets load the index above %d/%d", c, nb, maxLoadNum, maxLoadDen)
		}
		if nb > 1 && (nb-1)*bucketSlots*maxLoadNum >= 2*uint64(c)*maxLoadDen {
			t.Errorf("capacity %d: %d buckets, one fewer would do", c, nb)
		}
	}
}

// Random creates, lookups and expiries in indexes so small that most keys
// overflow and wrap, checked against a reference map after every step.
func TestIndexOverflowAndWrap(t *testing.T) {
	for _, c := range []struct{ capacity, nb int }{{1, 1}, {4, 1}, {9, 2}, {40, 9}, {200, 41}} {
		tb := denseTable(t, c.capacity, c.nb)
		r := rand.New(rand.NewPCG(uint64(c.capacity), 9))
		live := map[Key]Handle{} // inbound key → handle
		var conn Conn
		for step := range 3000 {
			// ESTABLISHED TCP (created by an ACK): a full table evicts
			// half-open connections and UDP flows (pressure_test.go).
			k := KeyFrom(ProtoTCP, netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), uint16(r.IntN(3*c.capacity))), ap("192.0.2.1:53"))
			h, ok := live[k]
			switch r.IntN(3) {
			case 0:
				err := tb.Create(&NewConn{In: k, Fwd: spec.FwdMasq, Real: EndpointFrom(ap("10.1.0.1:53"))}, TCPAck, 0, &conn)
				full := len(live) == c.capacity
				switch {
				case ok && !full && err != ErrExists, full && err != ErrFull && err != ErrExists, !ok && !full && err != nil:
					t.Fatalf("step %d: create %v (present %v, %d live): %v", step, k.SrcAddrPort(), ok, len(live), err)
				case err == nil:
					live[k] = conn.Handle
				}
			case 1:
				found := tb.Lookup(k, 0, &conn)
				if found != ok || ok && conn.Handle != h {
					t.Fatalf("step %d: lookup %v = %v, want %v", step, k.SrcAddrPort(), found, ok)
				}
				if ok && (!tb.Lookup(outKeyOf(&conn), 0, &conn) || conn.Dir != DirOut || conn.Handle != h) {
					t.Fatalf("step %d: reply key of %v not found", step, k.SrcAddrPort())
				}
			case 2:
				if tb.ExpireNow(h, 0) != ok {
					t.Fatalf("step %d: expire %v: want %v", step, k.SrcAddrPort(), ok)
				}
				delete(live, k)
			}
			checkIndex(t, tb)
		}
	}
}

// Lookups take no lock: while writers fill and drain the same few buckets,
// keys that stay in the table must be found by every lookup.
func TestIndexConcurrentReaders(t *testing.T) {
	const stable, churn = 16, 48
	tb := denseTable(t, stable+churn, 14) // 140 slots for at most 128 keys
	key := func(port int) Key {
		return KeyFrom(ProtoTCP, netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), uint16(port)), ap("192.0.2.1:80"))
	}
	real := EndpointFrom(ap("10.1.0.1:80"))
	for i := range stable {
		if err := tb.Create(&NewConn{In: key(i), Fwd: spec.FwdMasq, Real: real}, TCPSyn, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	var stop atomic.Bool
	var misses atomic.Int64
	var wg sync.WaitGroup
	for w := range 2 { // writers: create and expire churn keys
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c Conn
			r := rand.New(rand.NewPCG(uint64(w), 2))
			for i := 0; i < 20000 && !stop.Load(); i++ {
				k := key(1000 + w*churn/2 + r.IntN(churn/2))
				if tb.Lookup(k, 0, &c) {
					tb.ExpireNow(c.Handle, 0)
				} else {
					_ = tb.Create(&NewConn{In: k, Fwd: spec.FwdMasq, Real: real}, TCPSyn, 0, nil)
				}
			}
		}()
	}
	for range 2 { // readers: stable keys, both directions, Track and TrackBatch
		wg.Add(1)
		go func() {
			defer wg.Done()
			var (
				c     Conn
				ks    [stable]Key
				fl    [stable]uint8
				out   [stable]Conn
				found [stable]bool
			)
			for i := 0; i < 2000 && !stop.Load(); i++ {
				for j := range stable {
					if !tb.Track(key(j), TCPAck, 1, &c) || !tb.Contains(outKeyOf(&c)) {
						misses.Add(1)
					}
					ks[j], fl[j] = outKeyOf(&c), TCPAck
				}
				tb.TrackBatch(ks[:], fl[:], 1, out[:], found[:])
				for _, f := range found {
					if !f {
						misses.Add(1)
					}
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		stop.Store(true)
		<-done
		t.Fatal("workers did not finish in 60 s")
	}
	if n := misses.Load(); n != 0 {
		t.Fatalf("%d lookups of present keys failed", n)
	}
	checkIndex(t, tb)
}
