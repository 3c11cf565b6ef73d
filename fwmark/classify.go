package fwmark

import (
	"encoding/binary"
	"net/netip"
	"strings"
)

// Packet is what the data plane knows about a frame, filled in place for
// each packet. Addresses are in the As16 form of header.Parsed (an IPv4
// address IPv4-mapped), so the data plane copies them as they are.
type Packet struct {
	Src, Dst         [16]byte
	SrcPort, DstPort uint16 // zero for protocols without ports
	Ifindex          int    // receiving interface
	Proto            uint8  // L4 protocol (after IPv6 extension headers)
	IPv6             bool
}

// match flags of a compiled rule.
const (
	fSrc = 1 << iota
	fDst
	fProto
	fIface
	fMark
	fPorts
)

type addrMatch struct {
	hi, lo, mhi, mlo uint64
	neg              bool
}

func (m *addrMatch) match(a *[16]byte) bool {
	hi := binary.BigEndian.Uint64(a[:8])
	lo := binary.BigEndian.Uint64(a[8:])
	return (hi&m.mhi == m.hi && lo&m.mlo == m.lo) != m.neg
}

type compiled struct {
	flags    uint8
	proto    uint8
	protoNeg bool
	verdict  Verdict
	src, dst addrMatch
	ifNeg    bool
	ifaces   []int // interfaces that satisfy the -i name
	markNeg  bool
	markVal  uint32
	markMask uint32
	ports    []PortMatch
	value    uint32
	mask     uint32
	next     int // VerdictGoto target, always > the rule's own index
}

// Classifier evaluates compiled mangle PREROUTING rules. It is immutable and
// safe for concurrent use; publish a new one (atomic.Pointer) on changes.
type Classifier struct {
	v4, v6 []compiled
}

// Compile builds a Classifier from the rules of ParseFamily for each
// family. ifaces maps interface names to indexes at compile time: an -i
// rule matches the indexes of the names it covers (exact name, or prefix
// before a trailing '+'). Recompile when interfaces come or go.
func Compile(v4, v6 []Rule, ifaces map[string]int) *Classifier {
	return &Classifier{v4: compileFamily(v4, ifaces), v6: compileFamily(v6, ifaces)}
}

func compileFamily(rules []Rule, ifaces map[string]int) []compiled {
	out := make([]compiled, 0, len(rules))
	for i := range rules {
		r := &rules[i]
		c := compiled{verdict: r.Verdict, value: r.Value, mask: r.Mask}
		if r.Verdict == VerdictGoto {
			// Only forward branches: evaluation always ends.
			c.next = min(max(r.Next, i+1), len(rules))
		}
		if r.Src.IsValid() {
			c.flags |= fSrc
			c.src = makeAddrMatch(r.Src, r.SrcMask, r.SrcNeg)
		}
		if r.Dst.IsValid() {
			c.flags |= fDst
			c.dst = makeAddrMatch(r.Dst, r.DstMask, r.DstNeg)
		}
		if r.HasProto {
			c.flags |= fProto
			c.proto, c.protoNeg = r.Proto, r.ProtoNeg
		}
		if r.InIface != "" {
			c.flags |= fIface
			c.ifNeg = r.InIfaceNeg
			prefix, wild := strings.CutSuffix(r.InIface, "+")
			for name, idx := range ifaces {
				if name == r.InIface || (wild && strings.HasPrefix(name, prefix)) {
					c.ifaces = append(c.ifaces, idx)
				}
			}
		}
		if r.HasMark {
			c.flags |= fMark
			c.markVal, c.markMask, c.markNeg = r.MarkValue, r.MarkMask, r.MarkNeg
		}
		if len(r.Ports) > 0 {
			c.flags |= fPorts
			c.ports = r.Ports
		}
		out = append(out, c)
	}
	return out
}

// makeAddrMatch compiles an address match against As16-form addresses:
// an IPv4 prefix a.b.c.d/n is the IPv6 prefix ::ffff:a.b.c.d/(96+n), an
// IPv4 mask covers the 96 bits of the mapped prefix and then its own 32.
func makeAddrMatch(p netip.Prefix, mask netip.Addr, neg bool) addrMatch {
	var m [16]byte
	ad := p.Addr()
	a := ad.As16()
	bits := p.Bits()
	if ad.Is4() {
		bits += 96
	}
	if mask.IsValid() {
		m = mask.As16()
		if mask.Is4() {
			for i := range 12 {
				m[i] = 0xff
			}
		}
	} else {
		for b := 0; b < bits; b++ {
			m[b/8] |= 0x80 >> (b % 8)
		}
	}
	hi, lo := binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])
	mhi, mlo := binary.BigEndian.Uint64(m[:8]), binary.BigEndian.Uint64(m[8:])
	return addrMatch{hi: hi & mhi, lo: lo & mlo, mhi: mhi, mlo: mlo, neg: neg}
}

// Len returns the number of compiled rules for IPv4 and IPv6.
func (c *Classifier) Len() (v4, v6 int) {
	if c == nil {
		return 0, 0
	}
	return len(c.v4), len(c.v6)
}

// Mark returns the mark the packet would carry after mangle PREROUTING,
// starting from mark 0 and evaluating the rules in order: MARK rules update
// the mark and continue, ACCEPT and RETURN stop, GOTO continues at a later
// rule (Merge's lists use it for nft verdicts and chain boundaries). A nil
// Classifier returns 0. It does not allocate.
func (c *Classifier) Mark(p *Packet) uint32 {
	if c == nil {
		return 0
	}
	rules := c.v4
	if p.IPv6 {
		rules = c.v6
	}
	var mark uint32
	for i := 0; i < len(rules); i++ {
		r := &rules[i]
		if !r.matches(p, mark) {
			continue
		}
		switch r.verdict {
		case VerdictMark:
			mark = (mark &^ r.mask) ^ r.value
		case VerdictAccept, VerdictReturn:
			return mark
		case VerdictGoto:
			i = r.next - 1
		}
	}
	return mark
}

func (r *compiled) matches(p *Packet, mark uint32) bool {
	f := r.flags
	if f == 0 {
		return true
	}
	if f&fProto != 0 && (p.Proto == r.proto) == r.protoNeg {
		return false
	}
	if f&fDst != 0 && !r.dst.match(&p.Dst) {
		return false
	}
	if f&fSrc != 0 && !r.src.match(&p.Src) {
		return false
	}
	if f&fIface != 0 {
		in := false
		for _, idx := range r.ifaces {
			if idx == p.Ifindex {
				in = true
				break
			}
		}
		if in == r.ifNeg {
			return false
		}
	}
	if f&fMark != 0 && (mark&r.markMask == r.markVal) == r.markNeg {
		return false
	}
	if f&fPorts != 0 {
		for i := range r.ports {
			if !portMatch(&r.ports[i], p) {
				return false
			}
		}
	}
	return true
}

func portMatch(m *PortMatch, p *Packet) bool {
	if m.Proto != 0 && p.Proto != m.Proto {
		return false // the tcp/udp/sctp module never matches other protocols
	}
	hit := false
	for _, pr := range m.Ranges {
		switch m.Dir {
		case PortSrc:
			hit = pr.Lo <= p.SrcPort && p.SrcPort <= pr.Hi
		case PortDst:
			hit = pr.Lo <= p.DstPort && p.DstPort <= pr.Hi
		default:
			hit = (pr.Lo <= p.SrcPort && p.SrcPort <= pr.Hi) || (pr.Lo <= p.DstPort && p.DstPort <= pr.Hi)
		}
		if hit {
			break
		}
	}
	return hit != m.Neg
}
