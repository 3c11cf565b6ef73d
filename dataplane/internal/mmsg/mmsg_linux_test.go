package mmsg_test

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/uvs-lb/uvs/dataplane/internal/mmsg"
	"github.com/uvs-lb/uvs/internal/netnstest"
)

func TestNewBatchLinks(t *testing.T) {
	const n, niov = 4, 2
	b := mmsg.NewBatch(n, niov)
	if len(b.Hdrs) != n || len(b.Addrs) != n || len(b.Iovs) != n*niov {
		t.Fatalf("sizes %d/%d/%d, want %d/%d/%d", len(b.Hdrs), len(b.Addrs), len(b.Iovs), n, n, n*niov)
	}
	for i := range b.Hdrs {
		h := &b.Hdrs[i].Hdr
		if h.Name != (*byte)(unsafe.Pointer(&b.Addrs[i])) || h.Namelen != unix.SizeofSockaddrLinklayer {
			t.Errorf("message %d: name not its sockaddr_ll", i)
		}
		if h.Iov != &b.Iovs[niov*i] || h.Iovlen != niov {
			t.Errorf("message %d: iovecs not Iovs[%d:%d]", i, niov*i, niov*(i+1))
		}
		if b.Addrs[i].Family != unix.AF_PACKET {
			t.Errorf("message %d: family %d", i, b.Addrs[i].Family)
		}
	}
}

// TestSend sends frames on the loopback of a throw-away namespace, reads
// them back from a capturing socket, and checks that Send does not
// allocate and reports a refused first message.
func TestSend(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	ns := netnstest.New(t, "mm")
	const proto = 0x88b5 // IEEE local experimental EtherType
	var tx, rx int
	if err := ns.Do(func() error {
		var err error
		if tx, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		if rx, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(proto))); err != nil {
			return err
		}
		return unix.Bind(rx, &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: 1})
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(tx); unix.Close(rx) })
	if err := unix.SetsockoptTimeval(rx, unix.SOL_SOCKET, unix.SO_RCVTIMEO, ptr(unix.NsecToTimeval(int64(5*time.Second)))); err != nil {
		t.Fatal(err)
	}

	frames := make([][]byte, 3)
	b := mmsg.NewBatch(len(frames), 1)
	for i := range frames {
		f := make([]byte, 60)
		binary.BigEndian.PutUint16(f[12:], proto)
		f[14] = byte(i + 1)
		frames[i] = f
		b.Iovs[i].Base = &f[0]
		b.Iovs[i].SetLen(len(f))
		b.Addrs[i].Ifindex = 1 // lo
		b.Addrs[i].Protocol = htons(proto)
	}
	n, e := mmsg.Send(tx, b.Hdrs, unix.MSG_DONTWAIT)
	if e != 0 || n != len(frames) {
		t.Fatalf("Send = %d, %v; want %d, 0", n, e, len(frames))
	}
	buf := make([]byte, 128)
	for i := range frames {
		m, _, err := unix.Recvfrom(rx, buf, 0)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(buf[:m], frames[i]) {
			t.Fatalf("frame %d: got % x, want % x", i, buf[:m], frames[i])
		}
	}

	allocs := testing.AllocsPerRun(20, func() {
		if n, e := mmsg.Send(tx, b.Hdrs[:1], unix.MSG_DONTWAIT); n != 1 || e != 0 {
			t.Fatalf("Send = %d, %v", n, e)
		}
	})
	if allocs != 0 {
		t.Errorf("Send allocates %.1f times per call", allocs)
	}

	b.Addrs[0].Ifindex = 1 << 20 // no such interface
	if n, e := mmsg.Send(tx, b.Hdrs, unix.MSG_DONTWAIT); n != 0 || e == 0 {
		t.Fatalf("Send to a missing interface = %d, %v; want 0 and an errno", n, e)
	}
}

func ptr[T any](v T) *T { return &v }

// htons returns v in network byte order, as sockaddr_ll wants it.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
