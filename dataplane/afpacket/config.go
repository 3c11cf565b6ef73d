// Package afpacket is the AF_PACKET packet-I/O backend of the data plane: a
// receive ring read in place and batched transmit with sendmmsg,
// implementing dataplane.PacketIO.
//
// The receive ring is TPACKET_V2 by default (RingFrame): the kernel hands
// every frame to userspace as soon as it has written it, so a frame waits
// for no timer at low rates, and a reader that keeps up reads every ready
// slot in one batch without sleeping. RingBlock selects TPACKET_V3, whose
// blocks reach userspace when full or when their timer (at least 1 ms)
// retires them: up to a millisecond per frame at low rates.
//
// One Socket serves one worker. Open several sockets with the same
// FanoutGroup on an interface (one per RX queue, see nic.NumRXQueues) and run
// each on its own goroutine (uvsd does not pin them: a pinned worker cannot
// leave a CPU other processes load, and its ring waits with it). A socket with Ifindex 0
// receives from every interface of its network namespace, and any socket can
// transmit on any interface: WriteBatch sends each frame by its Ifindex.
//
// The frames ReadBatch returns alias the receive ring (or, for frames
// longer than a RingFrame slot, buffers of the socket). They stay valid,
// and may be rewritten in place and passed to WriteBatch, until the next
// ReadBatch, which hands the ring slots or blocks they live in back to the
// kernel.
//
// A classic BPF filter (see Filter) is attached before the socket is
// bound, so no frame outside the filter ever reaches the ring.
//
// Offloads: by default the socket uses PACKET_VNET_HDR. The kernel then
// writes a struct virtio_net_hdr in front of every frame in the ring (in
// the headroom, just before the MAC header) and expects one in front of
// every frame sent, so TCP and UDP GSO super-frames of up to 64 KB arrive
// and leave whole, and partial checksums (CHECKSUM_PARTIAL) travel as
// csum_start/csum_offset instead of being completed in software. The
// metadata appears in dataplane.Frame (Offload, GSO, CsumStart,
// CsumOffset). The kernel refuses metadata that does not match a frame
// (EINVAL), which WriteBatch counts as a TX error.
package afpacket

import (
	"time"

	"golang.org/x/net/bpf"
)

// Default ring geometry and batch sizes used for zero Config fields. A
// RingFrame ring of the defaults has 8192 slots of 2 KB (16 MB).
//
// A RingBlock block reaches userspace when it is full or its timeout passes, so the
// block size bounds the latency the ring adds under load: 256 KB (four 64
// KB super-frames) keeps a single TCP stream's round trip short, where 1
// MB blocks halved its throughput. The ring still holds 16 MB.
const (
	DefaultBlockSize    = 256 << 10
	DefaultBlockCount   = 64
	DefaultFrameSize    = 2048
	DefaultBlockTimeout = time.Millisecond
	DefaultPollTimeout  = 100 * time.Millisecond
	DefaultTxBatch      = 64
	DefaultHeadroom     = 64
	DefaultSendBuffer   = 8 << 20
	// DefaultReceiveBuffer holds the frames longer than a RingFrame slot
	// until ReadBatch reads them: about forty 64 KB super-frames.
	DefaultReceiveBuffer = 8 << 20
)

// RingMode selects the layout of the receive ring.
type RingMode uint8

// Ring modes.
const (
	// RingFrame is a TPACKET_V2 ring of fixed slots that the kernel hands
	// to userspace one frame at a time: a frame is readable as soon as it
	// has arrived, at any rate, and a busy reader takes a batch of every
	// ready slot without sleeping. Frames longer than a slot (GSO
	// super-frames) come through the socket's receive queue, whole. The
	// default.
	RingFrame RingMode = iota
	// RingBlock is a TPACKET_V3 ring of blocks that the kernel hands to
	// userspace when one is full or its BlockTimeout (at least 1 ms)
	// passes: denser, but at low rates each frame waits for the timer.
	RingBlock
)

// String returns the mode's name.
func (m RingMode) String() string {
	switch m {
	case RingFrame:
		return "frame"
	case RingBlock:
		return "block"
	}
	return "unknown"
}

// FanoutMode is the PACKET_FANOUT algorithm of a fanout group.
type FanoutMode uint16

// Fanout modes (linux/if_packet.h). PACKET_FANOUT_FLAG_DEFRAG is never set:
// the data plane handles fragments itself.
const (
	FanoutHash FanoutMode = 0 // PACKET_FANOUT_HASH: by flow hash (default)
	FanoutLB   FanoutMode = 1 // PACKET_FANOUT_LB: round robin
	FanoutCPU  FanoutMode = 2 // PACKET_FANOUT_CPU: by receiving CPU
	FanoutQM   FanoutMode = 5 // PACKET_FANOUT_QM: by recorded RX queue
)

// String returns the kernel's name for the mode.
func (m FanoutMode) String() string {
	switch m {
	case FanoutHash:
		return "hash"
	case FanoutLB:
		return "lb"
	case FanoutCPU:
		return "cpu"
	case FanoutQM:
		return "qm"
	}
	return "unknown"
}

