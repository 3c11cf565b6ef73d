package afpacket

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/dataplane/internal/mmsg"
)

// Layout of the TPACKET_V3 ring (linux/if_packet.h).
const (
	// struct tpacket_block_desc: version, offset_to_priv, then
	// struct tpacket_hdr_v1.
	bdStatus   = 8  // block_status
	bdNumPkts  = 12 // num_pkts
	bdFirstPkt = 16 // offset_to_first_pkt

	// struct tpacket3_hdr.
	hdrNext    = 0  // tp_next_offset
	hdrSnaplen = 12 // tp_snaplen
	hdrStatus  = 20 // tp_status
	hdrMac     = 24 // tp_mac
	hdrVLANTCI = 32 // hv1.tp_vlan_tci
	hdrVLANTPI = 36 // hv1.tp_vlan_tpid
	hdrSize    = 48 // TPACKET_ALIGN(sizeof(struct tpacket3_hdr))

	// struct sockaddr_ll follows the header.
	sllIfindex = hdrSize + 4
	// hdrLen is TPACKET3_HDRLEN: where the headroom starts.
	hdrLen = hdrSize + unix.SizeofSockaddrLinklayer

	tpacketAlign = 16

	// sendmmsg flags: never block in the kernel waiting for socket buffer
	// space; WriteBatch counts and retries instead.
	sendFlags = unix.MSG_DONTWAIT

	defaultTxRetries = 4
	// txWaitMillis bounds one wait for send-buffer space.
	txWaitMillis = 2

	// struct virtio_net_hdr, which precedes every frame in both directions
	// with PACKET_VNET_HDR (dataplane.PutVnetHdr).
	vnetHdrLen     = dataplane.VnetHdrLen
	vnetFlags      = dataplane.VnetFlags
	vnetGSOType    = dataplane.VnetGSOType
	vnetHdrLenOff  = dataplane.VnetHdrLenOff
	vnetGSOSize    = dataplane.VnetGSOSize
	vnetCsumStart  = dataplane.VnetCsumStart
	vnetCsumOffset = dataplane.VnetCsumOffset
	vnetNeedsCsum  = dataplane.VnetNeedsCsum
)

// Socket is an AF_PACKET socket with a TPACKET_V2 (RingFrame) or TPACKET_V3
// (RingBlock) receive ring. It
// implements dataplane.PacketIO.
//
// ReadBatch and WriteBatch may each be called by one goroutine at a time (the
// two may run concurrently); Close, Stats and SetFilter may be called from
// any goroutine.
type Socket struct {
	fd      int
	efd     int // eventfd that wakes a poll on Close
	ifindex int // bound interface, 0 for all
	ring    []byte

	blockSize  int
	blockCount int
	pollMs     int          // configured poll timeout (ms, -1: none)
	pollNow    atomic.Int32 // poll timeout in force (SetPollTimeout)
	retries    int

	// Receive state, guarded by rmu.
	rmu       sync.Mutex
	next      int // next block to open
	cur       int // block being consumed, -1 if none
	curEnd    int // end of the block being consumed
	curLeft   int // frames left in it
	curOff    int // ring offset of its next frame header
	heldStart int // first block finished but still aliased by frames
	heldN     int
	// lent is set while the frames of the last ReadBatch may be in use
	// (until the next ReadBatch); unmapLater when Close had to leave the
	// ring mapped for them.
	lent       bool
	unmapLater bool
	pfd        [2]unix.PollFd

	// frames is the TPACKET_V2 ring's state (RingFrame); nil with a
	// TPACKET_V3 ring (RingBlock).
	frames *frameRing

	// vnet is set when PACKET_VNET_HDR is on: a virtio_net_hdr precedes
	// each frame read and each frame written.
	vnet bool

	// Transmit state, guarded by wmu. With vnet, message j has two
	// iovecs: vhdrs[j] and the frame.
	wmu   sync.Mutex
	hdrs  []mmsg.Hdr
	iovs  []unix.Iovec
	addrs []unix.RawSockaddrLinklayer
	vhdrs [][vnetHdrLen]byte

	// cmu guards the fd against Close for Stats and SetFilter, and the
	// accumulated kernel counters.
	cmu    sync.Mutex
	kstats Stats

	closed atomic.Bool

	blocksRead, framesRead        atomic.Uint64
	framesSent, txBusy, txDropped atomic.Uint64
	txErrors                      atomic.Uint64
	gsoRead, gsoSent              atomic.Uint64
}

