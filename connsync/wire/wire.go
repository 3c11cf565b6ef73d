// Package wire is the IPVS connection-synchronisation message format
// (kernel net/netfilter/ipvs/ip_vs_sync.c): version 1 messages as the
// kernel sends them by default, version 0 messages as old kernels (and
// sync_version=0) send them, and the uvs option that carries a FULLNAT
// connection's local address and port.
//
// # Messages
//
// A version 1 message is an 8-byte header (reserved 0, syncid, be16 total
// size, nr_conns, version 1, be16 spare 0) followed by entries of 36
// (IPv4) or 72 (IPv6) bytes plus options, each padded with zeros to a
// multiple of 4 bytes before the next one (the last one is not padded).
// A version 0 message is a 4-byte header (nr_conns, syncid, be16 size)
// followed by 24-byte IPv4 entries, 48 bytes when they carry sequence
// data. All fields are big-endian except version 0's sequence data, which
// the kernel copies in host byte order (this package uses the machine's
// native order, as a kernel on the same machine would).
//
// Builder (and EncodeV1/EncodeV0 over it) packs entries into messages as
// the kernel's master does; Decoder reads messages as the kernel's backup
// does (ip_vs_process_message, ip_vs_proc_sync_conn), with the same rules
// for what drops a message, the rest of a message, or one entry. It does
// not filter by syncid: the receiver does that with the Result's SyncID.
//
// # The uvs FULLNAT option
//
// The kernel format has no field for a FULLNAT connection's local
// (source-NAT) address and port. uvs carries them in a version 1 entry
// option of type 0x60 (OptFullNAT): bit 0x40 (IPVS_OPT_F_PARAM) marks it
// optional, and its masked value 0x20 is no type the kernel knows, so a
// kernel backup skips it and keeps the rest of the entry. Its data is the
// local address (4 bytes in an IPv4 entry, 16 in an IPv6 one, so the
// option length is 6 or 18) followed by the local port, big-endian:
//
//	0x60 | len 6 | laddr (4 bytes) | lport (be16)      IPv4 entry
//	0x60 | len 18 | laddr (16 bytes) | lport (be16)    IPv6 entry
//
// It follows the SEQ_DATA option when both are present. A uvs backup drops
// an entry whose FULLNAT option has another length or appears twice
// (ReasonLocal) rather than create the connection without its local
// address. Version 0 cannot carry options: its encoder skips FULLNAT
// entries, as the kernel's skips IPv6 ones.
package wire

import (
	"encoding/binary"
	"net/netip"
)

// Defaults of the sync daemon (ip_vs_sync.c, ipvsadm).
const (
	DefaultGroup4 = "224.0.0.81" // IP_VS_SYNC_GROUP
	DefaultPort   = 8848         // IP_VS_SYNC_PORT
	DefaultTTL    = 1
	// DefaultMaxLen is the master's default message size for an IPv4
	// group: 1500 − 28.
	DefaultMaxLen = 1472
)

// Connection flags as the kernel puts them on the wire (IP_VS_CONN_F_*).
const (
	FlagFwdMask   uint32 = 0x0007
	FlagSync      uint32 = 0x0020
	FlagHashed    uint32 = 0x0040
	FlagNoOutput  uint32 = 0x0080
	FlagInactive  uint32 = 0x0100
	FlagOutSeq    uint32 = 0x0200
	FlagInSeq     uint32 = 0x0400
	FlagSeqMask   uint32 = 0x0600
	FlagNoCPort   uint32 = 0x0800
	FlagTemplate  uint32 = 0x1000
	FlagOnePacket uint32 = 0x2000
	// FlagBackupMask are the bits a backup accepts from the wire;
	// FlagBackupUpdMask those a later message may change.
	FlagBackupMask    uint32 = 0x1E87
	FlagBackupUpdMask uint32 = 0x0700
)

// Forwarding methods in the low bits of the flags (IP_VS_CONN_F_*).
const (
	FwdMasq      uint32 = 0 // NAT
	FwdLocalNode uint32 = 1
	FwdTunnel    uint32 = 2
	FwdDRoute    uint32 = 3
	FwdBypass    uint32 = 4
	// FwdFullNAT is uvs's FULLNAT (spec.FwdFullNAT, DPVS's value); a
	// kernel backup ignores the method and takes its own dest's.
	FwdFullNAT uint32 = 5
)

