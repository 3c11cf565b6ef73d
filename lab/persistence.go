package lab

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// DefaultPersist is the persistence scenario's template timeout (-p) when
// none is given: short, so the expiry shows within the run.
const DefaultPersist = 5

// persistTimeout returns the -p the persistence scenario uses.
func (s *session) persistTimeout() int {
	if s.st.Params.Persist > 0 {
		return s.st.Params.Persist
	}
	return DefaultPersist
}

// persistentService configures one persistent service on the director, the
// real servers in the order given.
func (s *session) persistentService(ctx context.Context, svc []string, servers []realServer) error {
	p := strconv.Itoa(s.persistTimeout())
	if _, err := s.ipvsadm(ctx, true, append(append([]string{"-A"}, svc...), "-s", s.st.Params.Sched, "-p", p)...); err != nil {
		return err
	}
	for _, rs := range servers {
		w := "1"
		if x, ok := s.st.Params.Weights[rs.Name]; ok {
			w = strconv.Itoa(x)
		}
		if _, err := s.ipvsadm(ctx, true, append(append([]string{"-a"}, svc...), "-r", rs.Addr.String(), "-g", "-w", w)...); err != nil {
			return err
		}
	}
	return nil
}

// runPersistence shows PPC, PCC and PFWMC, then a template expiring.
func runPersistence(ctx context.Context, s *session, n int) error {
	vip := httpsVIP
	c1, c2 := s.pl.clients[0], s.pl.clients[1]
	servers := s.pl.servers
	reversed := []realServer{servers[1], servers[0]}
	rounds := max(1, n/4)
	each := func(ports ...string) []Request {
		var out []Request
		for _, c := range []netip.Addr{c1, c2} {
			for i := 0; i < rounds; i++ {
				for _, p := range ports {
					out = append(out, Request{Src: c, URL: vipURL(vip, p)})
				}
			}
		}
		return out
	}

	fmt.Fprintf(s.out, "\n== PPC (persistent port connections): one persistent service per port, one template per client and port\n")
	if err := s.clear(ctx); err != nil {
		return err
	}
	if err := s.persistentService(ctx, []string{"-t", vip + ":80"}, servers); err != nil {
		return err
	}
	s.note("the :443 service lists rs2 first, so the two ports' schedules visibly differ")
	if err := s.persistentService(ctx, []string{"-t", vip + ":443"}, reversed); err != nil {
		return err
	}
	if _, err := s.send(ctx, "PPC", each("80", "443"), sendOpts{}); err != nil {
		return err
	}
	if err := s.showTemplates(ctx, vip+":80"); err != nil {
		return err
	}
	if err := s.showTemplates(ctx, vip+":443"); err != nil {
		return err
	}

	fmt.Fprintf(s.out, "\n== PCC (persistent client connections): a port-0 service, one template per client for every port\n")
	if err := s.clear(ctx); err != nil {
		return err
	}
	if err := s.persistentService(ctx, []string{"-t", vip + ":0"}, servers); err != nil {
		return err
	}
	if _, err := s.send(ctx, "PCC", each("80", "443", "8080"), sendOpts{}); err != nil {
		return err
	}
	if err := s.showTemplates(ctx, vip+":0"); err != nil {
		return err
	}

	fmt.Fprintf(s.out, "\n== PFWMC (persistent firewall-mark connections): ports 80 and 443 marked 10, one template for both\n")
	if err := s.clear(ctx); err != nil {
		return err
	}
	if _, err := s.exec(ctx, s.pl.director, "iptables", "-t", "mangle", "-A", "PREROUTING", "-d", vip, "-p", "tcp",
		"-m", "multiport", "--dports", "80,443", "-j", "MARK", "--set-mark", "10"); err != nil {
		return err
	}
	if err := s.persistentService(ctx, []string{"-f", "10"}, servers); err != nil {
		return err
	}
	var reqs []Request
	for i := 0; i < max(2, n/2); i++ {
		reqs = append(reqs, Request{Src: c1, URL: vipURL(vip, []string{"80", "443"}[i%2])})
	}
	if _, err := s.send(ctx, "PFWMC", reqs, sendOpts{}); err != nil {
		return err
	}
	if err := s.showTemplates(ctx, "0.0.0.10:0"); err != nil {
		return err
	}

	// A template outlives its timeout while it still controls a
	// connection (then it is postponed by a minute, as in the kernel), so
	// the expiry is shown with plain http, whose connections leave the
	// table 1 s after their FIN (tcpfin). https connections end with a
	// reset here and stay 10 s in CLOSE.
	fmt.Fprintf(s.out, "\n== the template expires: %s sends http, then waits -p %d s (and tcpfin 1 s)\n", c2, s.persistTimeout())
	before, err := s.send(ctx, "PFWMC", []Request{{Src: c2, URL: vipURL(vip, "80")}, {Src: c2, URL: vipURL(vip, "80")}}, sendOpts{})
	if err != nil {
		return err
	}
	if err := s.waitTemplateGone(ctx, c2, "0.0.0.10:0"); err != nil {
		return err
	}
	s.note("%s's template is gone: it is scheduled afresh (-s %s)", c2, s.st.Params.Sched)
	after, err := s.send(ctx, "PFWMC expired", []Request{{Src: c2, URL: vipURL(vip, "80")}, {Src: c2, URL: vipURL(vip, "80")}}, sendOpts{})
	if err != nil {
		return err
	}
	if before[0].OK() && after[0].OK() {
		if before[0].Answer != after[0].Answer {
			s.note("before the expiry %s went to %s, after it to %s", c2, before[0].Answer, after[0].Answer)
		} else {
			s.note("before and after the expiry %s went to %s: the scheduler chose the same server again", c2, before[0].Answer)
		}
	}
	return nil
}