var (
	_ dataplane.PacketIO          = (*Socket)(nil)
	_ dataplane.PollTimeoutSetter = (*Socket)(nil)
)

// Open creates, configures and binds a socket as cfg describes. It needs
// CAP_NET_RAW. The socket lives in the network namespace of the calling
// thread.
func Open(cfg Config) (*Socket, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if c.Interface != "" {
		ifi, err := net.InterfaceByName(c.Interface)
		if err != nil {
			return nil, fmt.Errorf("afpacket: open: %w", err)
		}
		c.Ifindex = ifi.Index
	}
	if c.Promiscuous && c.Ifindex == 0 {
		return nil, errors.New("afpacket: open: promiscuous mode needs an interface")
	}

	// Protocol 0: the socket receives nothing until it is bound below,
	// after the ring and the filter are in place.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, opError("socket", err)
	}
	s := &Socket{
		fd:         fd,
		efd:        -1,
		ifindex:    c.Ifindex,
		blockSize:  c.BlockSize,
		blockCount: c.BlockCount,
		pollMs:     pollMillis(c.PollTimeout),
		retries:    c.TxRetries,
		cur:        -1,
		vnet:       !c.DisableOffload,
	}
	if c.Ring == RingFrame {
		s.frames = &frameRing{} // setupFrameRing fills it
	}
	s.pollNow.Store(int32(s.pollMs))
	if err := s.setup(&c); err != nil {
		s.release()
		return nil, err
	}
	return s, nil
}

// SetPollTimeout implements dataplane.PollTimeoutSetter: it changes how
// long the next ReadBatch calls wait for a frame (negative: until one
// arrives); 0 restores Config.PollTimeout. Safe for concurrent use.
func (s *Socket) SetPollTimeout(d time.Duration) {
	ms := s.pollMs
	if d != 0 {
		ms = pollMillis(d)
	}
	s.pollNow.Store(int32(ms))
}

func (s *Socket) setup(c *Config) error {
	fd := s.fd
	version := unix.TPACKET_V3
	if s.frames != nil {
		version = unix.TPACKET_V2
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, version); err != nil {
		return opError("setsockopt PACKET_VERSION", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_RESERVE, c.Headroom); err != nil {
		return opError("setsockopt PACKET_RESERVE", err)
	}
	// PACKET_VNET_HDR must be set before the ring exists (EBUSY after).
	// tpacket_rcv then writes the virtio_net_hdr right in front of each
	// frame's MAC header, after the reserved headroom.
	if s.vnet {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
			return opError("setsockopt PACKET_VNET_HDR", err)
		}
	}
	if s.frames != nil {
		if err := s.setupFrameRing(c); err != nil {
			return err
		}
	} else {
		req := unix.TpacketReq3{
			Block_size:     uint32(c.BlockSize),
			Block_nr:       uint32(c.BlockCount),
			Frame_size:     uint32(c.FrameSize),
			Frame_nr:       uint32(c.BlockSize / c.FrameSize * c.BlockCount),
			Retire_blk_tov: uint32((c.BlockTimeout + time.Millisecond - 1) / time.Millisecond),
		}
		if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
			return opError("setsockopt PACKET_RX_RING", err)
		}
	}
	ring, err := unix.Mmap(fd, 0, c.BlockSize*c.BlockCount, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return opError("mmap", err)
	}
	s.ring = ring
	if c.Filter != nil {
		if err := attachFilter(fd, c.Filter); err != nil {
			return err
		}
	}
	if !c.ReceiveOutgoing {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
			return opError("setsockopt PACKET_IGNORE_OUTGOING", err)
		}
	}
	// PACKET_QDISC_BYPASS sends through __dev_direct_xmit, which drops any
	// skb validate_xmit_skb had to replace: a super-frame the egress device
	// cannot segment itself (TSO off) would be lost instead of segmented
	// in software. With offloads the socket goes through dev_queue_xmit
	// (on a veth or any noqueue device that is a direct call as well).
	if !s.vnet {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			return opError("setsockopt PACKET_QDISC_BYPASS", err)
		}
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: c.Ifindex}
	if err := unix.Bind(fd, sa); err != nil {
		return opError("bind", err)
	}
	if c.FanoutGroup != 0 {
		v := int(c.FanoutGroup) | int(c.FanoutMode)<<16
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT, v); err != nil {
			return opError("setsockopt PACKET_FANOUT", err)
		}
	}
	if c.Promiscuous {
		mr := unix.PacketMreq{Ifindex: int32(c.Ifindex), Type: unix.PACKET_MR_PROMISC}
		if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mr); err != nil {
			return opError("setsockopt PACKET_ADD_MEMBERSHIP", err)
		}
	}
	if c.SendBuffer > 0 {
		// SO_SNDBUFFORCE passes net.core.wmem_max (CAP_NET_ADMIN);
		// without the capability take what SO_SNDBUF grants.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, c.SendBuffer); err != nil {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, c.SendBuffer); err != nil {
				return opError("setsockopt SO_SNDBUF", err)
			}
		}
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return opError("eventfd", err)
	}
	s.efd = efd
	s.pfd = [2]unix.PollFd{
		{Fd: int32(fd), Events: unix.POLLIN | unix.POLLERR},
		{Fd: int32(efd), Events: unix.POLLIN},
	}

	niov := 1
	if s.vnet {
		niov = 2
		s.vhdrs = make([][vnetHdrLen]byte, c.TxBatch)
	}
	b := mmsg.NewBatch(c.TxBatch, niov)
	s.hdrs, s.iovs, s.addrs = b.Hdrs, b.Iovs, b.Addrs
	if s.vnet {
		for i := range s.vhdrs {
			s.iovs[2*i].Base = &s.vhdrs[i][0]
			s.iovs[2*i].SetLen(vnetHdrLen)
		}
	}
	return nil
}

