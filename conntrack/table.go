package conntrack

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uvs-lb/uvs/spec"
)

// Errors returned by the table.
var (
	// ErrFull: the table holds Capacity entries.
	ErrFull = errors.New("connection table full")
	// ErrExists: a live entry already uses the inbound or outbound key.
	ErrExists = errors.New("connection exists")
	// ErrTooManyDests: the destination registry (Config.MaxDests) is full.
	ErrTooManyDests = errors.New("too many destinations")
)

// Dir is the direction a key matched.
type Dir uint8

// Directions.
const (
	DirIn  Dir = 0 // client → VIP (request)
	DirOut Dir = 1 // real server → client (reply)
)

// String returns "in" or "out".
func (d Dir) String() string {
	if d == DirOut {
		return "out"
	}
	return "in"
}

// Flags are connection flags; the values are the kernel's IP_VS_CONN_F_*.
type Flags uint16

// Connection flags.
const (
	FlagSync     Flags = 0x0020 // created or last refreshed from a sync message (ApplySync)
	FlagHashed   Flags = 0x0040 // live (in the table)
	FlagNoOutput Flags = 0x0080 // no reply seen yet on a non-NAT conn
	FlagInactive Flags = 0x0100 // counted in the destination's inactconns
	FlagSeqMask  Flags = 0x0600 // IN_SEQ | OUT_SEQ: sequence-number adjustment (from sync messages only)
	FlagNoCPort  Flags = 0x0800 // client port wildcard (from sync messages only)
	FlagTemplate Flags = 0x1000 // persistence template
	// flagUnhashed marks a neutralised template: live, but removed from
	// the index so it can no longer match (the kernel re-hashes it with
	// ports 0xffff instead).
	flagUnhashed Flags = 0x8000
	// flagReplied marks a connection that has seen a reply (DirOut)
	// packet: a UDP connection without it is half-open (pressure.go).
	flagReplied Flags = 0x4000
	// flagVLAN marks a connection whose client side is on an 802.1Q VLAN:
	// its VLAN id is in Table.vlans (conn.go).
	flagVLAN Flags = 0x0010
	// flagFastIn and flagFastOut mark a connection whose inbound or
	// reply packets the in-kernel fast path forwards (fast.go); the worker
	// reads them as Conn.Fast.
	flagFastIn  Flags = 0x0001
	flagFastOut Flags = 0x0002
	// flagsInternal are never shown outside the table.
	flagsInternal = flagUnhashed | flagReplied | flagVLAN | flagFastIn | flagFastOut
)

// Handle names one live entry; it goes stale when the entry is freed.
// The zero Handle names nothing.
type Handle uint64

func mkHandle(idx, gen uint32) Handle { return Handle(uint64(gen)<<32 | uint64(idx)) }
func (h Handle) idx() uint32          { return uint32(h) }
func (h Handle) gen() uint32          { return uint32(h >> 32) }

// Config sizes a table.
type Config struct {
	// Capacity is the maximum number of live entries (connections plus
	// templates). Required; at most 1<<30.
	Capacity int
	// Shards is the number of writer lock shards (creation, expiry and
	// templates take them; lookups do not), a power of two (default 256).
	Shards int
	// Seed is the hash seed; 0 picks a random one.
	Seed uint64
	// MaxDests bounds the number of distinct destinations referenced at
	// once (default 16384).
	MaxDests int
	// TCP, TCPFin and UDP override the ESTABLISHED, FIN_WAIT and UDP
	// timeouts as ipvsadm --set does (0 = kernel default).
	TCP, TCPFin, UDP time.Duration
	// SecureTCP selects the secure_tcp state table (tcp_states_dos).
	SecureTCP bool
	// ExpireQuiescentTemplate is sysctl expire_quiescent_template: a
	// template whose destination has weight 0 is invalid.
	ExpireQuiescentTemplate bool
}

// entry is one connection or template: 128 bytes, two cache lines, no
// pointers. The first line holds what every packet reads and writes: the
// lock, the state, the timer and the inbound key; the second the rest of
// the outbound key and what only the data plane's rewrite needs. See the
// package comment for which lock guards which field.
type entry struct {
	// lk is the entry lock and generation: gen<<1 | locked.
	lk uint32

	// Mutable; guarded by the entry lock.
	timeout  uint32 // milliseconds
	expires  int64
	nControl int32
	flags    Flags
	state    State

	// Immutable while live (written under the entry lock before the
	// entry is indexed).
	proto        uint8
	fwd          uint8
	tmpl         bool
	cport, vport uint16
	caddr, vaddr [16]byte
	dport        uint16

	// Second cache line.
	lport   uint16
	mac     [6]byte
	dest    uint32 // destination registry slot
	control uint32 // controlling template entry, 0 = none; next free entry while free (guarded by its free list, freelist.go)
	fwmark  uint32
	svc     uint32
	ifindex int32
	daddr   [16]byte
	laddr   [16]byte
	// inPkts counts inbound (DirIn) packets, the kernel's cp->in_pkts
	// (the sync daemon's packet rule); guarded by the entry lock.
	inPkts uint32
}

