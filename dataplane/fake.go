package dataplane

import (
	"sync"
	"time"
)

// FakeIO is an in-memory PacketIO for tests: frames injected with Inject are
// returned by ReadBatch, and frames passed to WriteBatch are copied into a
// queue read with Sent. It lets the whole pipeline run without root.
type FakeIO struct {
	mu       sync.Mutex
	cond     *sync.Cond
	in       []fakeFrame
	out      []Frame
	closed   bool
	headroom int
	bufs     [][]byte
	poll     time.Duration
}

type fakeFrame struct {
	data        []byte
	ifindex     int
	csumPartial bool
}

// NewFakeIO returns a fake whose frames carry headroom bytes in front (as
// the ring backend's PACKET_RESERVE does) and whose ReadBatch waits at most
// poll for a frame.
func NewFakeIO(headroom int, poll time.Duration) *FakeIO {
	f := &FakeIO{headroom: headroom, poll: poll}
	f.cond = sync.NewCond(&f.mu)
	return f
}

// Inject queues a received frame (copied) on interface ifindex.
func (f *FakeIO) Inject(frame []byte, ifindex int, csumPartial bool) {
	f.mu.Lock()
	f.in = append(f.in, fakeFrame{append([]byte(nil), frame...), ifindex, csumPartial})
	f.mu.Unlock()
	f.cond.Broadcast()
}

// Sent removes and returns the frames written so far (copies).
func (f *FakeIO) Sent() []Frame {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.out
	f.out = nil
	return out
}

// Pending reports how many injected frames have not been read yet.
func (f *FakeIO) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.in)
}

// ReadBatch implements PacketIO.
func (f *FakeIO) ReadBatch(frames []Frame) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.in) == 0 && !f.closed {
		t := time.AfterFunc(f.poll, f.cond.Broadcast)
		f.cond.Wait()
		t.Stop()
	}
	if f.closed {
		return 0, ErrClosed
	}
	n := 0
	for n < len(frames) && len(f.in) > 0 {
		ff := f.in[0]
		f.in = f.in[1:]
		if n >= len(f.bufs) {
			f.bufs = append(f.bufs, make([]byte, f.headroom+65536))
		}
		buf := f.bufs[n]
		copy(buf[f.headroom:], ff.data)
		frames[n] = Frame{Buf: buf, Off: f.headroom, Len: len(ff.data), Ifindex: ff.ifindex, CsumPartial: ff.csumPartial}
		n++
	}
	return n, nil
}

// WriteBatch implements PacketIO.
func (f *FakeIO) WriteBatch(frames []Frame) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, ErrClosed
	}
	for _, fr := range frames {
		data := append([]byte(nil), fr.Data()...)
		f.out = append(f.out, Frame{Buf: data, Len: len(data), Ifindex: fr.Ifindex})
	}
	return len(frames), nil
}

// Close implements PacketIO.
func (f *FakeIO) Close() error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.cond.Broadcast()
	return nil
}
