// Package afpacket is the AF_PACKET packet-I/O backend of the data plane: a
// TPACKET_V3 receive ring read in place and batched transmit with sendmmsg,
// implementing dataplane.PacketIO.
//
// One Socket serves one worker. Open several sockets with the same
// FanoutGroup on an interface (one per RX queue, see NumRXQueues) and run
// each on its own goroutine pinned with PinToCPU. A socket with Ifindex 0
// receives from every interface of its network namespace, and any socket can
// transmit on any interface: WriteBatch sends each frame by its Ifindex.
//
// The frames ReadBatch returns alias the receive ring. They stay valid, and
// may be rewritten in place and passed to WriteBatch, until the next
// ReadBatch, which hands the ring blocks they live in back to the kernel.
//
// A classic BPF filter (see OwnedFilter) is attached before the socket is
// bound, so no frame outside the filter ever reaches the ring.
package afpacket

import (
	"time"

	"golang.org/x/net/bpf"
)

// Default ring geometry and batch sizes used for zero Config fields.
const (
	DefaultBlockSize    = 1 << 20
	DefaultBlockCount   = 16
	DefaultFrameSize    = 2048
	DefaultBlockTimeout = time.Millisecond
	DefaultPollTimeout  = 100 * time.Millisecond
	DefaultTxBatch      = 64
	DefaultHeadroom     = 64
)

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

	// Receive ring (TPACKET_V3). BlockSize must be a multiple of the page
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
	// rest of the batch. Zero selects 4; negative disables retries.
	TxRetries int
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
	// refused (for example EMSGSIZE, ENXIO, ENETDOWN) and that were
	// skipped.
	TxBusy    uint64
	TxDropped uint64
	TxErrors  uint64
}
