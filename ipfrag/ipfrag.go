package ipfrag

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/uvs-lb/uvs/header"
)

// Defaults, the kernel's sysctl defaults.
const (
	DefaultMemory   = 4 << 20          // net.ipv4.ipfrag_high_thresh
	DefaultTimeout4 = 30 * time.Second // net.ipv4.ipfrag_time
	DefaultTimeout6 = 60 * time.Second // net.ipv6.ip6frag_time
)

// Sizes.
const (
	// BlockSize is the unit in which datagram data is stored.
	BlockSize = 1024
	// MaxPayload is the largest reassembled payload: the data after the
	// IP header (IPv6: after the unfragmentable part).
	MaxPayload = 65535
	// MaxHeader bounds the bytes kept from the first fragment: whatever
	// precedes the IP header (the link header), the IPv4 header with its
	// options or the IPv6 unfragmentable part.
	MaxHeader = 192
	// MinMemory is the smallest Config.Memory.
	MinMemory = 256 << 10
	// MaxMemory is the largest Config.Memory.
	MaxMemory = 64 << 20

	maxBlocks = (MaxPayload + BlockSize - 1) / BlockSize
	// maxRanges bounds the disjoint ranges (holes+1) a queue tracks.
	maxRanges = 32
	// queueBytes is what a queue is charged (at least its size:
	// TestQueueSize).
	queueBytes = 576
)

// Config sets a Reassembler's limits. The zero value of a field selects
// its default.
type Config struct {
	// Memory is the bytes of the block arena and queue table together
	// (ipfrag_high_thresh): 3/4 for data blocks, 1/4 for queues.
	Memory int
	// LowThresh is what eviction frees down to, in bytes of the same
	// budget (ipfrag_low_thresh; default 3/4 of Memory).
	LowThresh int
	// Timeout4 and Timeout6 are how long an incomplete IPv4 or IPv6
	// datagram is kept (ipfrag_time, ip6frag_time).
	Timeout4, Timeout6 time.Duration
}

// Result says what Add did with a fragment.
type Result uint8

// Add's results.
const (
	Queued      Result = iota // kept: the datagram is not complete yet
	Complete                  // the datagram is complete, written to dst
	Duplicate                 // dropped: its data was all received already (counted Bad)
	Bad                       // dropped: inconsistent, overlapping or oversized (with its datagram if that is spoilt)
	Overflow                  // dropped: no memory, or dst too small for the datagram
	NotFragment               // not a fragment: nothing done
)

var resultNames = [...]string{"queued", "complete", "duplicate", "bad", "overflow", "not-fragment"}

// String returns a short lower-case name.
func (r Result) String() string {
	if int(r) < len(resultNames) {
		return resultNames[r]
	}
	return "result?"
}

// Drops counts fragments dropped, by cause: the fragment Add was given and
// those of datagrams dropped with or because of it.
type Drops struct {
	Timeout  uint64 // datagram not complete in time
	Overflow uint64 // memory or queue limit; dst too small
	Bad      uint64 // overlapping, duplicate, oversized or inconsistent
}

// Datagram describes a reassembled datagram written to dst.
type Datagram struct {
	// Len is its length in dst: the first fragment's link header, the IP
	// header and the whole payload.
	Len int
	// FragMax is the IP length of its largest fragment (frag_max_size).
	FragMax int
}

type key struct {
	src, dst [16]byte
	id       uint32
	proto    uint8
	v6       bool
}

type span struct{ start, end uint16 }

const (
	flagFirst = 1 << iota // the offset-0 fragment arrived: hdr is set
	flagLast              // the last fragment arrived: length is final
)

// ECN codepoints seen, as the kernel's IPFRAG_ECN_* bits.
const (
	ecnNotECT = 1 << iota
	ecnECT1
	ecnECT0
	ecnCE
)

