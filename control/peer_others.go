//go:build !linux

package control

import (
	"errors"
	"net"
)

var errUnsupported = errors.New("not supported on this operating system")

// peerIsRoot needs SO_PEERCRED, which only Linux has: every peer is
// unprivileged elsewhere.
func peerIsRoot(*net.UnixConn) (bool, error) { return false, errUnsupported }
