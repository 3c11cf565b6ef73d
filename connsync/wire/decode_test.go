package wire

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/uvs-lb/uvs/internal/fuzzwatch"
)

// msgV1 builds a version 1 message of syncid 51 from raw entries: each is
// padded to 4 bytes before the next, and the header counts them.
func msgV1(entries ...[]byte) []byte {
	m := []byte{0, 51, 0, 0, byte(len(entries)), 1, 0, 0}
	for i, e := range entries {
		if i > 0 {
			for len(m)%4 != 0 {
				m = append(m, 0)
			}
		}
		m = append(m, e...)
	}
	binary.BigEndian.PutUint16(m[2:], uint16(len(m)))
	return m
}

// rawV1 returns drConn as one raw version 1 entry with cport, followed by
// opts (the entry length includes them).
func rawV1(cport uint16, opts ...byte) []byte {
	e := drConn()
	e.CPort = cport
	msg, _ := EncodeV1(nil, 51, DefaultMaxLen, []Entry{e})
	raw := append(msg[HeaderLenV1:], opts...)
	binary.BigEndian.PutUint16(raw[2:], uint16(len(raw)))
	return raw
}

// with returns b with the byte at off set to v (a copy).
func with(b []byte, off int, v ...byte) []byte {
	b = bytes.Clone(b)
	copy(b[off:], v)
	return b
}