type queue struct {
	k       key
	hash    uint64
	created int64
	// prev and next link the queue into its family's age list (-1: end).
	prev, next int32
	live       bool
	flags      uint8
	ecn        uint8
	nr         uint8
	nfrag      uint16
	length     int32 // end of the payload: final once flagLast is set
	fragMax    uint16
	maxDF      uint16 // largest fragment with DF (IPv4)
	hdrLen     uint16
	l3Off      uint16
	nhOff      uint16 // IPv6: offset in hdr of the next-header byte to patch
	nextHdr    uint8  // IPv6: the fragment header's next header
	nblk       uint8
	r          [maxRanges]span
	blk        [maxBlocks]uint16 // block index + 1; 0: none
	hdr        [MaxHeader]byte
}

// ageList is a family's queues, oldest first.
type ageList struct {
	head, tail int32
	timeout    int64
}

// Reassembler reassembles the fragments of one worker. It is not safe for
// concurrent use.
type Reassembler struct {
	cfg    Config
	queues []queue
	freeQ  []int32
	blocks []byte
	freeB  []uint16
	slots  []int32 // hash table of queue indices (-1: empty)
	mask   uint64
	seed   uint64
	age    [2]ageList // IPv4, IPv6
	lowQ   int
	lowB   int
	drops  Drops
	reasm  uint64
}

// New returns a Reassembler with all its memory allocated.
func New(cfg Config) (*Reassembler, error) {
	if cfg.Memory == 0 {
		cfg.Memory = DefaultMemory
	}
	if cfg.Memory < MinMemory || cfg.Memory > MaxMemory {
		return nil, fmt.Errorf("ipfrag: memory %d bytes: want %d to %d", cfg.Memory, MinMemory, MaxMemory)
	}
	if cfg.LowThresh == 0 {
		cfg.LowThresh = cfg.Memory / 4 * 3
	}
	if cfg.LowThresh < 0 || cfg.LowThresh >= cfg.Memory {
		return nil, fmt.Errorf("ipfrag: low threshold %d bytes: want 1 to %d", cfg.LowThresh, cfg.Memory-1)
	}
	if cfg.Timeout4 == 0 {
		cfg.Timeout4 = DefaultTimeout4
	}
	if cfg.Timeout6 == 0 {
		cfg.Timeout6 = DefaultTimeout6
	}
	if cfg.Timeout4 < 0 || cfg.Timeout6 < 0 {
		return nil, errors.New("ipfrag: negative timeout")
	}
	nb := cfg.Memory / 4 * 3 / BlockSize
	nq := cfg.Memory / 4 / queueBytes
	r := &Reassembler{
		cfg:    cfg,
		queues: make([]queue, nq),
		freeQ:  make([]int32, nq),
		blocks: make([]byte, nb*BlockSize),
		freeB:  make([]uint16, nb),
		seed:   rand.Uint64(),
		lowQ:   int(int64(nq) * int64(cfg.LowThresh) / int64(cfg.Memory)),
		lowB:   int(int64(nb) * int64(cfg.LowThresh) / int64(cfg.Memory)),
	}
	for i := range r.freeQ {
		r.freeQ[i] = int32(nq - 1 - i)
	}
	for i := range r.freeB {
		r.freeB[i] = uint16(nb - 1 - i)
	}
	ns := 1
	for ns < 2*nq {
		ns <<= 1
	}
	r.slots = make([]int32, ns)
	for i := range r.slots {
		r.slots[i] = -1
	}
	r.mask = uint64(ns - 1)
	r.age[0] = ageList{head: -1, tail: -1, timeout: int64(cfg.Timeout4)}
	r.age[1] = ageList{head: -1, tail: -1, timeout: int64(cfg.Timeout6)}
	return r, nil
}

// Reset drops every datagram being reassembled and zeroes the counters,
// keeping the memory: r is then as New leaves it, but for a new hash seed
// and the bytes of its data blocks (Add writes a block before anything
// reads it). It does not allocate.
func (r *Reassembler) Reset() {
	clear(r.queues)
	r.freeQ = r.freeQ[:cap(r.freeQ)]
	for i := range r.freeQ {
		r.freeQ[i] = int32(len(r.freeQ) - 1 - i)
	}
	r.freeB = r.freeB[:cap(r.freeB)]
	for i := range r.freeB {
		r.freeB[i] = uint16(len(r.freeB) - 1 - i)
	}
	for i := range r.slots {
		r.slots[i] = -1
	}
	r.seed = rand.Uint64()
	r.age[0] = ageList{head: -1, tail: -1, timeout: int64(r.cfg.Timeout4)}
	r.age[1] = ageList{head: -1, tail: -1, timeout: int64(r.cfg.Timeout6)}
	r.drops, r.reasm = Drops{}, 0
}

