package realserver

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// tunDev is the decapsulator's TUN device.
type tunDev struct {
	*os.File
	name string
	// vnet is set when every write starts with a virtio_net_hdr
	// (IFF_VNET_HDR), which lets the decapsulator write coalesced TCP
	// super-frames.
	vnet bool
}

// Name returns the device's name.
func (t *tunDev) Name() string { return t.name }

// tunOffloads are the offloads announced with TUNSETOFFLOAD. They describe
// what the device accepts from the kernel (packets the stack routes into
// it, none in normal operation); what we write with a virtio_net_hdr is
// accepted whatever they are (tun_get_user → virtio_net_hdr_to_skb).
// TUN_F_USO4/6 exist from Linux 6.2; older kernels refuse the whole set
// with EINVAL, so the request is retried without them.
var tunOffloads = []int{
	unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6 | unix.TUN_F_USO4 | unix.TUN_F_USO6,
	unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6,
}

// openTUN creates the TUN device name (IFF_TUN, no packet information).
// With vnet it asks for IFF_VNET_HDR and the offloads; a kernel that
// refuses either gets a plain device (vnet false in the result), as does
// vnet=false.
func openTUN(name string, vnet bool) (*tunDev, error) {
	if vnet {
		t, err := openTUNFlags(name, true)
		if err == nil {
			return t, nil
		}
		if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EPERM) {
			return nil, err
		}
	}
	return openTUNFlags(name, false)
}

func openTUNFlags(name string, vnet bool) (*tunDev, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	fail := func(op string, err error) (*tunDev, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("TUN %s: %s: %w", name, op, err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return fail("name", err)
	}
	flags := uint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if vnet {
		flags |= unix.IFF_VNET_HDR
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		return fail("TUNSETIFF", err)
	}
	if vnet {
		// The 10-byte struct virtio_net_hdr (the default size, set
		// explicitly in case it ever changes).
		if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, vnetHdrLen); err != nil {
			return fail("TUNSETVNETHDRSZ", err)
		}
		var oerr error
		for _, off := range tunOffloads {
			if oerr = unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, off); oerr == nil {
				break
			}
		}
		if oerr != nil {
			return fail("TUNSETOFFLOAD", oerr)
		}
	}
	// Non-blocking: the file is then pollable (reads with deadlines,
	// Close wakes a blocked reader).
	return &tunDev{File: os.NewFile(uintptr(fd), "tun"), name: ifr.Name(), vnet: vnet}, nil
}

// mmsghdr is struct mmsghdr (x/sys/unix has no recvmmsg wrapper).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// mmsgReader reads batches from a socket with recvmmsg, through the
// runtime's poller. It is a BatchReader for the buffers it was made with.
type mmsgReader struct {
	rc   syscall.RawConn
	hdrs []mmsghdr
	iovs []unix.Iovec
	n    int
	err  error
	fn   func(fd uintptr) bool // made once: no closure allocation per read
}

// newMmsgReader prepares recvmmsg over bufs, each packet at Headroom.
func newMmsgReader(rc syscall.RawConn, bufs [][]byte) *mmsgReader {
	r := &mmsgReader{rc: rc, hdrs: make([]mmsghdr, len(bufs)), iovs: make([]unix.Iovec, len(bufs))}
	for i, b := range bufs {
		r.iovs[i].Base = &b[Headroom]
		r.iovs[i].SetLen(len(b) - Headroom)
	}
	r.fn = r.recv
	return r
}

// recv is the RawConn.Read callback: false asks the poller to wait.
func (r *mmsgReader) recv(fd uintptr) bool {
	for i := range r.hdrs {
		h := &r.hdrs[i].hdr
		*h = unix.Msghdr{Iov: &r.iovs[i]}
		h.SetIovlen(1)
	}
	for {
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])),
			uintptr(len(r.hdrs)), unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			r.n = int(n)
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		r.err = e
		return true
	}
}

// ReadBatch implements BatchReader; bufs must be the buffers given to
// newMmsgReader.
func (r *mmsgReader) ReadBatch(_ [][]byte, sizes []int) (int, error) {
	r.n, r.err = 0, nil
	if err := r.rc.Read(r.fn); err != nil {
		return 0, err
	}
	if r.err != nil {
		return 0, r.err
	}
	for i := range r.n {
		sizes[i] = int(r.hdrs[i].len)
	}
	return r.n, nil
}
