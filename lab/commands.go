package lab

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/uvs-lb/uvs/lab/explain"
	"github.com/uvs-lb/uvs/sched"
)

// List prints the scenarios, the break-it exercises and the schedulers.
func (l *Lab) List(w io.Writer) {
	rows := [][]string{{"scenario", "mode", "seed", "what it shows"}}
	for _, s := range scenarios {
		rows = append(rows, []string{s.Name, s.Mode, s.Seed, s.Title})
	}
	printTable(w, rows, "")
	fmt.Fprintln(w)
	rows = [][]string{{"break-it exercise", "scenario", "what goes wrong"}}
	for _, e := range exercises {
		rows = append(rows, []string{e.Name, e.Scenario, e.Title})
	}
	printTable(w, rows, "")
	fmt.Fprintln(w)
	fmt.Fprintln(w, SchedulerNote(sched.Names()))
}

// Status prints the instances that are up.
func (l *Lab) Status(w io.Writer) error {
	insts, err := l.instances()
	if err != nil {
		return err
	}
	rows := [][]string{{"instance", "scenario", "scheduler", "state", "namespaces"}}
	for _, in := range insts {
		st, err := l.loadState(in)
		if err != nil || st == nil {
			continue
		}
		state := "up"
		if !l.healthy(st) {
			state = "broken (uvs-lab down " + in + ")"
		}
		rows = append(rows, []string{in, st.Scenario, st.Params.Sched, state, strings.Join(st.Namespaces, " ")})
	}
	if len(rows) == 1 {
		fmt.Fprintln(w, "no lab is up")
		return nil
	}
	printTable(w, rows, "")
	return nil
}

// Explain sends one request with a capture at every hop and prints the
// frame's addresses at each hop (package explain). The pcaps are kept in
// o.Pcap if given.
func (l *Lab) Explain(ctx context.Context, scenario string, o RunOptions) error {
	sc, ok := LookupScenario(scenario)
	if !ok {
		return unknownScenario(scenario)
	}
	_, err := l.withInstance(ctx, sc, sc.Name, o.Params, o.Keep, func(s *session) (*Report, error) {
		dir := o.Pcap
		if dir == "" {
			tmp, err := os.MkdirTemp("", "uvs-lab-explain-")
			if err != nil {
				return nil, err
			}
			defer os.RemoveAll(tmp)
			dir = tmp
		}
		caps, err := s.startCaptures(dir)
		if err != nil {
			return nil, err
		}
		req := s.pl.requests[0]
		rs, err := s.send(ctx, "", []Request{req}, sendOpts{})
		pcaps := s.stopCaptures(caps)
		if err != nil {
			return nil, err
		}
		vip, err := requestTarget(req.URL)
		if err != nil {
			return nil, err
		}
		var hops []explain.Hop
		for _, p := range pcaps {
			hops = append(hops, explain.Hop{Label: p.Label, Path: p.Path})
		}
		fmt.Fprintf(s.out, "== the connection %s -> %s, hop by hop (%s)\n", rs[0].Client, vip, s.sc.Mode)
		if err := explain.Flow(s.out, hops, rs[0].Client.Addr(), vip); err != nil {
			return nil, err
		}
		if o.Pcap != "" {
			for _, p := range pcaps {
				fmt.Fprintf(s.out, "pcap %-45s %s (%d frames)\n", p.Label, p.Path, p.Frames)
			}
		}
		return nil, nil
	})
	return err
}

// requestTarget is the VIP and port a request URL goes to.
func requestTarget(u string) (netip.AddrPort, error) {
	pu, err := url.Parse(u)
	if err != nil {
		return netip.AddrPort{}, err
	}
	a, err := netip.ParseAddr(pu.Hostname())
	if err != nil {
		return netip.AddrPort{}, err
	}
	port := 80
	if pu.Scheme == "https" {
		port = 443
	}
	if p := pu.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil {
			return netip.AddrPort{}, err
		}
	}
	return netip.AddrPortFrom(a, uint16(port)), nil
}

// DemoScenarios are what make demo runs.
var DemoScenarios = []string{"nat", "dr", "tun", "fullnat"}

// DemoRow is one line of the demo's summary.
type DemoRow struct {
	Report *Report
	Err    error
	Took   time.Duration
}

// Demo runs the demo scenarios one after the other with real traffic
// (instances "demo-<scenario>", always taken down), printing one line per
// scenario and then one summary table. The lessons are printed only with
// Options.Verbose.
func (l *Lab) Demo(ctx context.Context, requests int) ([]DemoRow, error) {
	if requests <= 0 {
		requests = DefaultRequests
	}
	var rows []DemoRow
	for _, name := range DemoScenarios {
		if ctx.Err() != nil {
			break
		}
		sc, _ := LookupScenario(name)
		fmt.Fprintf(l.opt.Out, "== %-8s %-14s %s (seed %s)\n", name, sc.Mode, sc.Title, sc.Seed)
		sub := *l
		var buf bytes.Buffer
		if !l.opt.Verbose {
			sub.opt.Out = &buf
		}
		start := time.Now()
		rep, err := sub.runInstance(ctx, sc, "demo-"+name, RunOptions{Requests: requests})
		rows = append(rows, DemoRow{Report: rep, Err: err, Took: time.Since(start)})
		if err != nil {
			// Show the lesson that failed.
			_, _ = l.opt.Out.Write(buf.Bytes())
			fmt.Fprintf(l.opt.Out, "   failed: %v\n", err)
		}
	}
	fmt.Fprintln(l.opt.Out)
	t := [][]string{{"mode", "scenario", "scheduler", "requests", "answers per real server", "errors", "took"}}
	failed := 0
	for _, r := range rows {
		if r.Report == nil {
			failed++
			continue
		}
		errs := strconv.Itoa(r.Report.Errors())
		if r.Err != nil {
			failed++
			errs += " (failed)"
		}
		t = append(t, []string{r.Report.Mode, r.Report.Scenario, r.Report.Sched, strconv.Itoa(len(r.Report.Results)),
			answersString(r.Report.Answers(), r.Report.Servers), errs, r.Took.Round(100 * time.Millisecond).String()})
	}
	printTable(l.opt.Out, t, "")
	fmt.Fprintln(l.opt.Out, "\nEvery request and the director's reason for it: uvs-lab run nat (or dr, tun, fullnat); all labs: uvs-lab list")
	if ctx.Err() != nil {
		return rows, fmt.Errorf("interrupted: %w", ctx.Err())
	}
	if failed > 0 {
		return rows, fmt.Errorf("%d of %d demo scenarios failed", failed, len(DemoScenarios))
	}
	return rows, nil
}

// runInstance is Run on a named instance that is always taken down.
func (l *Lab) runInstance(ctx context.Context, sc *Scenario, instance string, o RunOptions) (*Report, error) {
	return l.withInstance(ctx, sc, instance, o.Params, false, func(s *session) (*Report, error) {
		rep := s.report()
		err := s.defaultTraffic(ctx, o.Requests)
		rep.Results = s.results
		return rep, err
	})
}
