package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The CPU layout ("split"): the generator and every client tool run on
// genCPU; the director's receive processing (RPS), the director process
// and the real servers' processes run on dirCPU.
const (
	genCPU = 0
	dirCPU = 1
)

// harness is one benchmark run in progress.
type harness struct {
	cfg     Config
	topo    *Topo
	bin     string
	tmp     string
	acc     *accountant
	started time.Time

	uvsd, haproxy *proc
	servers       []*proc
	// xdpPass is kernel-forward-xdp's XDP_PASS program on d0 while that
	// candidate runs.
	xdpPass io.Closer
	// rsArgs are extra flags of `uvs-rs tun up` (uvs-tun-rsuser's
	// --no-bpf) while that candidate runs.
	rsArgs []string

	haproxyBin, conntrackBin string
	uvsdHasIO                bool
	gateMisses               int
	leftovers                []string

	rep *Report
}

func (h *harness) logf(format string, args ...any) {
	if h.cfg.Log != nil {
		fmt.Fprintf(h.cfg.Log, "[%6.1fs] %s\n", time.Since(h.started).Seconds(), fmt.Sprintf(format, args...))
	}
}

// Benchmark runs the benchmark and returns its report. It needs root and at least
// two CPUs. The report is returned (partial) also when ctx is cancelled.
func Benchmark(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("needs root: it creates network namespaces (run `sudo make bench`)")
	}
	if runtime.NumCPU() < 2 {
		return nil, fmt.Errorf("needs at least 2 CPUs (the generator and the director each get one); this machine has %d", runtime.NumCPU())
	}
	h := &harness{cfg: cfg, bin: cfg.Bin, started: time.Now()}
	if err := h.checkTools(); err != nil {
		return nil, err
	}
	raiseNoFile()
	var orig unix.CPUSet
	if err := unix.SchedGetaffinity(0, &orig); err == nil {
		defer func() { _ = pinSelfTo(&orig) }() // the Go benchmarks afterwards may use every CPU
	}
	if err := pinSelf(genCPU); err != nil {
		return nil, fmt.Errorf("pinning the harness to CPU %d: %w", genCPU, err)
	}
	defer raisePriority()() // the generator runs in this process
	var err error
	if h.tmp, err = os.MkdirTemp("", "uvs-bench-"); err != nil {
		return nil, err
	}
	defer os.RemoveAll(h.tmp)
	removeStaleTopologies()
	h.topo = NewTopo(fmt.Sprintf("uvs-bn%d-", os.Getpid()), 2)
	h.rep = &Report{Timestamp: time.Now().UTC().Format("20060102T150405Z"), Quick: cfg.Quick, CPURate: cfg.CPURate}
	h.rep.Machine = machineInfo()
	h.rep.Method = h.method()
	h.logf("topology %s*: client, director, %d real servers", h.topo.Prefix, len(h.topo.Backends))
	if err := h.topo.Up("1", cfg.RPSDir); err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	defer func() {
		h.stopAll()
		if err := h.topo.Down(); err != nil {
			h.logf("removing the topology: %v", err)
		}
	}()
	if err := h.startServers(); err != nil {
		return nil, err
	}
	h.acc = newAccountant([]string{h.topo.Cli}, h.topo.Namespaces()[1:])

	cands := h.candidates()
	var avail []*candidate
	for _, c := range cands {
		if cfg.SyncOnly || cfg.FloodOnly || (len(cfg.Only) > 0 && !slices.Contains(cfg.Only, c.name) && !c.ceiling) || slices.Contains(cfg.Skip, c.name) ||
			(c.onlyNamed && !slices.Contains(cfg.Only, c.name)) {
			continue
		}
		row := Row{Name: c.name, Kind: c.kind, Desc: c.desc, Available: c.unavailable == "", Note: c.note, Reply: c.reply}
		if c.unavailable != "" {
			row.Note = c.unavailable
		}
		h.rep.Rows = append(h.rep.Rows, row)
		if c.unavailable == "" {
			avail = append(avail, c)
		}
	}
	err = h.rounds(ctx, avail)
	if err == nil && cfg.TableRounds > 0 && (len(cfg.Only) == 0 || slices.Contains(cfg.Only, "uvs-nat")) {
		err = h.tableScale(ctx)
	}
	if err == nil && cfg.SyncRounds > 0 {
		err = h.syncScale(ctx)
	}
	if err == nil && cfg.FloodRounds > 0 {
		err = h.floodScale(ctx)
	}
	h.rep.Seconds = time.Since(h.started).Seconds()
	if len(h.leftovers) > 0 {
		h.rep.Method["leftovers"] = "state a candidate left behind and the harness removed: " + strings.Join(h.leftovers, "; ")
	}
	return h.rep, err
}

