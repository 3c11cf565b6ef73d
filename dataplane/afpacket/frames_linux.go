package afpacket

import (
	"encoding/binary"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/uvs-lb/uvs/dataplane"
)

// Layout of a TPACKET_V2 ring slot: struct tpacket2_hdr, then struct
// sockaddr_ll at TPACKET_ALIGN(sizeof(struct tpacket2_hdr)) (linux/if_packet.h).
const (
	v2Status   = 0  // tp_status
	v2Len      = 4  // tp_len: the frame's length on the wire
	v2Snaplen  = 8  // tp_snaplen: the bytes in the slot
	v2Mac      = 12 // tp_mac (u16)
	v2VLANTCI  = 24 // tp_vlan_tci (u16)
	v2VLANTPID = 26 // tp_vlan_tpid (u16)
	v2HdrSize  = 32
	// v2Ifindex is sll_ifindex; v2HdrLen is TPACKET2_HDRLEN, where the
	// reserved headroom starts.
	v2Ifindex = v2HdrSize + 4
	v2HdrLen  = v2HdrSize + unix.SizeofSockaddrLinklayer

	// bigFrames is how many frames longer than a slot one ReadBatch
	// returns at most; bigFrameLen is the longest such frame that is not
	// truncated (a 64 KB GSO super-frame with its Ethernet and VLAN
	// headers, dev->gso_max_size 65536); bigHeadroom is kept in front of
	// each (a VLAN tag put back, Config.Headroom and the virtio_net_hdr).
	bigFrames   = 8
	bigFrameLen = 65536 + 64
	bigHeadroom = 64
)

// frameRing is the state of a TPACKET_V2 receive ring (RingFrame), guarded
// by Socket.rmu.
//
// The kernel fills the slots in order and hands each one over on its own
// (tpacket_rcv sets tp_status to TP_STATUS_USER and calls sk_data_ready for
// every frame), so a frame is readable as soon as it is written: no block
// timer. A reader that keeps up never sleeps: ReadBatch takes every slot
// that is ready, and polls (one wake-up per frame) only when the ring is
// empty. A frame longer than a slot is not truncated: with
// PACKET_COPY_THRESH the kernel marks its slot TP_STATUS_COPY (holding the
// head of the frame) and queues the whole skb on the socket's receive
// queue, in the same order as the slots (both under sk_receive_queue.lock
// in tpacket_rcv), and ReadBatch reads it from there into one of big.
type frameRing struct {
	frameSize int
	perBlock  int // slots per block
	slots     int
	head      int // next slot to read
	held      int // first slot lent to the last batch
	heldN     int

	big     [][]byte // bigFrames buffers of bigHeadroom+vnetHdrLen+bigFrameLen
	bigUsed int      // buffers the current batch uses
	msg     unix.Msghdr
	iov     unix.Iovec

	copied, truncated atomic.Uint64
}

// v2MacOff is tp_mac of an untagged Ethernet frame in a TPACKET_V2 slot as
// tpacket_rcv computes it: TPACKET_ALIGN(tp_hdrlen + 16) + tp_reserve (+ the
// virtio_net_hdr) - 14.
func v2MacOff(headroom int, vnet bool) int {
	off := (v2HdrLen+16+tpacketAlign-1)&^(tpacketAlign-1) + headroom - 14
	if vnet {
		off += vnetHdrLen
	}
	return off
}

// setupFrameRing creates the TPACKET_V2 ring of c (PACKET_VERSION,
// PACKET_RESERVE and PACKET_VNET_HDR already set) and lets the kernel queue
// the frames that do not fit a slot.
func (s *Socket) setupFrameRing(c *Config) error {
	r := &frameRing{frameSize: c.FrameSize, perBlock: c.BlockSize / c.FrameSize}
	r.slots = r.perBlock * c.BlockCount
	req := unix.TpacketReq{
		Block_size: uint32(c.BlockSize),
		Block_nr:   uint32(c.BlockCount),
		Frame_size: uint32(c.FrameSize),
		Frame_nr:   uint32(r.slots),
	}
	if err := unix.SetsockoptTpacketReq(s.fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return opError("setsockopt PACKET_RX_RING", err)
	}
	// Any non-zero threshold turns the copy on (tpacket_rcv tests
	// po->copy_thresh only for being set).
	if err := unix.SetsockoptInt(s.fd, unix.SOL_PACKET, unix.PACKET_COPY_THRESH, 1); err != nil {
		return opError("setsockopt PACKET_COPY_THRESH", err)
	}
	if c.ReceiveBuffer > 0 {
		if err := unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, c.ReceiveBuffer); err != nil {
			if err := unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, c.ReceiveBuffer); err != nil {
				return opError("setsockopt SO_RCVBUF", err)
			}
		}
	}
	r.big = make([][]byte, bigFrames)
	for i := range r.big {
		r.big[i] = make([]byte, bigHeadroom+vnetHdrLen+bigFrameLen)
	}
	r.msg.Iov = &r.iov
	r.msg.SetIovlen(1)
	s.frames = r
	return nil
}

