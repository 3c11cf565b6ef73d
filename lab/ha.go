package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// The high-availability scenarios: two directors, each running keepalived's
// VRRP half (Debian's keepalived, `keepalived --vrrp`) and uvsd reading the
// same keepalived.conf (uvsd --keepalived), which serves a VRRP instance's
// VIPs only while keepalived has put them on this node, and synchronises
// its connections to the other director (lvs_sync_daemon).

// VRRP timers of every HA scenario (seed 004): advert_int 1, MASTER 100,
// BACKUP 99.
const (
	haAdvertInt  = time.Second
	haMasterPrio = 100
	haBackupPrio = 99
)

// masterDownInterval is VRRP's (RFC 3768 §6.1, keepalived's
// ms_down_timer): a backup declares the master down after
// 3 × advert_int + skew_time without an advertisement, skew_time =
// (256 − priority) × advert_int / 256.
func masterDownInterval(advert time.Duration, prio int) time.Duration {
	return 3*advert + time.Duration(256-prio)*advert/256
}

// haVRRP is one vrrp_instance.
type haVRRP struct {
	Name string     // VI_1
	Dev  string     // interface on each director
	VRID int        // virtual_router_id
	VIP  netip.Addr // virtual_ipaddress
	Pass string     // auth_pass
}

// haDirector is one of the two directors.
type haDirector struct {
	Role  string // namespace role
	Addr  string // its address on the LAN the VIP lives on (for the diagrams and notes)
	State string // MASTER or BACKUP, as configured
	Prio  int
}

// haService is one virtual_server of the shared keepalived.conf.
type haService struct {
	Port    uint16
	Kind    string // lb_kind: DR or NAT
	Persist int    // persistence_timeout (0: none)
}

// haSpec is what an HA scenario builds and what its run needs.
type haSpec struct {
	directors [2]haDirector // [0] is configured MASTER
	vrrp      []haVRRP      // [0] carries the services' VIP
	group     string        // vrrp_sync_group name ("" = none)
	syncDev   string        // lvs_sync_daemon's interface
	services  []haService   // [0] carries the flows and the transfer
	// persistPort is the service the persistent client uses.
	persistPort uint16
	// seedTimers keeps seed 004's TCP_CHECK timers as written; otherwise
	// the lab's short ones (health-check).
	seedTimers bool
	routerID   string
	// neighbour is whose neighbour table shows the VIP's MAC.
	neighbour hop
	// cables are the switch ports that connect a director: pulled to
	// fail it.
	cables func(role string) []hop
	// twoNode: every director is also a real server (seed 004).
	twoNode bool
	// ipvsadmWay: keepalived only moves the VIPs (no virtual_server, no
	// lvs_sync_daemon); uvsd runs --rules and the sync daemons are
	// started by hand.
	ipvsadmWay bool
}

func (h *haSpec) master() haDirector { return h.directors[0] }
func (h *haSpec) backup() haDirector { return h.directors[1] }

func (h *haSpec) confPath(role string) string { return "@dir/keepalived-" + role + ".conf" }

// The addresses of the HA scenarios: seed 004's two machines as written;
// the director pairs use the lab's DR and NAT plans with a second director.
const (
	s4A      = "192.168.0.236"
	s4B      = "192.168.0.238"
	s4VIP    = "192.168.0.239"
	s4Client = "192.168.0.6"
	s4Port   = 8898
	dip2     = "10.0.0.9"
	natDIP2  = "192.168.10.9"
	natGWVIP = "10.0.0.254"
	haPPort  = 8080 // the pairs' persistent service
	// haThirdClient is a third client address of the pairs (the
	// exercises' second failover).
	haThirdClient = "192.168.10.26"
)

// s4Clients are the client's addresses in seed 004's LAN: with
// persistence_timeout 50 every connection of one address goes to one
// node, so the lab uses four to reach both.
var s4Clients = []string{s4Client, "192.168.0.16", "192.168.0.26", "192.168.0.36"}

var haTwoNode = &haSpec{
	directors: [2]haDirector{{Role: "nodea", Addr: s4A, State: "MASTER", Prio: haMasterPrio},
		{Role: "nodeb", Addr: s4B, State: "BACKUP", Prio: haBackupPrio}},
	vrrp:       []haVRRP{{Name: "VI_1", Dev: "eth0", VRID: 51, VIP: netip.MustParseAddr(s4VIP), Pass: "1111"}},
	syncDev:    "eth0",
	services:   []haService{{Port: s4Port, Kind: "DR", Persist: 50}},
	seedTimers: true,
	routerID:   "LVS_SUNINGPOSINF_PRD",
	neighbour:  hop{"client eth0", "client", "eth0"},
	cables:     func(role string) []hop { return []hop{{"switch p-" + role, "switch", "p-" + role}} },
	twoNode:    true,
}

