package bench

import (
	"os"
	"strconv"
	"time"
)

// readCPUs reads /proc/stat.
func readCPUs() ([]CPUTimes, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseProcStat(f)
}

// Sides of the harness's own processes.
const (
	sideForeign = iota
	sideKernel  // kernel threads: their softirq time shows in /proc/stat
	sideGen     // the harness (generator) and the client's tools
	sideDir     // processes in the director's and real servers' namespaces
)

// procTicks is one process's CPU time at a scan.
type procTicks struct {
	start uint64 // start time, to tell a reused PID
	ticks uint64
	side  int
}

// accountant tells the harness's own processes from foreign ones: ours
// are the harness and its descendants, kernel threads, and any process in
// one of the benchmark's namespaces (daemonised helpers such as the TUN
// decapsulator). Processes in the director's and real servers' namespaces
// are the director side, the rest of ours the generator side.
type accountant struct {
	self    int
	ourNets map[string]int // /proc/PID/ns/net link target → side
}

func newAccountant(genNS, dirNS []string) *accountant {
	a := &accountant{self: os.Getpid(), ourNets: map[string]int{}}
	for side, list := range map[int][]string{sideGen: genNS, sideDir: dirNS} {
		for _, ns := range list {
			var st syscallStat
			if statNetNS("/run/netns/"+ns, &st) == nil {
				a.ourNets["net:["+strconv.FormatUint(st.ino, 10)+"]"] = side
			}
		}
	}
	return a
}

// scan reads every process's CPU time and decides whether it is ours.
func (a *accountant) scan() map[int]procTicks {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	all := make(map[int]PIDStat, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		st, err := ParsePIDStat(b)
		if err != nil {
			continue
		}
		all[pid] = st
	}
	out := make(map[int]procTicks, len(all))
	for pid, st := range all {
		side := sideForeign
		switch {
		case st.Kernel():
			side = sideKernel
		case pid == a.self:
			side = sideGen
		}
		if side == sideForeign {
			if l, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/net"); err == nil {
				if s, ok := a.ourNets[l]; ok {
					side = s
				}
			}
		}
		for p, hops := st.PPID, 0; side == sideForeign && p > 1 && hops < 64; hops++ {
			if p == a.self {
				side = sideGen
				break
			}
			pp, ok := all[p]
			if !ok {
				break
			}
			p = pp.PPID
		}
		out[pid] = procTicks{start: st.StartTime, ticks: st.UTime + st.STime, side: side}
	}
	return out
}

// sideTicks is the CPU time the processes of each side used between two
// scans (processes that ended in between are not seen).
func sideTicks(before, after map[int]procTicks) (bySide [4]uint64) {
	for pid, b := range after {
		if a, ok := before[pid]; ok && a.start == b.start {
			if b.ticks >= a.ticks {
				bySide[b.side] += b.ticks - a.ticks
			}
		} else {
			bySide[b.side] += b.ticks // started during the window
		}
	}
	return bySide
}

// WindowStats is what a measuring window saw on the CPUs.
type WindowStats struct {
	Seconds float64    `json:"seconds"`
	CPU     []CPUTimes `json:"cpu"` // per-CPU deltas, ticks
	// Foreign is the CPU time of foreign processes as a fraction of one
	// CPU over the window.
	Foreign float64 `json:"foreign"`
	// Steal is the highest per-CPU steal fraction.
	Steal float64 `json:"steal"`
	// GenTicks and DirTicks are the CPU time of the harness's own
	// processes on the generator side and on the director side.
	GenTicks, DirTicks uint64
}

// WallBusyUS is the time, in µs, cpu was neither idle nor waiting nor
// stolen over the window. With a tickless idle (NO_HZ) the kernel measures
// idle time exactly but samples the busy categories (user, system, softirq
// ...) with the tick, and those samples are biased both ways: the tick does
// not run in idle, so the softirq work a mostly idle CPU does when a packet
// wakes it goes unsampled, while work that wakes on jiffies timers (a
// TPACKET_V3 block timeout, for one) runs right at the tick and is counted
// a whole tick at a time. Wall time minus idle is exact; it includes any
// foreign process that ran on the CPU, which is why runs with foreign load
// are marked dirty.
func (s WindowStats) WallBusyUS(cpu int) float64 {
	if cpu >= len(s.CPU) {
		return nan()
	}
	c := s.CPU[cpu]
	idle := float64(c.Idle+c.IOWait+c.Steal) / UserHZ
	return max(0, s.Seconds-idle) * 1e6
}

// Clean applies the noise gate's rule: foreign load at most maxForeign of a
// CPU and steal at most maxSteal on every CPU.
func (s WindowStats) Clean(maxForeign, maxSteal float64) bool {
	return s.Foreign <= maxForeign && s.Steal <= maxSteal
}

// BusyUS returns CPU cpu's busy time in microseconds.
func (s WindowStats) BusyUS(cpu int) float64 {
	if cpu >= len(s.CPU) {
		return nan()
	}
	return float64(s.CPU[cpu].Busy()) * 1e6 / UserHZ
}

// waitIdle waits until every CPU was at least minIdle idle over a period
// of settle, or until maxWait passes. It reports whether the gate opened.
func waitIdle(minIdle float64, settle, maxWait time.Duration) bool {
	deadline := time.Now().Add(maxWait)
	for {
		a, err := readCPUs()
		if err != nil {
			return false
		}
		time.Sleep(settle)
		b, err := readCPUs()
		if err != nil {
			return false
		}
		ok := true
		for i := range min(len(a), len(b)) {
			d := b[i].Sub(a[i])
			if d.Total() > 0 && d.Frac(d.Idle) < minIdle {
				ok = false
			}
		}
		if ok {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}
