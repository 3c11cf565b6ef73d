package bench

import (
	"fmt"
	"math"
	"sort"
)

// Figures a run can measure.
const (
	FigUDPSat  = "udp-sat"  // Value: delivered pps at saturation
	FigUDPRate = "udp-rate" // Value: director-core µs per delivered packet at the fixed rate
	FigCPS     = "tcp-cps"  // Value: connections (= requests) per second, wrk -c64
	FigLat     = "tcp-lat"  // Value: p99 µs with one connection at a time
	FigIperf   = "iperf3"   // Value: Gbit/s, one stream
	FigTable1k = "table-1k" // Value: delivered pps with 1 k live connections
	FigTable1M = "table-1m" // Value: delivered pps with 1 M live connections
)

// Run is one measurement of one figure for one candidate.
type Run struct {
	Candidate string             `json:"candidate"`
	Figure    string             `json:"figure"`
	Round     int                `json:"round"`
	Value     Num                `json:"value"`
	Extra     map[string]float64 `json:"extra,omitempty"`
	// Gate is false when the CPUs were not idle before the run within the
	// gate's wait.
	Gate    bool    `json:"gate"`
	Clean   bool    `json:"clean"`
	Steal   float64 `json:"steal"`
	Foreign float64 `json:"foreign"`
	Err     string  `json:"error,omitempty"`
}

// Row is one candidate's summary.
type Row struct {
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	Desc      string `json:"description"`
	Available bool   `json:"available"`
	Note      string `json:"note,omitempty"`
	// Reply is the real servers' reply path (ReplyViaDirector or
	// ReplyViaRouter; "" where no real server answers, the ceiling).
	Reply string `json:"reply_path,omitempty"`

	PPS       Summary  `json:"udp_pps"`
	Offered   Summary  `json:"udp_offered_pps"`
	AtCeiling bool     `json:"at_ceiling,omitempty"`
	CPU       Summary  `json:"cpu_us_per_pkt"`     // director core (CPU1)
	CPU0      Summary  `json:"cpu0_us_per_pkt"`    // generator core
	RatePPS   Summary  `json:"rate_delivered_pps"` // delivered at the fixed rate
	CPS       Summary  `json:"tcp_cps"`
	P50       Summary  `json:"p50_us_loaded"`
	P99       Summary  `json:"p99_us_loaded"`
	P50Idle   Summary  `json:"p50_us_unloaded"`
	P99Idle   Summary  `json:"p99_us_unloaded"`
	Gbps      Summary  `json:"iperf3_gbps"`
	Errors    []string `json:"errors,omitempty"`

	// Ratios of a uvs row's medians to nft-dnat's and kernel-forward's.
	Ratios map[string]Num `json:"ratios,omitempty"`
}

// TableScale is the connection-table figure.
type TableScale struct {
	PPS1k        Summary `json:"pps_1k"`
	PPS1M        Summary `json:"pps_1m"`
	CPU1k        Summary `json:"cpu_us_per_pkt_1k"`
	CPU1M        Summary `json:"cpu_us_per_pkt_1m"`
	Live1k       Summary `json:"live_1k"`
	Live1M       Summary `json:"live_1m"`
	BytesPerConn Summary `json:"rss_bytes_per_conn"`
	// InProcess is conntrack's own memory per connection: Go heap grown by
	// New plus filling, over the connections filled.
	InProcess Num    `json:"in_process_bytes_per_conn"`
	InProcCap int    `json:"in_process_capacity"`
	Capacity  int    `json:"uvsd_conns_capacity"`
	Note      string `json:"note,omitempty"`
}

// Target is one acceptance bar of the issue.
type Target struct {
	Name string `json:"name"`
	Want string `json:"want"`
	Got  string `json:"got"`
	// Met is "met", "not met" or "n/a".
	Met string `json:"met"`
}

// Report is everything one benchmark run produced.
type Report struct {
	Timestamp string            `json:"timestamp"`
	Quick     bool              `json:"quick"`
	Machine   map[string]string `json:"machine"`
	Method    map[string]string `json:"method"`
	Ceiling   Summary           `json:"generator_ceiling_pps"`
	CPURate   float64           `json:"cpu_rate_pps"`
	Rows      []Row             `json:"rows"`
	Table     *TableScale       `json:"conn_table,omitempty"`
	Sync      *SyncScale        `json:"conn_sync,omitempty"`
	Targets   []Target          `json:"targets"`
	Noise     map[string]Num    `json:"noise"`
	Runs      []Run             `json:"runs"`
	Micro     []MicroResult     `json:"micro,omitempty"`
	MicroErr  string            `json:"micro_error,omitempty"`
	MicroFile string            `json:"micro_file,omitempty"`
	Seconds   float64           `json:"seconds"`
}

// summarize collects a figure's values for a candidate: key "" is Value,
// otherwise Extra[key].
func summarize(runs []Run, cand, fig, key string) Summary {
	var clean, all []float64
	for _, r := range runs {
		if r.Candidate != cand || r.Figure != fig || r.Err != "" {
			continue
		}
		v := float64(r.Value)
		if key != "" {
			x, ok := r.Extra[key]
			if !ok {
				continue
			}
			v = x
		}
		all = append(all, v)
		if r.Clean {
			clean = append(clean, v)
		}
	}
	return Summarize(clean, all)
}

