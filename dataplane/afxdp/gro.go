package afxdp

import (
	"encoding/binary"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/header"
)

// Receive coalescing (GRO) of a batch's TCP segments.
//
// A native XDP program on a veth turns off TSO and GSO on the veth's peer
// (veth_xdp_set clears NETIF_F_GSO_SOFTWARE from the peer's hw_features and
// veth_fix_features from its features), so a sender behind the peer cuts
// its TCP stream into MTU-sized segments before the veth, and each reaches
// uvsd as one frame. A frags-capable program (BPF_F_XDP_HAS_FRAGS) does not
// change that: veth_xdp_set only raises the peer's max_mtu for it (seen on
// Linux 6.18: the peer's tx-tcp-segmentation stays "off [fixed]").
//
// ReadBatch therefore merges the segments of one TCP flow that arrive in one
// batch into a super-frame, as the kernel's GRO merges them on a NIC
// (tcp_gro_receive, inet_gro_receive, ipv6_gro_receive), and hands the
// worker one frame with a GSO description and a partial checksum (Offload):
// the worker rewrites it once, and WriteBatch sends it with a virtio_net_hdr
// through an AF_PACKET socket, so the egress veth (or the kernel's software
// GSO) cuts it again and the real server's stack receives it whole.
//
// The rules are the kernel's: the same interface, addresses and ports; the
// same IPv4 TOS, TTL and DF (IPv6: the same first word and hop limit), no
// IPv4 options or IPv6 extension headers, no fragments; the same TCP header
// length and options bytes, acknowledgment number and window; flags ACK
// (and ECE) equal, PSH closing the super-frame; SYN, FIN, RST, URG and CWR
// never merged; each segment starts where the previous ended; every segment
// but the last carries exactly the first segment's payload (the GSO size) and
// a shorter one closes the super-frame; IPv4 IDs increase by one (or, with
// DF, stay fixed). A different window is not merged, so that cutting the
// super-frame again gives back the segments received. Every segment's
// checksum must be either a partial one (the folded pseudo-header sum the
// sender's stack left for offload, which the kernel trusts as
// CHECKSUM_PARTIAL) or verify in full; any other segment is handed on alone.
// A frame that is not merged keeps its place; a super-frame takes the place
// of its first segment, so the order within a flow is kept.
//
// Super-frames are built in preallocated regions (groRegions per IO); a
// flow whose second segment finds no free region is not merged in that
// batch.

const (
	// groRegions bounds the super-frames built per batch: a single
	// stream fills at most two or three per batch of 64 frames.
	groRegions = 8
	// groItems bounds the flows tracked per batch.
	groItems = 16
	// groMaxIP is the largest IPv4 total length or IPv6 payload length.
	groMaxIP = 0xffff

	ethHdrLen  = 14
	etherIPv4  = 0x0800
	etherIPv6  = 0x86dd
	tcpFIN     = 0x01
	tcpSYN     = 0x02
	tcpRST     = 0x04
	tcpPSH     = 0x08
	tcpACK     = 0x10
	tcpURG     = 0x20
	tcpECE     = 0x40
	tcpCWR     = 0x80
	tcpCsumOff = 16
)

// groSeg is what coalescing needs of one TCP segment (offsets from the
// start of the frame).
type groSeg struct {
	v6      bool
	l4, pay int // TCP header and payload
	size    int // payload bytes
	flags   uint8
	seq     uint32
	id      uint16 // IPv4 identification
	// merge is set when the segment may be merged: payload, flags ACK
	// (ECE, PSH) only, a checksum that is partial or verifies.
	merge bool
}

// parseSeg parses an untagged Ethernet frame holding a TCP segment. ok is
// false for anything else (the frame is not looked at again).
func parseSeg(d []byte) (s groSeg, ok bool) {
	if len(d) < ethHdrLen+20 {
		return s, false
	}
	switch binary.BigEndian.Uint16(d[12:14]) {
	case etherIPv4:
		ip := d[ethHdrLen:]
		if ip[0] != 0x45 || ip[9] != header.ProtoTCP {
			return s, false
		}
		if int(binary.BigEndian.Uint16(ip[2:4])) != len(ip) {
			return s, false // link padding or a truncated frame
		}
		if binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0 {
			return s, false // a fragment (MF or an offset)
		}
		s.l4 = ethHdrLen + 20
		s.id = binary.BigEndian.Uint16(ip[4:6])
	case etherIPv6:
		if len(d) < ethHdrLen+40 {
			return s, false
		}
		ip := d[ethHdrLen:]
		if ip[0]>>4 != 6 || ip[6] != header.ProtoTCP || int(binary.BigEndian.Uint16(ip[4:6]))+40 != len(ip) {
			return s, false
		}
		s.v6 = true
		s.l4 = ethHdrLen + 40
	default:
		return s, false
	}
	if len(d) < s.l4+20 {
		return s, false
	}
	th := d[s.l4:]
	doff := int(th[12]>>4) * 4
	if doff < 20 || s.l4+doff > len(d) {
		return s, false
	}
	s.pay = s.l4 + doff
	s.size = len(d) - s.pay
	s.flags = th[13]
	s.seq = binary.BigEndian.Uint32(th[4:8])
	s.merge = s.size > 0 && s.flags&^(tcpPSH|tcpECE) == tcpACK && segCsumOK(d, &s)
	return s, true
}

