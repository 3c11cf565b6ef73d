package lab

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// The health-check scenario's TCP_CHECK timers: seed 004 uses delay_loop
// 6, connect_timeout 10, nb_get_retry 3, delay_before_retry 3; the lab
// shortens them so that the checker acts within seconds.
const (
	kaDelayLoop        = 2 * time.Second
	kaConnectTimeout   = 1 * time.Second
	kaRetry            = 1
	kaDelayBeforeRetry = 1 * time.Second
)

// kaWorstCase is keepalived's worst case from a real server failing to its
// removal: the next probe within delay_loop, failing within
// connect_timeout, then retry × (delay_before_retry + connect_timeout).
func kaWorstCase() time.Duration {
	return kaDelayLoop + kaConnectTimeout + kaRetry*(kaDelayBeforeRetry+kaConnectTimeout)
}

// Bounds of the health-check run: how long the checker may take to notice
// (generous, for a loaded machine: the lab reports, it does not time), how
// often and how many requests the client sends meanwhile, and each
// request's timeout.
const (
	kaNoticeBound   = kaDelayLoop*3 + 20*time.Second
	kaProbeInterval = 250 * time.Millisecond
	kaMaxProbes     = 120
	kaRequestTO     = time.Second
)

// keepalivedConf is seed 004's keepalived.conf for the lab's VIP and real
// servers, with the lab's short timers.
func keepalivedConf(b *builder, vip string) string {
	var c strings.Builder
	secs := func(d time.Duration) int { return int(d / time.Second) }
	fmt.Fprintf(&c, "! Configuration File for keepalived (seed 004, short timers)\nglobal_defs {\n    router_id LVS_UVS_LAB\n"+
		"    ! log every failed check, not only the verdicts: the lab shows when the checker noticed\n"+
		"    checker_log_all_failures\n}\n\n")
	fmt.Fprintf(&c, "virtual_server %s 80 {\n    delay_loop %d\n    lb_algo %s\n    lb_kind DR\n", vip, secs(kaDelayLoop), b.p.Sched)
	if b.p.Persist > 0 {
		fmt.Fprintf(&c, "    persistence_timeout %d\n", b.p.Persist)
	}
	c.WriteString("    protocol TCP\n")
	for _, rs := range b.servers {
		fmt.Fprintf(&c, "\n    real_server %s 80 {\n        weight %s\n        TCP_CHECK {\n", rs.Addr, b.weight(rs.Name))
		fmt.Fprintf(&c, "            connect_timeout %d\n            retry %d\n            delay_before_retry %d\n            connect_port 80\n",
			secs(kaConnectTimeout), kaRetry, secs(kaDelayBeforeRetry))
		c.WriteString("        }\n    }\n")
	}
	c.WriteString("}\n")
	return c.String()
}

// HealthReport is what the health-check scenario measured.
type HealthReport struct {
	Stopped     time.Time // rs1's web server gone
	Removed     time.Time // uvsd's "Removing service" line
	Restarted   time.Time // rs1's web server accepting again
	Added       time.Time // uvsd's "Adding service" line
	RemovedLine string    // the log lines, as uvsd wrote them
	AddedLine   string
	// ListingAfter is ipvsadm -Ln once rs1 was removed.
	ListingAfter string
	// While the checker had not noticed, after the removal, after rs1
	// came back.
	During, After, Back []Result
}

// StopToRemoval is the time from rs1's web server stopping to uvsd
// removing rs1.
func (h *HealthReport) StopToRemoval() time.Duration { return h.Removed.Sub(h.Stopped) }

// RestartToAdd is the time from rs1 serving again to uvsd adding it back.
func (h *HealthReport) RestartToAdd() time.Duration { return h.Added.Sub(h.Restarted) }

func failedCount(rs []Result) int {
	n := 0
	for _, r := range rs {
		if !r.OK() {
			n++
		}
	}
	return n
}

