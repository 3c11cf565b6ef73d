package lab

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/uvs-lb/uvs/trace"
)

// HAFlows is how many concurrent connections the failover keeps open.
const HAFlows = 200

// haFlowInterval is how often each of them sends a request.
const haFlowInterval = 500 * time.Millisecond

// haBound bounds each wait of the HA runs: generous, for a loaded machine
// (the lab measures, it does not time).
const haBound = 30 * time.Second

// HAReport is what an HA run measured.
type HAReport struct {
	Master, Backup string // roles: who held the VIP first, who took it over
	MasterMAC      string // the VIP's MAC in the neighbour table before
	NeighBefore    string // ip neigh show VIP, before the failover
	NeighAfter     string // and after
	// Answered counts the answers per real server before the failover.
	Answered map[string]int
	// Via counts which director forwarded them.
	Via map[string]int

	// The failover (zero when the run did none).
	Pulled      time.Time     // the master's cable pulled
	VIPMoved    time.Duration // until the backup held the VIP
	MACMoved    time.Duration // until the neighbour table showed the backup's MAC
	MasterDown  time.Duration // VRRP's master-down interval of the backup
	SyncedFirst int           // connections the backup held before the failover
	Flows       int           // concurrent connections
	// FlowsAlive counts the flows whose real server lived on (all, but in
	// seed 004's two nodes those of the node that died).
	FlowsAlive int
	Survived   int // of FlowsAlive, those that kept answering after the move
	// FlowErrors are a few of the failures, for the report.
	FlowErrors []string
	Transfer   TransferStats
	// Persistent: the persistent client's requests (new connections),
	// before and after the failover.
	PersistBefore, PersistAfter []Result
	PersistServer               string
	// BackupListing is the new master's ipvsadm -Lnc after the failover.
	BackupListing string
	// PersistVia is which director forwarded each persistent request.
	PersistVia map[netip.AddrPort]string
}

// SurvivedShare is Survived / FlowsAlive.
func (r *HAReport) SurvivedShare() float64 {
	if r.FlowsAlive == 0 {
		return 0
	}
	return float64(r.Survived) / float64(r.FlowsAlive)
}

// vipHolders returns the directors that have vip on dev.
func (s *session) vipHolders(h *haSpec, dev string, vip netip.Addr) []string {
	var out []string
	for _, d := range h.directors {
		if hasAddr(s.ns(d.Role), dev, vip) {
			out = append(out, d.Role)
		}
	}
	return out
}

// hasAddr reports whether dev in namespace ns has address a.
func hasAddr(ns, dev string, a netip.Addr) bool {
	found := false
	_ = inNetNS(ns, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			return err
		}
		for _, x := range addrs {
			if p, err := netip.ParsePrefix(x.String()); err == nil && p.Addr() == a {
				found = true
			}
		}
		return nil
	})
	return found
}

