package modes

import (
	"encoding/binary"

	"github.com/uvs-lb/uvs/header"
)

// Fragmenter splits an IP packet that does not fit the egress MTU into
// fragments, as the kernel's output path does for a forwarded packet:
//
//   - IPv4 as ip_do_fragment (net/ipv4/ip_output.c, its slow path): every
//     fragment repeats the IP header; the data of each but the last is
//     the largest multiple of 8 bytes that fits the MTU; the
//     identification is kept; offset and MF are set (MF on the last one
//     only if the packet was itself a non-last fragment); the header
//     checksum is recomputed. The first fragment keeps every option; the
//     later ones keep only those with the RFC 791 copy flag, the others
//     overwritten with NOP so that the header length stays the same
//     (ip_options_fragment). DF is cleared unless the caller keeps it (a
//     reassembled datagram whose largest fragment had DF,
//     IPSKB_FRAG_PMTU).
//   - IPv6 as ip6_fragment (net/ipv6/ip6_output.c): routers never
//     fragment IPv6, but the kernel fragments again a datagram that its
//     netfilter defragmentation reassembled. The unfragmentable part (the
//     fixed header and the extension headers ip6_find_1stfragopt counts:
//     hop-by-hop, routing, and destination options before a routing
//     header) is repeated, a fragment header with the caller's 32-bit
//     identification follows it, and the rest is cut in multiples of 8.
//
// The bytes in front of the IP header (the link-layer header) are copied
// into every fragment. The L4 checksum must be complete: fragments cannot
// carry checksum offload. Fragmenter never allocates: the caller passes
// each fragment's buffer.
type Fragmenter struct {
	frame []byte
	l3    int  // start of the IP header in frame
	hlen  int  // length of the repeated IP header (IPv4 header, IPv6 unfragmentable part)
	data  int  // start of the fragmentable data in frame
	end   int  // end of the IP packet in frame
	off   int  // start of the next fragment's data in frame
	room  int  // most data bytes a fragment may carry
	v6    bool // IPv6
	i     int  // index of the next fragment

	// IPv4.
	base  int    // fragment offset of the packet itself, in bytes
	flags uint16 // MF (the packet was a non-last fragment) and DF kept
	later [header.IPv4MaxSize]byte

	// IPv6.
	id    uint32
	nhOff int   // offset from l3 of the next-header byte pointing past the unfragmentable part
	nh    uint8 // the header it pointed to
}

// IPv6 extension headers ip6_find_1stfragopt walks.
const (
	ipv6HopByHop = 0
	ipv6Routing  = 43
	ipv6DestOpts = 60
)

// InitIPv4 prepares to fragment the IPv4 packet at frame[l3:] for mtu (the
// largest IP packet allowed on the egress). keepDF keeps the DF bit in the
// fragments. It returns false, and Next then writes nothing, when frame
// does not hold a valid IPv4 header and the whole packet, or when the MTU
// leaves no room for 8 bytes of data after the header.
func (fr *Fragmenter) InitIPv4(frame []byte, l3, mtu int, keepDF bool) bool {
	*fr = Fragmenter{}
	if l3 < 0 || l3 > len(frame) {
		return false
	}
	ip := header.IPv4(frame[l3:])
	if !ip.IsValid() {
		return false
	}
	hlen, total := ip.HeaderLen(), int(ip.TotalLen())
	room := mtu - hlen
	if room < 8 {
		return false
	}
	ff := ip.FlagsFrag()
	*fr = Fragmenter{
		frame: frame,
		l3:    l3,
		hlen:  hlen,
		data:  l3 + hlen,
		end:   l3 + total,
		off:   l3 + hlen,
		room:  room,
		base:  int(ff&header.IPv4FragOffMask) * 8,
		flags: ff & header.IPv4FlagMF,
	}
	if keepDF {
		fr.flags |= ff & header.IPv4FlagDF
	}
	copy(fr.later[:hlen], ip[:hlen])
	optionsFragment(fr.later[header.IPv4MinSize:hlen])
	return true
}

// optionsFragment overwrites the options without the copy flag (RFC 791:
// bit 0x80 of the option type) with NOP, as ip_options_fragment
// (net/ipv4/ip_options.c) does for the header of the fragments after the
// first. It stops at an end-of-list option or at a malformed length,
// leaving the rest as it is.
func optionsFragment(opts []byte) {
	const (
		optEnd     = 0
		optNOP     = 1
		optCopied  = 0x80
		optMinSize = 2
	)
	for i := 0; i < len(opts); {
		t := opts[i]
		switch t {
		case optEnd:
			return
		case optNOP:
			i++
			continue
		}
		if i+1 >= len(opts) {
			return
		}
		l := int(opts[i+1])
		if l < optMinSize || i+l > len(opts) {
			return
		}
		if t&optCopied == 0 {
			for j := i; j < i+l; j++ {
				opts[j] = optNOP
			}
		}
		i += l
	}
}

