package realserver

import (
	"encoding/binary"

	"github.com/uvs-lb/uvs/header"
)

// Receive coalescing (GRO) of decapsulated TCP segments.
//
// The director cuts a client's TCP super-frame into MTU-sized segments, so
// the decapsulator receives a train of segments of one flow. Written to the
// TUN device one by one, each costs the local stack a full receive. With a
// TUN device that takes a virtio_net_hdr (IFF_VNET_HDR) the segments of one
// flow that follow each other in a read batch are merged into one TCP
// super-frame with a partial checksum and a GSO description, as the
// kernel's own GRO merges them on a NIC (tcp_gro_receive, inet_gro_receive,
// ipv6_gro_receive): the stack then receives one packet of up to 64 KB.
//
// The rules follow the kernel's: the same addresses and ports, the same
// IPv4 TOS, TTL and DF (IPv6: the same first word — version, traffic class,
// flow label — and hop limit), no IPv4 options or IPv6 extension headers,
// no fragments; the same TCP header length and options bytes, acknowledgment
// number and window; flags ACK (and ECE) equal, PSH allowed and closing the
// super-frame, SYN, FIN, RST, URG and CWR never merged; the next segment
// starts where the previous ended; every segment but the last carries
// exactly the first segment's payload size (the GSO size) and a shorter one
// closes the super-frame; IPv4 IDs increase by one (or, with DF, stay
// fixed). Unlike the kernel, a different window is not merged, so that
// cutting a super-frame again gives back exactly the segments received.
//
// The TUN write of a super-frame carries CHECKSUM_PARTIAL, which the stack
// trusts without checking (skb_csum_unnecessary), so every segment's own
// checksum is verified here before it is merged; a segment that fails is
// written on its own (and the stack drops it, counting it in
// TcpInCsumErrors, as without coalescing).

// Packets merged by the kernel's GRO.
//
// The receiving interface's own GRO runs before any socket sees a packet,
// and it merges tunnelled TCP too: inet_gro_receive hands an IPIP packet
// to ipip_gro_receive (net/ipv4/af_inet.c, built in whether or not the
// ipip module is), which merges the inner TCP segments (tcp4_gro_receive
// after verifying each one's checksum), and the IPv6 outer headers
// likewise (ip6_offload.c: sit, ip4ip6, ip6ip6), as does GRE
// (gre_offload.c). tcp_gro_complete then leaves the merged packet
// CHECKSUM_PARTIAL: its TCP checksum field holds only the pseudo-header
// sum. The raw socket gets a clone of that skb (raw_local_deliver), so
// uvs-rs reads one IPIP packet of up to 64 KB, larger than the MTU, whose
// inner TCP checksum is not a checksum; written to the TUN device as a
// complete packet the stack drops it (TcpInCsumErrors) and the sender
// retransmits, segment by segment.
//
// A raw socket reports neither the GSO size nor the checksum state, so the
// packet is recognised by its checksum field: an inner TCP packet whose
// field equals the pseudo-header sum is taken to be partial. A packet
// whose complete checksum happens to have that value (one in 65536) is
// then trusted without being checked, which accepts nothing a check would
// have refused unless the packet was also corrupted. It is written with
// VIRTIO_NET_HDR_F_NEEDS_CSUM (the stack trusts it as it would have
// trusted the kernel-merged skb) and, when its payload is longer than one
// segment, a GSO description whose gso_size makes every segment fit the
// TUN device's MTU, which is what the device would carry unmerged (the
// segments the kernel merged were at most the receiving link's MTU less
// the outer header; their exact size is not known). Without vnet headers
// the checksum is completed here and the packet written whole.

// vnetHdrLen is the size of struct virtio_net_hdr, which precedes every
// packet read from or written to a TUN device opened with IFF_VNET_HDR.
const vnetHdrLen = 10

