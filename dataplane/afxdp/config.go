package afxdp

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// Defaults used for zero Config fields.
const (
	DefaultFrameSize   = 2048
	DefaultFrames      = 4096
	DefaultRingSize    = 2048
	DefaultPollTimeout = 100 * time.Millisecond
	DefaultTxRetries   = 8

	// PacketHeadroom is the headroom the kernel always leaves in front of
	// a received frame (XDP_PACKET_HEADROOM), on top of Config.Headroom.
	PacketHeadroom = 256

	minFrameSize = 2048
)

// Mode is how an XDP program is attached to an interface.
type Mode uint8

// Attach modes.
const (
	// ModeAuto tries native mode, then generic mode.
	ModeAuto Mode = iota
	// ModeNative runs the program in the driver (XDP_FLAGS_DRV_MODE).
	ModeNative
	// ModeGeneric runs it on the skb path (XDP_FLAGS_SKB_MODE), for any
	// driver.
	ModeGeneric
)

// String returns the mode's name as ParseMode accepts it.
func (m Mode) String() string {
	switch m {
	case ModeAuto:
		return "auto"
	case ModeNative:
		return "native"
	case ModeGeneric:
		return "generic"
	}
	return "mode?"
}

// ParseMode parses "auto", "native" or "generic".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "auto", "":
		return ModeAuto, nil
	case "native", "drv", "driver":
		return ModeNative, nil
	case "generic", "skb":
		return ModeGeneric, nil
	}
	return 0, fmt.Errorf("afxdp: unknown XDP mode %q (want native, generic or auto)", s)
}

// Config sizes the sockets of an IO. The zero value selects the defaults.
type Config struct {
	// FrameSize is the size of a UMEM frame: a power of two from 2048 to
	// the page size. A frame holds PacketHeadroom + Headroom bytes of
	// headroom and the Ethernet frame; longer frames are dropped by the
	// kernel (Stats.KernelRxDropped).
	FrameSize int
	// Frames is the number of UMEM frames per socket. FillRingSize of them
	// receive; the others transmit.
	Frames int
	// Ring sizes (powers of two): the fill and RX rings of the receive
	// side, the TX and completion rings of the transmit side.
	FillRingSize       int
	CompletionRingSize int
	RxRingSize         int
	TxRingSize         int
	// Headroom is extra UMEM headroom (XDP_UMEM_REG headroom) in front of
	// every received frame, beyond PacketHeadroom.
	Headroom int
	// Copy forces copy mode (XDP_COPY); otherwise the kernel uses zero-copy
	// where the driver supports it and copy mode elsewhere (veth).
	Copy bool
	// PollTimeout bounds how long ReadBatch waits for a frame; negative
	// waits until a frame arrives or Close is called.
	PollTimeout time.Duration
	// TxRetries is how many times WriteBatch kicks the kernel again when
	// the transmit ring or its free frames run out before dropping frames.
	TxRetries int
	// NoCoalesce turns off the merging of a batch's TCP segments into
	// super-frames (see ReadBatch).
	NoCoalesce bool
}

func (c Config) withDefaults() (Config, error) {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.FrameSize, DefaultFrameSize)
	def(&c.Frames, DefaultFrames)
	def(&c.FillRingSize, DefaultRingSize)
	def(&c.CompletionRingSize, DefaultRingSize)
	def(&c.RxRingSize, DefaultRingSize)
	def(&c.TxRingSize, DefaultRingSize)
	def(&c.TxRetries, DefaultTxRetries)
	if c.PollTimeout == 0 {
		c.PollTimeout = DefaultPollTimeout
	}
	page := os.Getpagesize()
	pow2 := func(v int) bool { return v > 0 && v&(v-1) == 0 }
	switch {
	case !pow2(c.FrameSize) || c.FrameSize < minFrameSize || c.FrameSize > page:
		return c, fmt.Errorf("afxdp: frame size %d is not a power of two from %d to the page size %d", c.FrameSize, minFrameSize, page)
	case !pow2(c.FillRingSize):
		return c, fmt.Errorf("afxdp: fill ring size %d is not a power of two", c.FillRingSize)
	case !pow2(c.CompletionRingSize):
		return c, fmt.Errorf("afxdp: completion ring size %d is not a power of two", c.CompletionRingSize)
	case !pow2(c.RxRingSize):
		return c, fmt.Errorf("afxdp: rx ring size %d is not a power of two", c.RxRingSize)
	case !pow2(c.TxRingSize):
		return c, fmt.Errorf("afxdp: tx ring size %d is not a power of two", c.TxRingSize)
	case c.Frames <= c.FillRingSize:
		return c, fmt.Errorf("afxdp: %d frames leave none for transmit after the fill ring's %d", c.Frames, c.FillRingSize)
	case c.Headroom < 0 || PacketHeadroom+c.Headroom+128 > c.FrameSize:
		return c, fmt.Errorf("afxdp: headroom %d does not fit a frame of %d bytes", c.Headroom, c.FrameSize)
	case c.TxRetries < 0:
		return c, errors.New("afxdp: negative tx retries")
	}
	return c, nil
}