// InitIPv6 prepares to fragment the IPv6 packet at frame[l3:] for mtu,
// with identification id in every fragment header. It returns false when
// frame does not hold the whole packet, its extension headers are
// truncated, it already has a fragment header, or the MTU leaves no room
// for 8 bytes of data after the unfragmentable part and the fragment
// header.
func (fr *Fragmenter) InitIPv6(frame []byte, l3, mtu int, id uint32) bool {
	*fr = Fragmenter{}
	if l3 < 0 || l3 > len(frame) {
		return false
	}
	ip := header.IPv6(frame[l3:])
	if !ip.IsValid() {
		return false
	}
	end := l3 + header.IPv6Size + int(binary.BigEndian.Uint16(ip[header.IPv6PayloadLenOff:]))
	// ip6_find_1stfragopt: the unfragmentable part.
	nhOff, off, routing := header.IPv6NextHeaderOff, l3+header.IPv6Size, false
walk:
	for {
		switch frame[l3+nhOff] {
		case ipv6HopByHop, ipv6Routing, ipv6DestOpts:
			nh := frame[l3+nhOff]
			if nh == ipv6DestOpts && routing {
				break walk
			}
			if off+2 > end {
				return false
			}
			routing = routing || nh == ipv6Routing
			nhOff = off - l3
			off += (int(frame[off+1]) + 1) * 8
			if off > end {
				return false
			}
		case header.ProtoFragment:
			return false
		default:
			break walk
		}
	}
	hlen := off - l3
	room := mtu - hlen - header.IPv6FragSize
	if room < 8 {
		return false
	}
	*fr = Fragmenter{
		frame: frame,
		l3:    l3,
		hlen:  hlen,
		data:  off,
		end:   end,
		off:   off,
		room:  room,
		v6:    true,
		id:    id,
		nhOff: nhOff,
		nh:    frame[l3+nhOff],
	}
	return true
}

// size returns the data length of the fragment starting at off: all that
// is left if it fits, else the largest multiple of 8 that does (the
// kernel's "if (len < left) len &= ~7").
func (fr *Fragmenter) size(off int) int {
	n := fr.end - off
	if n > fr.room {
		n = fr.room &^ 7
	}
	return n
}

// Count returns how many fragments Next writes in all (0 after a failed
// Init).
func (fr *Fragmenter) Count() int {
	if fr.frame == nil {
		return 0
	}
	left := fr.end - fr.data
	if left <= fr.room {
		return 1
	}
	c := fr.room &^ 7
	return (left-fr.room+c-1)/c + 1
}

// MaxLen returns the length of the longest fragment (link-layer header
// included): the size of the buffer Next needs.
func (fr *Fragmenter) MaxLen() int {
	// The last fragment may carry up to room bytes, more than the
	// 8-byte-aligned others.
	n := fr.l3 + fr.hlen + min(fr.room, fr.end-fr.data)
	if fr.v6 {
		n += header.IPv6FragSize
	}
	return n
}

// Next writes the next fragment into dst and returns its length, or 0 when
// every fragment has been written (or dst is shorter than MaxLen). A
// packet that fits the MTU yields one fragment: the packet itself with
// offset 0 and no MF, as ip_do_fragment sends it.
func (fr *Fragmenter) Next(dst []byte) int {
	if fr.frame == nil || (fr.off >= fr.end && fr.i > 0) || len(dst) < fr.MaxLen() {
		return 0
	}
	n := fr.size(fr.off)
	last := fr.off+n >= fr.end
	rel := fr.off - fr.data
	copy(dst[:fr.l3+fr.hlen], fr.frame[:fr.l3+fr.hlen])
	ip := dst[fr.l3:]
	var m int
	if fr.v6 {
		fh := ip[fr.hlen : fr.hlen+header.IPv6FragSize]
		m = fr.l3 + fr.hlen + header.IPv6FragSize + n
		copy(dst[m-n:m], fr.frame[fr.off:fr.off+n])
		ip[fr.nhOff] = header.ProtoFragment
		fh[0], fh[1] = fr.nh, 0
		word := uint16(rel) & header.IPv6FragOffMask
		if !last {
			word |= 1 // M
		}
		binary.BigEndian.PutUint16(fh[header.IPv6FragOffOff:], word)
		binary.BigEndian.PutUint32(fh[4:], fr.id)
		binary.BigEndian.PutUint16(ip[header.IPv6PayloadLenOff:], uint16(m-fr.l3-header.IPv6Size))
	} else {
		if fr.i > 0 {
			copy(ip[:fr.hlen], fr.later[:fr.hlen])
		}
		m = fr.l3 + fr.hlen + n
		copy(dst[m-n:m], fr.frame[fr.off:fr.off+n])
		word := uint16((fr.base+rel)>>3)&header.IPv4FragOffMask | fr.flags
		if !last {
			word |= header.IPv4FlagMF
		}
		binary.BigEndian.PutUint16(ip[header.IPv4FlagsFragOff:], word)
		binary.BigEndian.PutUint16(ip[header.IPv4TotalLenOff:], uint16(fr.hlen+n))
		h := header.IPv4(ip[:fr.hlen])
		h.SetChecksum(0)
		h.UpdateChecksum()
	}
	fr.off += n
	fr.i++
	if fr.off >= fr.end {
		fr.frame = nil // done
	}
	return m
}