// Sizes on the wire.
const (
	HeaderLenV1 = 8  // struct ip_vs_sync_mesg
	HeaderLenV0 = 4  // struct ip_vs_sync_mesg_v0
	EntryLenV4  = 36 // struct ip_vs_sync_v4
	EntryLenV6  = 72 // struct ip_vs_sync_v6
	EntryLenV0  = 24 // struct ip_vs_sync_conn_v0
	SeqLen      = 24 // struct ip_vs_sync_conn_options: in_seq and out_seq
	// MaxEntryLen is the longest version 1 entry this package writes:
	// IPv6 with the SEQ_DATA and FULLNAT options.
	MaxEntryLen = EntryLenV6 + 2 + SeqLen + 2 + 18
)

// Option types of version 1 entries (IPVS_OPT_*).
const (
	OptSeqData = 1    // IPVS_OPT_SEQ_DATA, 24 bytes
	OptPEData  = 2    // IPVS_OPT_PE_DATA, persistence-engine data
	OptPEName  = 3    // IPVS_OPT_PE_NAME, persistence-engine name (≤ 16)
	OptFParam  = 0x40 // IPVS_OPT_F_PARAM: optional, skipped when unknown
	// OptFullNAT is uvs's FULLNAT local address and port (package doc).
	OptFullNAT = 0x60
	// peNameMax is IP_VS_PENAME_MAXLEN.
	peNameMax = 16
)

// Seq is one direction's TCP sequence adjustment of a connection whose
// payload is rewritten (struct ip_vs_seq).
type Seq struct {
	Init      uint32 // init_seq: the sequence number where the change was made
	Delta     uint32 // delta: the adjustment after Init
	PrevDelta uint32 // previous_delta: the adjustment before Init
}

// Entry is one connection or persistence template in a message. Addresses
// are 16-byte (IPv4 as IPv4-mapped IPv6), ports host order.
//
// Flags are the wire's flags as sent (the encoder clears FlagHashed);
// the decoder reports them unmasked: a backup keeps BackupFlags of them.
type Entry struct {
	IPv6    bool
	Proto   uint8  // IPPROTO_*; 0 for firewall-mark templates
	Flags   uint32 // IP_VS_CONN_F_* (forwarding method in the low 3 bits)
	State   uint16 // protocol state number (kernel numbering)
	CPort   uint16
	VPort   uint16
	DPort   uint16
	FWMark  uint32
	Timeout uint32 // seconds (0 in version 0 messages)
	CAddr   [16]byte
	VAddr   [16]byte
	DAddr   [16]byte
	// HasLocal marks a FULLNAT connection: LAddr:LPort is its local
	// (source-NAT) address and port, carried in a uvs option kernels skip.
	HasLocal bool
	LAddr    [16]byte
	LPort    uint16
	// HasSeq reports that a received entry carried sequence data
	// (InSeq, OutSeq). The encoder sends them whenever Flags has a
	// FlagSeqMask bit, as the kernel does, whatever HasSeq says.
	HasSeq bool
	InSeq  Seq
	OutSeq Seq
}

// Addr16 returns a's 16-byte form (IPv4 as IPv4-mapped IPv6), the form of
// Entry's addresses.
func Addr16(a netip.Addr) [16]byte { return a.As16() }

// Addr returns an Entry address as a netip.Addr: IPv4 when v6 is false.
func Addr(b [16]byte, v6 bool) netip.Addr {
	a := netip.AddrFrom16(b)
	if !v6 {
		return a.Unmap()
	}
	return a
}

// BackupFlags returns the flags a backup gives a connection it creates
// from an entry of a version-v message: version 1 keeps FlagBackupMask of
// the wire flags; version 0 only clears FlagHashed (ip_vs_process_message_v0
// does not mask); both add FlagSync.
func BackupFlags(wireFlags uint32, version int) uint32 {
	if version == 0 {
		return (wireFlags | FlagSync) &^ FlagHashed
	}
	return wireFlags&FlagBackupMask | FlagSync
}

// EntryLen returns the length of e in a version 1 message, options
// included, padding excluded.
func EntryLen(e *Entry) int {
	n := EntryLenV4
	if e.IPv6 {
		n = EntryLenV6
	}
	if e.Flags&FlagSeqMask != 0 {
		n += 2 + SeqLen
	}
	if e.HasLocal {
		n += 2 + localLen(e.IPv6)
	}
	return n
}

