//go:build !linux

package healthcheck

import (
	"errors"
	"syscall"
)

// probeControl: SO_MARK exists only on Linux; elsewhere a fwmark fails the
// probe rather than being silently ignored.
func probeControl(mark uint32, udp bool) func(network, address string, c syscall.RawConn) error {
	if mark == 0 {
		return nil
	}
	return func(network, address string, c syscall.RawConn) error {
		return errors.New("fwmark (SO_MARK) is only supported on Linux")
	}
}