// Config returns the configuration in effect (defaults filled in).
func (r *Reassembler) Config() Config { return r.cfg }

// Usage reports the datagrams being reassembled and the bytes of data
// blocks they hold.
func (r *Reassembler) Usage() (queues, blockBytes int) {
	return len(r.queues) - len(r.freeQ), (cap(r.freeB) - len(r.freeB)) * BlockSize
}

// Capacity reports how many datagrams can be reassembled at once and the
// bytes of data they can hold.
func (r *Reassembler) Capacity() (queues, blockBytes int) {
	return len(r.queues), len(r.blocks)
}

// Reassembled returns how many datagrams Add completed.
func (r *Reassembler) Reassembled() uint64 { return r.reasm }

// TakeDrops returns the fragments dropped since the last call.
func (r *Reassembler) TakeDrops() Drops {
	d := r.drops
	r.drops = Drops{}
	return d
}

// Expire drops the datagrams whose time is up at now (nanoseconds on the
// clock Add is given).
func (r *Reassembler) Expire(now int64) {
	for f := range r.age {
		l := &r.age[f]
		for l.head >= 0 {
			q := &r.queues[l.head]
			if now-q.created < l.timeout {
				break
			}
			r.drops.Timeout += uint64(q.nfrag)
			r.kill(l.head)
		}
	}
}

// frag is what Add reads from a fragment.
type frag struct {
	v6        bool
	l3        int
	hdrEnd    int // end of the header kept from a first fragment (IPv6: the fragment header's offset)
	dataOff   int // start of the fragment's data
	dataEnd   int
	offset    int
	mf        bool
	df        bool
	nhOff     int // IPv6: the next-header byte pointing at the fragment header
	nextHdr   uint8
	ecn       uint8
	ipLen     int
	k         key
	truncated bool // IPv6 first fragment without its upper-layer header
	nested    bool // IPv6 fragment header followed by another one
}

