package lab

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Scenario is one classic LVS lab.
type Scenario struct {
	Name    string // uvs-lab up NAME
	Seed    string // where the seeds describe it
	Mode    string // forwarding method(s)
	Title   string // one line, for list
	Summary string // one paragraph
	Diagram string // the topology
	Sched   string // default scheduler (the seed's)

	build func(b *builder)
	// run sends the scenario's traffic; nil means n requests cycling
	// through the plan's requests.
	run func(ctx context.Context, s *session, n int) error
}

// Scenarios returns every scenario, in the order list prints them.
func Scenarios() []*Scenario { return scenarios }

// LookupScenario finds a scenario by name.
func LookupScenario(name string) (*Scenario, bool) {
	i := slices.IndexFunc(scenarios, func(s *Scenario) bool { return s.Name == name })
	if i < 0 {
		return nil, false
	}
	return scenarios[i], true
}

// Addresses are the seeds' (seed 000's five-host lab, seed 001's https lab):
// all private ranges, and only ever inside the lab's namespaces.
const (
	clientIP   = "192.168.10.6"
	client2IP  = "192.168.10.16"
	routerOut  = "192.168.10.200"
	routerLAN  = "10.0.0.200"
	dip        = "10.0.0.8"
	rs1IP      = "10.0.0.7"
	rs2IP      = "10.0.0.17"
	drVIP      = "10.0.0.100"
	multiVIP   = "172.16.0.100"
	multiNet   = "172.16.0.200"
	natPublic  = "192.168.10.8"
	natVIP     = "192.168.10.100"
	tun1Net    = "172.16.1.200"
	tun2Net    = "172.16.2.200"
	tunRS1     = "172.16.1.7"
	tunRS2     = "172.16.2.17"
	httpsVIP   = "192.168.1.99"
	httpsDIP   = "192.168.1.8"
	httpsRS1   = "192.168.1.107"
	httpsRS2   = "192.168.1.109"
	httpsCli1  = "192.168.1.106"
	httpsCli2  = "192.168.1.116"
	fwmarkMark = "3"
)