// gen reads the entry's generation (entry lock held, or as a hint).
func (e *entry) gen() uint32 { return atomic.LoadUint32(&e.lk) >> 1 }

// lock acquires the entry lock. It spins: holders never block and hold it
// for a few dozen instructions, so the only contention is two workers
// handling both directions of one connection at the same instant, or a
// reaper passing by.
func (e *entry) lock() {
	v := atomic.LoadUint32(&e.lk) &^ 1
	if !atomic.CompareAndSwapUint32(&e.lk, v, v|1) {
		e.lockSlow()
	}
}

func (e *entry) lockSlow() {
	for i := 0; ; i++ {
		v := atomic.LoadUint32(&e.lk)
		if v&1 == 0 && atomic.CompareAndSwapUint32(&e.lk, v, v|1) {
			return
		}
		if i >= 16 {
			runtime.Gosched()
		}
	}
}

// unlock releases the entry lock.
func (e *entry) unlock() { atomic.AddUint32(&e.lk, ^uint32(0)) }

// unlockNextGen releases the entry lock and advances the generation, making
// the entry's handles stale.
func (e *entry) unlockNextGen() { atomic.AddUint32(&e.lk, 1) }

// clear zeroes every field but the lock word (entry lock held).
func (e *entry) clear() {
	e.timeout, e.expires, e.nControl, e.flags, e.state = 0, 0, 0, 0, 0
	e.proto, e.fwd, e.tmpl, e.cport, e.vport = 0, 0, false, 0, 0
	e.caddr, e.vaddr, e.dport = [16]byte{}, [16]byte{}, 0
	e.lport, e.mac, e.dest, e.control, e.fwmark, e.svc, e.ifindex = 0, [6]byte{}, 0, 0, 0, 0, 0
	e.daddr, e.laddr, e.inPkts = [16]byte{}, [16]byte{}, 0
}

// shard is a writer lock: every operation that adds or removes a key holds
// the shard lock of the key's hash, so that the existence check and the
// change are atomic. Lookups take none.
type shard struct {
	mu sync.Mutex
	_  [56]byte // keep shards on separate cache lines
}

// Table is the connection table. Create it with New.
type Table struct {
	seed       uint64
	shardShift uint
	shards     []shard
	buckets    []bucket // the index (index.go)
	ents       []entry  // ents[0] unused
	vlans      []uint16 // per entry: the client's VLAN id when flagVLAN (conn.go)

	free freeLists // dead entries (freelist.go)

	live   atomic.Int64
	cursor atomic.Uint64

	tcpTO           [NumTCPStates]atomic.Int64 // ns
	udpTO           atomic.Int64
	secure          atomic.Bool
	expireQuiescent atomic.Bool

	dests destReg

	pr pressure // defence levels and pressure counters (pressure.go)
	// fastGone is called when an entry with a fast-path direction goes
	// (SetFastGone).
	fastGone atomic.Pointer[fastGone]
}

// New allocates a table.
func New(cfg Config) (*Table, error) {
	if cfg.Capacity <= 0 || cfg.Capacity > 1<<30 {
		return nil, fmt.Errorf("conntrack: capacity %d out of range 1..%d", cfg.Capacity, 1<<30)
	}
	if cfg.Shards == 0 {
		cfg.Shards = 256
	}
	if cfg.Shards < 0 || cfg.Shards > 1<<16 || cfg.Shards&(cfg.Shards-1) != 0 {
		return nil, fmt.Errorf("conntrack: shard count %d is not a power of two in 1..65536", cfg.Shards)
	}
	if cfg.MaxDests == 0 {
		cfg.MaxDests = 16384
	}
	if cfg.MaxDests < 0 || cfg.MaxDests > 1<<24 {
		return nil, fmt.Errorf("conntrack: max dests %d out of range", cfg.MaxDests)
	}
	for _, d := range []time.Duration{cfg.TCP, cfg.TCPFin, cfg.UDP} {
		if d < 0 || d > spec.MaxTimeout*time.Second {
			return nil, fmt.Errorf("conntrack: timeout %v out of range", d)
		}
	}
	t := &Table{seed: cfg.Seed}
	if t.seed == 0 {
		t.seed = rand.Uint64() | 1
	}
	t.shardShift = uint(64 - bits.TrailingZeros(uint(cfg.Shards)))
	t.shards = make([]shard, cfg.Shards)
	t.buckets = make([]bucket, numBuckets(cfg.Capacity))
	t.ents = make([]entry, cfg.Capacity+1)
	t.vlans = make([]uint16, cfg.Capacity+1)
	t.free.init(len(t.ents))
	t.dests.init(cfg.MaxDests)
	for s, d := range defaultTCPTimeouts {
		t.tcpTO[s].Store(int64(d))
	}
	t.udpTO.Store(int64(DefaultUDPTimeout))
	t.SetTimeouts(cfg.TCP, cfg.TCPFin, cfg.UDP)
	t.pr.lastCheck.Store(math.MinInt64)
	t.SetSecureTCP(cfg.SecureTCP)
	t.expireQuiescent.Store(cfg.ExpireQuiescentTemplate)
	return t, nil
}

