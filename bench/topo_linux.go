package bench

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Up creates the namespaces, links, addresses, routes, static neighbours,
// sysctls, RPS masks and the real servers' sink counters. rpsDir is the CPU
// mask (hex) for the director's, the router's and the real servers' receive
// processing, rpsCli the client's ("" leaves RPS off). The real servers'
// default route is the director (ReplyVia switches it).
func (t *Topo) Up(rpsCli, rpsDir string) (err error) {
	defer func() {
		if err != nil {
			_ = t.Down()
		}
	}()
	for _, ns := range t.Namespaces() {
		if _, err := run(cmdTimeout, "ip", "netns", "add", ns); err != nil {
			return err
		}
	}
	var cmds [][]string
	ip := func(ns string, a ...string) { cmds = append(cmds, append([]string{"ip", "-n", ns}, a...)) }
	sysctl := func(ns, kv string) {
		cmds = append(cmds, []string{"ip", "netns", "exec", ns, "sysctl", "-q", "-w", kv})
	}
	veth := func(ans, a string, amac [6]byte, bns, b string, bmac [6]byte) {
		cmds = append(cmds, []string{"ip", "link", "add", a, "netns", ans, "address", macString(amac),
			"type", "veth", "peer", "name", b, "netns", bns, "address", macString(bmac)})
		ip(ans, "link", "set", a, "up")
		ip(bns, "link", "set", b, "up")
	}
	for _, ns := range t.Namespaces() {
		ip(ns, "link", "set", "lo", "up")
		sysctl(ns, "net.ipv4.conf.all.rp_filter=0")
		sysctl(ns, "net.ipv4.conf.default.rp_filter=0")
		sysctl(ns, "net.ipv6.conf.all.disable_ipv6=1")
	}
	veth(t.Cli, "c0", ClientMAC, t.Dir, "d0", DirMAC)
	ip(t.Cli, "addr", "add", ClientAddr.String()+"/24", "dev", "c0")
	ip(t.Cli, "route", "add", "default", "via", DirAddr.String())
	ip(t.Cli, "neigh", "replace", DirAddr.String(), "lladdr", macString(DirMAC), "dev", "c0", "nud", "permanent")
	sysctl(t.Cli, "net.ipv4.ip_local_port_range=1024 65535")
	sysctl(t.Cli, "net.ipv4.tcp_tw_reuse=1")
	ip(t.Dir, "addr", "add", DirAddr.String()+"/24", "dev", "d0")
	ip(t.Dir, "neigh", "replace", ClientAddr.String(), "lladdr", macString(ClientMAC), "dev", "d0", "nud", "permanent")
	ip(t.Dir, "route", "add", "198.18.64.0/18", "via", ClientAddr.String())
	sysctl(t.Dir, "net.ipv4.ip_forward=1")
	// The router: the client's second link, and a route back to it.
	veth(t.Cli, "c1", ClientRtrMAC, t.Rtr, "r0", RtrMAC)
	ip(t.Cli, "addr", "add", ClientRtrAddr.String()+"/24", "dev", "c1")
	ip(t.Cli, "neigh", "replace", RtrAddr.String(), "lladdr", macString(RtrMAC), "dev", "c1", "nud", "permanent")
	ip(t.Rtr, "addr", "add", RtrAddr.String()+"/24", "dev", "r0")
	ip(t.Rtr, "neigh", "replace", ClientRtrAddr.String(), "lladdr", macString(ClientRtrMAC), "dev", "r0", "nud", "permanent")
	ip(t.Rtr, "route", "add", "198.18.1.0/24", "via", ClientRtrAddr.String())
	sysctl(t.Rtr, "net.ipv4.ip_forward=1")
	for _, b := range t.Backends {
		veth(t.Dir, b.DirDev, b.DirMAC, b.NS, b.Dev, b.MAC)
		ip(t.Dir, "addr", "add", b.DirAddr.String()+"/24", "dev", b.DirDev)
		ip(t.Dir, "neigh", "replace", b.Addr.String(), "lladdr", macString(b.MAC), "dev", b.DirDev, "nud", "permanent")
		ip(b.NS, "addr", "add", b.Addr.String()+"/24", "dev", b.Dev)
		ip(b.NS, "route", "add", "default", "via", b.DirAddr.String())
		ip(b.NS, "neigh", "replace", b.DirAddr.String(), "lladdr", macString(b.DirMAC), "dev", b.Dev, "nud", "permanent")
		veth(t.Rtr, b.RtrDev, b.RtrDevMAC, b.NS, b.Uplink, b.UplinkMAC)
		ip(t.Rtr, "addr", "add", b.RtrAddr.String()+"/24", "dev", b.RtrDev)
		ip(t.Rtr, "neigh", "replace", b.UplinkAddr.String(), "lladdr", macString(b.UplinkMAC), "dev", b.RtrDev, "nud", "permanent")
		ip(b.NS, "addr", "add", b.UplinkAddr.String()+"/24", "dev", b.Uplink)
		ip(b.NS, "neigh", "replace", b.RtrAddr.String(), "lladdr", macString(b.RtrDevMAC), "dev", b.Uplink, "nud", "permanent")
		sysctl(b.NS, "net.core.somaxconn=8192")
		sysctl(b.NS, "net.ipv4.tcp_max_syn_backlog=8192")
	}
	for _, c := range cmds {
		if _, err := run(cmdTimeout, c[0], c[1:]...); err != nil {
			return err
		}
	}
	if err := t.SetRPS(rpsCli, rpsDir); err != nil {
		return err
	}
	// The veths facing the director take frames an XDP program redirects
	// to them (uvsd's fast path) only with GRO on, as a NIC's driver
	// would take them: the same for every candidate.
	gro := [][]string{{t.Cli, "c0"}}
	for _, b := range t.Backends {
		gro = append(gro, []string{b.NS, b.Dev})
	}
	for _, g := range gro {
		if _, err := run(cmdTimeout, "ip", "netns", "exec", g[0], "ethtool", "-K", g[1], "gro", "on"); err != nil {
			return fmt.Errorf("gro on %s in %s: %w", g[1], g[0], err)
		}
	}
	for _, b := range t.Backends {
		if _, err := runIn(cmdTimeout, []byte(sinkRules(b.Dev)), "ip", "netns", "exec", b.NS, "nft", "-f", "-"); err != nil {
			return fmt.Errorf("sink on %s: %w", b.NS, err)
		}
	}
	return nil
}

