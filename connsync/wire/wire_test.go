package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
)

// unhex decodes hex written with spaces and '|' for readability.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	s = strings.NewReplacer(" ", "", "|", "", "\n", "", "\t", "").Replace(s)
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func a16(s string) [16]byte { return netip.MustParseAddr(s).As16() }

// drConn is ha-reference §8.1's connection: DR TCP, ESTABLISHED, client
// 10.1.0.2:40000 → VIP 10.10.10.10:80 → RS 10.2.0.10:80, 900 s.
func drConn() Entry {
	return Entry{
		Proto: ProtoTCP, Flags: FwdDRoute | FlagNoOutput, State: TCPEstablished,
		CPort: 40000, VPort: 80, DPort: 80, Timeout: 900,
		CAddr: a16("10.1.0.2"), VAddr: a16("10.10.10.10"), DAddr: a16("10.2.0.10"),
	}
}

// The two vectors of ha-reference §8.1, byte for byte.
const (
	goldenV1 = "00 33 00 2c 01 01 00 00 | 00 06 00 24 00 00 00 83 00 01 9c 40 00 50 00 50 00 00 00 00 00 00 03 84 0a 01 00 02 0a 0a 0a 0a 0a 02 00 0a"
	goldenV0 = "01 33 00 1c | 00 06 9c 40 00 50 00 50 0a 01 00 02 0a 0a 0a 0a 0a 02 00 0a 00 83 00 01"
)

// decodeAll decodes msg and returns copies of the accepted entries.
func decodeAll(msg []byte) ([]Entry, Result) {
	var es []Entry
	r := Decode(msg, func(e *Entry) { es = append(es, *e) })
	return es, r
}

func checkRoundTrip(t *testing.T, name string, version int, syncID uint8, es []Entry, want []byte) {
	t.Helper()
	var got []byte
	var n int
	if version == 1 {
		got, n = EncodeV1(nil, syncID, DefaultMaxLen, es)
	} else {
		got, n = EncodeV0(nil, syncID, DefaultMaxLen, es)
	}
	if n != len(es) {
		t.Fatalf("%s: encoded %d of %d entries", name, n, len(es))
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: encoded\n%s\nwant\n%s", name, hex.Dump(got), hex.Dump(want))
	}
	dec, r := decodeAll(want)
	if r.Stop != ReasonNone || r.Version != version || r.SyncID != syncID || r.DroppedEntries() != 0 {
		t.Fatalf("%s: decode result %+v", name, r)
	}
	if len(dec) != len(es) {
		t.Fatalf("%s: decoded %d entries, want %d", name, len(dec), len(es))
	}
	for i := range es {
		w := es[i]
		if version == 0 {
			w.Timeout, w.FWMark = 0, 0
		}
		if w.Flags&FlagSeqMask != 0 {
			w.HasSeq = true
		}
		if dec[i] != w {
			t.Errorf("%s: entry %d decoded as\n%+v\nwant\n%+v", name, i, dec[i], w)
		}
	}
}

func TestGoldenReference(t *testing.T) {
	e := drConn()
	checkRoundTrip(t, "§8.1 v1", 1, 51, []Entry{e}, unhex(t, goldenV1))
	checkRoundTrip(t, "§8.1 v0", 0, 51, []Entry{e}, unhex(t, goldenV0))
}

func TestGoldenIPv6(t *testing.T) {
	e := Entry{
		IPv6: true, Proto: ProtoTCP, Flags: FwdMasq | FlagInactive, State: TCPFinWait,
		CPort: 40000, VPort: 443, DPort: 8443, Timeout: 120,
		CAddr: a16("2001:db8::2"), VAddr: a16("2001:db8::10"), DAddr: a16("2001:db8:1::10"),
	}
	want := unhex(t, `00 07 00 50 01 01 00 00 |
		01 06 00 48 00 00 01 00 00 04 9c 40 01 bb 20 fb 00 00 00 00 00 00 00 78
		20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 02
		20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 10
		20 01 0d b8 00 01 00 00 00 00 00 00 00 00 00 10`)
	checkRoundTrip(t, "ipv6", 1, 7, []Entry{e}, want)
	// Version 0 cannot carry it: the message stays empty.
	msg, n := EncodeV0(nil, 7, DefaultMaxLen, []Entry{e})
	if n != 1 || !bytes.Equal(msg, unhex(t, "00 07 00 04")) {
		t.Fatalf("v0 with an IPv6 entry: %x (consumed %d), want an empty message", msg, n)
	}
}