// rounds runs every candidate once per round, rotating the order, then
// re-runs candidates whose figures lack clean runs while the budget lasts.
func (h *harness) rounds(ctx context.Context, cands []*candidate) error {
	n := len(cands)
	for round := 0; round < h.cfg.Runs; round++ {
		for i := range n {
			if err := ctx.Err(); err != nil {
				return err
			}
			h.slot(ctx, cands[(i+round)%n], round)
		}
	}
	// Re-runs: up to twice the requested number of runs in all.
	for round := h.cfg.Runs; h.cfg.Reruns && round < 2*h.cfg.Runs; round++ {
		var again []*candidate
		for _, c := range cands {
			for _, fig := range h.figures(c, round) {
				if clean, _ := cleanCount(h.rep.Runs, c.name, fig); clean < h.wanted(c, fig) {
					again = append(again, c)
					break
				}
			}
		}
		if len(again) == 0 {
			return nil
		}
		if time.Since(h.started) > h.cfg.Budget {
			h.logf("budget of %v used: no more re-runs (%d candidates short of clean runs)", h.cfg.Budget, len(again))
			return nil
		}
		h.logf("re-run round %d for %d candidates short of clean runs", round+1, len(again))
		for _, c := range again {
			if err := ctx.Err(); err != nil {
				return err
			}
			h.slot(ctx, c, round)
		}
	}
	return nil
}

// figures lists what a candidate measures in a given round.
func (h *harness) figures(c *candidate, round int) []string {
	var f []string
	if c.udp {
		f = append(f, FigUDPSat, FigUDPRate)
	}
	if c.tcp && h.tcpFor(c) && (h.cfg.TCPRuns == 0 || round < h.cfg.TCPRuns || round >= h.cfg.Runs) {
		f = append(f, FigCPS, FigLat)
	}
	if c.tcp && h.iperfFor(c, round) {
		f = append(f, FigIperf)
	}
	return f
}

// wanted is the number of clean runs a figure needs.
func (h *harness) wanted(c *candidate, fig string) int {
	switch fig {
	case FigIperf:
		return min(h.cfg.IperfRuns, h.cfg.Runs)
	case FigCPS, FigLat:
		if h.cfg.TCPRuns > 0 {
			return min(h.cfg.TCPRuns, h.cfg.Runs)
		}
	}
	return h.cfg.Runs
}

func (h *harness) tcpFor(c *candidate) bool {
	return len(h.cfg.TCPOnly) == 0 || slices.Contains(h.cfg.TCPOnly, c.name)
}

func (h *harness) iperfFor(c *candidate, round int) bool {
	clean, _ := cleanCount(h.rep.Runs, c.name, FigIperf)
	return clean < h.cfg.IperfRuns && (round < h.cfg.IperfRuns || round >= h.cfg.Runs)
}

// slot sets a candidate up, measures its figures for this round and tears
// it down.
func (h *harness) slot(ctx context.Context, c *candidate, round int) {
	figs := h.figures(c, round)
	if round >= h.cfg.Runs { // re-run: only the figures short of clean runs
		figs = slices.DeleteFunc(figs, func(f string) bool {
			clean, _ := cleanCount(h.rep.Runs, c.name, f)
			return clean >= h.wanted(c, f)
		})
	}
	if len(figs) == 0 {
		return
	}
	h.checkClean(c)
	if err := c.setup(h); err != nil {
		h.logf("round %d %s: setup failed: %v", round+1, c.name, err)
		for _, f := range figs {
			h.rep.Runs = append(h.rep.Runs, Run{Candidate: c.name, Figure: f, Round: round, Value: Num(math.NaN()), Err: "setup: " + err.Error()})
		}
		if err := c.teardown(h); err != nil {
			h.logf("round %d %s: teardown: %v", round+1, c.name, err)
		}
		return
	}
	for _, f := range figs {
		if ctx.Err() != nil {
			break
		}
		var r Run
		switch f {
		case FigUDPSat:
			r = h.udpRun(ctx, h.udpSpec(c.udpDsts, h.cfg.Flows, ClientAddr, 1024, h.cfg.Flows), 0, h.delivered(c))
		case FigUDPRate:
			r = h.udpRun(ctx, h.udpSpec(c.udpDsts, h.cfg.Flows, ClientAddr, 1024, h.cfg.Flows), h.cfg.CPURate, h.delivered(c))
		case FigCPS:
			r = h.wrkRun(c, 64, h.cfg.TCPDur)
		case FigLat:
			r = h.wrkRun(c, 1, h.cfg.LatDur)
		case FigIperf:
			r = h.iperfRun(c)
		}
		r.Candidate, r.Figure, r.Round = c.name, f, round
		h.rep.Runs = append(h.rep.Runs, r)
		h.logf("round %d %-18s %-8s %s", round+1, c.name, f, describe(r))
	}
	if err := c.teardown(h); err != nil {
		h.logf("round %d %s: teardown: %v", round+1, c.name, err)
	}
}

