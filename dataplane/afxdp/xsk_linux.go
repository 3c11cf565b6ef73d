package afxdp

import (
	"errors"
	"fmt"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/uvs-lb/uvs/dataplane"
)

// bindBusyWait is how long binding retries a queue another socket holds.
const bindBusyWait = 3 * time.Second

// xdpMaxTxSkbBudget is XDP_MAX_TX_SKB_BUDGET (Linux 6.17): how many frames
// one sendto transmits in copy mode (the kernel's default is 32).
const xdpMaxTxSkbBudget = 9

// Socket is one AF_XDP socket bound to an (interface, queue) with its own
// UMEM. The first FillRingSize UMEM frames receive (they circulate between
// the fill ring, the RX ring and the frames ReadBatch handed out); the
// others transmit (a free list refilled from the completion ring). A Socket
// is driven by the IO that owns it and is not safe for concurrent use.
type Socket struct {
	fd       int
	ifindex  int
	queue    int
	zeroCopy bool

	umem      []byte
	frameSize uint64
	rings     [4][]byte // mmapped fill, completion, rx, tx

	fill, comp, rx, tx ring

	txFree []uint64 // free transmit frames (UMEM addresses)
	held   []uint64 // receive frames handed out by the last ReadBatch

	txQueued bool // descriptors written to the TX ring since the last flush

	st Stats // receive and transmit counters (guarded by the IO)
}

// openSocket creates a socket as c (with defaults applied) describes and
// binds it to b. The socket lives in the caller's network namespace.
func openSocket(c *Config, b Bind) (*Socket, error) {
	if b.Ifindex <= 0 || b.Queue < 0 {
		return nil, fmt.Errorf("afxdp: bad interface %d queue %d", b.Ifindex, b.Queue)
	}
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, opError("socket", err)
	}
	s := &Socket{fd: fd, ifindex: b.Ifindex, queue: b.Queue, frameSize: uint64(c.FrameSize)}
	if err := s.setup(c); err != nil {
		_ = s.release(false)
		return nil, fmt.Errorf("interface %d queue %d: %w", b.Ifindex, b.Queue, err)
	}
	return s, nil
}

func (s *Socket) setup(c *Config) error {
	size := c.Frames * c.FrameSize
	umem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return opError("mmap umem", err)
	}
	s.umem = umem
	reg := unix.XDPUmemReg{
		Addr:     uint64(uintptr(unsafe.Pointer(&umem[0]))),
		Len:      uint64(size),
		Size:     uint32(c.FrameSize),
		Headroom: uint32(c.Headroom),
	}
	if err := setsockopt(s.fd, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg)); err != nil {
		return opError("setsockopt XDP_UMEM_REG", err)
	}
	for _, r := range []struct {
		opt  int
		size int
	}{
		{unix.XDP_UMEM_FILL_RING, c.FillRingSize},
		{unix.XDP_UMEM_COMPLETION_RING, c.CompletionRingSize},
		{unix.XDP_RX_RING, c.RxRingSize},
		{unix.XDP_TX_RING, c.TxRingSize},
	} {
		if err := unix.SetsockoptInt(s.fd, unix.SOL_XDP, r.opt, r.size); err != nil {
			return opError(fmt.Sprintf("setsockopt ring %d", r.opt), err)
		}
	}
	var off unix.XDPMmapOffsets
	if err := getsockopt(s.fd, unix.XDP_MMAP_OFFSETS, unsafe.Pointer(&off), unsafe.Sizeof(off)); err != nil {
		return opError("getsockopt XDP_MMAP_OFFSETS", err)
	}
	maps := []struct {
		r     *ring
		off   unix.XDPRingOffset
		pgoff int64
		n     int
		addrs bool
	}{
		{&s.fill, off.Fr, unix.XDP_UMEM_PGOFF_FILL_RING, c.FillRingSize, true},
		{&s.comp, off.Cr, unix.XDP_UMEM_PGOFF_COMPLETION_RING, c.CompletionRingSize, true},
		{&s.rx, off.Rx, unix.XDP_PGOFF_RX_RING, c.RxRingSize, false},
		{&s.tx, off.Tx, unix.XDP_PGOFF_TX_RING, c.TxRingSize, false},
	}
	for i, m := range maps {
		ent := int(unsafe.Sizeof(desc{}))
		if m.addrs {
			ent = 8
		}
		mem, err := unix.Mmap(s.fd, m.pgoff, int(m.off.Desc)+m.n*ent,
			unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
		if err != nil {
			return opError("mmap ring", err)
		}
		s.rings[i] = mem
		*m.r = ring{
			prod:  (*uint32)(unsafe.Pointer(&mem[m.off.Producer])),
			cons:  (*uint32)(unsafe.Pointer(&mem[m.off.Consumer])),
			flags: (*uint32)(unsafe.Pointer(&mem[m.off.Flags])),
			mask:  uint32(m.n - 1),
			size:  uint32(m.n),
		}
		if m.addrs {
			m.r.addrs = unsafe.Slice((*uint64)(unsafe.Pointer(&mem[m.off.Desc])), m.n)
		} else {
			m.r.descs = unsafe.Slice((*desc)(unsafe.Pointer(&mem[m.off.Desc])), m.n)
		}
	}
	// A larger transmit budget per sendto in copy mode, where the kernel
	// has it; the default (32) works too.
	_ = unix.SetsockoptInt(s.fd, unix.SOL_XDP, xdpMaxTxSkbBudget, min(c.TxRingSize, 256))

	flags := uint16(unix.XDP_USE_NEED_WAKEUP)
	if c.Copy {
		flags |= unix.XDP_COPY
	}
	sa := &unix.SockaddrXDP{Flags: flags, Ifindex: uint32(s.ifindex), QueueID: uint32(s.queue)}
	// EBUSY: another socket holds the queue. The kernel releases a closed
	// socket's UMEM from a work queue, so a queue whose previous owner just
	// exited (a restarted uvsd) stays busy for a moment.
	for deadline := time.Now().Add(bindBusyWait); ; time.Sleep(10 * time.Millisecond) {
		err := unix.Bind(s.fd, sa)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return opError("bind", err)
		}
	}
	if v, err := unix.GetsockoptInt(s.fd, unix.SOL_XDP, unix.XDP_OPTIONS); err == nil {
		s.zeroCopy = v&unix.XDP_OPTIONS_ZEROCOPY != 0
	}

	nrx := c.FillRingSize
	s.held = make([]uint64, 0, nrx)
	for i := range nrx {
		s.held = append(s.held, uint64(i)*s.frameSize)
	}
	s.refill()
	s.txFree = make([]uint64, 0, c.Frames-nrx)
	for i := nrx; i < c.Frames; i++ {
		s.txFree = append(s.txFree, uint64(i)*s.frameSize)
	}
	return nil
}

