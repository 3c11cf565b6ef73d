package ownership

import (
	"fmt"
	"net/netip"

	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/spec"
)

// Service is one virtual service with its real servers.
type Service struct {
	Config spec.Service
	Dests  []spec.Dest
}

// MarkTarget is what one mangle PREROUTING MARK rule sends to a firewall
// mark: a destination host, a protocol (0: any) and destination ports
// (none: every port).
type MarkTarget struct {
	Mark  uint32
	Addr  netip.Addr
	Proto spec.Proto
	Ports []uint16
}

// Input is everything ownership depends on.
type Input struct {
	// Services are the virtual services.
	Services []Service
	// Marks are the targets of the MARK rules, for firewall-mark services.
	Marks []MarkTarget
	// Host are the director's own addresses (every interface).
	Host []netip.Addr
	// RouteSources are FULLNAT local addresses the director chose itself:
	// the source address of the route towards each FULLNAT real server of
	// a service without a local-address pool. The director resolves them;
	// the pools are taken from Services.
	RouteSources []netip.Addr
	// LocalPortMin and LocalPortMax bound the FULLNAT local ports.
	LocalPortMin, LocalPortMax uint16
}

// Compute returns what uvsd owns given in. It is a pure function: the same
// Input gives an equal, normalized Set.
//
//   - Services: every non-fwmark service's (VIP, protocol, port), and for
//     every firewall-mark service the (address, protocol, port) of each
//     MARK rule target with its mark, port 0 when the rule names no port.
//   - NATReplies: for each NAT (-m) real server of a non-fwmark service,
//     (real server, protocol, real-server port) when the service's port
//     and the real server's are both non-zero, (real server, protocol, 0:
//     every source port) when the service's port is 0 (persistent port-0
//     services: replies come from whatever port the client asked for); for
//     firewall-mark services, for each NAT real server and each port a
//     MARK rule names, (real server, rule protocol or TCP, port), and for a
//     MARK rule that names no port (real server, rule protocol, 0).
//   - LocalRanges: every pool address (--add-laddr) of every service and
//     every route source, with the local port range, for TCP, UDP and SCTP.
//   - VIPs: the non-fwmark services' addresses and the MARK rule targets.
//   - Neighbours: the VIPs that are not director addresses.
//   - Local: the director's addresses.
//   - Tunnels: every tunnelling (-i) real server with an IPv4 address, of
//     any service: (real server, 4) for ipip, (real server, 47) for gre,
//     (real server, 17, --tun-port) for gue (a gue real server without a
//     port is left out: the worker matches errors by that port). An IPv6
//     real server's packets have an IPv6 outer header, whose ICMPv6 errors
//     the kernel does not handle (ip_vs_in_icmp_v6 has no tunnel case).
func Compute(in Input) (*Set, error) {
	var s Set
	for _, svc := range in.Services {
		k := svc.Config.Key
		if k.IsFWMark() {
			continue
		}
		s.VIPs = append(s.VIPs, k.Addr)
		s.Services = append(s.Services, Endpoint{k.Addr, k.Proto, k.Port})
		for _, d := range svc.Dests {
			switch {
			case d.Fwd != spec.FwdMasq:
			case k.Port == 0:
				s.NATReplies = append(s.NATReplies, Endpoint{d.Addr, k.Proto, 0})
			case d.Port != 0:
				s.NATReplies = append(s.NATReplies, Endpoint{d.Addr, k.Proto, d.Port})
			}
		}
	}
	for _, svc := range in.Services {
		k := svc.Config.Key
		if !k.IsFWMark() {
			continue
		}
		for _, mt := range in.Marks {
			if mt.Mark != k.FWMark {
				continue
			}
			s.VIPs = append(s.VIPs, mt.Addr)
			ports := mt.Ports
			if len(ports) == 0 {
				ports = []uint16{0}
			}
			for _, port := range ports {
				s.Services = append(s.Services, Endpoint{mt.Addr, mt.Proto, port})
				proto := mt.Proto
				if proto == spec.ProtoIP && port != 0 {
					proto = spec.ProtoTCP
				}
				for _, d := range svc.Dests {
					if d.Fwd == spec.FwdMasq {
						s.NATReplies = append(s.NATReplies, Endpoint{d.Addr, proto, port})
					}
				}
			}
		}
	}
	var locals []netip.Addr
	for _, svc := range in.Services {
		locals = append(locals, svc.Config.LocalAddrs...)
	}
	locals = append(locals, in.RouteSources...)
	if len(locals) > 0 && in.LocalPortMin > in.LocalPortMax {
		return nil, fmt.Errorf("ownership: local port range %d-%d", in.LocalPortMin, in.LocalPortMax)
	}
	for _, a := range locals {
		s.LocalRanges = append(s.LocalRanges, PortRange{a, spec.ProtoIP, in.LocalPortMin, in.LocalPortMax})
	}
	host := make(map[netip.Addr]bool, len(in.Host))
	for _, a := range in.Host {
		if a.IsValid() {
			host[canon(a)] = true
		}
	}
	for _, a := range s.VIPs {
		if a.IsValid() && !host[canon(a)] {
			s.Neighbours = append(s.Neighbours, a)
		}
	}
	s.Local = in.Host
	for _, svc := range in.Services {
		for _, d := range svc.Dests {
			if d.Fwd != spec.FwdTunnel || !d.Addr.Unmap().Is4() {
				continue
			}
			switch d.TunType {
			case spec.TunIPIP:
				s.Tunnels = append(s.Tunnels, Tunnel{d.Addr, header.ProtoIPIP, 0})
			case spec.TunGRE:
				s.Tunnels = append(s.Tunnels, Tunnel{d.Addr, header.ProtoGRE, 0})
			case spec.TunGUE:
				if d.TunPort != 0 {
					s.Tunnels = append(s.Tunnels, Tunnel{d.Addr, header.ProtoUDP, d.TunPort})
				}
			}
		}
	}
	return s.Normalize()
}