var scenarios = append([]*Scenario{
	{
		Name: "nat", Seed: "000 (LVS-NAT 案例), 003", Mode: "NAT (-m)", Sched: "wrr",
		Title: "two-legged director; the real servers' gateway is the director",
		Summary: "LVS-NAT: the director has a leg on the client's network and one on the real servers' " +
			"private LAN. It rewrites the destination of each request to the chosen real server, and the " +
			"real server's reply must come back through the director (its default gateway) to get the VIP " +
			"back as its source. Port mapping works; the director carries all traffic both ways.",
		Diagram: `
  client 192.168.10.6 ─── eth1 [director] eth0 ─── [switch] ─┬─ rs1 10.0.0.7   gw 10.0.0.8
                          192.168.10.8    10.0.0.8            └─ rs2 10.0.0.17  gw 10.0.0.8
  VIP 192.168.10.100:80 (answered by uvsd; the seed puts it on the director's eth1)`,
		build: func(b *builder) {
			b.node("client", "director", "rs1", "rs2")
			b.client, b.director = "client", "director"
			b.vip, b.port = netip.MustParseAddr(natVIP), 80
			b.veth("client", "eth0", "director", "eth1")
			b.lan("switch", [2]string{"director", "eth0"}, [2]string{"rs1", "eth0"}, [2]string{"rs2", "eth0"})
			b.addr("client", "eth0", clientIP+"/24")
			b.addr("client", "eth0", client2IP+"/24")
			b.addr("director", "eth1", natPublic+"/24")
			b.addr("director", "eth0", dip+"/24")
			b.server("rs1", "rs1", rs1IP)
			b.server("rs2", "rs2", rs2IP)
			for _, rs := range b.servers {
				b.addr(rs.Role, "eth0", rs.Addr.String()+"/24")
			}
			b.note("the real servers' default gateway must be the director (seed 000: 这里的网关必须指向lvs的ip地址)")
			for _, rs := range b.servers {
				b.ipCmd(rs.Role, true, "route", "add", "default", "via", dip)
				b.httpd(rs.Role, rs.Name, false)
			}
			b.note("NAT forwards between the legs")
			b.sysctl("director", true, "net.ipv4.ip_forward=1")
			b.uvsd()
			b.service([]string{"-t", natVIP + ":80"}, func(realServer) string { return "-m" }, true)
			b.clients = []netip.Addr{netip.MustParseAddr(clientIP)}
			b.requests = []Request{{Src: b.clients[0], URL: "http://" + natVIP + "/"}}
			b.hops = natHops
		},
	},
	{
		Name: "dr", Seed: "000 (LVS-DR 模式案例, five hosts)", Mode: "DR (-g)", Sched: "rr",
		Title: "direct routing: client, router, director and two real servers; VIP on lo",
		Summary: "LVS-DR: the director only rewrites the destination MAC address of each request to the " +
			"chosen real server's; the real server has the VIP on lo, so it accepts the packet and answers " +
			"the client directly through the router. arp_ignore=1 and arp_announce=2 keep the real servers " +
			"from answering ARP for the VIP, so the router sends every request to the director.",
		Diagram: `
  client 192.168.10.6 ─── [router] ─── [switch] ─┬─ director 10.0.0.8         gw 10.0.0.200
     gw 192.168.10.200    .10.200 | 10.0.0.200   ├─ rs1 10.0.0.7   lo 10.0.0.100/32  gw 10.0.0.200
                                                 └─ rs2 10.0.0.17  lo 10.0.0.100/32  gw 10.0.0.200
  VIP 10.0.0.100:80`,
		build: func(b *builder) { buildDR(b, drVIP, false) },
	},
	{
		Name: "health-check", Seed: "004 (LVS案例分享: keepalived TCP_CHECK), 002", Mode: "DR (-g), keepalived", Sched: "rr",
		Title: "keepalived's TCP_CHECK takes a dead web server out of the pool and puts it back",
		Summary: "Seed 004's case study: keepalived in front of two web servers, each with a TCP_CHECK. uvsd " +
			"runs the keepalived.conf (uvsd --keepalived): it installs the service and probes port 80 of each real " +
			"server every delay_loop. The run stops rs1's web server while the client keeps sending requests: the " +
			"ones scheduled to rs1 fail until the checker has failed connect and retry, then uvsd removes rs1 " +
			"(keepalived's log line) and rs2 answers everything; when rs1 serves again the checker adds it back.",
		Diagram: `
  client 192.168.10.6 ─── [router] ─── [switch] ─┬─ director 10.0.0.8  uvsd --keepalived keepalived.conf
     gw 192.168.10.200    .10.200 | 10.0.0.200   ├─ rs1 10.0.0.7   lo 10.0.0.100/32  web :80  <- TCP_CHECK
                                                 └─ rs2 10.0.0.17  lo 10.0.0.100/32  web :80  <- TCP_CHECK
  VIP 10.0.0.100:80`,
		build: func(b *builder) { buildDR(b, drVIP, true) },
		run:   runHealthCheck,
	},
	{
		Name: "dr-multisubnet", Seed: "000 (多网段的DR模型)", Mode: "DR (-g)", Sched: "wrr",
		Title: "direct routing with the VIP in another subnet than the real servers",
		Summary: "The same five hosts as dr, but the VIP 172.16.0.100 is in a subnet the router adds as a " +
			"second address on its LAN leg (seed 000: nmcli ... +ipv4.addresses 172.16.0.200/24). The router " +
			"ARPs for the VIP on the LAN; the director answers, the real servers (VIP on lo, ARP-quiet) " +
			"answer the client directly from the VIP.",
		Diagram: `
  client 192.168.10.6 ─── [router] ─── [switch] ─┬─ director 10.0.0.8           gw 10.0.0.200
     gw 192.168.10.200    10.0.0.200             ├─ rs1 10.0.0.7   lo 172.16.0.100/32
                          172.16.0.200           └─ rs2 10.0.0.17  lo 172.16.0.100/32
  VIP 172.16.0.100:80`,
		build: func(b *builder) { buildDR(b, multiVIP, false) },
	},
	{
		Name: "tun", Seed: "002, 000 (LVS-TUNNEL 隧道模式案例)", Mode: "TUN (-i)", Sched: "rr",
		Title: "IP tunnelling to real servers in other subnets; uvs-rs decapsulates",
		Summary: "LVS-TUN: the director wraps each request in an outer IPv4 header (DIP → RIP) and the real " +
			"servers, each in its own subnet behind the router, unwrap it and answer the client directly from " +
			"the VIP. This kernel has no ipip module, so uvs-rs does what `ifconfig tunl0 VIP` does in the seeds: " +
			"it decapsulates in userspace into a TUN device that owns the VIP, and sets arp_ignore, arp_announce " +
			"and rp_filter=0.",
		Diagram: `
  client 192.168.10.6 ─── [router] ─┬─ 10.0.0.200   ── director 10.0.0.8     VIP 10.0.0.100:80
     gw 192.168.10.200              ├─ 172.16.1.200 ── rs1 172.16.1.7  (uvs-rs tun: VIP)
                                    └─ 172.16.2.200 ── rs2 172.16.2.17 (uvs-rs tun: VIP)`,
		build: func(b *builder) { buildRouted(b, false) },
	},
	{
		Name: "fullnat", Seed: "000 (fullnat模式特点)", Mode: "FULLNAT (-b)", Sched: "rr",
		Title: "full NAT: the real servers need no route back to the client",
		Summary: "FULLNAT rewrites both addresses: the real server sees the request coming from the " +
			"director's local address (DIP) and answers it; the director rewrites the reply back to VIP → " +
			"client. The real servers here have no default route at all, which would break NAT.",
		Diagram: `
  client 192.168.10.6 ─── eth1 [director] eth0 ─── [switch] ─┬─ rs1 10.0.0.7   (no default route)
                          192.168.10.8    10.0.0.8            └─ rs2 10.0.0.17  (no default route)
  VIP 192.168.10.100:80`,
		build: func(b *builder) {
			b.node("client", "director", "rs1", "rs2")
			b.client, b.director = "client", "director"
			b.vip, b.port = netip.MustParseAddr(natVIP), 80
			b.veth("client", "eth0", "director", "eth1")
			b.lan("switch", [2]string{"director", "eth0"}, [2]string{"rs1", "eth0"}, [2]string{"rs2", "eth0"})
			b.addr("client", "eth0", clientIP+"/24")
			b.addr("director", "eth1", natPublic+"/24")
			b.addr("director", "eth0", dip+"/24")
			b.server("rs1", "rs1", rs1IP)
			b.server("rs2", "rs2", rs2IP)
			b.note("the real servers get no default route: only the source rewrite brings replies back")
			for _, rs := range b.servers {
				b.addr(rs.Role, "eth0", rs.Addr.String()+"/24")
				b.httpd(rs.Role, rs.Name, false)
			}
			b.uvsd()
			b.service([]string{"-t", natVIP + ":80"}, func(realServer) string { return "-b" }, true)
			b.clients = []netip.Addr{netip.MustParseAddr(clientIP)}
			b.requests = []Request{{Src: b.clients[0], URL: "http://" + natVIP + "/"}}
			b.hops = natHops
		},
	},
	{
		Name: "dr-tun-mixed", Seed: "002 (配置 LVS/DR 和 LVS/TUN 混合模式)", Mode: "DR (-g) + TUN (-i)", Sched: "rr",
		Title: "one service, one real server by direct routing, one through a tunnel",
		Summary: "Seed 002's mixed service: rs1 shares the director's LAN and is reached by direct routing " +
			"(VIP on lo), rs2 lives in another subnet and is reached through an IPIP tunnel (uvs-rs). The " +
			"forwarding method is per real server, so both serve the same VIP; ipvsadm -Ln shows Route and Tunnel.",
		Diagram: `
  client 192.168.10.6 ─── [router] ─┬─ 10.0.0.200 ── [switch] ─┬─ director 10.0.0.8   VIP 10.0.0.100:80
     gw 192.168.10.200              │                          └─ rs1 10.0.0.7   (DR: lo 10.0.0.100/32)
                                    └─ 172.16.2.200 ── rs2 172.16.2.17           (TUN: uvs-rs)`,
		build: func(b *builder) { buildRouted(b, true) },
	},
	{
		Name: "fwmark-http-https", Seed: "001 (防火墙标记 http/https 统一调度)", Mode: "DR (-g), fwmark", Sched: "sh",
		Title: "iptables MARK on ports 80 and 443, one fwmark service, https with the lab's certificate",
		Summary: "Seed 001: http and https must be scheduled together so a user who logs in over https " +
			"stays on the server that has their session. iptables marks both ports to the VIP with 3 in " +
			"mangle PREROUTING, and one fwmark service (-f 3) balances the mark with sh (source hashing), or " +
			"rr with -p (--sched rr --persist N). Both real servers share one key and certificate from a " +
			"private CA the lab makes, as the seed does with openssl.",
		Diagram: `
  client 192.168.1.106, .116 ─── [switch] ─┬─ director 192.168.1.8
                                           ├─ rs1 192.168.1.107  lo 192.168.1.99/32  http :80, https :443
                                           └─ rs2 192.168.1.109  lo 192.168.1.99/32  http :80, https :443
  VIP 192.168.1.99, ports 80 and 443 marked 3`,
		build: func(b *builder) {
			buildHTTPSLAN(b)
			b.note("mark http and https to the VIP alike, so one service schedules both")
			b.cmd("director", true, "iptables", "-t", "mangle", "-A", "PREROUTING", "-d", httpsVIP, "-p", "tcp",
				"-m", "multiport", "--dports", "443,80", "-j", "MARK", "--set-mark", fwmarkMark)
			b.uvsd()
			b.service([]string{"-f", fwmarkMark}, func(realServer) string { return "-g" }, false)
			for _, c := range b.clients {
				b.requests = append(b.requests, Request{Src: c, URL: "https://" + httpsVIP + "/"},
					Request{Src: c, URL: "http://" + httpsVIP + "/"})
			}
		},
	},
	{
		Name: "persistence", Seed: "001 (lvs persistence), 000 (LVS持久连接)", Mode: "DR (-g), -p", Sched: "rr",
		Title: "PPC, PCC (port 0) and PFWMC persistence, and the template visibly expiring",
		Summary: "Persistence keeps a client on one real server for -p seconds whatever the scheduler says, " +
			"through a template connection (ipvsadm -Lnc shows it). PPC: one template per service port. " +
			"PCC: a port-0 service, one template for every port of the VIP. PFWMC: a fwmark service, one " +
			"template for every marked port. The run shows each, then waits for the template to expire and " +
			"shows the client being scheduled afresh.",
		Diagram: `
  client 192.168.1.106, .116 ─── [switch] ─┬─ director 192.168.1.8
                                           ├─ rs1 192.168.1.107  lo 192.168.1.99/32  :80 :8080, https :443
                                           └─ rs2 192.168.1.109  lo 192.168.1.99/32  :80 :8080, https :443
  VIP 192.168.1.99`,
		build: func(b *builder) {
			buildHTTPSLAN(b)
			b.uvsd()
			b.note("short timeouts so the lab can show templates expiring: tcp 900 s, tcpfin 1 s, udp 300 s")
			b.ipvsadm("--set", "900", "1", "300")
			b.note("PCC to start with; uvs-lab run persistence shows PPC, PCC and PFWMC in turn")
			if b.p.Persist == 0 {
				b.p.Persist = DefaultPersist
			}
			b.service([]string{"-t", httpsVIP + ":0"}, func(realServer) string { return "-g" }, false)
			b.requests = []Request{{Src: b.clients[0], URL: "http://" + httpsVIP + "/"}}
		},
		run: runPersistence,
	},
}, append(haScenarios, syncScenario, ecmpScenario, ecmpFullNATScenario)...) // the HA ones: ha.go, ha_break.go; sersync: sync.go; ECMP: ecmp.go

