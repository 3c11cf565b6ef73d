package connsync

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/uvs-lb/uvs/connsync/wire"
	"github.com/uvs-lb/uvs/internal/fuzzwatch"
	"github.com/uvs-lb/uvs/internal/wait"
)

// fakeSender records the messages a master writes.
type fakeSender struct {
	mu     sync.Mutex
	msgs   [][]byte
	fail   error
	closed bool
}

func (f *fakeSender) Write(b []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return 0, f.fail
	}
	f.msgs = append(f.msgs, append([]byte(nil), b...))
	return len(b), nil
}

func (f *fakeSender) Close() error { f.mu.Lock(); f.closed = true; f.mu.Unlock(); return nil }

func (f *fakeSender) sent() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.msgs...)
}

// decodeMsg returns the cports of msg's entries and its header.
func decodeMsg(t *testing.T, msg []byte) ([]uint16, wire.Result) {
	t.Helper()
	var ports []uint16
	r := wire.Decode(msg, func(e *wire.Entry) { ports = append(ports, e.CPort) })
	if r.Stop != wire.ReasonNone || r.DroppedEntries() != 0 {
		t.Fatalf("master sent a message a backup rejects: %+v", r)
	}
	return ports, r
}

func conn(i int) wire.Entry {
	e := wire.Entry{Proto: wire.ProtoTCP, Flags: wire.FwdDRoute, State: wire.TCPEstablished,
		CPort: uint16(i), VPort: 80, DPort: 80, Timeout: 900}
	e.CAddr = netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}).As16()
	e.VAddr = netip.MustParseAddr("10.10.10.10").As16()
	e.DAddr = netip.MustParseAddr("10.2.0.10").As16()
	return e
}

func masterCfg() Config {
	return Config{State: "master", Interface: "eth1", SyncID: 51}.WithDefaults(1500)
}

// TestMasterBatching drives the master's ticks by hand: entries pushed by
// two workers are packed 40 to a 1472-byte message, full messages leave
// at the next tick, the partly filled one when it is FlushTime old.
func TestMasterBatching(t *testing.T) {
	tap := NewTap()
	r1, r2 := tap.NewRing(), tap.NewRing()
	out := &fakeSender{}
	m := newMaster(masterCfg(), tap, zap.NewNop(), out)
	for i := range 60 {
		e := conn(i)
		r1.Push(&e)
	}
	for i := 60; i < 90; i++ {
		e := conn(i)
		r2.Push(&e)
	}
	t0 := time.Unix(1000, 0)
	m.tick(t0)
	msgs := out.sent()
	if len(msgs) != 2 {
		t.Fatalf("after the first tick %d messages were sent, want 2 full ones", len(msgs))
	}
	want := 0
	for _, msg := range msgs {
		ports, r := decodeMsg(t, msg)
		if len(ports) != 40 || len(msg) != 8+40*36 || r.SyncID != 51 || r.Version != 1 {
			t.Fatalf("message of %d entries, %d bytes, syncid %d, version %d", len(ports), len(msg), r.SyncID, r.Version)
		}
		for _, p := range ports {
			if int(p) != want {
				t.Fatalf("entries out of order: got cport %d, want %d", p, want)
			}
			want++
		}
	}
	// 10 entries wait in a partly filled message until it is 2 s old.
	e := conn(90)
	r2.Push(&e)
	m.tick(t0.Add(FlushTime - SendDelay))
	if n := len(out.sent()); n != 2 {
		t.Fatalf("a partly filled message was sent before it was %v old (%d messages)", FlushTime, n)
	}
	m.tick(t0.Add(FlushTime))
	msgs = out.sent()
	if len(msgs) != 3 {
		t.Fatalf("the partly filled message was not sent when %v old", FlushTime)
	}
	if ports, _ := decodeMsg(t, msgs[2]); len(ports) != 11 || ports[0] != 80 || ports[10] != 90 {
		t.Fatalf("last message holds %v, want 80..90", ports)
	}
	st := m.Stats()
	if st.Messages != 3 || st.Entries != 91 || st.Bytes != uint64(2*1448+8+11*36) || st.SendErrors != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Nothing queued: ticks send nothing.
	m.tick(t0.Add(10 * FlushTime))
	if len(out.sent()) != 3 {
		t.Fatal("an empty message was sent")
	}
}

