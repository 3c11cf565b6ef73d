package sim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/uvs-lb/uvs/spec"
)

// Workload describes a generated workload.
type Workload struct {
	Conns   int        // number of connections
	Clients int        // distinct client addresses
	Ports   int        // distinct source ports per client
	Proto   spec.Proto // 0: the protocol of the first non-fwmark service
	Rate    float64    // mean arrivals per second (Poisson process)
	Hold    Dist       // connection hold time
}

// Client address ranges: client i (0-based) is the (i+1)-th address of
// 172.16.0.0/12 for IPv4 services, of 2001:db8:172:16::/64 for IPv6 ones.
// Source ports are 32768 + j for j in [0, Ports), the Linux ephemeral range.
const (
	maxClients   = 1<<20 - 2 // usable addresses of a /12
	basePort     = 32768
	maxPorts     = 65536 - basePort
	defaultPorts = 28232 // 32768..60999, ip_local_port_range
)

var (
	clientBase4 = netip.MustParseAddr("172.16.0.0").As4()
	clientBase6 = netip.MustParseAddr("2001:db8:172:16::").As16()
)

// Validate checks the workload's numbers.
func (w Workload) Validate() error {
	switch {
	case w.Conns < 0:
		return errors.New("--conns must not be negative")
	case w.Clients < 1 || w.Clients > maxClients:
		return fmt.Errorf("--clients must be 1..%d", maxClients)
	case w.Ports < 1 || w.Ports > maxPorts:
		return fmt.Errorf("--ports must be 1..%d", maxPorts)
	case !(w.Rate > 0) || w.Rate > 1e9:
		return errors.New("--rate must be a positive number of connections per second (at most 1e9)")
	case float64(w.Conns)/w.Rate > maxSimTime.Seconds()/2:
		return fmt.Errorf("--conns/--rate spans more than %s of simulated time", maxSimTime/2)
	case w.Hold.a > maxSimTime/64 || w.Hold.b > maxSimTime/64:
		return fmt.Errorf("--hold %s: hold times are limited to %s", w.Hold, maxSimTime/64)
	}
	switch w.Proto {
	case 0, spec.ProtoTCP, spec.ProtoUDP, spec.ProtoSCTP:
	default:
		return fmt.Errorf("protocol %d not supported", w.Proto)
	}
	return nil
}

// clientAddr returns client i's address in the family of the service.
func clientAddr(i int, ipv6 bool) netip.Addr {
	n := uint32(i + 1)
	if ipv6 {
		b := clientBase6
		b[12], b[13], b[14], b[15] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
		return netip.AddrFrom16(b)
	}
	b := clientBase4
	v := (uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])) + n
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// generator produces the arrivals of a generated workload one at a time.
type generator struct {
	w       Workload
	rng     *rand.Rand
	targets []spec.ServiceKey
	n       int
	t       time.Duration
}

// next returns the next arrival, or false after the last one. Arrival i is
// at the sum of i exponential gaps (the first connection arrives at t=0).
func (g *generator) next() (Arrival, bool) {
	if g.n >= g.w.Conns {
		return Arrival{}, false
	}
	if g.n > 0 {
		g.t += durationOf(g.rng.ExpFloat64() / g.w.Rate * 1e9)
	}
	g.n++
	key := g.targets[0]
	if len(g.targets) > 1 {
		key = g.targets[g.rng.IntN(len(g.targets))]
	}
	c := g.rng.IntN(g.w.Clients)
	p := g.rng.IntN(g.w.Ports)
	port := key.Port
	if port == 0 {
		port = 80 // a port-0 (all ports) service: connect to port 80
	}
	return Arrival{
		At:     g.t,
		Proto:  key.Proto,
		Client: netip.AddrPortFrom(clientAddr(c, key.Is6()), uint16(basePort+p)),
		VIP:    netip.AddrPortFrom(key.Addr, port),
		Hold:   g.w.Hold.Sample(g.rng),
	}, true
}
