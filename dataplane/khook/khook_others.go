//go:build !linux

package khook

import (
	"github.com/vishvananda/netns"

	"github.com/uvs-lb/uvs/ownership"
)

// Hooks is unsupported outside Linux; every method returns ErrUnsupported.
type Hooks struct{}

// New returns Hooks whose methods all fail with ErrUnsupported.
func New(Options) *Hooks { return &Hooks{} }

// Apply returns ErrUnsupported.
func (*Hooks) Apply(Spec) error { return ErrUnsupported }

// SetInterfaces does nothing.
func (*Hooks) SetInterfaces(...Interface) {}

// SetOwnership returns ErrUnsupported.
func (*Hooks) SetOwnership(*ownership.Set) error { return ErrUnsupported }

// Remove returns ErrUnsupported.
func (*Hooks) Remove() error { return ErrUnsupported }

// SetSysctls returns ErrUnsupported.
func (*Hooks) SetSysctls(...Sysctl) error { return ErrUnsupported }

// Sysctl returns ErrUnsupported.
func (*Hooks) Sysctl(string) (string, error) { return "", ErrUnsupported }

// CleanupNetNS returns ErrUnsupported.
func CleanupNetNS(netns.NsHandle) error { return ErrUnsupported }

// Owned reports false.
func (*Hooks) Owned() bool { return false }

// Fallback returns ErrUnsupported.
func (*Hooks) Fallback() error { return ErrUnsupported }

// RestoreSysctls returns ErrUnsupported.
func RestoreSysctls(netns.NsHandle, string) error { return ErrUnsupported }