// haTwoNodeIPVSADM is seed 004's two nodes the ipvsadm way.
var haTwoNodeIPVSADM = func() *haSpec {
	h := *haTwoNode
	h.ipvsadmWay = true
	return &h
}()

var haPairDR = &haSpec{
	directors: [2]haDirector{{Role: "dira", Addr: dip, State: "MASTER", Prio: haMasterPrio},
		{Role: "dirb", Addr: dip2, State: "BACKUP", Prio: haBackupPrio}},
	vrrp:        []haVRRP{{Name: "VI_1", Dev: "eth0", VRID: 51, VIP: netip.MustParseAddr(drVIP), Pass: "1111"}},
	syncDev:     "eth0",
	services:    []haService{{Port: 80, Kind: "DR"}, {Port: haPPort, Kind: "DR", Persist: 50}},
	persistPort: haPPort,
	routerID:    "LVS_UVS_LAB",
	neighbour:   hop{"router eth0", "router", "eth0"},
	cables:      func(role string) []hop { return []hop{{"switch p-" + role, "switch", "p-" + role}} },
}

var haPairNAT = &haSpec{
	directors: [2]haDirector{{Role: "dira", Addr: natPublic, State: "MASTER", Prio: haMasterPrio},
		{Role: "dirb", Addr: natDIP2, State: "BACKUP", Prio: haBackupPrio}},
	vrrp: []haVRRP{{Name: "VI_1", Dev: "eth1", VRID: 51, VIP: netip.MustParseAddr(natVIP), Pass: "1111"},
		{Name: "VI_GW", Dev: "eth0", VRID: 52, VIP: netip.MustParseAddr(natGWVIP), Pass: "2222"}},
	group:       "VG_1",
	syncDev:     "eth0",
	services:    []haService{{Port: 80, Kind: "NAT"}, {Port: haPPort, Kind: "NAT", Persist: 50}},
	persistPort: haPPort,
	routerID:    "LVS_UVS_LAB",
	neighbour:   hop{"client eth0", "client", "eth0"},
	cables: func(role string) []hop {
		return []hop{{"outside switch p-" + role, "swout", "p-" + role}, {"inside switch p-" + role, "swin", "p-" + role}}
	},
}

