//go:build !linux

package neigh

import "net/netip"

// Resolver is unsupported outside Linux.
type Resolver struct{}

// New returns ErrUnsupported.
func New(Options) (*Resolver, error) { return nil, ErrUnsupported }

// Lookup always misses.
func (*Resolver) Lookup(netip.Addr) (Hop, bool) { return Hop{}, false }

// Generation is always 0.
func (*Resolver) Generation() uint64 { return 0 }

// Peek always misses.
func (*Resolver) Peek(netip.Addr) (Hop, bool) { return Hop{}, false }

// Prefetch does nothing.
func (*Resolver) Prefetch(...netip.Addr) {}

// Forget does nothing.
func (*Resolver) Forget(...netip.Addr) {}

// Resolve returns ErrUnsupported.
func (*Resolver) Resolve(netip.Addr) (Hop, error) { return Hop{}, ErrUnsupported }

// Interfaces returns ErrUnsupported.
func (*Resolver) Interfaces() ([]Interface, error) { return nil, ErrUnsupported }

// Hide does nothing.
func (*Resolver) Hide(int) func() { return func() {} }

// Close does nothing.
func (*Resolver) Close() error { return nil }
