package lab

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/uvs-lb/uvs/trace"
)

// The ecmp scenario: three directors announce the VIP to a router by BGP
// (uvsd --bgp-*, GoBGP inside uvsd); the router (BIRD 2) merges the three
// routes into one multipath route and hashes flows over the directors on
// their 5-tuple (fib_multipath_hash_policy=1). Every director runs the
// same mh service with sloppy_tcp, so a director that never saw a flow's
// SYN picks the same real server for it: no state is shared.

// The scenario's addresses and BGP numbers.
const (
	ecmpVIP      = "172.16.10.100"
	ecmpRouterAS = 65000
	ecmpDirAS    = 65001
	ecmpHold     = 3 // BGP hold time, seconds, on both sides
	// ecmpShort is how many short connections show the router's spread.
	ecmpShort = 1000
	// ecmpFlows is how many long-lived connections ride each failover.
	ecmpFlows = 150
	// ecmpBound bounds every wait of the run (it measures, it does not time).
	ecmpBound = 30 * time.Second
)

// ecmpDirectors are the directors' roles and LAN addresses.
var ecmpDirectors = []struct{ Role, Addr string }{{"dir1", dip}, {"dir2", dip2}, {"dir3", "10.0.0.10"}}

var ecmpScenario = &Scenario{
	Name: "ecmp", Seed: "issue 19 (Maglev/Katran/GLB-style scale-out)", Mode: "DR (-g), BGP + ECMP", Sched: "mh",
	Title: "three directors announce the VIP by BGP; the router spreads flows by ECMP; kill one, the flows go on",
	Summary: "Scale-out without shared state: three directors run uvsd with the same mh service (sorted hash order, " +
		"sloppy_tcp=1) and announce the VIP as a /32 to the router by BGP (GoBGP in uvsd, hold time 3 s). The router " +
		"runs BIRD 2 and merges the three announcements into one kernel route with three next hops; the kernel hashes " +
		"each flow on its 5-tuple (fib_multipath_hash_policy=1). The run shows the route, which director carried each " +
		"of 1000 short connections and which real server answered, then opens long-lived connections and kills a " +
		"director (SIGKILL), then pulls another's cable: the route shrinks and the connections go on through the " +
		"survivors, each to the real server it had (mh picks it again, sloppy_tcp accepts the mid-flow packet). " +
		"DR here: with NAT the replies would have to come back through the director that holds the flow (see lab/README.md); " +
		"ecmp-fullnat is the FULLNAT variant.",
	Diagram: `
  client 192.168.10.6 ─── [router] ─── [switch] ─┬─ dir1 10.0.0.8   uvsd --bgp-as 65001  ┐
     gw 192.168.10.200    BIRD 2, AS 65000       ├─ dir2 10.0.0.9   uvsd --bgp-as 65001  ├ each: mh, sloppy_tcp=1
                          10.0.0.200             ├─ dir3 10.0.0.10  uvsd --bgp-as 65001  ┘
                          172.16.10.100/32       ├─ rs1 10.0.0.7   lo 172.16.10.100/32  gw 10.0.0.200
                          via dir1, dir2, dir3   └─ rs2 10.0.0.17  lo 172.16.10.100/32  gw 10.0.0.200
  VIP 172.16.10.100:80, announced by all three; the real servers answer the client through the router`,
	build: func(b *builder) { buildECMP(b, false) },
	run:   func(ctx context.Context, s *session, n int) error { return runECMP(ctx, s, n, false) },
}

