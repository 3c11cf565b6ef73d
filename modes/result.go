package modes

import "github.com/uvs-lb/uvs/header"

// Verdict is the outcome of a rewrite.
type Verdict uint8

// Verdicts. Anything but OK leaves the frame unmodified.
const (
	// OK: the frame was rewritten and can be transmitted.
	OK Verdict = iota
	// TTLExceeded: the TTL or hop limit was <= 1; send an ICMP time
	// exceeded (ICMPv6 hop limit exceeded) to the source and drop.
	TTLExceeded
	// TooBig: the packet does not fit the MTU; send ICMP fragmentation
	// needed (ICMPv6 packet too big) with Result.MTU and drop.
	TooBig
	// NoHeadroom: the buffer has too little headroom for the encapsulation.
	NoHeadroom
	// Unsupported: the rewrite does not apply to this packet (wrong kind,
	// protocol, address family, a fragment, no quoted packet); drop.
	Unsupported

	// NumVerdicts is the number of Verdict values.
	NumVerdicts = iota
)

var verdictNames = [NumVerdicts]string{"ok", "ttl-exceeded", "too-big", "no-headroom", "unsupported"}

// String returns a stable lower-case name.
func (v Verdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return "verdict?"
}

// Result is a Verdict plus, for TooBig, the MTU to report to the source.
type Result struct {
	Verdict Verdict
	MTU     uint16
}

// OK reports whether the frame was rewritten and may be sent.
func (r Result) OK() bool { return r.Verdict == OK }

func verdict(v Verdict) Result { return Result{Verdict: v} }

// CheckMTU applies the kernel's ensure_mtu_is_adequate rule to a packet
// about to leave on a path with the given MTU (0 disables the check): an
// IPv4 packet with DF set that exceeds the MTU and is not itself an ICMP
// error is TooBig; an IPv6 packet that exceeds it is always TooBig. For a
// GSO super-frame (gsoSize, the payload per segment, non-zero) the size
// checked is that of its largest segment, as skb_gso_validate_network_len
// does: the super-frame itself may be up to 64 KB. A packet that exceeds
// the MTU and is not TooBig is to be fragmented by the sender (Fragmenter).
func CheckMTU(p *header.Parsed, mtu int, gsoSize uint16) Result {
	return CheckMTUFrag(p, mtu, gsoSize, 0)
}

// CheckMTUFrag is CheckMTU for a datagram that may have been reassembled
// from fragments: fragMax, when non-zero, is the size of the largest
// fragment it arrived in (IPCB(skb)->frag_max_size, IP6CB for IPv6). Such
// a datagram is fragmented again to no more than fragMax on its way out,
// so what must fit the MTU is that fragment, not the datagram: it is
// TooBig when fragMax exceeds the MTU and the packet may not be
// fragmented by the director (IPv6, or IPv4 with DF), as
// __mtu_check_toobig_v6 (net/netfilter/ipvs/ip_vs_xmit.c), ip_exceeds_mtu
// (net/ipv4/ip_forward.c) and ip6_pkt_too_big (net/ipv6/ip6_output.c)
// decide.
func CheckMTUFrag(p *header.Parsed, mtu int, gsoSize uint16, fragMax int) Result {
	if mtu <= 0 {
		return verdict(OK)
	}
	size := p.IPLen
	switch {
	case fragMax > 0:
		size = fragMax
	case gsoSize > 0:
		size = min(size, p.PayloadOff-p.L3Off+int(gsoSize))
	}
	if size <= mtu {
		return verdict(OK)
	}
	switch p.Kind {
	case header.KindIPv4:
		if !p.DF || p.Inner.OK {
			return verdict(OK)
		}
	case header.KindIPv6:
	default:
		return verdict(OK)
	}
	return Result{Verdict: TooBig, MTU: uint16(min(mtu, 0xffff))}
}
