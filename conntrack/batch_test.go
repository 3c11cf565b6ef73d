package conntrack

import (
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/sched"
	"github.com/uvs-lb/uvs/spec"
)

// twin builds the same connections and templates in a table and returns
// the keys a worker would see (inbound and reply keys, some unknown).
func twin(t *testing.T, tb *Table, dests []*sched.Dest) []Key {
	t.Helper()
	var keys []Key
	var c Conn
	tk := NewTemplateKey(ProtoTCP, netip.MustParseAddr("10.0.0.0"), netip.MustParseAddr("192.0.2.1"), 80)
	th, err := tb.InsertTemplate(tk, dests[0], 300*time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	fwds := []spec.Fwd{spec.FwdMasq, spec.FwdRoute, spec.FwdFullNAT}
	for i := range 300 {
		proto := ProtoTCP
		if i%5 == 4 {
			proto = ProtoUDP
		}
		in := KeyFrom(proto, netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), uint16(1000+i)), ap("192.0.2.1:80"))
		nc := NewConn{In: in, Fwd: fwds[i%3], Dest: dests[i%3]}
		if nc.Fwd == spec.FwdFullNAT {
			nc.Local = EndpointFrom(netip.AddrPortFrom(netip.MustParseAddr("10.2.0.1"), uint16(2000+i)))
		}
		if i%7 == 0 {
			nc.Template = th
		}
		// Some connections time out at 3 s (first packet not a SYN).
		flags := TCPSyn
		if i%11 == 0 {
			flags = 0
		}
		if err := tb.Create(&nc, flags, 0, &c); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, in, outKeyOf(&c))
		if i%13 == 0 {
			in.SrcPort += 5000 // never created
			keys = append(keys, in)
		}
	}
	return keys
}

// TrackBatch gives exactly what a loop over Track gives: same results and
// the same table afterwards, including duplicates in a batch, unknown
// keys, connections timing out mid-run and templates becoming ASSURED.
func TestTrackBatchMatchesTrack(t *testing.T) {
	mk := func() (*Table, []*sched.Dest) {
		tb := newTable(t, 1024)
		return tb, []*sched.Dest{
			newDest("10.1.0.1", 8080, spec.FwdMasq),
			newDest("10.1.0.2", 0, spec.FwdRoute),
			newDest("10.1.0.3", 8080, spec.FwdFullNAT),
		}
	}
	ta, da := mk()
	tb, db := mk()
	keys := twin(t, ta, da)
	if !reflect.DeepEqual(keys, twin(t, tb, db)) {
		t.Fatal("twin tables differ")
	}
	r := rand.New(rand.NewPCG(5, 6))
	flagsOf := []uint8{TCPAck, TCPAck, TCPAck, TCPSyn | TCPAck, TCPFin | TCPAck, TCPRst, 0}
	var (
		ks    [70]Key
		fl    [70]uint8
		outA  [70]Conn
		outB  [70]Conn
		found [70]bool
	)
	now := int64(0)
	for round := range 200 {
		now += int64(r.IntN(100)) * int64(time.Millisecond)
		n := r.IntN(len(ks) + 1)
		for i := range n {
			if i > 0 && r.IntN(8) == 0 {
				ks[i] = ks[r.IntN(i)] // the same flow twice in a batch
			} else {
				ks[i] = keys[r.IntN(len(keys))]
			}
			fl[i] = flagsOf[r.IntN(len(flagsOf))]
		}
		tb.TrackBatch(ks[:n], fl[:n], now, outB[:n], found[:n])
		for i := range n {
			outA[i] = Conn{}
			fa := ta.Track(ks[i], fl[i], now, &outA[i])
			same := outA[i].Dest == nil && outB[i].Dest == nil
			for j := range da {
				same = same || outA[i].Dest == da[j] && outB[i].Dest == db[j]
			}
			a, b := outA[i], outB[i]
			a.Dest, b.Dest = nil, nil
			if fa != found[i] || fa && (a != b || !same) {
				t.Fatalf("round %d packet %d: Track %v %+v, TrackBatch %v %+v", round, i, fa, outA[i], found[i], outB[i])
			}
		}
	}
	la, lb := ta.Snapshot(now, nil), tb.Snapshot(now, nil)
	if len(la) != len(lb) {
		t.Fatalf("%d vs %d entries after the run", len(la), len(lb))
	}
	for i := range la {
		la[i].Dest, lb[i].Dest = nil, nil // different but equal destinations
		if la[i] != lb[i] {
			t.Fatalf("entry %d: %+v vs %+v", i, la[i], lb[i])
		}
	}
	for i := range da {
		if counters(da[i]) != counters(db[i]) {
			t.Fatalf("dest %d counters %v vs %v", i, counters(da[i]), counters(db[i]))
		}
	}
}

func TestTrackBatchShortSlices(t *testing.T) {
	tb := newTable(t, 4)
	defer func() {
		if recover() == nil {
			t.Fatal("no panic for a short out slice")
		}
	}()
	tb.TrackBatch(make([]Key, 2), make([]uint8, 2), 0, make([]Conn, 1), make([]bool, 2))
}