// MaxFrameLen returns the longest Ethernet frame a socket with this
// configuration receives.
func (c Config) MaxFrameLen() int {
	c, err := c.withDefaults()
	if err != nil {
		return 0
	}
	return c.FrameSize - PacketHeadroom - c.Headroom
}

// Bind names one (interface, queue) pair a socket is bound to.
type Bind struct {
	Ifindex int
	Queue   int
}

// Stats are an IO's counters since Open, summed over its sockets.
type Stats struct {
	RxFrames uint64 // frames ReadBatch returned
	RxPolls  uint64 // times ReadBatch found every RX ring empty and waited
	// RxInvalid counts RX descriptors outside the UMEM (skipped).
	RxInvalid uint64
	// FillShort counts received frames that could not go back to the fill
	// ring at once (they are retried at the next ReadBatch).
	FillShort uint64

	TxFrames uint64 // frames queued on a TX ring and handed to the kernel
	TxKicks  uint64 // sendto calls that drive transmission
	// TxBusy counts kicks the kernel answered with EAGAIN, EBUSY or
	// ENOBUFS; TxRingFull counts frames dropped because the TX ring or the
	// free transmit frames stayed exhausted after TxRetries.
	TxBusy     uint64
	TxRingFull uint64
	// TxTooBig counts frames longer than a UMEM frame (dropped).
	TxTooBig uint64
	// TxFallback counts frames sent through the AF_PACKET socket (no
	// AF_XDP socket on their interface); TxErrors frames it refused.
	TxFallback uint64
	TxErrors   uint64

	// RxSuper counts the TCP super-frames ReadBatch built from received
	// segments, RxMerged the segments that went into them; TxGSO counts
	// super-frames sent (with a virtio_net_hdr, through AF_PACKET).
	RxSuper  uint64
	RxMerged uint64
	TxGSO    uint64

	// Kernel counters (XDP_STATISTICS): frames dropped (too long, or no
	// space), invalid descriptors, and the times the RX ring was full,
	// the fill ring empty or the TX ring empty.
	KernelRxDropped       uint64
	KernelRxInvalidDescs  uint64
	KernelTxInvalidDescs  uint64
	KernelRxRingFull      uint64
	KernelRxFillRingEmpty uint64
	KernelTxRingEmpty     uint64
}

// add accumulates o into s.
func (s *Stats) add(o Stats) {
	s.RxFrames += o.RxFrames
	s.RxPolls += o.RxPolls
	s.RxInvalid += o.RxInvalid
	s.FillShort += o.FillShort
	s.TxFrames += o.TxFrames
	s.TxKicks += o.TxKicks
	s.TxBusy += o.TxBusy
	s.TxRingFull += o.TxRingFull
	s.TxTooBig += o.TxTooBig
	s.TxFallback += o.TxFallback
	s.TxErrors += o.TxErrors
	s.RxSuper += o.RxSuper
	s.RxMerged += o.RxMerged
	s.TxGSO += o.TxGSO
	s.KernelRxDropped += o.KernelRxDropped
	s.KernelRxInvalidDescs += o.KernelRxInvalidDescs
	s.KernelTxInvalidDescs += o.KernelTxInvalidDescs
	s.KernelRxRingFull += o.KernelRxRingFull
	s.KernelRxFillRingEmpty += o.KernelRxFillRingEmpty
	s.KernelTxRingEmpty += o.KernelTxRingEmpty
}

// Add returns the sum of s and o (for totals over several IOs).
func (s Stats) Add(o Stats) Stats {
	s.add(o)
	return s
}