// release frees what setup acquired. With keepUMEM the UMEM stays mapped
// (frames handed out may still be in use); freeUMEM unmaps it later.
func (s *Socket) release(keepUMEM bool) error {
	var errs []error
	if err := unix.Close(s.fd); err != nil {
		errs = append(errs, opError("close", err))
	}
	for i, m := range s.rings {
		if m != nil {
			_ = unix.Munmap(m)
			s.rings[i] = nil
		}
	}
	if !keepUMEM {
		if err := s.freeUMEM(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Socket) freeUMEM() error {
	if s.umem == nil {
		return nil
	}
	err := unix.Munmap(s.umem)
	s.umem = nil
	if err != nil {
		return opError("munmap umem", err)
	}
	return nil
}

// FD returns the socket's file descriptor (for an XSKMAP).
func (s *Socket) FD() int { return s.fd }

// Ifindex returns the interface the socket is bound to.
func (s *Socket) Ifindex() int { return s.ifindex }

// Queue returns the queue the socket is bound to.
func (s *Socket) Queue() int { return s.queue }

// ZeroCopy reports whether the kernel bound the socket in zero-copy mode.
func (s *Socket) ZeroCopy() bool { return s.zeroCopy }

// refill returns the held receive frames to the fill ring.
func (s *Socket) refill() {
	n := uint32(len(s.held))
	if n == 0 {
		return
	}
	idx, got := s.fill.reserve(n)
	for i := range got {
		s.fill.addrs[(idx+i)&s.fill.mask] = s.held[i]
	}
	s.fill.submit()
	if got < n {
		s.st.FillShort += uint64(n - got)
		rest := copy(s.held, s.held[got:])
		s.held = s.held[:rest]
		return
	}
	s.held = s.held[:0]
}

// receive moves ready RX descriptors into frames and returns how many.
func (s *Socket) receive(frames []dataplane.Frame) int {
	idx, got := s.rx.peek(uint32(len(frames)))
	n := 0
	size := uint64(len(s.umem))
	for i := range got {
		d := s.rx.descs[(idx+i)&s.rx.mask]
		base := d.Addr &^ (s.frameSize - 1)
		if d.Addr+uint64(d.Len) > base+s.frameSize || base+s.frameSize > size {
			s.st.RxInvalid++
			if base+s.frameSize <= size {
				s.held = append(s.held, base)
			}
			continue
		}
		s.held = append(s.held, base)
		f := &frames[n]
		f.Buf = s.umem[base : base+s.frameSize : base+s.frameSize]
		f.Off = int(d.Addr - base)
		f.Len = int(d.Len)
		f.Ifindex = s.ifindex
		f.CsumPartial = false
		f.CsumUnknown = true
		n++
	}
	if got > 0 {
		s.rx.release(got)
	}
	return n
}

// reclaim moves completed transmit frames back to the free list.
func (s *Socket) reclaim() {
	idx, got := s.comp.peek(s.comp.size)
	for i := range got {
		s.txFree = append(s.txFree, s.comp.addrs[(idx+i)&s.comp.mask]&^(s.frameSize-1))
	}
	if got > 0 {
		s.comp.release(got)
	}
}

// enqueue copies data into a free transmit frame and writes its TX
// descriptor; it reports false when no frame or ring entry is free.
func (s *Socket) enqueue(data []byte) bool {
	if len(s.txFree) == 0 {
		s.reclaim()
		if len(s.txFree) == 0 {
			return false
		}
	}
	idx, got := s.tx.reserve(1)
	if got == 0 {
		return false
	}
	addr := s.txFree[len(s.txFree)-1]
	s.txFree = s.txFree[:len(s.txFree)-1]
	copy(s.umem[addr:addr+s.frameSize], data)
	s.tx.descs[idx&s.tx.mask] = desc{Addr: addr, Len: uint32(len(data))}
	s.txQueued = true
	return true
}

// flush publishes the queued TX descriptors and drives the kernel until it
// has taken them (copy mode transmits inside sendto, a budget of frames per
// call; a zero-copy driver is kicked only when it asks for it), then
// reclaims completed frames. retries bounds the kicks that make
// no progress.
func (s *Socket) flush(retries int) {
	if s.txQueued {
		s.tx.submit()
		s.txQueued = false
	}
	stalled := 0
	for s.tx.pending() > 0 && (!s.zeroCopy || s.tx.needWakeup()) {
		before := s.tx.pending()
		s.st.TxKicks++
		_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0, unix.EAGAIN, unix.EBUSY, unix.ENOBUFS, unix.EINTR:
		default:
			// ENETDOWN, ENXIO: the interface is gone or down; the
			// descriptors stay in the ring until it comes back.
			s.st.TxBusy++
			s.reclaim()
			return
		}
		if e != 0 {
			s.st.TxBusy++
		}
		if s.tx.pending() >= before {
			if stalled++; stalled > retries {
				break
			}
		}
	}
	s.reclaim()
}

// kernelStats reads XDP_STATISTICS.
func (s *Socket) kernelStats() (unix.XDPStatistics, error) {
	var st unix.XDPStatistics
	err := getsockopt(s.fd, unix.XDP_STATISTICS, unsafe.Pointer(&st), unsafe.Sizeof(st))
	return st, err
}

func setsockopt(fd, opt int, p unsafe.Pointer, n uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(p), n, 0)
	if e != 0 {
		return e
	}
	return nil
}

