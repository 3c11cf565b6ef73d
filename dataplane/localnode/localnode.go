package localnode

import "errors"

// DefaultName is the device name uvsd uses (one per network namespace).
const DefaultName = "uvs-local"

// ErrUnsupported is returned by Open outside Linux.
var ErrUnsupported = errors.New("localnode: not supported on this system")

// Sysctl is one sysctl setting: Name is its path relative to /proc/sys
// ("net/ipv4/conf/eth0/rp_filter": interface names may hold dots).
type Sysctl struct {
	Name  string
	Value string
}
