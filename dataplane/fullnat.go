package dataplane

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/sched"
	"github.com/uvs-lb/uvs/snapshot"
	"github.com/uvs-lb/uvs/spec"
)

// Fallback FULLNAT local port range, for an allocator built without one:
// above Linux's default ip_local_port_range (32768–60999), so the
// director's own sockets never pick a port a FULLNAT connection uses. The
// director chooses a far larger range at start (director/lports.go).
const (
	DefaultLocalPortMin = 61000
	DefaultLocalPortMax = 65535
)

// TimeWaitReuseDelay is how long a local port's previous connection to
// the same real server:port must have been quiet in TIME_WAIT or CLOSE
// before a new connection may take the port (the kernel's tcp_tw_reuse
// waits one second after the last timestamp seen).
const TimeWaitReuseDelay = time.Second

// portBlock is how many consecutive ports a worker takes from a
// destination's shared cursor at once: one atomic add per portBlock
// allocations, and two workers never walk the same ports at the same time.
const portBlock = 64

// portTries bounds the ports one allocation tries for one local address.
const portTries = 64

// portSlots is how many cursors an allocator keeps: one per destination
// (local address, real server, port, protocol), hashed; destinations that
// share a slot share its cursor.
const portSlots = 256

// PortAllocator hands out FULLNAT local ports over [Min, Max]. A port is
// free for a (local address, real server, port) when no connection uses
// the reply tuple RS:rport → LIP:lport, so the connection table itself is
// the allocation map, kept per (LIP, RS, rport), and nothing needs
// releasing (the alibaba LVS lport scheme: a moving cursor, bounded
// tries).
//
// Each destination (LIP, RS, rport, protocol) has its own cursor, as the
// kernel's connect() keeps a position per destination
// (__inet_hash_connect's table_perturb, indexed by a hash of the
// addresses and port) and starts each at an offset of its own: a
// destination walks the whole range before it reuses a port, however many
// real servers share the range, and the port it reuses is the one it used
// longest ago. That matters because the real server usually closes first
// (an HTTP server answering Connection: close) and so holds the tuple
// LIP:lport ↔ RS:rport in TIME_WAIT for 60 s (TCP_TIMEWAIT_LEN): a new
// SYN on it is accepted only if its timestamp is newer than the last one
// seen (tcp_timewait_state_process), and since clients draw a random
// timestamp offset per connection, a SYN of another client connection on
// the same tuple is older about half the time: PAWS drops it
// (TcpExtPAWSTimewait), the real server answers with an ACK, the client
// resets and retransmits its SYN a second later. One cursor for all
// destinations made each of N real servers reuse its ports N times as
// often. A destination that needs more than (Max−Min+1)/60 s new
// connections per second reuses ports the real server may still hold:
// give the service a local-address pool (--add-laddr) to multiply the
// ports. Each worker walks its own block of a destination's cursor
// (PortCursor); the blocks are taken in turn, so ports are reused in the
// order they were last handed out.
//
// TIME_WAIT reuse: a port whose connection to the same RS:rport is in
// TIME_WAIT or CLOSE and quiet for TimeWaitReuseDelay is taken over: that
// connection is expired at once, as the kernel's tcp_tw_reuse lets a
// socket reuse a 4-tuple in TIME_WAIT. When the client closed first, the
// real server holds no TIME_WAIT for the tuple (it went LAST_ACK →
// CLOSED) and the new SYN is an ordinary one. When the real server closed
// first and still holds TIME_WAIT, Linux accepts the SYN if its sequence
// number or timestamp is newer (tcp_timewait_state_process); otherwise it
// answers with an ACK, the client's stack resets, the reset ends the real
// server's TIME_WAIT and the client's retransmitted SYN (1 s later)
// connects: a delay, never a refusal. Only TCP is reused; a UDP port is
// free once its flow timed out.
type PortAllocator struct {
	Min, Max uint16
	span     uint32
	next     [portSlots]atomic.Uint32 // per destination slot: next block's first offset in the range

	// cursors are the cursors that counted a conflict (registered at
	// their first), for Conflicts.
	mu      sync.Mutex
	cursors []*PortCursor
}

