package sim

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/uvs-lb/uvs/sched"
	"github.com/uvs-lb/uvs/spec"
)

// fmtTime formats a simulated time as seconds with microseconds: "12.000250".
func fmtTime(t time.Duration) string {
	us := t.Microseconds()
	return strconv.FormatInt(us/1e6, 10) + "." + fmt.Sprintf("%06d", us%1e6)
}

// traceWriter prints the --trace lines.
type traceWriter struct {
	w   *bufio.Writer
	why bool
	err error
	hdr bool
}

func newTraceWriter(out io.Writer, why bool) *traceWriter {
	return &traceWriter{w: bufio.NewWriter(out), why: why}
}

func (tw *traceWriter) header() {
	if tw.hdr {
		return
	}
	tw.hdr = true
	s := fmt.Sprintf("%-12s %-24s %-24s %s", "time", "client", "service", "destination")
	if tw.why {
		s += "  reason"
	}
	tw.line(s)
}

func (tw *traceWriter) line(s string) {
	if tw.err == nil {
		_, tw.err = tw.w.WriteString(s + "\n")
	}
}

func (tw *traceWriter) conn(t time.Duration, a Arrival, k spec.ServiceKey, d *sched.Dest, why *sched.Reason) {
	tw.header()
	dest := "-"
	if d != nil {
		dest = d.AddrPort().String()
	}
	s := fmt.Sprintf("%12s %-24s %-24s %s", fmtTime(t), a.Client, k, dest)
	if tw.why {
		s = fmt.Sprintf("%12s %-24s %-24s %-21s  %s", fmtTime(t), a.Client, k, dest, why.String())
	}
	tw.line(s)
}

func (tw *traceWriter) event(t time.Duration, ev Event) {
	tw.header()
	tw.line(fmt.Sprintf("%12s event: %s", fmtTime(t), ev.Text))
}

func (tw *traceWriter) flush() error {
	if tw.err != nil {
		return tw.err
	}
	if tw.hdr {
		tw.line("")
	}
	if tw.err == nil {
		tw.err = tw.w.Flush()
	}
	return tw.err
}

// report writes the summary: one table per service.
func (s *simulator) report(out io.Writer) error {
	w := bufio.NewWriter(out)
	src := fmt.Sprintf("%d generated connections (%s, rate %g/s, hold %s, %d clients × %d ports)",
		s.nconn, protoName(s.genProto()), s.cfg.Workload.Rate, s.cfg.Workload.Hold, s.cfg.Workload.Clients, s.cfg.Workload.Ports)
	if s.gen == nil {
		src = fmt.Sprintf("%d connections from %s", s.nconn, s.cfg.TraceInName)
	}
	fmt.Fprintf(w, "uvs-sim: %s, %d events, seed %d, %ss simulated\n", src, len(s.events), s.cfg.Seed, fmtTime(s.end))
	for _, st := range s.svcs {
		s.reportService(w, st)
	}
	return w.Flush()
}

func (s *simulator) genProto() spec.Proto {
	if s.gen != nil && len(s.gen.targets) > 0 {
		return s.gen.targets[0].Proto
	}
	return 0
}

func (s *simulator) reportService(w *bufio.Writer, st *svcState) {
	cfg := st.svc.Config()
	fmt.Fprintf(w, "\n%s  %s", st.key, cfg.Scheduler)
	if cfg.Flags != 0 {
		fmt.Fprintf(w, " flags %#x", uint32(cfg.Flags))
	}
	if cfg.Persistent {
		fmt.Fprintf(w, " persistent %ds", cfg.Timeout)
	}
	fmt.Fprintf(w, ": %d connections, %d without destination", st.conns, st.dropped)
	if cfg.Persistent {
		fmt.Fprintf(w, ", %d templates created", st.templates)
	}
	w.WriteString("\n")

	// Rows: the destinations in kernel list order, then deleted ones in
	// the order they were first seen.
	type row struct {
		ds     *destStats
		weight string
	}
	var rows []row
	seen := make(map[*destStats]bool)
	for _, d := range st.svc.Dests() {
		ds := st.statsFor(d.AddrPort())
		ds.advance(s.end)
		seen[ds] = true
		wt := strconv.Itoa(int(d.Weight()))
		if d.Overloaded() {
			wt += "!"
		}
		rows = append(rows, row{ds, wt})
	}
	for _, ds := range st.order {
		if !seen[ds] {
			rows = append(rows, row{ds, "del"})
		}
	}
	var totalExp float64
	for _, r := range rows {
		totalExp += r.ds.expected
	}
	fmt.Fprintf(w, "  %-22s %6s %8s %8s %9s %6s %9s %7s\n", "destination", "weight", "conns", "share", "expected", "peak", "mean", "moved")
	worst := 0.0 // the largest share / expected share
	for _, r := range rows {
		ds := r.ds
		share := pct(float64(ds.conns), float64(st.conns-st.dropped))
		exp := pct(ds.expected, totalExp)
		mean := 0.0
		if s.end > 0 {
			mean = ds.area / float64(s.end)
		}
		moved := "-"
		if st.hashing {
			moved = strconv.Itoa(ds.moved)
		}
		fmt.Fprintf(w, "  %-22s %6s %8d %8s %9s %6d %9.2f %7s\n", ds.ap, r.weight, ds.conns, share, exp, ds.peak, mean, moved)
		if sched := st.conns - st.dropped; ds.expected > 0 && sched > 0 {
			worst = max(worst, float64(ds.conns)/float64(sched)/(ds.expected/totalExp))
		}
	}
	sep := "  "
	if worst > 0 {
		fmt.Fprintf(w, "%smax share/expected: %.3f", sep, worst)
		sep = "; "
	}
	if st.hashing {
		fmt.Fprintf(w, "%sclients remapped after events: %d", sep, st.remapped)
		sep = "; "
	}
	if sep != "  " {
		w.WriteString("\n")
	}
}

func pct(a, b float64) string {
	if b <= 0 {
		return "-"
	}
	return strconv.FormatFloat(100*a/b, 'f', 2, 64) + "%"
}

// sortedByAddr is used by the chart legend.
func sortedByAddr(ds []*destStats) []*destStats {
	out := slices.Clone(ds)
	slices.SortFunc(out, func(a, b *destStats) int { return a.ap.Compare(b.ap) })
	return out
}
