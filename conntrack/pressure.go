package conntrack

import (
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"
)

// ErrDropped: the drop_packet defence refused the new connection (see
// Defense). Callers count it apart from ErrFull.
var ErrDropped = errors.New("connection dropped by the drop_packet defence")

// Defence levels of Defense.DropEntry, DropPacket and SecureTCP, the
// kernel's values of the sysctls of the same names.
const (
	DefenseOff      = 0 // never
	DefenseAuto     = 1 // automatic, currently inactive
	DefenseAutoOn   = 2 // automatic, currently active
	DefenseAlways   = 3 // always
	defenseMaxLevel = DefenseAlways
)

// Defense is the kernel's table-pressure defence (ip_vs_ctl.c,
// update_defense_level), with one change: the kernel's trigger is the
// system's free memory (free pages below amemthresh), uvs's is the
// table's free entries (Capacity − Len below AmemThresh), because the
// table is preallocated: uvs never runs out of memory for connections,
// only out of entries.
//
// Each of DropEntry, DropPacket and SecureTCP is 0 (off), 1 (automatic,
// inactive now), 2 (automatic, active now) or 3 (always). The table
// re-evaluates the automatic ones once a second, from Reap, and Defense
// reports the current level (1 or 2) as the kernel's sysctl does.
//
//   - drop_entry: Reap also removes half-open connections (TCP NONE,
//     SYN_SENT, SYN_RECV or SYNACK; other protocols with no reply seen)
//     idle for DropEntryIdle or more. The kernel drops SYN_RECV and SYNACK
//     connections of a random 1/32 of the table a second, and a share of
//     ESTABLISHED and UDP connections with few packets; uvs drops only the
//     half-open, all of those idle long enough, as the reaper passes them.
//   - drop_packet: Create refuses one new connection in rate (ErrDropped),
//     rate = AmemThresh / (AmemThresh − free) in automatic mode,
//     AmDropRate when always (the kernel's ip_vs_todrop).
//   - secure_tcp: the secure_tcp state table (see SetSecureTCP).
type Defense struct {
	DropEntry, DropPacket, SecureTCP int
	// AmemThresh is the number of free entries below which the automatic
	// levels switch on (0: Capacity/4, i.e. at 75 % occupancy).
	AmemThresh int
	// AmDropRate is drop_packet's rate when always on: one new
	// connection in AmDropRate is dropped (0: the kernel's 10).
	AmDropRate int
}

// DropEntryIdle is how long a half-open connection must have been idle
// for the drop_entry defence to remove it: a legitimate handshake
// completes in one round trip, and a client whose SYN went unanswered
// sends it again after 1 s, which then creates a connection afresh.
const DropEntryIdle = 2 * time.Second

// defenseCheckEvery is how often Reap re-evaluates the automatic levels
// (the kernel's defense_work runs every second).
const defenseCheckEvery = int64(time.Second)

// Reclaim bounds: Create, finding no free entry, examines at least
// reclaimMinScan and at most reclaimMaxScan entries from the clock hand
// for one to free.
const (
	reclaimMinScan = 8
	reclaimMaxScan = 32
	reclaimTries   = 4
)

// Stats counts what the table did under pressure, per reason. All are
// totals since New.
type Stats struct {
	// Reclaimed: timed-out entries freed by Create finding the table
	// full (before the reaper reached them).
	Reclaimed uint64
	// Evicted: half-open TCP connections, or else datagram flows,
	// removed by Create to make room for a new one, the oldest of those
	// it examined.
	Evicted uint64
	// Full: Create refused with ErrFull: no free entry and none it
	// examined timed out or half-open.
	Full uint64
	// DropEntry: half-open connections removed by the drop_entry defence.
	DropEntry uint64
	// DropPacket: new connections refused by the drop_packet defence.
	DropPacket uint64
}

// String formats the counters for a log line.
func (s Stats) String() string {
	return fmt.Sprintf("reclaimed %d, evicted %d, full %d, drop_entry %d, drop_packet %d",
		s.Reclaimed, s.Evicted, s.Full, s.DropEntry, s.DropPacket)
}

// pressure is the table's defence state and counters. Nothing here is
// written per packet: the levels change once a second at most, the
// counters only on the paths they count (a full table, a defence acting),
// and the drop_packet countdown only while drop_packet is active.
type pressure struct {
	dropEntry, dropPacket, secure atomic.Int32 // levels 0..3
	amemThresh, amDropRate        atomic.Int64 // 0 = default
	dropEntryOn                   atomic.Bool
	dropRate, dropCounter         atomic.Int64
	lastCheck                     atomic.Int64 // clock reading of the last evaluation, math.MinInt64 = never
	hand                          atomic.Uint64

	reclaimed, evicted, full, droppedEntry, droppedPacket atomic.Uint64
}

