package ownership

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/spec"
)

// Endpoint is an address, an IP protocol and a port. Port 0 means every
// port (services only); protocol spec.ProtoIP (0) means TCP, UDP and SCTP.
type Endpoint struct {
	Addr  netip.Addr
	Proto spec.Proto
	Port  uint16
}

// PortRange is an address, an IP protocol and an inclusive port range.
// Protocol spec.ProtoIP (0) means TCP, UDP and SCTP.
type PortRange struct {
	Addr        netip.Addr
	Proto       spec.Proto
	First, Last uint16
}

// Tunnel is a tunnelling real server as the director's encapsulated
// packets reach it: its IPv4 address, the outer protocol (header.ProtoIPIP
// for ipip, header.ProtoGRE for gre, header.ProtoUDP for gue) and, for gue
// only, the destination port (--tun-port). ICMP errors about those packets
// are the director's (see the package documentation).
type Tunnel struct {
	Addr  netip.Addr
	Proto uint8
	Port  uint16
}

// Set is everything uvsd owns. Compute returns it normalized (see
// Normalize); the backends accept any Set and normalize it themselves.
type Set struct {
	// Services are the (VIP, protocol, port) destinations of the virtual
	// services and of the firewall-mark targets. Port 0 means every port.
	Services []Endpoint
	// NATReplies are the real servers (address, protocol, port) of NAT
	// services: frames from them are replies uvsd translates back, unless
	// addressed to a director address. Port 0 means every source port
	// (the real servers of a port-0 NAT service).
	NATReplies []Endpoint
	// LocalRanges are the FULLNAT local addresses with the ports uvsd
	// allocates on them: frames to them are replies from real servers.
	LocalRanges []PortRange
	// VIPs receive ICMP errors about the connections of their services.
	VIPs []netip.Addr
	// Neighbours are the addresses uvsd answers ARP requests and neighbour
	// solicitations for: VIPs and firewall-mark targets the director's
	// stack does not own.
	Neighbours []netip.Addr
	// Local are the director's own addresses: NAT replies and ICMP errors
	// about NAT connections addressed to them are the kernel's.
	Local []netip.Addr
	// Tunnels are the IPv4 TUN real servers: ICMPv4 errors about the
	// director's own encapsulated packets to them are uvsd's.
	Tunnels []Tunnel
}

// Protos expands spec.ProtoIP to the protocols IPVS serves (TCP, UDP and
// SCTP) and returns any of those as itself; other protocols are an error.
// It is the one expansion every backend uses.
func Protos(p spec.Proto) ([]spec.Proto, error) {
	switch p {
	case spec.ProtoIP:
		return []spec.Proto{spec.ProtoTCP, spec.ProtoUDP, spec.ProtoSCTP}, nil
	case spec.ProtoTCP, spec.ProtoUDP, spec.ProtoSCTP:
		return []spec.Proto{p}, nil
	}
	return nil, fmt.Errorf("unsupported protocol %d", p)
}

// IsL4 reports whether p is a protocol a Set can hold: TCP, UDP or SCTP.
func IsL4(p uint8) bool {
	return p == uint8(spec.ProtoTCP) || p == uint8(spec.ProtoUDP) || p == uint8(spec.ProtoSCTP)
}

// Normalize returns s in canonical form: addresses unmapped (an
// IPv4-mapped IPv6 address is the IPv4 address) and without zone,
// protocol 0 expanded to TCP, UDP and SCTP, every list sorted and without
// duplicates, and overlapping or adjacent local ranges of one address and
// protocol merged. Two Sets with the same meaning normalize to equal Sets.
// It fails, naming the entry, on an invalid address, an unsupported
// protocol or a range whose first port is above its
// last. A nil s normalizes to an empty Set.
func (s *Set) Normalize() (*Set, error) {
	out := &Set{}
	if s == nil {
		return out, nil
	}
	var err error
	if out.Services, err = normEndpoints("service", s.Services); err != nil {
		return nil, err
	}
	if out.NATReplies, err = normEndpoints("nat reply", s.NATReplies); err != nil {
		return nil, err
	}
	if out.LocalRanges, err = normRanges(s.LocalRanges); err != nil {
		return nil, err
	}
	for _, l := range []struct {
		what string
		in   []netip.Addr
		out  *[]netip.Addr
	}{{"VIP", s.VIPs, &out.VIPs}, {"neighbour", s.Neighbours, &out.Neighbours}, {"local address", s.Local, &out.Local}} {
		if *l.out, err = normAddrs(l.what, l.in); err != nil {
			return nil, err
		}
	}
	if out.Tunnels, err = normTunnels(s.Tunnels); err != nil {
		return nil, err
	}
	return out, nil
}