// checkClean makes sure no candidate left rules behind in the director:
// every candidate starts from a director with no nftables table (iptables
// rules are nftables tables too) and no address on lo but 127.0.0.1. What
// it finds is removed and reported as the previous candidate's error.
func (h *harness) checkClean(next *candidate) {
	out, err := nsRun(cmdTimeout, h.topo.Dir, -1, "nft", "list", "tables")
	if err != nil {
		h.logf("before %s: nft list tables: %v", next.name, err)
		return
	}
	for line := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "table" {
			continue
		}
		h.logf("before %s: table %s %s left in the director: removing it", next.name, f[1], f[2])
		h.leftovers = append(h.leftovers, f[1]+" "+f[2])
		_, _ = nsRun(cmdTimeout, h.topo.Dir, -1, "nft", "delete", "table", f[1], f[2])
	}
	if out, err := nsRun(cmdTimeout, h.topo.Dir, -1, "ip", "-4", "-o", "addr", "show", "dev", "lo"); err == nil {
		for line := range strings.SplitSeq(out, "\n") {
			f := strings.Fields(line)
			if len(f) >= 4 && f[2] == "inet" && f[3] != "127.0.0.1/8" {
				h.logf("before %s: address %s left on the director's lo: removing it", next.name, f[3])
				h.leftovers = append(h.leftovers, "lo "+f[3])
				_, _ = nsRun(cmdTimeout, h.topo.Dir, -1, "ip", "addr", "del", f[3], "dev", "lo")
			}
		}
	}
}

func describe(r Run) string {
	if r.Err != "" {
		return "error: " + r.Err
	}
	s := ""
	switch r.Figure {
	case FigUDPSat, FigTable1k, FigTable1M:
		s = fmt.Sprintf("%s pps delivered (offered %s)", fmtVal(float64(r.Value)), fmtVal(r.Extra["offered_pps"]))
	case FigUDPRate:
		s = fmt.Sprintf("%.2f µs/pkt on the director core, %s pps delivered", float64(r.Value), fmtVal(r.Extra["delivered_pps"]))
	case FigCPS:
		s = fmt.Sprintf("%s conn/s, p50 %.0f µs, p99 %.0f µs", fmtVal(float64(r.Value)), r.Extra["p50_us"], r.Extra["p99_us"])
	case FigLat:
		s = fmt.Sprintf("p50 %.0f µs, p99 %.0f µs", r.Extra["p50_us"], float64(r.Value))
	case FigIperf:
		s = fmt.Sprintf("%.2f Gbit/s", float64(r.Value))
	}
	if !r.Clean {
		s += fmt.Sprintf(" [dirty: steal %.0f%%, foreign %.0f%% of a CPU]", r.Steal*100, r.Foreign*100)
	}
	if !r.Gate {
		s += " [CPUs not idle before the run]"
	}
	return s
}

// udpSpec is the generator's flow set: n flows from src (ports from sport,
// ports flows per address) to dsts.
func (h *harness) udpSpec(dsts []netip.Addr, n int, src netip.Addr, sport uint16, ports int) FlowSpec {
	return FlowSpec{SrcMAC: ClientMAC, DstMAC: DirMAC, SrcBase: src, SrcPort: sport, PortsPerSrc: min(ports, 65535-int(sport)),
		Dsts: dsts, DstPort: UDPPort, Payload: 64, Flows: n}
}

