package dataplane

// Frame is one Ethernet frame handed between a packet-I/O backend and the
// worker. Buf aliases backend-owned memory (a ring slot or a preallocated
// buffer) and is valid until the next ReadBatch on the same backend.
//
// Buf[Off:Off+Len] holds the frame; Buf[:Off] is headroom the worker may use
// to prepend an encapsulation header (it then lowers Off and raises Len).
//
// An 802.1Q tag is in-line in both directions, as on the wire: a backend
// whose kernel took it off into metadata (AF_PACKET: tp_vlan_tci) puts it
// back in front of the EtherType before handing the frame to the worker
// (adjusting CsumStart), and sends the frames it is given as they are.
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

	// Offload is set by backends that carry offload metadata both ways
	// (AF_PACKET with PACKET_VNET_HDR): on read they fill GSO, CsumStart
	// and CsumOffset, on write they hand them to the kernel. The worker
	// then rewrites a GSO super-frame once and lets it leave as one frame
	// (the egress device or the kernel segments it), and leaves a partial
	// checksum partial (the pseudo-header sum in the field updated for
	// changed addresses). Without Offload the worker completes partial
	// checksums in software and GSO frames do not occur.
	Offload bool

	// GSO describes a segmentation-offload super-frame: one frame with the
	// headers of its first segment followed by the payload of all of them.
	// The zero value is an ordinary frame. A super-frame is always
	// CsumPartial once the worker has handled it.
	GSO GSO

	// CsumStart and CsumOffset locate the partial checksum of a
	// CsumPartial frame (virtio_net_hdr csum_start/csum_offset): the
	// offset of the L4 header from the start of the frame (Data()) and of
	// the checksum field within that header. Backends without Offload
	// leave them zero.
	CsumStart, CsumOffset uint16

	// FragMax is set on a datagram the worker reassembled from fragments:
	// the size of the largest fragment it came in (the kernel's
	// IPCB(skb)->frag_max_size / IP6CB(skb)->frag_max_size). A packet
	// leaving with it is fragmented again to no more than that. Zero
	// for a frame received whole.
	FragMax uint16

	// VLAN is the worker's own: the 802.1Q VLAN id a frame it transmits
	// must leave with (0: untagged). The worker (emit, vlan.go) retags
	// the frame in-line to match before handing it to the backend.
	// Backends neither read nor set it: a received frame's tag is the one
	// in its bytes.
	VLAN uint16
}

// GSO is the segmentation-offload description of a super-frame, as in
// struct virtio_net_hdr.
type GSO struct {
	// Type is the virtio_net_hdr gso_type: a GSOType in the low bits plus
	// the GSOFlags; GSONone (0) for an ordinary frame.
	Type GSOType
	// Size is the L4 payload of each segment (gso_size: the MSS for TCP).
	Size uint16
}

// GSOType is a virtio_net_hdr gso_type value (linux/virtio_net.h).
type GSOType uint8

// GSO types and flags. The flags are kept as received and passed on.
const (
	GSONone  GSOType = 0    // VIRTIO_NET_HDR_GSO_NONE
	GSOTCPv4 GSOType = 1    // VIRTIO_NET_HDR_GSO_TCPV4
	GSOTCPv6 GSOType = 4    // VIRTIO_NET_HDR_GSO_TCPV6
	GSOUDPL4 GSOType = 5    // VIRTIO_NET_HDR_GSO_UDP_L4 (UDP_SEGMENT)
	GSOECN   GSOType = 0x80 // VIRTIO_NET_HDR_GSO_ECN: the first segment carries TCP CWR
	GSOFlags GSOType = 0xf0 // flag bits (ECN, AccECN, tunnel bits) above the type
)

// Kind returns the type without its flags.
func (t GSOType) Kind() GSOType { return t &^ GSOFlags }

// IsGSO reports whether the frame is a super-frame.
func (g GSO) IsGSO() bool { return g.Type != GSONone }

// Data returns the frame's bytes.
func (f *Frame) Data() []byte { return f.Buf[f.Off : f.Off+f.Len] }

// PacketIO is a packet-I/O backend serving one worker: AF_PACKET (a
// TPACKET_V2 frame ring + batched send), AF_XDP, or the in-memory fake
// used by tests.
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