// SetDefense sets the defence levels and thresholds (the sysctls
// drop_entry, drop_packet, secure_tcp, amemthresh, am_droprate) and
// evaluates the automatic levels at once. Levels outside 0..3 and
// negative thresholds are refused and change nothing.
func (t *Table) SetDefense(d Defense) error {
	for _, l := range []struct {
		name string
		v    int
	}{{"drop_entry", d.DropEntry}, {"drop_packet", d.DropPacket}, {"secure_tcp", d.SecureTCP}} {
		if l.v < 0 || l.v > defenseMaxLevel {
			return fmt.Errorf("conntrack: %s level %d out of range 0..3", l.name, l.v)
		}
	}
	if d.AmemThresh < 0 || d.AmemThresh > t.Capacity() {
		return fmt.Errorf("conntrack: amemthresh %d out of range 0..%d (the table's capacity)", d.AmemThresh, t.Capacity())
	}
	if d.AmDropRate < 0 {
		return fmt.Errorf("conntrack: am_droprate %d is negative", d.AmDropRate)
	}
	p := &t.pr
	p.amemThresh.Store(int64(d.AmemThresh))
	p.amDropRate.Store(int64(d.AmDropRate))
	p.dropEntry.Store(int32(d.DropEntry))
	p.dropPacket.Store(int32(d.DropPacket))
	p.secure.Store(int32(d.SecureTCP))
	t.updateDefense()
	return nil
}

// Defense returns the defence settings with the current levels (an
// automatic level reads 2 while active).
func (t *Table) Defense() Defense {
	p := &t.pr
	return Defense{
		DropEntry: int(p.dropEntry.Load()), DropPacket: int(p.dropPacket.Load()), SecureTCP: int(p.secure.Load()),
		AmemThresh: int(p.amemThresh.Load()), AmDropRate: int(p.amDropRate.Load()),
	}
}

// Stats returns the pressure counters.
func (t *Table) Stats() Stats {
	p := &t.pr
	return Stats{
		Reclaimed: p.reclaimed.Load(), Evicted: p.evicted.Load(), Full: p.full.Load(),
		DropEntry: p.droppedEntry.Load(), DropPacket: p.droppedPacket.Load(),
	}
}

// SetSecureTCP switches the secure_tcp state table (tcp_states_dos) on or
// off for good: level 3 or 0 of Defense.SecureTCP.
func (t *Table) SetSecureTCP(on bool) {
	lvl := int32(DefenseOff)
	if on {
		lvl = DefenseAlways
	}
	t.pr.secure.Store(lvl)
	t.secure.Store(on)
}

// maybeUpdateDefense evaluates the automatic levels if a second has passed
// since the last evaluation (one goroutine wins the race).
func (t *Table) maybeUpdateDefense(now int64) {
	last := t.pr.lastCheck.Load()
	if last != math.MinInt64 && now-last < defenseCheckEvery && now >= last {
		return
	}
	if t.pr.lastCheck.CompareAndSwap(last, now) {
		t.updateDefense()
	}
}

// autoLevel moves an automatic level to 2 under pressure and back to 1
// without, and reports whether the defence is active.
func autoLevel(l *atomic.Int32, low bool) bool {
	switch l.Load() {
	case DefenseAuto, DefenseAutoOn:
		if low {
			l.Store(DefenseAutoOn)
		} else {
			l.Store(DefenseAuto)
		}
		return low
	case DefenseAlways:
		return true
	}
	return false
}

// updateDefense is update_defense_level with free entries for free
// memory.
func (t *Table) updateDefense() {
	p := &t.pr
	thresh := p.amemThresh.Load()
	if thresh == 0 {
		thresh = int64(t.Capacity() / 4)
	}
	free := int64(t.Capacity() - t.Len())
	low := free < thresh

	p.dropEntryOn.Store(autoLevel(&p.dropEntry, low))

	rate := int64(0)
	switch lvl := p.dropPacket.Load(); {
	case lvl == DefenseAlways:
		rate = p.amDropRate.Load()
		if rate == 0 {
			rate = 10
		}
	case autoLevel(&p.dropPacket, low):
		rate = thresh / (thresh - max(free, 0))
	}
	if rate != p.dropRate.Load() {
		p.dropRate.Store(rate)
		p.dropCounter.Store(rate)
	}

	// Level 0 leaves the state table as set by Config.SecureTCP or
	// SetSecureTCP's off; every other level decides it.
	if lvl := p.secure.Load(); lvl != DefenseOff {
		t.secure.Store(autoLevel(&p.secure, low))
	} else {
		t.secure.Store(false)
	}
}

// todrop is ip_vs_todrop: while drop_packet is active, every rate-th new
// connection is dropped.
func (t *Table) todrop() bool {
	p := &t.pr
	rate := p.dropRate.Load()
	if rate == 0 {
		return false
	}
	if p.dropCounter.Add(-1) > 0 {
		return false
	}
	p.dropCounter.Store(rate)
	return true
}

