package modes

import (
	"encoding/binary"

	"github.com/uvs-lb/uvs/header"
)

// Segmenter cuts a TCP or UDP GSO super-frame (one frame carrying the
// headers of its first segment and the payload of all of them) into the
// frames the egress device's segmentation would have sent, as Linux's
// software GSO does (inet_gso_segment / ipv6_gso_segment with
// tcp_gso_segment or __udp_gso_segment). Each segment is a copy of the
// super-frame's headers (Ethernet, IP with options or extension headers,
// TCP with options or UDP) followed by the next Size bytes of payload,
// with its own:
//
//   - IPv4 total length, identification (the super-frame's plus the segment
//     index: the kernel's default when the socket did not ask for a fixed
//     ID) and header checksum; IPv6 payload length;
//   - TCP sequence number (advanced by the payload before the segment), FIN
//     and PSH only on the last segment, CWR only on the first (unless the
//     super-frame uses AccECN, which keeps it); UDP length;
//   - complete L4 checksum, computed in software.
//
// The TUN mode uses it because an IPIP-encapsulated super-frame cannot be
// handed to the egress device (virtio_net_hdr has no IP-in-IP GSO type).
// It never allocates: the caller passes each segment's buffer.
type Segmenter struct {
	frame   []byte
	hdr     int // frame[:hdr] are the headers every segment repeats
	l3, l4  int
	v6      bool
	proto   uint8
	size    int    // payload per segment
	off     int    // offset of the next segment's payload in frame
	end     int    // end of the IP packet in frame
	i       int    // index of the next segment
	id      uint16 // IPv4 identification of the super-frame
	seq     uint32 // TCP sequence number of the first payload byte
	flags   uint8  // TCP flags of the super-frame
	keepCWR bool
}

// Init prepares to cut frame, parsed into p, into segments of size bytes of
// payload. accECN keeps CWR on every segment. It returns false when the
// frame cannot be segmented: not an unfragmented, well-formed TCP or UDP
// packet, or size 0.
func (s *Segmenter) Init(frame []byte, p *header.Parsed, size int, accECN bool) bool {
	if p.Reason != header.ReasonNone || (p.Kind != header.KindIPv4 && p.Kind != header.KindIPv6) ||
		(p.Proto != header.ProtoTCP && p.Proto != header.ProtoUDP) || size <= 0 ||
		p.End > len(frame) || p.PayloadOff > p.End {
		return false
	}
	*s = Segmenter{
		frame:   frame,
		hdr:     p.PayloadOff,
		l3:      p.L3Off,
		l4:      p.L4Off,
		v6:      p.IPVersion == 6,
		proto:   p.Proto,
		size:    size,
		off:     p.PayloadOff,
		end:     p.End,
		keepCWR: accECN,
	}
	if !s.v6 {
		s.id = binary.BigEndian.Uint16(frame[p.L3Off+header.IPv4IDOff:])
	}
	if s.proto == header.ProtoTCP {
		s.seq = binary.BigEndian.Uint32(frame[p.L4Off+4:])
		s.flags = frame[p.L4Off+13]
	}
	return true
}

// MaxLen returns the length of the longest segment: the size of the buffer
// Next needs.
func (s *Segmenter) MaxLen() int { return s.hdr + s.size }

// Next writes the next segment into dst and returns its length, or 0 when
// every segment has been written (or dst is shorter than MaxLen). A
// super-frame with no payload yields one segment, its headers.
func (s *Segmenter) Next(dst []byte) int {
	if s.frame == nil || len(dst) < s.MaxLen() || (s.off >= s.end && s.i > 0) {
		return 0
	}
	chunk := min(s.size, s.end-s.off)
	last := s.off+chunk >= s.end
	n := s.hdr + chunk
	copy(dst[:s.hdr], s.frame[:s.hdr])
	copy(dst[s.hdr:n], s.frame[s.off:s.off+chunk])

	ip := dst[s.l3:n]
	if s.v6 {
		binary.BigEndian.PutUint16(ip[header.IPv6PayloadLenOff:], uint16(n-s.l3-header.IPv6Size))
	} else {
		binary.BigEndian.PutUint16(ip[header.IPv4TotalLenOff:], uint16(n-s.l3))
		binary.BigEndian.PutUint16(ip[header.IPv4IDOff:], s.id+uint16(s.i))
		ih := header.IPv4(ip)
		ih.SetChecksum(0)
		ih.UpdateChecksum()
	}
	l4 := dst[s.l4:n]
	co := header.L4ChecksumOffset(s.proto)
	if s.proto == header.ProtoTCP {
		binary.BigEndian.PutUint32(l4[4:], s.seq+uint32(s.off-s.hdr))
		f := s.flags
		if !last {
			f &^= header.TCPFlagFIN | header.TCPFlagPSH
		}
		if s.i > 0 && !s.keepCWR {
			f &^= header.TCPFlagCWR
		}
		l4[13] = f
	} else {
		binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
	}
	binary.BigEndian.PutUint16(l4[co:], 0)
	srcOff, dstOff := ipOffsets(4)
	al := 4
	if s.v6 {
		srcOff, dstOff = ipOffsets(6)
		al = 16
	}
	sum := header.PseudoHeaderChecksum(s.proto, ip[srcOff:srcOff+al], ip[dstOff:dstOff+al], uint32(len(l4)))
	c := ^header.Checksum(l4, sum)
	if s.proto == header.ProtoUDP {
		c = header.UDPChecksumValue(c)
	}
	binary.BigEndian.PutUint16(l4[co:], c)

	s.off += chunk
	s.i++
	if s.off >= s.end && s.i > 0 {
		s.frame = nil // done
	}
	return n
}