var haScenarios = []*Scenario{
	{
		Name: "keepalived", Seed: "004 (案例分享: two machines, each director and real server)", Mode: "DR (-g), VRRP, sync", Sched: "rr",
		Title: "seed 004's two-node keepalived: VRRP moves the VIP, sync keeps the connections; pull A's cable",
		Summary: "Seed 004's case study as written: machines A (.236) and B (.238) each run keepalived (VRRP VI_1, " +
			"MASTER 100 / BACKUP 99, advert_int 1, PASS) and the director (virtual_server .239 8898, DR, rr, " +
			"persistence_timeout 50, TCP_CHECK) and each is also a real server (the VIP on lo, realserver.sh). " +
			"keepalived runs its VRRP half (keepalived --vrrp); uvsd reads the same file and serves the VIP only " +
			"on the node keepalived gave it to. The run shows the master, the VIP's MAC in the client's neighbour " +
			"table, who answered, then pulls A's cable (the seed's test: 断开A的eth0网线) while a long transfer, a " +
			"persistent client and a few hundred connections run, and shows what moved and what survived.",
		Diagram: `
  client 192.168.0.6 (.16 .26 .36) ─── [switch] ─┬─ A 192.168.0.236  keepalived MASTER 100 + uvsd; web :8898; lo 192.168.0.239/32
                                                 └─ B 192.168.0.238  keepalived BACKUP 99  + uvsd; web :8898; lo 192.168.0.239/32
  VIP 192.168.0.239:8898 (VRRP VI_1 on eth0), DR rr persistence_timeout 50, TCP_CHECK; sync on eth0 (224.0.0.81:8848)`,
		build: func(b *builder) { buildTwoNode(b, haTwoNode, true) },
		run:   func(ctx context.Context, s *session, n int) error { return runHA(ctx, s, haTwoNode, n, true) },
	},
	{
		Name: "keepalived-ipvsadm", Seed: "004 (案例分享), the ipvsadm way", Mode: "DR (-g), VRRP, sync", Sched: "rr",
		Title: "seed 004's two nodes the ipvsadm way: keepalived moves the VIP, ipvsadm rules and --start-daemon by hand",
		Summary: "The same two machines as keepalived, configured the other classic way: keepalived --vrrp only moves " +
			"the VIP (its file has no virtual_server), each uvsd loads ipvsadm rules (uvsd --rules) and the sync daemons " +
			"are started with ipvsadm --start-daemon (in production from keepalived's notify_master/notify_backup " +
			"scripts). Both machines are real servers, so both run with --sysctl backup_only=1: the backup is no " +
			"director while its backup sync daemon runs (uvs-lab break ha-backup-only-off shows why).",
		Diagram: `
  client 192.168.0.6 (.16 .26 .36) ─── [switch] ─┬─ A 192.168.0.236  keepalived MASTER 100; uvsd --rules, master sync daemon; web :8898
                                                 └─ B 192.168.0.238  keepalived BACKUP 99;  uvsd --rules, backup sync daemon; web :8898
  VIP 192.168.0.239:8898 (VRRP VI_1 on eth0), -s rr -p 50, -g; --sysctl backup_only=1 on both`,
		build: func(b *builder) { buildTwoNode(b, haTwoNodeIPVSADM, true) },
		run:   func(ctx context.Context, s *session, n int) error { return runHA(ctx, s, haTwoNodeIPVSADM, n, false) },
	},
	{
		Name: "keepalived-dr", Seed: "002 (LVS 和 Keepalived), 004", Mode: "DR (-g), VRRP, sync", Sched: "rr",
		Title: "a pair of directors in front of two real servers (DR); the master dies, the backup carries on",
		Summary: "Seed 002's keepalived role: two directors (MASTER 100, BACKUP 99) share VIP 10.0.0.100 by VRRP " +
			"in front of two DR real servers; the master synchronises its connections to the backup. The run " +
			"pulls the master's cable while a long transfer, a persistent client and a few hundred connections " +
			"run, and measures the VIP's move against VRRP's master-down interval and how many connections survive.",
		Diagram: `
  client 192.168.10.6 ─── [router] ─── [switch] ─┬─ dira 10.0.0.8   keepalived MASTER 100 + uvsd
     gw 192.168.10.200    10.0.0.200             ├─ dirb 10.0.0.9   keepalived BACKUP 99  + uvsd
                                                 ├─ rs1 10.0.0.7    lo 10.0.0.100/32  web :80 :8080
                                                 └─ rs2 10.0.0.17   lo 10.0.0.100/32  web :80 :8080
  VIP 10.0.0.100 (VRRP VI_1 on eth0): :80 rr, :8080 rr persistence_timeout 50; sync on eth0`,
		build: func(b *builder) { buildPairDR(b, haPairDR, true) },
		run:   func(ctx context.Context, s *session, n int) error { return runHA(ctx, s, haPairDR, n, true) },
	},
	{
		Name: "keepalived-nat", Seed: "002 (LVS 和 Keepalived), 003", Mode: "NAT (-m), VRRP, sync", Sched: "rr",
		Title: "a pair of NAT directors: the VIP and the real servers' gateway move together (vrrp_sync_group)",
		Summary: "NAT needs the real servers' replies to come back through the director that holds the " +
			"connection, so their gateway is a second VRRP address on the inside (VI_GW), tied to the VIP's " +
			"instance by a vrrp_sync_group: both move together. The run pulls both of the master's cables.",
		Diagram: `
  client 192.168.10.6 ─── [swout] ─┬─ eth1 dira 192.168.10.8  eth0 10.0.0.8 ─┬─ [swin] ─┬─ rs1 10.0.0.7   gw 10.0.0.254
                                   └─ eth1 dirb 192.168.10.9  eth0 10.0.0.9 ─┘          └─ rs2 10.0.0.17  gw 10.0.0.254
  VIP 192.168.10.100 (VI_1 on eth1) and gateway 10.0.0.254 (VI_GW on eth0) in vrrp_sync_group VG_1; :80 rr, :8080 -p 50`,
		build: func(b *builder) { buildPairNAT(b, haPairNAT, true) },
		run:   func(ctx context.Context, s *session, n int) error { return runHA(ctx, s, haPairNAT, n, true) },
	},
}