// pseudo returns the folded pseudo-header sum of the frame's TCP segment
// for an L4 length of l4len.
func pseudo(d []byte, v6 bool, l4len int) uint16 {
	if v6 {
		return header.PseudoHeaderChecksum(header.ProtoTCP, d[ethHdrLen+8:ethHdrLen+24], d[ethHdrLen+24:ethHdrLen+40], uint32(l4len))
	}
	return header.PseudoHeaderChecksum(header.ProtoTCP, d[ethHdrLen+12:ethHdrLen+16], d[ethHdrLen+16:ethHdrLen+20], uint32(l4len))
}

// segCsumOK reports whether the segment's checksum is partial (the field
// holds the pseudo-header sum: the sender left it to offload, and the
// kernel trusts such a CHECKSUM_PARTIAL skb) or verifies in full; and, for
// IPv4, whether the IP header checksum verifies (inet_gro_receive checks
// it too).
func segCsumOK(d []byte, s *groSeg) bool {
	if !s.v6 && header.Checksum(d[ethHdrLen:ethHdrLen+20], 0) != 0xffff {
		return false
	}
	l4len := len(d) - s.l4
	ps := pseudo(d, s.v6, l4len)
	if binary.BigEndian.Uint16(d[s.l4+tcpCsumOff:]) == ps {
		return true
	}
	return header.Checksum(d[s.l4:], ps) == 0xffff
}

// groItem is a flow with a segment in the batch that later segments may
// join.
type groItem struct {
	pos     int // index in the batch of its frame
	region  int // its region, -1 while it is the first segment's own frame
	seg     groSeg
	gso     int // payload of the first segment
	nextSeq uint32
	lastID  uint16
	segs    int
	closed  bool
}

// coalescer merges the TCP segments of a batch (see above). It belongs to
// one IO and is used under its receive lock.
type coalescer struct {
	slab    []byte
	regSize int
	head    int // headroom in front of a super-frame in its region
	used    int // regions handed out in this batch
	items   []groItem

	supers, merged uint64 // super-frames built, segments merged into them
}

// newCoalescer preallocates groRegions regions with headroom bytes in
// front of a super-frame of up to 64 KB.
func newCoalescer(headroom int) *coalescer {
	size := headroom + ethHdrLen + 4 + groMaxIP
	size = (size + 4095) &^ 4095
	return &coalescer{
		slab:    make([]byte, groRegions*size),
		regSize: size,
		head:    headroom,
		items:   make([]groItem, 0, groItems),
	}
}

// coalesce merges frames in place and returns how many remain.
func (c *coalescer) coalesce(frames []dataplane.Frame) int {
	c.items = c.items[:0]
	c.used = 0
	w := 0
	for i := range frames {
		f := &frames[i]
		// The slot may hold a super-frame of an earlier batch.
		f.GSO, f.Offload = dataplane.GSO{}, false
		s, ok := parseSeg(f.Data())
		if ok {
			j := c.find(frames, f, &s)
			if j >= 0 && s.merge && c.join(frames, j, f, &s) {
				continue
			}
			if j >= 0 {
				// A segment of the flow that cannot join: later ones
				// must not jump ahead of it.
				c.items[j].closed = true
			}
			// A PSH segment ends a super-frame: none starts with it.
			if s.merge && s.flags&tcpPSH == 0 && len(c.items) < cap(c.items) {
				c.items = append(c.items, groItem{pos: w, region: -1, seg: s, gso: s.size,
					nextSeq: s.seq + uint32(s.size), lastID: s.id, segs: 1})
			}
		}
		if w != i {
			frames[w] = *f
		}
		w++
	}
	c.finish(frames)
	return w
}

// find returns the open item of f's flow, or -1.
func (c *coalescer) find(frames []dataplane.Frame, f *dataplane.Frame, s *groSeg) int {
	d := f.Data()
	for j := range c.items {
		it := &c.items[j]
		if it.closed || it.seg.v6 != s.v6 {
			continue
		}
		h := &frames[it.pos]
		if h.Ifindex != f.Ifindex {
			continue
		}
		hd := h.Data()
		// Ports, then addresses.
		if binary.NativeEndian.Uint32(hd[it.seg.l4:]) != binary.NativeEndian.Uint32(d[s.l4:]) {
			continue
		}
		if s.v6 {
			if string(hd[ethHdrLen+8:ethHdrLen+40]) != string(d[ethHdrLen+8:ethHdrLen+40]) {
				continue
			}
		} else if binary.NativeEndian.Uint64(hd[ethHdrLen+12:]) != binary.NativeEndian.Uint64(d[ethHdrLen+12:]) {
			continue
		}
		return j
	}
	return -1
}