func TestMasterVersionAndErrors(t *testing.T) {
	tap := NewTap()
	r := tap.NewRing()
	out := &fakeSender{}
	m := newMaster(masterCfg(), tap, zap.NewNop(), out)
	t0 := time.Unix(1000, 0)
	e := conn(1)
	r.Push(&e)
	m.tick(t0)
	// The policy switches to version 0: the version 1 message leaves at
	// once, the next entries go in version 0 messages; IPv6 ones are
	// skipped.
	tap.SetPolicy(Policy{Threshold: 3, Period: 50, Version: 0})
	e2, e6 := conn(2), conn(3)
	e6.IPv6 = true
	r.Push(&e2)
	r.Push(&e6)
	m.tick(t0.Add(SendDelay))
	m.tick(t0.Add(SendDelay + FlushTime))
	msgs := out.sent()
	if len(msgs) != 2 {
		t.Fatalf("%d messages, want 2", len(msgs))
	}
	if p, r := decodeMsg(t, msgs[0]); r.Version != 1 || len(p) != 1 || p[0] != 1 {
		t.Fatalf("first message version %d holds %v", r.Version, p)
	}
	if p, r := decodeMsg(t, msgs[1]); r.Version != 0 || len(p) != 1 || p[0] != 2 {
		t.Fatalf("second message version %d holds %v", r.Version, p)
	}
	if st := m.Stats(); st.Skipped != 1 {
		t.Fatalf("skipped %d, want 1", st.Skipped)
	}
	// A failing send drops the message and counts it.
	out.fail = errors.New("ENOBUFS")
	r.Push(&e2)
	m.tick(t0.Add(10 * FlushTime))
	m.tick(t0.Add(20 * FlushTime))
	if st := m.Stats(); st.SendErrors != 1 || st.Messages != 2 {
		t.Fatalf("stats after a failed send: %+v", st)
	}
}

func TestMasterRunAndClose(t *testing.T) {
	tap := NewTap()
	r := tap.NewRing()
	out := &fakeSender{}
	m := newMaster(masterCfg(), tap, zap.NewNop(), out)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- m.Run(ctx) }()
	wait.For(t, 5*time.Second, tap.Sending, "the tap to report Sending")
	if err := m.Run(ctx); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Run: %v", err)
	}
	for i := range 41 {
		e := conn(i)
		r.Push(&e)
	}
	wait.For(t, 5*time.Second, func() bool { return len(out.sent()) >= 1 }, "the full message to be sent")
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if tap.Sending() || !out.closed {
		t.Fatal("after Close the tap still reports Sending or the socket is open")
	}
	// The one entry left in the partly filled message was discarded.
	if st := m.Stats(); st.Discarded != 1 || st.Entries != 40 {
		t.Fatalf("stats %+v", st)
	}
}

func TestMasterPushAllocs(t *testing.T) {
	tap := NewTap()
	r := tap.NewRing()
	m := newMaster(masterCfg(), tap, zap.NewNop(), discard{})
	e := conn(1)
	now := time.Unix(1000, 0)
	if a := testing.AllocsPerRun(100, func() {
		for range 10 {
			r.Push(&e)
		}
		m.tick(now) // drains into the message buffer; nothing is sent
	}); a != 0 {
		t.Fatalf("push + drain: %v allocs per run, want 0", a)
	}
}

// recorder is an Applier that keeps copies of what it was given.
type recorder struct {
	mu       sync.Mutex
	entries  []wire.Entry
	versions []int
}

func (r *recorder) Apply(e *wire.Entry, version int) {
	r.mu.Lock()
	r.entries = append(r.entries, *e)
	r.versions = append(r.versions, version)
	r.mu.Unlock()
}

func (r *recorder) got() []wire.Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]wire.Entry(nil), r.entries...)
}

