package khook

import (
	"errors"
	"net/netip"

	"github.com/uvs-lb/uvs/spec"
	"github.com/vishvananda/netns"
)

// TableName is the name of the nftables netdev table khook owns.
const TableName = "uvs"

// DefaultPriority is the ingress priority of the base chains: early, so that
// no other ingress chain acts on a frame uvsd owns first.
const DefaultPriority = -500

// ErrUnsupported is returned on systems without nftables.
var ErrUnsupported = errors.New("khook: not supported on this system")

// Spec is the complete desired state of the hooks: every interface uvsd serves
// and what it owns on it. Apply replaces whatever was installed before.
type Spec struct {
	Interfaces []Interface
}

// Interface lists what uvsd owns on one interface. Set Ifindex or Name (both
// may be set; Ifindex wins and the name is looked up).
type Interface struct {
	Ifindex int
	Name    string

	// Services are VIPs whose traffic uvsd receives: (addr, proto, port).
	// Port 0 means every port of that protocol (port-0 services, fwmark
	// services expressed as addresses). Proto spec.ProtoIP (0) means TCP, UDP
	// and SCTP.
	Services []Endpoint

	// NATReplies are the real servers (addr, proto, port) whose replies uvsd
	// translates back (NAT and FULLNAT). Replies addressed to one of the
	// director's own addresses are left to the kernel.
	NATReplies []Endpoint

	// LocalRanges are the FULLNAT local addresses with the port ranges uvsd
	// allocates from; replies to them come back to the director.
	LocalRanges []PortRange
}

// Endpoint is an address, an IP protocol and a port.
type Endpoint struct {
	Addr  netip.Addr
	Proto spec.Proto
	Port  uint16
}

// PortRange is an address, an IP protocol and an inclusive port range.
type PortRange struct {
	Addr  netip.Addr
	Proto spec.Proto
	First uint16
	Last  uint16
}

// Sysctl is one setting under /proc/sys, named as sysctl(8) does: with dots
// ("net.ipv4.conf.all.send_redirects"), or with slashes when a component
// itself contains a dot ("net/ipv4/conf/eth0.100/send_redirects").
type Sysctl struct {
	Name  string
	Value string
}

// RecommendedSysctls returns the settings uvsd wants in its namespace for the
// given served interfaces: no ICMP redirects from the director's stack (the
// director receives frames for addresses it re-sends on the same link, which
// would otherwise make the kernel send redirects).
func RecommendedSysctls(ifnames ...string) []Sysctl {
	out := []Sysctl{
		{Name: "net.ipv4.conf.all.send_redirects", Value: "0"},
		{Name: "net.ipv4.conf.default.send_redirects", Value: "0"},
	}
	for _, n := range ifnames {
		out = append(out, Sysctl{Name: "net/ipv4/conf/" + n + "/send_redirects", Value: "0"})
	}
	return out
}

// Options configure Hooks.
type Options struct {
	// NetNS is the network namespace to act in. Zero or a negative value
	// means the caller's own namespace.
	NetNS netns.NsHandle
	// Priority of the ingress base chains; zero means DefaultPriority.
	Priority int32
}