// delivered returns the counter of the candidate's UDP sink.
func (h *harness) delivered(c *candidate) func() (uint64, error) {
	if c.ceiling {
		return func() (uint64, error) { return sinkCount(h.topo.Dir, "benchceil", "ceil") }
	}
	return h.topo.Delivered
}

// gate waits for idle CPUs. After three runs in a row found the machine
// busy, it waits only briefly until it sees idle CPUs again, so that a
// persistently loaded machine does not stretch the run (those runs are
// judged by their window's foreign load and steal anyway).
func (h *harness) gate() bool {
	wait := h.cfg.GateWait
	if h.gateMisses >= 3 {
		wait = min(wait, 2*h.cfg.GateSettle)
	}
	ok := waitIdle(0.90, h.cfg.GateSettle, wait)
	if ok {
		h.gateMisses = 0
	} else {
		h.gateMisses++
	}
	return ok
}

// udpRun offers UDP load (rate 0: as fast as possible) and measures, over
// the window after the warm-up, the delivered rate and the CPU time per
// delivered packet on each CPU. For a paced run Value is the director
// core's µs per packet, otherwise the delivered pps.
func (h *harness) udpRun(ctx context.Context, spec FlowSpec, rate float64, delivered func() (uint64, error)) Run {
	r := Run{Gate: h.gate(), Value: Num(math.NaN()), Extra: map[string]float64{}}
	total := h.cfg.UDPWarm + h.cfg.UDPWindow + time.Second // a bound; cancelled after the window
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type genOut struct {
		res GenResult
		err error
	}
	done := make(chan genOut, 1)
	go func() {
		res, err := Generate(gctx, GenConfig{NetNS: h.topo.Cli, Iface: "c0", Flow: spec, Rate: rate, Duration: total, CPU: genCPU})
		done <- genOut{res, err}
	}()
	fail := func(err error) Run {
		cancel()
		<-done
		r.Err = err.Error()
		return r
	}
	select {
	case g := <-done:
		if g.err == nil {
			g.err = errors.New("generator ended during the warm-up")
		}
		r.Err = g.err.Error()
		return r
	case <-time.After(h.cfg.UDPWarm):
	}
	procs0 := h.acc.scan()
	d0, err := delivered()
	if err != nil {
		return fail(err)
	}
	rx0, _, err := LinkStats(h.topo.Dir, "d0")
	if err != nil {
		return fail(err)
	}
	cpus0, err := readCPUs()
	if err != nil {
		return fail(err)
	}
	t0 := time.Now()
	time.Sleep(h.cfg.UDPWindow)
	cpus1, err := readCPUs()
	if err != nil {
		return fail(err)
	}
	el := time.Since(t0).Seconds()
	d1, err := delivered()
	if err != nil {
		return fail(err)
	}
	rx1, _, err := LinkStats(h.topo.Dir, "d0")
	if err != nil {
		return fail(err)
	}
	procs1 := h.acc.scan()
	cancel() // the window is over: stop the load now
	g := <-done
	if g.err != nil {
		r.Err = g.err.Error()
		return r
	}
	ws := windowOf(cpus0, cpus1, procs0, procs1, el)
	r.Steal, r.Foreign, r.Clean = ws.Steal, ws.Foreign, ws.Clean(h.cfg.MaxForeign, h.cfg.MaxSteal)
	pkts := float64(d1 - d0)
	pps := pkts / el
	r.Extra["delivered_pps"] = pps
	r.Extra["offered_pps"] = float64(rx1-rx0) / el
	r.Extra["gen_sent"] = float64(g.res.Sent)
	r.Extra["gen_nobufs"] = float64(g.res.NoBufs)
	r.Extra["gen_pps"] = float64(g.res.Sent) / g.res.Seconds
	r.Extra["cpu0_busy"] = ws.CPU[genCPU].Frac(ws.CPU[genCPU].Busy())
	r.Extra["cpu1_busy"] = ws.CPU[dirCPU].Frac(ws.CPU[dirCPU].Busy())
	r.Extra["cpu1_softirq"] = ws.CPU[dirCPU].Frac(ws.CPU[dirCPU].SoftIRQ)
	if pkts == 0 && rate == 0 {
		// Saturated and nothing got through: a livelocked path. That is
		// the measurement, not a failure of the run.
		r.Value = Num(0)
		r.Extra["nothing_delivered"] = 1
		return r
	}
	if pkts == 0 {
		r.Err = fmt.Sprintf("nothing delivered (offered %.0f pps at d0, generator sent %d, %d ENOBUFS)", r.Extra["offered_pps"], g.res.Sent, g.res.NoBufs)
		if h.uvsd != nil {
			r.Err += "; uvsd log tail: " + tail(h.uvsd.out.String(), 600)
		}
		return r
	}
	// Director cost: CPU1's busy wall time (see WindowStats.WallBusyUS);
	// the tick-sampled figures are kept for the record.
	r.Extra["dir_us_per_pkt"] = ws.WallBusyUS(dirCPU) / pkts
	r.Extra["gen_us_per_pkt"] = ws.WallBusyUS(genCPU) / pkts
	r.Extra["cpu1_sampled_us_per_pkt"] = ws.BusyUS(dirCPU) / pkts
	r.Extra["cpu1_softirq_sampled_us_per_pkt"] = float64(ws.CPU[dirCPU].SoftIRQ) * 1e6 / UserHZ / pkts
	r.Extra["dir_proc_share"] = float64(ws.DirTicks) / UserHZ / el
	// How far the sampled counters plus the exact idle time are off the
	// window (see WindowStats.WallBusyUS), for the record.
	r.Extra["cpu1_accounted_per_wall"] = float64(ws.CPU[dirCPU].Total()) / UserHZ / el
	if rate > 0 {
		r.Value = Num(r.Extra["dir_us_per_pkt"])
		if pps < 0.97*rate {
			r.Extra["fell_behind"] = 1
		}
	} else {
		r.Value = Num(pps)
	}
	return r
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func windowOf(c0, c1 []CPUTimes, p0, p1 map[int]procTicks, seconds float64) WindowStats {
	s := WindowStats{Seconds: seconds}
	for i := range min(len(c0), len(c1)) {
		d := c1[i].Sub(c0[i])
		s.CPU = append(s.CPU, d)
		s.Steal = max(s.Steal, d.Frac(d.Steal))
	}
	t := sideTicks(p0, p1)
	s.GenTicks, s.DirTicks = t[sideGen], t[sideDir]
	if seconds > 0 {
		s.Foreign = float64(t[sideForeign]) / UserHZ / seconds
	}
	return s
}

// measureCmd runs a client command in the client namespace pinned to the
// generator's CPU and measures the window around it.
func (h *harness) measureCmd(timeout time.Duration, args ...string) (string, WindowStats, error) {
	procs0 := h.acc.scan()
	cpus0, _ := readCPUs()
	t0 := time.Now()
	out, err := nsRun(timeout, h.topo.Cli, genCPU, args...)
	el := time.Since(t0).Seconds()
	cpus1, _ := readCPUs()
	procs1 := h.acc.scan()
	return out, windowOf(cpus0, cpus1, procs0, procs1, el), err
}

// wrkRun runs wrk with conns connections, one request per connection.
func (h *harness) wrkRun(c *candidate, conns int, d time.Duration) Run {
	r, paws0, ok := h.startTCPRun()
	if !ok {
		return r
	}
	secs := max(1, int(d.Round(time.Second)/time.Second))
	out, ws, err := h.measureCmd(d+20*time.Second, "wrk", "-t1", "-c"+strconv.Itoa(conns), "-d"+strconv.Itoa(secs)+"s",
		"--timeout", "2s", "--latency", "-H", "Connection: close", "http://"+h.tcpHost(c.httpHost, HTTPPort)+"/")
	r.Steal, r.Foreign, r.Clean = ws.Steal, ws.Foreign, ws.Clean(h.cfg.MaxForeign, h.cfg.MaxSteal)
	h.notePAWS(&r, paws0)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	w, err := ParseWrk(out)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	r.Extra["p50_us"] = float64(w.P50) / 1e3
	r.Extra["p99_us"] = float64(w.P99) / 1e3
	r.Extra["requests"] = float64(w.Requests)
	r.Extra["socket_errors"] = float64(w.SocketErrors)
	r.Extra["non2xx"] = float64(w.Non2xx)
	if w.Requests == 0 {
		r.Err = fmt.Sprintf("no request completed (%d socket errors)", w.SocketErrors)
		return r
	}
	if conns == 1 {
		r.Value = Num(r.Extra["p99_us"])
	} else {
		r.Value = Num(w.RequestsPerSec)
	}
	return r
}

// startTCPRun begins a TCP figure's run: it kills the topology's
// TIME_WAIT sockets (timewait.go), notes the real servers' PAWS rejects so
// far, then waits at the noise gate. !ok: the run failed (r.Err says why).
func (h *harness) startTCPRun() (r Run, paws0 uint64, ok bool) {
	r = Run{Value: Num(math.NaN()), Extra: map[string]float64{}}
	err := h.flushTimeWait()
	if err == nil {
		paws0, err = h.pawsRejects()
	}
	if err != nil {
		r.Err = err.Error()
		return r, 0, false
	}
	r.Gate = h.gate()
	return r, paws0, true
}

// notePAWS records in r the SYNs the real servers dropped by PAWS against
// a TIME_WAIT socket since paws0 (0 expected after freshTCP).
func (h *harness) notePAWS(r *Run, paws0 uint64) {
	if n, err := h.pawsRejects(); err == nil {
		r.Extra["paws_tw_rejects"] = float64(n - paws0)
	}
}

func (h *harness) tcpHost(host string, port int) string {
	if port == 80 {
		return host
	}
	return host + ":" + strconv.Itoa(port)
}

// iperfRun runs one single-stream iperf3 test (client → server).
func (h *harness) iperfRun(c *candidate) Run {
	r, paws0, ok := h.startTCPRun()
	if !ok {
		return r
	}
	secs := max(1, int(h.cfg.IperfDur.Round(time.Second)/time.Second))
	out, ws, err := h.measureCmd(h.cfg.IperfDur+20*time.Second, "iperf3", "-c", c.iperfHost, "-p", strconv.Itoa(IperfPort),
		"-t", strconv.Itoa(secs), "-J", "--connect-timeout", "3000")
	r.Steal, r.Foreign, r.Clean = ws.Steal, ws.Foreign, ws.Clean(h.cfg.MaxForeign, h.cfg.MaxSteal)
	h.notePAWS(&r, paws0)
	res, perr := ParseIperf3([]byte(out))
	if perr != nil {
		if err != nil {
			perr = fmt.Errorf("%w (%v)", perr, err)
		}
		r.Err = perr.Error()
		return r
	}
	r.Value = Num(res.BitsPerSec / 1e9)
	r.Extra["retransmits"] = float64(res.Retransmits)
	return r
}

// startServers starts nginx and an iperf3 server on every real server,
// pinned to the director core, and waits until they answer.
func (h *harness) startServers() error {
	for _, be := range h.topo.Backends {
		dir := filepath.Join(h.tmp, "nginx-"+be.Dev)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		cfg := filepath.Join(dir, "nginx.conf")
		conf := fmt.Sprintf(`worker_processes 1;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
worker_rlimit_nofile 65536;
events { worker_connections 16384; }
http {
    access_log off;
    keepalive_timeout 0;
    client_body_temp_path %[1]s;
    proxy_temp_path %[1]s;
    fastcgi_temp_path %[1]s;
    uwsgi_temp_path %[1]s;
    scgi_temp_path %[1]s;
    server {
        listen %[2]d backlog=8192 reuseport;
        location / { return 200 "rs%[3]d\n"; }
    }
}
`, dir, HTTPPort, be.N)
		if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
			return err
		}
		p, err := start("nginx "+be.NS, be.NS, dirCPU, "nginx", "-c", cfg, "-p", dir+"/")
		if err != nil {
			return err
		}
		h.servers = append(h.servers, p)
		ap := netip.AddrPortFrom(be.Addr, HTTPPort)
		if err := p.waitFor(10*time.Second, "listening socket", func() bool { return dialIn(be.NS, ap) == nil }); err != nil {
			return err
		}
		ip, err := start("iperf3 "+be.NS, be.NS, dirCPU, "iperf3", "-s", "-p", strconv.Itoa(IperfPort))
		if err != nil {
			return err
		}
		h.servers = append(h.servers, ip)
		// Probe with ss, not a connection: iperf3 would take one as a test.
		if err := ip.waitFor(10*time.Second, "listening socket", func() bool {
			out, err := nsRun(cmdTimeout, be.NS, -1, "ss", "-Hltn", "sport", "=", ":"+strconv.Itoa(IperfPort))
			return err == nil && strings.Contains(out, "LISTEN")
		}); err != nil {
			return err
		}
	}
	return nil
}