// ecmpFullNATScenario is ecmp with FULLNAT: each director makes its own
// LAN address the source of what it sends to a real server, so the reply
// comes back to it by plain routing. A flow's FULLNAT identity (local
// address and port) lives in one director only: a flow the router moves
// to another director arrives there mid-flow, sloppy_tcp and mh send it
// to the same real server, but from another local address and port, a
// connection the real server never saw, and it answers with a RST.
var ecmpFullNATScenario = &Scenario{
	Name: "ecmp-fullnat", Seed: "issue 19 (FULLNAT behind ECMP)", Mode: "FULLNAT (-b), BGP + ECMP", Sched: "mh",
	Title: "ecmp with FULLNAT: replies come back to each flow's director; kill one, the flows that move are reset",
	Summary: "The ecmp lab with FULLNAT (-b) instead of DR: each director's rules add its own LAN address as the " +
		"service's local address (-P -z 10.0.0.8 on dir1, .9 on dir2, .10 on dir3), so a real server sees every " +
		"request coming from the director that carried it and answers that director by plain routing: no policy " +
		"routing, no VIP on the real servers. Same BGP, ECMP, mh and sloppy_tcp as ecmp. At a failover the flows the " +
		"router keeps on a surviving director go on; the ones it moves (the dead director's, and with hash-threshold " +
		"ECMP some of the survivors') reach a director that picks the same real server but a local address and port " +
		"of its own: the real server has no such connection and resets it. FULLNAT state is per director; the " +
		"stateless designs (Maglev, Katran) forward by DR or tunnels for this reason.",
	Diagram: `
  client 192.168.10.6 ─── [router] ─── [switch] ─┬─ dir1 10.0.0.8   -b, local address 10.0.0.8   ┐
     gw 192.168.10.200    BIRD 2, AS 65000       ├─ dir2 10.0.0.9   -b, local address 10.0.0.9   ├ each: mh, sloppy_tcp=1, BGP
                          10.0.0.200             ├─ dir3 10.0.0.10  -b, local address 10.0.0.10  ┘
                          172.16.10.100/32       ├─ rs1 10.0.0.7   answers the local address (no VIP)
                          via dir1, dir2, dir3   └─ rs2 10.0.0.17  answers the local address (no VIP)
  VIP 172.16.10.100:80, announced by all three; every reply goes back through the director that carried the request`,
	build: func(b *builder) { buildECMP(b, true) },
	run:   func(ctx context.Context, s *session, n int) error { return runECMP(ctx, s, n, true) },
}

// ecmpBirdConf is the router's BIRD 2 configuration: one eBGP session per
// director (hold time 3 s, retry every second), the routes merged into
// one multipath kernel route.
func ecmpBirdConf() string {
	var c strings.Builder
	fmt.Fprintf(&c, "router id %s;\n\nprotocol device {}\n\n", routerLAN)
	c.WriteString("# one kernel route with a next hop per director (ECMP)\nprotocol kernel {\n" +
		"\tipv4 { import none; export all; };\n\tmerge paths on;\n}\n")
	for _, d := range ecmpDirectors {
		fmt.Fprintf(&c, "\nprotocol bgp %s {\n\tlocal %s as %d;\n\tneighbor %s as %d;\n\thold time %d;\n\tconnect retry time 1;\n"+
			"\tipv4 { import all; export none; };\n}\n", d.Role, routerLAN, ecmpRouterAS, d.Addr, ecmpDirAS, ecmpHold)
	}
	return c.String()
}

// ecmpRules is a director's table; odd directors list the real servers
// in the other order (uvsd's sorted hash order makes the tables agree).
// With fullnat the real servers are FULLNAT ones and the director's own
// LAN address is the service's local address.
func ecmpRules(b *builder, i int, fullnat bool) string {
	var c strings.Builder
	vs := ecmpVIP + ":80"
	fmt.Fprintf(&c, "-A -t %s -s %s", vs, b.p.Sched)
	switch b.p.Sched {
	case "mh":
		c.WriteString(" -b mh-port") // one client's connections spread over the real servers
	case "sh":
		c.WriteString(" -b sh-port")
	}
	c.WriteString("\n")
	fwd := "-g"
	if fullnat {
		fwd = "-b"
		fmt.Fprintf(&c, "-P -t %s -z %s\n", vs, ecmpDirectors[i].Addr)
	}
	servers := slices.Clone(b.servers)
	if i%2 == 1 {
		slices.Reverse(servers)
	}
	for _, rs := range servers {
		fmt.Fprintf(&c, "-a -t %s -r %s:80 %s -w %s\n", vs, rs.Addr, fwd, b.weight(rs.Name))
	}
	return c.String()
}