// virtio_net_hdr fields (include/uapi/linux/virtio_net.h). The 16-bit
// fields are in the host's byte order (a TUN device without TUNSETVNETLE/BE).
const (
	vnetNeedsCsum = 1    // VIRTIO_NET_HDR_F_NEEDS_CSUM
	vnetGSOTCPv4  = 1    // VIRTIO_NET_HDR_GSO_TCPV4
	vnetGSOTCPv6  = 4    // VIRTIO_NET_HDR_GSO_TCPV6
	vnetGSOECN    = 0x80 // VIRTIO_NET_HDR_GSO_ECN: the segments carry CWR
)

// defaultMTU is the TUN device's MTU when SetMTU was not called.
const defaultMTU = 1500

// Headroom is what the batch reader leaves in front of each received
// packet, so that a virtio_net_hdr fits in front of the inner packet even
// when the inner packet starts the read (GUE version 1, raw IPv6 sockets).
const Headroom = 16

// maxSuper bounds a super-frame: the IPv4 total length (and the IPv6
// payload length) is 16 bits.
const maxSuper = 65535

// TCP flags.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpACK = 0x10
	tcpURG = 0x20
	tcpECE = 0x40
	tcpCWR = 0x80
)

// groKey identifies a TCP flow.
type groKey struct {
	src, dst     [16]byte
	sport, dport uint16
	v6           bool
}

// groItem is one packet to write, possibly a super-frame of several
// segments, held in the receive buffer of its first segment.
type groItem struct {
	buf   []byte // the first segment's receive buffer (the super-frame grows in place)
	start int    // offset of the inner packet in buf (≥ vnetHdrLen)
	n     int    // its current length
	key   groKey
	tcp   bool   // a TCP packet (key set)
	open  bool   // a TCP segment to which further segments may still be appended
	segs  int    // segments merged
	ihl   int    // IP header length
	thl   int    // TCP header length
	gso   int    // payload size of the first segment
	next  uint32 // the sequence number that continues the payload
	id    uint16 // IPv4 ID of the last segment
	fixed bool   // IPv4 IDs fixed (DF) rather than increasing
	csum  bool   // the first segment's checksum has been verified
	psh   bool   // the segment has PSH
	// partial: a packet merged by the kernel's GRO, its TCP checksum
	// field holding the pseudo-header sum (ihl and thl are set).
	partial bool
}

// GRO merges the TCP segments of one read batch. Items are handed out in
// the order of their first segment, which keeps the order of every flow.
// It allocates only in NewGRO.
type GRO struct {
	items []groItem
	off   bool // merge nothing (a TUN device without vnet headers)
	mtu   int  // the TUN device's MTU: bounds the segments of a kernel-merged packet
	// Merged counts segments appended to an earlier one since the last
	// Reset (each saves one TUN write).
	Merged int
	// Partial counts packets merged by the kernel's GRO since the last
	// Reset.
	Partial int
}

// NewGRO returns a coalescer for batches of up to n packets.
func NewGRO(n int) *GRO { return &GRO{items: make([]groItem, 0, n), mtu: defaultMTU} }

// SetMTU sets the TUN device's MTU, from which the segment size of a
// packet merged by the kernel's GRO is derived (1500 by default).
func (g *GRO) SetMTU(mtu int) {
	if mtu >= 1280 {
		g.mtu = mtu
	}
}

// Reset forgets the items of the previous batch.
func (g *GRO) Reset() {
	g.items = g.items[:0]
	g.Merged = 0
	g.Partial = 0
}

// Len returns the number of items to write.
func (g *GRO) Len() int { return len(g.items) }