// natHops are the NAT and FULLNAT capture points. uvsd sends through a
// packet socket that bypasses the qdisc, so its output is captured at the
// other end of the wire (the switch port), not on its own interface.
var natHops = []hop{{"client eth0", "client", "eth0"}, {"director eth1 (in)", "director", "eth1"},
	{"switch p-director (the director's wire, both ways)", "switch", "p-director"}, {"rs1 eth0", "rs1", "eth0"}, {"rs2 eth0", "rs2", "eth0"}}

// buildDR is seed 000's five-host DR lab; vip decides the plain or the
// multi-subnet variant; keepalived runs uvsd with keepalived.conf (seed
// 004) instead of configuring it with ipvsadm.
func buildDR(b *builder, vip string, keepalived bool) {
	b.node("client", "router", "director", "rs1", "rs2")
	b.client, b.director = "client", "director"
	b.vip, b.port = netip.MustParseAddr(vip), 80
	b.veth("client", "eth0", "router", "eth1")
	b.lan("switch", [2]string{"router", "eth0"}, [2]string{"director", "eth0"}, [2]string{"rs1", "eth0"}, [2]string{"rs2", "eth0"})
	b.addr("client", "eth0", clientIP+"/24")
	b.ipCmd("client", false, "route", "add", "default", "via", routerOut)
	b.addr("router", "eth1", routerOut+"/24")
	b.addr("router", "eth0", routerLAN+"/24")
	b.addr("director", "eth0", dip+"/24")
	b.ipCmd("director", false, "route", "add", "default", "via", routerLAN)
	b.server("rs1", "rs1", rs1IP)
	b.server("rs2", "rs2", rs2IP)
	b.sysctl("router", true, "net.ipv4.ip_forward=1")
	if vip == multiVIP {
		b.note("the router gets a second subnet on its LAN leg; the VIP lives there")
		b.ipCmd("router", true, "addr", "add", multiNet+"/24", "dev", "eth0")
	}
	b.note("real servers: gateway the router, never the director; the VIP on lo, ARP-quiet (lvs-dr-rs.sh start)")
	for _, rs := range b.servers {
		b.addr(rs.Role, "eth0", rs.Addr.String()+"/24")
		b.ipCmd(rs.Role, true, "route", "add", "default", "via", routerLAN)
		b.drRealServer(rs.Role, vip)
		b.httpd(rs.Role, rs.Name, false)
	}
	b.note("the seed also puts the VIP on the director's lo; uvsd answers ARP for the VIP itself")
	if keepalived {
		b.note("keepalived.conf as seed 004 writes it, with short checker timers so the lab shows them within seconds")
		b.keepalivedUVSD(keepalivedConf(b, vip))
	} else {
		b.uvsd()
		b.service([]string{"-t", vip + ":80"}, func(realServer) string { return "-g" }, false)
	}
	b.clients = []netip.Addr{netip.MustParseAddr(clientIP)}
	b.requests = []Request{{Src: b.clients[0], URL: "http://" + vip + "/"}}
	b.hops = []hop{{"client eth0", "client", "eth0"}, {"router eth0 (to the LAN)", "router", "eth0"},
		{"director eth0", "director", "eth0"}, {"switch p-director (the director's wire, both ways)", "switch", "p-director"},
		{"rs1 eth0", "rs1", "eth0"}, {"rs2 eth0", "rs2", "eth0"}}
	b.lanProbe = hop{"router eth0", "router", "eth0"}
}

