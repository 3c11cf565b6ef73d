package conntrack

import (
	"encoding/binary"
	"runtime"
	"sync"
	"testing"

	"github.com/uvs-lb/uvs/spec"
)

const million = 1 << 20

// benchKey returns the inbound key of connection i: clients spread over
// 10.0.0.0/8 with varying ports, one VIP.
func benchKey(i int) Key {
	var k Key
	copy(k.Src[:12], v4prefix[:])
	copy(k.Dst[:12], v4prefix[:])
	binary.BigEndian.PutUint32(k.Src[12:], 0x0a000000|uint32(i>>4))
	binary.BigEndian.PutUint32(k.Dst[12:], 0xc0000201)
	k.SrcPort = uint16(1024 + i&15)
	k.DstPort = 80
	k.Proto = ProtoTCP
	return k
}

// fill creates n NAT connections over 4 destinations.
func fill(tb testing.TB, t *Table, n int) {
	tb.Helper()
	ds := []*NewConn{}
	for i := range 4 {
		d := newDest("10.1.0."+string(rune('1'+i)), 8080, spec.FwdMasq)
		ds = append(ds, &NewConn{Dest: d, Fwd: spec.FwdMasq})
	}
	for i := range n {
		nc := ds[i&3]
		nc.In = benchKey(i)
		if err := t.Create(nc, TCPSyn, 0, nil); err != nil {
			tb.Fatal(err)
		}
	}
}

var bigTable = sync.OnceValue(func() *Table {
	t, err := New(Config{Capacity: million, Seed: 99})
	if err != nil {
		panic(err)
	}
	fill(&testing.B{}, t, million)
	return t
})

// perm returns a pseudo-random visiting order of n (a power of two) keys.
func perm(n int) []Key {
	ks := make([]Key, n)
	for i := range n {
		ks[i] = benchKey((i * 0x9E3779B1) & (n - 1))
	}
	return ks
}

var bigKeys = sync.OnceValue(func() []Key { return perm(million) })

// smallTable is a table of the same capacity as bigTable holding only
// 1 k connections: the same code and index size, but every line it touches
// stays in the CPU cache.
var smallTable = sync.OnceValue(func() *Table {
	t, err := New(Config{Capacity: million, Seed: 99})
	if err != nil {
		panic(err)
	}
	fill(&testing.B{}, t, 1<<10)
	return t
})

var smallKeys = sync.OnceValue(func() []Key { return perm(1 << 10) })

// benchTrack tracks ks in a loop, one call per packet, as an ACK of an
// established connection; the clock advances by 1 µs per packet.
func benchTrack(b *testing.B, t *Table, ks []Key) {
	var c Conn
	mask := len(ks) - 1
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if !t.Track(ks[i&mask], TCPAck, int64(i)*1000, &c) {
			b.Fatal("miss")
		}
	}
}

// trackBatch is the worker's batch size in the batched benchmarks.
const trackBatch = 32

// benchTrackBatch is benchTrack with the worker's batching: TrackBatch
// over batches of trackBatch packets. ns/op is per packet.
func benchTrackBatch(b *testing.B, t *Table, ks []Key) {
	var (
		out   [trackBatch]Conn
		found [trackBatch]bool
		flags [trackBatch]uint8
	)
	for i := range flags {
		flags[i] = TCPAck
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += trackBatch {
		j := i & (len(ks) - 1)
		n := min(trackBatch, b.N-i)
		t.TrackBatch(ks[j:j+n], flags[:], int64(i)*1000, out[:], found[:])
		for _, f := range found[:n] {
			if !f {
				b.Fatal("miss")
			}
		}
	}
}

// Throughput at 1 M live connections against 1 k (the "within 10 %"
// target): random access, one packet at a time and in batches.
func BenchmarkTrack1K(b *testing.B)      { benchTrack(b, smallTable(), smallKeys()) }
func BenchmarkTrack1M(b *testing.B)      { benchTrack(b, bigTable(), bigKeys()) }
func BenchmarkTrackBatch1K(b *testing.B) { benchTrackBatch(b, smallTable(), smallKeys()) }
func BenchmarkTrackBatch1M(b *testing.B) { benchTrackBatch(b, bigTable(), bigKeys()) }

func BenchmarkLookup1M(b *testing.B) {
	t, ks := bigTable(), bigKeys()
	var c Conn
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if !t.Lookup(ks[i&(million-1)], 1, &c) {
			b.Fatal("miss")
		}
	}
}

// Sequential creation order: the arena is walked in order, as a burst of
// packets of recently created flows would.
func BenchmarkTrack1MSequential(b *testing.B) {
	t := bigTable()
	var c Conn
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if !t.Track(benchKey(i&(million-1)), TCPAck, 1, &c) {
			b.Fatal("miss")
		}
	}
}

// Create in steady state: each op creates one connection and expires the
// one created half a table earlier.
func BenchmarkCreate(b *testing.B) {
	t, err := New(Config{Capacity: million, Seed: 5})
	if err != nil {
		b.Fatal(err)
	}
	half := million / 2
	fill(b, t, half)
	d := newDest("10.1.0.1", 8080, spec.FwdMasq)
	nc := NewConn{Dest: d, Fwd: spec.FwdMasq}
	hs := make([]Handle, half)
	var c Conn
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := i & (half - 1)
		if hs[j] != 0 {
			t.ExpireNow(hs[j], 1)
		}
		nc.In = benchKey(half + i&(million-1))
		nc.In.Proto = ProtoUDP
		if err := t.Create(&nc, 0, 1, &c); err != nil {
			b.Fatal(err)
		}
		hs[j] = c.Handle
	}
}

// Reap scanning 1024 live, unexpired entries per call.
func BenchmarkReap1024(b *testing.B) {
	t := bigTable()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if t.Reap(2, 1024) != 0 {
			b.Fatal("expired")
		}
	}
}

// heapInUse returns the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestBytesPerConn measures the whole table's memory (arena, index,
// locks, registry) per live connection at 1 M entries. Budget: 160.
func TestBytesPerConn(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("fills a 1 M-entry table: skipped under -short and -race (it runs in the plain pass)")
	}
	before := heapInUse()
	tb, err := New(Config{Capacity: million})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, tb, million)
	after := heapInUse()
	per := float64(after-before) / float64(tb.Len())
	t.Logf("%.1f bytes per connection at %d connections", per, tb.Len())
	if per > 160 {
		t.Errorf("%.1f bytes per connection, budget 160", per)
	}
	runtime.KeepAlive(tb)
}