func TestDecodeRules(t *testing.T) {
	seqOpt := append([]byte{OptSeqData, SeqLen}, make([]byte, SeqLen)...)
	tests := []struct {
		name     string
		msg      []byte
		version  int      // 0 also when the message is dropped before its version is known
		accepted []uint16 // cports of the accepted entries, in order
		stop     Reason
		dropped  Reason // the reason of the one dropped entry, if any
	}{
		{"empty", nil, 0, nil, ReasonShort, 0},
		{"three bytes", []byte{0, 51, 0}, 0, nil, ReasonShort, 0},
		{"v0 header alone", []byte{0, 51, 0, 4}, 0, nil, ReasonNone, 0},
		{"v1 header alone", msgV1(), 1, nil, ReasonNone, 0},
		{"two entries", msgV1(rawV1(1), rawV1(2)), 1, []uint16{1, 2}, ReasonNone, 0},
		{"size one more than the datagram", with(msgV1(rawV1(1)), 2, 0, 45), 0, nil, ReasonBogusSize, 0},
		{"size one less than the datagram", with(msgV1(rawV1(1)), 2, 0, 43), 0, nil, ReasonBogusSize, 0},
		{"truncated datagram", msgV1(rawV1(1))[:40], 0, nil, ReasonBogusSize, 0},
		{"bytes after the counted entries are ignored", func() []byte {
			m := append(msgV1(rawV1(1)), 0xde, 0xad, 0xbe, 0xef)
			binary.BigEndian.PutUint16(m[2:], uint16(len(m)))
			return m
		}(), 1, []uint16{1}, ReasonNone, 0},
		{"more entries counted than present", with(msgV1(rawV1(1)), 4, 2), 1, []uint16{1}, ReasonTruncated, 0},
		{"entry length past the end", msgV1(rawV1(1), with(rawV1(2), 2, 0, 40)), 1, []uint16{1}, ReasonTruncated, 0},
		{"entry version 1 stops the rest", msgV1(rawV1(1), with(rawV1(2), 2, 0x10, 36), rawV1(3)), 1, []uint16{1}, ReasonEntryVersion, 0},
		{"entry type 2 stops the rest", msgV1(rawV1(1), with(rawV1(2), 0, 2), rawV1(3)), 1, []uint16{1}, ReasonEntryType, 0},
		{"entry type 0x80 stops the rest", msgV1(with(rawV1(1), 0, 0x80), rawV1(3)), 1, nil, ReasonEntryType, 0},
		{"entry length below 36", msgV1(rawV1(1), with(rawV1(2), 2, 0, 20), rawV1(3)), 1, []uint16{1}, ReasonEntryLen, 0},
		{"entry length 0", msgV1(with(rawV1(1), 2, 0, 0), rawV1(2)), 1, nil, ReasonEntryLen, 0},
		{"IPv6 type in a 36-byte entry", msgV1(with(rawV1(1), 0, 1)), 1, nil, ReasonEntryLen, 0},
		{"SEQ option", msgV1(rawV1(1, seqOpt...), rawV1(2)), 1, []uint16{1, 2}, ReasonNone, 0},
		{"SEQ option as type 0x41", msgV1(rawV1(1, with(seqOpt, 0, 0x41)...)), 1, []uint16{1}, ReasonNone, 0},
		{"SEQ option of 23 bytes", msgV1(rawV1(1, append([]byte{OptSeqData, 23}, make([]byte, 23)...)...), rawV1(2)), 1, nil, ReasonOption, 0},
		{"SEQ option twice", msgV1(rawV1(1, append(bytes.Clone(seqOpt), seqOpt...)...), rawV1(2)), 1, nil, ReasonOption, 0},
		{"option of length 0", msgV1(rawV1(1, 0x45, 0), rawV1(2)), 1, nil, ReasonOption, 0},
		{"option header cut", msgV1(rawV1(1, 0x45), rawV1(2)), 1, nil, ReasonOption, 0},
		{"option data past the entry", msgV1(rawV1(1, 0x45, 3, 0, 0), rawV1(2)), 1, nil, ReasonOption, 0},
		{"unknown optional option is skipped", msgV1(rawV1(1, 0x45, 2, 9, 9), rawV1(2)), 1, []uint16{1, 2}, ReasonNone, 0},
		{"unknown mandatory option drops the entry", msgV1(rawV1(1, 0x05, 2, 9, 9), rawV1(2)), 1, []uint16{2}, ReasonNone, ReasonMandatoryOption},
		{"a bad option after an unknown mandatory one is not looked at", msgV1(rawV1(1, 0x05, 1, 9, 0x45, 0), rawV1(2)), 1, []uint16{2}, ReasonNone, ReasonMandatoryOption},
		{"PE data and name: no persistence engine", msgV1(rawV1(1, OptPEData, 2, 'a', 'b', OptPEName, 3, 's', 'i', 'p'), rawV1(2)), 1, []uint16{2}, ReasonNone, ReasonPersistenceEngine},
		{"PE data alone", msgV1(rawV1(1, OptPEData, 1, 'a'), rawV1(2)), 1, []uint16{2}, ReasonNone, ReasonPersistenceEngine},
		{"PE name alone is ignored", msgV1(rawV1(1, OptPEName, 3, 's', 'i', 'p'), rawV1(2)), 1, []uint16{1, 2}, ReasonNone, 0},
		{"PE name of 17 bytes", msgV1(rawV1(1, append([]byte{OptPEName, 17}, make([]byte, 17)...)...), rawV1(2)), 1, nil, ReasonOption, 0},
		{"PE data twice", msgV1(rawV1(1, OptPEData, 1, 'a', OptPEData, 1, 'b'), rawV1(2)), 1, nil, ReasonOption, 0},
		{"FULLNAT option of 5 bytes", msgV1(rawV1(1, OptFullNAT, 5, 1, 2, 3, 4, 5), rawV1(2)), 1, []uint16{2}, ReasonNone, ReasonLocal},
		{"FULLNAT option twice", msgV1(rawV1(1, OptFullNAT, 6, 1, 2, 3, 4, 0, 1, OptFullNAT, 6, 1, 2, 3, 4, 0, 1), rawV1(2)), 1, []uint16{2}, ReasonNone, ReasonLocal},
		{"TCP state 11", msgV1(with(rawV1(1), 8, 0, 11), rawV1(2)), 1, []uint16{2}, ReasonNone, ReasonState},
		{"TCP state 10", msgV1(with(rawV1(1), 8, 0, 10)), 1, []uint16{1}, ReasonNone, 0},
		{"UDP state 1", msgV1(with(with(rawV1(1), 1, ProtoUDP), 8, 0, 1), rawV1(2)), 1, []uint16{2}, ReasonNone, ReasonState},
		{"SCTP state 13", msgV1(with(with(rawV1(1), 1, ProtoSCTP), 8, 0, 13)), 1, []uint16{1}, ReasonNone, 0},
		{"SCTP state 14", msgV1(with(with(rawV1(1), 1, ProtoSCTP), 8, 0, 14), rawV1(2)), 1, []uint16{2}, ReasonNone, ReasonState},
		{"GRE connection", msgV1(with(rawV1(1), 1, 47), rawV1(2)), 1, []uint16{2}, ReasonNone, ReasonProto},
		{"protocol 0 connection", msgV1(with(rawV1(1), 1, 0), rawV1(2)), 1, []uint16{2}, ReasonNone, ReasonProto},
		{"protocol 0 template with any state", msgV1(with(with(rawV1(1), 1, 0), 6, 0x10, 0x83, 0x77, 0x77)), 1, []uint16{1}, ReasonNone, 0},
		{"reserved 1 reads as version 0", with(msgV1(rawV1(1)), 0, 1), 0, nil, ReasonNone, ReasonProto},
		{"version 2 reads as version 0", with(msgV1(), 5, 2), 0, nil, ReasonNone, 0},
		{"spare non-zero reads as version 0", with(msgV1(), 7, 1), 0, nil, ReasonNone, 0},
	}
	for _, tt := range tests {
		es, r := decodeAll(tt.msg)
		var got []uint16
		for _, e := range es {
			got = append(got, e.CPort)
		}
		ok := r.Stop == tt.stop && r.Version == tt.version && len(got) == len(tt.accepted) && r.Accepted == len(got)
		for i := range got {
			ok = ok && got[i] == tt.accepted[i]
		}
		wantDropped := 0
		if tt.dropped != ReasonNone {
			wantDropped = 1
			ok = ok && r.Dropped[tt.dropped] == 1
		}
		ok = ok && r.DroppedEntries() == wantDropped
		if !ok {
			t.Errorf("%s: version %d, accepted %v, stop %v, dropped %v; want version %d, accepted %v, stop %v, dropped %v",
				tt.name, r.Version, got, r.Stop, r.Dropped, tt.version, tt.accepted, tt.stop, tt.dropped)
		}
		if r.Stop.WholeMessage() && len(got) != 0 {
			t.Errorf("%s: a dropped message yielded entries", tt.name)
		}
	}
}

