package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/uvs-lb/uvs/lab/capture"
	"github.com/uvs-lb/uvs/trace"
)

// RunOptions are run's choices.
type RunOptions struct {
	Params
	Requests int    // requests to send (8)
	Pcap     string // directory for one pcap per hop ("" = none)
	Keep     bool   // leave the instance up afterwards
}

// DefaultRequests is how many requests run sends.
const DefaultRequests = 8

// Report is what a run showed.
type Report struct {
	Scenario string
	Instance string
	Mode     string
	Sched    string
	Servers  []string // real server names, in order
	Results  []Result
	Pcaps    []PcapFile
	// Health is the health-check scenario's measurements (nil for the
	// others).
	Health *HealthReport
	// HA is the HA scenarios' measurements (nil for the others).
	HA *HAReport
	// Sync is the sync scenario's measurements (nil for the others).
	Sync *SyncReport
	// ECMP is the ecmp scenario's measurements (nil for the others).
	ECMP *ECMPReport
}

// PcapFile is one hop's capture.
type PcapFile struct {
	Label  string
	Path   string
	Frames int
}

// Answers counts the answers per real server.
func (r *Report) Answers() map[string]int {
	m := map[string]int{}
	for _, x := range r.Results {
		if x.OK() {
			m[x.Answer]++
		}
	}
	return m
}

// Errors counts the requests that got no answer.
func (r *Report) Errors() int {
	n := 0
	for _, x := range r.Results {
		if !x.OK() {
			n++
		}
	}
	return n
}

// Run brings a scenario up if needed, sends requests from the client,
// prints which real server answered each and why the director chose it,
// and takes the scenario down again unless it was up before or o.Keep.
func (l *Lab) Run(ctx context.Context, scenario string, o RunOptions) (*Report, error) {
	sc, ok := LookupScenario(scenario)
	if !ok {
		return nil, unknownScenario(scenario)
	}
	if o.Requests < 0 || o.Requests > 10000 {
		return nil, fmt.Errorf("--requests %d: out of range 1..10000", o.Requests)
	}
	if o.Requests == 0 {
		o.Requests = DefaultRequests
	}
	return l.withInstance(ctx, sc, sc.Name, o.Params, o.Keep, func(s *session) (*Report, error) {
		rep := s.report()
		caps, err := s.startCaptures(o.Pcap)
		if err != nil {
			return rep, err
		}
		if sc.run != nil {
			err = sc.run(ctx, s, o.Requests)
		} else {
			err = s.defaultTraffic(ctx, o.Requests)
		}
		rep.Pcaps = s.stopCaptures(caps)
		rep.Results = s.results
		rep.Health = s.health
		rep.HA = s.ha
		rep.Sync = s.sync
		rep.ECMP = s.ecmp
		if err == nil {
			s.summary(rep)
		}
		return rep, err
	})
}

// withInstance brings an instance up, runs fn, and takes it down unless it
// was up already or keep is set. Ctrl-C (ctx cancelled) also tears down.
func (l *Lab) withInstance(ctx context.Context, sc *Scenario, instance string, p Params, keep bool,
	fn func(*session) (*Report, error)) (rep *Report, err error) {
	s, already, err := l.up(ctx, sc, instance, p)
	if err != nil {
		return nil, err
	}
	defer func() {
		if ctx.Err() != nil {
			fmt.Fprintf(l.opt.Err, "interrupted: removing %s\n", instance)
		} else if already || keep {
			fmt.Fprintf(l.opt.Out, "\n%s stays up: uvs-lab down %s removes it\n", instance, instance)
			return
		}
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), teardownTimeout)
		defer cancel()
		fmt.Fprintln(l.opt.Out)
		if derr := l.down(tctx, instance); derr != nil {
			err = errors.Join(err, derr)
		}
	}()
	rep, err = fn(s)
	if err == nil && ctx.Err() != nil {
		err = fmt.Errorf("interrupted: %w", ctx.Err())
	}
	return rep, err
}