func vipURL(vip, port string) string {
	switch port {
	case "80":
		return "http://" + vip + "/"
	case "443":
		return "https://" + vip + "/"
	}
	return "http://" + vip + ":" + port + "/"
}

// clear removes the director's services and marks (the seed's "stop").
func (s *session) clear(ctx context.Context) error {
	if _, err := s.ipvsadm(ctx, true, "-C"); err != nil {
		return err
	}
	_, err := s.exec(ctx, s.pl.director, "iptables", "-t", "mangle", "-F", "PREROUTING")
	return err
}

// showTemplates prints the persistence templates (client port 0) of the
// service whose virtual address -Lnc shows as virtual ("VIP:80",
// "0.0.0.10:0" for fwmark 10).
func (s *session) showTemplates(ctx context.Context, virtual string) error {
	fmt.Fprintf(s.out, "[director]# ipvsadm -Lnc   (the templates of %s)\n", virtual)
	lines, err := s.templates(ctx, netip.Addr{}, virtual)
	if err != nil {
		return err
	}
	s.printOut(strings.Join(lines, "\n"))
	return nil
}

// templates returns the -Lnc lines of persistence templates (client port
// 0) for virtual, of client (any client if invalid).
func (s *session) templates(ctx context.Context, client netip.Addr, virtual string) ([]string, error) {
	out, err := s.ipvsadm(ctx, false, "-Lnc")
	if err != nil {
		return nil, err
	}
	var lines []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || !strings.HasSuffix(f[3], ":0") || f[4] != virtual {
			continue
		}
		if client.IsValid() && f[3] != client.String()+":0" {
			continue
		}
		lines = append(lines, strings.TrimSpace(line))
	}
	return lines, nil
}

// waitTemplateGone prints client's templates every second until none is
// left. It polls; the bound is the timeout plus the connection timeouts.
func (s *session) waitTemplateGone(ctx context.Context, client netip.Addr, virtual string) error {
	fmt.Fprintf(s.out, "[director]# ipvsadm -Lnc   (every second, %s's template only)\n", client)
	limit := time.Duration(s.persistTimeout())*time.Second + 15*time.Second
	deadline := time.Now().Add(limit)
	last := time.Time{}
	for {
		lines, err := s.templates(ctx, client, virtual)
		if err != nil {
			return err
		}
		if len(lines) == 0 {
			fmt.Fprintf(s.out, "    (no template for %s)\n", client)
			return nil
		}
		if time.Since(last) >= time.Second {
			for _, l := range lines {
				fmt.Fprintln(s.out, "    "+l)
			}
			last = time.Now()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the template of %s did not expire within %v", client, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
