package lab

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ECMPReport is what the ecmp scenario measured.
type ECMPReport struct {
	Route    string   // the router's route to the VIP before any failure
	NextHops []string // its next hops, as director roles
	// The spread of ecmpShort short connections: per director (from the
	// directors' traces) and per real server (who answered).
	Short       int
	ShortErrors int
	Undecided   int // answered, but in no director's trace
	PerDirector map[string]int
	PerServer   map[string]int
	// The failovers: uvsd killed on dir1, then dir2's cable pulled.
	Kill, LinkDown *ECMPRound
	// FullNAT: the directors forward by FULLNAT (ecmp-fullnat), not DR.
	FullNAT bool
}

// ECMPRound is one failover under long-lived connections.
type ECMPRound struct {
	How      string // what failed
	Director string // the director that failed
	Flows    int
	// PerDirector is which director carried the flows before.
	PerDirector map[string]int
	// Withdrawn is the time from the failure to the router's route
	// without the director.
	Withdrawn time.Duration
	HopsAfter []string
	// Survived: answered a request sent after the route changed, from the
	// real server that answered it first, without an error.
	Survived int
	// Moved: flows that another director picked up (its trace holds a
	// decision for them after the failover); MovedSurvived of them
	// survived.
	Moved, MovedSurvived int
	// Stayed: flows on a surviving director that no other director
	// picked up; StayedSurvived of them survived.
	Stayed, StayedSurvived int
	// Stalled: no answer after the route changed and no error either,
	// within the round's window.
	Stalled int
	Errors  []string // the first few failures
}

// Share is Survived / Flows.
func (r *ECMPRound) Share() float64 {
	if r == nil || r.Flows == 0 {
		return 0
	}
	return float64(r.Survived) / float64(r.Flows)
}