// logLine is one line of uvsd's log.
type logLine struct {
	TS  time.Time
	Msg string
}

// zapTime is the layout of uvsd's log timestamps (zap's ISO8601).
const zapTime = "2006-01-02T15:04:05.000Z0700"

// parseLogLine parses one line of uvsd's log: zap's console encoding,
// "TIME<tab>LEVEL<tab>CALLER<tab>MESSAGE[<tab>FIELDS]".
func parseLogLine(line string) (logLine, bool) {
	f := strings.Split(line, "\t")
	if len(f) < 4 {
		return logLine{}, false
	}
	ts, err := time.Parse(zapTime, f[0])
	if err != nil {
		return logLine{}, false
	}
	return logLine{TS: ts, Msg: f[3]}, true
}

// readLog reads uvsd's log lines from byte offset from on.
func readLog(path string, from int64) ([]logLine, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if from > int64(len(b)) {
		from = int64(len(b))
	}
	var out []logLine
	sc := bufio.NewScanner(bytes.NewReader(b[from:]))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if l, ok := parseLogLine(sc.Text()); ok {
			out = append(out, l)
		}
	}
	return out, nil
}

func logSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// waitLog polls uvsd's log from offset from until a line containing want
// appears, and returns it.
func waitLog(ctx context.Context, path string, from int64, want string, timeout time.Duration) (logLine, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		lines, err := readLog(path, from)
		if err != nil {
			return logLine{}, err
		}
		if i := slices.IndexFunc(lines, func(l logLine) bool { return strings.Contains(l.Msg, want) }); i >= 0 {
			return lines[i], nil
		}
		select {
		case <-ctx.Done():
			return logLine{}, fmt.Errorf("uvsd did not log %q within %v: %w", want, timeout, ctx.Err())
		case <-t.C:
		}
	}
}

// procIndex finds a recorded process by name.
func (s *session) procIndex(name string) int {
	return slices.IndexFunc(s.st.Procs, func(p Proc) bool { return p.Name == name })
}

// listed reports whether ipvsadm -Ln output lists real server ap.
func listed(listing, ap string) bool {
	for _, line := range strings.Split(listing, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "->" && f[1] == ap {
			return true
		}
	}
	return false
}

