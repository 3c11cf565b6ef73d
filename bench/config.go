package bench

import (
	"fmt"
	"io"
	"time"
)

// Config configures a benchmark run.
type Config struct {
	Quick bool
	// Bin holds uvsd, uvsadm and uvs-rs.
	Bin string
	// Out is the results directory.
	Out string
	// Runs per figure and candidate (the median is taken over them).
	Runs int
	// UDP: warm-up before and length of the measuring window.
	UDPWarm, UDPWindow time.Duration
	// CPURate is the fixed offered rate of the CPU-cost figure (pps).
	CPURate float64
	// Flows is the number of UDP flows.
	Flows int
	// TCPDur is wrk's duration at 64 connections, LatDur at one.
	TCPDur, LatDur time.Duration
	// IperfDur is iperf3's duration, IperfRuns how many rounds run it.
	IperfDur  time.Duration
	IperfRuns int
	// TCPRuns is how many rounds run the wrk figures (all rounds if 0).
	TCPRuns int
	// TCPOnly limits the wrk figures to these candidates (nil: all).
	TCPOnly []string
	// TableRounds is how many times the 1 k / 1 M connection-table figure
	// is measured (0 skips it); TableFlows is the large flow count and
	// FillRate the rate the table is filled at.
	TableRounds int
	TableFlows  int
	FillRate    float64
	// Only limits the candidates (nil: all); Skip leaves some out.
	Only, Skip []string
	// GateWait bounds the wait for idle CPUs before each run; GateSettle is
	// how long they must be idle.
	GateWait, GateSettle time.Duration
	// MaxForeign (fraction of a CPU) and MaxSteal (fraction) decide
	// whether a run is clean.
	MaxForeign, MaxSteal float64
	// Reruns repeats dirty measurements (up to twice the runs in all)
	// while the run has taken less than Budget.
	Reruns bool
	Budget time.Duration
	// Micro lists the packages whose Go benchmarks run after the netns
	// benchmark ("" = none); MicroTime is their -benchtime.
	Micro     string
	MicroTime string
	// RPSDir is the RPS CPU mask (hex) of the director's and real servers'
	// interfaces: "2" (CPU1, the split layout) unless exploring.
	RPSDir string
	// SyncRounds is how many sync-off/sync-on pairs the connection-sync
	// figure measures (0 skips it; uvs-bench --sync); SyncOnly measures
	// nothing else. SyncRate is its offered pps (every packet a new
	// connection), SyncFlows its flow count, SyncWarm and SyncWindow its
	// warm-up and window.
	SyncRounds           int
	SyncOnly             bool
	SyncRate             float64
	SyncFlows            int
	SyncWarm, SyncWindow time.Duration
	// FloodRounds is how many rounds of the table-pressure figure (a SYN
	// flood and a UDP new-flow flood) to run (0 skips it; uvs-bench
	// --flood); FloodOnly measures nothing else. FloodConns is uvsd's
	// table capacity, FloodTime the flood's length, FloodDrain the most
	// it waits for the table to drain after.
	FloodRounds int
	FloodOnly   bool
	FloodConns  int
	FloodTime   time.Duration
	FloodDrain  time.Duration
	// Log receives progress lines.
	Log io.Writer
}