// cleanCount counts a candidate's clean, error-free runs of a figure.
func cleanCount(runs []Run, cand, fig string) (clean, all int) {
	for _, r := range runs {
		if r.Candidate == cand && r.Figure == fig {
			all++
			if r.Clean && r.Err == "" {
				clean++
			}
		}
	}
	return clean, all
}

// runErrors lists the distinct errors of a candidate's runs.
func runErrors(runs []Run, cand string) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range runs {
		if r.Candidate == cand && r.Err != "" {
			e := r.Figure + ": " + r.Err
			if !seen[e] {
				seen[e] = true
				out = append(out, e)
			}
		}
	}
	sort.Strings(out)
	if len(out) > 6 {
		out = append(out[:6], fmt.Sprintf("and %d more", len(out)-6))
	}
	return out
}

// Summarise fills the rows' summaries, ratios, the ceiling marks and the
// noise statistics from r.Runs.
func (r *Report) Summarise(ceilingName string) {
	r.Ceiling = summarize(r.Runs, ceilingName, FigUDPSat, "")
	for i := range r.Rows {
		row := &r.Rows[i]
		n := row.Name
		row.PPS = summarize(r.Runs, n, FigUDPSat, "")
		row.Offered = summarize(r.Runs, n, FigUDPSat, "offered_pps")
		row.CPU = summarize(r.Runs, n, FigUDPRate, "")
		row.CPU0 = summarize(r.Runs, n, FigUDPRate, "gen_us_per_pkt")
		row.RatePPS = summarize(r.Runs, n, FigUDPRate, "delivered_pps")
		row.CPS = summarize(r.Runs, n, FigCPS, "")
		row.P50 = summarize(r.Runs, n, FigCPS, "p50_us")
		row.P99 = summarize(r.Runs, n, FigCPS, "p99_us")
		row.P50Idle = summarize(r.Runs, n, FigLat, "p50_us")
		row.P99Idle = summarize(r.Runs, n, FigLat, "")
		row.Gbps = summarize(r.Runs, n, FigIperf, "")
		row.Errors = runErrors(r.Runs, n)
		// At the ceiling: the candidate delivered (nearly) everything that
		// reached the director, so the generator and the receive path in
		// front of the candidate limited the figure, not the candidate.
		// (The ceiling row itself, a drop at d0 ingress behind RPS, is not
		// an upper bound for every path: a CPU that only drops idles
		// between bursts and every wake-up costs the sender an IPI.)
		row.AtCeiling = n != ceilingName && row.PPS.Valid() && row.Offered.Valid() && row.PPS.Median >= 0.9*row.Offered.Median
	}
	nft, kern := r.row("nft-dnat"), r.row("kernel-forward")
	hap := r.row("haproxy-tcp")
	for i := range r.Rows {
		row := &r.Rows[i]
		if row.Kind != KindUVS || !row.Available {
			continue
		}
		row.Ratios = map[string]Num{}
		put := func(name string, a, b Summary) { row.Ratios[name] = Num(Ratio(a.Median, b.Median)) }
		if nft != nil {
			put("pps/nft-dnat", row.PPS, nft.PPS)
			put("cpu/nft-dnat", row.CPU, nft.CPU)
			put("cps/nft-dnat", row.CPS, nft.CPS)
			put("p99/nft-dnat", row.P99Idle, nft.P99Idle)
			put("gbps/nft-dnat", row.Gbps, nft.Gbps)
		}
		if kern != nil {
			put("pps/kernel-forward", row.PPS, kern.PPS)
			put("cpu/kernel-forward", row.CPU, kern.CPU)
			put("cps/kernel-forward", row.CPS, kern.CPS)
			put("p99/kernel-forward", row.P99Idle, kern.P99Idle)
			put("gbps/kernel-forward", row.Gbps, kern.Gbps)
		}
		if hap != nil {
			put("cps/haproxy-tcp", row.CPS, hap.CPS)
		}
	}
	var dirty, gateMiss, total float64
	var maxSteal, maxForeign float64
	for _, run := range r.Runs {
		total++
		if !run.Clean {
			dirty++
		}
		if !run.Gate {
			gateMiss++
		}
		maxSteal = math.Max(maxSteal, run.Steal)
		maxForeign = math.Max(maxForeign, run.Foreign)
	}
	r.Noise = map[string]Num{"runs": Num(total), "dirty_runs": Num(dirty), "gate_timeouts": Num(gateMiss),
		"max_steal": Num(maxSteal), "max_foreign_cpu": Num(maxForeign)}
	if r.Table != nil {
		t := r.Table
		t.PPS1k = summarize(r.Runs, "uvs-nat", FigTable1k, "")
		t.PPS1M = summarize(r.Runs, "uvs-nat", FigTable1M, "")
		t.CPU1k = summarize(r.Runs, "uvs-nat", FigTable1k, "cpu_us_per_pkt")
		t.CPU1M = summarize(r.Runs, "uvs-nat", FigTable1M, "cpu_us_per_pkt")
		t.Live1k = summarize(r.Runs, "uvs-nat", FigTable1k, "live")
		t.Live1M = summarize(r.Runs, "uvs-nat", FigTable1M, "live")
		t.BytesPerConn = summarize(r.Runs, "uvs-nat", FigTable1M, "bytes_per_conn")
	}
	r.summariseSync()
	r.Targets = r.evalTargets()
}

// row returns the named row, nil if absent or unavailable.
func (r *Report) row(name string) *Row {
	for i := range r.Rows {
		if r.Rows[i].Name == name && r.Rows[i].Available {
			return &r.Rows[i]
		}
	}
	return nil
}