// parse fills fr from frame and p; false if frame is not an IP fragment.
func (fr *frag) parse(frame []byte, p *header.Parsed) bool {
	l3, end := p.L3Off, p.End
	if l3 < 0 || end > len(frame) || l3 >= end {
		return false
	}
	fr.l3, fr.ipLen = l3, end-l3
	b := frame[:end]
	switch p.IPVersion {
	case 4:
		if end-l3 < header.IPv4MinSize || b[l3]>>4 != 4 {
			return false
		}
		ihl := int(b[l3]&0x0f) * 4
		if ihl < header.IPv4MinSize || l3+ihl > end {
			return false
		}
		ff := binary.BigEndian.Uint16(b[l3+6:])
		fr.mf = ff&header.IPv4FlagMF != 0
		fr.df = ff&header.IPv4FlagDF != 0
		fr.offset = int(ff&header.IPv4FragOffMask) * 8
		if !fr.mf && fr.offset == 0 {
			return false
		}
		fr.v6 = false
		fr.hdrEnd, fr.dataOff, fr.dataEnd = l3+ihl, l3+ihl, end
		fr.ecn = 1 << (b[l3+1] & 3)
		fr.k = key{id: uint32(binary.BigEndian.Uint16(b[l3+4:])), proto: b[l3+9]}
		copy(fr.k.src[12:], b[l3+12:l3+16])
		copy(fr.k.dst[12:], b[l3+16:l3+20])
		fr.k.src[10], fr.k.src[11], fr.k.dst[10], fr.k.dst[11] = 0xff, 0xff, 0xff, 0xff
		return true
	case 6:
		if end-l3 < header.IPv6Size || b[l3]>>4 != 6 {
			return false
		}
		nhOff, off := l3+6, l3+header.IPv6Size
		nh := b[nhOff]
		for range 8 {
			switch nh {
			case header.ProtoHopByHop, header.ProtoRouting, header.ProtoDstOpts:
				if off+8 > end {
					return false
				}
				n := (int(b[off+1]) + 1) * 8
				if off+n > end {
					return false
				}
				nhOff, nh = off, b[off]
				off += n
				continue
			case header.ProtoFragment:
				if off+header.IPv6FragSize > end {
					return false
				}
				fw := binary.BigEndian.Uint16(b[off+header.IPv6FragOffOff:])
				fr.v6 = true
				fr.offset = int(fw & header.IPv6FragOffMask)
				fr.mf = fw&1 != 0
				fr.df = false
				fr.hdrEnd, fr.dataOff, fr.dataEnd = off, off+header.IPv6FragSize, end
				fr.nhOff, fr.nextHdr = nhOff, b[off]
				fr.ecn = 1 << ((b[l3+1] >> 4) & 3)
				fr.k = key{id: binary.BigEndian.Uint32(b[off+4:]), v6: true}
				copy(fr.k.src[:], b[l3+8:l3+24])
				copy(fr.k.dst[:], b[l3+24:l3+40])
				fr.truncated = false
				// A second fragment header in the chain would leave a
				// fragment after reassembly (RFC 8200 4.1: one fragment
				// header per packet). The first fragment shows the
				// chain; later ones carry only data.
				fr.nested = fr.offset == 0 && nestedFrag(b, off+header.IPv6FragSize, fr.nextHdr)
				if fr.offset == 0 && fr.mf {
					// ipv6frag_thdr_truncated: the upper-layer header must
					// be in the first fragment (RFC 7112).
					need := 1
					switch p.Proto {
					case header.ProtoTCP:
						need = header.TCPMinSize
					case header.ProtoUDP:
						need = header.UDPSize
					case header.ProtoICMPv6:
						need = 8
					}
					fr.truncated = p.L4Off < fr.dataOff || p.L4Off+need > end
				}
				return true
			}
			return false
		}
	}
	return false
}

// nestedFrag reports whether the extension-header chain of pkt starting at
// off with next header nh holds a fragment header.
func nestedFrag(pkt []byte, off int, nh uint8) bool {
	for range 8 {
		var n int
		switch nh {
		case header.ProtoFragment:
			return true
		case header.ProtoHopByHop, header.ProtoRouting, header.ProtoDstOpts:
			if off+2 > len(pkt) {
				return false
			}
			n = (int(pkt[off+1]) + 1) * 8
		case header.ProtoAH:
			if off+2 > len(pkt) {
				return false
			}
			n = (int(pkt[off+1]) + 2) * 4
		default:
			return false
		}
		nh = pkt[off]
		off += n
		if off > len(pkt) {
			return false
		}
	}
	return false
}

