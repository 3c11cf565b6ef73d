package afxdp

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/uvs-lb/uvs/ownership"
)

// Address flags: the value of the addrs map. IPv6 addresses have their
// flags shifted by flagShift6, so that an IPv6 packet's IPv4-mapped address
// (the same 16-byte key) never matches an IPv4 address's flags.
const (
	flagNeigh  uint32 = 1 << 0 // answer ARP requests and neighbour solicitations
	flagVIP    uint32 = 1 << 1 // redirect ICMP errors addressed to it
	flagLocal  uint32 = 1 << 2 // a director address: NAT replies to it are the kernel's
	flagShift6        = 8
)

// Kinds of ports map keys; IPv6 keys have kindV6 set as well (see
// flagShift6).
const (
	kindService    = 1 // destination address, protocol, destination port (0: any)
	kindNATReply   = 2 // source address, protocol, source port (0: any)
	kindLocalRange = 3 // destination address, protocol, port 0; value: first | last<<16
	kindFragDst    = 4 // destination address, protocol, port 0: of a service or a local range (fragments)
	kindFragSrc    = 5 // source address, protocol, port 0: of a NAT reply (fragments)
	kindTunnel     = 6 // TUN real server, outer protocol (IPIP, GRE, UDP), GUE port (0 for IPIP and GRE); IPv4 only
	kindV6         = 0x10
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

var _ ownership.Consumer = (*Program)(nil)

// SetOwnership makes the ownership maps hold s (see Update).
func (p *Program) SetOwnership(s *ownership.Set) error {
	if s == nil {
		s = &ownership.Set{}
	}
	return p.Update(*s)
}

// tables is the content of the ownership maps.
type tables struct {
	addrs map[addrKey]uint32
	ports map[portKey]uint32
}

// keyOf returns the map key of a normalized address, and the flag shift
// and kind bit of its family.
func keyOf(a netip.Addr) (addrKey, uint32, uint8) {
	if a.Is4() {
		return addrKey(a.As16()), 0, 0
	}
	return addrKey(a.As16()), flagShift6, kindV6
}

// compile turns s into map contents. The program keeps one local port
// range per address and protocol: disjoint ranges of one address and
// protocol are refused.
func compile(s *ownership.Set) (tables, error) {
	t := tables{addrs: map[addrKey]uint32{}, ports: map[portKey]uint32{}}
	n, err := s.Normalize()
	if err != nil {
		return t, fmt.Errorf("afxdp: %w", err)
	}
	for _, l := range []struct {
		as   []netip.Addr
		flag uint32
	}{{n.VIPs, flagVIP}, {n.Neighbours, flagNeigh}, {n.Local, flagLocal}} {
		for _, a := range l.as {
			k, shift, _ := keyOf(a)
			t.addrs[k] |= l.flag << shift
		}
	}
	for _, l := range []struct {
		es   []ownership.Endpoint
		kind uint8
	}{{n.Services, kindService}, {n.NATReplies, kindNATReply}} {
		for _, e := range l.es {
			k, _, v6 := keyOf(e.Addr)
			t.ports[makePortKey(k, uint8(e.Proto), l.kind|v6, e.Port)] = 1
			frag := uint8(kindFragDst)
			if l.kind == kindNATReply {
				frag = kindFragSrc
			}
			t.ports[makePortKey(k, uint8(e.Proto), frag|v6, 0)] = 1
		}
	}
	for i, r := range n.LocalRanges {
		if i > 0 && n.LocalRanges[i-1].Addr == r.Addr && n.LocalRanges[i-1].Proto == r.Proto {
			p := n.LocalRanges[i-1]
			return t, fmt.Errorf("afxdp: local range %s/%s: disjoint port ranges %d-%d and %d-%d (one range per address and protocol)",
				r.Addr, r.Proto, p.First, p.Last, r.First, r.Last)
		}
		k, _, v6 := keyOf(r.Addr)
		t.ports[makePortKey(k, uint8(r.Proto), kindLocalRange|v6, 0)] = uint32(r.First) | uint32(r.Last)<<16
		t.ports[makePortKey(k, uint8(r.Proto), kindFragDst|v6, 0)] = 1
	}
	for _, tn := range n.Tunnels {
		k, _, _ := keyOf(tn.Addr)
		t.ports[makePortKey(k, tn.Proto, kindTunnel, tn.Port)] = 1
	}
	return t, nil
}