func TestBackupHandle(t *testing.T) {
	mk := func(syncID uint8) (*Backup, *recorder) {
		rec := &recorder{}
		cfg := Config{State: "backup", Interface: "eth1", SyncID: syncID}.WithDefaults(1500)
		return newBackup(cfg, rec, zap.NewNop(), nil), rec
	}
	e := conn(7)
	v1, _ := wire.EncodeV1(nil, 51, 1472, []wire.Entry{e})
	v1other, _ := wire.EncodeV1(nil, 52, 1472, []wire.Entry{e})
	v0, _ := wire.EncodeV0(nil, 51, 1472, []wire.Entry{e})

	b, rec := mk(51)
	b.handle(v1)
	b.handle(v0)
	b.handle(v1other)
	if got := rec.got(); len(got) != 2 || got[0] != e || rec.versions[0] != 1 || rec.versions[1] != 0 {
		t.Fatalf("applied %+v versions %v", got, rec.versions)
	}
	if st := b.Stats(); st.Messages != 3 || st.Applied != 2 || st.WrongSyncID != 1 || st.RejectedTotal() != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Malformed input changes nothing: a truncated message, one whose
	// only entry has another version, one with a bad state.
	bad := [][]byte{v1[:len(v1)-1], append(v1[:len(v1):len(v1)], 0), {1, 2, 3}}
	ver := append([]byte(nil), v1...)
	ver[10] |= 0x10
	state := append([]byte(nil), v1...)
	state[17] = 99
	bad = append(bad, ver, state)
	for _, m := range bad {
		b.handle(m)
	}
	st := b.Stats()
	if len(rec.got()) != 2 || st.Rejected[wire.ReasonBogusSize] != 2 || st.Rejected[wire.ReasonShort] != 1 ||
		st.Rejected[wire.ReasonEntryVersion] != 1 || st.Rejected[wire.ReasonState] != 1 {
		t.Fatalf("after malformed input: %d applied, stats %+v", len(rec.got()), st)
	}

	// Syncid 0 accepts every master.
	b0, rec0 := mk(0)
	b0.handle(v1)
	b0.handle(v1other)
	if len(rec0.got()) != 2 {
		t.Fatalf("syncid 0 applied %d entries, want 2", len(rec0.got()))
	}
}

// chanConn feeds a backup datagrams from a channel.
type chanConn struct {
	in       chan []byte
	deadline chan struct{}
	once     sync.Once
	closed   chan struct{}
}

func newChanConn() *chanConn {
	return &chanConn{in: make(chan []byte, 10), deadline: make(chan struct{}), closed: make(chan struct{})}
}

func (c *chanConn) Read(b []byte) (int, error) {
	select {
	case m := <-c.in:
		return copy(b, m), nil
	case <-c.deadline:
		return 0, os.ErrDeadlineExceeded
	case <-c.closed:
		return 0, net.ErrClosed
	}
}

func (c *chanConn) SetReadDeadline(time.Time) error {
	c.once.Do(func() { close(c.deadline) })
	return nil
}

func (c *chanConn) Close() error { close(c.closed); return nil }