// ecmpUVSDArgv is director i's uvsd command line.
func ecmpUVSDArgv(i int, sloppy bool) []string {
	d := ecmpDirectors[i]
	argv := []string{"uvsd", "--rules", "@dir/rules-" + d.Role}
	if sloppy {
		argv = append(argv, "--sysctl", "sloppy_tcp=1")
	}
	return append(argv, "--bgp-as", fmt.Sprint(ecmpDirAS), "--bgp-router-id", d.Addr,
		"--bgp-peer", fmt.Sprintf("%s,as=%d,hold=%d", routerLAN, ecmpRouterAS, ecmpHold), "--bgp-grace", "1s",
		"--trace", "@dir/trace-"+d.Role+".jsonl", "--conns", "65536", "--log-level", "info")
}

// buildECMP builds the ecmp lab, with DR real servers or FULLNAT ones.
func buildECMP(b *builder, fullnat bool) {
	roles := []string{"client", "router"}
	for _, d := range ecmpDirectors {
		roles = append(roles, d.Role)
	}
	b.node(append(roles, "rs1", "rs2")...)
	b.client, b.director = "client", ecmpDirectors[0].Role
	// The services come from rules files on three directors: up must not
	// reconfigure one director by ipvsadm (it refuses, as for keepalived).
	b.keepalived = true
	b.vip, b.port = netip.MustParseAddr(ecmpVIP), 80
	b.veth("client", "eth0", "router", "eth1")
	members := [][2]string{{"router", "eth0"}}
	for _, d := range ecmpDirectors {
		members = append(members, [2]string{d.Role, "eth0"})
	}
	b.lan("switch", append(members, [2]string{"rs1", "eth0"}, [2]string{"rs2", "eth0"})...)
	b.addr("client", "eth0", clientIP+"/24")
	b.ipCmd("client", false, "route", "add", "default", "via", routerOut)
	b.addr("router", "eth1", routerOut+"/24")
	b.addr("router", "eth0", routerLAN+"/24")
	b.server("rs1", "rs1", rs1IP)
	b.server("rs2", "rs2", rs2IP)
	if fullnat {
		b.note("real servers: no VIP and no route beyond the LAN: every request comes from a director's own address, the reply goes straight back to it")
	} else {
		b.note("real servers: gateway the router; the VIP on lo, ARP-quiet (lvs-dr-rs.sh start)")
	}
	for _, rs := range b.servers {
		b.addr(rs.Role, "eth0", rs.Addr.String()+"/24")
		if !fullnat {
			b.ipCmd(rs.Role, false, "route", "add", "default", "via", routerLAN)
			b.drRealServer(rs.Role, ecmpVIP)
		}
		b.httpd(rs.Role, rs.Name, false)
	}
	b.note("the router forwards and hashes multipath routes on the 5-tuple (L4), not only the addresses")
	b.sysctl("router", true, "net.ipv4.ip_forward=1", "net.ipv4.fib_multipath_hash_policy=1")
	b.note("BIRD 2 on the router: an eBGP session per director, hold time %d s, the routes merged into one ECMP route", ecmpHold)
	b.steps = append(b.steps,
		step{kind: stepFile, role: "router", show: true, argv: []string{"@dir/bird.conf", ecmpBirdConf()}},
		step{kind: stepDaemon, role: "router", show: true, name: "bird",
			argv:    []string{"bird", "-f", "-c", "@dir/bird.conf", "-s", "@dir/bird.ctl", "-P", "@dir/bird.pid"},
			started: birdStarted})
	for i, d := range ecmpDirectors {
		b.addr(d.Role, "eth0", d.Addr+"/24")
		b.ipCmd(d.Role, false, "route", "add", "default", "via", routerLAN)
		b.steps = append(b.steps, step{kind: stepFile, role: d.Role, show: i == 0, argv: []string{"@dir/rules-" + d.Role, ecmpRules(b, i, fullnat)}})
	}
	b.note("the same service on every director (rules-dir2 lists the real servers in the other order: --hash-order sorted, the default, "+
		"builds the same %s table anyway); sloppy_tcp=1 lets a director pick up a flow it never saw the SYN of", b.p.Sched)
	if fullnat {
		b.note("FULLNAT: each director's rules add its own LAN address as the local address (-P -z), the source the real servers answer")
	}
	for i, d := range ecmpDirectors {
		st := step{kind: stepDaemon, role: d.Role, show: true, name: "uvsd " + d.Role, argv: ecmpUVSDArgv(i, true), ready: readyServing}
		if i == len(ecmpDirectors)-1 {
			st.started = func(ctx context.Context, s *session, p Proc) error {
				if err := waitReady(ctx, p, 10*time.Second, func() error { return controlAnswers(ctx, s.ns(p.Role)) }); err != nil {
					return err
				}
				_, err := s.waitHops(ctx, len(ecmpDirectors))
				return err
			}
		}
		b.steps = append(b.steps, st)
	}
	b.clients = []netip.Addr{netip.MustParseAddr(clientIP)}
	b.requests = []Request{{Src: b.clients[0], URL: "http://" + ecmpVIP + "/"}}
	b.hops = []hop{{"client eth0", "client", "eth0"}, {"router eth0 (to the LAN)", "router", "eth0"}}
	for _, d := range ecmpDirectors {
		b.hops = append(b.hops, hop{"switch p-" + d.Role, "switch", "p-" + d.Role})
	}
	b.hops = append(b.hops, hop{"rs1 eth0", "rs1", "eth0"}, hop{"rs2 eth0", "rs2", "eth0"})
	b.lanProbe = hop{"router eth0", "router", "eth0"}
}