// Config describes one socket. The zero value of every field except the
// interface selects a default; Open validates the rest.
type Config struct {
	// Interface names the interface to receive from. If empty, Ifindex is
	// used; Ifindex 0 receives from all interfaces of the namespace.
	Interface string
	Ifindex   int

	// FanoutGroup, if non-zero, joins the socket to that PACKET_FANOUT
	// group id (1-65535) with FanoutMode. All sockets of a group must be
	// bound to the same interface and use the same mode.
	FanoutGroup uint16
	FanoutMode  FanoutMode

	// Ring is the receive ring's layout; the zero value is RingFrame
	// (TPACKET_V2).
	Ring RingMode

	// Receive ring. With RingFrame the ring has BlockSize / FrameSize
	// slots per block of FrameSize bytes each: a frame that does not fit
	// its slot behind the headroom (a GSO super-frame, a jumbo frame) is
	// read whole from the socket's receive queue instead (ReceiveBuffer),
	// up to 64 KB; BlockTimeout is not used. With RingBlock (TPACKET_V3):
	// BlockSize must be a multiple of the page
	// size (a power of two wastes no kernel memory); FrameSize a multiple
	// of 16 that fits the frame header plus Headroom (TPACKET_V3 packs
	// frames of any length into a block, so FrameSize only sizes the
	// kernel's bookkeeping). A frame longer than a block is truncated. BlockTimeout is how long the kernel
	// waits before handing a partly filled block to userspace: the
	// receive latency at low rates (rounded up to the kernel's timer
	// granularity, which may be a jiffy).
	BlockSize    int
	BlockCount   int
	FrameSize    int
	BlockTimeout time.Duration

	// Headroom is reserved in front of each received frame
	// (PACKET_RESERVE) so a header can be prepended in place; the ring
	// may add a few bytes of alignment. Zero selects DefaultHeadroom;
	// use NoHeadroom for none.
	Headroom int

	// Filter is a classic BPF program attached before the socket is
	// bound; nil accepts every frame.
	Filter []bpf.RawInstruction

	// ReceiveOutgoing, if set, also delivers the frames this host sends
	// (PACKET_IGNORE_OUTGOING is not set). By default they are ignored.
	ReceiveOutgoing bool

	// Promiscuous puts the interface into promiscuous mode for the
	// socket's lifetime (requires Ifindex != 0).
	Promiscuous bool

	// PollTimeout bounds how long ReadBatch waits for a frame; negative
	// waits until a frame arrives or Close is called.
	PollTimeout time.Duration

	// TxBatch is how many frames one sendmmsg call carries.
	TxBatch int

	// TxRetries is how many times WriteBatch retries a send that failed
	// for lack of buffer space (EAGAIN, ENOBUFS) before dropping the
	// rest of the batch; after EAGAIN it first waits up to 2 ms for
	// room. Zero selects 4; negative disables retries.
	TxRetries int

	// ReceiveBuffer is the socket's receive buffer in bytes
	// (SO_RCVBUFFORCE, or SO_RCVBUF within net.core.rmem_max) with
	// RingFrame: the frames longer than a slot waiting to be read; a
	// frame that finds it full arrives truncated and is dropped
	// (Stats.Truncated). Zero selects DefaultReceiveBuffer; negative
	// keeps the kernel's default.
	ReceiveBuffer int

	// SendBuffer is the socket's send buffer in bytes (SO_SNDBUFFORCE,
	// or SO_SNDBUF within net.core.wmem_max without CAP_NET_ADMIN): the
	// frames in flight towards the egress devices. Zero selects
	// DefaultSendBuffer, room for a hundred 64 KB super-frames; negative
	// keeps the kernel's default (net.core.wmem_default).
	SendBuffer int

	// DisableOffload turns PACKET_VNET_HDR off. By default the socket
	// reads a struct virtio_net_hdr with every frame and writes one with
	// every frame: received frames carry their GSO and partial-checksum
	// metadata (dataplane.Frame.Offload, GSO, CsumStart, CsumOffset), so
	// a 64 KB TCP super-frame arrives and leaves as one frame and a
	// partial checksum is passed on for the egress device to complete.
	// Without it a super-frame arrives as an oversized frame with no
	// metadata and frames are written as they are. Sockets with offloads
	// transmit through the egress device's qdisc (dev_queue_xmit), so a
	// super-frame the device cannot segment is segmented in software;
	// without, they bypass it (PACKET_QDISC_BYPASS).
	DisableOffload bool
}

// NoHeadroom as Config.Headroom reserves no headroom.
const NoHeadroom = -1

// Stats are a socket's counters since Open.
type Stats struct {
	// Kernel counters (PACKET_STATISTICS), accumulated: frames passed
	// the filter, frames dropped for lack of ring space, and the times
	// the ring queue was frozen because every block was held by
	// userspace.
	Packets      uint64
	Drops        uint64
	FreezeQCount uint64

	// BlocksRead and FramesRead count ring blocks and frames ReadBatch
	// consumed.
	BlocksRead uint64
	FramesRead uint64
	// FramesSent counts frames the kernel accepted for transmission.
	FramesSent uint64
	// TxBusy counts sends that failed for lack of buffer space (EAGAIN,
	// ENOBUFS) and were retried or given up; TxDropped counts frames
	// given up after TxRetries; TxErrors counts frames the kernel
	// refused (for example EMSGSIZE, ENXIO, ENETDOWN, or EINVAL for
	// offload metadata that does not match the frame) and that were
	// skipped.
	TxBusy    uint64
	TxDropped uint64
	TxErrors  uint64

	// GSORead counts GSO super-frames read, GSOSent super-frames the
	// kernel accepted (offload on).
	GSORead uint64
	GSOSent uint64

	// RingFrame only: FramesCopied counts frames longer than a slot read
	// whole from the receive queue; Truncated counts frames dropped
	// because the kernel could only give their head (the receive queue
	// was full). FreezeQCount and BlocksRead stay 0.
	FramesCopied uint64
	Truncated    uint64
}
