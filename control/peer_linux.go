//go:build linux

package control

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// peerIsRoot reports whether the peer of a unix socket runs as uid 0, from
// SO_PEERCRED (the credentials the peer had when it connected).
func peerIsRoot(c *net.UnixConn) (bool, error) {
	cred, err := peerCred(c)
	if err != nil {
		return false, err
	}
	return cred.Uid == 0, nil
}

func peerCred(c *net.UnixConn) (*unix.Ucred, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var serr error
	if err := rc.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, fmt.Errorf("peer credentials: %w", err)
	}
	if serr != nil {
		return nil, fmt.Errorf("peer credentials: %w", os.NewSyscallError("getsockopt", serr))
	}
	return cred, nil
}