// halfOpen reports whether a live entry is a connection nothing has
// confirmed (entry lock held): TCP before ESTABLISHED (NONE, SYN_SENT,
// SYN_RECV, SYNACK), or another protocol that has seen no reply. These
// are what a spoofed flood creates, and what a legitimate client replaces
// within a round trip.
func halfOpen(e *entry) bool {
	if e.tmpl || e.nControl > 0 {
		return false
	}
	if e.proto == ProtoTCP {
		switch e.state {
		case StateNone, StateSynSent, StateSynRecv, StateSynAck:
			return true
		}
		return false
	}
	if e.proto == ProtoSCTP {
		return sctpHalfOpen(e.state) // sctp.go
	}
	return e.flags&flagReplied == 0
}

// Eviction classes (evictClass).
const (
	evictNever    = 0
	evictHalfOpen = 1 // a TCP connection before ESTABLISHED
	evictDatagram = 2 // a UDP (or other non-TCP) flow
)

// evictClass says whether Create may evict a live entry (entry lock
// held): a half-open TCP connection, or a datagram flow whether it has
// seen a reply or not (a UDP server answers spoofed requests too, DNS
// does, so a flood's flows are replied as a legitimate client's are; a
// datagram flow has no handshake to break, its next packet is scheduled
// afresh, and persistence lives in templates, never evicted).
// ESTABLISHED and closing TCP connections and templates are never
// evicted. The victim among the evictable is the one idle the longest,
// whatever its class: preferring half-open TCP connections to older UDP
// flows would evict a client's handshake within Capacity/8 new flows
// under a UDP flood (measured: half the control requests of the bench's
// UDP flood failed), where oldest-first gives it about Capacity.
func evictClass(e *entry) int {
	switch {
	case e.tmpl || e.nControl > 0:
		return evictNever
	case e.proto != ProtoTCP && e.proto != ProtoSCTP:
		return evictDatagram
	case halfOpen(e):
		return evictHalfOpen
	}
	return evictNever
}

// lastSeen returns the clock reading of the entry's last packet (entry
// lock held): its timer was armed then for timeout.
func lastSeen(e *entry) int64 { return e.expires - int64(e.timeout)*int64(time.Millisecond) }

// reclaim frees one entry for Create, which found none free. It examines
// the reclaimMinScan entries after a clock hand shared by all callers
// (and further, up to reclaimMaxScan, only until it finds a candidate):
// the first timed-out entry it meets is freed at once (the reaper would
// have freed it later); otherwise it evicts, among those examined, the
// half-open TCP connection or datagram flow (evictClass) whose last
// packet is the oldest. Established connections and templates are never
// evicted.
//
// The hand moves by reclaimMinScan a call, and the new connection takes
// the slot just freed, behind the hand: it is examined again only after a
// revolution, Capacity/reclaimMinScan new connections later, and evicted
// only once it is the oldest of its window, after about Capacity new
// connections under a flood. That is the time a handshake has to complete.
//
// It reports what it freed, if anything; the caller then allocates again
// (another creator may take the entry first, or evict the same victim,
// hence the caller's bounded retries).
//
// It takes the locks expire takes, one entry lock at a time while
// examining, with no other lock held.
func (t *Table) reclaim(now int64) reclaimed {
	p := &t.pr
	hw := uint64(t.highWater() - 1)
	if hw == 0 {
		return reclaimNone
	}
	start := p.hand.Add(reclaimMinScan) - reclaimMinScan
	var victim, vgen uint32
	vseen := int64(math.MaxInt64)
	for i := range uint64(reclaimMaxScan) {
		if victim != 0 && i >= reclaimMinScan {
			break
		}
		idx := uint32((start+i)%hw) + 1
		e := &t.ents[idx]
		e.lock()
		if e.flags&FlagHashed == 0 {
			e.unlock()
			continue
		}
		gen := e.gen()
		if timedOut(e, now) && e.nControl == 0 {
			e.unlock()
			if t.expire(idx, now, expireReq{checkGen: true, gen: gen}) {
				p.reclaimed.Add(1)
				return reclaimExpired
			}
			continue
		}
		if evictClass(e) != evictNever {
			if s := lastSeen(e); s < vseen {
				victim, vgen, vseen = idx, gen, s
			}
		}
		e.unlock()
	}
	if victim != 0 && t.expire(victim, now, expireReq{force: true, checkGen: true, gen: vgen, evictable: true}) {
		p.evicted.Add(1)
		return reclaimEvicted
	}
	return reclaimNone
}

// reclaimed is what reclaim freed.
type reclaimed uint8

const (
	reclaimNone    reclaimed = iota
	reclaimExpired           // a timed-out entry
	reclaimEvicted           // a live one (evictClass)
)