// release frees what setup acquired; used when Open fails.
func (s *Socket) release() {
	if s.ring != nil {
		_ = unix.Munmap(s.ring)
		s.ring = nil
	}
	if s.efd >= 0 {
		_ = unix.Close(s.efd)
	}
	_ = unix.Close(s.fd)
}

func (c Config) withDefaults() (Config, error) {
	if c.BlockSize == 0 {
		c.BlockSize = DefaultBlockSize
	}
	if c.BlockCount == 0 {
		c.BlockCount = DefaultBlockCount
	}
	if c.FrameSize == 0 {
		c.FrameSize = DefaultFrameSize
	}
	if c.BlockTimeout == 0 {
		c.BlockTimeout = DefaultBlockTimeout
	}
	if c.PollTimeout == 0 {
		c.PollTimeout = DefaultPollTimeout
	}
	if c.TxBatch == 0 {
		c.TxBatch = DefaultTxBatch
	}
	if c.SendBuffer == 0 {
		c.SendBuffer = DefaultSendBuffer
	}
	if c.ReceiveBuffer == 0 {
		c.ReceiveBuffer = DefaultReceiveBuffer
	}
	switch {
	case c.TxRetries == 0:
		c.TxRetries = defaultTxRetries
	case c.TxRetries < 0:
		c.TxRetries = 0
	}
	switch {
	case c.Headroom == 0:
		c.Headroom = DefaultHeadroom
	case c.Headroom == NoHeadroom:
		c.Headroom = 0
	}
	page := os.Getpagesize()
	switch {
	case c.Ifindex < 0:
		return c, errors.New("afpacket: open: negative ifindex")
	case c.BlockSize < 0 || c.BlockSize%page != 0:
		return c, fmt.Errorf("afpacket: open: block size %d is not a multiple of the page size %d", c.BlockSize, page)
	case c.BlockCount < 0:
		return c, errors.New("afpacket: open: negative block count")
	case c.FrameSize < 0 || c.FrameSize%tpacketAlign != 0 || c.FrameSize > c.BlockSize:
		return c, fmt.Errorf("afpacket: open: frame size %d is not a multiple of %d up to the block size", c.FrameSize, tpacketAlign)
	case c.Headroom < 0 || c.FrameSize < hdrLen+c.Headroom:
		return c, fmt.Errorf("afpacket: open: headroom %d does not fit a frame of %d bytes", c.Headroom, c.FrameSize)
	case c.Ring == RingFrame && c.FrameSize < v2MacOff(c.Headroom, !c.DisableOffload)+60:
		return c, fmt.Errorf("afpacket: open: a frame slot of %d bytes does not hold a 60-byte frame behind %d bytes of headroom", c.FrameSize, c.Headroom)
	case c.Ring != RingFrame && c.Ring != RingBlock:
		return c, fmt.Errorf("afpacket: open: unknown ring mode %d", c.Ring)
	case c.BlockTimeout < 0:
		return c, errors.New("afpacket: open: negative block timeout")
	case c.TxBatch < 0:
		return c, errors.New("afpacket: open: negative tx batch")
	}
	return c, nil
}