// SetRPS writes the RPS CPU masks of c0 and c1 (cli) and of every
// director, router and real-server interface (dir). "0" turns RPS off.
// The router's receive (rN, the replies from the real servers) thus runs on
// the director's core, where the director's forwarding of the replies ran
// when they crossed it: a reply path via the router gains no CPU.
func (t *Topo) SetRPS(cli, dir string) error {
	w := setRPS
	for _, d := range []string{"c0", "c1"} {
		if err := w(t.Cli, d, cli); err != nil {
			return err
		}
	}
	devs := [][2]string{{t.Dir, "d0"}, {t.Rtr, "r0"}}
	for _, b := range t.Backends {
		devs = append(devs, [2]string{t.Dir, b.DirDev}, [2]string{b.NS, b.Dev}, [2]string{t.Rtr, b.RtrDev}, [2]string{b.NS, b.Uplink})
	}
	for _, d := range devs {
		if err := w(d[0], d[1], dir); err != nil {
			return err
		}
	}
	return nil
}

// ReplyVia sets every real server's default route: ReplyViaDirector (its
// link to the director) or ReplyViaRouter (its link to the router).
func (t *Topo) ReplyVia(path string) error {
	for _, b := range t.Backends {
		var gw, dev string
		switch path {
		case ReplyViaDirector:
			gw, dev = b.DirAddr.String(), b.Dev
		case ReplyViaRouter:
			gw, dev = b.RtrAddr.String(), b.Uplink
		default:
			return fmt.Errorf("reply path %q: want %q or %q", path, ReplyViaDirector, ReplyViaRouter)
		}
		if _, err := run(cmdTimeout, "ip", "-n", b.NS, "route", "replace", "default", "via", gw, "dev", dev); err != nil {
			return err
		}
	}
	return nil
}

// setRPS writes dev's RPS CPU mask in namespace ns ("" or "0": off). ip
// netns exec mounts the namespace's own /sys for the command.
func setRPS(ns, dev, mask string) error {
	if mask == "" {
		mask = "0"
	}
	_, err := nsRun(cmdTimeout, ns, -1, "sh", "-c", fmt.Sprintf("echo %s > /sys/class/net/%s/queues/rx-0/rps_cpus", mask, dev))
	return err
}

// sinkRules is the real server's UDP sink: count and drop, at ingress, the
// load on UDPPort, and the IPIP frames carrying it (LVS-TUN: counted before
// decapsulation, so the userspace decapsulator is not measured).
func sinkRules(dev string) string {
	return fmt.Sprintf(`table netdev bench {
  counter sinkudp {
  }
  counter sinkipip {
  }
  chain ing {
    type filter hook ingress device "%s" priority 0;
    udp dport %d counter name "sinkudp" drop
    ip protocol 4 @nh,232,8 17 @nh,336,16 %d counter name "sinkipip" drop
  }
}
`, dev, UDPPort, UDPPort)
}

// Down deletes the namespaces (and with them every link). Errors for
// namespaces that do not exist are ignored.
func (t *Topo) Down() error {
	var errs []error
	for _, ns := range t.Namespaces() {
		if _, err := os.Stat("/run/netns/" + ns); err != nil {
			continue
		}
		if _, err := run(cmdTimeout, "ip", "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// LinkStats returns dev's receive counters in namespace ns.
func LinkStats(ns, dev string) (rxPackets, rxDropped uint64, err error) {
	s, err := linkStats(ns, dev)
	if err != nil {
		return 0, 0, err
	}
	return s.RxPackets, s.RxDropped, nil
}

// linkStats returns dev's counters in namespace ns.
func linkStats(ns, dev string) (*netlink.LinkStatistics, error) {
	h, err := netns.GetFromName(ns)
	if err != nil {
		return nil, fmt.Errorf("namespace %s: %w", ns, err)
	}
	defer h.Close()
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		return nil, fmt.Errorf("netlink in %s: %w", ns, err)
	}
	defer nh.Close()
	l, err := nh.LinkByName(dev)
	if err != nil {
		return nil, fmt.Errorf("%s in %s: %w", dev, ns, err)
	}
	s := l.Attrs().Statistics
	if s == nil {
		return nil, fmt.Errorf("%s in %s: no statistics", dev, ns)
	}
	return s, nil
}

// leftoverNamespaces lists namespaces whose names start with prefix.
func leftoverNamespaces(prefix string) []string {
	ents, err := os.ReadDir("/run/netns")
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}