// slotOff is slot i's offset in a ring whose blocks are blockSize bytes.
func (s *Socket) slotOff(i int) int {
	r := s.frames
	return i/r.perBlock*s.blockSize + i%r.perBlock*r.frameSize
}

func (s *Socket) slotStatus(off int) *uint32 {
	return (*uint32)(unsafe.Pointer(&s.ring[off+v2Status]))
}

// releaseSlots hands the slots of the previous batch back to the kernel.
func (s *Socket) releaseSlots() {
	r := s.frames
	for i := 0; i < r.heldN; i++ {
		k := r.held + i
		if k >= r.slots {
			k -= r.slots
		}
		atomic.StoreUint32(s.slotStatus(s.slotOff(k)), unix.TP_STATUS_KERNEL)
	}
	r.heldN = 0
	r.bigUsed = 0
}

// readFrames is ReadBatch on a RingFrame socket: it takes every ready slot,
// up to len(frames), and waits up to the poll timeout only when none is.
func (s *Socket) readFrames(frames []dataplane.Frame) (int, error) {
	r := s.frames
	s.releaseSlots()
	n := 0
	var deadline time.Time
	for n < len(frames) {
		off := s.slotOff(r.head)
		status := atomic.LoadUint32(s.slotStatus(off))
		if status&unix.TP_STATUS_USER == 0 {
			if n > 0 {
				break
			}
			// Nothing is lent: give back the slots of dropped frames, so
			// that poll (packet_poll looks at the slot before the
			// kernel's head) sleeps.
			s.releaseSlots()
			ok, err := s.wait(&deadline)
			if err != nil || !ok {
				return 0, err
			}
			continue
		}
		if status&unix.TP_STATUS_COPY != 0 && r.bigUsed == len(r.big) {
			break // the next batch reads it
		}
		if r.heldN == 0 {
			r.held = r.head
		}
		r.heldN++
		if r.head++; r.head == r.slots {
			r.head = 0
		}
		if s.frameAt(&frames[n], off, status) {
			n++
		}
	}
	return n, nil
}

// frameAt fills f from the slot at off with status; false if the frame is
// dropped (truncated: longer than a slot when the receive queue was full).
func (s *Socket) frameAt(f *dataplane.Frame, off int, status uint32) bool {
	r := s.frames
	snap := int(s.u32(off + v2Snaplen))
	mac := int(binary.NativeEndian.Uint16(s.ring[off+v2Mac:]))
	var v []byte
	if status&unix.TP_STATUS_COPY != 0 {
		if !s.readCopy(f) {
			r.truncated.Add(1)
			return false
		}
		v = f.Buf[f.Off-vnetHdrLen : f.Off]
	} else {
		end := off + r.frameSize
		if mac < v2HdrLen+s.vnetLen() || off+mac+snap > end || snap < int(s.u32(off+v2Len)) {
			r.truncated.Add(1)
			return false
		}
		f.Buf = s.ring[off+v2HdrLen : end : end]
		f.Off = mac - v2HdrLen
		f.Len = snap
		v = s.ring[off+mac-vnetHdrLen : off+mac]
	}
	f.Ifindex = int(int32(s.u32(off + v2Ifindex)))
	if s.vnet {
		s.readVnet(f, v)
	} else {
		f.CsumPartial = status&unix.TP_STATUS_CSUMNOTREADY != 0
		f.Offload, f.GSO, f.CsumStart, f.CsumOffset = false, dataplane.GSO{}, 0, 0
	}
	if status&unix.TP_STATUS_VLAN_VALID != 0 {
		tpid := uint16(0x8100)
		if status&unix.TP_STATUS_VLAN_TPID_VALID != 0 {
			tpid = binary.NativeEndian.Uint16(s.ring[off+v2VLANTPID:])
		}
		s.putTag(f, tpid, binary.NativeEndian.Uint16(s.ring[off+v2VLANTCI:]))
	}
	return true
}

func (s *Socket) vnetLen() int {
	if s.vnet {
		return vnetHdrLen
	}
	return 0
}

// readCopy reads the whole frame of a TP_STATUS_COPY slot from the receive
// queue into the next big buffer (packet_recvmsg writes the virtio_net_hdr
// first, with PACKET_VNET_HDR, then the frame). False if the frame is not
// there or does not fit.
func (s *Socket) readCopy(f *dataplane.Frame) bool {
	r := s.frames
	buf := r.big[r.bigUsed]
	start := bigHeadroom
	if !s.vnet {
		start += vnetHdrLen // readVnet is not called: keep the same Off
	}
	r.iov.Base = &buf[start]
	r.iov.SetLen(len(buf) - start)
	r.msg.Flags = 0
	got, _, e := unix.Syscall(unix.SYS_RECVMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&r.msg)), unix.MSG_DONTWAIT|unix.MSG_TRUNC)
	if e != 0 || int(got) > len(buf)-start || int(got) < s.vnetLen() {
		return false
	}
	r.bigUsed++
	r.copied.Add(1)
	f.Buf = buf
	f.Off = bigHeadroom + vnetHdrLen
	f.Len = int(got) - s.vnetLen()
	return true
}
