package afxdp

import (
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/dataplane/internal/mmsg"
)

// IO is the packet I/O of one worker: AF_XDP sockets (typically one per
// served interface, for the worker's queue) polled together. It implements
// dataplane.PacketIO.
//
// ReadBatch and WriteBatch may each be called by one goroutine at a time
// (the two may run concurrently); Close and Stats may be called from any
// goroutine.
type IO struct {
	socks []*Socket
	// txBy maps an ifindex to the socket that transmits on it (the first
	// socket of the IO bound to that interface).
	txBy []txSocket
	fb   fallback
	// vfb sends super-frames and partial checksums with a
	// virtio_net_hdr; gro builds the super-frames (nil: NoCoalesce).
	vfb     fallback
	gro     *coalescer
	efd     int
	pfds    []unix.PollFd
	pollMs  int
	pollNow atomic.Int32 // poll timeout in force (SetPollTimeout)
	retries int
	next    int // socket ReadBatch starts with (round robin)

	rmu sync.Mutex // receive side: sockets' fill and RX rings, held frames
	wmu sync.Mutex // transmit side: TX and completion rings, fallback
	cmu sync.Mutex // Close against Stats

	closed      atomic.Bool
	umemPending bool // closed with frames handed out: unmap at the next ReadBatch (rmu)

	// Counters kept outside the sockets (read by Stats while running).
	rxFrames, rxPolls, txFrames, txRingFull, txTooBig atomic.Uint64
	txFallback, txErrors, txGSO                       atomic.Uint64
}

type txSocket struct {
	ifindex int
	s       *Socket
}

var _ dataplane.PacketIO = (*IO)(nil)

// Open creates one socket per bind (all with cfg) and returns them as one
// IO. It needs CAP_NET_RAW (and CAP_NET_ADMIN, CAP_BPF or root for the
// program that feeds the sockets). Register the sockets (IO.Sockets) with
// the Program of their interfaces.
func Open(cfg Config, binds []Bind) (*IO, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if len(binds) == 0 {
		return nil, errors.New("afxdp: open: no interface to bind")
	}
	x := &IO{efd: -1, fb: fallback{fd: -1}, vfb: fallback{fd: -1, vnet: true}, retries: c.TxRetries}
	if c.PollTimeout < 0 {
		x.pollMs = -1
	} else {
		x.pollMs = int((c.PollTimeout + time.Millisecond - 1) / time.Millisecond)
	}
	x.pollNow.Store(int32(x.pollMs))
	for _, b := range binds {
		s, err := openSocket(&c, b)
		if err != nil {
			_ = x.release()
			return nil, err
		}
		x.socks = append(x.socks, s)
		found := false
		for _, t := range x.txBy {
			found = found || t.ifindex == b.Ifindex
		}
		if !found {
			x.txBy = append(x.txBy, txSocket{b.Ifindex, s})
		}
	}
	if err := x.fb.open(dataplane.BatchSize); err != nil {
		_ = x.release()
		return nil, err
	}
	if !c.NoCoalesce {
		if err := x.vfb.open(dataplane.BatchSize); err != nil {
			_ = x.release()
			return nil, err
		}
		x.gro = newCoalescer(PacketHeadroom + c.Headroom)
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		_ = x.release()
		return nil, opError("eventfd", err)
	}
	x.efd = efd
	for _, s := range x.socks {
		x.pfds = append(x.pfds, unix.PollFd{Fd: int32(s.fd), Events: unix.POLLIN})
	}
	x.pfds = append(x.pfds, unix.PollFd{Fd: int32(efd), Events: unix.POLLIN})
	return x, nil
}

// release closes whatever Open created. The UMEM of a socket whose frames
// are still handed out (the worker may be processing the last batch) stays
// mapped until the next ReadBatch, which the worker calls when it is done
// with them.
func (x *IO) release() error {
	var errs []error
	for _, s := range x.socks {
		keep := len(s.held) > 0
		x.umemPending = x.umemPending || keep
		if err := s.release(keep); err != nil {
			errs = append(errs, err)
		}
	}
	x.fb.close()
	x.vfb.close()
	if x.efd >= 0 {
		_ = unix.Close(x.efd)
		x.efd = -1
	}
	return errors.Join(errs...)
}

// closedRead is ReadBatch on a closed IO: it unmaps the UMEMs Close had to
// leave mapped, since the caller is done with the frames of its last batch.
func (x *IO) closedRead() (int, error) {
	if x.umemPending {
		x.umemPending = false
		for _, s := range x.socks {
			_ = s.freeUMEM()
		}
	}
	return 0, dataplane.ErrClosed
}

