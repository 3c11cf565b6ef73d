package afxdp

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

	"github.com/uvs-lb/uvs/spec"
)

// Spec is what the director owns; Program.Update loads it into the XDP
// program's maps. It has the meaning of the khook hooks (see the package
// documentation) plus the ARP/NDP targets.
type Spec struct {
	// Services are (VIP, protocol, port) destinations; port 0 means every
	// port, protocol spec.ProtoIP (0) means TCP, UDP and SCTP.
	Services []Endpoint
	// NATReplies are real servers (address, protocol, port) whose replies
	// the director translates back. Port 0 is rejected.
	NATReplies []Endpoint
	// LocalRanges are FULLNAT local addresses with the ports allocated
	// from them: one range per address and protocol (overlapping or
	// adjacent ranges are merged).
	LocalRanges []PortRange
	// VIPs receive ICMP errors about the connections of their services.
	VIPs []netip.Addr
	// Neighbours are the addresses uvsd answers ARP requests and neighbour
	// solicitations for (VIPs the kernel does not own).
	Neighbours []netip.Addr
	// Local are the director's own addresses: NAT replies and ICMP errors
	// addressed to them stay with the kernel.
	Local []netip.Addr
}

// Endpoint is an address, an IP protocol and a port.
type Endpoint struct {
	Addr  netip.Addr
	Proto spec.Proto
	Port  uint16
}

// PortRange is an address, an IP protocol and an inclusive port range.
type PortRange struct {
	Addr        netip.Addr
	Proto       spec.Proto
	First, Last uint16
}

// Address flags: the value of the addrs map.
const (
	flagNeigh uint32 = 1 << 0 // answer ARP requests and neighbour solicitations
	flagVIP   uint32 = 1 << 1 // redirect ICMP errors addressed to it
	flagLocal uint32 = 1 << 2 // a director address: NAT replies to it are the kernel's
)

// Kinds of ports map keys.
const (
	kindService    = 1 // destination address, protocol, destination port (0: any)
	kindNATReply   = 2 // source address, protocol, source port
	kindLocalRange = 3 // destination address, protocol, port 0; value: first | last<<16
)

// addrKey is the addrs map key: an address in 16-byte form, IPv4 mapped.
type addrKey [16]byte

// portKey is the ports map key: address (16 bytes, IPv4 mapped), protocol,
// kind and port in network byte order.
type portKey [20]byte

const (
	addrKeySize = len(addrKey{})
	portKeySize = len(portKey{})
)

func makePortKey(a addrKey, proto uint8, kind uint8, port uint16) portKey {
	var k portKey
	copy(k[:16], a[:])
	k[16] = proto
	k[17] = kind
	binary.BigEndian.PutUint16(k[18:], port)
	return k
}

// tables is the content of the ownership maps.
type tables struct {
	addrs map[addrKey]uint32
	ports map[portKey]uint32
}

// protos expands spec.ProtoIP to the protocols IPVS serves.
func protos(p spec.Proto) ([]uint8, error) {
	switch p {
	case spec.ProtoIP:
		return []uint8{uint8(spec.ProtoTCP), uint8(spec.ProtoUDP), uint8(spec.ProtoSCTP)}, nil
	case spec.ProtoTCP, spec.ProtoUDP, spec.ProtoSCTP:
		return []uint8{uint8(p)}, nil
	}
	return nil, fmt.Errorf("unsupported protocol %d", p)
}

func keyOf(what string, a netip.Addr) (addrKey, error) {
	if !a.IsValid() {
		return addrKey{}, fmt.Errorf("afxdp: %s: invalid address", what)
	}
	return addrKey(a.Unmap().WithZone("").As16()), nil
}

// compile turns s into map contents.
func (s *Spec) compile() (tables, error) {
	t := tables{addrs: map[addrKey]uint32{}, ports: map[portKey]uint32{}}
	flag := func(what string, as []netip.Addr, f uint32) error {
		for _, a := range as {
			k, err := keyOf(what, a)
			if err != nil {
				return err
			}
			t.addrs[k] |= f
		}
		return nil
	}
	if err := flag("VIP", s.VIPs, flagVIP); err != nil {
		return t, err
	}
	if err := flag("neighbour", s.Neighbours, flagNeigh); err != nil {
		return t, err
	}
	if err := flag("local address", s.Local, flagLocal); err != nil {
		return t, err
	}
	for _, e := range s.Services {
		k, err := keyOf("service", e.Addr)
		if err != nil {
			return t, err
		}
		ps, err := protos(e.Proto)
		if err != nil {
			return t, fmt.Errorf("afxdp: service %s: %w", e.Addr, err)
		}
		for _, p := range ps {
			t.ports[makePortKey(k, p, kindService, e.Port)] = 1
		}
	}
	for _, e := range s.NATReplies {
		k, err := keyOf("nat reply", e.Addr)
		if err != nil {
			return t, err
		}
		if e.Port == 0 {
			return t, fmt.Errorf("afxdp: nat reply %s: port 0", e.Addr)
		}
		ps, err := protos(e.Proto)
		if err != nil {
			return t, fmt.Errorf("afxdp: nat reply %s: %w", e.Addr, err)
		}
		for _, p := range ps {
			t.ports[makePortKey(k, p, kindNATReply, e.Port)] = 1
		}
	}
	var ranges []localRange
	for _, r := range s.LocalRanges {
		k, err := keyOf("local range", r.Addr)
		if err != nil {
			return t, err
		}
		if r.First > r.Last {
			return t, fmt.Errorf("afxdp: local range %s: ports %d-%d", r.Addr, r.First, r.Last)
		}
		ps, err := protos(r.Proto)
		if err != nil {
			return t, fmt.Errorf("afxdp: local range %s: %w", r.Addr, err)
		}
		for _, p := range ps {
			ranges = append(ranges, localRange{k, p, r.First, r.Last})
		}
	}
	slices.SortFunc(ranges, func(x, y localRange) int {
		if c := slices.Compare(x.addr[:], y.addr[:]); c != 0 {
			return c
		}
		if c := cmp.Compare(x.proto, y.proto); c != 0 {
			return c
		}
		return cmp.Compare(x.first, y.first)
	})
	for i := 0; i < len(ranges); {
		r := ranges[i]
		j := i + 1
		for ; j < len(ranges) && ranges[j].addr == r.addr && ranges[j].proto == r.proto; j++ {
			if uint32(ranges[j].first) > uint32(r.last)+1 {
				return t, fmt.Errorf("afxdp: local range %s: disjoint port ranges %d-%d and %d-%d (one range per address and protocol)",
					netip.AddrFrom16(r.addr).Unmap(), r.first, r.last, ranges[j].first, ranges[j].last)
			}
			r.last = max(r.last, ranges[j].last)
		}
		t.ports[makePortKey(r.addr, r.proto, kindLocalRange, 0)] = uint32(r.first) | uint32(r.last)<<16
		i = j
	}
	return t, nil
}

type localRange struct {
	addr        addrKey
	proto       uint8
	first, last uint16
}