// waitMaster waits until exactly one director holds every VRRP address
// and returns it.
func (s *session) waitMaster(ctx context.Context, h *haSpec) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, haBound)
	defer cancel()
	stop := s.l.prog.start("waiting for VRRP to elect a master")
	defer stop()
	for {
		var holder string
		ok := true
		for _, v := range h.vrrp {
			hs := s.vipHolders(h, v.Dev, v.VIP)
			if len(hs) != 1 || (holder != "" && hs[0] != holder) {
				ok = false
				break
			}
			holder = hs[0]
		}
		if ok {
			return holder, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no single director holds the VRRP addresses within %v (holders of %s: %v)", haBound,
				h.vrrp[0].VIP, s.vipHolders(h, h.vrrp[0].Dev, h.vrrp[0].VIP))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// neighMAC returns the MAC of addr in role's neighbour table ("" = none).
func (s *session) neighMAC(ctx context.Context, role string, addr netip.Addr) string {
	out, err := s.run(ctx, step{kind: stepNS, role: role, argv: []string{"ip", "neigh", "show", addr.String()}})
	if err != nil {
		return ""
	}
	f := strings.Fields(out)
	for i, x := range f {
		if x == "lladdr" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}

// haSend sends requests from the client and matches each with the
// decision in either director's trace. It returns the results and the
// director that decided each ("" = none).
func (s *session) haSend(ctx context.Context, h *haSpec, phase string, reqs []Request, timeout time.Duration, quiet bool) ([]Result, []string, error) {
	cl, err := newClient(s.ns(s.pl.client), s.st.NextPort, "", timeout)
	if err != nil {
		return nil, nil, err
	}
	out := make([]Result, len(reqs))
	for i, rq := range reqs {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		out[i] = cl.do(ctx, rq)
		out[i].Phase, out[i].N = phase, len(s.results)+i+1
	}
	s.st.NextPort = cl.nextPort()
	if err := s.l.saveState(s.st); err != nil {
		return nil, nil, err
	}
	via := s.matchHA(h, out)
	s.results = append(s.results, out...)
	if !quiet {
		s.haTable(out, via)
	}
	return out, via, nil
}

// matchHA fills each result's decision from the directors' traces and
// returns which director decided it.
func (s *session) matchHA(h *haSpec, rs []Result) []string {
	via := make([]string, len(rs))
	deadline := time.Now().Add(700 * time.Millisecond)
	for {
		missing := false
		for _, d := range h.directors {
			recs, err := trace.ReadFile(s.expand("@dir/trace-" + d.Role + ".jsonl"))
			if err != nil {
				continue
			}
			for i := range rs {
				r := &rs[i]
				if r.Decided || !r.Client.IsValid() {
					continue
				}
				for _, rec := range recs {
					if rec.Client == r.Client {
						r.Decided, r.Real, r.Why, via[i] = true, rec.Real, rec.Why, d.Role
					}
				}
			}
		}
		for _, r := range rs {
			if !r.Decided && r.Client.IsValid() && r.OK() {
				missing = true
			}
		}
		if !missing || time.Now().After(deadline) {
			return via
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *session) haTable(rs []Result, via []string) {
	rows := [][]string{{"#", "client", "request", "answered by", "via director", "director chose", "why (the director's reason)"}}
	for i, r := range rs {
		row := s.resultRow(r)
		v := via[i]
		if v == "" {
			v = "-"
		}
		rows = append(rows, []string{row[0], row[1], row[2], row[3], v, row[4], row[5]})
	}
	fmt.Fprintln(s.out)
	printTable(s.out, rows, "  ")
	fmt.Fprintln(s.out)
}

// ipvsadmOn runs ipvsadm on role, printed when show.
func (s *session) ipvsadmOn(ctx context.Context, role string, show bool, args ...string) (string, error) {
	return s.run(ctx, step{kind: stepNS, role: role, argv: append([]string{"ipvsadm"}, args...), show: show})
}

// connEntry is one line of ipvsadm -Lnc.
type connEntry struct {
	Proto, Expire, State  string
	Source, Virtual, Dest string
}

func parseConns(out string) []connEntry {
	var es []connEntry
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 6 && (f[0] == "TCP" || f[0] == "UDP" || f[0] == "SCTP") {
			es = append(es, connEntry{f[0], f[1], f[2], f[3], f[4], f[5]})
		}
	}
	return es
}

// established counts the ESTABLISHED connections to virtual in a -Lnc
// listing.
func established(es []connEntry, virtual string) int {
	n := 0
	for _, e := range es {
		if e.State == "ESTABLISHED" && e.Virtual == virtual {
			n++
		}
	}
	return n
}

// procLog returns the log of the process name on role.
func (s *session) procLog(role, name string) string {
	for _, p := range s.st.Procs {
		if p.Role == role && p.Name == name+" "+role {
			return p.Log
		}
	}
	return ""
}

// keepalivedLines returns the lines of role's keepalived log from byte
// offset from on that contain one of the words.
func (s *session) keepalivedLines(role string, from int64, words ...string) []string {
	b, err := os.ReadFile(s.procLog(role, "keepalived"))
	if err != nil || from > int64(len(b)) {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b[from:]), "\n") {
		for _, w := range words {
			if strings.Contains(line, w) {
				out = append(out, line)
				break
			}
		}
	}
	return out
}

// runHA is an HA scenario's run: who is master, requests through the VIP,
// and, with failover, the master's cable pulled under load.
func runHA(ctx context.Context, s *session, h *haSpec, n int, failover bool) error {
	rep := &HAReport{Answered: map[string]int{}, Via: map[string]int{}, PersistVia: map[netip.AddrPort]string{}}
	s.ha = rep
	vip := h.vrrp[0].VIP
	svc := netip.AddrPortFrom(vip, h.services[0].Port)

	fmt.Fprintf(s.out, "\n== 1. VRRP: which director is master\n")
	// A run on an instance an earlier run failed over: every cable back,
	// and the configured master takes over again (it preempts).
	for _, d := range h.directors {
		for _, c := range h.cables(d.Role) {
			if _, err := s.run(ctx, step{kind: stepNS, role: c.Role, argv: []string{"ip", "link", "set", c.Dev, "up"}}); err != nil {
				return err
			}
		}
	}
	if err := s.waitHolder(ctx, h, h.master().Role); err != nil {
		return err
	}
	master, err := s.waitMaster(ctx, h)
	if err != nil {
		return err
	}
	rep.Master = master
	for _, d := range h.directors {
		if d.Role != master {
			rep.Backup = d.Role
		}
	}
	for _, d := range h.directors {
		for _, v := range h.vrrp {
			out, err := s.exec(ctx, d.Role, "ip", "-4", "addr", "show", "dev", v.Dev)
			if err != nil {
				return err
			}
			s.printOut(out)
		}
	}
	s.note("%s holds %s: MASTER (priority %d); %s is BACKUP (priority %d). keepalived's log on %s:", master, vip,
		h.master().Prio, rep.Backup, h.backup().Prio, master)
	for _, l := range s.keepalivedLines(master, 0, "Entering MASTER STATE", "Sending gratuitous ARP") {
		fmt.Fprintf(s.out, "    %s\n", l)
		if strings.Contains(l, "gratuitous") {
			break
		}
	}
	for _, d := range h.directors {
		out, err := s.ipvsadmOn(ctx, d.Role, true, "-L", "--daemon")
		s.printOut(out)
		if err != nil {
			return err
		}
	}

	fmt.Fprintf(s.out, "\n== 2. requests to %s from the client\n", svc)
	var reqs []Request
	if h.twoNode {
		s.note("persistence_timeout 50: every connection from one address goes to one node, so the client uses four addresses")
		for i := range max(n, len(s.pl.clients)) {
			reqs = append(reqs, Request{Src: s.pl.clients[i%len(s.pl.clients)], URL: "http://" + svc.String() + "/"})
		}
	} else {
		for range n {
			reqs = append(reqs, Request{Src: s.pl.clients[0], URL: "http://" + svc.String() + "/"})
		}
	}
	res, via, err := s.haSend(ctx, h, "master", reqs, s.l.opt.RequestTimeout, false)
	if err != nil {
		return err
	}
	bySrc := map[netip.Addr]string{}
	for i, r := range res {
		if r.OK() {
			rep.Answered[r.Answer]++
			bySrc[r.Client.Addr()] = r.Answer
		}
		if via[i] != "" {
			rep.Via[via[i]]++
		}
	}
	nb := h.neighbour
	out, err := s.exec(ctx, nb.Role, "ip", "neigh", "show", vip.String())
	if err != nil {
		return err
	}
	rep.NeighBefore = out
	rep.MasterMAC = s.neighMAC(ctx, nb.Role, vip)
	s.printOut(out + s.neighOwner(out))
	fmt.Fprintf(s.out, "answers: %s; forwarded by: %s\n", answersString(rep.Answered, serverNames(s.pl.servers)), viaString(rep.Via))
	if !failover {
		return nil
	}
	fmt.Fprintf(s.out, "\n== 3. failover under load: a long transfer, a persistent client and %d connections through %s\n", HAFlows, master)
	return s.failover(ctx, h, rep, bySrc, HAFlows, s.pl.clients[0])
}

func serverNames(rs []realServer) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Name)
	}
	return out
}