func pollMillis(d time.Duration) int {
	if d < 0 {
		return -1
	}
	return int((d + time.Millisecond - 1) / time.Millisecond)
}

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

func opError(op string, err error) error {
	return fmt.Errorf("afpacket: %s: %w", op, err)
}

func attachFilter(fd int, filter []bpf.RawInstruction) error {
	if len(filter) == 0 {
		return errors.New("afpacket: empty filter")
	}
	prog := unix.SockFprog{
		Len:    uint16(len(filter)),
		Filter: (*unix.SockFilter)(unsafe.Pointer(&filter[0])),
	}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		return opError("setsockopt SO_ATTACH_FILTER", err)
	}
	return nil
}

// SetFilter replaces the socket's filter atomically; nil removes it (every
// frame is accepted). Frames already in the ring are not filtered again.
func (s *Socket) SetFilter(filter []bpf.RawInstruction) error {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	if s.closed.Load() {
		return dataplane.ErrClosed
	}
	if filter == nil {
		err := unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_DETACH_FILTER, 0)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return opError("setsockopt SO_DETACH_FILTER", err)
		}
		return nil
	}
	return attachFilter(s.fd, filter)
}

// Ifindex returns the index of the interface the socket is bound to, 0 if
// it receives from all interfaces.
func (s *Socket) Ifindex() int { return s.ifindex }

// u32 reads a native-endian field of the ring.
func (s *Socket) u32(off int) uint32 { return binary.NativeEndian.Uint32(s.ring[off : off+4]) }

// blockStatus is the address of a block's block_status, which the kernel
// and userspace hand over to each other.
func (s *Socket) blockStatus(block int) *uint32 {
	return (*uint32)(unsafe.Pointer(&s.ring[block*s.blockSize+bdStatus]))
}

// ReadBatch implements dataplane.PacketIO. It first hands the ring slots or
// blocks the previous batch's frames live in back to the kernel, then fills
// frames from ready slots or blocks, waiting up to the poll timeout only if
// there are none. Each frame's Buf starts after the ring's frame header:
// Buf[:Off] is headroom (at least Config.Headroom bytes) and Buf extends to
// the end of the frame's slot (for a frame longer than a RingFrame slot,
// its own buffer). Frames are in arrival order.
func (s *Socket) ReadBatch(frames []dataplane.Frame) (int, error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.lent = false
	if s.closed.Load() {
		return s.closedRead()
	}
	var n int
	var err error
	if s.frames != nil {
		n, err = s.readFrames(frames)
	} else {
		n, err = s.readBlocks(frames)
	}
	if errors.Is(err, dataplane.ErrClosed) {
		return s.closedRead()
	}
	s.framesRead.Add(uint64(n))
	s.lent = n > 0
	return n, err
}

// readBlocks is ReadBatch on a RingBlock socket.
func (s *Socket) readBlocks(frames []dataplane.Frame) (int, error) {
	s.returnHeld()
	n := 0
	var deadline time.Time
	for n < len(frames) {
		if s.cur < 0 && !s.openBlock() {
			if n > 0 {
				break
			}
			ok, err := s.wait(&deadline)
			if err != nil || !ok {
				return 0, err
			}
			continue
		}
		n += s.fill(frames[n:])
	}
	return n, nil
}

// closedRead is ReadBatch on a closed socket: the caller is done with the
// frames of its last batch, so a ring Close had to leave mapped for them is
// unmapped now.
func (s *Socket) closedRead() (int, error) {
	if s.unmapLater {
		s.unmapLater = false
		_ = unix.Munmap(s.ring)
		s.ring = nil
	}
	return 0, dataplane.ErrClosed
}

// returnHeld hands the blocks finished in earlier batches back to the kernel.
func (s *Socket) returnHeld() {
	for i := 0; i < s.heldN; i++ {
		b := s.heldStart + i
		if b >= s.blockCount {
			b -= s.blockCount
		}
		atomic.StoreUint32(s.blockStatus(b), unix.TP_STATUS_KERNEL)
	}
	s.heldN = 0
}