// Capacity returns the maximum number of live entries.
func (t *Table) Capacity() int { return len(t.ents) - 1 }

// Len returns the number of live entries (connections and templates).
func (t *Table) Len() int { return int(t.live.Load()) }

// SetTimeouts sets the TCP ESTABLISHED, TCP FIN_WAIT and UDP timeouts
// (ipvsadm --set); 0 leaves a value unchanged. Live connections pick the
// new values up at their next packet.
func (t *Table) SetTimeouts(tcp, tcpfin, udp time.Duration) {
	if tcp > 0 {
		t.tcpTO[StateEstablished].Store(int64(tcp))
	}
	if tcpfin > 0 {
		t.tcpTO[StateFinWait].Store(int64(tcpfin))
	}
	if udp > 0 {
		t.udpTO.Store(int64(udp))
	}
}

// Timeouts returns the values ipvsadm -L --timeout shows.
func (t *Table) Timeouts() (tcp, tcpfin, udp time.Duration) {
	return time.Duration(t.tcpTO[StateEstablished].Load()),
		time.Duration(t.tcpTO[StateFinWait].Load()),
		time.Duration(t.udpTO.Load())
}

// SetExpireQuiescentTemplate sets sysctl expire_quiescent_template.
func (t *Table) SetExpireQuiescentTemplate(on bool) { t.expireQuiescent.Store(on) }

// --- hashing and keys -----------------------------------------------------

func (t *Table) shardIdx(h uint64) uint64 { return h >> t.shardShift & (uint64(len(t.shards)) - 1) }

// inKey and outKey rebuild an entry's two keys.
func (e *entry) inKey() Key {
	return Key{Src: e.caddr, Dst: e.vaddr, SrcPort: e.cport, DstPort: e.vport, Proto: e.proto}
}

func (e *entry) outKey() Key {
	if spec.Fwd(e.fwd) == spec.FwdFullNAT {
		return Key{Src: e.daddr, Dst: e.laddr, SrcPort: e.dport, DstPort: e.lport, Proto: e.proto}
	}
	return Key{Src: e.daddr, Dst: e.caddr, SrcPort: e.dport, DstPort: e.cport, Proto: e.proto}
}

// match compares k with the entry's key for direction dir.
func (e *entry) match(dir uint32, k *Key, tmpl bool) bool {
	if e.proto != k.Proto || e.tmpl != tmpl {
		return false
	}
	if dir == 0 {
		return e.cport == k.SrcPort && e.vport == k.DstPort && e.caddr == k.Src && e.vaddr == k.Dst
	}
	if e.dport != k.SrcPort || e.daddr != k.Src {
		return false
	}
	if spec.Fwd(e.fwd) == spec.FwdFullNAT {
		return e.lport == k.DstPort && e.laddr == k.Dst
	}
	return e.cport == k.DstPort && e.caddr == k.Dst
}

// find returns the link (idx<<1|dir) of the live entry matching k, or 0.
// Callers that act on the answer hold the shard lock of h.
func (t *Table) find(h uint64, k *Key, tmpl bool) uint32 {
	l, e := t.probe(h, k, tmpl)
	if e != nil {
		e.unlock()
	}
	return l
}

// lock2 locks the shards of two hashes in ascending order.
func (t *Table) lock2(h1, h2 uint64) (a, b *shard) {
	i, j := t.shardIdx(h1), t.shardIdx(h2)
	if i > j {
		i, j = j, i
	}
	a = &t.shards[i]
	a.mu.Lock()
	if j != i {
		b = &t.shards[j]
		b.mu.Lock()
	}
	return a, b
}

func unlock2(a, b *shard) {
	if b != nil {
		b.mu.Unlock()
	}
	a.mu.Unlock()
}