func TestDecodeIPv6TypeBits(t *testing.T) {
	// The kernel tests only STYPE_F_INET6 when it is set: type 3 is IPv6.
	e := drConn()
	e.IPv6 = true
	e.CAddr, e.VAddr, e.DAddr = a16("2001:db8::1"), a16("2001:db8::2"), a16("2001:db8::3")
	msg, _ := EncodeV1(nil, 1, DefaultMaxLen, []Entry{e})
	msg[HeaderLenV1] = 3
	es, r := decodeAll(msg)
	if len(es) != 1 || !es[0].IPv6 || es[0] != e {
		t.Fatalf("type 3: %+v, %+v", r, es)
	}
}

func TestDecodeV0Rules(t *testing.T) {
	golden := unhex(t, goldenV0)
	entry := golden[HeaderLenV0:]
	v0 := func(entries ...[]byte) []byte {
		m := []byte{byte(len(entries)), 51, 0, 0}
		for _, e := range entries {
			m = append(m, e...)
		}
		binary.BigEndian.PutUint16(m[2:], uint16(len(m)))
		return m
	}
	seqEntry := append(with(entry, 20, 0x04, 0x00), make([]byte, SeqLen)...)
	tests := []struct {
		name     string
		msg      []byte
		accepted int
		stop     Reason
		dropped  Reason
	}{
		{"golden", golden, 1, ReasonNone, 0},
		{"two", v0(entry, entry), 2, ReasonNone, 0},
		{"counted but missing", with(v0(entry), 0, 2), 1, ReasonTruncated, 0},
		{"seq entry", v0(seqEntry, entry), 2, ReasonNone, 0},
		{"seq flag without the options", v0(entry, with(entry, 20, 0x02, 0x00)), 1, ReasonTruncated, 0},
		{"bad state drops one entry", v0(with(entry, 22, 0, 11), entry), 1, ReasonNone, ReasonState},
		{"bad protocol drops one entry", v0(with(entry, 1, 99), entry), 1, ReasonNone, ReasonProto},
		{"template with a bad state is kept", v0(with(entry, 20, 0x10, 0x83, 0, 99)), 1, ReasonNone, 0},
		{"bogus size", with(golden, 3, 0x1d), 0, ReasonBogusSize, 0},
	}
	for _, tt := range tests {
		es, r := decodeAll(tt.msg)
		ok := r.Version == 0 && r.Stop == tt.stop && len(es) == tt.accepted
		if tt.dropped != ReasonNone {
			ok = ok && r.Dropped[tt.dropped] == 1 && r.DroppedEntries() == 1
		} else {
			ok = ok && r.DroppedEntries() == 0
		}
		if !ok {
			t.Errorf("%s: %+v, %d entries", tt.name, r, len(es))
		}
		for _, e := range es {
			if e.IPv6 || e.Timeout != 0 || e.FWMark != 0 || Addr(e.CAddr, false).String() != "10.1.0.2" {
				t.Errorf("%s: entry %+v", tt.name, e)
			}
		}
	}
}

func TestParseHeader(t *testing.T) {
	h, why := ParseHeader(unhex(t, goldenV1))
	if why != ReasonNone || h != (Header{Version: 1, SyncID: 51, Count: 1, Size: 44}) {
		t.Fatalf("v1 header %+v %v", h, why)
	}
	h, why = ParseHeader(unhex(t, goldenV0))
	if why != ReasonNone || h != (Header{Version: 0, SyncID: 51, Count: 1, Size: 28}) {
		t.Fatalf("v0 header %+v %v", h, why)
	}
	if ReasonBogusSize.Error() != "sync message: bogus-size" || Reason(200).String() != "unknown" {
		t.Fatal("Reason names")
	}
	for r := range NumReasons {
		if r.String() == "" {
			t.Errorf("reason %d has no name", r)
		}
	}
}

