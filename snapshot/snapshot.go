// Package snapshot is the compiled running configuration: the control plane
// builds an immutable Snapshot of the services and publishes it; the data
// plane's workers load it once per batch and look services up in it. It sits
// between the two so that neither imports the other.
package snapshot

import (
	"net/netip"
	"time"

	"github.com/uvs-lb/uvs/sched"
	"github.com/uvs-lb/uvs/spec"
)

// Service is a virtual service as the workers see it in a Snapshot. The
// control plane builds it; workers never modify it. Sched and Stats are
// shared with the control plane and outlive snapshots.
type Service struct {
	ID         uint32
	Key        spec.ServiceKey
	Sched      *sched.Service
	Persistent bool
	Timeout    time.Duration // persistence timeout
	Netmask    uint32
	OPS        bool
	LocalAddrs []netip.Addr // FULLNAT pool
	Stats      *sched.Stats
}

type tupleKey struct {
	addr  [16]byte
	port  uint16
	proto spec.Proto
}

type markKey struct {
	mark uint32
	v6   bool
}

// Snapshot is the immutable running configuration the workers load once per
// batch. A configuration change builds a new Snapshot and swaps it in
// atomically.
type Snapshot struct {
	services []*Service
	byTuple  map[tupleKey]*Service
	byMark   map[markKey]*Service
	port0    bool
	ftp      bool
	fwm      bool
	vips     map[[16]byte]struct{}
	// Version counts snapshots; it only grows.
	Version uint64
	// Stats is the registry that gave the services and destinations of
	// this snapshot their counter slots (nil: none, every count goes to
	// shared atomics). Set before publication; a worker registers its
	// StatsBlock in it and grows the block when a snapshot brings new
	// slots (sched.Stats).
	Stats *sched.StatsRegistry
}

// New indexes services for lookup. The slice is kept as given (the
// listing order of the control plane).
func New(version uint64, services []*Service) *Snapshot {
	s := &Snapshot{
		services: services,
		byTuple:  make(map[tupleKey]*Service, len(services)),
		byMark:   make(map[markKey]*Service),
		vips:     make(map[[16]byte]struct{}),
		Version:  version,
	}
	for _, svc := range services {
		if svc.Key.IsFWMark() {
			s.byMark[markKey{svc.Key.FWMark, svc.Key.IPv6}] = svc
			s.fwm = true
		} else {
			a := svc.Key.Addr.As16()
			s.byTuple[tupleKey{a, svc.Key.Port, svc.Key.Proto}] = svc
			s.vips[a] = struct{}{}
			if svc.Key.Port == 0 {
				s.port0 = true
			}
			if svc.Key.Port == 21 && svc.Key.Proto == spec.ProtoTCP {
				s.ftp = true
			}
		}
	}
	return s
}

// Services returns the services in control-plane order. Read only.
func (s *Snapshot) Services() []*Service { return s.services }

// HasFWMark reports whether any service is a firewall-mark service, so
// frames need classifying.
func (s *Snapshot) HasFWMark() bool { return s.fwm }

// IsVIP reports whether addr (16-byte form, IPv4 mapped) is the address of a
// non-fwmark service.
func (s *Snapshot) IsVIP(addr [16]byte) bool {
	_, ok := s.vips[addr]
	return ok
}

// Lookup finds the service for a packet the way ip_vs_service_find does:
// fwmark first (when mark != 0), then the exact tuple, then the FTP service
// for data connections, then a port-0 service of the same VIP.
func (s *Snapshot) Lookup(proto spec.Proto, daddr [16]byte, dport uint16, mark uint32, v6 bool) *Service {
	if mark != 0 {
		if svc := s.byMark[markKey{mark, v6}]; svc != nil {
			return svc
		}
	}
	if svc := s.byTuple[tupleKey{daddr, dport, proto}]; svc != nil {
		return svc
	}
	if s.ftp && proto == spec.ProtoTCP && (dport == 20 || dport >= 1024) {
		if svc := s.byTuple[tupleKey{daddr, 21, proto}]; svc != nil {
			return svc
		}
	}
	if s.port0 {
		return s.byTuple[tupleKey{daddr, 0, proto}]
	}
	return nil
}