func TestGoldenTemplates(t *testing.T) {
	// A persistence template of DR service TCP 10.10.10.10:80 for client
	// 10.1.0.2 (cport 0, NO_CPORT), 50 s; and a firewall-mark template
	// (protocol 0, the mark as virtual address, fwmark 1).
	tmpl := Entry{
		Proto: ProtoTCP, Flags: FlagTemplate | FlagNoCPort | FlagInactive | FlagNoOutput | FwdDRoute,
		State: TemplateNone, VPort: 80, DPort: 80, Timeout: 50,
		CAddr: a16("10.1.0.2"), VAddr: a16("10.10.10.10"), DAddr: a16("10.2.0.10"),
	}
	fwm := Entry{
		Proto: 0, Flags: FlagTemplate | FlagNoCPort | FwdMasq, State: TemplateAssured, FWMark: 1, Timeout: 300,
		CAddr: a16("10.1.0.2"), VAddr: a16("0.0.0.1"), DAddr: a16("10.2.0.11"),
	}
	want := unhex(t, `00 33 00 50 02 01 00 00 |
		00 06 00 24 00 00 19 83 00 00 00 00 00 50 00 50 00 00 00 00 00 00 00 32 0a 01 00 02 0a 0a 0a 0a 0a 02 00 0a |
		00 00 00 24 00 00 18 00 00 01 00 00 00 00 00 00 00 00 00 01 00 00 01 2c 0a 01 00 02 00 00 00 01 0a 02 00 0b`)
	checkRoundTrip(t, "templates", 1, 51, []Entry{tmpl, fwm}, want)
}

func TestGoldenSeqAndPadding(t *testing.T) {
	// A NAT connection with payload rewriting (IN_SEQ|OUT_SEQ): 36 + 26 =
	// 62 bytes, padded to 64 before the next entry.
	seq := drConn()
	seq.Flags = FwdMasq | FlagInSeq | FlagOutSeq
	seq.InSeq = Seq{Init: 0x01020304, Delta: 5, PrevDelta: 0xfffffffe}
	seq.OutSeq = Seq{Init: 0xa0b0c0d0, Delta: 0xfffffffb, PrevDelta: 2}
	plain := drConn()
	plain.CPort = 40001
	want := unhex(t, `00 33 00 6c 02 01 00 00 |
		00 06 00 3e 00 00 06 00 00 01 9c 40 00 50 00 50 00 00 00 00 00 00 03 84 0a 01 00 02 0a 0a 0a 0a 0a 02 00 0a
		01 18 01 02 03 04 00 00 00 05 ff ff ff fe a0 b0 c0 d0 ff ff ff fb 00 00 00 02 | 00 00 |
		00 06 00 24 00 00 00 83 00 01 9c 41 00 50 00 50 00 00 00 00 00 00 03 84 0a 01 00 02 0a 0a 0a 0a 0a 02 00 0a`)
	checkRoundTrip(t, "seq + padding", 1, 51, []Entry{seq, plain}, want)

	// Version 0 carries the same data raw, in host order, after a 24-byte
	// entry; no padding.
	var opt [SeqLen]byte
	putSeq(binary.NativeEndian, opt[:], &seq.InSeq, &seq.OutSeq)
	want0 := unhex(t, `02 33 00 4c | 00 06 9c 40 00 50 00 50 0a 01 00 02 0a 0a 0a 0a 0a 02 00 0a 06 00 00 01`)
	want0 = append(want0, opt[:]...)
	want0 = append(want0, unhex(t, "00 06 9c 41 00 50 00 50 0a 01 00 02 0a 0a 0a 0a 0a 02 00 0a 00 83 00 01")...)
	checkRoundTrip(t, "v0 seq", 0, 51, []Entry{seq, plain}, want0)
}