// Add takes one IP fragment: frame holds it, p is its parse (header.Parse
// or anything filling L3Off, End, IPVersion and, for IPv6, Proto and L4Off
// alike). now is a monotonic clock reading in nanoseconds. When the
// fragment completes its datagram, Add writes the whole datagram to dst —
// the first fragment's bytes before its IP header, the IP header, the
// payload — and returns Complete; frame and dst may not overlap. Add
// never allocates; what it drops it counts (TakeDrops).
func (r *Reassembler) Add(frame []byte, p *header.Parsed, now int64, dst []byte) (Result, Datagram) {
	var fr frag
	if !fr.parse(frame, p) {
		return NotFragment, Datagram{}
	}
	r.Expire(now)
	if fr.nested {
		return r.badOne()
	}
	if fr.v6 && fr.offset == 0 && !fr.mf {
		return r.atomic(frame, &fr, dst)
	}
	offset, end := fr.offset, fr.offset+(fr.dataEnd-fr.dataOff)
	if fr.mf && end&7 != 0 {
		if fr.v6 {
			// ip6_frag_queue: a non-last fragment's payload must be a
			// multiple of 8 bytes.
			return r.badOne()
		}
		end &^= 7 // ip_frag_queue trims it
	}
	if end <= offset || end > MaxPayload || fr.truncated {
		return r.badOne()
	}
	if offset == 0 && fr.hdrEnd > MaxHeader {
		return r.badOne()
	}
	h := r.hash(&fr.k)
	qi, slot := r.find(&fr.k, h)
	if qi < 0 {
		qi = r.newQueue(&fr.k, h, slot, now)
		if qi < 0 {
			r.drops.Overflow++
			return Overflow, Datagram{}
		}
	}
	q := &r.queues[qi]
	// ip_frag_queue / ip6_frag_queue: the end of the datagram.
	if !fr.mf {
		if int32(end) < q.length || (q.flags&flagLast != 0 && int32(end) != q.length) {
			return r.badOne()
		}
	} else if int32(end) > q.length && q.flags&flagLast != 0 {
		return r.badOne()
	}
	// inet_frag_queue_insert: where the fragment goes among the ranges.
	at := 0
	for at < int(q.nr) && int(q.r[at].end) <= offset {
		at++
	}
	if at < int(q.nr) && int(q.r[at].start) < end {
		if int(q.r[at].start) <= offset && end <= int(q.r[at].end) {
			return r.badOne() // IPFRAG_DUP: dropped, the queue kept
		}
		// IPFRAG_OVERLAP (RFC 5722): the whole datagram goes.
		r.drops.Bad += uint64(q.nfrag) + 1
		r.kill(qi)
		return Bad, Datagram{}
	}
	mergeL := at > 0 && int(q.r[at-1].end) == offset
	mergeR := at < int(q.nr) && int(q.r[at].start) == end
	if !mergeL && !mergeR && q.nr == maxRanges {
		r.drops.Overflow += uint64(q.nfrag) + 1
		r.kill(qi)
		return Overflow, Datagram{}
	}
	// Blocks for the data.
	need := 0
	for b := offset / BlockSize; b <= (end-1)/BlockSize; b++ {
		if q.blk[b] == 0 {
			need++
		}
	}
	if need > len(r.freeB) {
		r.evict(qi)
		q = &r.queues[qi]
		if need > len(r.freeB) {
			r.drops.Overflow += uint64(q.nfrag) + 1
			r.kill(qi)
			return Overflow, Datagram{}
		}
	}
	// Accepted: nothing below fails.
	if !fr.mf {
		q.flags |= flagLast
		q.length = int32(end)
	} else if int32(end) > q.length {
		q.length = int32(end)
	}
	r.store(q, frame[fr.dataOff:fr.dataOff+(end-offset)], offset)
	switch {
	case mergeL && mergeR:
		q.r[at-1].end = q.r[at].end
		copy(q.r[at:q.nr], q.r[at+1:q.nr])
		q.nr--
	case mergeL:
		q.r[at-1].end = uint16(end)
	case mergeR:
		q.r[at].start = uint16(offset)
	default:
		copy(q.r[at+1:q.nr+1], q.r[at:q.nr])
		q.r[at] = span{uint16(offset), uint16(end)}
		q.nr++
	}
	if offset == 0 {
		q.flags |= flagFirst
		q.hdrLen = uint16(fr.hdrEnd)
		q.l3Off = uint16(fr.l3)
		copy(q.hdr[:], frame[:fr.hdrEnd])
		if fr.v6 {
			q.nhOff, q.nextHdr = uint16(fr.nhOff), fr.nextHdr
		}
	}
	q.nfrag++
	q.ecn |= fr.ecn
	sz := uint16(min(fr.ipLen, 0xffff))
	q.fragMax = max(q.fragMax, sz)
	if fr.df {
		q.maxDF = max(q.maxDF, sz)
	}
	if q.flags == flagFirst|flagLast && q.nr == 1 && q.r[0].start == 0 && int32(q.r[0].end) == q.length {
		return r.complete(qi, dst)
	}
	return Queued, Datagram{}
}

// badOne drops the fragment Add was given, as Bad.
func (r *Reassembler) badOne() (Result, Datagram) {
	r.drops.Bad++
	return Bad, Datagram{}
}

