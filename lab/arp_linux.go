package lab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// arpProbe broadcasts "who has target? tell src" on dev inside the named
// namespace and returns every distinct MAC address that answered within
// wait, in the order the answers came. Unlike the kernel's neighbour
// cache, which keeps the first answer, it shows every host that claims the
// address.
func arpProbe(ns, dev string, target netip.Addr, wait time.Duration) ([]net.HardwareAddr, error) {
	var fd int
	var ifi *net.Interface
	var src netip.Addr
	err := inNetNS(ns, func() error {
		var err error
		if ifi, err = net.InterfaceByName(dev); err != nil {
			return err
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() {
				src = p.Addr()
				break
			}
		}
		if !src.IsValid() {
			return fmt.Errorf("%s has no IPv4 address to ask from", dev)
		}
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(ethPARP)))
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(ethPARP), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("arp probe on %s: %w", dev, err)
	}
	defer unix.Close(fd)
	if !target.Is4() {
		return nil, errors.New("arp probe: IPv4 only")
	}
	bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	frame := make([]byte, 0, 42)
	frame = append(frame, bcast...)
	frame = append(frame, ifi.HardwareAddr...)
	frame = binary.BigEndian.AppendUint16(frame, ethPARP)
	frame = binary.BigEndian.AppendUint16(frame, 1)      // Ethernet
	frame = binary.BigEndian.AppendUint16(frame, 0x0800) // IPv4
	frame = append(frame, 6, 4)
	frame = binary.BigEndian.AppendUint16(frame, 1) // request
	frame = append(frame, ifi.HardwareAddr...)
	frame = append(frame, src.AsSlice()...)
	frame = append(frame, make([]byte, 6)...)
	frame = append(frame, target.AsSlice()...)
	to := &unix.SockaddrLinklayer{Protocol: htons(ethPARP), Ifindex: ifi.Index, Halen: 6}
	copy(to.Addr[:], bcast)
	if err := unix.Sendto(fd, frame, 0, to); err != nil {
		return nil, fmt.Errorf("arp probe: send: %w", err)
	}
	tv := unix.NsecToTimeval((50 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return nil, err
	}
	var out []net.HardwareAddr
	buf := make([]byte, 1500)
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return out, fmt.Errorf("arp probe: receive: %w", err)
		}
		if mac, ok := arpReplyFrom(buf[:n], target); ok && !containsMAC(out, mac) {
			out = append(out, mac)
		}
	}
	return out, nil
}