// Sockets returns the IO's sockets, for Program.Register.
func (x *IO) Sockets() []*Socket { return x.socks }

// ReadBatch implements dataplane.PacketIO. It first returns the frames of
// the previous batch to their fill rings, then fills frames from the RX
// rings, starting with a different socket each call, and waits up to the
// poll timeout if all are empty. Each frame's Buf is its whole UMEM frame:
// Buf[:Off] is headroom (at least PacketHeadroom + Config.Headroom bytes).
// CsumUnknown is set on every frame.
//
// Unless Config.NoCoalesce is set, the TCP segments of one flow in the
// batch are merged into a super-frame (see gro.go) held in a buffer of the
// IO: Frame.GSO and Offload set, a partial checksum at CsumStart and
// CsumOffset, headroom as for a received frame.
func (x *IO) ReadBatch(frames []dataplane.Frame) (int, error) {
	x.rmu.Lock()
	defer x.rmu.Unlock()
	if x.closed.Load() {
		return x.closedRead()
	}
	for _, s := range x.socks {
		s.refill()
	}
	var deadline time.Time
	ns := len(x.socks)
	for {
		n := 0
		for i := 0; i < ns && n < len(frames); i++ {
			j := x.next + i
			if j >= ns {
				j -= ns
			}
			n += x.socks[j].receive(frames[n:])
		}
		if x.next++; x.next >= ns {
			x.next = 0
		}
		if n > 0 {
			x.rxFrames.Add(uint64(n))
			if x.gro != nil {
				n = x.gro.coalesce(frames[:n])
			}
			return n, nil
		}
		if len(frames) == 0 {
			return 0, nil
		}
		x.rxPolls.Add(1)
		ok, err := x.wait(&deadline)
		if errors.Is(err, dataplane.ErrClosed) {
			return x.closedRead()
		}
		if err != nil || !ok {
			return 0, err
		}
	}
}

// SetPollTimeout implements dataplane.PollTimeoutSetter: it changes how
// long the next ReadBatch calls wait for a frame (negative: until one
// arrives); 0 restores Config.PollTimeout. Safe for concurrent use.
func (x *IO) SetPollTimeout(d time.Duration) {
	ms := x.pollMs
	switch {
	case d < 0:
		ms = -1
	case d > 0:
		ms = int((d + time.Millisecond - 1) / time.Millisecond)
	}
	x.pollNow.Store(int32(ms))
}

var _ dataplane.PollTimeoutSetter = (*IO)(nil)

// wait polls the sockets until one may have a frame (true), the poll
// timeout passes (false) or the IO is closed.
func (x *IO) wait(deadline *time.Time) (bool, error) {
	ms := int(x.pollNow.Load())
	if ms >= 0 {
		now := time.Now()
		if deadline.IsZero() {
			*deadline = now.Add(time.Duration(ms) * time.Millisecond)
		} else {
			left := deadline.Sub(now)
			if left <= 0 {
				return false, nil
			}
			ms = int((left + time.Millisecond - 1) / time.Millisecond)
		}
	}
	for i := range x.pfds {
		x.pfds[i].Revents = 0
	}
	n, err := unix.Poll(x.pfds, ms)
	if x.closed.Load() || x.pfds[len(x.pfds)-1].Revents != 0 {
		return false, dataplane.ErrClosed
	}
	switch {
	case errors.Is(err, unix.EINTR):
		return true, nil
	case err != nil:
		return false, opError("poll", err)
	case n == 0:
		return false, nil
	}
	return true, nil
}

// WriteBatch implements dataplane.PacketIO: it copies each frame into a
// transmit frame of the socket bound to its Ifindex and has the kernel send
// them; frames for interfaces without a socket of this IO leave through an
// AF_PACKET socket. It returns how many frames were handed to the kernel.
// Frames that find no free transmit frame or TX ring entry after
// Config.TxRetries kicks are dropped and counted (Stats.TxRingFull), and so
// are frames longer than a UMEM frame (Stats.TxTooBig).
func (x *IO) WriteBatch(frames []dataplane.Frame) (int, error) {
	x.wmu.Lock()
	defer x.wmu.Unlock()
	if x.closed.Load() {
		return 0, dataplane.ErrClosed
	}
	queued, fellBack := 0, 0
	for i := range frames {
		f := &frames[i]
		if x.vfb.fd >= 0 && f.Offload && (f.CsumPartial || f.GSO.IsGSO()) {
			if x.vfb.add(f) {
				fellBack += x.flushVnet()
			}
			continue
		}
		s := x.txSocket(f.Ifindex)
		if s == nil {
			if x.fb.add(f) {
				fellBack += x.flushFallback()
			}
			continue
		}
		data := f.Buf[f.Off : f.Off+f.Len]
		if uint64(len(data)) > s.frameSize {
			x.txTooBig.Add(1)
			continue
		}
		ok := s.enqueue(data)
		for try := 0; !ok && try < x.retries; try++ {
			s.flush(x.retries)
			ok = s.enqueue(data)
		}
		if !ok {
			x.txRingFull.Add(1)
			continue
		}
		queued++
	}
	for _, t := range x.txBy {
		if t.s.txQueued {
			t.s.flush(x.retries)
		}
	}
	x.txFrames.Add(uint64(queued))
	fellBack += x.flushFallback()
	fellBack += x.flushVnet()
	return queued + fellBack, nil
}

