package dataplane

import (
	"net/netip"
	"testing"
)

// countHops answers from m under generation gen and counts lookups.
type countHops struct {
	m     map[netip.Addr]Hop
	gen   HopGen
	calls int
}

func (c *countHops) Lookup(a netip.Addr) (Hop, bool) { c.calls++; h, ok := c.m[a]; return h, ok }
func (c *countHops) Generation() HopGen              { return c.gen }

// TestHopCacheMissNotKept: a miss is asked again (the resolution it
// started may have finished), a hit is not; two addresses sharing an
// entry each get their own hop.
func TestHopCacheMissNotKept(t *testing.T) {
	a := netip.MustParseAddr("192.0.2.1")
	src := &countHops{m: map[netip.Addr]Hop{}}
	var c hopCache
	c.sync(src)
	var h Hop
	for range 2 {
		if c.lookup(src, a, &h) {
			t.Fatal("hit on an empty table")
		}
	}
	if src.calls != 2 {
		t.Fatalf("2 misses asked %d times, want 2", src.calls)
	}
	src.m[a] = Hop{Ifindex: 7}
	src.gen.Table++
	c.sync(src)
	for range 3 {
		if !c.lookup(src, a, &h) || h.Ifindex != 7 {
			t.Fatalf("lookup = %+v", h)
		}
	}
	if src.calls != 3 {
		t.Fatalf("a miss and 2 hits asked %d times, want 3", src.calls)
	}
	// Another address in a's entry.
	var b netip.Addr
	for i := 1; ; i++ {
		b = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if hopSlot(b) == hopSlot(a) {
			break
		}
	}
	src.m[b] = Hop{Ifindex: 8}
	src.gen.Table++
	c.sync(src)
	for _, x := range []struct {
		a       netip.Addr
		ifindex int
	}{{a, 7}, {b, 8}, {a, 7}} {
		if !c.lookup(src, x.a, &h) || h.Ifindex != x.ifindex {
			t.Fatalf("lookup %s = %+v, want ifindex %d", x.a, h, x.ifindex)
		}
	}
}

// TestHopCacheHostGeneration: a new Host (another MTU, an interface gone)
// is a new generation even with the same table count.
func TestHopCacheHostGeneration(t *testing.T) {
	a := netip.MustParseAddr("2001:db8::1")
	src := &countHops{m: map[netip.Addr]Hop{a: {Ifindex: 1, MTU: 1500}}, gen: HopGen{Host: &Host{}}}
	var c hopCache
	c.sync(src)
	var h Hop
	c.lookup(src, a, &h)
	src.m[a] = Hop{Ifindex: 1, MTU: 9000}
	src.gen.Host = &Host{}
	c.sync(src)
	if !c.lookup(src, a, &h) || h.MTU != 9000 {
		t.Fatalf("after a new Host: MTU %d, want 9000", h.MTU)
	}
}

// TestHopCacheEpochWrap: when the epoch counter wraps, entries of the old
// epoch 1 do not come back.
func TestHopCacheEpochWrap(t *testing.T) {
	a := netip.MustParseAddr("192.0.2.1")
	src := &countHops{m: map[netip.Addr]Hop{a: {Ifindex: 1}}}
	var c hopCache
	c.sync(src) // epoch 1
	var h Hop
	c.lookup(src, a, &h)
	src.m[a] = Hop{Ifindex: 2}
	c.epoch = ^uint32(0)
	src.gen.Table++
	c.sync(src) // wraps to 1
	if c.epoch != 1 {
		t.Fatalf("epoch %d after the wrap, want 1", c.epoch)
	}
	if !c.lookup(src, a, &h) || h.Ifindex != 2 {
		t.Fatalf("after the wrap: %+v, want ifindex 2", h)
	}
}

// TestHopCacheWithoutGeneration: a NextHops without generations is asked
// every time.
func TestHopCacheWithoutGeneration(t *testing.T) {
	a := netip.MustParseAddr("192.0.2.1")
	src := &countHops{m: map[netip.Addr]Hop{a: {Ifindex: 1}}}
	var c hopCache
	c.sync(struct{ NextHops }{src})
	var h Hop
	for range 3 {
		c.lookup(struct{ NextHops }{src}, a, &h)
	}
	if src.calls != 3 {
		t.Fatalf("3 lookups asked %d times, want 3", src.calls)
	}
}