// buildTwoNode is seed 004's layout: the client and machines A and B on
// one LAN; each machine a real server (VIP on lo, ARP-quiet) and a
// director (keepalived --vrrp and uvsd --keepalived).
func buildTwoNode(b *builder, h *haSpec, sync bool) {
	a, bb := h.directors[0].Role, h.directors[1].Role
	b.node("client", a, bb)
	b.client, b.director = "client", a
	b.vip, b.port = h.vrrp[0].VIP, h.services[0].Port
	b.lan("switch", [2]string{"client", "eth0"}, [2]string{a, "eth0"}, [2]string{bb, "eth0"})
	for _, c := range s4Clients {
		b.addr("client", "eth0", c+"/24")
	}
	b.server("A", a, s4A)
	b.server("B", bb, s4B)
	b.addr(a, "eth0", s4A+"/24")
	b.addr(bb, "eth0", s4B+"/24")
	b.note("each machine is a real server: realserver.sh start (the VIP on lo:0, arp_ignore=1, arp_announce=2)")
	for _, rs := range b.servers {
		b.drRealServer(rs.Role, s4VIP)
		b.httpd(rs.Role, rs.Name, false, fmt.Sprintf(":%d", s4Port))
	}
	haDirectors(b, h, sync)
	for _, c := range s4Clients {
		b.clients = append(b.clients, netip.MustParseAddr(c))
	}
	b.requests = []Request{{Src: b.clients[0], URL: fmt.Sprintf("http://%s:%d/", s4VIP, s4Port)}}
	b.hops = []hop{{"client eth0", "client", "eth0"}, {"switch p-" + a, "switch", "p-" + a}, {"switch p-" + bb, "switch", "p-" + bb}}
	b.lanProbe = hop{"client eth0", "client", "eth0"}
}

// buildPairDR is the dr scenario with a second director.
func buildPairDR(b *builder, h *haSpec, sync bool) {
	a, bb := h.directors[0].Role, h.directors[1].Role
	b.node("client", "router", a, bb, "rs1", "rs2")
	b.client, b.director = "client", a
	b.vip, b.port = h.vrrp[0].VIP, h.services[0].Port
	b.veth("client", "eth0", "router", "eth1")
	b.lan("switch", [2]string{"router", "eth0"}, [2]string{a, "eth0"}, [2]string{bb, "eth0"},
		[2]string{"rs1", "eth0"}, [2]string{"rs2", "eth0"})
	b.addr("client", "eth0", clientIP+"/24")
	b.addr("client", "eth0", client2IP+"/24")
	b.addr("client", "eth0", haThirdClient+"/24")
	b.ipCmd("client", false, "route", "add", "default", "via", routerOut)
	b.addr("router", "eth1", routerOut+"/24")
	b.addr("router", "eth0", routerLAN+"/24")
	b.sysctl("router", false, "net.ipv4.ip_forward=1")
	for _, d := range h.directors {
		b.addr(d.Role, "eth0", d.Addr+"/24")
		b.ipCmd(d.Role, false, "route", "add", "default", "via", routerLAN)
	}
	b.server("rs1", "rs1", rs1IP)
	b.server("rs2", "rs2", rs2IP)
	b.note("real servers: gateway the router; the VIP on lo, ARP-quiet (lvs-dr-rs.sh start)")
	for _, rs := range b.servers {
		b.addr(rs.Role, "eth0", rs.Addr.String()+"/24")
		b.ipCmd(rs.Role, false, "route", "add", "default", "via", routerLAN)
		b.drRealServer(rs.Role, drVIP)
		b.httpd(rs.Role, rs.Name, false, fmt.Sprintf(":%d", haPPort))
	}
	haDirectors(b, h, sync)
	b.clients = []netip.Addr{netip.MustParseAddr(clientIP), netip.MustParseAddr(client2IP)}
	b.requests = []Request{{Src: b.clients[0], URL: "http://" + drVIP + "/"}}
	b.hops = []hop{{"client eth0", "client", "eth0"}, {"router eth0 (to the LAN)", "router", "eth0"},
		{"switch p-" + a, "switch", "p-" + a}, {"switch p-" + bb, "switch", "p-" + bb}}
	b.lanProbe = hop{"router eth0", "router", "eth0"}
}