// NewPortAllocator returns an allocator over [min, max] (0 or an empty
// range: DefaultLocalPortMin–DefaultLocalPortMax). Each destination's
// cursor starts at a random place in the range, so that a restarted
// uvsd does not walk again, from the start, the ports its predecessor
// used last (the real servers may still hold them in TIME_WAIT).
func NewPortAllocator(min, max uint16) *PortAllocator {
	if min == 0 || max < min {
		min, max = DefaultLocalPortMin, DefaultLocalPortMax
	}
	a := &PortAllocator{Min: min, Max: max, span: uint32(max-min) + 1}
	for i := range a.next {
		a.next[i].Store(rand.Uint32N(a.span))
	}
	return a
}

// PortPositions is where a PortAllocator's destination cursors stand:
// for each slot, the offset in [Min, Max] of the next block it hands out
// (every port before it, back to the previous wrap, was handed out). uvsd
// saves them when it stops and a successor with the same range continues
// from them (director/lportstate.go), so that it does not reuse at once
// the ports its predecessor used last, which the real servers may still
// hold in TIME_WAIT.
type PortPositions struct {
	Min, Max uint16
	Next     [portSlots]uint32 // each < Max−Min+1
}

// NumPortSlots is how many cursors a PortPositions holds.
const NumPortSlots = portSlots

// Positions returns the cursors' positions. It reads each slot once
// (atomically): a slot that moves meanwhile is saved where it stood.
func (a *PortAllocator) Positions() PortPositions {
	p := PortPositions{Min: a.Min, Max: a.Max}
	for i := range a.next {
		p.Next[i] = a.next[i].Load() % a.span
	}
	return p
}

// SetPositions moves the cursors to p, as they stood in an allocator over
// the same range. It refuses, changing nothing, positions of another range
// or out of it. Call it before the workers allocate: a worker keeps the
// block it took.
func (a *PortAllocator) SetPositions(p PortPositions) error {
	if p.Min != a.Min || p.Max != a.Max {
		return fmt.Errorf("local port positions of range %d-%d, the allocator's is %d-%d", p.Min, p.Max, a.Min, a.Max)
	}
	for i, off := range p.Next {
		if off >= a.span {
			return fmt.Errorf("local port position %d of slot %d is beyond range %d-%d", off, i, a.Min, a.Max)
		}
	}
	for i, off := range p.Next {
		a.next[i].Store(off)
	}
	return nil
}

// PortCursor is one worker's position in a PortAllocator and its
// round-robin position in services' local-address pools. Its zero value
// is ready; it must not be shared between goroutines.
type PortCursor struct {
	pos [portSlots]struct {
		off  uint32 // offset of the next port to try
		left uint32 // ports left in the current block
	}
	rr uint32 // next local address of a pool
	cn conntrack.Conn

	// Conflicts of this cursor's worker: failed allocations per local
	// address (DPVS's per-laddr "conflicts"), written by the worker only
	// and read by Conflicts. conflicts[:nconf] are published; addresses
	// beyond the array are not counted apart (CntFullNATNoPort still
	// counts them).
	reg       bool
	nconf     atomic.Int32
	conflicts [maxConflictAddrs]struct {
		addr [16]byte
		n    atomic.Uint64
	}
}

// maxConflictAddrs is how many local addresses a cursor counts conflicts
// for separately.
const maxConflictAddrs = 16

// portSlot hashes a destination to its cursor slot.
func portSlot(proto uint8, rs, lip *conntrack.Endpoint) uint32 {
	h := binary.LittleEndian.Uint64(rs.Addr[:8]) ^ binary.LittleEndian.Uint64(rs.Addr[8:])*0x9e3779b97f4a7c15
	h ^= (binary.LittleEndian.Uint64(lip.Addr[:8]) ^ binary.LittleEndian.Uint64(lip.Addr[8:])) * 0xc2b2ae3d27d4eb4f
	h ^= uint64(rs.Port)<<8 | uint64(proto)
	h *= 0x9e3779b97f4a7c15
	return uint32(h >> (64 - 8)) // portSlots = 1<<8
}

// Allocate returns a local port for a connection to rs from lip, or false
// when none was free within the bounded number of tries. now is on t's
// clock.
func (a *PortAllocator) Allocate(c *PortCursor, t *conntrack.Table, proto uint8, rs, lip conntrack.Endpoint, now int64) (uint16, bool) {
	s := portSlot(proto, &rs, &lip)
	pos := &c.pos[s]
	k := conntrack.Key{Src: rs.Addr, Dst: lip.Addr, SrcPort: rs.Port, Proto: proto}
	for range portTries {
		if pos.left == 0 {
			pos.off = a.next[s].Add(portBlock) - portBlock
			pos.left = portBlock
		}
		port := a.Min + uint16(pos.off%a.span)
		pos.off++
		pos.left--
		k.DstPort = port
		if a.free(c, t, &k, now) {
			return port, true
		}
	}
	return 0, false
}

