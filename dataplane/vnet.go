package dataplane

import "encoding/binary"

// struct virtio_net_hdr (linux/virtio_net.h), which precedes a frame on a
// packet socket with PACKET_VNET_HDR (and on a TUN/TAP with IFF_VNET_HDR).
// Its 16-bit fields are in the host's byte order (legacy virtio: vio_le()
// on little-endian hosts).
const (
	VnetHdrLen     = 10
	VnetFlags      = 0 // flags byte
	VnetGSOType    = 1 // gso_type byte
	VnetHdrLenOff  = 2 // hdr_len
	VnetGSOSize    = 4 // gso_size
	VnetCsumStart  = 6 // csum_start
	VnetCsumOffset = 8 // csum_offset
	// VnetNeedsCsum is VIRTIO_NET_HDR_F_NEEDS_CSUM: the checksum at
	// csum_start+csum_offset holds the pseudo-header sum and must be
	// completed.
	VnetNeedsCsum = 1
)

// PutVnetHdr writes the virtio_net_hdr for frame f (bytes data) to v. A
// frame without Offload is written as an ordinary, complete frame. hdr_len,
// the kernel's hint for how much to copy into the linear part of the skb,
// is the headers up to the end of the L4 header of a super-frame, or up to
// the end of the checksum field of a partial frame (the minimum the kernel
// accepts); 0 otherwise. It is not clamped to the frame: an hdr_len past
// the frame's end (metadata that does not match it) makes the kernel
// refuse the frame with EINVAL.
func PutVnetHdr(v *[VnetHdrLen]byte, f *Frame, data []byte) {
	*v = [VnetHdrLen]byte{}
	if !f.Offload {
		return
	}
	hl := 0
	if f.CsumPartial {
		v[VnetFlags] = VnetNeedsCsum
		binary.NativeEndian.PutUint16(v[VnetCsumStart:], f.CsumStart)
		binary.NativeEndian.PutUint16(v[VnetCsumOffset:], f.CsumOffset)
		hl = int(f.CsumStart) + int(f.CsumOffset) + 2
	}
	if f.GSO.IsGSO() {
		v[VnetGSOType] = byte(f.GSO.Type)
		binary.NativeEndian.PutUint16(v[VnetGSOSize:], f.GSO.Size)
		cs := int(f.CsumStart)
		switch f.GSO.Type.Kind() {
		case GSOTCPv4, GSOTCPv6:
			if cs+13 <= len(data) {
				hl = cs + int(data[cs+12]>>4)*4
			}
		case GSOUDPL4:
			hl = cs + 8
		}
	}
	binary.NativeEndian.PutUint16(v[VnetHdrLenOff:], uint16(hl))
}
