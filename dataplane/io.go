package dataplane

// Frame is one Ethernet frame handed between a packet-I/O backend and the
// worker. Buf aliases backend-owned memory (a ring slot or a preallocated
// buffer) and is valid until the next ReadBatch on the same backend.
//
// Buf[Off:Off+Len] holds the frame; Buf[:Off] is headroom the worker may use
// to prepend an encapsulation header (it then lowers Off and raises Len).
type Frame struct {
	Buf []byte
	Off int
	Len int

	// Ifindex is the interface the frame arrived on (read) or must leave
	// by (write).
	Ifindex int

	// CsumPartial is set when the sender left the L4 checksum to offload
	// (TP_STATUS_CSUMNOTREADY on AF_PACKET): the checksum field holds only
	// the pseudo-header sum and the data plane must complete it in software
	// before the frame leaves, unless the backend can pass the offload on.
	CsumPartial bool

	// CsumUnknown is set by backends that cannot tell a partial checksum
	// from a complete one (AF_XDP carries no skb metadata): the worker then
	// treats an L4 checksum field equal to the folded pseudo-header sum that
	// does not verify as partial and completes it.
	CsumUnknown bool
}

// Data returns the frame's bytes.
func (f *Frame) Data() []byte { return f.Buf[f.Off : f.Off+f.Len] }

// PacketIO is a packet-I/O backend serving one worker: AF_PACKET (TPACKET_V3
// ring + batched send), AF_XDP, or the in-memory fake used by tests.
type PacketIO interface {
	// ReadBatch fills frames[:n] with received frames. It blocks until at
	// least one frame is available, the backend's poll timeout passes (n ==
	// 0, nil error) or the backend is closed (ErrClosed). Frames stay valid
	// until the next ReadBatch.
	ReadBatch(frames []Frame) (n int, err error)
	// WriteBatch transmits frames, each on its Ifindex, and returns how many
	// were accepted. It does not retain the frames.
	WriteBatch(frames []Frame) (n int, err error)
	// Close stops the backend; a blocked ReadBatch returns ErrClosed.
	Close() error
}