// buildPairNAT is the nat scenario with a second director: the client's
// LAN outside, the real servers' LAN inside, their gateway a VRRP address.
func buildPairNAT(b *builder, h *haSpec, sync bool) {
	a, bb := h.directors[0].Role, h.directors[1].Role
	b.node("client", a, bb, "rs1", "rs2")
	b.client, b.director = "client", a
	b.vip, b.port = h.vrrp[0].VIP, h.services[0].Port
	b.lan("swout", [2]string{"client", "eth0"}, [2]string{a, "eth1"}, [2]string{bb, "eth1"})
	b.lan("swin", [2]string{a, "eth0"}, [2]string{bb, "eth0"}, [2]string{"rs1", "eth0"}, [2]string{"rs2", "eth0"})
	b.addr("client", "eth0", clientIP+"/24")
	b.addr("client", "eth0", client2IP+"/24")
	b.addr(a, "eth1", natPublic+"/24")
	b.addr(a, "eth0", dip+"/24")
	b.addr(bb, "eth1", natDIP2+"/24")
	b.addr(bb, "eth0", dip2+"/24")
	b.server("rs1", "rs1", rs1IP)
	b.server("rs2", "rs2", rs2IP)
	b.note("the real servers' gateway is VI_GW's address %s, which only the master holds", natGWVIP)
	for _, rs := range b.servers {
		b.addr(rs.Role, "eth0", rs.Addr.String()+"/24")
		b.ipCmd(rs.Role, true, "route", "add", "default", "via", natGWVIP)
		b.httpd(rs.Role, rs.Name, false, fmt.Sprintf(":%d", haPPort))
	}
	b.note("NAT forwards between the legs")
	for _, d := range h.directors {
		b.sysctl(d.Role, true, "net.ipv4.ip_forward=1")
	}
	haDirectors(b, h, sync)
	b.clients = []netip.Addr{netip.MustParseAddr(clientIP), netip.MustParseAddr(client2IP)}
	b.requests = []Request{{Src: b.clients[0], URL: "http://" + natVIP + "/"}}
	b.hops = []hop{{"client eth0", "client", "eth0"}, {"outside switch p-" + a, "swout", "p-" + a},
		{"outside switch p-" + bb, "swout", "p-" + bb}, {"rs1 eth0", "rs1", "eth0"}, {"rs2 eth0", "rs2", "eth0"}}
	b.lanProbe = hop{"client eth0", "client", "eth0"}
}

// haDirectors writes each director's keepalived.conf and starts uvsd on it,
// then keepalived's VRRP half. sync adds the lvs_sync_daemon line.
func haDirectors(b *builder, h *haSpec, sync bool) {
	if h.ipvsadmWay {
		haDirectorsIPVSADM(b, h, true)
		return
	}
	b.keepalived = true
	b.note("the same keepalived.conf on both directors but for state and priority (seed 004: 请注意机器上修改)")
	if sync {
		b.note("lvs_sync_daemon is written \"@uvs lvs_sync_daemon ...\": keepalived (config-id = the host name) skips the line " +
			"(Debian's keepalived --vrrp crashes on it without the ip_vs module), uvsd reads it")
	}
	m, bk := h.master(), h.backup()
	b.steps = append(b.steps, step{kind: stepFile, role: m.Role, show: true, argv: []string{h.confPath(m.Role), haConf(b, h, m, sync)}},
		step{kind: stepFile, role: bk.Role, argv: []string{h.confPath(bk.Role), haConf(b, h, bk, sync)}})
	b.note("%s's file (keepalived-%s.conf, next to it) is the same but for \"state %s\" and \"priority %d\"", bk.Role, bk.Role, bk.State, bk.Prio)
	for _, d := range h.directors {
		b.steps = append(b.steps, step{kind: stepDaemon, role: d.Role, show: true, name: "uvsd " + d.Role, ready: readyServing,
			argv: []string{"uvsd", "--keepalived", h.confPath(d.Role), "--trace", "@dir/trace-" + d.Role + ".jsonl",
				"--conns", "65536", "--log-level", "info"}})
	}
	b.note("keepalived runs its VRRP half only (--vrrp; its checker half needs the ip_vs module): in the foreground (-n), " +
		"logging to its output (-l -D), with its own pid files (-p, -r) so that two run on one host")
	keepalivedSteps(b, h)
}

