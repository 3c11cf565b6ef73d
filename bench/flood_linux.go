package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Flood-figure constants: the control client's requests and streams, the
// poll of the table while it drains, and the UDP timeout of the UDP run.
const (
	floodRequests   = 100
	floodStreams    = 25
	floodAfter      = 10
	floodDrainPoll  = 2 * time.Second
	floodUDPTimeout = 30 // seconds (uvsadm --set 900 120 30): the UDP run's flows drain in a bench's time
)

// floodScale measures the table-pressure figure: for each round, a SYN
// flood and a UDP new-flow flood, each against a fresh uvsd.
func (h *harness) floodScale(ctx context.Context) error {
	if _, err := exec.LookPath("hping3"); err != nil {
		return fmt.Errorf("flood figure: hping3 not installed (bench/install-deps.sh installs it)")
	}
	h.rep.Method["flood"] = fmt.Sprintf("uvs-nat (uvsd --conns %d, one worker on the director core) with HTTP (rr) and UDP services; "+
		"hping3 --flood --rand-source (-S to :%d, or --udp to :%d) from the client namespace on the generator core for %v, while a control client "+
		"in the same namespace makes HTTP requests to the VIP, each a new connection (%d streams, 10 s timeout, the kernel's TCP retransmissions allowed) "+
		"until %d have started, then %d more just after the flood. Table = uvsadm -Lnc lines (peak: at the flood's end); drained = every half-open TCP "+
		"connection (SYN flood) or UDP flow (UDP flood, UDP timeout %d s) gone, polled every %v for up to %v; RSS = uvsd's VmRSS; new conn/s = growth of "+
		"the services' Conns counter over the flood.",
		h.cfg.FloodConns, HTTPPort, UDPPort, h.cfg.FloodTime, floodStreams, floodRequests, floodAfter, floodUDPTimeout, floodDrainPoll, h.cfg.FloodDrain)
	for round := 0; round < h.cfg.FloodRounds; round++ {
		for _, k := range floodKinds {
			if err := ctx.Err(); err != nil {
				return err
			}
			r := h.floodRun(ctx, k.fig, k.args())
			r.Candidate, r.Figure, r.Round = FloodCandidate, k.fig, round
			r.Gate, r.Clean = true, true
			h.rep.Runs = append(h.rep.Runs, r)
			h.logf("flood round %d %-9s %s", round+1, k.fig, describeFlood(r))
		}
	}
	return nil
}

