package dataplane

import (
	"sync/atomic"

	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/sched"
	"github.com/uvs-lb/uvs/snapshot"
)

// Default FULLNAT local port range: above Linux's default
// ip_local_port_range (32768–60999), so the director's own sockets never
// pick a port a FULLNAT connection uses.
const (
	DefaultLocalPortMin = 61000
	DefaultLocalPortMax = 65535
)

// PortAllocator hands out FULLNAT local ports. A port is free for a real
// server when no connection uses the reply tuple RS:rport → LIP:lport, so
// the connection table itself is the allocation map and nothing needs
// releasing (the alibaba LVS lport scheme: a moving cursor, bounded tries).
type PortAllocator struct {
	Min, Max uint16
	cursor   atomic.Uint32
	tries    int
}

// NewPortAllocator returns an allocator over [min, max].
func NewPortAllocator(min, max uint16) *PortAllocator {
	if min == 0 || max < min {
		min, max = DefaultLocalPortMin, DefaultLocalPortMax
	}
	return &PortAllocator{Min: min, Max: max, tries: 64}
}

// Allocate returns a local port for a connection to rs from lip, or false
// when none was free within the bounded number of tries.
func (a *PortAllocator) Allocate(t *conntrack.Table, proto uint8, rs, lip conntrack.Endpoint) (uint16, bool) {
	span := uint32(a.Max-a.Min) + 1
	k := conntrack.Key{Src: rs.Addr, Dst: lip.Addr, SrcPort: rs.Port, Proto: proto}
	for i := 0; i < a.tries; i++ {
		port := a.Min + uint16(a.cursor.Add(1)%span)
		k.DstPort = port
		if !t.Contains(k) {
			return port, true
		}
	}
	return 0, false
}

// fullnatLocal picks the local address (the service's pool round-robin, or
// the route's source address towards the real server) and a local port.
func (w *Worker) fullnatLocal(nc *conntrack.NewConn, svc *snapshot.Service, d *sched.Dest) bool {
	if w.env.Ports == nil {
		return false
	}
	var lip conntrack.Endpoint
	if n := len(svc.LocalAddrs); n > 0 {
		lip.Addr = svc.LocalAddrs[int(w.env.Ports.cursor.Load())%n].As16()
	} else {
		hop, ok := w.env.Hops.Lookup(d.Addr())
		if !ok || !hop.Src.IsValid() {
			return false
		}
		lip.Addr = hop.Src.As16()
	}
	port, ok := w.env.Ports.Allocate(w.env.Conns, nc.In.Proto, nc.Real, lip)
	if !ok {
		return false
	}
	lip.Port = port
	nc.Local = lip
	return true
}
