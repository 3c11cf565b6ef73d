package lab

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"time"
)

// haExerciseFlows is how many connections an HA exercise's failover keeps.
const haExerciseFlows = 40

// haExercises are the HA break-it exercises.
var haExercises = []*Exercise{
	{
		Name: "ha-sync-off", Scenario: "keepalived-dr",
		Title: "a director pair without connection sync: the failover drops every established connection",
		Why:   syncOffWhy,
		run:   runSyncOff,
	},
	{
		Name: "ha-backup-only-off", Scenario: "keepalived-ipvsadm",
		Title: "seed 004's two nodes, the backup also a director (backup_only=0): the packets loop between them",
		Why:   backupOnlyWhy,
		run:   runBackupOnlyOff,
	},
}

const syncOffWhy = "The backup takes the VIP over but never saw the master's connections. IPVS schedules only a\n" +
	"connection's first packet (a SYN): any other packet that matches no connection is dropped, so every\n" +
	"established transfer stalls and dies; only new connections work. The sync daemon (lvs_sync_daemon,\n" +
	"ipvsadm --start-daemon) sends the master's connections to the backup as they are made."

// syncRE reads mcast interface and syncid from ipvsadm -L --daemon.
var syncRE = regexp.MustCompile(`mcast=([^,\s]+), syncid=(\d+)`)

// runSyncOff stops the sync daemons, fails the master over under load,
// restores the master, starts the daemons and fails over again.
func runSyncOff(ctx context.Context, s *session, res *BreakResult) error {
	h := haPairDR
	master, err := s.waitMaster(ctx, h)
	if err != nil {
		return err
	}
	backup := h.backup().Role
	if master != h.master().Role {
		return fmt.Errorf("%s holds %s, not the configured MASTER %s", master, h.vrrp[0].VIP, h.master().Role)
	}
	fmt.Fprintf(s.out, "\n== it works: the sync daemons run (lvs_sync_daemon)\n")
	daemon := map[string]string{}
	for _, d := range h.directors {
		out, err := s.ipvsadmOn(ctx, d.Role, true, "-L", "--daemon")
		s.printOut(out)
		if err != nil {
			return err
		}
		daemon[d.Role] = out
	}
	m := syncRE.FindStringSubmatch(daemon[master])
	if m == nil {
		return fmt.Errorf("%s runs no master sync daemon (ipvsadm -L --daemon: %q)", master, daemon[master])
	}
	dev, syncid := m[1], m[2]

	fmt.Fprintf(s.out, "\n== break it: stop the sync daemons\n")
	if _, err := s.ipvsadmOn(ctx, master, true, "--stop-daemon", "master"); err != nil {
		return err
	}
	if _, err := s.ipvsadmOn(ctx, backup, true, "--stop-daemon", "backup"); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "\n== the master fails\n")
	broken := s.newHAReport(master, backup)
	if err := s.failover(ctx, h, broken, nil, haExerciseFlows, s.pl.clients[0]); err != nil {
		return err
	}
	res.HABroken = broken
	res.Symptom = !broken.Transfer.Continued() && broken.Survived < broken.FlowsAlive
	res.SymptomText = fmt.Sprintf("the transfer %s; %d of %d connections survived", transferWord(broken.Transfer), broken.Survived, broken.FlowsAlive)
	if res.Symptom {
		fmt.Fprintf(s.out, "symptom: %s\n", res.SymptomText)
	} else {
		fmt.Fprintf(s.out, "no symptom this time: %s\n", res.SymptomText)
	}
	fmt.Fprintf(s.out, "why:\n%s\n", indent(syncOffWhy, "  "))

	fmt.Fprintf(s.out, "\n== fix it: %s comes back (and takes the VIP back: priority 100 preempts), the sync daemons run again\n", master)
	for _, c := range h.cables(master) {
		if _, err := s.exec(ctx, c.Role, "ip", "link", "set", c.Dev, "up"); err != nil {
			return err
		}
	}
	if err := s.waitHolder(ctx, h, master); err != nil {
		return err
	}
	want := map[string]string{master: "master", backup: "backup"}
	for _, d := range h.directors {
		out, err := s.ipvsadmOn(ctx, d.Role, true, "-L", "--daemon")
		s.printOut(out)
		if err != nil {
			return err
		}
		if strings.Contains(out, want[d.Role]+" sync daemon") {
			s.note("uvsd already runs it: lvs_sync_daemon follows VI_1's transitions")
			continue
		}
		if _, err := s.ipvsadmOn(ctx, d.Role, true, "--start-daemon", want[d.Role], "--mcast-interface", dev, "--syncid", syncid); err != nil {
			return err
		}
	}
	fmt.Fprintf(s.out, "\n== the master fails again\n")
	fixed := s.newHAReport(master, backup)
	// New connections from another address: none may take the address
	// and port of a connection the first failover killed, which the
	// directors' tables and the real servers may still hold.
	s.note("the client's connections come from %s now, so that none reuses the address and port of one the first failover killed", haThirdClient)
	if err := s.failover(ctx, h, fixed, nil, haExerciseFlows, netip.MustParseAddr(haThirdClient)); err != nil {
		return err
	}
	res.HAFixed = fixed
	res.Fixed = fixed.Transfer.Continued() && fixed.FlowsAlive > 0 && fixed.Survived == fixed.FlowsAlive
	if res.Fixed {
		fmt.Fprintf(s.out, "fixed: the transfer continued, %d of %d connections survived\n", fixed.Survived, fixed.FlowsAlive)
	} else {
		fmt.Fprintf(s.out, "NOT fixed: the transfer %s, %d of %d connections survived\n", transferWord(fixed.Transfer), fixed.Survived, fixed.FlowsAlive)
	}
	return nil
}

