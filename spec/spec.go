// Package spec holds the plain description of what a director serves: virtual
// services and their real servers ("destinations"), in the terms ipvsadm uses.
//
// These are values with no behaviour beyond validation and formatting. The
// ipvsadm package parses command lines and rules files into them, the sched
// package builds schedulers from them, and the control plane compiles them
// into the snapshot the data plane reads. Addresses are netip values (never
// net.IP), so every type here is comparable and allocation-free to copy.
package spec

import (
	"fmt"
	"net/netip"
	"strconv"
)

// Proto is an IP protocol number as IPVS uses it for services.
type Proto uint8

// Protocols a virtual service can carry (include/uapi/linux/in.h).
const (
	ProtoIP   Proto = 0 // fwmark templates (IPPROTO_IP)
	ProtoTCP  Proto = 6
	ProtoUDP  Proto = 17
	ProtoSCTP Proto = 132
)

// String returns the name ipvsadm prints in listings ("TCP", "UDP", "SCTP", "IP").
func (p Proto) String() string {
	switch p {
	case ProtoTCP:
		return "TCP"
	case ProtoUDP:
		return "UDP"
	case ProtoSCTP:
		return "SCTP"
	case ProtoIP:
		return "IP"
	}
	return "?"
}

// Fwd is a forwarding method, with the kernel's IP_VS_CONN_F_* values for the
// ones mainline has. FullNAT is the alibaba/DPVS extension.
type Fwd uint8

// Forwarding methods (include/uapi/linux/ip_vs.h IP_VS_CONN_F_FWD_MASK values).
const (
	FwdMasq    Fwd = 0 // -m, NAT
	FwdLocal   Fwd = 1 // local node
	FwdTunnel  Fwd = 2 // -i, IPIP/GUE/GRE
	FwdRoute   Fwd = 3 // -g, direct routing (ipvsadm's default)
	FwdBypass  Fwd = 4 // cache bypass
	FwdFullNAT Fwd = 5 // -b on -a/-e (DPVS spelling), source+destination NAT
)

// String returns the name ipvsadm prints in the Forward column.
func (f Fwd) String() string {
	switch f {
	case FwdMasq:
		return "Masq"
	case FwdLocal:
		return "Local"
	case FwdTunnel:
		return "Tunnel"
	case FwdRoute:
		return "Route"
	case FwdBypass:
		return "Bypass"
	case FwdFullNAT:
		return "FullNat"
	}
	return "Unknown"
}

// TunType is the encapsulation of a tunnelling destination (--tun-type).
type TunType uint8

// Tunnel types (IP_VS_CONN_F_TUNNEL_TYPE_*).
const (
	TunIPIP TunType = 0
	TunGUE  TunType = 1
	TunGRE  TunType = 2
)

// String returns the --tun-type spelling.
func (t TunType) String() string {
	switch t {
	case TunIPIP:
		return "ipip"
	case TunGUE:
		return "gue"
	case TunGRE:
		return "gre"
	}
	return "unknown"
}

// TunCsum is the tunnel checksum mode (--tun-nocsum, --tun-csum, --tun-remcsum).
type TunCsum uint8

// Tunnel checksum modes (IP_VS_TUNNEL_ENCAP_FLAG_*).
const (
	TunNoCsum  TunCsum = 0
	TunCsumOn  TunCsum = 1
	TunRemCsum TunCsum = 2
)

// SchedFlags are the service scheduler flags (-b); the values are the
// kernel's IP_VS_SVC_F_SCHED1..3 bits.
type SchedFlags uint32

// Scheduler flag bits.
const (
	SchedFlag1 SchedFlags = 0x0008 // flag-1, sh-fallback, mh-fallback
	SchedFlag2 SchedFlags = 0x0010 // flag-2, sh-port, mh-port
	SchedFlag3 SchedFlags = 0x0020 // flag-3
)

// Defaults ipvsadm applies.
const (
	DefaultScheduler         = "wlc"
	DefaultPersistentTimeout = 360 // seconds (IPVS_SVC_PERSISTENT_TIMEOUT)
	MaxTimeout               = 2678400
)

// ServiceKey identifies a virtual service: either (family, protocol, VIP,
// port) or (family, fwmark). For fwmark services Addr is the zero Addr and
// Proto is TCP, as ipvsadm sends it.
type ServiceKey struct {
	FWMark uint32     // non-zero for a firewall-mark service
	IPv6   bool       // family of a fwmark service (-6); derived from Addr otherwise
	Proto  Proto      // TCP, UDP or SCTP
	Addr   netip.Addr // VIP (unset for fwmark services)
	Port   uint16     // virtual port; 0 = all ports (persistent services only)
}

// IsFWMark reports whether the key names a firewall-mark service.
func (k ServiceKey) IsFWMark() bool { return k.FWMark != 0 }

// Is6 reports whether the service is IPv6.
func (k ServiceKey) Is6() bool {
	if k.IsFWMark() {
		return k.IPv6
	}
	return k.Addr.Is6()
}

// String formats the key as ipvsadm's -n listing names it: "TCP  10.0.0.1:80",
// "UDP  [2001:db8::1]:53", "FWM  10", "FWM  10 IPv6".
func (k ServiceKey) String() string {
	if k.IsFWMark() {
		if k.IPv6 {
			return "FWM  " + strconv.FormatUint(uint64(k.FWMark), 10) + " IPv6"
		}
		return "FWM  " + strconv.FormatUint(uint64(k.FWMark), 10)
	}
	return fmt.Sprintf("%-4s %s", k.Proto, netip.AddrPortFrom(k.Addr, k.Port))
}

// Service is the configuration of one virtual service (-A/-E).
type Service struct {
	Key        ServiceKey
	Scheduler  string     // ipvsadm name: rr wrr sh dh lc wlc sed nq lblc lblcr fo ovf mh twos (or "none")
	Flags      SchedFlags // -b scheduler flags
	Persistent bool       // -p given
	Timeout    uint32     // persistence timeout in seconds (when Persistent)
	// Netmask is the persistence granularity, as the kernel stores it: for
	// IPv4 the mask itself in host byte order (0xffffffff by default, may be
	// non-contiguous); for IPv6 the prefix length (128 by default).
	Netmask uint32
	PE      string // persistence engine (--pe), "" if none
	OPS     bool   // one-packet scheduling (-o)
	// LocalAddrs is the FULLNAT local-address pool (--add-laddr), in the
	// order added. Empty means "the egress interface's address".
	LocalAddrs []netip.Addr
}

// DefaultNetmask returns the persistence netmask ipvsadm uses for a family.
func DefaultNetmask(ipv6 bool) uint32 {
	if ipv6 {
		return 128
	}
	return 0xffffffff
}

// Dest is the configuration of one real server of a service (-a/-e).
type Dest struct {
	Addr       netip.Addr
	Port       uint16
	Fwd        Fwd
	Weight     uint32 // 0..65535 from ipvsadm; 0 = quiesced
	UThreshold uint32 // -x, 0 = unset
	LThreshold uint32 // -y, 0 = unset
	TunType    TunType
	TunPort    uint16 // GUE destination port
	TunCsum    TunCsum
}

// AddrPort returns the destination's address and port.
func (d Dest) AddrPort() netip.AddrPort { return netip.AddrPortFrom(d.Addr, d.Port) }