// birdStarted waits until BIRD answers on its control socket.
func birdStarted(ctx context.Context, s *session, p Proc) error {
	stop := s.l.prog.start("waiting for BIRD in " + p.Role)
	defer stop()
	return waitReady(ctx, p, 10*time.Second, func() error {
		_, err := s.birdc(ctx, "show", "status")
		return err
	})
}

// birdc runs birdc on the router's control socket.
func (s *session) birdc(ctx context.Context, args ...string) (string, error) {
	return runCmd(ctx, "ip", append([]string{"netns", "exec", s.ns("router"), "birdc", "-s", s.expand("@dir/bird.ctl")}, args...)...)
}

// vipRoute is the router's kernel route to the VIP and its next hops.
func (s *session) vipRoute(ctx context.Context) (string, []string) {
	out, _ := runCmd(ctx, "ip", "-n", s.ns("router"), "-4", "route", "show", ecmpVIP+"/32")
	var hops []string
	f := strings.Fields(out)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "via" {
			hops = append(hops, f[i+1])
		}
	}
	return out, hops
}

// waitHops waits until the router's route to the VIP has n next hops and
// returns how long that took.
func (s *session) waitHops(ctx context.Context, n int) (time.Duration, error) {
	t0 := time.Now()
	var last string
	err := waitFor(ctx, ecmpBound, func() (bool, error) {
		var hops []string
		last, hops = s.vipRoute(ctx)
		return len(hops) == n, nil
	}, fmt.Sprintf("the router's route to %s with %d next hops", ecmpVIP, n))
	if err != nil {
		proto, _ := s.birdc(ctx, "show", "protocols")
		return 0, fmt.Errorf("%w (route: %q; birdc show protocols:\n%s)", err, strings.TrimSpace(last), proto)
	}
	return time.Since(t0), nil
}

// directorOf names the director with LAN address a.
func directorOf(a string) string {
	for _, d := range ecmpDirectors {
		if d.Addr == a {
			return d.Role
		}
	}
	return a
}

// hopNames are next hops as director roles.
func hopNames(hops []string) []string {
	var out []string
	for _, h := range hops {
		out = append(out, directorOf(h))
	}
	return out
}