func localLen(v6 bool) int {
	if v6 {
		return 16 + 2
	}
	return 4 + 2
}

// entryLenV0 returns the length of e in a version 0 message.
func entryLenV0(e *Entry) int {
	if e.Flags&FlagSeqMask != 0 {
		return EntryLenV0 + SeqLen
	}
	return EntryLenV0
}

// AddResult is what Builder.Add did with an entry.
type AddResult uint8

const (
	// Added: the entry is in the message.
	Added AddResult = iota
	// Full: the entry does not fit; send the message and start another.
	Full
	// Skipped: the message's version cannot carry the entry (version 0:
	// IPv6 and FULLNAT entries); it is not sent, as in the kernel.
	Skipped
)

// maxConns is the most entries a message holds: nr_conns is one byte.
// (The kernel does not check it; it matters only for maxlen above about
// 9 KB.)
const maxConns = 255

// Builder packs entries into one message at a time, as the kernel's
// master fills its sync buffer: an entry is added while the message stays
// within maxLen bytes (the first entry of a message always is, as the
// kernel sizes a buffer to hold at least one), each previous entry is
// padded to 4 bytes (version 1), and the header's size and nr_conns follow.
// Add does not allocate once the buffer has grown to the message size.
type Builder struct {
	buf     []byte
	start   int // offset of the message header in buf
	maxLen  int
	version int
	count   int
}

// NewBuilder returns a builder of version (0 or 1) messages of at most
// maxLen bytes with its buffer allocated; call Reset before adding.
func NewBuilder(version int, maxLen int) *Builder {
	b := &Builder{}
	b.Start(make([]byte, 0, max(maxLen, HeaderLenV1+MaxEntryLen)), version, 0, maxLen)
	return b
}

// Start begins a message of syncID appended to dst (reusing its
// capacity).
func (b *Builder) Start(dst []byte, version int, syncID uint8, maxLen int) {
	b.buf, b.start, b.version, b.maxLen, b.count = dst, len(dst), version, maxLen, 0
	if version == 0 {
		b.buf = append(b.buf, 0, syncID, 0, HeaderLenV0)
		return
	}
	b.buf = append(b.buf, 0, syncID, 0, HeaderLenV1, 0, 1, 0, 0)
}

// Reset begins a new message of syncID in the builder's own buffer, with
// the version and maxLen it was started with.
func (b *Builder) Reset(syncID uint8) { b.Start(b.buf[:0], b.version, syncID, b.maxLen) }

// Version returns the version of the message being built.
func (b *Builder) Version() int { return b.version }

// Count returns how many entries the message holds.
func (b *Builder) Count() int { return b.count }

// Len returns the message's length.
func (b *Builder) Len() int { return len(b.buf) - b.start }

// Bytes returns the buffer the message was appended to, message included.
// It stays valid until the next Start or Reset.
func (b *Builder) Bytes() []byte { return b.buf }

// Message returns the message alone.
func (b *Builder) Message() []byte { return b.buf[b.start:] }

// Add appends e if it fits.
func (b *Builder) Add(e *Entry) AddResult {
	if b.version == 0 {
		return b.addV0(e)
	}
	n := EntryLen(e)
	pad := (4 - b.Len()) & 3
	if b.count > 0 && (b.Len()+pad+n > b.maxLen || b.count == maxConns) {
		return Full
	}
	p := b.grow(pad + n)[pad:]
	v6 := e.IPv6
	if v6 {
		p[0] = 1
	}
	p[1] = e.Proto
	binary.BigEndian.PutUint16(p[2:], uint16(n)&0x0fff)
	binary.BigEndian.PutUint32(p[4:], e.Flags&^FlagHashed)
	binary.BigEndian.PutUint16(p[8:], e.State)
	binary.BigEndian.PutUint16(p[10:], e.CPort)
	binary.BigEndian.PutUint16(p[12:], e.VPort)
	binary.BigEndian.PutUint16(p[14:], e.DPort)
	binary.BigEndian.PutUint32(p[16:], e.FWMark)
	binary.BigEndian.PutUint32(p[20:], e.Timeout)
	var o int
	if v6 {
		copy(p[24:], e.CAddr[:])
		copy(p[40:], e.VAddr[:])
		copy(p[56:], e.DAddr[:])
		o = EntryLenV6
	} else {
		copy(p[24:], e.CAddr[12:])
		copy(p[28:], e.VAddr[12:])
		copy(p[32:], e.DAddr[12:])
		o = EntryLenV4
	}
	if e.Flags&FlagSeqMask != 0 {
		p[o], p[o+1] = OptSeqData, SeqLen
		putSeq(binary.BigEndian, p[o+2:], &e.InSeq, &e.OutSeq)
		o += 2 + SeqLen
	}
	if e.HasLocal {
		l := localLen(v6)
		p[o], p[o+1] = OptFullNAT, byte(l)
		if v6 {
			copy(p[o+2:], e.LAddr[:])
		} else {
			copy(p[o+2:], e.LAddr[12:])
		}
		binary.BigEndian.PutUint16(p[o+l:], e.LPort)
	}
	b.count++
	b.setHeader()
	return Added
}

