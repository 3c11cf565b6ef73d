package healthcheck

import (
	"errors"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// pingListen opens an ICMP socket for the family: a datagram ping socket
// when allowed, else a raw one (raw reports which). It sets SO_MARK and
// binds to Target.BindTo when given. The socket is created in the calling
// goroutine, so a caller inside a network namespace gets one there.
func pingListen(v6 bool, t Target, forceRaw bool) (net.PacketConn, bool, error) {
	family, proto := unix.AF_INET, unix.IPPROTO_ICMP
	if v6 {
		family, proto = unix.AF_INET6, unix.IPPROTO_ICMPV6
	}
	raw := forceRaw
	fd, err := -1, error(unix.EPERM)
	if !raw {
		fd, err = unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, proto)
	}
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EPROTONOSUPPORT) {
		raw = true
		fd, err = unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, proto)
	}
	if err != nil {
		return nil, false, os.NewSyscallError("socket", err)
	}
	if err := pingSetup(fd, v6, t); err != nil {
		unix.Close(fd)
		return nil, false, err
	}
	f := os.NewFile(uintptr(fd), "ping")
	c, err := net.FilePacketConn(f)
	f.Close()
	if err != nil {
		return nil, false, err
	}
	return c, raw, nil
}

func pingSetup(fd int, v6 bool, t Target) error {
	if t.FWMark != 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(t.FWMark)); err != nil {
			return os.NewSyscallError("setsockopt SO_MARK", err)
		}
	}
	if !t.BindTo.IsValid() {
		return nil
	}
	var sa unix.Sockaddr
	b := t.BindTo
	if v6 {
		sa6 := &unix.SockaddrInet6{Addr: b.As16()}
		if z := b.Zone(); z != "" {
			if ifi, err := net.InterfaceByName(z); err == nil {
				sa6.ZoneId = uint32(ifi.Index)
			}
		}
		sa = sa6
	} else {
		sa = &unix.SockaddrInet4{Addr: b.Unmap().As4()}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return os.NewSyscallError("bind", err)
	}
	return nil
}
