// Package bgpconfig is what uvsd's --bgp-* flags say: the announcer's
// configuration, its peers and communities, and their parsers. It links
// nothing but the standard library, so its fuzz targets run in a small
// binary (bgp links GoBGP).
package bgpconfig

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Config is what the announcer says to whom.
type Config struct {
	// AS is the director's autonomous system (local AS).
	AS uint32
	// RouterID is the BGP identifier, an IPv4 address.
	RouterID netip.Addr
	// ListenPort is the TCP port GoBGP accepts sessions on (179 for a
	// router that dials the director); 0 or less: none, the director
	// only dials out (a passive peer then never comes up).
	ListenPort int32
	// Peers are the routers.
	Peers []Peer
	// Communities are attached to every announcement (RFC 1997 values:
	// AS<<16 | value, or a well-known community).
	Communities []uint32
	// MED, when HasMED, is the MULTI_EXIT_DISC of every announcement.
	MED    uint32
	HasMED bool
}

// Peer is one BGP neighbour, a router.
type Peer struct {
	// Addr is the router's address; the session's local address is the
	// next hop of every VIP announced to it (next-hop self).
	Addr netip.Addr
	// AS is the router's autonomous system: another AS than Config.AS
	// is eBGP, the same iBGP.
	AS uint32
	// Port is the router's BGP port (0: 179).
	Port uint16
	// Passive: wait for the router to connect (needs ListenPort).
	Passive bool
	// Multihop, when non-zero, is the TTL of an eBGP session to a router
	// that is not directly connected (eBGP multihop).
	Multihop uint8
	// HoldTime is the hold time offered (0: GoBGP's 90 s); keepalives
	// go every third of it. Without BFD it bounds how long a router
	// keeps sending to a director that died without closing its session.
	HoldTime time.Duration
}

// Validate checks the configuration; its error names the offending
// setting.
func (c *Config) Validate() error {
	if c.AS == 0 {
		return errors.New("local AS: 0 is not an AS number")
	}
	if !c.RouterID.Is4() {
		return fmt.Errorf("router id %q: want an IPv4 address", c.RouterID)
	}
	if c.ListenPort > 65535 {
		return fmt.Errorf("listen port %d: out of range", c.ListenPort)
	}
	if len(c.Peers) == 0 {
		return errors.New("no peer: nothing to announce to")
	}
	seen := map[netip.Addr]bool{}
	for _, p := range c.Peers {
		if err := p.validate(); err != nil {
			return err
		}
		if seen[p.Addr] {
			return fmt.Errorf("peer %s: listed twice", p.Addr)
		}
		seen[p.Addr] = true
		if p.Passive && c.ListenPort <= 0 {
			return fmt.Errorf("peer %s: passive needs a listen port", p.Addr)
		}
		if p.Multihop > 0 && p.AS == c.AS {
			return fmt.Errorf("peer %s: multihop is for eBGP; an iBGP session (same AS %d) is not limited to one hop", p.Addr, c.AS)
		}
	}
	return nil
}

func (p *Peer) validate() error {
	if !p.Addr.IsValid() || p.Addr.IsUnspecified() || p.Addr.IsMulticast() {
		return fmt.Errorf("peer %q: not a unicast address", p.Addr)
	}
	if p.Addr.Zone() != "" {
		return fmt.Errorf("peer %s: zoned addresses are not supported", p.Addr)
	}
	if p.AS == 0 {
		return fmt.Errorf("peer %s: as= is required (the router's AS)", p.Addr)
	}
	if p.HoldTime != 0 && (p.HoldTime < 3*time.Second || p.HoldTime > 65535*time.Second || p.HoldTime%time.Second != 0) {
		// RFC 4271 4.2: zero or at least three seconds.
		return fmt.Errorf("peer %s: hold time %v: want whole seconds from 3 to 65535", p.Addr, p.HoldTime)
	}
	return nil
}