// floodRun is one flood run against a fresh uvsd.
func (h *harness) floodRun(ctx context.Context, fig string, args []string) (r Run) {
	x := map[string]float64{"capacity": float64(h.cfg.FloodConns)}
	r.Extra = x
	fail := func(what string, err error) Run {
		r.Err = what + ": " + err.Error()
		return r
	}
	rules := filepath.Join(h.tmp, "uvs-flood.rules")
	if err := os.WriteFile(rules, []byte(h.uvsRules("-m", false)), 0o644); err != nil {
		return fail("rules", err)
	}
	p, err := start("uvsd", h.topo.Dir, dirCPU, filepath.Join(h.bin, "uvsd"), "--rules", rules, "--iface", h.dirIfaces(),
		"--workers", "1", "--log-level", "info", "--conns", strconv.Itoa(h.cfg.FloodConns))
	if err != nil {
		return fail("uvsd", err)
	}
	h.uvsd = p
	defer func() {
		if err := h.stopUVS("-m"); err != nil && r.Err == "" {
			r.Err = "stopping uvsd: " + err.Error()
		}
	}()
	if err := p.waitFor(15*time.Second, "answer to uvsadm -Ln", func() bool {
		_, err := h.uvsadmIn(h.topo.Dir, "-Ln")
		return err == nil
	}); err != nil {
		return fail("uvsd", err)
	}
	if fig == FigFloodUDP {
		if _, err := h.uvsadmIn(h.topo.Dir, "--set", "900", "120", strconv.Itoa(floodUDPTimeout)); err != nil {
			return fail("uvsadm --set", err)
		}
	}
	client := floodHTTP(h.topo.Cli)
	url := "http://" + h.tcpHost(VIP.String(), HTTPPort) + "/"
	if err := floodGet(client, url); err != nil {
		return fail("request before the flood", err)
	}
	pid := p.cmd.Process.Pid
	rss0, err := vmRSS(pid)
	if err != nil {
		return fail("uvsd RSS", err)
	}
	x["rss_before_mib"] = float64(rss0) / (1 << 20)
	conns0, err := h.floodCreated()
	if err != nil {
		return fail("uvsadm --stats", err)
	}

	fl, err := start("hping3", h.topo.Cli, genCPU, append(append([]string{"hping3", "--flood", "--rand-source", "-q"}, args...), VIP.String())...)
	if err != nil {
		return fail("hping3", err)
	}
	began := time.Now()
	stopFlood := func() { _ = fl.stop(0) }
	defer stopFlood()
	deadline := began.Add(h.cfg.FloodTime)

	// Fill: until the services have created as many connections as the
	// table holds (counting those made before the flood, still live),
	// within the flood's time.
	for {
		n, err := h.floodCreated()
		if err != nil {
			return fail("uvsadm --stats", err)
		}
		if n >= uint64(h.cfg.FloodConns) {
			x["fill_s"] = time.Since(began).Seconds()
			break
		}
		if fl.exited() {
			return fail("hping3", fmt.Errorf("exited: %v: %s", fl.err, trunc([]byte(fl.out.String()))))
		}
		if time.Now().After(deadline) {
			return fail("fill", fmt.Errorf("the flood created %d connections in %v, fewer than the table's %d", n-conns0, h.cfg.FloodTime, h.cfg.FloodConns))
		}
		time.Sleep(100 * time.Millisecond)
	}

	var peakRSS atomic.Int64
	peakRSS.Store(rss0)
	sampleDone := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-sampleDone:
				return
			case <-t.C:
				if v, err := vmRSS(pid); err == nil && v > peakRSS.Load() {
					peakRSS.Store(v)
				}
			}
		}
	}()
	started, failed := floodRequestsDuring(deadline, func() error { return floodGet(client, url) })
	// The flood runs its full time, whatever the control client's pace.
	for time.Now().Before(deadline) && !fl.exited() {
		time.Sleep(50 * time.Millisecond)
	}
	close(sampleDone)
	sampler.Wait()
	conns1, err := h.floodCreated()
	if err != nil {
		return fail("uvsadm --stats", err)
	}
	flooded := time.Since(began).Seconds()
	peak, _, err := h.floodTable()
	if err != nil {
		return fail("uvsadm -Lnc", err)
	}
	stopFlood()
	stopped := time.Now()
	after := 0
	for range floodAfter {
		if floodGet(client, url) != nil {
			failed++
		}
		after++
	}
	total := started + after
	r.Value = Num(100 * float64(total-failed) / float64(total))
	x["requests"], x["during"], x["after"], x["failed"] = float64(total), float64(started), float64(after), float64(failed)
	x["peak_conns"] = float64(peak)
	x["rss_peak_mib"] = float64(peakRSS.Load()) / (1 << 20)
	x["new_conns_per_s"] = float64(conns1-conns0) / flooded

	for {
		_, left, err := h.floodTable()
		if err != nil {
			return fail("uvsadm -Lnc", err)
		}
		n := left["UDP"]
		if fig == FigFloodSYN {
			n = left["SYN_RECV"] + left["SYNACK"] + left["NONE"] + left["SYN_SENT"]
		}
		if n == 0 {
			x["drained"], x["drain_s"] = 1, time.Since(stopped).Seconds()
			break
		}
		if time.Since(stopped) > h.cfg.FloodDrain || ctx.Err() != nil {
			x["left_after_wait"] = float64(n)
			break
		}
		time.Sleep(floodDrainPoll)
	}
	return r
}

// floodCreated returns the services' Conns counters' sum.
func (h *harness) floodCreated() (uint64, error) {
	out, err := h.uvsadmIn(h.topo.Dir, "-L", "-n", "--stats", "--exact")
	if err != nil {
		return 0, err
	}
	return ParseServiceConns(out)
}

// floodTable counts the director's connections by state (uvsadm -Lnc).
func (h *harness) floodTable() (int, map[string]int, error) {
	out, err := h.uvsadmIn(h.topo.Dir, "-Lnc")
	if err != nil {
		return 0, nil, err
	}
	n, states := ParseConnStates(out)
	return n, states, nil
}

// floodRequestsDuring runs do from floodStreams goroutines until
// floodRequests have started or deadline passes; it returns how many
// started and how many of those failed.
func floodRequestsDuring(deadline time.Time, do func() error) (started, failed int) {
	var next, bad atomic.Int64
	var wg sync.WaitGroup
	for range floodStreams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && next.Add(1) <= floodRequests {
				if do() != nil {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return int(min(next.Load(), floodRequests)), int(bad.Load())
}

// floodHTTP is an HTTP client whose connections are made inside namespace
// ns, one new connection per request.
func floodHTTP(ns string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := inNetNS(ns, func() error {
				var err error
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}}
}

func floodGet(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// vmRSS returns process pid's resident set in bytes.
func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