func viaString(m map[string]int) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	if len(parts) == 0 {
		return "none seen in the traces"
	}
	return strings.Join(parts, " ")
}

// failover pulls the master's cable under load and measures what moved and
// what survived.
//
// The transfer and the connections come from flowSrc (the pairs; seed
// 004's two nodes use every client address but the persistent client's).
func (s *session) failover(ctx context.Context, h *haSpec, rep *HAReport, bySrc map[netip.Addr]string, nflows int, flowSrc netip.Addr) error {
	vip := h.vrrp[0].VIP
	svc := netip.AddrPortFrom(vip, h.services[0].Port)
	master, backup := rep.Master, rep.Backup
	dead := "" // the real server that dies with the master (seed 004)
	if h.twoNode {
		for _, rs := range s.pl.servers {
			if rs.Role == master {
				dead = rs.Name
			}
		}
	}
	// Sources: the transfer and the persistent client must reach a real
	// server that outlives the master.
	transferSrc, persistSrc := flowSrc, s.pl.clients[len(s.pl.clients)-1]
	persistSvc := netip.AddrPortFrom(vip, h.persistPort)
	if h.twoNode {
		persistSvc = svc
		var alive []netip.Addr
		for _, c := range s.pl.clients {
			if a, ok := bySrc[c]; ok && a != dead {
				alive = append(alive, c)
			}
		}
		if len(alive) == 0 {
			return fmt.Errorf("no client address was scheduled to the node that stays (answers by source: %v)", bySrc)
		}
		transferSrc, persistSrc = alive[0], alive[len(alive)-1]
	}

	lctx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	tr, err := startTransfer(s.ns(s.pl.client), transferSrc, svc, 10*time.Minute)
	if err != nil {
		return err
	}
	defer tr.stop()
	s.note("the transfer: %s downloads http://%s%s (4 KiB every 20 ms) from %s", tr.Src, svc, streamPath, s.ns(s.pl.client))
	var srcs []netip.Addr
	if h.twoNode {
		// Every address but the persistent client's: its own requests
		// show its template.
		for _, c := range s.pl.clients {
			if c != persistSrc {
				srcs = append(srcs, c)
			}
		}
	} else {
		srcs = []netip.Addr{flowSrc}
	}
	stop := s.l.prog.start(fmt.Sprintf("opening %d connections", nflows))
	flows, err := openFlows(ctx, s.ns(s.pl.client), srcs, svc, nflows)
	stop()
	if err != nil {
		return err
	}
	defer closeFlows(flows)
	var wg sync.WaitGroup
	for i, f := range flows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Spread the requests over the interval.
			select {
			case <-lctx.Done():
				return
			case <-time.After(haFlowInterval * time.Duration(i) / time.Duration(len(flows))):
			}
			f.run(lctx, haFlowInterval)
		}()
	}
	s.note("%d connections from %s, each a request every %v over HTTP keep-alive (one TCP connection each)", nflows, s.ns(s.pl.client), haFlowInterval)
	persistURL := "http://" + persistSvc.String() + "/"
	s.note("the persistent client %s: a new connection to %s every 300 ms (persistence_timeout 50)", persistSrc, persistSvc)
	pres, pvia, err := s.haSend(ctx, h, "persistent", []Request{{Src: persistSrc, URL: persistURL}, {Src: persistSrc, URL: persistURL},
		{Src: persistSrc, URL: persistURL}}, 3*time.Second, false)
	if err != nil {
		return err
	}
	for i, r := range pres {
		rep.PersistVia[r.Client] = pvia[i]
	}
	rep.PersistBefore = pres
	if pres[0].OK() {
		rep.PersistServer = pres[0].Answer
	}

	// The backup must hold the connections before the master dies.
	want := nflows + 1
	var synced []connEntry
	bound := haBound
	if out, err := s.ipvsadmOn(ctx, backup, false, "-L", "--daemon"); err != nil || !strings.Contains(out, "backup sync daemon") {
		s.note("%s runs no backup sync daemon (ipvsadm -L --daemon): it learns nothing", backup)
		bound = time.Second
	} else {
		s.note("the backup learns the master's connections from the sync daemon: waiting until its ipvsadm -Lnc holds them")
	}
	wctx, wcancel := context.WithTimeout(ctx, bound)
	for {
		out, err := s.ipvsadmOn(wctx, backup, false, "-Lnc")
		if err == nil {
			synced = parseConns(out)
			if established(synced, svc.String()) >= want {
				break
			}
		}
		if wctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	wcancel()
	rep.SyncedFirst = established(synced, svc.String())
	fmt.Fprintf(s.out, "[%s]# ipvsadm -Lnc | grep -c 'ESTABLISHED.*%s'\n    %d\n", backup, svc, rep.SyncedFirst)
	s.printConns(synced, persistSrc, tr.Src, svc)

	// The transfer has been going for a while before the pull.
	for time.Since(tr.started) < 2*time.Second && ctx.Err() == nil && !tr.failed() {
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Fprintf(s.out, "\n# pull %s's cable (seed 004: 断开A的eth0网线)\n", master)
	from := map[string]int64{}
	for _, d := range h.directors {
		from[d.Role] = logSize(s.procLog(d.Role, "keepalived"))
	}
	uvsdFrom := logSize(s.procLog(backup, "uvsd"))
	rep.Pulled = time.Now()
	for _, c := range h.cables(master) {
		if _, err := s.exec(ctx, c.Role, "ip", "link", "set", c.Dev, "down"); err != nil {
			return err
		}
	}
	t0 := rep.Pulled
	rep.MasterDown = masterDownInterval(haAdvertInt, h.backup().Prio)
	// The VIP on the backup, then its MAC in the neighbour table.
	wctx, wcancel = context.WithTimeout(ctx, haBound)
	backupMAC := s.pl.macs[backup+"/"+h.vrrp[0].Dev]
	for rep.VIPMoved == 0 || rep.MACMoved == 0 {
		now := time.Now()
		if rep.VIPMoved == 0 && hasAddr(s.ns(backup), h.vrrp[0].Dev, vip) {
			rep.VIPMoved = now.Sub(t0)
		}
		if rep.MACMoved == 0 && strings.EqualFold(s.neighMAC(wctx, h.neighbour.Role, vip), backupMAC) {
			rep.MACMoved = now.Sub(t0)
		}
		if wctx.Err() != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	wcancel()
	if rep.VIPMoved == 0 {
		return fmt.Errorf("%s did not take %s over within %v of the cable pull", backup, vip, haBound)
	}
	moved := t0.Add(rep.VIPMoved)

	// The connections carry on (or fail): wait until each flow of a live
	// real server answered a request sent after the move, or failed.
	persistDone := make(chan []Result, 1)
	var pmu sync.Mutex
	persistOK := 0 // answered requests sent after the move
	go func() {
		var out []Result
		for lctx.Err() == nil && len(out) < 200 {
			start := time.Now()
			rs, vs, err := s.haSend(lctx, h, "persistent", []Request{{Src: persistSrc, URL: persistURL}}, 3*time.Second, true)
			if err != nil || (lctx.Err() != nil && !rs[0].OK()) {
				// A request the lab cut by stopping the load is
				// neither answered nor refused: not reported.
				break
			}
			rs[0].At = start
			pmu.Lock()
			rep.PersistVia[rs[0].Client] = vs[0]
			if rs[0].OK() && start.After(moved) {
				persistOK++
			}
			pmu.Unlock()
			out = append(out, rs...)
			time.Sleep(time.Until(start.Add(300 * time.Millisecond)))
		}
		persistDone <- out
	}()
	stop = s.l.prog.start("waiting for every connection to answer through " + backup)
	wctx, wcancel = context.WithTimeout(ctx, haBound+flowTimeout)
	for wctx.Err() == nil {
		settled := true
		for _, f := range flows {
			if f.Server() != dead && !f.failed() && !f.answeredAfter(moved) {
				settled = false
				break
			}
		}
		pmu.Lock()
		persisted := persistOK >= 3
		pmu.Unlock()
		if settled && persisted && (tr.failed() || tr.since(moved.Add(time.Second)) || tr.stats(moved).Server == dead) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	wcancel()
	stop()
	// The verdicts first, then the load stops: closing the connections
	// ends the requests still waiting (those of a dead real server).
	rep.Flows = len(flows)
	for _, f := range flows {
		f.mu.Lock()
		if f.server != dead {
			rep.FlowsAlive++
			if f.err == nil && f.other == "" && f.lastReq.After(moved) {
				rep.Survived++
			} else if len(rep.FlowErrors) < 5 {
				why := fmt.Sprint(f.err)
				if f.other != "" {
					why = "answered by " + f.other + " after " + f.server
				} else if f.err == nil {
					why = "no answer to a request sent after the move"
				}
				rep.FlowErrors = append(rep.FlowErrors, fmt.Sprintf("%s (%s): %s", f.Src, f.server, why))
			}
		}
		f.mu.Unlock()
	}
	rep.Transfer = tr.stats(moved)
	stopLoad()
	closeFlows(flows)
	wg.Wait()
	rep.PersistAfter = <-persistDone

	fmt.Fprintf(s.out, "\n== what happened (t = 0 at the cable pull)\n")
	for _, d := range h.directors {
		for _, l := range s.keepalivedLines(d.Role, from[d.Role], "STATE", "removing VIPs", "setting VIPs", "Netlink reports") {
			fmt.Fprintf(s.out, "    [%s] keepalived: %s\n", d.Role, l)
		}
	}
	type event struct {
		at   time.Duration
		what string
	}
	events := []event{{rep.VIPMoved, fmt.Sprintf("%s holds %s (the lab saw it on %s)", backup, vip, h.vrrp[0].Dev)}}
	if rep.MACMoved > 0 {
		events = append(events, event{rep.MACMoved, fmt.Sprintf("the %s's neighbour entry for %s is %s's MAC %s", h.neighbour.Role, vip, backup, backupMAC)})
	}
	if lines, err := readLog(s.procLog(backup, "uvsd"), uvsdFrom); err == nil {
		for _, l := range lines {
			events = append(events, event{l.TS.Sub(t0), fmt.Sprintf("[%s] uvsd: %s", backup, l.Msg)})
		}
	}
	slices.SortStableFunc(events, func(a, b event) int { return cmp.Compare(a.at, b.at) })
	for _, e := range events {
		fmt.Fprintf(s.out, "    %5.2fs  %s\n", e.at.Seconds(), e.what)
	}
	out, err := s.exec(ctx, h.neighbour.Role, "ip", "neigh", "show", vip.String())
	if err != nil {
		return err
	}
	rep.NeighAfter = out
	s.printOut(out + s.neighOwner(out))
	out, err = s.ipvsadmOn(ctx, backup, true, "-L", "--daemon")
	s.printOut(out)
	if err != nil {
		return err
	}
	out, err = s.ipvsadmOn(ctx, backup, false, "-Lnc")
	if err != nil {
		return err
	}
	rep.BackupListing = out
	fmt.Fprintf(s.out, "[%s]# ipvsadm -Lnc   (excerpt: the persistent client, the transfer)\n", backup)
	s.printConns(parseConns(out), persistSrc, tr.Src, svc)
	if len(rep.PersistAfter) > 0 {
		fmt.Fprintf(s.out, "the persistent client %s after the failover (its first and last requests):\n", persistSrc)
		show := []Result{rep.PersistAfter[0], rep.PersistAfter[len(rep.PersistAfter)-1]}
		s.haTable(show, []string{rep.PersistVia[show[0].Client], rep.PersistVia[show[1].Client]})
	}
	s.haSummary(h, rep, dead)
	return nil
}

// printConns prints the -Lnc lines of the persistent client and the
// transfer, and the template.
func (s *session) printConns(es []connEntry, persistSrc netip.Addr, transfer netip.AddrPort, svc netip.AddrPort) {
	rows := [][]string{{"pro", "expire", "state", "source", "virtual", "destination"}}
	for _, e := range es {
		src, err := netip.ParseAddrPort(e.Source)
		if err != nil {
			continue
		}
		// The persistent client's template (port 0) and established
		// connections, and the transfer.
		if (src.Addr() == persistSrc && (src.Port() == 0 || e.State == "ESTABLISHED")) || src == transfer {
			rows = append(rows, []string{e.Proto, e.Expire, e.State, e.Source, e.Virtual, e.Dest})
		}
	}
	if len(rows) > 12 {
		rows = append(rows[:12], []string{"...", "", "", "", "", ""})
	}
	printTable(s.out, rows, "    ")
}

// haSummary prints the measured figures.
func (s *session) haSummary(h *haSpec, rep *HAReport, dead string) {
	fmt.Fprintf(s.out, "\n== the figures\n")
	fmt.Fprintf(s.out, "  VIP %s moved to %s in %.2f s after the cable pull; VRRP's master-down interval for priority %d is "+
		"3 × advert_int + (256 − %d)/256 × advert_int = %.3f s, counted from the master's last advertisement (at most %v before the pull)\n",
		h.vrrp[0].VIP, rep.Backup, rep.VIPMoved.Seconds(), h.backup().Prio, h.backup().Prio, rep.MasterDown.Seconds(), haAdvertInt)
	if rep.MACMoved > 0 {
		fmt.Fprintf(s.out, "  the %s's neighbour table had %s's MAC after %.2f s (gratuitous ARP)\n", h.neighbour.Role, rep.Backup, rep.MACMoved.Seconds())
	}
	fmt.Fprintf(s.out, "  the backup held %d established connections to %s:%d, synced, before the pull\n", rep.SyncedFirst, h.vrrp[0].VIP, h.services[0].Port)
	t := rep.Transfer
	state := "CONTINUED"
	if !t.Continued() {
		state = "DIED"
	}
	errText := ""
	if t.Err != nil {
		errText = fmt.Sprintf(" (%v, %.2f s after the pull)", t.Err, t.ErrAt.Sub(rep.Pulled).Seconds())
	}
	fmt.Fprintf(s.out, "  long transfer from %s: %s%s: %d KiB in the %.1f s before the move, %d KiB after, longest stall %.2f s\n",
		t.Server, state, errText, t.Before>>10, rep.Pulled.Add(rep.VIPMoved).Sub(t.Started).Seconds(), t.After>>10, t.Stall.Seconds())
	if dead != "" {
		fmt.Fprintf(s.out, "  connections: %d, of which %d to %s (they die with it: it was their real server)\n", rep.Flows, rep.Flows-rep.FlowsAlive, dead)
	}
	fmt.Fprintf(s.out, "  connections that kept answering through %s: %d of %d (%.1f %%)\n", rep.Backup, rep.Survived, rep.FlowsAlive, 100*rep.SurvivedShare())
	for _, e := range rep.FlowErrors {
		fmt.Fprintf(s.out, "    lost: %s\n", e)
	}
	ok, same, failed := 0, 0, 0
	for _, r := range rep.PersistAfter {
		if r.OK() {
			ok++
			if r.Answer == rep.PersistServer {
				same++
			}
		} else {
			failed++
		}
	}
	fmt.Fprintf(s.out, "  persistent client: on %s before; after the failover %d of %d answered by %s (%d unanswered while the VIP moved)\n\n",
		rep.PersistServer, same, ok, rep.PersistServer, failed)
}
