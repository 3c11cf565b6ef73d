package bench

import (
	"fmt"
	"net/netip"
)

// The benchmark topology (RFC 2544 benchmarking addresses, fixed MACs,
// static neighbours everywhere, so no ARP is involved):
//
//	cli                         dir (director)                         beN (real servers)
//	c0 198.18.1.2/24 ─veth─ d0 198.18.1.1/24   dN 198.18.N+1.1/24 ─veth─ bN 198.18.N+1.2/24
//	default via 198.18.1.1                                              default via 198.18.N+1.1
//
// The VIP 198.18.0.10 is on no interface: the client routes it to the
// director. Conn-table fills use sources in 198.18.64.0/18 (raw frames, not
// configured anywhere).
var (
	VIP        = netip.MustParseAddr("198.18.0.10")
	ClientAddr = netip.MustParseAddr("198.18.1.2")
	DirAddr    = netip.MustParseAddr("198.18.1.1")
	FillBase   = netip.MustParseAddr("198.18.64.0")
)

// Ports of the services every candidate exposes on the VIP.
const (
	UDPPort   = 9000
	HTTPPort  = 80
	IperfPort = 5201
)

// mac returns 02:00:00:00:net:host.
func mac(net, host byte) [6]byte { return [6]byte{2, 0, 0, 0, net, host} }

// ClientMAC and DirMAC are c0's and d0's addresses.
var (
	ClientMAC = mac(1, 2)
	DirMAC    = mac(1, 1)
)

// Backend is one real server as the director sees it.
type Backend struct {
	N       int    // 1-based
	NS      string // namespace
	Dev     string // bN, in NS
	DirDev  string // dN, in the director
	Addr    netip.Addr
	DirAddr netip.Addr // dN's address: the real server's gateway
	MAC     [6]byte
	DirMAC  [6]byte
}

// Topo names the namespaces of one benchmark topology.
type Topo struct {
	Prefix   string
	Cli, Dir string
	Backends []Backend
}

// NewTopo names a topology with n real servers; every namespace name
// starts with prefix.
func NewTopo(prefix string, n int) *Topo {
	t := &Topo{Prefix: prefix, Cli: prefix + "cli", Dir: prefix + "dir"}
	for i := 1; i <= n; i++ {
		b := byte(i + 1)
		t.Backends = append(t.Backends, Backend{
			N: i, NS: fmt.Sprintf("%sbe%d", prefix, i),
			Dev: fmt.Sprintf("b%d", i), DirDev: fmt.Sprintf("d%d", i),
			Addr:    netip.AddrFrom4([4]byte{198, 18, b, 2}),
			DirAddr: netip.AddrFrom4([4]byte{198, 18, b, 1}),
			MAC:     mac(b, 2), DirMAC: mac(b, 1),
		})
	}
	return t
}

// Namespaces lists every namespace of the topology.
func (t *Topo) Namespaces() []string {
	ns := []string{t.Cli, t.Dir}
	for _, b := range t.Backends {
		ns = append(ns, b.NS)
	}
	return ns
}

// BackendAddrs lists the real servers' addresses.
func (t *Topo) BackendAddrs() []netip.Addr {
	var a []netip.Addr
	for _, b := range t.Backends {
		a = append(a, b.Addr)
	}
	return a
}

func macString(m [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}