func TestGoldenFullNAT(t *testing.T) {
	e := drConn()
	e.Flags = FwdFullNAT
	e.HasLocal, e.LAddr, e.LPort = true, a16("10.2.0.1"), 1025
	want := unhex(t, `00 33 00 34 01 01 00 00 |
		00 06 00 2c 00 00 00 05 00 01 9c 40 00 50 00 50 00 00 00 00 00 00 03 84 0a 01 00 02 0a 0a 0a 0a 0a 02 00 0a
		60 06 0a 02 00 01 04 01`)
	checkRoundTrip(t, "fullnat v4", 1, 51, []Entry{e}, want)

	// IPv6 with SEQ and FULLNAT: SEQ first, then the 18-byte local
	// option; 72 + 26 + 20 = 118 bytes.
	e6 := Entry{
		IPv6: true, Proto: ProtoTCP, Flags: FwdFullNAT | FlagInSeq, State: TCPEstablished,
		CPort: 1, VPort: 2, DPort: 3, Timeout: 4,
		CAddr: a16("2001:db8::1"), VAddr: a16("2001:db8::2"), DAddr: a16("2001:db8::3"),
		InSeq:    Seq{Init: 1, Delta: 2, PrevDelta: 3},
		HasLocal: true, LAddr: a16("2001:db8::ffff"), LPort: 0xabcd,
	}
	want6 := unhex(t, `00 09 00 7e 01 01 00 00 |
		01 06 00 76 00 00 04 05 00 01 00 01 00 02 00 03 00 00 00 00 00 00 00 04
		20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01
		20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 02
		20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 03
		01 18 00 00 00 01 00 00 00 02 00 00 00 03 00 00 00 00 00 00 00 00 00 00 00 00
		60 12 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 ff ff ab cd`)
	checkRoundTrip(t, "fullnat v6 + seq", 1, 9, []Entry{e6}, want6)

	// A kernel receiver applies the generic rule to type 0x60: masked, it
	// is 0x20, no known type; bit 0x40 is set, so it is skipped. Any
	// other optional unknown type is skipped the same way by Decode.
	other := bytes.Clone(want)
	other[44] = 0x55
	es, r := decodeAll(other)
	if r.Stop != ReasonNone || len(es) != 1 || es[0].HasLocal {
		t.Fatalf("unknown optional option 0x55: %+v %+v", r, es)
	}
	// Without bit 0x40 (type 0x20) it is an unknown mandatory option:
	// the entry is dropped.
	other[44] = 0x20
	if es, r := decodeAll(other); len(es) != 0 || r.Dropped[ReasonMandatoryOption] != 1 || r.Stop != ReasonNone {
		t.Fatalf("type 0x20: %+v %+v", r, es)
	}

	// Version 0 has no options: FULLNAT entries are not sent.
	if msg, n := EncodeV0(nil, 51, DefaultMaxLen, []Entry{e}); n != 1 || len(msg) != HeaderLenV0 {
		t.Fatalf("v0 with a FULLNAT entry: %x", msg)
	}
}