func (b *Builder) addV0(e *Entry) AddResult {
	if e.IPv6 || e.HasLocal {
		return Skipped
	}
	n := entryLenV0(e)
	if b.count > 0 && (b.Len()+n > b.maxLen || b.count == maxConns) {
		return Full
	}
	p := b.grow(n)
	p[1] = e.Proto
	binary.BigEndian.PutUint16(p[2:], e.CPort)
	binary.BigEndian.PutUint16(p[4:], e.VPort)
	binary.BigEndian.PutUint16(p[6:], e.DPort)
	copy(p[8:], e.CAddr[12:])
	copy(p[12:], e.VAddr[12:])
	copy(p[16:], e.DAddr[12:])
	binary.BigEndian.PutUint16(p[20:], uint16(e.Flags&^FlagHashed))
	binary.BigEndian.PutUint16(p[22:], e.State)
	if n > EntryLenV0 {
		putSeq(binary.NativeEndian, p[EntryLenV0:], &e.InSeq, &e.OutSeq)
	}
	b.count++
	b.setHeader()
	return Added
}

// grow extends the message by n zero bytes and returns them.
func (b *Builder) grow(n int) []byte {
	l := len(b.buf)
	if cap(b.buf)-l >= n {
		b.buf = b.buf[:l+n]
		clear(b.buf[l:])
	} else {
		b.buf = append(b.buf, make([]byte, n)...)
	}
	return b.buf[l:]
}

func (b *Builder) setHeader() {
	h := b.buf[b.start:]
	binary.BigEndian.PutUint16(h[2:], uint16(len(h)))
	if b.version == 0 {
		h[0] = byte(b.count)
	} else {
		h[4] = byte(b.count)
	}
}

type byteOrder interface {
	PutUint32([]byte, uint32)
	Uint32([]byte) uint32
}

func putSeq(o byteOrder, p []byte, in, out *Seq) {
	o.PutUint32(p[0:], in.Init)
	o.PutUint32(p[4:], in.Delta)
	o.PutUint32(p[8:], in.PrevDelta)
	o.PutUint32(p[12:], out.Init)
	o.PutUint32(p[16:], out.Delta)
	o.PutUint32(p[20:], out.PrevDelta)
}

func getSeq(o byteOrder, p []byte, in, out *Seq) {
	in.Init = o.Uint32(p[0:])
	in.Delta = o.Uint32(p[4:])
	in.PrevDelta = o.Uint32(p[8:])
	out.Init = o.Uint32(p[12:])
	out.Delta = o.Uint32(p[16:])
	out.PrevDelta = o.Uint32(p[20:])
}

// EncodeV1 appends to dst one version 1 message of syncID holding the
// longest prefix of es that fits maxLen bytes (at least one entry), and
// returns the extended buffer and how many entries of es it holds.
func EncodeV1(dst []byte, syncID uint8, maxLen int, es []Entry) ([]byte, int) {
	return encode(dst, 1, syncID, maxLen, es)
}

// EncodeV0 is EncodeV1 for version 0 messages: IPv4 only, no fwmark, no
// timeout, 16-bit flags. IPv6 and FULLNAT entries are skipped (counted in
// the returned number as consumed, not in the message).
func EncodeV0(dst []byte, syncID uint8, maxLen int, es []Entry) ([]byte, int) {
	return encode(dst, 0, syncID, maxLen, es)
}

func encode(dst []byte, version int, syncID uint8, maxLen int, es []Entry) ([]byte, int) {
	var b Builder
	b.Start(dst, version, syncID, maxLen)
	for i := range es {
		if b.Add(&es[i]) == Full {
			return b.Bytes(), i
		}
	}
	return b.Bytes(), len(es)
}