func (s *session) report() *Report {
	r := &Report{Scenario: s.sc.Name, Instance: s.st.Instance, Mode: s.sc.Mode, Sched: s.st.Params.Sched}
	for _, rs := range s.pl.servers {
		r.Servers = append(r.Servers, rs.Name)
	}
	return r
}

// defaultTraffic sends n requests cycling through the plan's requests.
func (s *session) defaultTraffic(ctx context.Context, n int) error {
	var reqs []Request
	for i := 0; i < n; i++ {
		reqs = append(reqs, s.pl.requests[i%len(s.pl.requests)])
	}
	_, err := s.send(ctx, "", reqs, sendOpts{})
	return err
}

type sendOpts struct {
	parallel bool          // send all at once (symptom probes)
	timeout  time.Duration // per request (default: the lab's)
	quiet    bool          // no table
}

// send sends requests from the client, matches each with the director's
// decision and prints the table.
func (s *session) send(ctx context.Context, phase string, reqs []Request, o sendOpts) ([]Result, error) {
	timeout := o.timeout
	if timeout <= 0 {
		timeout = s.l.opt.RequestTimeout
	}
	ca := ""
	if s.pl.needCert {
		ca = filepath.Join(s.dir, "ca.pem")
	}
	cl, err := newClient(s.ns(s.pl.client), s.st.NextPort, ca, timeout)
	if err != nil {
		return nil, err
	}
	if !s.toldClient && len(reqs) > 0 {
		s.toldClient = true
		curl := "curl " + reqs[0].URL
		if strings.HasPrefix(reqs[0].URL, "https:") {
			curl = "curl --cacert " + filepath.Join(s.dir, "ca.pem") + " " + reqs[0].URL
		}
		s.note("the client sends each request with Go's net/http as a new connection from a new source port; by hand: ip netns exec %s %s",
			s.ns(s.pl.client), curl)
	}
	out := make([]Result, len(reqs))
	what := fmt.Sprintf("%d requests from the client", len(reqs))
	if len(reqs) == 1 {
		what = "1 request from the client"
	}
	stop := s.l.prog.start(what)
	if o.parallel {
		var wg sync.WaitGroup
		for i, rq := range reqs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out[i] = cl.do(ctx, rq)
			}()
		}
		wg.Wait()
	} else {
		for i, rq := range reqs {
			if ctx.Err() != nil {
				stop()
				return nil, ctx.Err()
			}
			out[i] = cl.do(ctx, rq)
		}
	}
	stop()
	for i := range out {
		out[i].N = len(s.results) + i + 1
		out[i].Phase = phase
	}
	s.st.NextPort = cl.nextPort()
	if err := s.l.saveState(s.st); err != nil {
		return nil, err
	}
	if err := s.matchTrace(out); err != nil {
		return nil, err
	}
	s.results = append(s.results, out...)
	if !o.quiet {
		s.table(out)
	}
	return out, nil
}

