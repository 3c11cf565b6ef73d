package lab

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// Exercise is a break-it exercise: a working scenario, one thing undone,
// the symptom the seeds warn about, and the fix.
type Exercise struct {
	Name     string
	Scenario string
	Title    string
	Why      string // the seeds' explanation, 1-3 lines

	breakIt func(ctx context.Context, s *session) error
	fix     func(ctx context.Context, s *session) error
	// counter is an nstat counter on the real servers that shows where the
	// packets die ("" = none).
	counter string
	// arp: the symptom is ARP answers for the VIP from real servers.
	arp bool
	// run, if set, is the whole exercise (the HA ones: break, symptom,
	// fix, check), in place of breakIt, observe and fix.
	run func(ctx context.Context, s *session, res *BreakResult) error
}

// BreakResult is what an exercise showed.
type BreakResult struct {
	Exercise string
	// Symptom: while broken, the symptom appeared (requests failed, or a
	// real server answered ARP for the VIP).
	Symptom     bool
	SymptomText string
	// Fixed: after the fix the symptom is gone and every request was
	// answered through the director.
	Fixed  bool
	Broken []Result // requests while broken
	After  []Result // requests after the fix
	// ARP answers for the VIP (DR exercises): who answered, broken and
	// fixed.
	ARPBroken, ARPFixed []string
	// HA exercises: the failover while broken and after the fix.
	HABroken, HAFixed *HAReport
	// ECMP exercises: the failover while broken and after the fix.
	ECMPBroken, ECMPFixed *ECMPRound
}

// Exercises returns the break-it exercises.
func Exercises() []*Exercise { return exercises }

func isExercise(name string) bool {
	return slices.ContainsFunc(exercises, func(e *Exercise) bool { return e.Name == name })
}

// rsSysctls sets sysctls on every real server of the plan that matches.
func rsEach(ctx context.Context, s *session, only func(realServer) bool, fn func(rs realServer) error) error {
	for _, rs := range s.pl.servers {
		if only != nil && !only(rs) {
			continue
		}
		if err := fn(rs); err != nil {
			return err
		}
	}
	return nil
}

