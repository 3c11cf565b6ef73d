package conntrack

import (
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
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
	FlagHashed   Flags = 0x0040 // live (in the table)
	FlagNoOutput Flags = 0x0080 // no reply seen yet on a non-NAT conn
	FlagInactive Flags = 0x0100 // counted in the destination's inactconns
	FlagTemplate Flags = 0x1000 // persistence template
	// flagUnhashed marks a neutralised template: live, but removed from
	// its chain so it can no longer match (the kernel re-hashes it with
	// ports 0xffff instead).
	flagUnhashed Flags = 0x8000
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
	// Shards is the number of lock shards, a power of two (default 256).
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

// entry is one connection or template. It holds no pointers. See the
// package comment for which lock guards which field.
type entry struct {
	// Immutable while live.
	caddr, vaddr, daddr, laddr [16]byte
	cport, vport, dport, lport uint16
	dest                       uint32 // destination registry slot
	control                    uint32 // controlling template entry, 0 = none
	fwmark                     uint32
	svc                        uint32
	ifindex                    int32
	mac                        [6]byte
	proto                      uint8
	fwd                        uint8
	tmpl                       bool

	// Chain links, encoded idx<<1|dir; guarded by the chain's shard lock
	// (next[0] doubles as the free-list link, guarded by freeMu).
	next [2]uint32

	// Mutable; guarded by the entry's stripe lock.
	state    State
	flags    Flags
	gen      uint32
	timeout  uint32 // milliseconds
	nControl int32
	expires  int64
}

type shard struct {
	mu    sync.Mutex
	heads []uint32
	_     [32]byte // keep shards on separate cache lines
}

type stripe struct {
	mu sync.Mutex
	_  [56]byte
}

const numStripes = 1024

// Table is the connection table. Create it with New.
type Table struct {
	seed       uint64
	shardShift uint
	bucketMask uint64
	shards     []shard
	stripes    []stripe
	ents       []entry // ents[0] unused

	freeMu   sync.Mutex
	freeHead uint32 // recycled entries, linked through next[0]
	fresh    uint32 // next never-used entry

	live   atomic.Int64
	cursor atomic.Uint64

	tcpTO           [NumTCPStates]atomic.Int64 // ns
	udpTO           atomic.Int64
	secure          atomic.Bool
	expireQuiescent atomic.Bool

	dests destReg
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
	total := 1 << bits.Len(uint(2*cfg.Capacity-1)) // 2×capacity rounded up
	if total < cfg.Shards {
		total = cfg.Shards
	}
	per := total / cfg.Shards
	t.shardShift = uint(64 - bits.TrailingZeros(uint(cfg.Shards)))
	t.bucketMask = uint64(per - 1)
	t.shards = make([]shard, cfg.Shards)
	heads := make([]uint32, total)
	for i := range t.shards {
		t.shards[i].heads = heads[i*per : (i+1)*per : (i+1)*per]
	}
	t.stripes = make([]stripe, numStripes)
	t.ents = make([]entry, cfg.Capacity+1)
	t.fresh = 1
	t.dests.init(cfg.MaxDests)
	for s, d := range defaultTCPTimeouts {
		t.tcpTO[s].Store(int64(d))
	}
	t.udpTO.Store(int64(DefaultUDPTimeout))
	t.SetTimeouts(cfg.TCP, cfg.TCPFin, cfg.UDP)
	t.secure.Store(cfg.SecureTCP)
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

// SetSecureTCP switches between the normal and the secure_tcp state table.
func (t *Table) SetSecureTCP(on bool) { t.secure.Store(on) }

// SetExpireQuiescentTemplate sets sysctl expire_quiescent_template.
func (t *Table) SetExpireQuiescentTemplate(on bool) { t.expireQuiescent.Store(on) }

// --- hashing and chains ---------------------------------------------------

func (t *Table) shardOf(h uint64) *shard  { return &t.shards[h>>t.shardShift&(uint64(len(t.shards))-1)] }
func (t *Table) shardIdx(h uint64) uint64 { return h >> t.shardShift & (uint64(len(t.shards)) - 1) }

func (t *Table) stripeOf(idx uint32) *sync.Mutex { return &t.stripes[idx&(numStripes-1)].mu }

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

// find walks the chain of hash h in shard s (locked) and returns the
// encoded link (idx<<1|dir) of the matching entry, or 0.
func (t *Table) find(s *shard, h uint64, k *Key, tmpl bool) uint32 {
	for l := s.heads[h&t.bucketMask]; l != 0; {
		e := &t.ents[l>>1]
		if e.match(l&1, k, tmpl) {
			return l
		}
		l = e.next[l&1]
	}
	return 0
}

// link pushes entry idx onto the chain of hash h for direction dir.
func (t *Table) link(s *shard, h uint64, idx, dir uint32) {
	b := &s.heads[h&t.bucketMask]
	t.ents[idx].next[dir] = *b
	*b = idx<<1 | dir
}

// unlink removes entry idx's dir link from the chain of hash h.
func (t *Table) unlink(s *shard, h uint64, idx, dir uint32) {
	want := idx<<1 | dir
	p := &s.heads[h&t.bucketMask]
	for *p != 0 {
		if *p == want {
			*p = t.ents[idx].next[dir]
			t.ents[idx].next[dir] = 0
			return
		}
		p = &t.ents[*p>>1].next[*p&1]
	}
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

// --- allocation -----------------------------------------------------------

func (t *Table) allocEntry() uint32 {
	t.freeMu.Lock()
	idx := t.freeHead
	if idx != 0 {
		t.freeHead = t.ents[idx].next[0]
		t.ents[idx].next[0] = 0
	} else if int(t.fresh) < len(t.ents) {
		idx = t.fresh
		t.fresh++
	}
	t.freeMu.Unlock()
	return idx
}

func (t *Table) freeEntry(idx uint32) {
	t.freeMu.Lock()
	t.ents[idx].next[0] = t.freeHead
	t.freeHead = idx
	t.freeMu.Unlock()
}

// highWater returns one past the highest entry index ever used.
func (t *Table) highWater() uint32 {
	t.freeMu.Lock()
	n := t.fresh
	t.freeMu.Unlock()
	return n
}
