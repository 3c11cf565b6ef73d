// Package trace records the director's scheduling decisions as JSON lines
// (uvsd --trace FILE) and reads them back for uvs-lab, which prints the
// reason for each request next to the real server that answered it.
//
// The worker side (Writer.Trace) copies the decision into a buffered
// channel without allocating or blocking; one goroutine formats and writes
// the lines. When the channel is full the decision is dropped and counted,
// and the count is written as its own line once the writer catches up.
package trace

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uvs-lb/uvs/sched"
	"github.com/uvs-lb/uvs/snapshot"
	"github.com/uvs-lb/uvs/spec"
)

// Record is one line of a trace file: a scheduling decision, or (Dropped >
// 0) the number of decisions that could not be recorded.
type Record struct {
	Time    time.Time      `json:"time"`
	Service string         `json:"service,omitempty"` // "TCP 10.0.0.100:80", "FWM 3"
	Client  netip.AddrPort `json:"client,omitzero"`
	Real    netip.AddrPort `json:"real,omitzero"` // unset: no destination available
	Why     string         `json:"why,omitempty"`
	Dropped uint64         `json:"dropped,omitempty"`
}

// DefaultBuffer is the number of decisions the writer queues before it
// starts dropping.
const DefaultBuffer = 4096

type event struct {
	t       time.Time
	key     spec.ServiceKey
	client  netip.AddrPort
	real    netip.AddrPort
	hasReal bool
	why     sched.Reason
	hasWhy  bool
}

// Writer writes decisions to a file. Trace may be called from any number of
// goroutines; Close ends the writer.
type Writer struct {
	ch      chan event
	stop    chan struct{}
	done    chan struct{}
	closed  atomic.Bool
	dropped atomic.Uint64
	out     io.WriteCloser
	once    sync.Once
	err     error
}

// Create opens (truncating) path and starts a writer with DefaultBuffer.
func Create(path string) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	return NewWriter(f, DefaultBuffer), nil
}

// NewWriter starts a writer on out that queues up to buffer decisions.
func NewWriter(out io.WriteCloser, buffer int) *Writer {
	if buffer < 1 {
		buffer = 1
	}
	w := &Writer{ch: make(chan event, buffer), stop: make(chan struct{}), done: make(chan struct{}), out: out}
	go w.loop()
	return w
}

// Trace records one decision; it has director.Config.Trace's signature. It
// never blocks and does not allocate: a full queue drops the decision and
// counts it.
func (w *Writer) Trace(svc *snapshot.Service, client netip.AddrPort, d *sched.Dest, why *sched.Reason) {
	if w.closed.Load() {
		w.dropped.Add(1)
		return
	}
	var e event
	e.t = time.Now()
	if svc != nil {
		e.key = svc.Key
	}
	e.client = client
	if d != nil {
		e.real, e.hasReal = d.AddrPort(), true
	}
	if why != nil {
		e.why, e.hasWhy = *why, true
	}
	select {
	case w.ch <- e:
	default:
		w.dropped.Add(1)
	}
}

// Dropped returns the number of decisions dropped so far.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

// Close stops accepting decisions, writes what is queued and closes the
// file. It returns the first write error.
func (w *Writer) Close() error {
	w.once.Do(func() {
		w.closed.Store(true)
		close(w.stop)
		<-w.done
		if err := w.out.Close(); err != nil && w.err == nil {
			w.err = err
		}
	})
	return w.err
}

func (w *Writer) loop() {
	defer close(w.done)
	bw := bufio.NewWriter(w.out)
	enc := json.NewEncoder(bw)
	var reported uint64
	write := func(e *event) {
		if err := enc.Encode(e.record()); err != nil && w.err == nil {
			w.err = err
		}
	}
	flush := func() {
		if n := w.dropped.Load(); n != reported {
			if err := enc.Encode(Record{Time: time.Now(), Dropped: n - reported}); err != nil && w.err == nil {
				w.err = err
			}
			reported = n
		}
		if err := bw.Flush(); err != nil && w.err == nil {
			w.err = err
		}
	}
	for {
		select {
		case e := <-w.ch:
			write(&e)
			// Write what is queued, then flush once: readers see a
			// decision within microseconds when the director is idle.
			for more := true; more; {
				select {
				case e := <-w.ch:
					write(&e)
				default:
					more = false
				}
			}
			flush()
		case <-w.stop:
			for {
				select {
				case e := <-w.ch:
					write(&e)
				default:
					flush()
					return
				}
			}
		}
	}
}

func (e *event) record() Record {
	r := Record{Time: e.t, Service: serviceName(e.key), Client: e.client}
	if e.hasReal {
		r.Real = e.real
	}
	if e.hasWhy {
		r.Why = e.why.String()
	}
	return r
}

// serviceName is ipvsadm -Ln's spelling of a service: "TCP  VIP:port"
// without the padding, or "FWM  mark".
func serviceName(k spec.ServiceKey) string {
	if k.IsFWMark() {
		return fmt.Sprintf("FWM %d", k.FWMark)
	}
	if !k.Addr.IsValid() {
		return ""
	}
	proto := "TCP"
	switch k.Proto {
	case spec.ProtoUDP:
		proto = "UDP"
	case spec.ProtoSCTP:
		proto = "SCTP"
	}
	return proto + " " + netip.AddrPortFrom(k.Addr, k.Port).String()
}

// Read parses a trace file's lines. A torn last line (the writer is still
// writing) is ignored; any other malformed line is an error naming its
// line number.
func Read(r io.Reader) ([]Record, error) {
	var out []Record
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	line := 0
	var pending error
	for sc.Scan() {
		line++
		if pending != nil {
			return out, pending
		}
		b := sc.Bytes()
		if len(b) == 0 {
			continue
		}
		var rec Record
		if err := json.Unmarshal(b, &rec); err != nil {
			pending = fmt.Errorf("trace: line %d: %w", line, err)
			continue
		}
		out = append(out, rec)
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("trace: %w", err)
	}
	return out, nil
}

// ReadFile reads a trace file; a missing file is an empty trace.
func ReadFile(path string) ([]Record, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	defer f.Close()
	return Read(f)
}
