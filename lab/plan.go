package lab

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// stepKind says where and how a step runs.
type stepKind uint8

const (
	stepHost   stepKind = iota // a command on the host (namespaces, veth pairs)
	stepNS                     // a command inside a namespace
	stepDaemon                 // a background process inside a namespace
	stepNote                   // a comment printed for the student
	stepFile                   // a file written on a node: argv is {path, content}
)

// readyKind is how the lab knows a daemon is ready.
type readyKind uint8

const (
	readyNone    readyKind = iota
	readyServing           // uvsd: its control socket answers ipvsadm -Ln
	readyTCP               // a TCP port answers on 127.0.0.1 inside the namespace
)

// step is one thing up does. Lesson steps (show) are printed as a student
// would type them, "[role]# argv"; plumbing steps only with --verbose.
type step struct {
	kind  stepKind
	role  string
	argv  []string
	show  bool
	name  string    // daemons: what it is
	ready readyKind // daemons
	port  int       // readyTCP
	// started, if set, runs once a daemon is started and recorded, in
	// place of ready: it waits for it and records what it forks
	// (keepalived's VRRP child).
	started func(ctx context.Context, s *session, p Proc) error
}

// realServer is a real server of a scenario.
type realServer struct {
	Name string
	Role string
	Addr netip.Addr // RIP
}

// hop is a capture point: an interface of a namespace.
type hop struct {
	Label string // "client eth0", "director eth1 (in)"
	Role  string
	Dev   string
}

// Request is one request the client sends.
type Request struct {
	Src netip.Addr // client source address
	URL string
}

// plan is a scenario instantiated with parameters: what up does, and what
// run sends.
type plan struct {
	roles    []string // namespaces, in creation order
	steps    []step
	servers  []realServer
	vip      netip.Addr
	port     uint16 // the VIP's main port
	client   string // role the requests come from
	director string // role uvsd runs in
	clients  []netip.Addr
	requests []Request // one round; run cycles through it
	hops     []hop
	needCert bool
	macs     map[string]string // "role/dev" -> MAC
	nodeIdx  map[string]int
	ifIdx    map[string]int
	// break exercises
	lanProbe hop // where an ARP probe for the VIP is sent from (DR)
	// keepalived: uvsd runs keepalived.conf (@keepalived), which holds
	// the services; ipvsadm does not configure them.
	keepalived bool
}

// builder collects a plan.
type builder struct {
	*plan
	p    Params
	opts *Options
}

func newBuilder(p Params, o *Options) *builder {
	return &builder{plan: &plan{macs: map[string]string{}, nodeIdx: map[string]int{}, ifIdx: map[string]int{}}, p: p, opts: o}
}

// node declares namespaces.
func (b *builder) node(roles ...string) {
	for _, r := range roles {
		b.nodeIdx[r] = len(b.roles) + 1
		b.roles = append(b.roles, r)
	}
}

// mac gives every interface a fixed, readable address:
// 02:00:00:00:<node>:<interface>.
func (b *builder) mac(role, dev string) string {
	k := role + "/" + dev
	if m, ok := b.macs[k]; ok {
		return m
	}
	b.ifIdx[role]++
	m := fmt.Sprintf("02:00:00:00:%02x:%02x", b.nodeIdx[role], b.ifIdx[role])
	b.macs[k] = m
	return m
}

// veth connects role1/dev1 to role2/dev2. The kernel's default offloads stay
// on (TSO, GSO, checksum offload), as on a real host: uvsd takes GSO
// super-frames through PACKET_VNET_HDR.
func (b *builder) veth(r1, d1, r2, d2 string) {
	b.steps = append(b.steps, step{kind: stepHost, argv: []string{"ip", "link", "add", d1, "address", b.mac(r1, d1),
		"netns", "@" + r1, "type", "veth", "peer", "name", d2, "address", b.mac(r2, d2), "netns", "@" + r2}})
	for _, e := range [][2]string{{r1, d1}, {r2, d2}} {
		b.ipCmd(e[0], false, "link", "set", e[1], "up")
	}
}

// lan puts members (role, dev) on one Ethernet segment: a bridge br0 in the
// switch namespace, one port per member.
func (b *builder) lan(sw string, members ...[2]string) {
	if _, ok := b.nodeIdx[sw]; !ok {
		b.node(sw)
		b.ipCmd(sw, false, "link", "add", "br0", "type", "bridge")
		b.ipCmd(sw, false, "link", "set", "br0", "up")
	}
	for _, m := range members {
		port := "p-" + m[0]
		b.veth(m[0], m[1], sw, port)
		b.ipCmd(sw, false, "link", "set", port, "master", "br0")
	}
}

func (b *builder) ipCmd(role string, show bool, args ...string) {
	b.cmd(role, show, append([]string{"ip"}, args...)...)
}

