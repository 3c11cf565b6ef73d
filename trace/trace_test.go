package trace

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/fuzzwatch"
	"github.com/uvs-lb/uvs/sched"
	"github.com/uvs-lb/uvs/snapshot"
	"github.com/uvs-lb/uvs/spec"
)

func testService(t testing.TB) (*snapshot.Service, *sched.Dest) {
	t.Helper()
	key := spec.ServiceKey{Proto: spec.ProtoTCP, Addr: netip.MustParseAddr("10.0.0.100"), Port: 80}
	s, err := sched.NewService(spec.Service{Key: key, Scheduler: "rr"}, sched.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.AddDest(spec.Dest{Addr: netip.MustParseAddr("10.0.0.7"), Port: 80, Weight: 1})
	if err != nil {
		t.Fatal(err)
	}
	return &snapshot.Service{Key: key, Sched: s}, d
}

func TestRoundTrip(t *testing.T) {
	svc, _ := testService(t)
	path := filepath.Join(t.TempDir(), "trace.jsonl")
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	client := netip.MustParseAddrPort("192.168.10.6:20001")
	var why sched.Reason
	d := svc.Sched.ScheduleWhy(&sched.Flow{Proto: spec.ProtoTCP, Src: client.Addr(), SrcPort: client.Port()}, &why)
	w.Trace(svc, client, d, &why)
	w.Trace(svc, netip.MustParseAddrPort("192.168.10.6:20002"), nil, nil)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	recs, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2: %+v", len(recs), recs)
	}
	r := recs[0]
	if r.Service != "TCP 10.0.0.100:80" || r.Client != client || r.Real != netip.MustParseAddrPort("10.0.0.7:80") {
		t.Fatalf("record %+v", r)
	}
	if r.Why != why.String() || !strings.HasPrefix(r.Why, "rr chose 10.0.0.7:80") {
		t.Fatalf("why %q, want %q", r.Why, why.String())
	}
	if time.Since(r.Time) > time.Minute || r.Time.IsZero() {
		t.Fatalf("time %v", r.Time)
	}
	if recs[1].Real.IsValid() || recs[1].Why != "" {
		t.Fatalf("no-destination record %+v", recs[1])
	}
	// Trace after Close drops instead of panicking.
	w.Trace(svc, client, d, &why)
	if w.Dropped() != 1 {
		t.Fatalf("dropped %d after Close, want 1", w.Dropped())
	}
}

// blockingWriter holds the writer goroutine until released, so the queue
// fills.
type blockingWriter struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	release chan struct{}
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	<-b.release
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}
func (b *blockingWriter) Close() error { return nil }

func TestDropsWhenFull(t *testing.T) {
	svc, d := testService(t)
	bw := &blockingWriter{release: make(chan struct{})}
	w := NewWriter(bw, 2)
	var why sched.Reason
	for i := 0; i < 50; i++ {
		w.Trace(svc, netip.AddrPortFrom(netip.MustParseAddr("192.168.10.6"), uint16(20000+i)), d, &why)
	}
	if w.Dropped() == 0 {
		t.Fatal("no decision dropped with a queue of 2 and a stuck writer")
	}
	close(bw.release)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	recs, err := Read(&bw.buf)
	if err != nil {
		t.Fatal(err)
	}
	var kept, dropped uint64
	for _, r := range recs {
		if r.Dropped > 0 {
			dropped += r.Dropped
		} else {
			kept++
		}
	}
	if kept+dropped != 50 || dropped != w.Dropped() {
		t.Fatalf("kept %d + dropped lines %d, counter %d: want 50 in all", kept, dropped, w.Dropped())
	}
}

// TestTraceAllocs: Trace, the worker's side, allocates nothing. The
// writer is built without its background loop: AllocsPerRun counts every
// goroutine's allocations, and the loop's JSON encoding, run whenever the
// scheduler switches to it (a preemption on a loaded machine), is not
// Trace's.
func TestTraceAllocs(t *testing.T) {
	svc, d := testService(t)
	w := &Writer{ch: make(chan event, 1<<16)}
	var why sched.Reason
	client := netip.MustParseAddrPort("192.168.10.6:20001")
	if n := testing.AllocsPerRun(1000, func() { w.Trace(svc, client, d, &why) }); n != 0 {
		t.Fatalf("Trace allocates %v times per call, want 0", n)
	}
}

func TestReadErrors(t *testing.T) {
	good := `{"time":"2025-01-01T00:00:00Z","service":"FWM 3","client":"10.0.0.1:1","real":"10.0.0.7:0","why":"sh chose"}`
	recs, err := Read(strings.NewReader(good + "\n" + `{"time":"2025-01`))
	if err != nil || len(recs) != 1 || recs[0].Service != "FWM 3" {
		t.Fatalf("torn last line: %v %+v", err, recs)
	}
	_, err = Read(strings.NewReader("nonsense\n" + good + "\n"))
	if err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("malformed line error %v, want one naming line 1", err)
	}
	if recs, err := ReadFile(filepath.Join(t.TempDir(), "missing")); err != nil || recs != nil {
		t.Fatalf("missing file: %v %v", recs, err)
	}
}

func FuzzRead(f *testing.F) {
	f.Add([]byte(`{"time":"2025-01-01T00:00:00Z","service":"TCP 10.0.0.100:80","client":"10.0.0.1:1","real":"10.0.0.7:80","why":"rr chose 10.0.0.7:80"}` + "\n"))
	f.Add([]byte(`{"time":"2025-01-01T00:00:00Z","dropped":3}` + "\n{}\n"))
	f.Add([]byte("\n\n{\"client\":\"[fd00::1]:80\"}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("%d bytes %.200q", len(b), b) })()
		recs, err := Read(bytes.NewReader(b))
		if err != nil {
			return
		}
		// Every record read encodes and reads back the same.
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		for _, r := range recs {
			if err := enc.Encode(r); err != nil {
				t.Fatalf("encode %+v: %v", r, err)
			}
		}
		again, err := Read(&buf)
		if err != nil || len(again) != len(recs) {
			t.Fatalf("re-read: %v (%d records, want %d)", err, len(again), len(recs))
		}
		for i := range recs {
			a, b := recs[i], again[i]
			if !a.Time.Equal(b.Time) || a.Service != b.Service || a.Client != b.Client || a.Real != b.Real || a.Why != b.Why || a.Dropped != b.Dropped {
				t.Fatalf("record %d: %+v became %+v", i, a, b)
			}
		}
	})
}