// stopAll stops every process the harness started.
func (h *harness) stopAll() {
	if h.uvsd != nil {
		_ = h.stopUVS("")
	}
	if h.haproxy != nil {
		_ = h.stopHAProxy()
	}
	for _, p := range h.servers {
		_ = p.stop(3 * time.Second)
	}
	h.servers = nil
}

// checkTools finds the commands the benchmark runs.
func (h *harness) checkTools() error {
	var missing []string
	for _, t := range []string{"ip", "ss", "nft", "iptables", "iptables-restore", "taskset", "wrk", "iperf3", "nginx"} {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing commands: %s (bench/install-deps.sh installs them)", strings.Join(missing, ", "))
	}
	for _, b := range []string{"uvsd", "uvs-rs", "uvsadm"} {
		if _, err := os.Stat(filepath.Join(h.bin, b)); err != nil {
			return fmt.Errorf("%s not found in %s (make build; or pass --bin)", b, h.bin)
		}
	}
	h.haproxyBin, _ = exec.LookPath("haproxy")
	h.conntrackBin, _ = exec.LookPath("conntrack")
	out, _ := run(cmdTimeout, filepath.Join(h.bin, "uvsd"), "--help")
	h.uvsdHasIO = strings.Contains(out, "-io")
	return nil
}