// openBlock makes the next block current if the kernel has handed it over.
func (s *Socket) openBlock() bool {
	b := s.next
	if atomic.LoadUint32(s.blockStatus(b))&unix.TP_STATUS_USER == 0 {
		return false
	}
	if s.next++; s.next == s.blockCount {
		s.next = 0
	}
	base := b * s.blockSize
	s.cur = b
	s.curEnd = base + s.blockSize
	s.curLeft = int(s.u32(base + bdNumPkts))
	s.curOff = base + int(s.u32(base+bdFirstPkt))
	s.blocksRead.Add(1)
	if s.curLeft == 0 {
		s.finishBlock()
	}
	return true
}

// finishBlock marks the current block consumed; it goes back to the kernel
// at the start of the next ReadBatch.
func (s *Socket) finishBlock() {
	if s.heldN == 0 {
		s.heldStart = s.cur
	}
	s.heldN++
	s.cur = -1
}

// fill copies frame descriptors from the current block into frames.
func (s *Socket) fill(frames []dataplane.Frame) int {
	n := 0
	for n < len(frames) && s.curLeft > 0 {
		h := s.curOff
		if h+hdrLen > s.curEnd {
			s.curLeft = 0 // corrupt offsets: abandon the block
			break
		}
		next := int(s.u32(h + hdrNext))
		snap := int(s.u32(h + hdrSnaplen))
		status := s.u32(h + hdrStatus)
		mac := int(binary.NativeEndian.Uint16(s.ring[h+hdrMac:]))
		end := h + mac + snap
		if mac < s.minMac() || end > s.curEnd {
			s.curLeft = 0
			break
		}
		slotEnd := min(h+(mac+snap+tpacketAlign-1)&^(tpacketAlign-1), s.curEnd)
		f := &frames[n]
		f.Buf = s.ring[h+hdrLen : slotEnd : slotEnd]
		f.Off = mac - hdrLen
		f.Len = snap
		f.Ifindex = int(int32(s.u32(h + sllIfindex)))
		if s.vnet {
			s.readVnet(f, s.ring[h+mac-vnetHdrLen:h+mac])
		} else {
			f.CsumPartial = status&unix.TP_STATUS_CSUMNOTREADY != 0
			f.Offload, f.GSO, f.CsumStart, f.CsumOffset = false, dataplane.GSO{}, 0, 0
		}
		if status&unix.TP_STATUS_VLAN_VALID != 0 {
			tpid := uint16(0x8100)
			if status&unix.TP_STATUS_VLAN_TPID_VALID != 0 {
				tpid = binary.NativeEndian.Uint16(s.ring[h+hdrVLANTPI:])
			}
			s.putTag(f, tpid, uint16(s.u32(h+hdrVLANTCI)))
		}
		n++
		s.curLeft--
		if s.curLeft > 0 && next == 0 {
			s.curLeft = 0
			break
		}
		s.curOff = h + next
	}
	if s.curLeft == 0 {
		s.finishBlock()
	}
	return n
}

// putTag puts back in front of the EtherType of frame f the VLAN tag the
// kernel took off into the ring's frame header (skb_vlan_untag on receive:
// TP_STATUS_VLAN_VALID with tp_vlan_tci, and tp_vlan_tpid when
// TP_STATUS_VLAN_TPID_VALID, else 802.1Q), tpid and tci, so that the worker sees the
// frame as it was on the wire (dataplane.Frame). The MAC addresses move 4
// bytes into the headroom, which the ring's layout always leaves (tp_mac
// is at least TPACKET_ALIGN(TPACKET3_HDRLEN + 16) - 14, 14 bytes past
// the headroom's start; the virtio_net_hdr in front, read already, is
// overwritten). The csum_start of a partial checksum, which the kernel
// counts from the untagged frame (tpacket_rcv passes no VLAN length to
// virtio_net_hdr_from_skb), moves with the L4 header.
func (s *Socket) putTag(f *dataplane.Frame, tpid, tci uint16) {
	const tagLen = 4
	if f.Off < tagLen || f.Len < 12 {
		f.Len = 0 // cannot happen (see above); never served untagged
		return
	}
	f.Off -= tagLen
	f.Len += tagLen
	d := f.Buf[f.Off : f.Off+f.Len]
	copy(d[:12], d[tagLen:tagLen+12])
	binary.BigEndian.PutUint16(d[12:], tpid)
	binary.BigEndian.PutUint16(d[14:], tci)
	if f.CsumPartial && f.Offload {
		f.CsumStart += tagLen
	}
}