func (x *IO) txSocket(ifindex int) *Socket {
	for i := range x.txBy {
		if x.txBy[i].ifindex == ifindex {
			return x.txBy[i].s
		}
	}
	return nil
}

// flushFallback sends the frames queued on the AF_PACKET socket and returns
// how many the kernel took.
func (x *IO) flushFallback() int {
	sent, refused := x.fb.flush()
	x.txFallback.Add(uint64(sent))
	x.txErrors.Add(uint64(refused))
	return sent
}

// flushVnet sends the frames queued with a virtio_net_hdr and returns how
// many the kernel took.
func (x *IO) flushVnet() int {
	if x.vfb.n == 0 {
		return 0
	}
	sent, refused := x.vfb.flush()
	x.txGSO.Add(uint64(sent))
	x.txErrors.Add(uint64(refused))
	return sent
}

// Stats returns the IO's counters since Open, with the kernel's
// XDP_STATISTICS summed over the sockets.
func (x *IO) Stats() (Stats, error) {
	x.cmu.Lock()
	defer x.cmu.Unlock()
	if x.closed.Load() {
		return Stats{}, dataplane.ErrClosed
	}
	var st Stats
	// The per-socket counters are written under rmu and wmu.
	x.rmu.Lock()
	for _, s := range x.socks {
		st.RxInvalid += s.st.RxInvalid
		st.FillShort += s.st.FillShort
	}
	if x.gro != nil {
		st.RxSuper, st.RxMerged = x.gro.supers, x.gro.merged
	}
	x.rmu.Unlock()
	x.wmu.Lock()
	for _, s := range x.socks {
		st.TxKicks += s.st.TxKicks
		st.TxBusy += s.st.TxBusy
	}
	x.wmu.Unlock()
	st.RxFrames = x.rxFrames.Load()
	st.RxPolls = x.rxPolls.Load()
	st.TxFrames = x.txFrames.Load()
	st.TxRingFull = x.txRingFull.Load()
	st.TxTooBig = x.txTooBig.Load()
	st.TxFallback = x.txFallback.Load()
	st.TxErrors = x.txErrors.Load()
	st.TxGSO = x.txGSO.Load()
	var errs []error
	for _, s := range x.socks {
		k, err := s.kernelStats()
		if err != nil {
			errs = append(errs, opError("getsockopt XDP_STATISTICS", err))
			continue
		}
		st.KernelRxDropped += k.Rx_dropped
		st.KernelRxInvalidDescs += k.Rx_invalid_descs
		st.KernelTxInvalidDescs += k.Tx_invalid_descs
		st.KernelRxRingFull += k.Rx_ring_full
		st.KernelRxFillRingEmpty += k.Rx_fill_ring_empty_descs
		st.KernelTxRingEmpty += k.Tx_ring_empty_descs
	}
	return st, errors.Join(errs...)
}

// Close implements dataplane.PacketIO: it wakes a blocked ReadBatch (which
// returns dataplane.ErrClosed), waits for ReadBatch and WriteBatch calls in
// progress, and closes the sockets (the kernel removes them from their
// XSKMAPs). Frames of the last batch stay valid until the next ReadBatch,
// which returns dataplane.ErrClosed and unmaps the UMEMs; without that call
// they stay mapped. Closing twice is a no-op.
func (x *IO) Close() error {
	if !x.closed.CompareAndSwap(false, true) {
		return nil
	}
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	_, _ = unix.Write(x.efd, one[:])
	x.rmu.Lock()
	x.wmu.Lock()
	x.cmu.Lock()
	defer x.cmu.Unlock()
	defer x.wmu.Unlock()
	defer x.rmu.Unlock()
	return x.release()
}