func runECMP(ctx context.Context, s *session, _ int, fullnat bool) error {
	rep := &ECMPReport{PerDirector: map[string]int{}, PerServer: map[string]int{}, FullNAT: fullnat}
	s.ecmp = rep

	fmt.Fprintf(s.out, "\n== 1. the router's multipath route: one next hop per director that announces the VIP\n")
	if _, err := s.waitHops(ctx, len(ecmpDirectors)); err != nil {
		return err
	}
	out, err := s.birdc(ctx, "show", "protocols")
	fmt.Fprintf(s.out, "[router]# birdc show protocols\n")
	s.printOut(out)
	if err != nil {
		return err
	}
	out, _ = s.birdc(ctx, "show", "route", "all", ecmpVIP+"/32")
	fmt.Fprintf(s.out, "[router]# birdc show route all %s/32\n", ecmpVIP)
	s.printOut(out)
	var hops []string
	rep.Route, hops = s.vipRoute(ctx)
	rep.NextHops = hopNames(hops)
	fmt.Fprintf(s.out, "[router]# ip route show %s/32\n", ecmpVIP)
	s.printOut(rep.Route)

	if err := s.ecmpSpread(ctx, rep); err != nil {
		return err
	}

	goOn := "the connections go on"
	if fullnat {
		goOn = "the connections the router keeps on a survivor go on, the ones it moves are reset"
	}
	fmt.Fprintf(s.out, "\n== 3. %d long-lived connections; dir1's uvsd is killed (kill -9): the route shrinks, %s\n", ecmpFlows, goOn)
	first := ecmpDirectors[0]
	rep.Kill, err = s.ecmpRound(ctx, first.Role, ecmpFlows, 15*time.Second, func() (string, error) {
		i := s.uvsdProc(first.Role)
		if i < 0 {
			return "", fmt.Errorf("ecmp: uvsd %s is not recorded in the state", first.Role)
		}
		p := s.st.Procs[i]
		fmt.Fprintf(s.out, "[%s]# kill -9 %d    # uvsd\n", first.Role, p.PID)
		return "kill -9 uvsd on " + first.Role, syscall.Kill(p.PID, syscall.SIGKILL)
	})
	if err != nil {
		return err
	}
	s.note("a killed process's BGP session is closed by its kernel (FIN): BIRD withdraws at once, without waiting for the hold timer")

	second := ecmpDirectors[1]
	fmt.Fprintf(s.out, "\n== 4. %d new long-lived connections; %s's cable is pulled: its session ends when the hold timer (%d s) runs out\n",
		ecmpFlows, second.Role, ecmpHold)
	if fullnat {
		s.note("the dead director's own connections are lost with its local address whatever the router does: the cable to it is gone")
	}
	rep.LinkDown, err = s.ecmpRound(ctx, second.Role, ecmpFlows, 15*time.Second, func() (string, error) {
		_, err := s.exec(ctx, "switch", "ip", "link", "set", "p-"+second.Role, "down")
		return "ip link set p-" + second.Role + " down (the switch port)", err
	})
	if err != nil {
		return err
	}

	fmt.Fprintf(s.out, "\n== what it measured\n")
	fmt.Fprintf(s.out, "  spread of %d short connections over the directors: %s (errors %d)\n", rep.Short, shareString(rep.PerDirector, rep.Short), rep.ShortErrors)
	for _, r := range []*ECMPRound{rep.Kill, rep.LinkDown} {
		fmt.Fprintf(s.out, "  %s: route without it after %v; %d of %d connections survived (%.1f %%), %d picked up by another director, %d stalled, %d failed\n",
			r.How, r.Withdrawn.Round(time.Millisecond), r.Survived, r.Flows, 100*r.Share(), r.Moved, r.Stalled, r.Flows-r.Survived-r.Stalled)
		fmt.Fprintf(s.out, "    kept on a surviving director: %d of %d survived; moved to another director: %d of %d survived\n",
			r.StayedSurvived, r.Stayed, r.MovedSurvived, r.Moved)
	}
	if fullnat {
		fmt.Fprintf(s.out, "\nFULLNAT cannot keep a moved flow: the director that takes it over sends it to the same real server (mh)\n"+
			"but from its own local address and a port of its own, a connection the real server never saw, which it\n"+
			"resets. A FULLNAT flow lives in one director's state; only the flows the router keeps on their director\n"+
			"survive a failover. DR (run ecmp), or tunnels, keep every flow: the real server sees the client's own\n"+
			"addresses whichever director forwards.\n")
	}
	fmt.Fprintln(s.out)
	return nil
}

// ecmpSpread sends ecmpShort short connections from the client (new
// source port each) and counts who carried and who answered them.
func (s *session) ecmpSpread(ctx context.Context, rep *ECMPReport) error {
	fmt.Fprintf(s.out, "\n== 2. %d short connections from one client address: which director carried each, which real server answered\n", ecmpShort)
	cl, err := newClient(s.ns(s.pl.client), s.st.NextPort, "", s.l.opt.RequestTimeout)
	if err != nil {
		return err
	}
	s.note("the client: a new connection from a new source port each (by hand: ip netns exec %s curl http://%s/)", s.ns(s.pl.client), ecmpVIP)
	res := make([]Result, ecmpShort)
	since := time.Now()
	stop := s.l.prog.start(fmt.Sprintf("%d requests from the client", ecmpShort))
	var wg sync.WaitGroup
	next := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				res[i] = cl.do(ctx, s.pl.requests[0])
			}
		}()
	}
	for i := range res {
		next <- i
	}
	close(next)
	wg.Wait()
	stop()
	s.st.NextPort = cl.nextPort()
	if err := s.l.saveState(s.st); err != nil {
		return err
	}
	var want []netip.AddrPort
	for _, r := range res {
		if r.Client.IsValid() {
			want = append(want, r.Client)
		}
	}
	by, _ := s.waitDecisions(ctx, since, want)
	rep.Short = len(res)
	matrix := map[string]map[string]int{}
	rows := [][]string{{"#", "client", "router sent it to", "answered by"}}
	for i, r := range res {
		if !r.OK() {
			rep.ShortErrors++
			continue
		}
		rep.PerServer[r.Answer]++
		d, ok := by[r.Client]
		if !ok {
			rep.Undecided++
			d = "-"
		} else {
			rep.PerDirector[d]++
		}
		if matrix[d] == nil {
			matrix[d] = map[string]int{}
		}
		matrix[d][r.Answer]++
		if i < 8 {
			rows = append(rows, []string{fmt.Sprint(i + 1), r.Client.String(), d, r.Answer})
		}
	}
	fmt.Fprintln(s.out)
	printTable(s.out, rows, "  ")
	fmt.Fprintf(s.out, "  ...\n\n")
	rows = [][]string{{"director", "connections", "share", "answered by"}}
	for _, d := range ecmpDirectors {
		rows = append(rows, []string{d.Role, fmt.Sprint(rep.PerDirector[d.Role]),
			fmt.Sprintf("%.1f %%", 100*float64(rep.PerDirector[d.Role])/float64(max(rep.Short, 1))),
			answersString(matrix[d.Role], serverNames(s.pl.servers))})
	}
	if rep.Undecided > 0 {
		rows = append(rows, []string{"(no trace)", fmt.Sprint(rep.Undecided), "", answersString(matrix["-"], serverNames(s.pl.servers))})
	}
	printTable(s.out, rows, "  ")
	fmt.Fprintf(s.out, "  errors: %d\n", rep.ShortErrors)
	s.note("each director counts what it carried: ipvsadm -Ln --stats in each director's namespace")
	for _, d := range ecmpDirectors {
		out, err := s.ipvsadmOn(ctx, d.Role, true, "-Ln", "--stats")
		s.printOut(out)
		if err != nil {
			return err
		}
	}
	return nil
}

