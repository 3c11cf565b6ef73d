package realserver

import (
	"os"
	"runtime"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// blockingReader reads batches from a blocking raw socket with recvmmsg
// on a thread of its own, outside the runtime's poller. A socket in the
// poller stays registered with epoll, so the kernel runs the epoll
// callback (and often wakes the poller thread, which then wakes the
// reading goroutine's thread) for every packet it queues; a reader
// blocked in recvmmsg is woken once, directly, and packets queued while
// it runs find no waiter (sock_def_readable → skwq_has_sleeper).
//
// Close marks the reader closed: a descriptor not being read is closed at
// once; a ReadBatch blocked in recvmmsg is woken by shutting the socket
// down for reading, and closes the descriptor itself on its way out (so
// that the descriptor number is never closed, and perhaps reused, under a
// running recvmmsg). Every ReadBatch after Close returns os.ErrClosed.
type blockingReader struct {
	fd   int
	hdrs []mmsghdr
	iovs []unix.Iovec
	// mu guards the state below; taken twice per batch, never per packet.
	mu      sync.Mutex
	closed  bool // Close was called
	reading bool // a recvmmsg is (about to be) running on fd
	gone    bool // fd has been closed
	locked  bool // the reading goroutine is locked to its thread
}

// newBlockingReader prepares recvmmsg over bufs, each packet at Headroom,
// on fd, which it puts in blocking mode and from now on owns.
func newBlockingReader(fd int, bufs [][]byte) (*blockingReader, error) {
	if err := unix.SetNonblock(fd, false); err != nil {
		return nil, err
	}
	r := &blockingReader{fd: fd, hdrs: make([]mmsghdr, len(bufs)), iovs: make([]unix.Iovec, len(bufs))}
	for i, b := range bufs {
		r.iovs[i].Base = &b[Headroom]
		r.iovs[i].SetLen(len(b) - Headroom)
	}
	return r, nil
}

// ReadBatch implements BatchReader; bufs must be the buffers given to
// newBlockingReader. It blocks until at least one packet is there and
// returns every packet then queued, up to len(bufs).
func (r *blockingReader) ReadBatch(_ [][]byte, sizes []int) (int, error) {
	if !r.locked {
		// The blocking recvmmsg holds this thread; the runtime hands
		// the P to another thread while it waits.
		runtime.LockOSThread()
		r.locked = true
	}
	for {
		r.mu.Lock()
		if r.closed {
			r.closeFD()
			r.mu.Unlock()
			return 0, os.ErrClosed
		}
		r.reading = true
		r.mu.Unlock()
		for i := range r.hdrs {
			h := &r.hdrs[i].hdr
			*h = unix.Msghdr{Iov: &r.iovs[i]}
			h.SetIovlen(1)
		}
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(r.fd), uintptr(unsafe.Pointer(&r.hdrs[0])),
			uintptr(len(r.hdrs)), unix.MSG_WAITFORONE, 0, 0)
		r.mu.Lock()
		r.reading = false
		closed := r.closed
		r.mu.Unlock()
		switch {
		case closed:
			continue // shut down while reading: close and report it
		case e == unix.EINTR || e == unix.EAGAIN:
			continue
		case e != 0:
			return 0, e
		}
		for i := range int(n) {
			sizes[i] = int(r.hdrs[i].len)
		}
		return int(n), nil
	}
}

// closeFD closes the descriptor once; r.mu is held.
func (r *blockingReader) closeFD() {
	if !r.gone {
		unix.Close(r.fd)
		r.gone = true
	}
}

// Close wakes a blocked ReadBatch, which then closes the descriptor, or
// closes it at once when no ReadBatch runs.
func (r *blockingReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	if r.reading {
		_ = unix.Shutdown(r.fd, unix.SHUT_RD)
	} else {
		r.closeFD()
	}
	return nil
}