// store copies data to the queue's blocks from payload offset off,
// taking free blocks as needed (the caller made sure there are enough).
func (r *Reassembler) store(q *queue, data []byte, off int) {
	for len(data) > 0 {
		b, in := off/BlockSize, off%BlockSize
		if q.blk[b] == 0 {
			n := len(r.freeB) - 1
			q.blk[b] = r.freeB[n] + 1
			r.freeB = r.freeB[:n]
			q.nblk++
		}
		base := int(q.blk[b]-1) * BlockSize
		n := copy(r.blocks[base+in:base+BlockSize], data)
		data = data[n:]
		off += n
	}
}

// complete writes the datagram of queue qi to dst and frees the queue
// (ip_frag_reasm, ip6_frag_reasm).
func (r *Reassembler) complete(qi int32, dst []byte) (Result, Datagram) {
	q := &r.queues[qi]
	hl, n := int(q.hdrLen), int(q.length)
	total := hl + n
	if q.ecn&ecnNotECT != 0 && q.ecn&^ecnNotECT != 0 {
		// ip_frag_ecn_table: Not-ECT mixed with ECT or CE.
		r.drops.Bad += uint64(q.nfrag)
		r.kill(qi)
		return Bad, Datagram{}
	}
	l3 := int(q.l3Off)
	k := q.k
	ipLen := total - l3 // IPv6: hdr ends where the fragment header was
	if (!k.v6 && ipLen > 0xffff) || (k.v6 && ipLen-header.IPv6Size > 0xffff) {
		r.drops.Bad += uint64(q.nfrag)
		r.kill(qi)
		return Bad, Datagram{}
	}
	if total > len(dst) {
		r.drops.Overflow += uint64(q.nfrag)
		r.kill(qi)
		return Overflow, Datagram{}
	}
	copy(dst, q.hdr[:hl])
	hdrOut := hl
	if k.v6 {
		// The fragment header is not in hdr (it ends where the fragment
		// header began): patch the next header that pointed at it.
		dst[q.nhOff] = q.nextHdr
		binary.BigEndian.PutUint16(dst[l3+4:], uint16(ipLen-header.IPv6Size))
		if q.ecn&ecnCE != 0 {
			dst[l3+1] |= 0x30
		}
	} else {
		binary.BigEndian.PutUint16(dst[l3+2:], uint16(ipLen))
		var ff uint16
		if q.maxDF != 0 && q.maxDF == q.fragMax {
			ff = header.IPv4FlagDF
		}
		binary.BigEndian.PutUint16(dst[l3+6:], ff)
		if q.ecn&ecnCE != 0 {
			dst[l3+1] |= 3
		}
		ip := header.IPv4(dst[l3:hl])
		ip.UpdateChecksum()
	}
	for b := 0; b*BlockSize < n; b++ {
		base := int(q.blk[b]-1) * BlockSize
		copy(dst[hdrOut+b*BlockSize:], r.blocks[base:base+min(BlockSize, n-b*BlockSize)])
	}
	d := Datagram{Len: hdrOut + n, FragMax: int(q.fragMax)}
	r.kill(qi)
	r.reasm++
	return Complete, d
}

// atomic returns an IPv6 atomic fragment without its fragment header
// (RFC 6946: processed in isolation from any queue).
func (r *Reassembler) atomic(frame []byte, fr *frag, dst []byte) (Result, Datagram) {
	n := fr.dataEnd - header.IPv6FragSize
	if n > len(dst) {
		r.drops.Overflow++
		return Overflow, Datagram{}
	}
	copy(dst, frame[:fr.hdrEnd])
	copy(dst[fr.hdrEnd:], frame[fr.dataOff:fr.dataEnd])
	dst[fr.nhOff] = fr.nextHdr
	binary.BigEndian.PutUint16(dst[fr.l3+4:], uint16(n-fr.l3-header.IPv6Size))
	r.reasm++
	return Complete, Datagram{Len: n, FragMax: fr.ipLen}
}