// Equal reports whether s and o hold the same entries in the same order
// (normalized Sets with the same meaning are equal). A nil Set equals an
// empty one.
func (s *Set) Equal(o *Set) bool {
	if s == nil {
		s = &Set{}
	}
	if o == nil {
		o = &Set{}
	}
	return slices.Equal(s.Services, o.Services) && slices.Equal(s.NATReplies, o.NATReplies) &&
		slices.Equal(s.LocalRanges, o.LocalRanges) && slices.Equal(s.VIPs, o.VIPs) &&
		slices.Equal(s.Neighbours, o.Neighbours) && slices.Equal(s.Local, o.Local) &&
		slices.Equal(s.Tunnels, o.Tunnels)
}

// canon returns a as the Set holds it.
func canon(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }

func normAddrs(what string, in []netip.Addr) ([]netip.Addr, error) {
	out := make([]netip.Addr, 0, len(in))
	for i, a := range in {
		if !a.IsValid() {
			return nil, fmt.Errorf("ownership: %s #%d: invalid address", what, i)
		}
		out = append(out, canon(a))
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out), nil
}

func compareEndpoints(x, y Endpoint) int {
	if c := x.Addr.Compare(y.Addr); c != 0 {
		return c
	}
	if c := cmp.Compare(x.Proto, y.Proto); c != 0 {
		return c
	}
	return cmp.Compare(x.Port, y.Port)
}

func normEndpoints(what string, in []Endpoint) ([]Endpoint, error) {
	out := make([]Endpoint, 0, len(in))
	for i, e := range in {
		if !e.Addr.IsValid() {
			return nil, fmt.Errorf("ownership: %s #%d: invalid address", what, i)
		}
		a := canon(e.Addr)
		ps, err := Protos(e.Proto)
		if err != nil {
			return nil, fmt.Errorf("ownership: %s %s: %w", what, netip.AddrPortFrom(a, e.Port), err)
		}
		for _, p := range ps {
			out = append(out, Endpoint{a, p, e.Port})
		}
	}
	slices.SortFunc(out, compareEndpoints)
	return slices.Compact(out), nil
}

func normRanges(in []PortRange) ([]PortRange, error) {
	var rs []PortRange
	for i, r := range in {
		if !r.Addr.IsValid() {
			return nil, fmt.Errorf("ownership: local range #%d: invalid address", i)
		}
		a := canon(r.Addr)
		if r.First > r.Last {
			return nil, fmt.Errorf("ownership: local range %s: ports %d-%d", a, r.First, r.Last)
		}
		ps, err := Protos(r.Proto)
		if err != nil {
			return nil, fmt.Errorf("ownership: local range %s: %w", a, err)
		}
		for _, p := range ps {
			rs = append(rs, PortRange{a, p, r.First, r.Last})
		}
	}
	return mergeRanges(rs), nil
}

// mergeRanges sorts ranges and merges the overlapping or adjacent ones of
// one address and protocol.
func mergeRanges(rs []PortRange) []PortRange {
	slices.SortFunc(rs, func(x, y PortRange) int {
		if c := x.Addr.Compare(y.Addr); c != 0 {
			return c
		}
		if c := cmp.Compare(x.Proto, y.Proto); c != 0 {
			return c
		}
		return cmp.Compare(x.First, y.First)
	})
	out := make([]PortRange, 0, len(rs))
	for _, r := range rs {
		if n := len(out); n > 0 {
			l := &out[n-1]
			if l.Addr == r.Addr && l.Proto == r.Proto && uint32(r.First) <= uint32(l.Last)+1 {
				l.Last = max(l.Last, r.Last)
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

// IsTunnelProto reports whether p is an outer protocol of a Tunnel: IPIP,
// GRE or UDP (GUE).
func IsTunnelProto(p uint8) bool {
	return p == header.ProtoIPIP || p == header.ProtoGRE || p == header.ProtoUDP
}

func normTunnels(in []Tunnel) ([]Tunnel, error) {
	out := make([]Tunnel, 0, len(in))
	for i, t := range in {
		if !t.Addr.IsValid() {
			return nil, fmt.Errorf("ownership: tunnel #%d: invalid address", i)
		}
		a := canon(t.Addr)
		switch {
		case !a.Is4():
			// ip_vs_in_icmp_v6 has no tunnel handling.
			return nil, fmt.Errorf("ownership: tunnel %s: not an IPv4 address", a)
		case !IsTunnelProto(t.Proto):
			return nil, fmt.Errorf("ownership: tunnel %s: protocol %d is not IPIP, GRE or GUE (UDP)", a, t.Proto)
		case t.Proto == header.ProtoUDP && t.Port == 0:
			return nil, fmt.Errorf("ownership: tunnel %s: GUE without a port", a)
		case t.Proto != header.ProtoUDP && t.Port != 0:
			return nil, fmt.Errorf("ownership: tunnel %s: port %d for protocol %d (only GUE has one)", a, t.Port, t.Proto)
		}
		out = append(out, Tunnel{a, t.Proto, t.Port})
	}
	slices.SortFunc(out, func(x, y Tunnel) int {
		if c := x.Addr.Compare(y.Addr); c != 0 {
			return c
		}
		if c := cmp.Compare(x.Proto, y.Proto); c != 0 {
			return c
		}
		return cmp.Compare(x.Port, y.Port)
	})
	return slices.Compact(out), nil
}
