package dataplane

import (
	"encoding/binary"
	"net/netip"
)

// The next-hop cache (issue 17).
//
// Every request and every reply needs the next hop towards its
// destination (the real server, or the client for a routed reply). Asked
// of Env.Hops each time, that is an interface call, a hash of a netip.Addr
// and a map read in the resolver's table, and for the director's adapter a
// second map read for the egress MTU — per packet, for answers that change
// a few times a minute at most. A worker keeps the answers instead, in a
// small direct-mapped array of its own (no lock, nothing shared), valid as
// long as the source's generation (GenHops) does not change. The worker
// reads the generation once per batch (ProcessBatch): a neighbour that
// changed its MAC, a route that moved, an interface that went away or
// changed its MTU is seen by the next batch, as without the cache. Misses
// are not kept: the next frame asks Env.Hops again (which has started
// resolving the address), and the neighbour queue's rule — a frame does
// not overtake those waiting for its next hop — is checked before the
// cache (Worker.hop).

// HopGen is a generation of a GenHops: equal generations promise equal
// answers. Table counts the changes of the route and neighbour table,
// Host is the host facts the MTUs come from. (A pointer, not a number
// taken from it: a freed Host whose address a new one reuses cannot pass
// for it.)
type HopGen struct {
	Table uint64
	Host  *Host
}

// GenHops is a NextHops whose answers a worker may keep: Lookup answers
// the same for an address as long as Generation returns the same value.
// Generation is read once per batch; it must not allocate or block.
type GenHops interface {
	NextHops
	Generation() HopGen
}

// hopCacheBits sizes the cache: 256 entries (about 20 KiB per worker),
// for the real servers of a worker's requests and the clients of its
// replies. Addresses beyond that share entries and take turns; each miss
// costs one Env.Hops lookup, as without the cache.
const hopCacheBits = 8

// hopEntry is one cached answer: the hop towards addr, valid while epoch
// is the cache's.
type hopEntry struct {
	addr  netip.Addr
	epoch uint32
	hop   Hop
}

// hopCache is a worker's next-hop cache.
type hopCache struct {
	src     GenHops // nil: Env.Hops has no generation, every lookup asks it
	checked bool    // src was looked for
	gen     HopGen  // the generation the valid entries were taken in
	epoch   uint32  // entries of another epoch are stale (0: none yet)
	e       *[1 << hopCacheBits]hopEntry
}

// sync reads the generation of hops (once per batch): a new one makes
// every entry stale.
func (c *hopCache) sync(hops NextHops) {
	if !c.checked {
		c.checked = true
		g, ok := hops.(GenHops)
		if !ok {
			return
		}
		c.src, c.e = g, new([1 << hopCacheBits]hopEntry)
		c.gen, c.epoch = g.Generation(), 1
		return
	}
	if c.src == nil {
		return
	}
	if g := c.src.Generation(); g != c.gen {
		c.gen = g
		if c.epoch++; c.epoch == 0 { // wrapped: entries of epoch 1 would pass again
			clear(c.e[:])
			c.epoch = 1
		}
	}
}

// lookup fills h with the next hop towards addr, from the cache or, on a
// miss, from hops (kept when it resolved).
func (c *hopCache) lookup(hops NextHops, addr netip.Addr, h *Hop) bool {
	if c.src == nil {
		var ok bool
		*h, ok = hops.Lookup(addr)
		return ok
	}
	e := &c.e[hopSlot(addr)]
	if e.epoch == c.epoch && e.addr == addr {
		*h = e.hop
		return true
	}
	var ok bool
	if *h, ok = c.src.Lookup(addr); ok {
		e.addr, e.epoch, e.hop = addr, c.epoch, *h
	}
	return ok
}

// HopPeeker is implemented by NextHops that can answer from what they
// have resolved without starting a resolution on a miss (Peek). Without
// it, a peek misses unless the cache holds the answer.
type HopPeeker interface {
	Peek(dst netip.Addr) (Hop, bool)
}

// peek is lookup without starting a resolution on a miss (HopPeeker):
// for a client that may be a spoofed source (clientHop).
func (c *hopCache) peek(hops NextHops, addr netip.Addr, h *Hop) bool {
	if c.src != nil {
		if e := &c.e[hopSlot(addr)]; e.epoch == c.epoch && e.addr == addr {
			*h = e.hop
			return true
		}
	}
	p, ok := hops.(HopPeeker)
	if !ok {
		return false
	}
	*h, ok = p.Peek(addr)
	if ok && c.src != nil {
		e := &c.e[hopSlot(addr)]
		e.addr, e.epoch, e.hop = addr, c.epoch, *h
	}
	return ok
}

// hopSlot is addr's entry: a multiplicative hash of its 16 bytes (IPv4
// addresses differ in the low word, IPv6 ones in either).
func hopSlot(addr netip.Addr) uint {
	a := addr.As16()
	x := binary.LittleEndian.Uint64(a[:8]) ^ binary.LittleEndian.Uint64(a[8:])
	return uint((x * 0x9e3779b97f4a7c15) >> (64 - hopCacheBits))
}