func TestBuilderFillsMaxLen(t *testing.T) {
	es := make([]Entry, 100)
	for i := range es {
		es[i] = drConn()
		es[i].CPort = uint16(1000 + i)
	}
	msg, n := EncodeV1(nil, 1, DefaultMaxLen, es)
	if n != 40 || len(msg) != 8+40*36 {
		t.Fatalf("v1 in %d bytes: %d entries, %d bytes; want 40 in %d", DefaultMaxLen, n, len(msg), 8+40*36)
	}
	got, r := decodeAll(msg)
	if r.Count != 40 || len(got) != 40 || got[39].CPort != 1039 {
		t.Fatalf("decoded %d of %d", len(got), r.Count)
	}
	// The next message starts where the first stopped, appended to it.
	two, m := EncodeV1(msg, 1, DefaultMaxLen, es[n:])
	if m != 40 || !bytes.Equal(two[:len(msg)], msg) {
		t.Fatalf("second message: %d entries", m)
	}
	if got, _ := decodeAll(two[len(msg):]); got[0].CPort != 1040 {
		t.Fatalf("second message starts with cport %d", got[0].CPort)
	}

	msg0, n0 := EncodeV0(nil, 1, DefaultMaxLen, es)
	if n0 != 61 || len(msg0) != 4+61*24 {
		t.Fatalf("v0 in %d bytes: %d entries, %d bytes; want 61", DefaultMaxLen, n0, len(msg0))
	}

	// Exactly full: a maxLen of 8+2*36 holds two entries, one less byte one.
	if _, n := EncodeV1(nil, 1, 80, es); n != 2 {
		t.Fatalf("maxLen 80: %d entries, want 2", n)
	}
	if _, n := EncodeV1(nil, 1, 79, es); n != 1 {
		t.Fatalf("maxLen 79: %d entries, want 1", n)
	}
	// The first entry always goes in, even past a tiny maxLen (the
	// kernel sizes its buffer for one entry).
	if msg, n := EncodeV1(nil, 1, 1, es); n != 1 || len(msg) != 44 {
		t.Fatalf("maxLen 1: %d entries in %d bytes, want 1 in 44", n, len(msg))
	}
	// nr_conns is one byte: at most 255 entries whatever maxLen says.
	many := make([]Entry, 300)
	for i := range many {
		many[i] = drConn()
	}
	if msg, n := EncodeV1(nil, 1, 65507, many); n != 255 || msg[4] != 255 {
		t.Fatalf("maxLen 65507: %d entries, want 255", n)
	}

	// Padding counts against maxLen: a 62-byte SEQ entry is padded to 64
	// before the next one.
	seq := drConn()
	seq.Flags |= FlagInSeq
	if _, n := EncodeV1(nil, 1, 8+64+36, []Entry{seq, drConn()}); n != 2 {
		t.Fatalf("seq + plain in 108 bytes: %d entries, want 2", n)
	}
	if _, n := EncodeV1(nil, 1, 8+64+35, []Entry{seq, drConn()}); n != 1 {
		t.Fatalf("seq + plain in 107 bytes: %d entries, want 1", n)
	}
}

func TestBuilderReuse(t *testing.T) {
	b := NewBuilder(1, DefaultMaxLen)
	b.Reset(51)
	e := drConn()
	if b.Add(&e) != Added || b.Count() != 1 {
		t.Fatal("Add to an empty builder failed")
	}
	if !bytes.Equal(b.Message(), unhex(t, goldenV1)) {
		t.Fatalf("builder message %x", b.Message())
	}
	b.Reset(51)
	if b.Count() != 0 || b.Len() != HeaderLenV1 {
		t.Fatalf("after Reset: %d entries, %d bytes", b.Count(), b.Len())
	}
	for b.Add(&e) == Added {
	}
	if b.Count() != 40 {
		t.Fatalf("filled builder holds %d entries", b.Count())
	}
	b0 := NewBuilder(0, DefaultMaxLen)
	b0.Reset(51)
	e6 := e
	e6.IPv6 = true
	if b0.Add(&e6) != Skipped || b0.Add(&e) != Added || !bytes.Equal(b0.Message(), unhex(t, goldenV0)) {
		t.Fatalf("v0 builder: %x", b0.Message())
	}
}

func TestEncodeAllocs(t *testing.T) {
	b := NewBuilder(1, DefaultMaxLen)
	e := drConn()
	e.Flags |= FlagInSeq
	e.HasLocal = true
	if a := testing.AllocsPerRun(100, func() {
		b.Reset(1)
		for b.Add(&e) == Added {
		}
	}); a != 0 {
		t.Fatalf("filling a message: %v allocs, want 0", a)
	}
}

func TestAddr(t *testing.T) {
	e := drConn()
	if a := Addr(e.CAddr, false); a != netip.MustParseAddr("10.1.0.2") {
		t.Fatalf("Addr = %v", a)
	}
	if a := Addr(Addr16(netip.MustParseAddr("2001:db8::1")), true); a != netip.MustParseAddr("2001:db8::1") {
		t.Fatalf("Addr v6 = %v", a)
	}
	if f := BackupFlags(0x83|FlagHashed|1<<16|FlagOnePacket, 1); f != 0x83|FlagSync {
		t.Fatalf("BackupFlags v1 = %#x", f)
	}
	if f := BackupFlags(0x83|FlagHashed|FlagOnePacket, 0); f != 0x83|FlagSync|FlagOnePacket {
		t.Fatalf("BackupFlags v0 = %#x", f)
	}
}