// ParsePeer reads one --bgp-peer value:
//
//	ADDR,as=AS[,port=PORT][,passive][,multihop=TTL][,hold=SECONDS]
func ParsePeer(s string) (Peer, error) {
	fields := strings.Split(s, ",")
	a, err := netip.ParseAddr(strings.TrimSpace(fields[0]))
	if err != nil {
		return Peer{}, fmt.Errorf("peer %q: address %q: %w", s, fields[0], err)
	}
	p := Peer{Addr: a.Unmap()}
	seen := map[string]bool{}
	for _, f := range fields[1:] {
		k, v, hasV := strings.Cut(strings.TrimSpace(f), "=")
		if seen[k] {
			return Peer{}, fmt.Errorf("peer %q: %s given twice", s, k)
		}
		seen[k] = true
		bad := func(err error) error { return fmt.Errorf("peer %q: %s=%q: %w", s, k, v, err) }
		switch {
		case k == "as" && hasV:
			n, err := ParseAS(v)
			if err != nil {
				return Peer{}, bad(err)
			}
			p.AS = n
		case k == "port" && hasV:
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil || n == 0 {
				return Peer{}, bad(errors.New("want a port from 1 to 65535"))
			}
			p.Port = uint16(n)
		case k == "multihop" && hasV:
			n, err := strconv.ParseUint(v, 10, 8)
			if err != nil || n < 1 {
				return Peer{}, bad(errors.New("want a TTL from 1 to 255"))
			}
			p.Multihop = uint8(n)
		case k == "hold" && hasV:
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil || n < 3 {
				return Peer{}, bad(errors.New("want whole seconds from 3 to 65535"))
			}
			p.HoldTime = time.Duration(n) * time.Second
		case k == "passive" && !hasV:
			p.Passive = true
		default:
			return Peer{}, fmt.Errorf("peer %q: unknown option %q (want as=AS, port=PORT, passive, multihop=TTL, hold=SECONDS)", s, f)
		}
	}
	if err := p.validate(); err != nil {
		return Peer{}, err
	}
	return p, nil
}

// String formats the peer as ParsePeer reads it.
func (p Peer) String() string {
	s := p.Addr.String() + ",as=" + strconv.FormatUint(uint64(p.AS), 10)
	if p.Port != 0 {
		s += ",port=" + strconv.Itoa(int(p.Port))
	}
	if p.Passive {
		s += ",passive"
	}
	if p.Multihop != 0 {
		s += ",multihop=" + strconv.Itoa(int(p.Multihop))
	}
	if p.HoldTime != 0 {
		s += ",hold=" + strconv.FormatInt(int64(p.HoldTime/time.Second), 10)
	}
	return s
}

// ParseAS reads an AS number: plain (65001, 4200000000) or asdot
// (1.10 = 65546, RFC 5396).
func ParseAS(s string) (uint32, error) {
	hi, lo, dot := strings.Cut(s, ".")
	if dot {
		h, err1 := strconv.ParseUint(hi, 10, 16)
		l, err2 := strconv.ParseUint(lo, 10, 16)
		if err1 != nil || err2 != nil || h<<16|l == 0 {
			return 0, fmt.Errorf("AS %q: want a number from 1 to 4294967295 or asdot H.L", s)
		}
		return uint32(h<<16 | l), nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("AS %q: want a number from 1 to 4294967295 or asdot H.L", s)
	}
	return uint32(n), nil
}

// wellKnown are RFC 1997's and RFC 8326's named communities.
var wellKnown = map[string]uint32{
	"no-export":           0xffffff01,
	"no-advertise":        0xffffff02,
	"no-export-subconfed": 0xffffff03,
	"graceful-shutdown":   0xffff0000,
}

// ParseCommunity reads a community: AS:VALUE (each 0 to 65535) or one
// of no-export, no-advertise, no-export-subconfed, graceful-shutdown.
func ParseCommunity(s string) (uint32, error) {
	if v, ok := wellKnown[s]; ok {
		return v, nil
	}
	hi, lo, ok := strings.Cut(s, ":")
	if !ok {
		return 0, fmt.Errorf("community %q: want AS:VALUE or no-export, no-advertise, no-export-subconfed, graceful-shutdown", s)
	}
	h, err1 := strconv.ParseUint(hi, 10, 16)
	l, err2 := strconv.ParseUint(lo, 10, 16)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("community %q: AS and VALUE are numbers from 0 to 65535", s)
	}
	return uint32(h<<16 | l), nil
}

// FormatCommunity is ParseCommunity's inverse for AS:VALUE.
func FormatCommunity(c uint32) string {
	for name, v := range wellKnown {
		if v == c {
			return name
		}
	}
	return strconv.FormatUint(uint64(c>>16), 10) + ":" + strconv.FormatUint(uint64(c&0xffff), 10)
}
