package bench

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// candidate is one thing the benchmark measures.
type candidate struct {
	name, kind, desc string
	udp, tcp         bool
	// udpDsts are the generator's destinations (the VIP, or the real
	// servers for plain forwarding).
	udpDsts []netip.Addr
	// httpHost and iperfHost are the TCP targets.
	httpHost, iperfHost string
	note                string
	// unavailable says why the candidate cannot run here ("" = it can).
	unavailable string
	setup       func(h *harness) error
	teardown    func(h *harness) error
	// ceiling: the generator's own limit, counted at the director.
	ceiling bool
	// uvs options
	fwd, io string
	// reply is the real servers' reply path during the candidate's slot
	// (ReplyViaDirector or ReplyViaRouter; "" for the ceiling).
	reply string
	// onlyNamed: measured only when --only names it (a comparison variant).
	onlyNamed bool
}

// startDRTUN sets the real servers' reply path for c, then starts uvsd.
func (h *harness) startDRTUN(c *candidate, fwd, io string) error {
	if err := h.topo.ReplyVia(c.reply); err != nil {
		return err
	}
	return h.startUVS(fwd, io, 0)
}

// candidates returns every candidate in the order of the tables.
func (h *harness) candidates() []*candidate {
	vip := []netip.Addr{VIP}
	rs := h.topo.BackendAddrs()
	first := h.topo.Backends[0].Addr.String()
	cs := []*candidate{
		{name: "generator-ceiling", kind: KindCeiling, udp: true, ceiling: true, udpDsts: vip,
			desc: "the generator alone: VIP frames counted and dropped at the director's d0 ingress (netdev), on the director core",
			setup: func(h *harness) error {
				return h.nft(h.topo.Dir, fmt.Sprintf(`table netdev benchceil {
  counter ceil {
  }
  chain ing {
    type filter hook ingress device "d0" priority 0;
    udp dport %d counter name "ceil" drop
  }
}
`, UDPPort))
			},
			teardown: func(h *harness) error { return h.nft(h.topo.Dir, "delete table netdev benchceil\n") }},
		{name: "kernel-forward", reply: ReplyViaDirector, kind: KindKernel, udp: true, tcp: true, udpDsts: rs, httpHost: first, iperfHost: first,
			desc:  "plain IP forwarding in the director namespace, client addressing the real servers (TCP: real server 1)",
			setup: func(h *harness) error { return nil }, teardown: kernelTeardown},
		{name: "nft-dnat", reply: ReplyViaDirector, kind: KindKernel, udp: true, tcp: true, udpDsts: vip, httpHost: VIP.String(), iperfHost: VIP.String(),
			desc:  "nftables DNAT, `numgen random mod 2` map in a prerouting nat chain (iperf3: `jhash ip saddr`, sticky)",
			setup: func(h *harness) error { return h.nft(h.topo.Dir, nftDNATRules(rs)) },
			teardown: func(h *harness) error {
				return firstErr(h.nft(h.topo.Dir, "delete table ip benchlb\n"), kernelTeardown(h))
			}},
		{name: "iptables-statistic", reply: ReplyViaDirector, kind: KindKernel, udp: true, tcp: true, udpDsts: vip, httpHost: VIP.String(), iperfHost: VIP.String(),
			desc: "iptables (nft backend) kube-proxy style: KUBE-SERVICES → SVC → `-m statistic --mode random --probability 0.5` → SEP → DNAT",
			note: "iperf3 goes to real server 1 only (statistic is not sticky: its control and data connections must meet)",
			setup: func(h *harness) error {
				_, err := runIn(cmdTimeout, []byte(iptablesRules(rs)), "ip", "netns", "exec", h.topo.Dir, "iptables-restore")
				return err
			},
			teardown: func(h *harness) error {
				_, err1 := nsRun(cmdTimeout, h.topo.Dir, -1, "iptables", "-t", "nat", "-F")
				_, err2 := nsRun(cmdTimeout, h.topo.Dir, -1, "iptables", "-t", "nat", "-X")
				// Leave no empty nat base chains behind: they would keep
				// conntrack/NAT hooks active for the next candidate.
				_, _ = nsRun(cmdTimeout, h.topo.Dir, -1, "nft", "delete", "table", "ip", "nat")
				return firstErr(err1, err2, kernelTeardown(h))
			}},
		{name: "haproxy-tcp", reply: ReplyViaDirector, kind: KindProxy, tcp: true, httpHost: VIP.String(), iperfHost: VIP.String(),
			desc:  "HAProxy `mode tcp`, nbthread 1, roundrobin (iperf3: balance source), VIP on the director's lo",
			setup: (*harness).startHAProxy, teardown: (*harness).stopHAProxy},
	}
	uvs := func(name, fwd, io, desc string) *candidate {
		c := &candidate{name: name, kind: KindUVS, udp: true, tcp: true, udpDsts: vip, httpHost: VIP.String(), iperfHost: VIP.String(),
			fwd: fwd, io: io, desc: desc, reply: ReplyViaDirector,
			setup:    func(h *harness) error { return h.startUVS(fwd, io, 0) },
			teardown: func(h *harness) error { return h.stopUVS(fwd) }}
		if fwd == "-g" || fwd == "-i" {
			// LVS-DR and LVS-TUN: the real server's gateway is not the
			// director, so its replies do not pass through it (the
			// deployment ipvsadm's DR/TUN documentation describes).
			c.reply = ReplyViaRouter
			c.setup = func(h *harness) error { return h.startDRTUN(c, fwd, io) }
			c.teardown = func(h *harness) error {
				return firstErr(h.stopUVS(fwd), h.topo.ReplyVia(ReplyViaDirector))
			}
		}
		return c
	}
	cs = append(cs,
		uvs("uvs-nat", "-m", "", "uvsd NAT (masquerading), rr (iperf3: sh), 1 worker pinned to the director core"),
		uvs("uvs-fullnat", "-b", "", "uvsd FULLNAT: source rewritten to the director's address on the real server's link (local ports 10000–65535)"),
		uvs("uvs-dr", "-g", "", "uvsd direct routing; real servers: `uvs-rs dr up` (VIP on lo, arp_ignore/arp_announce)"),
		uvs("uvs-tun", "-i", "", "uvsd IPIP tunnelling; real servers: `uvs-rs tun up` (IPIP decapsulated by its tc BPF program at the real server's ingress, the rest in user space into a TUN); UDP counted at the real server's ingress (nftables netdev, after tc: decapsulated)"),
		uvs("uvs-nat-afpacket", "-m", "afpacket", "uvsd NAT with --io afpacket"),
		uvs("uvs-tun-afpacket", "-i", "afpacket", "uvsd IPIP tunnelling with --io afpacket (the director receives GSO super-frames and segments them); real servers as uvs-tun"),
		uvs("uvs-nat-afxdp", "-m", "afxdp", "uvsd NAT with --io afxdp"),
	)
	// Not a target row: uvs-nat with the director's receive (d0 RPS) on the
	// generator's CPU, so that uvsd has CPU1 to itself. It shows what the
	// receive softirq sharing uvsd's core costs; its CPU figure leaves out the
	// receive work and is not comparable with the other rows.
	// Without the fast path: with it, d0's receive would be a NAPI thread
	// on the generator's CPU, which the saturated generator starves.
	rx0 := uvs("uvs-nat-rxcpu0", "-m", "", "uvs-nat --fast-path=false, but d0's receive processing (RPS) on CPU0 with the generator: uvsd has the director core to itself")
	rx0.note = "layout variant, not a target row: its CPU figure leaves out d0's receive work (on CPU0)"
	rx0.setup = func(h *harness) error {
		if err := setRPS(h.topo.Dir, "d0", "1"); err != nil {
			return err
		}
		return h.startUVSWorkers("-m", "", 0, 1, "--fast-path=false")
	}
	rx0.teardown = func(h *harness) error {
		return firstErr(h.stopUVS("-m"), setRPS(h.topo.Dir, "d0", h.cfg.RPSDir))
	}
	cs = append(cs, rx0)
	// Comparison variants (only with --only): DR and TUN with the real
	// servers' replies crossing the director, the bench's topology before
	// the router namespace.
	for _, v := range []struct {
		name, fwd, what string
		reply           string
	}{
		{"uvs-dr-dirgw", "-g", "uvs-dr, but the real servers' gateway is the director, so their replies cross it (not a DR deployment)", ReplyViaDirector},
		{"uvs-tun-dirgw", "-i", "uvs-tun, but the real servers' gateway is the director, so their replies cross it (not a TUN deployment)", ReplyViaDirector},
	} {
		c := uvs(v.name, v.fwd, "", v.what)
		c.reply, c.onlyNamed = v.reply, true
		c.note = "comparison variant, not a target row"
		cs = append(cs, c)
	}
	// Kernel forwarding in the DR/TUN rows' topology: the client addresses
	// the real servers through the director and their replies take the
	// router, so the reply path costs what it costs uvs-dr and uvs-tun
	// (the router's receive on the director core, the client's on CPU0).
	// The reference for those rows' TCP figures, which kernel-forward
	// (replies through the director) is not.
	kr := &candidate{name: "kernel-forward-rtr", reply: ReplyViaRouter, kind: KindKernel, udp: true, tcp: true, udpDsts: rs, httpHost: first, iperfHost: first,
		desc: "kernel-forward, but the real servers' replies take the router namespace, as uvs-dr's and uvs-tun's do",
		note: "comparison variant, not a target row: the reference for the DR and TUN rows' TCP figures", onlyNamed: true}
	kr.setup = func(h *harness) error { return h.topo.ReplyVia(ReplyViaRouter) }
	kr.teardown = func(h *harness) error {
		return firstErr(h.topo.ReplyVia(ReplyViaDirector), kernelTeardown(h))
	}
	cs = append(cs, kr)
	// Kernel forwarding with a do-nothing native XDP program on d0: what
	// native XDP on a veth costs by itself (attachXDPPass), the bound of
	// any design that attaches one, as uvsd's default backend does.
	kx := &candidate{name: "kernel-forward-xdp", reply: ReplyViaDirector, kind: KindKernel, udp: true, tcp: true, udpDsts: rs, httpHost: first, iperfHost: first,
		desc: "kernel-forward with a native-mode XDP program on d0 that passes every frame (XDP_PASS): the client's TSO is off while it is attached",
		note: "comparison variant, not a target row: what a native XDP program on a veth costs the kernel's own forwarding", onlyNamed: true}
	kx.setup = func(h *harness) (err error) {
		h.xdpPass, err = attachXDPPass(h.topo.Dir, "d0")
		return err
	}
	kx.teardown = func(h *harness) error {
		var err error
		if h.xdpPass != nil {
			err = h.xdpPass.Close()
			h.xdpPass = nil
		}
		return firstErr(err, kernelTeardown(h))
	}
	cs = append(cs, kx)
	// One worker against two: AF_PACKET's fanout spreads the flows over
	// the workers whatever the interface's queues (AF_XDP binds a socket
	// per receive queue, and the topology's veths have one, so uvsd runs
	// one AF_XDP worker there whatever --workers says). The second
	// worker shares CPU0 with the generator and the clients.
	w2 := uvs("uvs-nat-afpacket-2w", "-m", "afpacket", "uvs-nat-afpacket with --workers 2, not pinned: the second worker runs on CPU0 with the generator")
	w2.setup = func(h *harness) error { return h.startUVSWorkers("-m", "afpacket", 0, 2) }
	w2.note, w2.onlyNamed = "comparison variant, not a target row: 1 worker (uvs-nat-afpacket) against 2", true
	cs = append(cs, w2)
	// The fast path's share: uvs-nat without it, and with it but the XDP
	// program in softirq on the sending CPU (on veth: CPU0's, the
	// generator's) instead of NAPI threads on the director core.
	nf := uvs("uvs-nat-nofast", "-m", "", "uvs-nat with --fast-path=false: every packet through the worker (AF_XDP sockets)")
	nf.setup = func(h *harness) error { return h.startUVSWorkers("-m", "", 0, 1, "--fast-path=false") }
	nf.note, nf.onlyNamed = "comparison variant, not a target row: uvs-nat without the XDP fast path", true
	nt := uvs("uvs-nat-nothreads", "-m", "", "uvs-nat with --rx-threads=false: the fast path runs in softirq on the sending CPU (here the generator's)")
	nt.setup = func(h *harness) error { return h.startUVSWorkers("-m", "", 0, 1, "--rx-threads=false") }
	nt.note, nt.onlyNamed = "comparison variant, not a target row: its director-core figure leaves out the XDP work done on CPU0", true
	// uvs-rs's share in TUN: the real servers decapsulating every packet
	// in user space, as before its tc program.
	ru := uvs("uvs-tun-rsuser", "-i", "", "uvs-tun with `uvs-rs tun up --no-bpf`: the real servers decapsulate every packet in user space")
	ru.setup = func(h *harness) error {
		h.rsArgs = []string{"--no-bpf"}
		return h.startDRTUN(ru, "-i", "")
	}
	ru.teardown = func(h *harness) error {
		h.rsArgs = nil
		return firstErr(h.stopUVS("-i"), h.topo.ReplyVia(ReplyViaDirector))
	}
	ru.note, ru.onlyNamed = "comparison variant, not a target row: uvs-tun without uvs-rs's in-kernel decapsulation", true
	cs = append(cs, nf, nt, ru)
	for _, c := range cs {
		if c.io == "afxdp" {
			c.note = "with native XDP on veth the receive work (XDP program, copy into the UMEM) runs on the sending CPU (CPU0) before RPS: " +
				"it shows in the generator-core column, not the director's, and the generator ceiling (receive via RPS on CPU1) does not bound it"
		}
		if c.io != "" && !h.uvsdHasIO {
			c.unavailable = "n/a: uvsd has no --io"
		}
		if c.kind == KindProxy && h.haproxyBin == "" {
			c.unavailable = "n/a: haproxy is not installed"
		}
	}
	return cs
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// kernelTeardown flushes the director's conntrack table between kernel
// candidates.
func kernelTeardown(h *harness) error {
	if h.conntrackBin == "" {
		return nil
	}
	out, err := nsRun(cmdTimeout, h.topo.Dir, -1, h.conntrackBin, "-F")
	if err != nil && !strings.Contains(out, "flow entries have been deleted") {
		return err
	}
	return nil
}

func nftDNATRules(rs []netip.Addr) string {
	m := mapOf(rs)
	return fmt.Sprintf(`table ip benchlb {
  chain pre {
    type nat hook prerouting priority dstnat;
    ip daddr %[1]s udp dport %[2]d dnat to numgen random mod %[3]d map { %[4]s }
    ip daddr %[1]s tcp dport %[5]d dnat to numgen random mod %[3]d map { %[4]s }
    ip daddr %[1]s tcp dport %[6]d dnat to jhash ip saddr mod %[3]d seed 0xfeed map { %[4]s }
  }
}
`, VIP, UDPPort, len(rs), m, HTTPPort, IperfPort)
}

func mapOf(rs []netip.Addr) string {
	var parts []string
	for i, a := range rs {
		parts = append(parts, fmt.Sprintf("%d : %s", i, a))
	}
	return strings.Join(parts, ", ")
}

// iptablesRules is kube-proxy's iptables-mode shape for the UDP and HTTP
// services (random endpoint choice with -m statistic, probability 1/(n-i)
// for endpoint i), and one endpoint for iperf3.
func iptablesRules(rs []netip.Addr) string {
	var b strings.Builder
	b.WriteString("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n")
	svcs := []struct {
		name, proto string
		port        int
		eps         []netip.Addr
	}{{"UDP", "udp", UDPPort, rs}, {"HTTP", "tcp", HTTPPort, rs}, {"IPERF", "tcp", IperfPort, rs[:1]}}
	var rules []string
	for _, s := range svcs {
		fmt.Fprintf(&b, ":KUBE-SVC-%s - [0:0]\n", s.name)
		rules = append(rules, fmt.Sprintf("-A KUBE-SERVICES -d %s/32 -p %s --dport %d -j KUBE-SVC-%s", VIP, s.proto, s.port, s.name))
		for i, ep := range s.eps {
			sep := fmt.Sprintf("KUBE-SEP-%s%d", s.name, i+1)
			fmt.Fprintf(&b, ":%s - [0:0]\n", sep)
			if left := len(s.eps) - i; left > 1 {
				rules = append(rules, fmt.Sprintf("-A KUBE-SVC-%s -m statistic --mode random --probability %.5f -j %s", s.name, 1/float64(left), sep))
			} else {
				rules = append(rules, fmt.Sprintf("-A KUBE-SVC-%s -j %s", s.name, sep))
			}
			rules = append(rules, fmt.Sprintf("-A %s -p %s -j DNAT --to-destination %s:%d", sep, s.proto, ep, s.port))
		}
	}
	b.WriteString("-A PREROUTING -j KUBE-SERVICES\n")
	for _, r := range rules {
		b.WriteString(r + "\n")
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// nft loads a ruleset into namespace ns.
func (h *harness) nft(ns, rules string) error {
	_, err := runIn(cmdTimeout, []byte(rules), "ip", "netns", "exec", ns, "nft", "-f", "-")
	return err
}

// uvsRules is the ipvsadm-save rules file for uvsd in method fwd.
func (h *harness) uvsRules(fwd string, udpOnly bool) string {
	var b strings.Builder
	svc := func(proto string, port int, sched string) {
		fmt.Fprintf(&b, "-A %s %s:%d -s %s\n", proto, VIP, port, sched)
		for _, be := range h.topo.Backends {
			fmt.Fprintf(&b, "-a %s %s:%d -r %s:%d %s -w 1\n", proto, VIP, port, be.Addr, port, fwd)
		}
	}
	svc("-u", UDPPort, "rr")
	if !udpOnly {
		svc("-t", HTTPPort, "rr")
		svc("-t", IperfPort, "sh")
	}
	return b.String()
}

// startUVS starts uvsd in the director namespace pinned to the director
// core, and prepares the real servers for DR and TUN. conns > 0 sets the
// connection table's capacity.
func (h *harness) startUVS(fwd, io string, conns int) error {
	return h.startUVSWorkers(fwd, io, conns, 1)
}

// startUVSWorkers is startUVS with n workers: with one, uvsd is pinned to
// the director core; with more, it runs on both CPUs (the generator's
// too) and the kernel places its workers.
func (h *harness) startUVSWorkers(fwd, io string, conns, n int, extra ...string) error {
	switch fwd {
	case "-g", "-i":
		mode := map[string]string{"-g": "dr", "-i": "tun"}[fwd]
		for _, be := range h.topo.Backends {
			args := []string{mode, "up", "--vip", VIP.String(), "--state-dir", h.rsState(be)}
			if mode == "tun" {
				args = append(args, h.rsArgs...)
			}
			if _, err := nsRun(cmdTimeout, be.NS, dirCPU, append([]string{filepath.Join(h.bin, "uvs-rs")}, args...)...); err != nil {
				return err
			}
		}
	}
	rules := filepath.Join(h.tmp, "uvs.rules")
	if err := os.WriteFile(rules, []byte(h.uvsRules(fwd, conns > 0)), 0o644); err != nil {
		return err
	}
	args := []string{filepath.Join(h.bin, "uvsd"), "--rules", rules, "--iface", h.dirIfaces(), "--workers", strconv.Itoa(n), "--log-level", "info"}
	if conns > 0 {
		args = append(args, "--conns", strconv.Itoa(conns))
	}
	// FULLNAT takes uvsd's default local-port range (outside
	// ip_local_port_range); an explicit range overlapping it is refused.
	if io != "" {
		args = append(args, "--io", io)
	}
	args = append(args, extra...)
	cpu := dirCPU
	if n > 1 {
		cpu = -1
		args = append([]string{"nice", "-n", "-20", "taskset", "-c", "0," + strconv.Itoa(dirCPU)}, args...)
	}
	p, err := start("uvsd", h.topo.Dir, cpu, args...)
	if err != nil {
		return err
	}
	h.uvsd = p
	// uvsd answers its control socket once its workers run.
	uvsadm := filepath.Join(h.bin, "uvsadm")
	if err := p.waitFor(15*time.Second, "answer to uvsadm -Ln", func() bool {
		_, err := nsRun(2*time.Second, h.topo.Dir, -1, "env", "UVS_NO_AUTOSTART=1", uvsadm, "-Ln")
		return err == nil
	}); err != nil {
		_ = p.stop(2 * time.Second)
		h.uvsd = nil
		_, _ = nsRun(cmdTimeout, h.topo.Dir, -1, filepath.Join(h.bin, "uvsd"), "--cleanup")
		return err
	}
	return nil
}

// stopUVS stops uvsd with SIGTERM and checks that it removed its kernel
// hooks; then it undoes the real servers' DR/TUN setup.
func (h *harness) stopUVS(fwd string) error {
	var errs []error
	if h.uvsd != nil {
		if err := h.uvsd.stop(10 * time.Second); err != nil {
			errs = append(errs, fmt.Errorf("uvsd: %w", err))
		}
		h.uvsd = nil
	}
	if out, err := nsRun(cmdTimeout, h.topo.Dir, -1, "nft", "list", "tables"); err == nil && strings.Contains(out, "netdev uvs") {
		errs = append(errs, fmt.Errorf("uvsd left its nftables table behind; removed with uvsd --cleanup"))
		_, _ = nsRun(cmdTimeout, h.topo.Dir, -1, filepath.Join(h.bin, "uvsd"), "--cleanup")
	}
	switch fwd {
	case "-g", "-i":
		mode := map[string]string{"-g": "dr", "-i": "tun"}[fwd]
		for _, be := range h.topo.Backends {
			if _, err := nsRun(cmdTimeout, be.NS, -1, filepath.Join(h.bin, "uvs-rs"), mode, "down", "--vip", VIP.String(),
				"--state-dir", h.rsState(be)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return firstErr(errs...)
}

func (h *harness) rsState(be Backend) string { return filepath.Join(h.tmp, "rs-"+be.Dev) }

func (h *harness) dirIfaces() string {
	s := []string{"d0"}
	for _, be := range h.topo.Backends {
		s = append(s, be.DirDev)
	}
	return strings.Join(s, ",")
}

// startHAProxy puts the VIP on the director's lo and starts HAProxy on it,
// pinned to the director core.
func (h *harness) startHAProxy() error {
	if _, err := nsRun(cmdTimeout, h.topo.Dir, -1, "ip", "addr", "add", VIP.String()+"/32", "dev", "lo"); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, `global
    maxconn 8000
    nbthread 1
    pidfile %s/haproxy.pid
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend web
    bind %s:%d
    default_backend web
backend web
    balance roundrobin
`, h.tmp, VIP, HTTPPort)
	for _, be := range h.topo.Backends {
		fmt.Fprintf(&b, "    server rs%d %s:%d\n", be.N, be.Addr, HTTPPort)
	}
	fmt.Fprintf(&b, "frontend iperf\n    bind %s:%d\n    default_backend iperf\nbackend iperf\n    balance source\n", VIP, IperfPort)
	for _, be := range h.topo.Backends {
		fmt.Fprintf(&b, "    server rs%d %s:%d\n", be.N, be.Addr, IperfPort)
	}
	cfg := filepath.Join(h.tmp, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		return err
	}
	p, err := start("haproxy", h.topo.Dir, dirCPU, h.haproxyBin, "-db", "-f", cfg)
	if err != nil {
		return err
	}
	h.haproxy = p
	return p.waitFor(10*time.Second, "listening socket", func() bool {
		return dialIn(h.topo.Dir, netip.AddrPortFrom(VIP, HTTPPort)) == nil
	})
}

func (h *harness) stopHAProxy() error {
	var err error
	if h.haproxy != nil {
		err = h.haproxy.stop(5 * time.Second)
		h.haproxy = nil
	}
	_, err2 := nsRun(cmdTimeout, h.topo.Dir, -1, "ip", "addr", "del", VIP.String()+"/32", "dev", "lo")
	return firstErr(err, err2)
}

// dialIn opens and closes a TCP connection to ap from namespace ns.
func dialIn(ns string, ap netip.AddrPort) error {
	var c net.Conn
	err := inNetNS(ns, func() error {
		var err error
		c, err = net.DialTimeout("tcp", ap.String(), time.Second)
		return err
	})
	if c != nil {
		_ = c.Close()
	}
	return err
}
