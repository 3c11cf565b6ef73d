package realserver

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uvs-lb/uvs/internal/wait"
)

// dgramPair returns a datagram socket pair: packets written to w are read
// from r (a blocking socket a blockingReader can own).
func dgramPair(t *testing.T) (r, w int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	t.Cleanup(func() { unix.Close(fds[1]) })
	return fds[0], fds[1]
}

// TestBlockingReaderBatch: one ReadBatch returns every queued packet, each
// at Headroom in its own buffer, with its length.
func TestBlockingReaderBatch(t *testing.T) {
	rfd, wfd := dgramPair(t)
	b := NewBatch(8)
	r, err := newBlockingReader(rfd, b.Bufs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); r.ReadBatch(b.Bufs, b.Sizes) })
	want := [][]byte{bytes.Repeat([]byte{1}, 10), bytes.Repeat([]byte{2}, 1500), {3}}
	for _, p := range want {
		if _, err := unix.Write(wfd, p); err != nil {
			t.Fatal(err)
		}
	}
	n, err := r.ReadBatch(b.Bufs, b.Sizes)
	if err != nil || n != len(want) {
		t.Fatalf("ReadBatch = %d, %v; want %d packets", n, err, len(want))
	}
	for i, p := range want {
		if got := b.Bufs[i][Headroom : Headroom+b.Sizes[i]]; !bytes.Equal(got, p) {
			t.Errorf("packet %d: %d bytes, want %d", i, len(got), len(p))
		}
	}
}

// TestBlockingReaderClose: Close wakes a ReadBatch blocked on an empty
// socket, which closes the descriptor and returns os.ErrClosed, as every
// later call does.
func TestBlockingReaderClose(t *testing.T) {
	rfd, _ := dgramPair(t)
	b := NewBatch(4)
	r, err := newBlockingReader(rfd, b.Bufs)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	tid := make(chan int, 1)
	go func() {
		runtime.LockOSThread() // ReadBatch would, but the tid is needed first
		tid <- unix.Gettid()
		_, err := r.ReadBatch(b.Bufs, b.Sizes)
		done <- err
	}()
	// Close once the reader sleeps in recvmmsg (the thread's state S, in
	// a socket wait), so that Close has to wake it.
	stat := fmt.Sprintf("/proc/self/task/%d/wchan", <-tid)
	wait.For(t, 5*time.Second, func() bool {
		w, err := os.ReadFile(stat)
		return err == nil && strings.Contains(string(w), "wait_for_more_packets")
	}, "the reader blocked in recvmmsg")
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrClosed) {
			t.Fatalf("ReadBatch after Close: %v, want os.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake the blocked ReadBatch")
	}
	r.mu.Lock()
	gone := r.gone
	r.mu.Unlock()
	if !gone {
		t.Error("the reader did not close its descriptor")
	}
	if _, err := r.ReadBatch(b.Bufs, b.Sizes); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("second ReadBatch: %v, want os.ErrClosed", err)
	}
}

func TestBlockingReaderNoAllocs(t *testing.T) {
	rfd, wfd := dgramPair(t)
	b := NewBatch(4)
	r, err := newBlockingReader(rfd, b.Bufs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); r.ReadBatch(b.Bufs, b.Sizes) })
	pkt := make([]byte, 100)
	if a := testing.AllocsPerRun(100, func() {
		_, _ = unix.Write(wfd, pkt)
		if n, err := r.ReadBatch(b.Bufs, b.Sizes); n != 1 || err != nil {
			t.Fatalf("ReadBatch = %d, %v", n, err)
		}
	}); a != 0 {
		t.Fatalf("ReadBatch allocates %.1f times", a)
	}
}

// TestBlockingReaderCloseIdle: a reader that is not reading closes its
// descriptor in Close (a source opened but never served leaks nothing).
func TestBlockingReaderCloseIdle(t *testing.T) {
	rfd, _ := dgramPair(t)
	b := NewBatch(2)
	r, err := newBlockingReader(rfd, b.Bufs)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	r.mu.Lock()
	gone := r.gone
	r.mu.Unlock()
	if !gone {
		t.Fatal("Close left the idle reader's descriptor open")
	}
	if _, err := r.ReadBatch(b.Bufs, b.Sizes); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("ReadBatch after Close: %v, want os.ErrClosed", err)
	}
}