// raiseNoFile lifts the open-files limit the children inherit (HAProxy's
// maxconn and wrk need more than the usual 1024).
func raiseNoFile() {
	lim := unix.Rlimit{Cur: 1 << 20, Max: 1 << 20}
	if unix.Setrlimit(unix.RLIMIT_NOFILE, &lim) != nil {
		lim = unix.Rlimit{Cur: 65536, Max: 65536}
		_ = unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	}
}

// pinSelf pins every thread of this process to cpu; threads created later
// inherit it, and so do child processes not started under taskset.
func pinSelf(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	return pinSelfTo(&set)
}

// raisePriority sets nice -20 on every thread of this process (Linux
// nice values are per thread; threads created later inherit it) and on
// its autogroup until the returned function puts the autogroup's back.
//
// With kernel.sched_autogroup_enabled (the default of most distributions'
// kernels) the scheduler first shares a CPU between autogroups — one per
// session (setsid) — at the groups' nice, and only then between the
// threads of a group at theirs: a thread's nice -20 counts against the
// other threads of its session only, and a foreign session's job, even at
// nice 19 or SCHED_IDLE, gets as much of the CPU as the whole benchmark.
// The autogroup's nice (/proc/self/autogroup; a negative one needs
// CAP_SYS_NICE) gives the benchmark's session — the one that started it,
// this process and what it starts — the weight of nice -20 against the
// other sessions while it runs.
func raisePriority() (restore func()) {
	if ents, err := os.ReadDir("/proc/self/task"); err == nil {
		for _, e := range ents {
			if tid, err := strconv.Atoi(e.Name()); err == nil {
				_ = unix.Setpriority(unix.PRIO_PROCESS, tid, -20)
			}
		}
	}
	old, err := autogroupNice()
	if err != nil || setAutogroupNice(-20) != nil {
		return func() {}
	}
	return func() { _ = setAutogroupNice(old) }
}