// conflict counts a failed allocation from lip. It runs only when
// allocation failed, never on the path of a successful one.
func (a *PortAllocator) conflict(c *PortCursor, lip [16]byte) {
	if !c.reg {
		c.reg = true
		a.mu.Lock()
		a.cursors = append(a.cursors, c)
		a.mu.Unlock()
	}
	n := int(c.nconf.Load())
	for i := range n {
		if c.conflicts[i].addr == lip {
			c.conflicts[i].n.Add(1)
			return
		}
	}
	if n == maxConflictAddrs {
		return
	}
	c.conflicts[n].addr = lip
	c.conflicts[n].n.Add(1)
	c.nconf.Store(int32(n + 1))
}

// Conflicts returns how many FULLNAT allocations from local address lip
// found no free port (each is also counted as CntFullNATNoPort), summed
// over the workers: what -G shows in its CONFLICTS column.
func (a *PortAllocator) Conflicts(lip netip.Addr) uint64 {
	k := lip.As16() // IPv4 mapped, as the connection table keeps it
	a.mu.Lock()
	defer a.mu.Unlock()
	var sum uint64
	for _, c := range a.cursors {
		for i := range int(c.nconf.Load()) {
			if c.conflicts[i].addr == k {
				sum += c.conflicts[i].n.Load()
			}
		}
	}
	return sum
}

// free reports whether the reply tuple k is unused, taking it over from a
// finished TCP connection (see PortAllocator). A connection that timed out
// but is not reaped yet counts as free: Create removes it.
func (a *PortAllocator) free(c *PortCursor, t *conntrack.Table, k *conntrack.Key, now int64) bool {
	cn := &c.cn
	if !t.Lookup(*k, now, cn) {
		return true
	}
	if cn.Proto != conntrack.ProtoTCP || cn.Fwd != spec.FwdFullNAT || cn.Dir != conntrack.DirOut ||
		(cn.State != conntrack.StateTimeWait && cn.State != conntrack.StateClose) {
		return false
	}
	quiet := now - (cn.Expires - int64(cn.Timeout))
	if quiet < int64(TimeWaitReuseDelay) {
		return false
	}
	return t.ExpireNow(cn.Handle, now)
}

// fullnatLocal picks the local address (the service's pool round-robin,
// moving on to the next address when one has no free port, or the
// route's source address towards the real server) and a local port. The
// local address is always of the real server's family, which may differ
// from the client's (FULLNAT across families): the connection's reply
// tuple RIP:rport → LIP:lport is then one of that family, the table's
// 16-byte keys holding either.
func (w *Worker) fullnatLocal(nc *conntrack.NewConn, svc *snapshot.Service, d *sched.Dest) bool {
	a := w.env.Ports
	if a == nil {
		return false
	}
	c, now := &w.lports, w.pc.mono
	var lip conntrack.Endpoint
	if n := uint32(len(svc.LocalAddrs)); n > 0 {
		// Only the pool's addresses of the real server's family serve it
		// (DPVS: an IPv4 real server of an IPv6 service is reached from
		// the pool's IPv4 addresses, NAT64); none of them: no local
		// address, counted as CntFullNATNoPort.
		rs4 := is4Mapped(&nc.Real.Addr)
		for range n {
			la := svc.LocalAddrs[c.rr%n]
			c.rr++
			if la.Is4() != rs4 {
				continue
			}
			lip.Addr = la.As16()
			if port, ok := a.Allocate(c, w.env.Conns, nc.In.Proto, nc.Real, lip, now); ok {
				lip.Port = port
				nc.Local = lip
				return true
			}
			a.conflict(c, lip.Addr)
		}
		return false
	}
	hop, ok := w.env.Hops.Lookup(d.Addr())
	if !ok || !hop.Src.IsValid() {
		return false
	}
	lip.Addr = hop.Src.As16()
	port, ok := a.Allocate(c, w.env.Conns, nc.In.Proto, nc.Real, lip, now)
	if !ok {
		a.conflict(c, lip.Addr)
		return false
	}
	lip.Port = port
	nc.Local = lip
	return true
}
