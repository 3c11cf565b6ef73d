// Package neigh resolves the next hop of the frames uvsd transmits itself:
// the egress interface, the source and destination MAC addresses and the
// route's preferred source address, taken from the kernel's routing and
// neighbour tables over netlink.
//
// Lookup is the per-packet call: a lock-free read of an immutable map held in
// an atomic.Pointer, with no allocation on a hit. A miss returns false and
// starts resolution in the background (route lookup, the kernel's neighbour
// entry, and if that is not usable a request that the kernel resolve it);
// concurrent misses for one destination share one resolution. Resolved
// destinations are refreshed periodically and on neighbour and route change
// events, so a changed MAC or route is picked up.
//
// A destination whose route is a local route (RTN_LOCAL: one of the
// director's own addresses) resolves at once to a Hop with Local set and
// no interface, MAC or source address: the data plane delivers its packets to
// the director's own stack (LOCALNODE) instead of sending them.
package neigh

import (
	"errors"
	"net/netip"
	"time"

	"github.com/vishvananda/netns"
)

// Hop is how to reach one destination.
type Hop struct {
	Ifindex int        // egress interface
	SrcMAC  [6]byte    // the egress interface's MAC (zero on a no-ARP link)
	DstMAC  [6]byte    // the next hop's MAC: the destination's, or its gateway's
	Src     netip.Addr // the route's preferred source address (TUN, FULLNAT)
	Local   bool       // a local route: the address is the director's own (LOCALNODE)
}

// Interface describes one interface uvsd may serve.
type Interface struct {
	Index int
	Name  string
	MAC   [6]byte // zero on links without a 6-byte hardware address
	MTU   int
	Addrs []netip.Prefix // every address configured, IPv4 and IPv6
}

// Options configure a Resolver. Zero values pick the defaults.
type Options struct {
	// NetNS is the namespace whose tables are read. Zero or negative: the
	// caller's namespace.
	NetNS netns.NsHandle
	// Refresh is the period of the full refresh (default 5 s).
	Refresh time.Duration
	// ResolveTimeout bounds one resolution attempt (default 3 s).
	ResolveTimeout time.Duration
	// RetryAfter is how long a failed destination is not retried on a miss
	// (default 1 s).
	RetryAfter time.Duration
	// MaxEntries bounds the number of destinations kept resolved (default
	// 65536); misses beyond it are not resolved until Forget makes room.
	MaxEntries int
}

func (o *Options) defaults() {
	if o.Refresh <= 0 {
		o.Refresh = 5 * time.Second
	}
	if o.ResolveTimeout <= 0 {
		o.ResolveTimeout = 3 * time.Second
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = time.Second
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = 1 << 16
	}
}

// Errors a resolution can end with (seen through Resolve).
var (
	ErrUnsupported = errors.New("neigh: not supported on this system")
	ErrClosed      = errors.New("neigh: resolver closed")
	ErrTimeout     = errors.New("neigh: next hop not resolved in time")
	// ErrLocal: the route to the destination is a (non-local) route
	// through the loopback device. The director's own addresses (local
	// routes) resolve to a Hop with Local set instead.
	ErrLocal = errors.New("neigh: destination is routed through the loopback device")
)