// join appends segment f to item j and reports whether it did.
func (c *coalescer) join(frames []dataplane.Frame, j int, f *dataplane.Frame, s *groSeg) bool {
	it := &c.items[j]
	h := &frames[it.pos]
	hd, d := h.Data(), f.Data()
	if s.seq != it.nextSeq || s.size > it.gso || s.pay != it.seg.pay {
		return false
	}
	if s.v6 {
		// Version, traffic class, flow label; hop limit.
		if string(hd[ethHdrLen:ethHdrLen+4]) != string(d[ethHdrLen:ethHdrLen+4]) || hd[ethHdrLen+7] != d[ethHdrLen+7] {
			return false
		}
	} else {
		// TOS, TTL, DF; the ID one more, or the same with DF.
		df := d[ethHdrLen+6] & 0x40
		if hd[ethHdrLen+1] != d[ethHdrLen+1] || hd[ethHdrLen+8] != d[ethHdrLen+8] || hd[ethHdrLen+6]&0x40 != df {
			return false
		}
		if s.id != it.lastID+1 && (df == 0 || s.id != it.lastID) {
			return false
		}
	}
	// Acknowledgment number, header length, flags but PSH, window (the
	// 8 bytes from offset 8 but the PSH bit), the urgent pointer (which
	// tcp_gro_receive does not compare without URG: compared here, so that
	// the segments leaving are the ones received) and the options.
	ht, st := hd[it.seg.l4:], d[s.l4:]
	if binary.NativeEndian.Uint32(ht[8:12]) != binary.NativeEndian.Uint32(st[8:12]) ||
		ht[12] != st[12] || (ht[13]^st[13])&^tcpPSH != 0 ||
		binary.NativeEndian.Uint16(ht[14:16]) != binary.NativeEndian.Uint16(st[14:16]) ||
		binary.NativeEndian.Uint16(ht[18:20]) != binary.NativeEndian.Uint16(st[18:20]) ||
		string(ht[20:s.pay-s.l4]) != string(st[20:s.pay-s.l4]) {
		return false
	}
	ipLen := h.Len - ethHdrLen
	if s.v6 {
		ipLen -= 40
	}
	if ipLen+s.size > groMaxIP {
		return false
	}
	if it.region < 0 {
		if c.used == groRegions {
			return false
		}
		it.region = c.used
		c.used++
		r := c.slab[it.region*c.regSize : (it.region+1)*c.regSize : (it.region+1)*c.regSize]
		copy(r[c.head:], hd)
		h.Buf, h.Off = r, c.head
		c.supers++
		c.merged++ // the first segment
	}
	copy(h.Buf[h.Off+h.Len:], d[s.pay:])
	h.Len += s.size
	it.nextSeq += uint32(s.size)
	it.lastID = s.id
	it.segs++
	c.merged++
	if s.flags&tcpPSH != 0 {
		h.Buf[h.Off+it.seg.l4+13] |= tcpPSH
		it.closed = true
	}
	if s.size < it.gso {
		it.closed = true
	}
	return true
}

// finish completes the headers of the super-frames built: IP length (and
// the IPv4 header checksum), the partial TCP checksum seeded with the
// pseudo-header sum of the whole segment (as __tcp_v4_send_check and
// tcp_v6_send_check seed a CHECKSUM_PARTIAL skb), and the offload metadata.
func (c *coalescer) finish(frames []dataplane.Frame) {
	for j := range c.items {
		it := &c.items[j]
		if it.segs < 2 {
			continue
		}
		f := &frames[it.pos]
		d := f.Data()
		ip := d[ethHdrLen:]
		gso := dataplane.GSO{Type: dataplane.GSOTCPv4, Size: uint16(it.gso)}
		if it.seg.v6 {
			gso.Type = dataplane.GSOTCPv6
			binary.BigEndian.PutUint16(ip[4:6], uint16(len(ip)-40))
		} else {
			binary.BigEndian.PutUint16(ip[2:4], uint16(len(ip)))
			ip[10], ip[11] = 0, 0
			binary.BigEndian.PutUint16(ip[10:12], ^header.Checksum(ip[:20], 0))
		}
		binary.BigEndian.PutUint16(d[it.seg.l4+tcpCsumOff:], pseudo(d, it.seg.v6, len(d)-it.seg.l4))
		f.GSO = gso
		f.Offload = true
		f.CsumPartial = true
		f.CsumUnknown = false
		f.CsumStart = uint16(it.seg.l4)
		f.CsumOffset = tcpCsumOff
	}
}