// buildRouted is seed 002's TUN lab, each real server in its own subnet
// behind the router; mixed moves rs1 onto the director's LAN, reached by
// direct routing.
func buildRouted(b *builder, mixed bool) {
	b.node("client", "router", "director", "rs1", "rs2")
	b.client, b.director = "client", "director"
	b.vip, b.port = netip.MustParseAddr(drVIP), 80
	b.veth("client", "eth0", "router", "eth1")
	b.addr("client", "eth0", clientIP+"/24")
	b.ipCmd("client", false, "route", "add", "default", "via", routerOut)
	b.addr("router", "eth1", routerOut+"/24")
	if mixed {
		b.lan("switch", [2]string{"router", "eth0"}, [2]string{"director", "eth0"}, [2]string{"rs1", "eth0"})
	} else {
		b.veth("router", "eth0", "director", "eth0")
	}
	b.addr("router", "eth0", routerLAN+"/24")
	b.addr("director", "eth0", dip+"/24")
	b.ipCmd("director", false, "route", "add", "default", "via", routerLAN)
	if mixed {
		b.server("rs1", "rs1", rs1IP)
		b.addr("rs1", "eth0", rs1IP+"/24")
	} else {
		b.veth("router", "eth2", "rs1", "eth0")
		b.addr("router", "eth2", tun1Net+"/24")
		b.server("rs1", "rs1", tunRS1)
		b.addr("rs1", "eth0", tunRS1+"/24")
	}
	b.veth("router", "eth3", "rs2", "eth0")
	b.addr("router", "eth3", tun2Net+"/24")
	b.server("rs2", "rs2", tunRS2)
	b.addr("rs2", "eth0", tunRS2+"/24")
	b.sysctl("router", true, "net.ipv4.ip_forward=1")
	for _, rs := range b.servers {
		gw := routerLAN
		if rs.Addr.String() == tunRS1 {
			gw = tun1Net
		} else if rs.Addr.String() == tunRS2 {
			gw = tun2Net
		}
		b.ipCmd(rs.Role, true, "route", "add", "default", "via", gw)
		if mixed && rs.Name == "rs1" {
			b.note("rs1 is on the director's LAN: direct routing, VIP on lo (lvs-dr-rs.sh start)")
			b.drRealServer(rs.Role, drVIP)
		} else {
			b.note("%s is in another subnet: tunnelling; no ipip module here, so uvs-rs decapsulates (seed: ifconfig tunl0 %s/32 up, rp_filter=0)", rs.Name, drVIP)
			b.uvsRS(rs.Role, drVIP)
		}
		b.httpd(rs.Role, rs.Name, false)
	}
	b.uvsd()
	b.service([]string{"-t", drVIP + ":80"}, func(rs realServer) string {
		if mixed && rs.Name == "rs1" {
			return "-g"
		}
		return "-i"
	}, false)
	b.clients = []netip.Addr{netip.MustParseAddr(clientIP)}
	b.requests = []Request{{Src: b.clients[0], URL: "http://" + drVIP + "/"}}
	b.hops = []hop{{"client eth0", "client", "eth0"}, {"router eth0 (the director's wire, both ways)", "router", "eth0"},
		{"director eth0", "director", "eth0"}, {"rs1 eth0", "rs1", "eth0"}, {"rs2 eth0", "rs2", "eth0"}}
	if mixed {
		b.hops = []hop{{"client eth0", "client", "eth0"}, {"switch p-router (router side, both ways)", "switch", "p-router"},
			{"director eth0", "director", "eth0"}, {"switch p-director (the director's wire, both ways)", "switch", "p-director"},
			{"rs1 eth0", "rs1", "eth0"}, {"rs2 eth0", "rs2", "eth0"}}
		b.lanProbe = hop{"router eth0", "router", "eth0"}
	}
}

