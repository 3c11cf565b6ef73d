//go:build linux

package capture

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/sys/unix"

	"github.com/uvs-lb/uvs/internal/netnsdo"
)

const (
	// rcvBuf is the socket receive buffer asked for, so that a burst is
	// not dropped while the file is written.
	rcvBuf = 8 << 20
	// vlanRoom is kept in front of each received frame to put back an
	// 802.1Q tag that offload removed, without moving the frame.
	vlanRoom = 4
	// maxDrain bounds how many already-queued frames Stop still writes.
	maxDrain = 1 << 16
	// fileBuf is the size of the buffered writer in front of the file.
	fileBuf = 1 << 16
)

// Control-message payload sizes: tpacket_auxdata and the SO_TIMESTAMPNS
// timespec; oobSpace has room for both.
var (
	auxLen   = int(unsafe.Sizeof(unix.TpacketAuxdata{}))
	tsLen    = int(unsafe.Sizeof(unix.Timespec{}))
	oobSpace = unix.CmsgSpace(auxLen) + unix.CmsgSpace(tsLen)
)

// Start opens an AF_PACKET socket on iface inside the network namespace
// /run/netns/netnsName ("" means the caller's namespace) and writes every
// frame it sees in either direction to a new pcap file at path, until Stop.
// The capture is live when Start returns. The socket is created on a
// throw-away OS thread switched into the namespace and used from an
// ordinary goroutine afterwards.
func Start(netnsName, iface, path string) (*Capture, error) {
	if iface == "" {
		return nil, errors.New("capture: no interface name given")
	}
	if path == "" {
		return nil, fmt.Errorf("capture: interface %q: no output file given", iface)
	}
	var fd int
	err := inNetNS(netnsName, func() error {
		var err error
		fd, err = openSocket(iface)
		return err
	})
	if err != nil {
		if netnsName != "" {
			return nil, fmt.Errorf("capture: netns %q interface %q: %w", netnsName, iface, err)
		}
		return nil, fmt.Errorf("capture: interface %q: %w", iface, err)
	}
	sock := os.NewFile(uintptr(fd), "packet:"+iface)
	out, err := os.Create(path)
	if err != nil {
		sock.Close()
		return nil, fmt.Errorf("capture: %w", err)
	}
	bw := bufio.NewWriterSize(out, fileBuf)
	w := pcapgo.NewWriterNanos(bw)
	if err := w.WriteFileHeader(Snaplen, layers.LinkTypeEthernet); err != nil {
		sock.Close()
		out.Close()
		return nil, fmt.Errorf("capture: %s: %w", path, err)
	}
	rc, err := sock.SyscallConn()
	if err != nil {
		sock.Close()
		out.Close()
		return nil, fmt.Errorf("capture: %w", err)
	}
	c := &Capture{}
	r := newReader(rc, w, &c.count)
	done := make(chan error, 1)
	go func() { done <- r.run() }()
	c.stop = func() error {
		// No new frame enters the socket queue after this, so draining
		// the queue below terminates and loses nothing already queued.
		var errs []error
		if err := rc.Control(func(fd uintptr) { errs = append(errs, dropAll(int(fd))) }); err != nil {
			errs = append(errs, err)
		}
		if err := sock.SetReadDeadline(time.Now()); err != nil {
			// Without a deadline the reader only stops when the
			// socket is closed; queued frames are then lost.
			errs = append(errs, fmt.Errorf("capture: %w", err))
			sock.Close()
		}
		rerr := <-done
		errs = append([]error{rerr}, errs...)
		if rerr == nil {
			errs = append(errs, r.drain())
		}
		errs = append(errs, sock.Close())
		if err := bw.Flush(); err != nil {
			errs = append(errs, fmt.Errorf("capture: %s: %w", path, err))
		}
		if err := out.Close(); err != nil {
			errs = append(errs, fmt.Errorf("capture: %s: %w", path, err))
		}
		for _, err := range errs {
			if err != nil && !errors.Is(err, os.ErrClosed) {
				return err
			}
		}
		return nil
	}
	return c, nil
}

// openSocket creates a non-blocking packet socket bound to iface for all
// protocols, with auxiliary data (for VLAN tags), kernel receive
// timestamps and a large receive buffer. It runs inside the target
// namespace.
func openSocket(iface string) (int, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return -1, err
	}
	// Protocol 0 receives nothing until bind, so no frame of another
	// interface gets queued in between.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf); err != nil {
		// Not privileged for FORCE: take what rmem_max allows.
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("setsockopt PACKET_AUXDATA", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("setsockopt SO_TIMESTAMPNS", err)
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("bind", err)
	}
	return fd, nil
}

// dropAll attaches a classic BPF program that accepts no frame.
func dropAll(fd int) error {
	prog := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
	fp := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fp); err != nil {
		return fmt.Errorf("capture: %w", os.NewSyscallError("setsockopt SO_ATTACH_FILTER", err))
	}
	return nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// inNetNS runs fn on a throw-away OS thread switched into the named
// namespace (see internal/netnsdo), or directly when name is empty.
func inNetNS(name string, fn func() error) error {
	if name == "" {
		return fn()
	}
	return netnsdo.Do(name, fn)
}

