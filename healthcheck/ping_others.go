//go:build !linux

package healthcheck

import (
	"errors"
	"net"

	"golang.org/x/net/icmp"
)

// pingListen opens an unprivileged ICMP datagram socket (macOS and the
// BSDs allow them); SO_MARK is Linux-only.
func pingListen(v6 bool, t Target, _ bool) (net.PacketConn, bool, error) {
	if t.FWMark != 0 {
		return nil, false, errors.New("fwmark (SO_MARK) is only supported on Linux")
	}
	network, addr := "udp4", "0.0.0.0"
	if v6 {
		network, addr = "udp6", "::"
	}
	if t.BindTo.IsValid() {
		addr = t.BindTo.String()
	}
	c, err := icmp.ListenPacket(network, addr)
	if err != nil {
		return nil, false, err
	}
	return c, false, nil
}
