//go:build !linux

package lab

import (
	"errors"
	"net"
	"net/netip"
	"time"
)

// arpProbe needs AF_PACKET, which only Linux has.
func arpProbe(ns, dev string, target netip.Addr, wait time.Duration) ([]net.HardwareAddr, error) {
	return nil, errors.New("arp probe: only supported on Linux")
}