// reader reads frames from the socket into one preallocated buffer and
// writes them to the pcap writer. Nothing is allocated per frame.
type reader struct {
	rc    syscall.RawConn
	w     *pcapgo.Writer
	count *atomic.Int64

	buf []byte // vlanRoom + Snaplen: the frame is received at buf[vlanRoom:]
	oob []byte
	iov unix.Iovec
	msg unix.Msghdr

	// Result of the last recv: n is the frame's full length (MSG_TRUNC),
	// oobn the control bytes; errno is EAGAIN when nothing was queued.
	n, oobn int
	errno   syscall.Errno

	recvFn func(fd uintptr) bool // r.recv, bound once
}

func newReader(rc syscall.RawConn, w *pcapgo.Writer, count *atomic.Int64) *reader {
	r := &reader{
		rc:    rc,
		w:     w,
		count: count,
		buf:   make([]byte, vlanRoom+Snaplen),
		oob:   make([]byte, oobSpace),
	}
	r.iov.Base = &r.buf[vlanRoom]
	r.iov.SetLen(Snaplen)
	r.msg.Iov = &r.iov
	r.msg.SetIovlen(1)
	r.msg.Control = &r.oob[0]
	r.recvFn = r.recv
	return r
}

// recv receives one frame without blocking. It returns false (and sets
// errno to EAGAIN) when the queue is empty, which makes RawConn.Read wait
// for the socket to become readable.
func (r *reader) recv(fd uintptr) bool {
	r.msg.SetControllen(len(r.oob))
	r.msg.Flags = 0
	n, _, e := unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&r.msg)), unix.MSG_TRUNC|unix.MSG_DONTWAIT)
	r.errno = e
	if e == unix.EAGAIN {
		return false
	}
	r.n, r.oobn = int(n), int(r.msg.Controllen)
	return true
}

// run reads and writes frames until the read deadline passes (nil) or an
// error that is not transient happens.
func (r *reader) run() error {
	for {
		if err := r.rc.Read(r.recvFn); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil
			}
			return fmt.Errorf("capture: read: %w", err)
		}
		if done, err := r.handle(); done {
			return err
		}
	}
}

// drain writes the frames still queued on the socket.
func (r *reader) drain() error {
	var err error
	cerr := r.rc.Control(func(fd uintptr) {
		for range maxDrain {
			if !r.recv(fd) {
				return
			}
			var done bool
			if done, err = r.handle(); done {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return cerr
}

// handle deals with the result of one recv: it writes the frame, skips
// transient errors, and reports done with the error that ends the capture.
func (r *reader) handle() (done bool, err error) {
	switch r.errno {
	case 0:
	case unix.EINTR, unix.ENETDOWN:
		// ENETDOWN is reported once when the interface goes down; the
		// socket receives again when it comes back up.
		return false, nil
	default:
		return true, fmt.Errorf("capture: %w", os.NewSyscallError("recvmsg", r.errno))
	}
	data, length, ts := r.frame()
	ci := gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(data), Length: length}
	if err := r.w.WritePacket(ci, data); err != nil {
		return true, fmt.Errorf("capture: write: %w", err)
	}
	r.count.Add(1)
	return false, nil
}

// frame returns the received frame (at most Snaplen bytes), its original
// length and its kernel receive time, with a VLAN tag that offload had
// moved into the auxiliary data put back after the MAC addresses.
func (r *reader) frame() (data []byte, length int, ts time.Time) {
	caplen := min(r.n, Snaplen)
	data, length = r.buf[vlanRoom:vlanRoom+caplen], r.n
	tci, tpid, tagged, ts := r.control()
	if ts.IsZero() {
		ts = time.Now()
	}
	if !tagged || caplen < 2*6 {
		return data, length, ts
	}
	copy(r.buf[0:12], r.buf[vlanRoom:vlanRoom+12])
	binary.BigEndian.PutUint16(r.buf[12:], tpid)
	binary.BigEndian.PutUint16(r.buf[14:], tci)
	return r.buf[:min(vlanRoom+caplen, Snaplen)], length + vlanRoom, ts
}

// control reads the frame's control messages: the VLAN tag reported in
// tpacket_auxdata and the SO_TIMESTAMPNS receive time.
func (r *reader) control() (tci, tpid uint16, tagged bool, ts time.Time) {
	hdr := unix.CmsgLen(0)
	for off := 0; off+hdr <= r.oobn; {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&r.oob[off]))
		l := int(h.Len)
		if l < hdr || off+l > r.oobn {
			break
		}
		data := unsafe.Pointer(&r.oob[off+hdr])
		switch {
		case h.Level == unix.SOL_PACKET && h.Type == unix.PACKET_AUXDATA && l >= unix.CmsgLen(auxLen):
			aux := (*unix.TpacketAuxdata)(data)
			if aux.Status&unix.TP_STATUS_VLAN_VALID != 0 {
				tci, tpid, tagged = aux.Vlan_tci, uint16(layers.EthernetTypeDot1Q), true
				if aux.Status&unix.TP_STATUS_VLAN_TPID_VALID != 0 {
					tpid = aux.Vlan_tpid
				}
			}
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && l >= unix.CmsgLen(tsLen):
			t := (*unix.Timespec)(data)
			ts = time.Unix(t.Unix())
		}
		off += unix.CmsgSpace(l - hdr)
	}
	return tci, tpid, tagged, ts
}
