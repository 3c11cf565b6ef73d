package bench

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// tableCapacity is uvsd's --conns for the connection-table figure.
const tableCapacity = 1 << 21

// tableScale measures uvs-nat with 1 k and with TableFlows live
// connections: saturated throughput, CPU per packet at the fixed rate, and
// uvsd's resident memory per connection.
//
// It runs with d0's receive processing (RPS) on the generator's CPU, so that
// uvsd has the director core to itself: the figure is about what the table
// size does to uvsd's own per-packet work, and in the split layout a
// saturated uvsd is dominated by the receive livelock instead (see the
// main table). Filling is preparation, not measurement: it repeats passes
// over the flows (existing ones are plain hits) until at least 99 % are
// live or four passes are done. uvsd runs without the XDP fast path
// (--fast-path=false): the figure is about the workers' table, and the
// fast path would take the 1 k flows (many packets each) and not the 1 M
// ones, and with it thread d0's receive on the generator's CPU.
func (h *harness) tableScale(ctx context.Context) error {
	if err := setRPS(h.topo.Dir, "d0", "1"); err != nil {
		return err
	}
	defer func() { _ = setRPS(h.topo.Dir, "d0", h.cfg.RPSDir) }()
	h.rep.Table = &TableScale{Capacity: tableCapacity}
	small, large := 1000, h.cfg.TableFlows
	vip := []netip.Addr{VIP}
	for round := 0; round < h.cfg.TableRounds; round++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := h.startUVSWorkers("-m", "", tableCapacity, 1, "--fast-path=false"); err != nil {
			h.logf("table round %d: uvsd: %v", round+1, err)
			h.rep.Runs = append(h.rep.Runs, Run{Candidate: "uvs-nat", Figure: FigTable1k, Round: round, Value: Num(math.NaN()), Err: err.Error()})
			continue
		}
		var live0, rss0 float64
		for _, n := range []int{small, large} {
			fig := FigTable1k
			if n == large {
				fig = FigTable1M
			}
			spec := h.udpSpec(vip, n, FillBase, 1024, 64)
			r := h.tableStep(ctx, spec, n)
			r.Candidate, r.Figure, r.Round = "uvs-nat", fig, round
			if r.Err == "" {
				if n == small {
					live0, rss0 = r.Extra["live"], r.Extra["rss"]
				} else if d := r.Extra["live"] - live0; d > 0 && rss0 > 0 {
					r.Extra["bytes_per_conn"] = (r.Extra["rss"] - rss0) / d
				}
			}
			h.rep.Runs = append(h.rep.Runs, r)
			h.logf("table round %d %-8s %s; %.0f live, RSS %.0f MB, %.2f µs/pkt, %.0f B/conn", round+1, fig, describe(r),
				r.Extra["live"], r.Extra["rss"]/1e6, r.Extra["cpu_us_per_pkt"], r.Extra["bytes_per_conn"])
		}
		if err := h.stopUVS("-m"); err != nil {
			h.logf("table round %d: stopping uvsd: %v", round+1, err)
		}
	}
	return nil
}

// tableStep fills n flows into uvsd's table, then measures saturated
// throughput and the CPU cost at the fixed rate over the same flows.
func (h *harness) tableStep(ctx context.Context, spec FlowSpec, n int) Run {
	fail := func(err error) Run { return Run{Value: Num(math.NaN()), Err: err.Error()} }
	for pass := 0; pass < 4; pass++ {
		d := time.Duration(float64(n)/h.cfg.FillRate*float64(time.Second)) + 5*time.Second
		if _, err := Generate(ctx, GenConfig{NetNS: h.topo.Cli, Iface: "c0", Flow: spec, Rate: h.cfg.FillRate, Count: uint64(n), Duration: d, CPU: genCPU}); err != nil {
			return fail(err)
		}
		if live, err := h.liveConns(); err == nil && live >= int64(n)*99/100 {
			break
		}
	}
	sat := h.udpRun(ctx, spec, 0, h.topo.Delivered)
	if sat.Err != "" {
		return sat
	}
	rate := h.udpRun(ctx, spec, h.cfg.CPURate, h.topo.Delivered)
	sat.Extra["cpu_us_per_pkt"] = float64(rate.Value)
	sat.Extra["rate_delivered_pps"] = rate.Extra["delivered_pps"]
	sat.Clean = sat.Clean && rate.Clean
	sat.Steal, sat.Foreign = max(sat.Steal, rate.Steal), max(sat.Foreign, rate.Foreign)
	live, err := h.liveConns()
	if err != nil {
		return fail(err)
	}
	sat.Extra["live"] = float64(live)
	rss, err := rssOf(h.uvsd.cmd.Process.Pid)
	if err != nil {
		return fail(err)
	}
	sat.Extra["rss"] = float64(rss)
	return sat
}

// liveConns asks uvsd (uvsadm -Ln) for its live connections.
func (h *harness) liveConns() (int64, error) {
	out, err := nsRun(cmdTimeout, h.topo.Dir, genCPU, "env", "UVS_NO_AUTOSTART=1", filepath.Join(h.bin, "uvsadm"), "-L", "-n")
	if err != nil {
		return 0, err
	}
	a, i, err := ParseListConns(out)
	return a + i, err
}

// rssOf returns a process's resident set size.
func rssOf(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("uvsd status: %w", err)
	}
	return ParseVmRSS(b)
}