func transferWord(t TransferStats) string {
	if t.Continued() {
		return "continued"
	}
	return "died"
}

func (s *session) newHAReport(master, backup string) *HAReport {
	rep := &HAReport{Master: master, Backup: backup, Answered: map[string]int{}, Via: map[string]int{},
		PersistVia: map[netip.AddrPort]string{}}
	s.ha = rep
	return rep
}

// waitHolder waits until role holds every VRRP address, alone.
func (s *session) waitHolder(ctx context.Context, h *haSpec, role string) error {
	ctx, cancel := context.WithTimeout(ctx, haBound)
	defer cancel()
	for {
		m, err := s.waitMaster(ctx, h)
		if err == nil && m == role {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s did not take the VRRP addresses back within %v (holder: %q)", role, haBound, m)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runBackupOnlyOff restarts node B's uvsd without backup_only, shows the
// loop, and restarts it with backup_only=1.
func runBackupOnlyOff(ctx context.Context, s *session, res *BreakResult) error {
	h := haTwoNodeIPVSADM
	master, err := s.waitMaster(ctx, h)
	if err != nil {
		return err
	}
	backup := h.backup().Role
	if master != h.master().Role {
		return fmt.Errorf("%s holds %s, not the configured MASTER %s", master, h.vrrp[0].VIP, h.master().Role)
	}
	var reqs []Request
	for _, c := range s.pl.clients {
		reqs = append(reqs, Request{Src: c, URL: fmt.Sprintf("http://%s/", netip.AddrPortFrom(h.vrrp[0].VIP, h.services[0].Port))})
	}
	fmt.Fprintf(s.out, "\n== it works: both nodes answer through %s (rr, persistence 50, four client addresses)\n", master)
	if _, _, err := s.haSend(ctx, h, "works", reqs, s.l.opt.RequestTimeout, false); err != nil {
		return err
	}

	fmt.Fprintf(s.out, "\n== break it: %s's uvsd restarted without --sysctl backup_only=1 (the kernel's default, 0)\n", backup)
	if err := s.restartUVSD(ctx, h, backup, false); err != nil {
		return err
	}
	before, err := s.inPkts(ctx, h)
	if err != nil {
		return err
	}
	s.note("the same four clients again, at once (timeout %v each)", symptomTimeout)
	broken, _, err := s.haSendParallel(ctx, h, "broken", reqs, symptomTimeout)
	if err != nil {
		return err
	}
	after, err := s.inPkts(ctx, h)
	if err != nil {
		return err
	}
	failed := 0
	for _, r := range broken {
		if !r.OK() {
			failed++
		}
	}
	grew := after[master] + after[backup] - before[master] - before[backup]
	fromB := after[backup] - before[backup]
	res.Broken = broken
	// The loop: B, a backup, forwarded packets (what A sent it) to a
	// real server, and requests went unanswered.
	res.Symptom = failed > 0 && fromB > 0
	res.SymptomText = fmt.Sprintf("%d of %d requests got no answer; %s, the backup, forwarded %d packets as a director; "+
		"the two directors forwarded %d packets for %d connections (a request is about 5)", failed, len(reqs), backup, fromB, grew, len(reqs))
	// Stop the loop at once: the fix restarts B's uvsd.
	fmt.Fprintf(s.out, "\n== fix it: %s's uvsd with --sysctl backup_only=1\n", backup)
	if err := s.restartUVSD(ctx, h, backup, true); err != nil {
		return err
	}
	if res.Symptom {
		fmt.Fprintf(s.out, "symptom (while broken): %s\n", res.SymptomText)
	} else {
		fmt.Fprintf(s.out, "no symptom this time: %s\n", res.SymptomText)
	}
	fmt.Fprintf(s.out, "why:\n%s\n", indent(backupOnlyWhy, "  "))
	// New client addresses' templates on A may still point at B: that
	// is fine now, B serves them itself.
	fixed, _, err := s.haSend(ctx, h, "fixed", reqs, s.l.opt.RequestTimeout, false)
	if err != nil {
		return err
	}
	res.After = fixed
	ok := len(fixed) > 0
	for _, r := range fixed {
		ok = ok && r.OK()
	}
	res.Fixed = ok
	if ok {
		fmt.Fprintf(s.out, "fixed: every request answered (%s)\n", answersString(countAnswers(fixed), serverNames(s.pl.servers)))
	} else {
		fmt.Fprintf(s.out, "NOT fixed: %d of %d requests answered\n", len(fixed)-failedCount(fixed), len(fixed))
	}
	return nil
}

func countAnswers(rs []Result) map[string]int {
	m := map[string]int{}
	for _, r := range rs {
		if r.OK() {
			m[r.Answer]++
		}
	}
	return m
}

// restartUVSD stops role's uvsd and starts it again the ipvsadm way, with
// or without backup_only, and its backup sync daemon.
func (s *session) restartUVSD(ctx context.Context, h *haSpec, role string, backupOnly bool) error {
	name := "uvsd " + role
	i := s.procIndex(name)
	if i < 0 {
		return fmt.Errorf("%s is not recorded in the state", name)
	}
	p := s.st.Procs[i]
	fmt.Fprintf(s.out, "[%s]# kill %d    # uvsd\n", role, p.PID)
	if err := p.Stop(5 * time.Second); err != nil {
		return err
	}
	s.st.Procs = append(s.st.Procs[:i], s.st.Procs[i+1:]...)
	if err := s.l.saveState(s.st); err != nil {
		return err
	}
	if _, err := s.run(ctx, step{kind: stepDaemon, role: role, show: true, name: name, ready: readyServing,
		argv: uvsdIPVSADMArgs(role, backupOnly)}); err != nil {
		return err
	}
	_, err := s.ipvsadmOn(ctx, role, true, "--start-daemon", "backup", "--mcast-interface", h.syncDev, "--syncid", haSyncID(h))
	return err
}

// inPkts sums each director's incoming packets to its real servers
// (ipvsadm -Ln --stats --exact, the "->" lines), printing the listings.
func (s *session) inPkts(ctx context.Context, h *haSpec) (map[string]uint64, error) {
	sum := map[string]uint64{}
	for _, d := range h.directors {
		out, err := s.ipvsadmOn(ctx, d.Role, true, "-Ln", "--stats", "--exact")
		s.printOut(out)
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) >= 4 && f[0] == "->" {
				var v uint64
				if _, err := fmt.Sscan(f[3], &v); err == nil {
					sum[d.Role] += v
				}
			}
		}
	}
	return sum, nil
}

// haSendParallel sends the requests at once.
func (s *session) haSendParallel(ctx context.Context, h *haSpec, phase string, reqs []Request, timeout time.Duration) ([]Result, []string, error) {
	cl, err := newClient(s.ns(s.pl.client), s.st.NextPort, "", timeout)
	if err != nil {
		return nil, nil, err
	}
	out := make([]Result, len(reqs))
	var wg sync.WaitGroup
	for i, rq := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = cl.do(ctx, rq)
			out[i].Phase = phase
		}()
	}
	wg.Wait()
	for i := range out {
		out[i].N = len(s.results) + i + 1
	}
	s.st.NextPort = cl.nextPort()
	if err := s.l.saveState(s.st); err != nil {
		return nil, nil, err
	}
	via := s.matchHA(h, out)
	s.results = append(s.results, out...)
	s.haTable(out, via)
	return out, via, nil
}

const backupOnlyWhy = "Both machines are directors and real servers. The master forwards a connection to B by direct\n" +
	"routing (the frame keeps dst=VIP); a B that is still a director sees a packet for a virtual service and\n" +
	"schedules it again, maybe to A, whose director sends it back to B ... (seed 004: 两台机器互相来回发数据包，\n" +
	"甚至死循环下去). net.ipv4.vs.backup_only=1 (uvsd --sysctl backup_only=1) turns the director off while the\n" +
	"backup sync daemon runs, so B only serves what it is given."