// waitListed polls ipvsadm -Ln (not printed) until it lists real server
// ap, or no longer does (want false), and returns the listing.
func (s *session) waitListed(ctx context.Context, ap string, want bool) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		out, err := s.ipvsadm(ctx, false, "-Ln")
		if err != nil {
			return out, err
		}
		if listed(out, ap) == want {
			return out, nil
		}
		select {
		case <-ctx.Done():
			return out, fmt.Errorf("ipvsadm -Ln: %s listed %v, want %v:\n%s", ap, !want, want, out)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// runHealthCheck is seed 004's story: both real servers answer; rs1's web
// server stops while the client keeps sending; keepalived's TCP_CHECK
// notices and uvsd removes rs1; rs1 comes back and is added again.
func runHealthCheck(ctx context.Context, s *session, n int) error {
	h := &HealthReport{}
	s.health = h
	rs1, rs2 := s.pl.servers[0], s.pl.servers[1]
	vs := fmt.Sprintf("[%s]:tcp:%d", s.pl.vip, s.pl.port)
	svc := func(rs realServer) string { return fmt.Sprintf("[%s]:tcp:%d", rs.Addr, s.pl.port) }
	rsAP := func(rs realServer) string { return fmt.Sprintf("%s:%d", rs.Addr, s.pl.port) }
	ui := s.procIndex("uvsd")
	if ui < 0 {
		return errors.New("health-check: uvsd is not recorded in the state")
	}
	logPath := s.st.Procs[ui].Log
	quote := func(l logLine, since time.Time) {
		at := ""
		if !since.IsZero() {
			at = fmt.Sprintf("  (%.1f s)", l.TS.Sub(since).Seconds())
		}
		fmt.Fprintf(s.out, "    uvsd: %q%s\n", l.Msg, at)
	}
	reqs := func(k int) []Request {
		var out []Request
		for range k {
			out = append(out, s.pl.requests[0])
		}
		return out
	}

	fmt.Fprintf(s.out, "\n== 1. both web servers up: the checker connects to port 80 of each every %v\n", kaDelayLoop)
	s.note("uvsd's log, in keepalived's words (%s)", logPath)
	for _, rs := range s.pl.servers {
		l, err := waitLog(ctx, logPath, 0, "TCP connection to "+svc(rs)+" success.", kaNoticeBound)
		if err != nil {
			return err
		}
		quote(l, time.Time{})
	}
	if _, err := s.send(ctx, "both up", reqs(n), sendOpts{}); err != nil {
		return err
	}

	fmt.Fprintf(s.out, "== 2. rs1's web server stops (seed 004's nginx: [rs1]# systemctl stop nginx)\n")
	hi := s.procIndex("httpd " + rs1.Name)
	if hi < 0 {
		return fmt.Errorf("health-check: httpd %s is not recorded in the state", rs1.Name)
	}
	web := s.st.Procs[hi]
	if err := s.listing(ctx); err != nil {
		return err
	}
	from := logSize(logPath)
	fmt.Fprintf(s.out, "[%s]# kill %d    # the lab's web server: uvs-lab httpd --name %s\n", rs1.Role, web.PID, rs1.Name)
	if err := web.Stop(3 * time.Second); err != nil {
		return err
	}
	h.Stopped = time.Now()
	s.st.Procs = slices.Delete(s.st.Procs, hi, hi+1)
	if err := s.l.saveState(s.st); err != nil {
		return err
	}

	fmt.Fprintf(s.out, "\n== 3. the client keeps sending, one request every %v (timeout %v each), until the checker acts\n", kaProbeInterval, kaRequestTO)
	type seen struct {
		l   logLine
		err error
	}
	removed := make(chan seen, 1)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		l, err := waitLog(wctx, logPath, from, "Removing service "+svc(rs1)+" from VS "+vs, kaNoticeBound)
		removed <- seen{l, err}
	}()
	var rm seen
	got := false
	for i := 0; !got && i < kaMaxProbes; i++ {
		start := time.Now()
		rs, err := s.send(ctx, "rs1 down", reqs(1), sendOpts{timeout: kaRequestTO, quiet: true})
		if err != nil {
			return err
		}
		rs[0].At = start
		h.During = append(h.During, rs[0])
		s.results[len(s.results)-1].At = start
		select {
		case rm = <-removed:
			got = true
		case <-time.After(time.Until(start.Add(kaProbeInterval))):
		}
	}
	if !got {
		select {
		case rm = <-removed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	lines, _ := readLog(logPath, from)
	s.timeline(h.During, lines, h.Stopped, rs1)
	if rm.err != nil {
		return fmt.Errorf("%s was not taken out of the pool: %w", rs1.Name, rm.err)
	}
	h.Removed, h.RemovedLine = rm.l.TS, rm.l.Msg
	fmt.Fprintf(s.out, "the checker noticed: uvsd removed %s %.1f s after its web server stopped; %d of %d requests failed meanwhile\n",
		rs1.Name, h.StopToRemoval().Seconds(), failedCount(h.During), len(h.During))
	// uvsd logs the line, then applies the change: wait for -Ln to agree.
	last, err := s.waitListed(ctx, rsAP(rs1), false)
	if err != nil {
		return err
	}
	h.ListingAfter = last
	if err := s.listing(ctx); err != nil {
		return err
	}
	after, err := s.send(ctx, "rs1 removed", reqs(n), sendOpts{})
	if err != nil {
		return err
	}
	h.After = after

	fmt.Fprintf(s.out, "== 4. rs1's web server comes back ([rs1]# systemctl start nginx)\n")
	from = logSize(logPath)
	i := slices.IndexFunc(s.pl.steps, func(st step) bool { return st.kind == stepDaemon && st.name == "httpd "+rs1.Name })
	if i < 0 {
		return fmt.Errorf("health-check: no httpd step for %s", rs1.Name)
	}
	st := s.pl.steps[i]
	st.show = true
	if _, err := s.run(ctx, st); err != nil {
		return err
	}
	h.Restarted = time.Now()
	for _, want := range []string{"TCP connection to " + svc(rs1) + " success.", "Adding service " + svc(rs1) + " to VS " + vs} {
		l, err := waitLog(ctx, logPath, from, want, kaNoticeBound)
		if err != nil {
			return err
		}
		quote(l, h.Restarted)
		h.Added, h.AddedLine = l.TS, l.Msg
	}
	if _, err := s.waitListed(ctx, rsAP(rs1), true); err != nil {
		return err
	}
	if err := s.listing(ctx); err != nil {
		return err
	}
	back, err := s.send(ctx, "rs1 back", reqs(n), sendOpts{})
	if err != nil {
		return err
	}
	h.Back = back

	fmt.Fprintf(s.out, "== what the checker cost (TCP_CHECK delay_loop %v, connect_timeout %v, retry %d, delay_before_retry %v)\n",
		kaDelayLoop, kaConnectTimeout, kaRetry, kaDelayBeforeRetry)
	fmt.Fprintf(s.out, "  %s stopped -> removed:   %.1f s  (keepalived's worst case: delay_loop + connect_timeout + retry × (delay_before_retry + connect_timeout) = %v + %v + %d × (%v + %v) = %v)\n",
		rs1.Name, h.StopToRemoval().Seconds(), kaDelayLoop, kaConnectTimeout, kaRetry, kaDelayBeforeRetry, kaConnectTimeout, kaWorstCase())
	fmt.Fprintf(s.out, "  failed requests before the removal: %d of %d (every %v); after it: %d of %d (all %s: %d)\n",
		failedCount(h.During), len(h.During), kaProbeInterval, failedCount(h.After), len(h.After), rs2.Name, countAnswer(h.After, rs2.Name))
	fmt.Fprintf(s.out, "  %s serving again -> re-added: %.1f s  (within one delay_loop, %v, plus connect time)\n\n",
		rs1.Name, h.RestartToAdd().Seconds(), kaDelayLoop)
	return nil
}

func countAnswer(rs []Result, name string) int {
	n := 0
	for _, r := range rs {
		if r.OK() && r.Answer == name {
			n++
		}
	}
	return n
}

// timeline prints the requests sent while rs1 was down, with uvsd's log
// lines about rs1 between them, each at its time since the stop.
func (s *session) timeline(rs []Result, lines []logLine, t0 time.Time, rs1 realServer) {
	rows := [][]string{{"#", "t", "client", "answered by", "director chose", "why (the director's reason) / uvsd's log"}}
	addr := "[" + rs1.Addr.String() + "]"
	var logs []logLine
	for _, l := range lines {
		if strings.Contains(l.Msg, addr) {
			logs = append(logs, l)
		}
	}
	emit := func(before time.Time) {
		for len(logs) > 0 && (before.IsZero() || logs[0].TS.Before(before)) {
			l := logs[0]
			logs = logs[1:]
			rows = append(rows, []string{"", fmt.Sprintf("%.1fs", l.TS.Sub(t0).Seconds()), "", "", "", "uvsd: " + l.Msg})
		}
	}
	for _, r := range rs {
		emit(r.At)
		row := s.resultRow(r)
		rows = append(rows, []string{row[0], fmt.Sprintf("%.1fs", r.At.Sub(t0).Seconds()), row[1], row[3], row[4], row[5]})
	}
	emit(time.Time{})
	fmt.Fprintln(s.out)
	printTable(s.out, rows, "  ")
	fmt.Fprintln(s.out)
}
