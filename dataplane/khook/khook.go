package khook

import (
	"errors"

	"github.com/vishvananda/netns"

	"github.com/uvs-lb/uvs/ownership"
)

// TableName is the name of the nftables netdev table khook owns.
const TableName = "uvs"

// DefaultPriority is the ingress priority of the base chains: early, so that
// no other ingress chain acts on a frame uvsd owns first.
const DefaultPriority = -500

// ErrUnsupported is returned on systems without nftables.
var ErrUnsupported = errors.New("khook: not supported on this system")

// ErrTableBusy is returned when the "uvs" table belongs to another live
// process (another uvsd in the namespace).
var ErrTableBusy = errors.New("the nftables table \"" + TableName + "\" belongs to another running process (another uvsd in this namespace?)")

// Spec is the complete desired state of the hooks: every interface uvsd serves
// and what it owns on it. Apply replaces whatever was installed before.
type Spec struct {
	Interfaces []Interface
	// Owned is what uvsd owns on every interface without an Owned of its
	// own (nil: nothing).
	Owned *ownership.Set
}

// Interface is one served interface. Set Ifindex or Name (both may be set;
// Ifindex wins and the name is looked up).
type Interface struct {
	Ifindex int
	Name    string
	// Owned is what uvsd owns on this interface; nil means Spec.Owned (or,
	// for SetInterfaces, the Set given to SetOwnership).
	Owned *ownership.Set
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
	// StateDir holds the per-namespace files recording the sysctls'
	// values before uvsd changed them ("": DefaultStateDir).
	StateDir string
}

// DefaultStateDir is where the sysctls' original values are kept: one file
// per network namespace, sysctl-INODE.json, INODE being the namespace's
// (as ls -iL /proc/self/ns/net shows it).
const DefaultStateDir = "/run/uvs"