// haRules is the ipvsadm way's table (ipvsadm-save format).
func haRules(b *builder, h *haSpec) string {
	var c strings.Builder
	for _, svc := range h.services {
		vs := netip.AddrPortFrom(h.vrrp[0].VIP, svc.Port).String()
		fmt.Fprintf(&c, "-A -t %s -s %s", vs, b.p.Sched)
		if svc.Persist > 0 {
			fmt.Fprintf(&c, " -p %d", svc.Persist)
		}
		c.WriteString("\n")
		for _, rs := range b.servers {
			fmt.Fprintf(&c, "-a -t %s -r %s -g -w %s\n", vs, netip.AddrPortFrom(rs.Addr, svc.Port), b.weight(rs.Name))
		}
	}
	return c.String()
}

// uvsdIPVSADMArgs is the ipvsadm way's uvsd command line on role.
func uvsdIPVSADMArgs(role string, backupOnly bool) []string {
	argv := []string{"uvsd", "--rules", "@dir/rules", "--trace", "@dir/trace-" + role + ".jsonl", "--conns", "65536", "--log-level", "info"}
	if backupOnly {
		argv = append(argv, "--sysctl", "backup_only=1")
	}
	return argv
}

// haSyncID is the syncid the ipvsadm way uses (keepalived's default for
// lvs_sync_daemon: the instance's virtual_router_id).
func haSyncID(h *haSpec) string { return strconv.Itoa(h.vrrp[0].VRID) }

// haDirectorsIPVSADM: keepalived only moves the VIP; uvsd loads ipvsadm
// rules; the sync daemons are started by hand.
func haDirectorsIPVSADM(b *builder, h *haSpec, backupOnly bool) {
	b.keepalived = true // up does not reconfigure it
	m, bk := h.master(), h.backup()
	b.note("the ipvsadm way: keepalived.conf holds only the VRRP instance; the table is ipvsadm rules; the sync daemons are started by hand")
	b.steps = append(b.steps, step{kind: stepFile, role: m.Role, show: true, argv: []string{h.confPath(m.Role), haConf(b, h, m, false)}},
		step{kind: stepFile, role: bk.Role, argv: []string{h.confPath(bk.Role), haConf(b, h, bk, false)}},
		step{kind: stepFile, role: m.Role, show: true, argv: []string{"@dir/rules", haRules(b, h)}})
	b.note("%s's keepalived file (keepalived-%s.conf) is the same but for \"state %s\" and \"priority %d\"; the rules are the same on both", bk.Role, bk.Role, bk.State, bk.Prio)
	b.note("both machines are real servers: backup_only=1, so a backup is no director while its backup sync daemon runs")
	for _, d := range h.directors {
		b.steps = append(b.steps, step{kind: stepDaemon, role: d.Role, show: true, name: "uvsd " + d.Role, ready: readyServing,
			argv: uvsdIPVSADMArgs(d.Role, backupOnly)})
	}
	b.cmd(m.Role, true, "ipvsadm", "--start-daemon", "master", "--mcast-interface", h.syncDev, "--syncid", haSyncID(h))
	b.cmd(bk.Role, true, "ipvsadm", "--start-daemon", "backup", "--mcast-interface", h.syncDev, "--syncid", haSyncID(h))
	keepalivedSteps(b, h)
}

// keepalivedSteps starts keepalived on every director; up is done when
// VRRP has elected a master.
func keepalivedSteps(b *builder, h *haSpec) {
	for i, d := range h.directors {
		st := keepalivedStep(d.Role, h.confPath(d.Role))
		if i == len(h.directors)-1 {
			st.started = func(ctx context.Context, s *session, p Proc) error {
				if err := keepalivedStarted(ctx, s, p); err != nil {
					return err
				}
				_, err := s.waitMaster(ctx, h)
				return err
			}
		}
		b.steps = append(b.steps, st)
	}
}

// keepalivedStep starts keepalived's VRRP half on role.
func keepalivedStep(role, conf string) step {
	return step{kind: stepDaemon, role: role, show: true, name: "keepalived " + role,
		argv: []string{"keepalived", "--vrrp", "-n", "-l", "-D", "-f", conf,
			"-p", "@dir/keepalived-" + role + ".pid", "-r", "@dir/keepalived-" + role + "-vrrp.pid"},
		started: keepalivedStarted}
}