// minMac is the smallest valid tp_mac: the frame header, plus the
// virtio_net_hdr in front of the frame with vnet.
func (s *Socket) minMac() int {
	if s.vnet {
		return hdrLen + vnetHdrLen
	}
	return hdrLen
}

// readVnet fills f's offload metadata from the virtio_net_hdr v the kernel
// wrote in front of it (virtio_net_hdr_from_skb: NEEDS_CSUM with
// csum_start/offset for CHECKSUM_PARTIAL, gso_type/gso_size for GSO).
func (s *Socket) readVnet(f *dataplane.Frame, v []byte) {
	f.Offload = true
	f.CsumPartial = v[vnetFlags]&vnetNeedsCsum != 0
	f.GSO = dataplane.GSO{
		Type: dataplane.GSOType(v[vnetGSOType]),
		Size: binary.NativeEndian.Uint16(v[vnetGSOSize:]),
	}
	if f.CsumPartial {
		f.CsumStart = binary.NativeEndian.Uint16(v[vnetCsumStart:])
		f.CsumOffset = binary.NativeEndian.Uint16(v[vnetCsumOffset:])
	} else {
		f.CsumStart, f.CsumOffset = 0, 0
	}
	if f.GSO.Type != dataplane.GSONone {
		s.gsoRead.Add(1)
	}
}

// wait polls until the ring may have a ready block (true), the poll timeout
// passes (false) or the socket is closed.
func (s *Socket) wait(deadline *time.Time) (bool, error) {
	ms := int(s.pollNow.Load())
	if ms >= 0 {
		now := time.Now()
		if deadline.IsZero() {
			*deadline = now.Add(time.Duration(ms) * time.Millisecond)
		} else {
			left := deadline.Sub(now)
			if left <= 0 {
				return false, nil
			}
			ms = pollMillis(left)
		}
	}
	s.pfd[0].Revents, s.pfd[1].Revents = 0, 0
	n, err := unix.Poll(s.pfd[:], ms)
	if s.closed.Load() || s.pfd[1].Revents != 0 {
		return false, dataplane.ErrClosed
	}
	switch {
	case errors.Is(err, unix.EINTR):
		return true, nil // the caller rechecks the ring and polls again
	case err != nil:
		return false, opError("poll", err)
	case n == 0:
		return false, nil
	}
	if s.pfd[0].Revents&unix.POLLERR != 0 {
		if e, err := unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && e != 0 {
			return false, opError("read", unix.Errno(e))
		}
	}
	return true, nil
}

// WriteBatch implements dataplane.PacketIO: it sends frames with sendmmsg,
// TxBatch frames per call, each on its Ifindex (the socket's own interface
// if Ifindex is 0). It returns how many frames the kernel accepted. A frame
// the kernel refuses is skipped and counted (Stats.TxErrors); when the
// kernel has no buffer space, the send is retried up to Config.TxRetries
// times and the rest of the batch is then dropped and counted
// (Stats.TxDropped). The error is non-nil only if the socket is closed or
// no frame at all could be sent because the kernel refused them.
func (s *Socket) WriteBatch(frames []dataplane.Frame) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed.Load() {
		return 0, dataplane.ErrClosed
	}
	sent, refused, busy := 0, 0, 0
	var lastErr unix.Errno
	for i := 0; i < len(frames); {
		k := min(len(frames)-i, len(s.hdrs))
		for j := range k {
			s.prepare(j, &frames[i+j])
		}
		r, e := mmsg.Send(s.fd, s.hdrs[:k], sendFlags)
		switch {
		case e == 0 && r > 0:
			if s.vnet {
				s.countGSO(frames[i : i+r])
			}
			sent += r
			i += r
			busy = 0
		case e == unix.EAGAIN || e == unix.ENOBUFS || e == unix.EINTR || e == 0:
			s.txBusy.Add(1)
			if busy++; busy > s.retries {
				s.txDropped.Add(uint64(len(frames) - i))
				i = len(frames)
			} else if e == unix.EAGAIN {
				s.waitWritable()
			}
		default:
			// sendmmsg fails only when its first message fails: skip
			// that frame.
			refused++
			lastErr = e
			i++
		}
	}
	s.framesSent.Add(uint64(sent))
	if refused > 0 {
		s.txErrors.Add(uint64(refused))
		if sent == 0 {
			return 0, opError("sendmmsg", lastErr)
		}
	}
	return sent, nil
}