// matchTrace fills each result's decision from the director's trace file,
// waiting briefly for decisions the writer has not flushed yet.
func (s *session) matchTrace(rs []Result) error {
	deadline := time.Now().Add(700 * time.Millisecond)
	for {
		recs, err := trace.ReadFile(s.tracePath())
		if err != nil {
			return err
		}
		by := map[netip.AddrPort]trace.Record{}
		for _, r := range recs {
			if r.Client.IsValid() {
				by[r.Client] = r
			}
		}
		missing := false
		for i := range rs {
			r := &rs[i]
			if r.Decided || !r.Client.IsValid() {
				continue
			}
			if rec, ok := by[r.Client]; ok {
				r.Decided, r.Real, r.Why = true, rec.Real, rec.Why
			} else {
				missing = true
			}
		}
		if !missing || time.Now().After(deadline) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// serverName names a real server by its address.
func (s *session) serverName(a netip.Addr) string {
	for _, rs := range s.pl.servers {
		if rs.Addr == a {
			return rs.Name
		}
	}
	return a.String()
}

// table prints one line per request: who answered and why the director
// chose it.
func (s *session) table(rs []Result) {
	rows := [][]string{{"#", "client", "request", "answered by", "director chose", "why (the director's reason)"}}
	for _, r := range rs {
		rows = append(rows, s.resultRow(r))
	}
	fmt.Fprintln(s.out)
	printTable(s.out, rows, "  ")
	fmt.Fprintln(s.out)
}

// resultRow is a request's line of the table: #, client, request, answered
// by, director chose, why.
func (s *session) resultRow(r Result) []string {
	client := "-"
	if r.Client.IsValid() {
		client = r.Client.String()
	}
	ans := r.Answer
	if r.Err != nil {
		ans = "ERROR: " + r.Err.Error()
	}
	chose, why := "-", "no decision: the director never saw this connection"
	if r.Decided {
		why = r.Why
		if r.Real.IsValid() {
			chose = s.serverName(r.Real.Addr())
		} else {
			chose = "none"
		}
	}
	return []string{fmt.Sprint(r.N), client, r.URL, ans, chose, why}
}

// summary prints the answers per real server.
func (s *session) summary(rep *Report) {
	fmt.Fprintf(s.out, "%s, -s %s: %d requests; %s; errors %d\n", rep.Instance, rep.Sched, len(rep.Results),
		answersString(rep.Answers(), rep.Servers), rep.Errors())
	for _, p := range rep.Pcaps {
		fmt.Fprintf(s.out, "pcap %-24s %s (%d frames)\n", p.Label, p.Path, p.Frames)
	}
}

// answersString is "rs1=4 rs2=4", servers in order, others after.
func answersString(m map[string]int, servers []string) string {
	var parts []string
	for _, n := range servers {
		parts = append(parts, fmt.Sprintf("%s=%d", n, m[n]))
	}
	var other []string
	for k := range m {
		if !slices.Contains(servers, k) {
			other = append(other, k)
		}
	}
	sort.Strings(other)
	for _, k := range other {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

// startCaptures starts one capture per hop into dir.
func (s *session) startCaptures(dir string) ([]*hopCapture, error) {
	if dir == "" {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("--pcap: %w", err)
	}
	var caps []*hopCapture
	for i, h := range s.pl.hops {
		path := filepath.Join(dir, fmt.Sprintf("%d-%s-%s.pcap", i+1, h.Role, h.Dev))
		c, err := capture.Start(s.ns(h.Role), h.Dev, path)
		if err != nil {
			for _, c := range caps {
				_ = c.c.Stop()
			}
			return nil, fmt.Errorf("capture on %s: %w", h.Label, err)
		}
		caps = append(caps, &hopCapture{hop: h, path: path, c: c})
	}
	return caps, nil
}

type hopCapture struct {
	hop  hop
	path string
	c    *capture.Capture
}

func (s *session) stopCaptures(caps []*hopCapture) []PcapFile {
	var out []PcapFile
	for _, c := range caps {
		if err := c.c.Stop(); err != nil {
			fmt.Fprintf(s.l.opt.Err, "capture %s: %v\n", c.hop.Label, err)
		}
		out = append(out, PcapFile{Label: c.hop.Label, Path: c.path, Frames: c.c.Count()})
	}
	return out
}

// printTable prints rows in aligned columns; the last column is not padded.
func printTable(w interface{ Write([]byte) (int, error) }, rows [][]string, indent string) {
	width := map[int]int{}
	for _, r := range rows {
		for i, c := range r {
			if n := displayWidth(c); n > width[i] {
				width[i] = n
			}
		}
	}
	for _, r := range rows {
		var b strings.Builder
		b.WriteString(indent)
		for i, c := range r {
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", width[i]-displayWidth(c)+2))
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// displayWidth is the number of terminal columns s takes: East Asian wide
// characters (the seeds' Chinese titles) take two.
func displayWidth(s string) int {
	n := 0
	for _, r := range s {
		switch {
		case r >= 0x1100 && r <= 0x115F, r >= 0x2E80 && r <= 0xA4CF, r >= 0xAC00 && r <= 0xD7A3,
			r >= 0xF900 && r <= 0xFAFF, r >= 0xFE30 && r <= 0xFE4F, r >= 0xFF00 && r <= 0xFF60, r >= 0xFFE0 && r <= 0xFFE6:
			n += 2
		default:
			n++
		}
	}
	return n
}