// keepalivedStarted waits for keepalived's VRRP child (its pid file and
// "Startup complete" in the log) and records it before the parent, so that
// down stops the parent first (which stops the child) and then anything
// left.
func keepalivedStarted(ctx context.Context, s *session, p Proc) error {
	pidFile := s.expand("@dir/keepalived-" + p.Role + "-vrrp.pid")
	var child Proc
	check := func() error {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return fmt.Errorf("no VRRP child yet (%s): %w", pidFile, err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			return fmt.Errorf("%s: %w", pidFile, err)
		}
		c, ok := adoptProc(pid, p.Role)
		if !ok {
			return fmt.Errorf("VRRP child %d is gone", pid)
		}
		if lg, _ := os.ReadFile(p.Log); !strings.Contains(string(lg), "Startup complete") {
			return fmt.Errorf("keepalived has not logged \"Startup complete\"")
		}
		c.Name, c.Log = "keepalived vrrp "+p.Role, p.Log
		child = c
		return nil
	}
	stop := s.l.prog.start("waiting for keepalived in " + p.Role)
	err := waitReady(ctx, p, 15*time.Second, check)
	stop()
	if err != nil {
		return err
	}
	i := len(s.st.Procs) - 1
	s.st.Procs = append(s.st.Procs[:i], child, s.st.Procs[i])
	return s.l.saveState(s.st)
}

// haConf is the keepalived.conf of director d.
func haConf(b *builder, h *haSpec, d haDirector, sync bool) string {
	var c strings.Builder
	c.WriteString("! Configuration File for keepalived\n\nglobal_defs {\n")
	if h.twoNode {
		c.WriteString("    notification_email {\n        acassen@firewall.loc\n        failover@firewall.loc\n        sysadmin@firewall.loc\n    }\n" +
			"    notification_email_from Alexandre.Cassen@firewall.loc\n    smtp_server 172.0.0.1\n    smtp_connect_timeout 30\n")
	}
	fmt.Fprintf(&c, "    router_id %s\n", h.routerID)
	if sync {
		fmt.Fprintf(&c, "    ! read by uvsd only (keepalived skips lines of another config-id)\n    @uvs lvs_sync_daemon %s %s\n", h.syncDev, h.vrrp[0].Name)
	}
	c.WriteString("}\n\n")
	if h.group != "" {
		fmt.Fprintf(&c, "vrrp_sync_group %s {\n    group {\n", h.group)
		for _, v := range h.vrrp {
			fmt.Fprintf(&c, "        %s\n", v.Name)
		}
		c.WriteString("    }\n}\n\n")
	}
	for _, v := range h.vrrp {
		fmt.Fprintf(&c, "vrrp_instance %s {\n    state %s\n    interface %s\n    virtual_router_id %d\n    priority %d\n    advert_int %d\n"+
			"    authentication {\n        auth_type PASS\n        auth_pass %s\n    }\n    virtual_ipaddress {\n        %s\n    }\n}\n\n",
			v.Name, d.State, v.Dev, v.VRID, d.Prio, int(haAdvertInt/time.Second), v.Pass, v.VIP)
	}
	if h.ipvsadmWay {
		return c.String()
	}
	secs := func(t time.Duration) int { return int(t / time.Second) }
	for _, svc := range h.services {
		delay := secs(kaDelayLoop)
		if h.seedTimers {
			delay = 6
		}
		fmt.Fprintf(&c, "virtual_server %s %d {\n    delay_loop %d\n    lb_algo %s\n    lb_kind %s\n", h.vrrp[0].VIP, svc.Port, delay, b.p.Sched, svc.Kind)
		if svc.Persist > 0 {
			fmt.Fprintf(&c, "    persistence_timeout %d\n", svc.Persist)
		}
		c.WriteString("    protocol TCP\n")
		for _, rs := range b.servers {
			fmt.Fprintf(&c, "\n    real_server %s %d {\n        weight %s\n        TCP_CHECK {\n", rs.Addr, svc.Port, b.weight(rs.Name))
			if h.seedTimers {
				fmt.Fprintf(&c, "            connect_timeout 10\n            ! the seed's nb_get_retry 3: keepalived 2 calls it retry\n"+
					"            retry 3\n            delay_before_retry 3\n")
			} else {
				fmt.Fprintf(&c, "            connect_timeout %d\n            retry %d\n            delay_before_retry %d\n",
					secs(kaConnectTimeout), kaRetry, secs(kaDelayBeforeRetry))
			}
			fmt.Fprintf(&c, "            connect_port %d\n        }\n    }\n", svc.Port)
		}
		c.WriteString("}\n\n")
	}
	return c.String()
}