func TestBackupRun(t *testing.T) {
	rec := &recorder{}
	cfg := Config{State: "backup", Interface: "eth1", SyncID: 51}.WithDefaults(1500)
	c := newChanConn()
	b := newBackup(cfg, rec, zap.NewNop(), c)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- b.Run(ctx) }()
	es := make([]wire.Entry, 50)
	for i := range es {
		es[i] = conn(i)
	}
	msg, n := wire.EncodeV1(nil, 51, 1472, es)
	// A datagram longer than maxlen is truncated and fails the size check.
	long, _ := wire.EncodeV1(nil, 51, 65507, es)
	c.in <- msg
	c.in <- long
	wait.For(t, 5*time.Second, func() bool { return b.Stats().Messages == 2 }, "2 messages read")
	if got := rec.got(); len(got) != n {
		t.Fatalf("applied %d entries, want %d", len(got), n)
	}
	if st := b.Stats(); st.Rejected[wire.ReasonBogusSize] != 1 {
		t.Fatalf("a truncated datagram was not rejected: %+v", st)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestBackupHandleAllocs(t *testing.T) {
	rec := &countApplier{}
	cfg := Config{State: "backup", Interface: "eth1", SyncID: 51}.WithDefaults(1500)
	b := newBackup(cfg, rec, zap.NewNop(), nil)
	es := make([]wire.Entry, 40)
	for i := range es {
		es[i] = conn(i)
	}
	msg, _ := wire.EncodeV1(nil, 51, 1472, es)
	if a := testing.AllocsPerRun(100, func() { b.handle(msg) }); a != 0 {
		t.Fatalf("handle: %v allocs per message, want 0", a)
	}
	if rec.n == 0 {
		t.Fatal("nothing applied")
	}
}

type countApplier struct{ n int }

func (c *countApplier) Apply(*wire.Entry, int) { c.n++ }

func TestUnknownInterface(t *testing.T) {
	_, err := NewMaster(Config{State: "master", Interface: "uvs-no-such0"}, NewTap(), nil)
	if err == nil || !errors.Is(err, syscall.ENODEV) || !strings.Contains(err.Error(), "uvs-no-such0") {
		t.Fatalf("NewMaster on a missing interface: %v", err)
	}
	_, err = NewBackup(Config{State: "backup", Interface: "uvs-no-such0"}, &recorder{}, nil)
	if err == nil || !errors.Is(err, syscall.ENODEV) || !strings.Contains(err.Error(), "uvs-no-such0") {
		t.Fatalf("NewBackup on a missing interface: %v", err)
	}
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) Close() error                { return nil }

// BenchmarkMasterEntry is the master's cost per synced connection: a
// worker's push, the drain, the encoding and the send (to a discarding
// socket). At 10 k new connections per second the master handles about
// 10 k–20 k entries per second (connections and their templates).
func BenchmarkMasterEntry(b *testing.B) {
	b.ReportAllocs()
	tap := NewTap()
	r := tap.NewRing()
	m := newMaster(masterCfg(), tap, zap.NewNop(), discard{})
	e := conn(1)
	now := time.Unix(1000, 0)
	for i := 0; b.Loop(); i++ {
		r.Push(&e)
		if i&255 == 255 {
			m.tick(now)
		}
	}
}

// BenchmarkBackupMessage is the backup's cost per full message (40
// entries) from the read buffer to the Applier.
func BenchmarkBackupMessage(b *testing.B) {
	b.ReportAllocs()
	cfg := Config{State: "backup", Interface: "eth1", SyncID: 51}.WithDefaults(1500)
	bk := newBackup(cfg, &countApplier{}, zap.NewNop(), nil)
	es := make([]wire.Entry, 40)
	for i := range es {
		es[i] = conn(i)
	}
	msg, _ := wire.EncodeV1(nil, 51, 1472, es)
	for b.Loop() {
		bk.handle(msg)
	}
}

// FuzzBackupHandle feeds the backup arbitrary datagrams: it never panics,
// applies nothing from a message of another syncid or of a wrong size,
// and counts every applied entry.
func FuzzBackupHandle(f *testing.F) {
	es := []wire.Entry{conn(1), conn(2)}
	m1, _ := wire.EncodeV1(nil, 51, 1472, es)
	m0, _ := wire.EncodeV0(nil, 51, 1472, es)
	m52, _ := wire.EncodeV1(nil, 52, 1472, es)
	f.Add(m1)
	f.Add(m0)
	f.Add(m52)
	f.Add([]byte{0, 51, 0, 4})
	f.Fuzz(func(t *testing.T, msg []byte) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("%d bytes %.200q", len(msg), msg) })()
		rec := &countApplier{}
		cfg := Config{State: "backup", Interface: "eth1", SyncID: 51}.WithDefaults(1500)
		b := newBackup(cfg, rec, zap.NewNop(), nil)
		b.handle(msg)
		st := b.Stats()
		if st.Applied != uint64(rec.n) || st.Messages != 1 {
			t.Fatalf("applied %d, counted %d", rec.n, st.Applied)
		}
		h, why := wire.ParseHeader(msg)
		if rec.n > 0 && (why != wire.ReasonNone || h.SyncID != 51) {
			t.Fatalf("applied %d entries of a message with header %+v (%v)", rec.n, h, why)
		}
		if why == wire.ReasonNone && h.SyncID != 51 && st.WrongSyncID != 1 {
			t.Fatalf("syncid %d not counted as wrong", h.SyncID)
		}
	})
}

// BenchmarkMasterEntryUDP is BenchmarkMasterEntry with a real UDP send
// (to a loopback socket nobody reads): the per-entry cost including its
// share of a send system call, 1/40 of one at the default maxlen.
func BenchmarkMasterEntryUDP(b *testing.B) {
	b.ReportAllocs()
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	c, err := net.DialUDP("udp4", nil, sink.LocalAddr().(*net.UDPAddr))
	if err != nil {
		b.Fatal(err)
	}
	tap := NewTap()
	r := tap.NewRing()
	m := newMaster(masterCfg(), tap, zap.NewNop(), c)
	defer m.Close()
	e := conn(1)
	now := time.Unix(1000, 0)
	for i := 0; b.Loop(); i++ {
		r.Push(&e)
		if i&255 == 255 {
			m.tick(now)
		}
	}
	b.ReportMetric(float64(m.Stats().Messages)/float64(b.N), "msgs/op")
}