// Add takes the validated inner packet buf[start:start+n]; buf's bytes
// after it are free for appending the following segments, and
// start ≥ vnetHdrLen. The packet is merged into the open item of its flow
// or becomes a new item.
func (g *GRO) Add(buf []byte, start, n int) {
	it := groItem{buf: buf, start: start, n: n, segs: 1}
	pkt := buf[start : start+n]
	if kernelMerged(&it, pkt) {
		// Already a super-frame: written on its own, and the flow's
		// later segments follow it (it is not open).
		g.Partial++
	} else if !g.off && g.parseTCP(&it, pkt) {
		for i := len(g.items) - 1; i >= 0; i-- {
			h := &g.items[i]
			if !h.tcp || h.key != it.key {
				continue
			}
			// Only the flow's newest item is a candidate: a packet
			// not merged becomes the newest, so nothing that follows
			// it in the flow can overtake it (the kernel flushes a
			// held packet on any packet of its flow it does not merge).
			if h.open && it.open && g.merge(h, &it, pkt) {
				g.Merged++
				return
			}
			break
		}
	}
	if it.psh {
		it.open = false // a PSH segment may end a super-frame but not start one
	}
	if len(g.items) == cap(g.items) {
		// More packets than the batch NewGRO was sized for: still
		// correct, but this append allocates.
		it.open = false
	}
	g.items = append(g.items, it)
}

// kernelMerged reports whether the validated inner packet pkt is a TCP
// packet merged by the kernel's GRO: no IPv4 options or IPv6 extension
// headers (inet_gro_receive and ipv6_gro_receive merge none of those), a
// TCP header that fits, and a checksum field holding the pseudo-header sum
// (tcp_gro_complete, tcp6_gro_complete). It then sets it.partial, ihl,
// thl and key.v6.
func kernelMerged(it *groItem, pkt []byte) bool {
	var ihl int
	var ph uint16
	switch pkt[0] >> 4 {
	case 4:
		if pkt[0]&0x0f != 5 || pkt[9] != header.ProtoTCP || binary.BigEndian.Uint16(pkt[6:])&0x3fff != 0 || len(pkt) < 40 {
			return false
		}
		ihl = 20
		ph = header.PseudoHeaderChecksum(header.ProtoTCP, pkt[12:16], pkt[16:20], uint32(len(pkt)-ihl))
	case 6:
		if pkt[6] != header.ProtoTCP || len(pkt) < 60 {
			return false
		}
		ihl = 40
		ph = header.PseudoHeaderChecksum(header.ProtoTCP, pkt[8:24], pkt[24:40], uint32(len(pkt)-ihl))
	default:
		return false
	}
	thl := int(pkt[ihl+12]>>4) * 4
	if thl < 20 || ihl+thl > len(pkt) || binary.BigEndian.Uint16(pkt[ihl+16:]) != ph {
		return false
	}
	it.partial, it.ihl, it.thl, it.key.v6 = true, ihl, thl, ihl == 40
	return true
}

// parseTCP fills it from pkt and reports whether pkt is a TCP packet (its
// key is then set); it.open is set when it is a segment with payload that
// may start or extend a super-frame.
func (g *GRO) parseTCP(it *groItem, pkt []byte) bool {
	var ihl int
	switch pkt[0] >> 4 {
	case 4:
		// No options, not a fragment, protocol TCP.
		if pkt[0]&0x0f != 5 || pkt[9] != header.ProtoTCP || binary.BigEndian.Uint16(pkt[6:])&0x3fff != 0 {
			return false
		}
		ihl = 20
		copy(it.key.src[:4], pkt[12:16])
		copy(it.key.dst[:4], pkt[16:20])
		it.id = binary.BigEndian.Uint16(pkt[4:])
	case 6:
		if pkt[6] != header.ProtoTCP {
			return false
		}
		ihl = 40
		it.key.v6 = true
		copy(it.key.src[:], pkt[8:24])
		copy(it.key.dst[:], pkt[24:40])
	default:
		return false
	}
	if len(pkt) < ihl+20 {
		return false
	}
	it.key.sport = binary.BigEndian.Uint16(pkt[ihl:])
	it.key.dport = binary.BigEndian.Uint16(pkt[ihl+2:])
	it.tcp = true
	thl := int(pkt[ihl+12]>>4) * 4
	if thl < 20 || ihl+thl >= len(pkt) { // no payload: nothing to merge
		return true
	}
	flags := pkt[ihl+13]
	if flags&tcpACK == 0 || flags&(tcpFIN|tcpSYN|tcpRST|tcpURG|tcpCWR) != 0 {
		return true
	}
	it.ihl, it.thl = ihl, thl
	it.gso = len(pkt) - ihl - thl
	it.next = binary.BigEndian.Uint32(pkt[ihl+4:]) + uint32(it.gso)
	it.psh = flags&tcpPSH != 0
	it.open = true
	return true
}