// fallback transmits frames for interfaces without an AF_XDP socket through
// an unbound AF_PACKET socket with sendmmsg. With vnet the socket has
// PACKET_VNET_HDR and each message a virtio_net_hdr (its first iovec) in
// front of the frame: super-frames and partial checksums leave whole.
type fallback struct {
	fd    int
	n     int
	vnet  bool
	hdrs  []mmsg.Hdr
	iovs  []unix.Iovec
	addrs []unix.RawSockaddrLinklayer
	vhdrs [][dataplane.VnetHdrLen]byte
}

func (fb *fallback) open(batch int) error {
	// Protocol 0: the socket receives nothing.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return opError("fallback socket", err)
	}
	niov := 1
	if !fb.vnet {
		_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1)
	} else {
		// No PACKET_QDISC_BYPASS: __dev_direct_xmit drops an skb that
		// validate_xmit_skb replaced, so a super-frame for a device
		// without TSO (or checksum offload) would be lost instead of
		// segmented in software. dev_queue_xmit on a veth (noqueue) is
		// a direct call too.
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
			_ = unix.Close(fd)
			return opError("setsockopt PACKET_VNET_HDR", err)
		}
		niov = 2
		// Room for a batch of super-frames in flight. SO_SNDBUFFORCE
		// passes net.core.wmem_max (CAP_NET_ADMIN); without it take
		// what SO_SNDBUF grants.
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, vnetSendBuffer) != nil {
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, vnetSendBuffer)
		}
	}
	fb.fd = fd
	b := mmsg.NewBatch(batch, niov)
	fb.hdrs, fb.iovs, fb.addrs = b.Hdrs, b.Iovs, b.Addrs
	if fb.vnet {
		fb.vhdrs = make([][dataplane.VnetHdrLen]byte, batch)
		for j := range fb.vhdrs {
			fb.iovs[2*j].Base = &fb.vhdrs[j][0]
			fb.iovs[2*j].SetLen(dataplane.VnetHdrLen)
		}
	}
	return nil
}

func (fb *fallback) close() {
	if fb.fd >= 0 {
		_ = unix.Close(fb.fd)
		fb.fd = -1
	}
}

// add queues f and reports whether the batch is full.
func (fb *fallback) add(f *dataplane.Frame) bool {
	data := f.Buf[f.Off : f.Off+f.Len]
	if len(data) < 14 {
		return false
	}
	j := fb.n
	iov := &fb.iovs[j]
	if fb.vnet {
		putVnet(&fb.vhdrs[j], f, data)
		iov = &fb.iovs[2*j+1]
	}
	iov.Base = &data[0]
	iov.SetLen(len(data))
	fb.addrs[j].Ifindex = int32(f.Ifindex)
	fb.addrs[j].Protocol = binary.NativeEndian.Uint16(data[12:14])
	fb.n++
	return fb.n == len(fb.hdrs)
}

// flush sends the queued frames; it returns how many the kernel took and
// how many it refused (or had no room for).
func (fb *fallback) flush() (sent, refused int) {
	i, busy := 0, 0
	for i < fb.n {
		r, e := mmsg.Send(fb.fd, fb.hdrs[i:fb.n], unix.MSG_DONTWAIT)
		if e == 0 && r > 0 {
			sent += r
			i += r
			busy = 0
			continue
		}
		if (e == unix.EAGAIN || e == unix.ENOBUFS) && busy < fallbackRetries {
			// The send buffer is full (super-frames of up to 64 KB in
			// flight): wait briefly for room, then try again.
			busy++
			pfd := [1]unix.PollFd{{Fd: int32(fb.fd), Events: unix.POLLOUT}}
			_, _ = unix.Poll(pfd[:], fallbackWaitMillis)
			continue
		}
		// The first message failed: skip it.
		refused++
		i++
		busy = 0
	}
	step := 1
	if fb.vnet {
		step = 2
	}
	for j := range fb.n {
		fb.iovs[step*j+step-1].Base = nil // keep no frame alive
	}
	fb.n = 0
	return sent, refused
}

const (
	// vnetSendBuffer is the send buffer of the vnet fallback socket.
	vnetSendBuffer = 8 << 20
	// fallbackRetries bounds the waits for send-buffer space per frame,
	// fallbackWaitMillis each one.
	fallbackRetries    = 4
	fallbackWaitMillis = 2
)

// putVnet is dataplane.PutVnetHdr with hdr_len clamped to the frame: the
// merged and rewritten frames this fallback sends are never refused for it.
func putVnet(v *[dataplane.VnetHdrLen]byte, f *dataplane.Frame, data []byte) {
	dataplane.PutVnetHdr(v, f, data)
	if hl := binary.NativeEndian.Uint16(v[dataplane.VnetHdrLenOff:]); int(hl) > len(data) {
		binary.NativeEndian.PutUint16(v[dataplane.VnetHdrLenOff:], uint16(len(data)))
	}
}
