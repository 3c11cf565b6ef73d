package mmsg

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Hdr is struct mmsghdr.
type Hdr struct {
	Hdr unix.Msghdr
	Len uint32 // bytes sent, filled in by the kernel
}

// Batch is n messages for an AF_PACKET socket. Message i is addressed by
// Addrs[i] (Family AF_PACKET; the caller sets Ifindex and Protocol per
// send) and carries the niov iovecs Iovs[niov*i : niov*(i+1)], which the
// caller points at its data.
type Batch struct {
	Hdrs  []Hdr
	Iovs  []unix.Iovec
	Addrs []unix.RawSockaddrLinklayer
}

// NewBatch allocates and links a Batch of n messages with niov iovecs each.
func NewBatch(n, niov int) Batch {
	b := Batch{
		Hdrs:  make([]Hdr, n),
		Iovs:  make([]unix.Iovec, niov*n),
		Addrs: make([]unix.RawSockaddrLinklayer, n),
	}
	for i := range b.Hdrs {
		b.Addrs[i].Family = unix.AF_PACKET
		h := &b.Hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&b.Addrs[i]))
		h.Namelen = unix.SizeofSockaddrLinklayer
		h.Iov = &b.Iovs[niov*i]
		h.SetIovlen(niov)
	}
	return b
}

// Send calls sendmmsg(2) on fd with the messages hdrs (at least one) and
// flags. It returns how many messages the kernel took and the errno (0 on
// success; the kernel fails the call only when its first message fails).
// It does not allocate.
func Send(fd int, hdrs []Hdr, flags int) (int, unix.Errno) {
	r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd),
		uintptr(unsafe.Pointer(&hdrs[0])), uintptr(len(hdrs)), uintptr(flags), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), 0
}
