package connsync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// openMaster opens the master's socket as make_send_sock does: multicast
// out of ifi, loopback off, the TTL, fragmentation allowed
// (IP_PMTUDISC_DONT), bound to ifi's primary IPv4 address port 0 (IPv4
// groups only), connected to group:port.
func openMaster(cfg Config, ifi *net.Interface) (io.WriteCloser, error) {
	v6 := is6(cfg.Group)
	network := "udp4"
	var laddr *net.UDPAddr
	if v6 {
		network = "udp6"
	} else {
		a, err := primaryIPv4(ifi)
		if err != nil {
			return nil, err
		}
		laddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 0))
	}
	d := net.Dialer{LocalAddr: laddr, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			s := int(fd)
			if v6 {
				serr = errors.Join(
					unix.SetsockoptInt(s, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, ifi.Index),
					unix.SetsockoptInt(s, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_LOOP, 0),
					unix.SetsockoptInt(s, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, int(cfg.TTL)),
					unix.SetsockoptInt(s, unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_DONT))
				return
			}
			serr = errors.Join(
				unix.SetsockoptIPMreqn(s, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(ifi.Index)}),
				unix.SetsockoptInt(s, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 0),
				unix.SetsockoptInt(s, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, int(cfg.TTL)),
				unix.SetsockoptInt(s, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DONT))
		})
		return errors.Join(err, serr)
	}}
	c, err := d.Dial(network, cfg.udpAddr().String())
	if err != nil {
		return nil, fmt.Errorf("sync daemon: master socket on %s to %s: %w", ifi.Name, cfg.udpAddr(), err)
	}
	return c.(*net.UDPConn), nil
}

// openBackup opens the backup's socket as make_receive_sock does:
// SO_REUSEADDR, bound to ifi and to group:port, joined to the group on
// ifi.
func openBackup(cfg Config, ifi *net.Interface) (datagramConn, error) {
	v6 := is6(cfg.Group)
	network := "udp4"
	if v6 {
		network = "udp6"
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			s := int(fd)
			serr = errors.Join(
				unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1),
				unix.SetsockoptString(s, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifi.Name))
		})
		return errors.Join(err, serr)
	}}
	pc, err := lc.ListenPacket(context.Background(), network, cfg.udpAddr().String())
	if err != nil {
		return nil, fmt.Errorf("sync daemon: backup socket on %s at %s: %w", ifi.Name, cfg.udpAddr(), err)
	}
	group := &net.UDPAddr{IP: cfg.Group.Unmap().AsSlice()}
	if v6 {
		err = ipv6.NewPacketConn(pc).JoinGroup(ifi, group)
	} else {
		err = ipv4.NewPacketConn(pc).JoinGroup(ifi, group)
	}
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("sync daemon: join %s on %s: %w", cfg.Group, ifi.Name, err)
	}
	return pc.(*net.UDPConn), nil
}

func is6(a netip.Addr) bool { return a.Is6() && !a.Is4In6() }

// primaryIPv4 returns ifi's first IPv4 address (inet_select_addr), or an
// error wrapping EADDRNOTAVAIL naming the interface.
func primaryIPv4(ifi *net.Interface) (netip.Addr, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("sync daemon: addresses of %s: %w", ifi.Name, err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap().Is4() {
				return ip.Unmap(), nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("sync daemon: mcast interface %s has no IPv4 address (the master sends from it): %w", ifi.Name, syscall.EADDRNOTAVAIL)
}
