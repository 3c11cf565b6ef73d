package afpacket

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"golang.org/x/net/bpf"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/internal/wait"
)

// TestCloseKeepsLentFrames: Close while a worker still holds the frames of
// its last batch (the director closes the sockets before the workers stop)
// must leave them readable and writable; the next ReadBatch returns
// ErrClosed and unmaps the ring.
func TestCloseKeepsLentFrames(t *testing.T) {
	tp := newTopo(t, false)
	s := open(t, tp.a, Config{Interface: "va", PollTimeout: 20 * time.Millisecond})
	c := udpConn(t, tp.b, 0)
	const port, count = 9020, 5
	for i := range count {
		sendUDP(t, c, ipA, port, fmt.Sprintf("lent%d", i))
	}
	frames := make([]dataplane.Frame, 16)
	var got []dataplane.Frame
	wait.ForBlocking(t, testTimeout, func() bool {
		n, err := s.ReadBatch(frames)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range frames[:n] {
			if u, ok := parseUDP4(f.Data()); ok && u.dport == port {
				got = append(got, f)
			}
		}
		return len(got) > 0
	}, "a frame to port %d", port)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// The worker goes on with its batch: read and rewrite in place.
	for _, f := range got {
		u, ok := parseUDP4(f.Data())
		if !ok || len(u.payload) < 4 || u.payload[:4] != "lent" {
			t.Fatalf("frame changed after Close: %q", u.payload)
		}
		d := f.Data()
		d[len(d)-1] ^= 0xff
	}
	if s.ring == nil {
		t.Fatal("Close unmapped the ring while frames were out")
	}
	if _, err := s.ReadBatch(frames); !errors.Is(err, dataplane.ErrClosed) {
		t.Fatalf("ReadBatch after Close: %v, want ErrClosed", err)
	}
	if s.ring != nil {
		t.Fatal("the ring is still mapped after the read that follows Close")
	}
}

// TestCloseUnmapsIdleRing: with no frames out, Close unmaps at once.
func TestCloseUnmapsIdleRing(t *testing.T) {
	tp := newTopo(t, false)
	// A filter that accepts nothing: the ring stays empty.
	none, err := bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: 0}})
	if err != nil {
		t.Fatal(err)
	}
	s := open(t, tp.a, Config{Interface: "va", Filter: none, PollTimeout: time.Millisecond})
	if n, err := s.ReadBatch(make([]dataplane.Frame, 4)); err != nil || n != 0 {
		t.Fatalf("ReadBatch on an idle ring: %d, %v", n, err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if s.ring != nil {
		t.Fatal("Close left an idle ring mapped")
	}
}

// TestSetPollTimeout: a socket configured to wait forever returns from an
// empty read once given a finite timeout, and waits again (until Close)
// once it is restored.
func TestSetPollTimeout(t *testing.T) {
	tp := newTopo(t, false)
	none, err := bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: 0}})
	if err != nil {
		t.Fatal(err)
	}
	s := open(t, tp.a, Config{Interface: "va", Filter: none, PollTimeout: -1})
	read := func() chan error {
		done := make(chan error, 1)
		go func() {
			n, err := s.ReadBatch(make([]dataplane.Frame, 4))
			if err == nil && n != 0 {
				err = fmt.Errorf("read %d frames through a drop-all filter", n)
			}
			done <- err
		}()
		return done
	}
	s.SetPollTimeout(5 * time.Millisecond)
	select {
	case err := <-read():
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(testTimeout):
		t.Fatal("ReadBatch with a 5 ms poll timeout did not return")
	}
	s.SetPollTimeout(0)
	done := read()
	select {
	case err := <-done:
		t.Fatalf("ReadBatch returned (%v) with the configured timeout (none) restored", err)
	case <-time.After(50 * time.Millisecond):
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, dataplane.ErrClosed) {
		t.Fatalf("ReadBatch after Close: %v", err)
	}
}