// ecmpDecisions reads every director's trace: for each client address
// and port, the director that decided it first and the one that decided
// it last (another director picks a flow up after a failover), counting
// only decisions made since since: a client port is reused by later
// connections, and an earlier connection's director is not this one's.
func (s *session) ecmpDecisions(since time.Time) (first, last map[netip.AddrPort]string) {
	type at struct {
		dir string
		t   time.Time
	}
	f, l := map[netip.AddrPort]at{}, map[netip.AddrPort]at{}
	for _, d := range ecmpDirectors {
		recs, err := trace.ReadFile(s.expand("@dir/trace-" + d.Role + ".jsonl"))
		if err != nil {
			continue
		}
		for _, r := range recs {
			if !r.Client.IsValid() || r.Time.Before(since) {
				continue
			}
			if x, ok := f[r.Client]; !ok || r.Time.Before(x.t) {
				f[r.Client] = at{d.Role, r.Time}
			}
			if x, ok := l[r.Client]; !ok || r.Time.After(x.t) {
				l[r.Client] = at{d.Role, r.Time}
			}
		}
	}
	first, last = map[netip.AddrPort]string{}, map[netip.AddrPort]string{}
	for k, v := range f {
		first[k] = v.dir
	}
	for k, v := range l {
		last[k] = v.dir
	}
	return first, last
}

// waitDecisions waits (briefly: the trace writer flushes in batches) until
// every client address and port in want has a decision since since in
// some trace.
func (s *session) waitDecisions(ctx context.Context, since time.Time, want []netip.AddrPort) (first, last map[netip.AddrPort]string) {
	deadline := time.Now().Add(3 * time.Second)
	for {
		first, last = s.ecmpDecisions(since)
		missing := slices.ContainsFunc(want, func(a netip.AddrPort) bool { _, ok := first[a]; return !ok })
		if !missing || time.Now().After(deadline) || ctx.Err() != nil {
			return first, last
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// uvsdProc returns the index of role's uvsd in the state.
func (s *session) uvsdProc(role string) int {
	return slices.IndexFunc(s.st.Procs, func(p Proc) bool { return p.Name == "uvsd "+role })
}

// restartDirector stops role's uvsd (SIGKILL, if it still runs) and starts
// it again, with or without sloppy_tcp.
func (s *session) restartDirector(ctx context.Context, role string, sloppy bool) error {
	if i := s.uvsdProc(role); i >= 0 {
		p := s.st.Procs[i]
		if p.Alive() {
			fmt.Fprintf(s.out, "[%s]# kill -9 %d    # uvsd\n", role, p.PID)
			if err := killProc(p); err != nil {
				return err
			}
			// The thread-group leader is a zombie before the other
			// threads are gone: the control socket is free only when the
			// last one is.
			if err := waitFor(ctx, 5*time.Second, func() (bool, error) {
				return controlAnswers(ctx, s.ns(role)) != nil, nil
			}, "the killed uvsd's control socket closed in "+role); err != nil {
				return err
			}
			// The router must have seen the old session end before the new
			// one starts, or waitHops may count the stale route.
			addr := ""
			for _, d := range ecmpDirectors {
				if d.Role == role {
					addr = d.Addr
				}
			}
			if err := waitFor(ctx, ecmpBound, func() (bool, error) {
				_, hops := s.vipRoute(ctx)
				return !slices.Contains(hops, addr), nil
			}, "the router's route without "+role); err != nil {
				return err
			}
		}
		s.st.Procs = slices.Delete(s.st.Procs, i, i+1)
		if err := s.l.saveState(s.st); err != nil {
			return err
		}
	}
	i := slices.IndexFunc(ecmpDirectors, func(d struct{ Role, Addr string }) bool { return d.Role == role })
	if i < 0 {
		return fmt.Errorf("ecmp: no director %s", role)
	}
	_, err := s.run(ctx, step{kind: stepDaemon, role: role, show: true, name: "uvsd " + role, argv: ecmpUVSDArgv(i, sloppy), ready: readyServing})
	return err
}

// killProc sends SIGKILL to a recorded process and waits until it is gone.
func killProc(p Proc) error {
	if err := syscall.Kill(p.PID, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill -9 %d (%s): %w", p.PID, p.Name, err)
	}
	if !waitGone(p, 5*time.Second) {
		return fmt.Errorf("%s (pid %d) still runs 5s after SIGKILL", p.Name, p.PID)
	}
	return nil
}