// merge appends the segment s (its packet pkt) to h if the rules allow.
func (g *GRO) merge(h, s *groItem, pkt []byte) bool {
	head := h.buf[h.start : h.start+h.n]
	ihl, thl := h.ihl, h.thl
	if s.thl != thl {
		return false
	}
	plen := len(pkt) - ihl - thl
	if plen > h.gso || h.n+plen > maxSuper || h.start+h.n+plen > len(h.buf) {
		return false
	}
	if binary.BigEndian.Uint32(pkt[ihl+4:]) != h.next {
		return false
	}
	if h.key.v6 {
		// Version, traffic class, flow label; hop limit.
		if binary.BigEndian.Uint32(pkt) != binary.BigEndian.Uint32(head) || pkt[7] != head[7] {
			return false
		}
	} else {
		// TOS, DF, TTL; the ID follows the previous one (or is fixed with DF).
		if pkt[1] != head[1] || pkt[6] != head[6] || pkt[8] != head[8] {
			return false
		}
		df := pkt[6]&0x40 != 0
		switch {
		case s.id == h.id+1 && (h.segs == 1 || !h.fixed):
		case df && s.id == h.id && (h.segs == 1 || h.fixed):
		default:
			return false
		}
	}
	// Acknowledgment, the reserved bits and AE beside the data offset
	// (the kernel's tcp_flag_word comparison covers them too), flags (PSH
	// aside), window, urgent pointer, options. The kernel
	// (tcp_gro_receive) does not compare the urgent pointer of a segment
	// without URG; it is compared here, so that every segment cut from
	// the super-frame is the one received (FuzzGRO).
	th, hh := pkt[ihl:ihl+thl], head[ihl:ihl+thl]
	if binary.BigEndian.Uint32(th[8:]) != binary.BigEndian.Uint32(hh[8:]) ||
		th[12] != hh[12] ||
		(th[13]^hh[13])&^tcpPSH != 0 ||
		binary.BigEndian.Uint16(th[14:]) != binary.BigEndian.Uint16(hh[14:]) ||
		binary.BigEndian.Uint16(th[18:]) != binary.BigEndian.Uint16(hh[18:]) ||
		string(th[20:]) != string(hh[20:]) {
		return false
	}
	if !h.csum {
		if !tcpChecksumOK(head, ihl, h.key.v6) {
			h.open = false
			return false
		}
		h.csum = true
	}
	if !tcpChecksumOK(pkt, ihl, h.key.v6) {
		return false
	}
	if !h.key.v6 {
		h.fixed = s.id == h.id
		h.id = s.id
	}
	copy(h.buf[h.start+h.n:], pkt[ihl+thl:])
	h.n += plen
	h.next += uint32(plen)
	h.segs++
	if th[13]&tcpPSH != 0 {
		hh[13] |= tcpPSH
		h.open = false
	}
	if plen < h.gso {
		h.open = false
	}
	return true
}

// tcpChecksumOK verifies the complete TCP checksum of a packet whose IP
// header is ihl bytes long.
func tcpChecksumOK(pkt []byte, ihl int, v6 bool) bool {
	var ph uint16
	if v6 {
		ph = header.PseudoHeaderChecksum(header.ProtoTCP, pkt[8:24], pkt[24:40], uint32(len(pkt)-ihl))
	} else {
		ph = header.PseudoHeaderChecksum(header.ProtoTCP, pkt[12:16], pkt[16:20], uint32(len(pkt)-ihl))
	}
	return header.Checksum(pkt[ihl:], ph) == 0xffff
}