func (b *builder) addr(role, dev, cidr string) { b.ipCmd(role, false, "addr", "add", cidr, "dev", dev) }

func (b *builder) cmd(role string, show bool, argv ...string) {
	b.steps = append(b.steps, step{kind: stepNS, role: role, argv: argv, show: show})
}

func (b *builder) sysctl(role string, show bool, kv ...string) {
	for _, s := range kv {
		b.cmd(role, show, "sysctl", "-w", s)
	}
}

func (b *builder) note(format string, args ...any) {
	b.steps = append(b.steps, step{kind: stepNote, argv: []string{fmt.Sprintf(format, args...)}})
}

// httpd starts the lab's real server in role, answering name.
func (b *builder) httpd(role, name string, tlsPort bool, extra ...string) {
	argv := []string{"uvs-lab", "httpd", "--name", name, "--listen", strings.Join(append([]string{":80"}, extra...), ",")}
	if tlsPort {
		argv = append(argv, "--tls", ":443", "--cert", "@cert", "--key", "@key")
	}
	b.steps = append(b.steps, step{kind: stepDaemon, role: role, argv: argv, name: "httpd " + name, ready: readyTCP, port: 80})
}

// uvsd starts the director.
func (b *builder) uvsd() {
	b.steps = append(b.steps, step{kind: stepDaemon, role: b.director, show: true, name: "uvsd",
		argv: []string{"uvsd", "--trace", "@trace", "--conns", "65536", "--log-level", "info"}, ready: readyServing})
}

// keepalivedUVSD writes conf as the director's keepalived.conf and starts
// uvsd with it (uvsd --keepalived): the services come from the file, and
// its health checkers add and remove the real servers.
func (b *builder) keepalivedUVSD(conf string) {
	b.keepalived = true
	b.steps = append(b.steps,
		step{kind: stepFile, role: b.director, show: true, argv: []string{"@keepalived", conf}},
		step{kind: stepDaemon, role: b.director, show: true, name: "uvsd", ready: readyServing,
			argv: []string{"uvsd", "--keepalived", "@keepalived", "--trace", "@trace", "--conns", "65536", "--log-level", "info"}})
}

// ipvsadm is a lesson step on the director.
func (b *builder) ipvsadm(args ...string) {
	b.cmd(b.director, true, append([]string{"ipvsadm"}, args...)...)
}

// server declares a real server.
func (b *builder) server(name, role, addr string) {
	b.servers = append(b.servers, realServer{Name: name, Role: role, Addr: netip.MustParseAddr(addr)})
}

// weight returns the weight chosen for a real server (1 by default).
func (b *builder) weight(name string) string {
	if w, ok := b.p.Weights[name]; ok {
		return strconv.Itoa(w)
	}
	return "1"
}

// persistArgs returns "-p N" when persistence was asked for.
func (b *builder) persistArgs() []string {
	if b.p.Persist > 0 {
		return []string{"-p", strconv.Itoa(b.p.Persist)}
	}
	return nil
}

// service adds a virtual service with the chosen scheduler and its real
// servers, each with the forwarding method fwd returns (-m, -g, -i, -b).
func (b *builder) service(svc []string, fwd func(realServer) string, withPort bool) {
	b.ipvsadm(append(append([]string{"-A"}, svc...), append([]string{"-s", b.p.Sched}, b.persistArgs()...)...)...)
	for _, rs := range b.servers {
		r := rs.Addr.String()
		if withPort {
			r = netip.AddrPortFrom(rs.Addr, b.port).String()
		}
		b.ipvsadm(append(append([]string{"-a"}, svc...), "-r", r, fwd(rs), "-w", b.weight(rs.Name))...)
	}
}

// drRealServer is seed 000's lvs-dr-rs.sh: the VIP on lo as /32 and the
// ARP sysctls that keep the real server quiet about it.
func (b *builder) drRealServer(role string, vip string) {
	b.ipCmd(role, true, "addr", "add", vip+"/32", "dev", "lo", "label", "lo:1")
	b.sysctl(role, true,
		"net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.lo.arp_ignore=1",
		"net.ipv4.conf.all.arp_announce=2", "net.ipv4.conf.lo.arp_announce=2")
}

// uvsRS is the TUN real server: no ipip module here, so uvs-rs
// decapsulates in userspace (and sets arp_ignore, arp_announce, rp_filter).
func (b *builder) uvsRS(role, vip string) {
	b.cmd(role, true, "uvs-rs", "tun", "up", "--vip", vip)
}

// ns returns a plan's namespace roles with a given prefix and instance.
func nsName(prefix, instance, role string) string { return prefix + "-" + instance + "-" + role }

// splitNS parses a namespace name made by nsName into instance and role
// (roles never contain '-').
func splitNS(prefix, name string) (instance, role string, ok bool) {
	rest, ok := strings.CutPrefix(name, prefix+"-")
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '-')
	if i <= 0 || i == len(rest)-1 {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}