// shareString is "dir1=334 (33.4 %) dir2=...".
func shareString(m map[string]int, total int) string {
	var parts []string
	for _, d := range ecmpDirectors {
		parts = append(parts, fmt.Sprintf("%s=%d (%.1f %%)", d.Role, m[d.Role], 100*float64(m[d.Role])/float64(max(total, 1))))
	}
	return strings.Join(parts, " ")
}

// ecmpRound opens n long-lived connections (a request every
// haFlowInterval on each), lets fail take director dead down, times the
// router's withdrawal, and waits up to window for every connection to
// answer again.
func (s *session) ecmpRound(ctx context.Context, dead string, n int, window time.Duration, fail func() (string, error)) (*ECMPRound, error) {
	r := &ECMPRound{Director: dead, Flows: n, PerDirector: map[string]int{}}
	svc := netip.AddrPortFrom(netip.MustParseAddr(ecmpVIP), 80)
	since := time.Now()
	stop := s.l.prog.start(fmt.Sprintf("opening %d connections", n))
	flows, err := openFlows(ctx, s.ns(s.pl.client), s.pl.clients, svc, n)
	stop()
	if err != nil {
		return nil, err
	}
	defer closeFlows(flows)
	lctx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stopLoad(); wg.Wait() }()
	for i, f := range flows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-lctx.Done():
				return
			case <-time.After(haFlowInterval * time.Duration(i) / time.Duration(len(flows))):
			}
			f.run(lctx, haFlowInterval)
		}()
	}
	s.note("%d connections from %s, each a request every %v over HTTP keep-alive (one TCP connection each)", n, s.ns(s.pl.client), haFlowInterval)
	var srcs []netip.AddrPort
	for _, f := range flows {
		srcs = append(srcs, f.Src)
	}
	before, _ := s.waitDecisions(ctx, since, srcs)
	matrix := map[string]map[string]int{}
	for _, f := range flows {
		d := before[f.Src]
		if d == "" {
			d = "-"
		}
		r.PerDirector[d]++
		if matrix[d] == nil {
			matrix[d] = map[string]int{}
		}
		matrix[d][f.Server()]++
	}
	rows := [][]string{{"director", "connections", "answered by"}}
	for _, d := range ecmpDirectors {
		rows = append(rows, []string{d.Role, fmt.Sprint(r.PerDirector[d.Role]), answersString(matrix[d.Role], serverNames(s.pl.servers))})
	}
	printTable(s.out, rows, "  ")
	for _, d := range ecmpDirectors {
		if i := s.uvsdProc(d.Role); i < 0 || !s.st.Procs[i].Alive() {
			continue
		}
		out, err := s.ipvsadmOn(ctx, d.Role, true, "-Ln")
		s.printOut(out)
		if err != nil {
			return nil, err
		}
	}

	deadAddr := ""
	for _, d := range ecmpDirectors {
		if d.Role == dead {
			deadAddr = d.Addr
		}
	}
	_, hopsBefore := s.vipRoute(ctx)
	t0 := time.Now()
	if r.How, err = fail(); err != nil {
		return nil, err
	}
	var route string
	if err := waitFor(ctx, ecmpBound, func() (bool, error) {
		var hops []string
		route, hops = s.vipRoute(ctx)
		r.HopsAfter = hopNames(hops)
		return !slices.Contains(hops, deadAddr), nil
	}, "the router's route without "+dead); err != nil {
		return nil, err
	}
	tw := time.Now()
	r.Withdrawn = tw.Sub(t0)
	fmt.Fprintf(s.out, "[router]# ip route show %s/32    # %v after the failure (next hops before: %s)\n", ecmpVIP,
		r.Withdrawn.Round(time.Millisecond), strings.Join(hopNames(hopsBefore), " "))
	s.printOut(route)

	// Every connection answers again, or fails, or the window ends.
	stop = s.l.prog.start("waiting for the connections to answer through the survivors")
	_ = waitFor(ctx, window, func() (bool, error) {
		for _, f := range flows {
			if !f.failed() && !f.answeredAfter(tw) {
				return false, nil
			}
		}
		return true, nil
	}, "every connection answered after the route changed")
	stop()
	_, after := s.waitDecisions(ctx, since, srcs)
	moved := map[string]int{}
	for _, f := range flows {
		a, b := before[f.Src], after[f.Src]
		isMoved := a != "" && b != "" && a != b
		if isMoved {
			r.Moved++
			moved[a+" -> "+b]++
		} else if a != "" && a != dead {
			r.Stayed++
		}
		f.mu.Lock()
		switch {
		case f.err != nil:
			if len(r.Errors) < 5 {
				r.Errors = append(r.Errors, fmt.Sprintf("%s (%s, %s -> %s): %v", f.Src, f.server, a, b, f.err))
			}
		case f.other != "":
			if len(r.Errors) < 5 {
				r.Errors = append(r.Errors, fmt.Sprintf("%s: answered by %s, then by %s", f.Src, f.server, f.other))
			}
		case f.lastReq.After(tw):
			r.Survived++
			switch {
			case isMoved:
				r.MovedSurvived++
			case a != "" && a != dead:
				r.StayedSurvived++
			}
		default:
			r.Stalled++
		}
		f.mu.Unlock()
	}
	var mv []string
	for k, v := range moved {
		mv = append(mv, fmt.Sprintf("%s: %d", k, v))
	}
	sort.Strings(mv)
	fmt.Fprintf(s.out, "connections picked up by another director (its trace): %d (%s)\n", r.Moved, strings.Join(mv, ", "))
	for _, d := range ecmpDirectors {
		if d.Role == dead {
			continue
		}
		if i := s.uvsdProc(d.Role); i < 0 || !s.st.Procs[i].Alive() {
			continue
		}
		out, err := s.ipvsadmOn(ctx, d.Role, true, "-Ln")
		s.printOut(out)
		if err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(s.out, "%d of %d connections answered after the route changed, each by the real server it had (%.1f %%); %d stalled, %d failed\n",
		r.Survived, r.Flows, 100*r.Share(), r.Stalled, r.Flows-r.Survived-r.Stalled)
	fmt.Fprintf(s.out, "  kept on a surviving director: %d of %d survived; picked up by another director: %d of %d survived\n",
		r.StayedSurvived, r.Stayed, r.MovedSurvived, r.Moved)
	for _, e := range r.Errors {
		fmt.Fprintf(s.out, "  %s\n", e)
	}
	return r, nil
}