func TestDecodeAllocs(t *testing.T) {
	var es [100]Entry
	for i := range es {
		es[i] = drConn()
		es[i].Flags |= FlagOutSeq
		es[i].HasLocal = true
	}
	msg, _ := EncodeV1(nil, 1, 65507, es[:])
	msg0, _ := EncodeV0(nil, 1, 65507, []Entry{drConn(), drConn()})
	var d Decoder
	n := 0
	fn := func(e *Entry) { n += int(e.CPort) }
	if a := testing.AllocsPerRun(100, func() {
		d.Decode(msg, fn)
		d.Decode(msg0, fn)
	}); a != 0 {
		t.Fatalf("Decode: %v allocs per run, want 0", a)
	}
	if n == 0 {
		t.Fatal("nothing decoded")
	}
}

// canonical is what an accepted entry becomes after being sent again: the
// encoder clears HASHED, sends sequence data iff a SEQ flag is set.
func canonical(e Entry) Entry {
	e.Flags &^= FlagHashed
	if e.Flags&FlagSeqMask == 0 {
		e.HasSeq, e.InSeq, e.OutSeq = false, Seq{}, Seq{}
	} else {
		e.HasSeq = true
	}
	return e
}

func FuzzDecode(f *testing.F) {
	f.Add(unhex(f, goldenV1))
	f.Add(unhex(f, goldenV0))
	seq := drConn()
	seq.Flags |= FlagInSeq | FlagOutSeq
	seq.InSeq.Delta = 7
	fn := drConn()
	fn.HasLocal, fn.LAddr, fn.LPort = true, a16("10.2.0.1"), 2000
	v6 := drConn()
	v6.IPv6 = true
	m, _ := EncodeV1(nil, 3, DefaultMaxLen, []Entry{seq, fn, v6, drConn()})
	f.Add(m)
	m0, _ := EncodeV0(nil, 3, DefaultMaxLen, []Entry{seq, drConn()})
	f.Add(m0)
	f.Add(msgV1(rawV1(1, 0x45, 2, 9, 9), rawV1(2, OptPEName, 1, 'x'), with(rawV1(3), 0, 2)))
	f.Add(msgV1(rawV1(1, OptFullNAT, 5, 1, 2, 3, 4, 5)))
	f.Fuzz(func(t *testing.T, msg []byte) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("%d bytes %.200q", len(msg), msg) })()
		orig := bytes.Clone(msg)
		es, r := decodeAll(msg)
		if !bytes.Equal(orig, msg) {
			t.Fatal("Decode modified its input")
		}
		if r.Accepted != len(es) || r.Accepted+r.DroppedEntries() > r.Count {
			t.Fatalf("result %+v with %d entries", r, len(es))
		}
		if r.Stop.WholeMessage() && len(es) != 0 {
			t.Fatal("dropped message yielded entries")
		}
		if len(es) == 0 {
			return
		}
		// Sending the accepted entries again and receiving them gives
		// them back (in canonical form), all of them, in order.
		var again []Entry
		for rest := es; len(rest) > 0; {
			var msg []byte
			var n int
			if r.Version == 1 {
				msg, n = EncodeV1(nil, r.SyncID, 65507, rest)
			} else {
				msg, n = EncodeV0(nil, r.SyncID, 65507, rest)
			}
			got, r2 := decodeAll(msg)
			if r2.Stop != ReasonNone || r2.DroppedEntries() != 0 || r2.Version != r.Version || r2.SyncID != r.SyncID {
				t.Fatalf("re-encoded message: %+v", r2)
			}
			again = append(again, got...)
			rest = rest[n:]
		}
		if len(again) != len(es) {
			t.Fatalf("%d entries came back of %d", len(again), len(es))
		}
		for i := range es {
			if want := canonical(es[i]); again[i] != want {
				t.Fatalf("entry %d came back as\n%+v\nwant\n%+v", i, again[i], want)
			}
		}
	})
}

func BenchmarkEncodeEntry(b *testing.B) {
	b.ReportAllocs()
	bd := NewBuilder(1, DefaultMaxLen)
	bd.Reset(1)
	e := drConn()
	for b.Loop() {
		if bd.Add(&e) != Added {
			bd.Reset(1)
			bd.Add(&e)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	b.ReportAllocs()
	es := make([]Entry, 40)
	for i := range es {
		es[i] = drConn()
	}
	msg, _ := EncodeV1(nil, 1, DefaultMaxLen, es)
	var d Decoder
	n := 0
	fn := func(e *Entry) { n++ }
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		d.Decode(msg, fn)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/entry")
}
