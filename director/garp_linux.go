package director

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// packetSender sends frames on an AF_PACKET socket bound to no interface
// and no protocol: it only sends.
type packetSender struct{ fd int }

func openSender() (frameSender, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("packet socket: %w", err)
	}
	return &packetSender{fd: fd}, nil
}

func (s *packetSender) Send(ifindex int, frame []byte) error {
	sa := &unix.SockaddrLinklayer{Ifindex: ifindex, Halen: 6}
	copy(sa.Addr[:], frame[0:6])
	if err := unix.Sendto(s.fd, frame, 0, sa); err != nil {
		return fmt.Errorf("sending on interface %d: %w", ifindex, err)
	}
	return nil
}

func (s *packetSender) Close() error { return unix.Close(s.fd) }
