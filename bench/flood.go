package bench

import (
	"fmt"
	"sort"
	"strings"
)

// The table-pressure figure (uvs-bench --flood): a spoofed flood of new
// flows at the VIP from the client namespace at hping3's ceiling (SYN to
// the HTTP port, or UDP to the UDP port) into uvs-nat with a small
// connection table, while a control client in the same namespace makes
// HTTP requests, each a new connection.
const (
	FigFloodSYN = "flood-syn" // Value: control-client success, % of requests
	FigFloodUDP = "flood-udp" // Value: the same under a UDP new-flow flood
	// FloodCandidate names the runs of the flood figure.
	FloodCandidate = "uvs-nat-flood"
)

// floodKinds are the flood figure's figures and hping3's arguments.
var floodKinds = []struct {
	fig, what string
	args      func() []string
}{
	{FigFloodSYN, "SYN flood", func() []string { return []string{"-S", "-p", fmt.Sprint(HTTPPort)} }},
	{FigFloodUDP, "UDP new-flow flood", func() []string { return []string{"--udp", "-p", fmt.Sprint(UDPPort)} }},
}

// describeFlood is a flood run's progress line.
func describeFlood(r Run) string {
	if r.Err != "" {
		return "error: " + r.Err
	}
	x := r.Extra
	drain := "not drained"
	if x["drained"] == 1 {
		drain = fmt.Sprintf("drained %.0f s after", x["drain_s"])
	}
	return fmt.Sprintf("%.1f %% of %.0f control requests (%.0f during the flood, %.0f just after); table %.0f of %.0f (peak), %s; "+
		"uvsd RSS %.0f MiB (%.0f before); %.0f new conn/s",
		float64(r.Value), x["requests"], x["during"], x["after"], x["peak_conns"], x["capacity"], drain,
		x["rss_peak_mib"], x["rss_before_mib"], x["new_conns_per_s"])
}

// floodMarkdown renders the flood figure from the report's runs: one
// line per run (the figure is a behaviour, not a rate: every run is
// shown).
func floodMarkdown(r *Report, b *strings.Builder) {
	var runs []Run
	for _, run := range r.Runs {
		if run.Candidate == FloodCandidate {
			runs = append(runs, run)
		}
	}
	if len(runs) == 0 {
		return
	}
	sort.SliceStable(runs, func(i, j int) bool { return runs[i].Figure < runs[j].Figure })
	p := func(f string, a ...any) { fmt.Fprintf(b, f, a...) }
	p("\n### Table pressure (uvs-nat under a spoofed flood)\n\n%s\n\n", r.Method["flood"])
	p("| flood | round | control success | requests (during + after) | table peak / capacity | drained after | uvsd RSS before → peak | new conn/s |\n")
	p("| --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, run := range runs {
		if run.Err != "" {
			p("| %s | %d | error: %s | | | | | |\n", run.Figure, run.Round+1, mdEscape(run.Err))
			continue
		}
		x := run.Extra
		drain := "not within the wait"
		if x["drained"] == 1 {
			drain = fmt.Sprintf("%.0f s", x["drain_s"])
		}
		p("| %s | %d | %.1f %% | %.0f (%.0f + %.0f) | %.0f / %.0f | %s | %.0f → %.0f MiB | %.0f |\n",
			run.Figure, run.Round+1, float64(run.Value), x["requests"], x["during"], x["after"],
			x["peak_conns"], x["capacity"], drain, x["rss_before_mib"], x["rss_peak_mib"], x["new_conns_per_s"])
	}
}

// ParseConnStates counts the connection lines of an ipvsadm -Lnc listing
// and their states (the third column).
func ParseConnStates(out string) (int, map[string]int) {
	states := map[string]int{}
	n := 0
	for line := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || (f[0] != "TCP" && f[0] != "UDP" && f[0] != "SCTP" && f[0] != "IP") {
			continue
		}
		n++
		states[f[2]]++
	}
	return n, states
}