// DefaultConfig returns the full run's settings, or the reduced ones.
func DefaultConfig(quick bool) Config {
	c := Config{
		Runs: 5, UDPWarm: 500 * time.Millisecond, UDPWindow: 2 * time.Second, CPURate: 150_000, Flows: 4096,
		TCPDur: 3 * time.Second, LatDur: time.Second, IperfDur: 8 * time.Second, IperfRuns: 3,
		TableRounds: 5, TableFlows: 1_000_000, FillRate: 400_000,
		GateWait: 5 * time.Second, GateSettle: 500 * time.Millisecond, MaxForeign: 0.10, MaxSteal: 0.05,
		Reruns: true, Budget: 20 * time.Minute, Micro: "./...", MicroTime: "200ms", RPSDir: "2",
		SyncRate: 10_000, SyncFlows: 40_000, SyncWarm: time.Second, SyncWindow: 4 * time.Second,
		FloodConns: 131_072, FloodTime: 10 * time.Second, FloodDrain: 150 * time.Second,
	}
	if quick {
		c.Quick = true
		c.Runs = 3
		c.UDPWarm, c.UDPWindow = 200*time.Millisecond, 500*time.Millisecond
		c.TCPDur, c.LatDur = time.Second, time.Second
		c.IperfDur, c.IperfRuns = time.Second, 1
		c.TCPRuns = 2
		c.TCPOnly = []string{"kernel-forward", "nft-dnat", "haproxy-tcp", "uvs-nat"}
		// uvs-nat-afxdp is uvs-nat with the default backend on veth
		// (--io auto: native AF_XDP) spelt out; the layout variant is for
		// the full run.
		c.Skip = []string{"uvs-nat-afxdp", "uvs-nat-rxcpu0"}
		c.TableRounds = 1
		c.GateWait, c.GateSettle = 400*time.Millisecond, 200*time.Millisecond
		c.Reruns = false
		c.Micro, c.MicroTime = "./ipvsadm ./conntrack ./sched ./modes ./dataplane ./bench", "100ms"
	}
	return c
}

// Validate names the first bad setting.
func (c Config) Validate() error {
	switch {
	case c.Runs < 1:
		return fmt.Errorf("runs %d: need at least 1", c.Runs)
	case c.UDPWindow < 100*time.Millisecond:
		return fmt.Errorf("UDP window %v: need at least 100ms", c.UDPWindow)
	case c.CPURate <= 0:
		return fmt.Errorf("CPU rate %v pps: must be positive", c.CPURate)
	case c.Flows < 1:
		return fmt.Errorf("flows %d: need at least 1", c.Flows)
	case c.TCPDur < time.Second || c.LatDur < time.Second:
		return fmt.Errorf("wrk durations %v/%v: need at least 1s (wrk counts whole seconds)", c.TCPDur, c.LatDur)
	case c.IperfDur < time.Second:
		return fmt.Errorf("iperf3 duration %v: need at least 1s", c.IperfDur)
	case c.TableRounds > 0 && c.TableFlows < 2000:
		return fmt.Errorf("table flows %d: need at least 2000", c.TableFlows)
	case c.FillRate <= 0:
		return fmt.Errorf("fill rate %v: must be positive", c.FillRate)
	case c.FloodRounds < 0:
		return fmt.Errorf("flood rounds %d: must not be negative", c.FloodRounds)
	case c.FloodRounds > 0 && (c.FloodConns < 1024 || c.FloodTime < time.Second):
		return fmt.Errorf("flood figure: table %d, flood %v: need at least 1024 entries and 1s", c.FloodConns, c.FloodTime)
	case c.SyncRounds < 0:
		return fmt.Errorf("sync rounds %d: must not be negative", c.SyncRounds)
	case c.SyncRounds > 0 && c.SyncRate <= 0:
		return fmt.Errorf("sync rate %v pps: must be positive", c.SyncRate)
	case c.SyncRounds > 0 && float64(c.SyncFlows)/c.SyncRate < 2*syncUDPTimeout:
		// A flow must come back after its connection expired, with margin
		// for the expiry's granularity.
		return fmt.Errorf("sync flows %d at %v pps: each flow returns after %.2f s, need at least %d s (twice the UDP timeout)",
			c.SyncFlows, c.SyncRate, float64(c.SyncFlows)/c.SyncRate, 2*syncUDPTimeout)
	case c.SyncRounds > 0 && c.SyncWindow < time.Second:
		return fmt.Errorf("sync window %v: need at least 1s", c.SyncWindow)
	}
	return nil
}