// hash hashes a queue key with the Reassembler's seed.
func (r *Reassembler) hash(k *key) uint64 {
	h := r.seed
	mix := func(v uint64) {
		h ^= v
		h *= 0x9e3779b97f4a7c15
		h ^= h >> 29
	}
	mix(binary.LittleEndian.Uint64(k.src[:8]))
	mix(binary.LittleEndian.Uint64(k.src[8:]))
	mix(binary.LittleEndian.Uint64(k.dst[:8]))
	mix(binary.LittleEndian.Uint64(k.dst[8:]))
	v := uint64(k.id)<<16 | uint64(k.proto)<<8
	if k.v6 {
		v |= 1
	}
	mix(v)
	h *= 0xbf58476d1ce4e5b9
	return h ^ h>>31
}

// find returns the queue with key k, or -1 and the free slot where it
// would go.
func (r *Reassembler) find(k *key, h uint64) (int32, uint64) {
	i := h & r.mask
	for {
		s := r.slots[i]
		if s < 0 {
			return -1, i
		}
		if q := &r.queues[s]; q.hash == h && q.k == *k {
			return s, i
		}
		i = (i + 1) & r.mask
	}
}

// newQueue takes a free queue for key k (evicting the oldest if none is
// free) and returns its index, or -1.
func (r *Reassembler) newQueue(k *key, h, slot uint64, now int64) int32 {
	if len(r.freeQ) == 0 {
		r.evict(-1)
		if len(r.freeQ) == 0 {
			return -1
		}
		_, slot = r.find(k, h) // eviction moved slots
	}
	n := len(r.freeQ) - 1
	qi := r.freeQ[n]
	r.freeQ = r.freeQ[:n]
	q := &r.queues[qi]
	q.k, q.hash, q.created, q.live = *k, h, now, true
	q.flags, q.ecn, q.nr, q.nfrag, q.length = 0, 0, 0, 0, 0
	q.fragMax, q.maxDF, q.hdrLen, q.nblk = 0, 0, 0, 0
	r.slots[slot] = qi
	l := &r.age[0]
	if k.v6 {
		l = &r.age[1]
	}
	q.prev, q.next = l.tail, -1
	if l.tail >= 0 {
		r.queues[l.tail].next = qi
	} else {
		l.head = qi
	}
	l.tail = qi
	return qi
}

// evict drops the oldest queues, never keep, until no more than the low
// thresholds of queues and blocks are in use.
func (r *Reassembler) evict(keep int32) {
	for {
		usedQ := len(r.queues) - len(r.freeQ)
		usedB := cap(r.freeB) - len(r.freeB)
		if usedQ <= r.lowQ && usedB <= r.lowB {
			return
		}
		victim := int32(-1)
		for f := range r.age {
			h := r.age[f].head
			if h == keep && h >= 0 {
				h = r.queues[h].next
			}
			if h >= 0 && (victim < 0 || r.queues[h].created < r.queues[victim].created) {
				victim = h
			}
		}
		if victim < 0 {
			return
		}
		r.drops.Overflow += uint64(r.queues[victim].nfrag)
		r.kill(victim)
	}
}

// kill frees queue qi: its blocks, its hash slot, its place in the age
// list.
func (r *Reassembler) kill(qi int32) {
	q := &r.queues[qi]
	for b := range q.blk {
		if q.nblk == 0 {
			break
		}
		if q.blk[b] != 0 {
			r.freeB = append(r.freeB, q.blk[b]-1)
			q.blk[b] = 0
			q.nblk--
		}
	}
	l := &r.age[0]
	if q.k.v6 {
		l = &r.age[1]
	}
	if q.prev >= 0 {
		r.queues[q.prev].next = q.next
	} else {
		l.head = q.next
	}
	if q.next >= 0 {
		r.queues[q.next].prev = q.prev
	} else {
		l.tail = q.prev
	}
	// Remove from the hash table, shifting back the entries of the
	// cluster after it (linear probing without tombstones).
	i := q.hash & r.mask
	for r.slots[i] != qi {
		i = (i + 1) & r.mask
	}
	j := i
	for {
		j = (j + 1) & r.mask
		s := r.slots[j]
		if s < 0 {
			break
		}
		home := r.queues[s].hash & r.mask
		// Move s into the hole at i unless its home lies cyclically in
		// (i, j].
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			r.slots[i] = s
			i = j
		}
	}
	r.slots[i] = -1
	q.live = false
	r.freeQ = append(r.freeQ, qi)
}
