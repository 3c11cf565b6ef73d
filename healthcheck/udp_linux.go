package healthcheck

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// probeControl returns the net.Dialer Control for a probe socket: SO_MARK
// when fwmark is set, and for UDP IP_RECVERR/IPV6_RECVERR so that any ICMP
// destination unreachable (not only port unreachable) fails the next read,
// as keepalived's udp_bind_connect does.
func probeControl(mark uint32, udp bool) func(network, address string, c syscall.RawConn) error {
	if mark == 0 && !udp {
		return nil
	}
	return func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if mark != 0 {
				if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark)); err != nil {
					serr = err
					return
				}
			}
			if udp {
				if network == "udp6" {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_RECVERR, 1)
				} else {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_RECVERR, 1)
				}
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
}
