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
//
// A router namespace (rtr) is the real servers' other way to the client, as
// in an LVS-DR or LVS-TUN deployment, where the real server's gateway must
// not be the director so that replies do not pass through it:
//
//	cli c1 198.18.32.2/24 ─veth─ r0 198.18.32.1/24  rtr  rN 198.18.32+N.1/24 ─veth─ gN 198.18.32+N.2/24 beN
//
// The client sends nothing that way (its default route stays the director);
// it only receives the replies. A real server's default route points at the
// director (NAT, FULLNAT, kernel forwarding, nftables DNAT: the replies must
// be rewritten there) unless a candidate switches it to the router
// (ReplyViaRouter).
var (
	VIP        = netip.MustParseAddr("198.18.0.10")
	ClientAddr = netip.MustParseAddr("198.18.1.2")
	DirAddr    = netip.MustParseAddr("198.18.1.1")
	// ClientRtrAddr is c1's address (the client's link to the router),
	// RtrAddr r0's.
	ClientRtrAddr = netip.MustParseAddr("198.18.32.2")
	RtrAddr       = netip.MustParseAddr("198.18.32.1")
	FillBase      = netip.MustParseAddr("198.18.64.0")
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
	ClientMAC    = mac(1, 2)
	DirMAC       = mac(1, 1)
	ClientRtrMAC = mac(32, 2)
	RtrMAC       = mac(32, 1)
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
	// The real server's link to the router: Uplink (gN, in NS) with
	// UplinkAddr, RtrDev (rN, in the router) with RtrAddr.
	Uplink, RtrDev       string
	UplinkAddr, RtrAddr  netip.Addr
	UplinkMAC, RtrDevMAC [6]byte
}

// Topo names the namespaces of one benchmark topology.
type Topo struct {
	Prefix        string
	Cli, Dir, Rtr string
	Backends      []Backend
}

// NewTopo names a topology with n real servers; every namespace name
// starts with prefix.
func NewTopo(prefix string, n int) *Topo {
	t := &Topo{Prefix: prefix, Cli: prefix + "cli", Dir: prefix + "dir", Rtr: prefix + "rtr"}
	for i := 1; i <= n; i++ {
		b, u := byte(i+1), byte(32+i)
		t.Backends = append(t.Backends, Backend{
			N: i, NS: fmt.Sprintf("%sbe%d", prefix, i),
			Dev: fmt.Sprintf("b%d", i), DirDev: fmt.Sprintf("d%d", i),
			Addr:    netip.AddrFrom4([4]byte{198, 18, b, 2}),
			DirAddr: netip.AddrFrom4([4]byte{198, 18, b, 1}),
			MAC:     mac(b, 2), DirMAC: mac(b, 1),
			Uplink: fmt.Sprintf("g%d", i), RtrDev: fmt.Sprintf("r%d", i),
			UplinkAddr: netip.AddrFrom4([4]byte{198, 18, u, 2}),
			RtrAddr:    netip.AddrFrom4([4]byte{198, 18, u, 1}),
			UplinkMAC:  mac(u, 2), RtrDevMAC: mac(u, 1),
		})
	}
	return t
}

// Namespaces lists every namespace of the topology, the client's first.
func (t *Topo) Namespaces() []string {
	ns := []string{t.Cli, t.Dir}
	for _, b := range t.Backends {
		ns = append(ns, b.NS)
	}
	return append(ns, t.Rtr)
}

// Reply paths: which way a real server's replies reach the client.
const (
	// ReplyViaDirector: the real servers' default gateway is the director.
	ReplyViaDirector = "director"
	// ReplyViaRouter: their default gateway is the router namespace, so
	// replies do not cross the director (LVS-DR, LVS-TUN).
	ReplyViaRouter = "router"
)

// ReplyPathDesc says in words what a reply path means, for the results.
func ReplyPathDesc(path string) string {
	switch path {
	case ReplyViaRouter:
		return "replies via the router namespace (real servers' gateway), not the director"
	case ReplyViaDirector:
		return "replies via the director (real servers' gateway)"
	}
	return ""
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