func getsockopt(fd, opt int, p unsafe.Pointer, n uintptr) error {
	l := uint32(n)
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(p), uintptr(unsafe.Pointer(&l)), 0)
	if e != 0 {
		return e
	}
	return nil
}

func opError(op string, err error) error {
	return fmt.Errorf("afxdp: %s: %w", op, err)
}

// ifreqData is struct ifreq with the ifr_data member of the union.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(uintptr(0))]byte
}

// ethtoolChannels is struct ethtool_channels.
type ethtoolChannels struct {
	cmd                                         uint32
	maxRx, maxTx, maxOther, maxCombined         uint32
	rxCount, txCount, otherCount, combinedCount uint32
}

// NumQueues returns how many RX queues the interface uses (ETHTOOL_GCHANNELS:
// rx plus combined channels), the queue ids an AF_XDP socket can bind to.
// Netlink's IFLA_NUM_RX_QUEUES counts the allocated queues instead (a veth
// has one per CPU allocated but uses one), and sysfs shows the network
// namespace it was mounted in.
func NumQueues(ifname string) (int, error) {
	if len(ifname) == 0 || len(ifname) >= unix.IFNAMSIZ {
		return 0, fmt.Errorf("afxdp: queues: invalid interface name %q", ifname)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, opError("socket", err)
	}
	defer unix.Close(fd)
	ch := &ethtoolChannels{cmd: unix.ETHTOOL_GCHANNELS}
	ifr := &ifreqData{data: unsafe.Pointer(ch)}
	copy(ifr.name[:], ifname)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(ifr))); e != 0 {
		return 0, fmt.Errorf("afxdp: queues of %s: ETHTOOL_GCHANNELS: %w", ifname, e)
	}
	n := int(ch.rxCount + ch.combinedCount)
	if n < 1 {
		return 0, fmt.Errorf("afxdp: queues of %s: none reported", ifname)
	}
	return n, nil
}