// buildHTTPSLAN is seed 001's LAN: client, director and two DR real
// servers serving http and https with one shared certificate.
func buildHTTPSLAN(b *builder) {
	b.node("client", "director", "rs1", "rs2")
	b.client, b.director = "client", "director"
	b.vip, b.port = netip.MustParseAddr(httpsVIP), 80
	b.needCert = true
	b.lan("switch", [2]string{"client", "eth0"}, [2]string{"director", "eth0"}, [2]string{"rs1", "eth0"}, [2]string{"rs2", "eth0"})
	b.addr("client", "eth0", httpsCli1+"/24")
	b.addr("client", "eth0", httpsCli2+"/24")
	b.addr("director", "eth0", httpsDIP+"/24")
	b.server("rs1", "rs1", httpsRS1)
	b.server("rs2", "rs2", httpsRS2)
	b.note("both real servers serve https with the same key and certificate (seed 001), from the lab's CA: curl --cacert @ca https://%s/", httpsVIP)
	b.note("real servers: the VIP on lo, ARP-quiet (lvs-dr-rs.sh start)")
	for _, rs := range b.servers {
		b.addr(rs.Role, "eth0", rs.Addr.String()+"/24")
		b.drRealServer(rs.Role, httpsVIP)
		b.httpd(rs.Role, rs.Name, true, ":8080")
	}
	b.clients = []netip.Addr{netip.MustParseAddr(httpsCli1), netip.MustParseAddr(httpsCli2)}
	b.hops = []hop{{"client eth0", "client", "eth0"}, {"director eth0", "director", "eth0"},
		{"switch p-director (the director's wire, both ways)", "switch", "p-director"}, {"rs1 eth0", "rs1", "eth0"}, {"rs2 eth0", "rs2", "eth0"}}
	b.lanProbe = hop{"client eth0", "client", "eth0"}
}

// SchedulerNote explains, for list, how to choose a scheduler.
func SchedulerNote(names []string) string {
	return fmt.Sprintf("schedulers (--sched): %s", strings.Join(names, " "))
}