func (s *Socket) countGSO(frames []dataplane.Frame) {
	n := 0
	for i := range frames {
		if frames[i].GSO.Type != dataplane.GSONone {
			n++
		}
	}
	if n > 0 {
		s.gsoSent.Add(uint64(n))
	}
}

// waitWritable waits, briefly, until the socket's send buffer has room
// again (EAGAIN: the frames in flight, up to 64 KB each, fill it).
func (s *Socket) waitWritable() {
	pfd := [1]unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLOUT}}
	_, _ = unix.Poll(pfd[:], txWaitMillis)
}

// prepare points message j at frame f (and with vnet fills its
// virtio_net_hdr).
func (s *Socket) prepare(j int, f *dataplane.Frame) {
	data := f.Buf[f.Off : f.Off+f.Len]
	iov := &s.iovs[j]
	if s.vnet {
		dataplane.PutVnetHdr(&s.vhdrs[j], f, data)
		iov = &s.iovs[2*j+1]
	}
	if len(data) > 0 {
		iov.Base = &data[0]
	} else {
		iov.Base = nil
	}
	iov.SetLen(len(data))
	a := &s.addrs[j]
	a.Ifindex = int32(f.Ifindex)
	if f.Ifindex == 0 {
		a.Ifindex = int32(s.ifindex)
	}
	a.Protocol = 0 // the kernel takes it from the Ethernet header
	if len(data) >= 14 {
		a.Protocol = binary.NativeEndian.Uint16(data[12:14])
	}
}

// Stats returns the socket's counters since Open.
func (s *Socket) Stats() (Stats, error) {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	if s.closed.Load() {
		return Stats{}, dataplane.ErrClosed
	}
	// Reading PACKET_STATISTICS resets the kernel's counters: accumulate.
	ks, err := unix.GetsockoptTpacketStatsV3(s.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return Stats{}, opError("getsockopt PACKET_STATISTICS", err)
	}
	s.kstats.Packets += uint64(ks.Packets)
	s.kstats.Drops += uint64(ks.Drops)
	s.kstats.FreezeQCount += uint64(ks.Freeze_q_cnt)
	st := s.kstats
	st.BlocksRead = s.blocksRead.Load()
	st.FramesRead = s.framesRead.Load()
	st.FramesSent = s.framesSent.Load()
	st.TxBusy = s.txBusy.Load()
	st.TxDropped = s.txDropped.Load()
	st.TxErrors = s.txErrors.Load()
	st.GSORead = s.gsoRead.Load()
	st.GSOSent = s.gsoSent.Load()
	if s.frames != nil {
		st.FramesCopied = s.frames.copied.Load()
		st.Truncated = s.frames.truncated.Load()
	}
	return st, nil
}

// Close implements dataplane.PacketIO: it wakes a blocked ReadBatch (which
// returns dataplane.ErrClosed), waits for ReadBatch and WriteBatch calls in
// progress to return and closes the socket. The frames of the last
// ReadBatch stay valid (a worker may still be processing them) until the
// next ReadBatch, which returns dataplane.ErrClosed and unmaps the ring;
// without that call the ring stays mapped. If no frames are out, the ring
// is unmapped at once. Closing twice is a no-op.
func (s *Socket) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	_, _ = unix.Write(s.efd, one[:])
	s.rmu.Lock()
	s.wmu.Lock()
	s.cmu.Lock()
	defer s.cmu.Unlock()
	defer s.wmu.Unlock()
	defer s.rmu.Unlock()
	var errs []error
	if s.lent {
		// The ring's pages outlive the socket while they are mapped.
		s.unmapLater = true
	} else {
		if err := unix.Munmap(s.ring); err != nil {
			errs = append(errs, opError("munmap", err))
		}
		s.ring = nil
	}
	if err := unix.Close(s.fd); err != nil {
		errs = append(errs, opError("close", err))
	}
	_ = unix.Close(s.efd)
	return errors.Join(errs...)
}