// Frame returns item i ready for a TUN device: with vnet, a virtio_net_hdr
// followed by the packet (a super-frame gets its lengths, IPv4 header
// checksum, partial TCP checksum and GSO description), without vnet the
// packet alone (which is then never a super-frame: a coalescer is used only
// with vnet). segs is the number of segments it carries.
func (g *GRO) Frame(i int, vnet bool) (frame []byte, segs int) {
	it := &g.items[i]
	pkt := it.buf[it.start : it.start+it.n]
	if it.partial {
		return g.partialFrame(it, pkt, vnet), 1
	}
	if !vnet {
		return pkt, 1
	}
	v := it.buf[it.start-vnetHdrLen : it.start]
	clear(v)
	if it.segs > 1 {
		l4 := uint32(it.n - it.ihl)
		var ph uint16
		if it.key.v6 {
			binary.BigEndian.PutUint16(pkt[4:], uint16(it.n-40))
			ph = header.PseudoHeaderChecksum(header.ProtoTCP, pkt[8:24], pkt[24:40], l4)
			v[1] = vnetGSOTCPv6
		} else {
			binary.BigEndian.PutUint16(pkt[2:], uint16(it.n))
			pkt[10], pkt[11] = 0, 0
			binary.BigEndian.PutUint16(pkt[10:], ^header.Checksum(pkt[:20], 0))
			ph = header.PseudoHeaderChecksum(header.ProtoTCP, pkt[12:16], pkt[16:20], l4)
			v[1] = vnetGSOTCPv4
		}
		// CHECKSUM_PARTIAL: the field holds the pseudo-header sum, the
		// stack (or a segmenting device) completes it.
		binary.BigEndian.PutUint16(pkt[it.ihl+16:], ph)
		v[0] = vnetNeedsCsum
		binary.NativeEndian.PutUint16(v[2:], uint16(it.ihl+it.thl)) // hdr_len
		binary.NativeEndian.PutUint16(v[4:], uint16(it.gso))        // gso_size
		binary.NativeEndian.PutUint16(v[6:], uint16(it.ihl))        // csum_start
		binary.NativeEndian.PutUint16(v[8:], 16)                    // csum_offset
	}
	return it.buf[it.start-vnetHdrLen : it.start+it.n], it.segs
}

// partialFrame returns the frame of a packet merged by the kernel's GRO
// (its checksum field holds the pseudo-header sum). With vnet it is
// marked NEEDS_CSUM and, when its payload exceeds one segment of the TUN
// device's MTU, described as a TCP GSO packet of such segments (as
// tcp_gro_complete described it: SKB_GSO_TCPV4/6, and SKB_GSO_TCP_ECN when
// it carries CWR); without, the checksum is completed here
// (skb_checksum_help's arithmetic) and the packet goes whole.
func (g *GRO) partialFrame(it *groItem, pkt []byte, vnet bool) []byte {
	ihl, thl := it.ihl, it.thl
	if !vnet {
		ph := binary.BigEndian.Uint16(pkt[ihl+16:])
		pkt[ihl+16], pkt[ihl+17] = 0, 0
		binary.BigEndian.PutUint16(pkt[ihl+16:], ^header.Checksum(pkt[ihl:], ph))
		return pkt
	}
	v := it.buf[it.start-vnetHdrLen : it.start]
	clear(v)
	v[0] = vnetNeedsCsum
	binary.NativeEndian.PutUint16(v[6:], uint16(ihl)) // csum_start
	binary.NativeEndian.PutUint16(v[8:], 16)          // csum_offset
	if mss := g.mtu - ihl - thl; mss > 0 && len(pkt)-ihl-thl > mss {
		v[1] = vnetGSOTCPv4
		if it.key.v6 {
			v[1] = vnetGSOTCPv6
		}
		if pkt[ihl+13]&tcpCWR != 0 {
			v[1] |= vnetGSOECN
		}
		binary.NativeEndian.PutUint16(v[2:], uint16(ihl+thl)) // hdr_len
		binary.NativeEndian.PutUint16(v[4:], uint16(mss))     // gso_size
	}
	return it.buf[it.start-vnetHdrLen : it.start+it.n]
}
