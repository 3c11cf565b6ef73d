//go:build !linux

package bpfdecap

import (
	"errors"
	"net/netip"
)

var errUnsupported = errors.New("bpf decap: needs Linux")

// Stats are the program's counters, summed over the CPUs.
type Stats struct{ Packets, Bytes uint64 }

// Decap is the loaded program; on this system it cannot be loaded.
type Decap struct{}

// New fails: needs Linux.
func New() (*Decap, error) { return nil, errUnsupported }

// SetAddrs fails: needs Linux.
func (*Decap) SetAddrs(_, _ []netip.Addr) error { return errUnsupported }

// Attach fails: needs Linux.
func (*Decap) Attach(int) error { return errUnsupported }

// Attached returns nothing.
func (*Decap) Attached() []int { return nil }

// Stats fails: needs Linux.
func (*Decap) Stats() (Stats, error) { return Stats{}, errUnsupported }

// Run fails: needs Linux.
func (*Decap) Run([]byte) ([]byte, bool, error) { return nil, false, errUnsupported }

// Close does nothing.
func (*Decap) Close() error { return nil }