var exercises = append([]*Exercise{
	{
		Name: "dr-no-vip-on-lo", Scenario: "dr",
		Title: "DR real servers without the VIP on lo",
		Why: "The director only changes the destination MAC: the packet still says dst=VIP. A real server that\n" +
			"does not own the VIP is not the destination, does not forward (ip_forward=0), and drops it\n" +
			"(seed 000: 将vip绑定到 lo 回环网卡上). The director scheduled it; nobody answers.",
		counter: "IpInAddrErrors",
		breakIt: func(ctx context.Context, s *session) error {
			return rsEach(ctx, s, nil, func(rs realServer) error {
				_, err := s.exec(ctx, rs.Role, "ip", "addr", "del", s.pl.vip.String()+"/32", "dev", "lo")
				return err
			})
		},
		fix: func(ctx context.Context, s *session) error {
			return rsEach(ctx, s, nil, func(rs realServer) error {
				_, err := s.exec(ctx, rs.Role, "ip", "addr", "add", s.pl.vip.String()+"/32", "dev", "lo", "label", "lo:1")
				return err
			})
		},
	},
	{
		Name: "dr-arp-ignore-off", Scenario: "dr",
		Title: "DR real servers answering ARP for the VIP (arp_ignore/arp_announce off)",
		Why: "With arp_ignore=0 a real server answers ARP for every address it owns, the VIP on lo included,\n" +
			"on its LAN interface. The router keeps whichever answer it got first: if it is a real server's MAC,\n" +
			"requests bypass the director and one server gets them all (seed 000: 修改RS上内核参数以限制arp通告及应答级别).",
		arp: true,
		breakIt: func(ctx context.Context, s *session) error {
			err := rsEach(ctx, s, nil, func(rs realServer) error {
				for _, kv := range []string{"net.ipv4.conf.all.arp_ignore=0", "net.ipv4.conf.lo.arp_ignore=0",
					"net.ipv4.conf.all.arp_announce=0", "net.ipv4.conf.lo.arp_announce=0"} {
					if _, err := s.exec(ctx, rs.Role, "sysctl", "-w", kv); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			s.note("the router forgets what it knew, and asks again")
			_, err = s.exec(ctx, s.pl.lanProbe.Role, "ip", "neigh", "flush", "dev", s.pl.lanProbe.Dev)
			return err
		},
		fix: func(ctx context.Context, s *session) error {
			err := rsEach(ctx, s, nil, func(rs realServer) error {
				for _, kv := range []string{"net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.lo.arp_ignore=1",
					"net.ipv4.conf.all.arp_announce=2", "net.ipv4.conf.lo.arp_announce=2"} {
					if _, err := s.exec(ctx, rs.Role, "sysctl", "-w", kv); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			s.note("the router's entry would otherwise stay on the real server until it goes stale")
			_, err = s.exec(ctx, s.pl.lanProbe.Role, "ip", "neigh", "flush", "dev", s.pl.lanProbe.Dev)
			return err
		},
	},
	{
		Name: "tun-no-decap", Scenario: "tun",
		Title: "TUN real servers that cannot decapsulate",
		Why: "TUN wraps the request in an outer IP header (protocol 4, IPIP). A real server without a tunnel\n" +
			"device (tunl0; here uvs-rs, since the kernel has no ipip module) has no handler for protocol 4\n" +
			"and drops the packet: \"RS的系统必须支持隧道\" (seed 002).",
		counter: "IpInUnknownProtos",
		breakIt: func(ctx context.Context, s *session) error {
			return rsEach(ctx, s, nil, func(rs realServer) error {
				_, err := s.exec(ctx, rs.Role, "uvs-rs", "tun", "down", "--vip", s.pl.vip.String())
				return err
			})
		},
		fix: func(ctx context.Context, s *session) error {
			return rsEach(ctx, s, nil, func(rs realServer) error {
				_, err := s.exec(ctx, rs.Role, "uvs-rs", "tun", "up", "--vip", s.pl.vip.String())
				return err
			})
		},
	},
	{
		Name: "rp-filter-on", Scenario: "tun",
		Title: "TUN real servers with strict reverse-path filtering",
		Why: "The decapsulated request arrives on the tunnel device from the client's address, but the route\n" +
			"back to the client leaves through eth0: strict rp_filter calls that spoofed and drops it. The seeds\n" +
			"set rp_filter=0 on tunl0 and all (seed 000: 不要原路检查). uvs-rs's tc program hands IPIP packets\n" +
			"over on eth0 itself, where the route back leads, so strict filtering would not bite there: the\n" +
			"exercise runs uvs-rs with --no-bpf, decapsulating into its tunnel device as tunl0 does.",
		counter: "TcpExtIPReversePathFilter",
		breakIt: func(ctx context.Context, s *session) error {
			return rsEach(ctx, s, nil, func(rs realServer) error {
				for _, argv := range [][]string{
					{"uvs-rs", "tun", "down", "--vip", s.pl.vip.String()},
					{"uvs-rs", "tun", "up", "--vip", s.pl.vip.String(), "--no-bpf"},
					{"sysctl", "-w", "net.ipv4.conf.all.rp_filter=1"},
				} {
					if _, err := s.exec(ctx, rs.Role, argv...); err != nil {
						return err
					}
				}
				return nil
			})
		},
		fix: func(ctx context.Context, s *session) error {
			return rsEach(ctx, s, nil, func(rs realServer) error {
				for _, argv := range [][]string{
					{"sysctl", "-w", "net.ipv4.conf.all.rp_filter=0"},
					{"uvs-rs", "tun", "down", "--vip", s.pl.vip.String()},
					{"uvs-rs", "tun", "up", "--vip", s.pl.vip.String()},
				} {
					if _, err := s.exec(ctx, rs.Role, argv...); err != nil {
						return err
					}
				}
				return nil
			})
		},
	},
	{
		Name: "nat-no-gateway", Scenario: "nat",
		Title: "NAT real servers whose gateway is not the director",
		Why: "In NAT the real server answers the client's own address. Only the director can turn the reply's\n" +
			"source back into the VIP, so the reply must go through it: the real servers' default gateway must\n" +
			"be the director (seed 000: 这里的网关必须指向lvs的ip地址,不然无法客户端通讯). Without it there is no route back.",
		counter: "IpOutNoRoutes",
		breakIt: func(ctx context.Context, s *session) error {
			return rsEach(ctx, s, nil, func(rs realServer) error {
				_, err := s.exec(ctx, rs.Role, "ip", "route", "del", "default")
				return err
			})
		},
		fix: func(ctx context.Context, s *session) error {
			return rsEach(ctx, s, nil, func(rs realServer) error {
				_, err := s.exec(ctx, rs.Role, "ip", "route", "add", "default", "via", dip)
				return err
			})
		},
	},
}, append(haExercises, ecmpExercises...)...) // the HA ones: ha.go, ha_break.go; ECMP: ecmp_break.go

// LookupExercise finds an exercise by name.
func LookupExercise(name string) (*Exercise, bool) {
	i := slices.IndexFunc(exercises, func(e *Exercise) bool { return e.Name == name })
	if i < 0 {
		return nil, false
	}
	return exercises[i], true
}

// symptomTimeout bounds each request while the lab is broken.
const symptomTimeout = 2 * time.Second

// Break runs a break-it exercise in its own instance (named after it):
// build the scenario, break it, show the symptom and why, fix it, show it
// works, and take it down unless keep.
func (l *Lab) Break(ctx context.Context, name string, keep bool) (*BreakResult, error) {
	ex, ok := LookupExercise(name)
	if !ok {
		var names []string
		for _, e := range exercises {
			names = append(names, e.Name)
		}
		return nil, fmt.Errorf("unknown exercise %q (one of: %s)", name, strings.Join(names, ", "))
	}
	sc, _ := LookupScenario(ex.Scenario)
	res := &BreakResult{Exercise: ex.Name}
	_, err := l.withInstance(ctx, sc, ex.Name, Params{}, keep, func(s *session) (*Report, error) {
		if ex.run != nil {
			return nil, ex.run(ctx, s, res)
		}
		return nil, s.exercise(ctx, ex, res)
	})
	return res, err
}

func (s *session) exercise(ctx context.Context, ex *Exercise, res *BreakResult) error {
	fmt.Fprintf(s.out, "\n== it works: a request through the director\n")
	if _, err := s.send(ctx, "works", s.pl.requests[:1], sendOpts{}); err != nil {
		return err
	}

	fmt.Fprintf(s.out, "\n== break it: %s\n", ex.Title)
	if err := ex.breakIt(ctx, s); err != nil {
		return err
	}
	before, err := s.counters(ctx, ex)
	if err != nil {
		return err
	}
	sym, text, broken, arps, err := s.observe(ctx, ex, true, before)
	if err != nil {
		return err
	}
	res.Symptom, res.SymptomText, res.Broken, res.ARPBroken = sym, text, broken, arps
	if sym {
		fmt.Fprintf(s.out, "symptom: %s\n", text)
	} else {
		fmt.Fprintf(s.out, "no symptom this time: %s\n", text)
	}
	fmt.Fprintf(s.out, "why:\n%s\n", indent(ex.Why, "  "))

	fmt.Fprintf(s.out, "\n== fix it\n")
	if err := ex.fix(ctx, s); err != nil {
		return err
	}
	sym2, text2, after, arps2, err := s.observe(ctx, ex, false, nil)
	if err != nil {
		return err
	}
	res.After, res.ARPFixed = after, arps2
	ok := !sym2 && len(after) > 0
	for _, r := range after {
		ok = ok && r.OK() && r.Decided
	}
	res.Fixed = ok
	if ok {
		fmt.Fprintf(s.out, "fixed: every request answered through the director (%s)\n", text2)
	} else {
		fmt.Fprintf(s.out, "NOT fixed: %s\n", text2)
	}
	return nil
}

// observe sends requests (and, for ARP exercises, probes who answers ARP
// for the VIP) and reports whether the exercise's symptom shows.
func (s *session) observe(ctx context.Context, ex *Exercise, broken bool, before map[string]uint64) (bool, string, []Result, []string, error) {
	var who []string
	rsAnswersARP := false
	if ex.arp {
		h := s.pl.lanProbe
		fmt.Fprintf(s.out, "# ARP probe from the %s's %s: who has %s? (like arping; every answer, not only the first)\n", h.Role, h.Dev, s.pl.vip)
		macs, err := arpProbe(s.ns(h.Role), h.Dev, s.pl.vip, 500*time.Millisecond)
		if err != nil {
			return false, "", nil, nil, err
		}
		for _, m := range macs {
			name := s.macOwner(m)
			who = append(who, name)
			fmt.Fprintf(s.out, "    reply from %s [%s]  %s\n", s.pl.vip, m, name)
			if !strings.HasPrefix(name, s.pl.director) {
				rsAnswersARP = true
			}
		}
		if len(macs) == 0 {
			fmt.Fprintln(s.out, "    (no reply)")
		}
	}
	n := 4
	o := sendOpts{}
	if broken && !ex.arp {
		n, o = 2, sendOpts{parallel: true, timeout: symptomTimeout}
	}
	var reqs []Request
	for i := 0; i < n; i++ {
		reqs = append(reqs, s.pl.requests[i%len(s.pl.requests)])
	}
	rs, err := s.send(ctx, map[bool]string{true: "broken", false: "fixed"}[broken], reqs, o)
	if err != nil {
		return false, "", nil, nil, err
	}
	failed, bypassed := 0, 0
	for _, r := range rs {
		if !r.OK() {
			failed++
		} else if !r.Decided {
			bypassed++
		}
	}
	if ex.arp {
		h := s.pl.lanProbe
		out, err := s.exec(ctx, h.Role, "ip", "neigh", "show", s.pl.vip.String())
		if err != nil {
			return false, "", nil, nil, err
		}
		s.printOut(out + s.neighOwner(out))
		text := fmt.Sprintf("ARP for the VIP answered by %s; %d of %d requests bypassed the director", strings.Join(who, ", "), bypassed, len(rs))
		return rsAnswersARP, text, rs, who, nil
	}
	if ex.counter != "" && broken {
		after, err := s.counters(ctx, ex)
		if err != nil {
			return false, "", nil, nil, err
		}
		var grew []string
		for role, v := range after {
			if v > before[role] {
				grew = append(grew, fmt.Sprintf("%s %s +%d", role, ex.counter, v-before[role]))
			}
		}
		slices.Sort(grew)
		decided := 0
		for _, r := range rs {
			if r.Decided && r.Real.IsValid() {
				decided++
			}
		}
		text := fmt.Sprintf("%d of %d requests got no answer; the director scheduled %d of them", failed, len(rs), decided)
		if len(grew) > 0 {
			text += "; the real servers dropped them: " + strings.Join(grew, ", ")
		}
		return failed == len(rs), text, rs, nil, nil
	}
	return failed == len(rs), fmt.Sprintf("%d of %d requests answered", len(rs)-failed, len(rs)), rs, nil, nil
}

// counters reads the exercise's nstat counter on every real server.
func (s *session) counters(ctx context.Context, ex *Exercise) (map[string]uint64, error) {
	if ex.counter == "" {
		return nil, nil
	}
	m := map[string]uint64{}
	for _, rs := range s.pl.servers {
		out, err := s.run(ctx, step{kind: stepNS, role: rs.Role, argv: []string{"nstat", "-asz", ex.counter}})
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && f[0] == ex.counter {
				var v uint64
				fmt.Sscan(f[1], &v)
				m[rs.Role] = v
			}
		}
	}
	return m, nil
}

// macOwner names the interface that has a MAC address.
func (s *session) macOwner(m net.HardwareAddr) string {
	for k, v := range s.pl.macs {
		if strings.EqualFold(v, m.String()) {
			return strings.Replace(k, "/", " ", 1)
		}
	}
	return "unknown"
}

// neighOwner annotates an ip neigh line with whose MAC it holds.
func (s *session) neighOwner(out string) string {
	f := strings.Fields(out)
	for i, x := range f {
		if x == "lladdr" && i+1 < len(f) {
			if m, err := net.ParseMAC(f[i+1]); err == nil {
				return "   <- " + s.macOwner(m)
			}
		}
	}
	return ""
}

func indent(s, p string) string {
	return p + strings.ReplaceAll(s, "\n", "\n"+p)
}
