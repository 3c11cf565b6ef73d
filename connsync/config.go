package connsync

import (
	"fmt"
	"net/netip"

	"github.com/uvs-lb/uvs/connsync/wire"
)

// Config is a sync daemon's configuration, as ipvsadm --start-daemon and
// keepalived's lvs_sync_daemon give it. Zero values mean "not given".
type Config struct {
	State     string // "master" or "backup"
	Interface string // --mcast-interface
	SyncID    uint8  // --syncid (0: a backup accepts every master)
	MaxLen    uint16 // --sync-maxlen
	Group     netip.Addr
	Port      uint16
	TTL       uint8
}

// DefaultGroup is the IPv4 sync group, 224.0.0.81 (IP_VS_SYNC_GROUP).
var DefaultGroup = netip.MustParseAddr(wire.DefaultGroup4)

// UDP/IP header lengths the kernel subtracts from the MTU for maxlen.
const (
	hdrLen4 = 20 + 8
	hdrLen6 = 40 + 8
)

// WithDefaults returns c with the kernel's defaults filled in
// (start_sync_thread): group 224.0.0.81 (there is no IPv6 default: an
// IPv6 group is used only when given), port 8848, TTL 1; maxlen 1500 − 28
// (1452 for an IPv6 group) for a master whatever the MTU, clamp(mtu,
// 1500, 65535) − 28 (or − 48) for a backup; a given maxlen is clamped to
// [1 (master) or 1024 (backup), 65535 − 28 (or − 48)]. mtu is the
// interface's MTU. WithDefaults is idempotent.
func (c Config) WithDefaults(mtu int) Config {
	if !c.Group.IsValid() {
		c.Group = DefaultGroup
	}
	if c.Port == 0 {
		c.Port = wire.DefaultPort
	}
	if c.TTL == 0 {
		c.TTL = wire.DefaultTTL
	}
	hlen := hdrLen4
	if c.Group.Is6() && !c.Group.Is4In6() {
		hlen = hdrLen6
	}
	backup := c.State == "backup"
	if c.MaxLen != 0 {
		lo := 1
		if backup {
			lo = 1024
		}
		c.MaxLen = uint16(min(max(int(c.MaxLen), lo), 65535-hlen))
		return c
	}
	m := 1500
	if backup {
		m = min(max(mtu, 1500), 65535)
	}
	c.MaxLen = uint16(m - hlen)
	return c
}

// check validates what the kernel (and ipvsadm) would refuse.
func (c Config) check(state string) error {
	if c.State != state {
		return fmt.Errorf("sync daemon: state %q, want %q", c.State, state)
	}
	if c.Interface == "" {
		return fmt.Errorf("sync daemon: no mcast interface")
	}
	if !c.Group.IsMulticast() {
		return fmt.Errorf("sync daemon: mcast group %s is not a multicast address", c.Group)
	}
	return nil
}

// udpAddr returns group:port as the socket sees it: an IPv6 group carries
// the interface as its zone.
func (c Config) udpAddr() netip.AddrPort {
	g := c.Group.Unmap()
	if g.Is6() {
		g = g.WithZone(c.Interface)
	}
	return netip.AddrPortFrom(g, c.Port)
}
