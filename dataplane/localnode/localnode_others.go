//go:build !linux

package localnode

// Device is unsupported outside Linux.
type Device struct{}

// Open returns ErrUnsupported.
func Open(string) (*Device, error) { return nil, ErrUnsupported }

// Name returns "".
func (*Device) Name() string { return "" }

// Index returns 0.
func (*Device) Index() int { return 0 }

// Deliver returns ErrUnsupported.
func (*Device) Deliver([]byte) error { return ErrUnsupported }

// Close does nothing.
func (*Device) Close() error { return nil }

// RPFilter returns ErrUnsupported.
func RPFilter(string) ([]Sysctl, error) { return nil, ErrUnsupported }
