package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Frame layout of the generator's UDP frames: Ethernet, IPv4 without
// options, UDP, payload.
const (
	ethLen  = 14
	ipv4Len = 20
	udpLen  = 8
	hdrLen  = ethLen + ipv4Len + udpLen
)

// FlowSpec describes the generator's flows. Flow i has source address
// SrcBase + i/PortsPerSrc, source port SrcPort + i%PortsPerSrc and
// destination Dsts[i%len(Dsts)]:DstPort, so consecutive flows alternate
// between the destinations and every flow is a distinct 5-tuple.
type FlowSpec struct {
	SrcMAC, DstMAC [6]byte
	SrcBase        netip.Addr // IPv4
	SrcPort        uint16
	PortsPerSrc    int
	Dsts           []netip.Addr // IPv4
	DstPort        uint16
	Payload        int // UDP payload bytes
	Flows          int
}

// Validate checks the spec and names the offending field.
func (s FlowSpec) Validate() error {
	switch {
	case !s.SrcBase.Is4():
		return fmt.Errorf("flow spec: source %v is not IPv4", s.SrcBase)
	case len(s.Dsts) == 0:
		return errors.New("flow spec: no destination")
	case s.PortsPerSrc < 1 || int(s.SrcPort)+s.PortsPerSrc-1 > 65535:
		return fmt.Errorf("flow spec: %d ports from %d do not fit", s.PortsPerSrc, s.SrcPort)
	case s.Flows < 1:
		return fmt.Errorf("flow spec: %d flows", s.Flows)
	case s.Payload < 0 || s.Payload > 1472:
		return fmt.Errorf("flow spec: payload %d bytes (0..1472)", s.Payload)
	}
	for _, d := range s.Dsts {
		if !d.Is4() {
			return fmt.Errorf("flow spec: destination %v is not IPv4", d)
		}
	}
	srcs := (s.Flows + s.PortsPerSrc - 1) / s.PortsPerSrc
	base := binary.BigEndian.Uint32(s.SrcBase.AsSlice())
	if uint64(base)+uint64(srcs)-1 > 0xffffffff {
		return fmt.Errorf("flow spec: %d source addresses from %v overflow", srcs, s.SrcBase)
	}
	return nil
}

// FrameBuilder writes the frame of any flow from a template, patching the
// addresses and source port and deriving both checksums from sums
// precomputed over the fixed part (RFC 1071 one's-complement arithmetic:
// the sum is order-independent, so fixed and per-flow words add up).
type FrameBuilder struct {
	spec  FlowSpec
	tmpl  []byte
	src   uint32
	dsts  []uint32
	ipSum uint32 // IPv4 header without addresses and checksum
	l4Sum uint32 // pseudo-header proto+length, UDP header without sport/checksum, payload
}

// NewFrameBuilder prepares the template of spec's frames.
func NewFrameBuilder(spec FlowSpec) (*FrameBuilder, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	b := &FrameBuilder{spec: spec, tmpl: make([]byte, hdrLen+spec.Payload)}
	b.src = binary.BigEndian.Uint32(spec.SrcBase.AsSlice())
	for _, d := range spec.Dsts {
		b.dsts = append(b.dsts, binary.BigEndian.Uint32(d.AsSlice()))
	}
	t := b.tmpl
	copy(t[0:6], spec.DstMAC[:])
	copy(t[6:12], spec.SrcMAC[:])
	binary.BigEndian.PutUint16(t[12:], 0x0800)
	ip := t[ethLen:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(ipv4Len+udpLen+spec.Payload))
	binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
	ip[8] = 64
	ip[9] = 17
	udp := ip[ipv4Len:]
	binary.BigEndian.PutUint16(udp[2:], spec.DstPort)
	binary.BigEndian.PutUint16(udp[4:], uint16(udpLen+spec.Payload))
	for i := range spec.Payload {
		udp[udpLen+i] = byte(i)
	}
	b.ipSum = sum16(ip[:ipv4Len], 0) // addresses and checksum are still zero
	b.l4Sum = sum16(udp, 17+uint32(udpLen+spec.Payload))
	return b, nil
}

// Len is the length of every frame.
func (b *FrameBuilder) Len() int { return len(b.tmpl) }

// Spec returns the flow spec.
func (b *FrameBuilder) Spec() FlowSpec { return b.spec }

// Flow returns flow i's source, source port and destination.
func (b *FrameBuilder) Flow(i int) (src netip.Addr, sport uint16, dst netip.Addr) {
	s, p, d := b.tuple(i)
	return addr4(s), p, addr4(d)
}

func (b *FrameBuilder) tuple(i int) (src uint32, sport uint16, dst uint32) {
	i %= b.spec.Flows
	return b.src + uint32(i/b.spec.PortsPerSrc), b.spec.SrcPort + uint16(i%b.spec.PortsPerSrc), b.dsts[i%len(b.dsts)]
}

// Fill writes flow i's frame into dst, which must hold Len bytes. It does
// not allocate.
func (b *FrameBuilder) Fill(dst []byte, i int) {
	copy(dst, b.tmpl)
	src, sport, daddr := b.tuple(i)
	ip := dst[ethLen : ethLen+ipv4Len]
	binary.BigEndian.PutUint32(ip[12:], src)
	binary.BigEndian.PutUint32(ip[16:], daddr)
	addrs := src>>16 + src&0xffff + daddr>>16 + daddr&0xffff
	binary.BigEndian.PutUint16(ip[10:], ^fold(b.ipSum+addrs))
	udp := dst[ethLen+ipv4Len:]
	binary.BigEndian.PutUint16(udp[0:], sport)
	c := ^fold(b.l4Sum + addrs + uint32(sport))
	if c == 0 {
		c = 0xffff // RFC 768: a computed zero is sent as all ones
	}
	binary.BigEndian.PutUint16(udp[6:], c)
}

// sum16 adds b as big-endian 16-bit words (odd length padded) to acc.
func sum16(b []byte, acc uint32) uint32 {
	for len(b) >= 2 {
		acc += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint32(b[0]) << 8
	}
	return acc
}

// fold folds a 32-bit one's-complement accumulator into 16 bits.
func fold(s uint32) uint16 {
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

func addr4(v uint32) netip.Addr {
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], v)
	return netip.AddrFrom4(a)
}
