//go:build !linux

package wire

import (
	"errors"
	"net"
)

// PeerCred needs SO_PEERCRED, which only Linux has.
func PeerCred(net.Conn) (Cred, error) {
	return Cred{}, errors.New("peer credentials: not supported on this operating system")
}