// autogroupNice returns the nice value of this process's autogroup
// ("/autogroup-N nice V"); an error when the kernel has none
// (CONFIG_SCHED_AUTOGROUP).
func autogroupNice() (int, error) {
	b, err := os.ReadFile("/proc/self/autogroup")
	if err != nil {
		return 0, err
	}
	_, v, ok := strings.Cut(strings.TrimSpace(string(b)), " nice ")
	if !ok {
		return 0, fmt.Errorf("/proc/self/autogroup: %q", b)
	}
	return strconv.Atoi(v)
}

// setAutogroupNice sets the nice value of this process's autogroup.
func setAutogroupNice(n int) error {
	return os.WriteFile("/proc/self/autogroup", []byte(strconv.Itoa(n)), 0)
}

// pinSelfTo sets the affinity of every thread of this process.
func pinSelfTo(set *unix.CPUSet) error {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, set); err != nil {
			return err
		}
	}
	return nil
}

// removeStaleTopologies deletes benchmark namespaces left by a harness
// that is no longer running (their names carry its PID).
func removeStaleTopologies() {
	for _, ns := range leftoverNamespaces("uvs-bn") {
		rest := strings.TrimPrefix(ns, "uvs-bn")
		pidStr, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil {
			continue
		}
		if unix.Kill(pid, 0) == nil {
			continue // that harness still runs
		}
		_, _ = run(cmdTimeout, "ip", "netns", "del", ns)
	}
}
