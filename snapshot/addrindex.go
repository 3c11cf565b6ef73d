package snapshot

import (
	"net/netip"

	"github.com/uvs-lb/uvs/spec"
)

// AddrIndex answers, for one Snapshot, the address questions of package
// ownership's rules that Lookup does not: is an address a NAT real
// server's (and on which source ports), a VIP of some service of a
// protocol on any port, a FULLNAT pool address, and which FULLNAT real
// servers have their local address chosen by the route (the route
// sources). A worker uses it to tell whether a packet that belongs to no
// service or connection was kept from the kernel by the ownership hooks
// (package dataplane, handback.go).
//
// It follows ownership.Compute for the services it knows: every
// non-fwmark service and its real servers. The targets of the
// firewall-mark rules are not in a Snapshot: the NAT real servers of
// firewall-mark services are not indexed.
//
// An AddrIndex is owned by one goroutine. Build reuses its maps, so that
// rebuilding it for each new snapshot allocates only while they grow.
type AddrIndex struct {
	of *Snapshot
	// nat holds (real server, protocol, source port) for every NAT real
	// server, port 0 for those of a port-0 service (every source port);
	// natAny holds (real server, protocol).
	nat    map[portKey]struct{}
	natAny map[famKey]struct{}
	// svc holds (VIP, protocol) of every non-fwmark service.
	svc map[famKey]struct{}
	// pools holds every FULLNAT pool address (protocol 0).
	pools map[famKey]struct{}
	// routed lists, once each, the FULLNAT real servers of services
	// without a pool: their local address is the route's source.
	routed []netip.Addr
	seen   map[netip.Addr]struct{}
}

// famKey is an address (16-byte form) of one family and a protocol. The
// family is kept apart: an IPv6 packet's IPv4-mapped address is not the
// IPv4 address (package ownership).
type famKey struct {
	addr  [16]byte
	v6    bool
	proto spec.Proto
}

type portKey struct {
	famKey
	port uint16
}

func famOf(a netip.Addr, proto spec.Proto) famKey {
	return famKey{addr: a.As16(), v6: !a.Is4(), proto: proto}
}

// For returns the snapshot the index was built for (nil before Build).
func (x *AddrIndex) For() *Snapshot { return x.of }

// Build indexes s, replacing what x held. The real servers are read as
// they are now: the control plane publishes a new snapshot whenever a
// real server is added, edited or removed.
func (x *AddrIndex) Build(s *Snapshot) {
	if x.nat == nil {
		x.nat = make(map[portKey]struct{})
		x.natAny = make(map[famKey]struct{})
		x.svc = make(map[famKey]struct{})
		x.pools = make(map[famKey]struct{})
		x.seen = make(map[netip.Addr]struct{})
	}
	clear(x.nat)
	clear(x.natAny)
	clear(x.svc)
	clear(x.pools)
	clear(x.seen)
	clear(x.routed) // drop the old addresses' references
	x.routed = x.routed[:0]
	x.of = s
	if s == nil {
		return
	}
	for _, svc := range s.services {
		for _, a := range svc.LocalAddrs {
			x.pools[famOf(a, spec.ProtoIP)] = struct{}{}
		}
		k := svc.Key
		if !k.IsFWMark() {
			x.svc[famOf(k.Addr, k.Proto)] = struct{}{}
		}
		if svc.Sched == nil {
			continue
		}
		for _, d := range svc.Sched.Dests() {
			switch d.Fwd() {
			case spec.FwdMasq:
				if k.IsFWMark() {
					continue
				}
				// ownership.Compute: every source port for a port-0
				// service, the real server's port otherwise (none for a
				// real server of port 0 behind a service port).
				port := d.Port()
				if k.Port == 0 {
					port = 0
				} else if port == 0 {
					continue
				}
				fk := famOf(d.Addr(), k.Proto)
				x.nat[portKey{fk, port}] = struct{}{}
				x.natAny[fk] = struct{}{}
			case spec.FwdFullNAT:
				if len(svc.LocalAddrs) > 0 {
					continue
				}
				if _, ok := x.seen[d.Addr()]; !ok {
					x.seen[d.Addr()] = struct{}{}
					x.routed = append(x.routed, d.Addr())
				}
			}
		}
	}
}

// NATReply reports whether a packet of protocol proto from addr (16-byte
// form; v6: of an IPv6 packet) and source port sport comes from a NAT real
// server's port: ownership's NAT reply rule, before its exception for
// packets to the director's addresses.
func (x *AddrIndex) NATReply(addr [16]byte, v6 bool, proto spec.Proto, sport uint16) bool {
	if len(x.nat) == 0 {
		return false
	}
	k := portKey{famKey{addr, v6, proto}, 0}
	if _, ok := x.nat[k]; ok {
		return true
	}
	k.port = sport
	_, ok := x.nat[k]
	return ok
}

// NATReal reports whether addr is a NAT real server of a service of
// protocol proto, whatever the port: ownership's rule for fragments from
// real servers.
func (x *AddrIndex) NATReal(addr [16]byte, v6 bool, proto spec.Proto) bool {
	_, ok := x.natAny[famKey{addr, v6, proto}]
	return ok
}

// ServiceAddr reports whether addr is the VIP of a (non-fwmark) service of
// protocol proto, whatever its port.
func (x *AddrIndex) ServiceAddr(addr [16]byte, v6 bool, proto spec.Proto) bool {
	_, ok := x.svc[famKey{addr, v6, proto}]
	return ok
}

// Pool reports whether addr is a FULLNAT pool address (--add-laddr) of
// some service.
func (x *AddrIndex) Pool(addr [16]byte, v6 bool) bool {
	if len(x.pools) == 0 {
		return false
	}
	_, ok := x.pools[famKey{addr, v6, spec.ProtoIP}]
	return ok
}

// RoutedReals returns the FULLNAT real servers of services without a
// pool, once each: the source address of the route towards each is a
// local address (ownership.Input.RouteSources). Read only.
func (x *AddrIndex) RoutedReals() []netip.Addr { return x.routed }
