package bench

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// machineInfo describes the machine and the code measured.
func machineInfo() map[string]string {
	m := map[string]string{
		"nproc": strconv.Itoa(runtime.NumCPU()),
		"go":    runtime.Version(),
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if !ok {
				continue
			}
			if k == "model name" && m["cpu"] == "" {
				m["cpu"] = v
			}
			if k == "flags" && m["hypervisor"] == "" {
				m["hypervisor"] = strconv.FormatBool(strings.Contains(" "+v+" ", " hypervisor "))
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				m["memory"] = strings.TrimSpace(v)
			}
		}
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m["kernel"] = unix.ByteSliceToString(u.Release[:])
		m["hostname"] = unix.ByteSliceToString(u.Nodename[:])
	}
	if out, err := run(5*time.Second, "git", "rev-parse", "HEAD"); err == nil {
		m["uvs_commit"] = out
		if st, err := run(5*time.Second, "git", "status", "--porcelain", "--untracked-files=no"); err == nil && st != "" {
			m["uvs_commit"] += " (with uncommitted changes)"
		}
	}
	for name, args := range map[string][]string{
		"nft": {"nft", "--version"}, "iptables": {"iptables", "--version"}, "haproxy": {"haproxy", "-v"},
		"wrk": {"wrk", "--version"}, "iperf3": {"iperf3", "--version"}, "nginx": {"nginx", "-v"},
	} {
		out, _ := run(5*time.Second, args[0], args[1:]...)
		if line, _, _ := strings.Cut(out, "\n"); line != "" {
			m["tool_"+name] = line
		}
	}
	return m
}

// method describes how the figures were taken.
func (h *harness) method() map[string]string {
	c := h.cfg
	m := map[string]string{
		"topology": "4 namespaces: client c0 198.18.1.2 — d0 198.18.1.1 director d1/d2 — b1 198.18.2.2, b2 198.18.3.2; VIP 198.18.0.10; static neighbours, no ARP",
		"layout": "split: generator, wrk, iperf3 client and the harness on CPU0 (c0 RPS → CPU0); director RPS (d0, d1, d2), uvsd (--workers 1), HAProxy, " +
			"nginx, iperf3 servers and the real servers' receive (RPS) on CPU1; every process of the benchmark runs at nice -20, and so does its autogroup (session), against the machine's other load",
		"generator": "uvs-bench's own: AF_PACKET SOCK_RAW, PACKET_QDISC_BYPASS, sendmmsg batches of 64 precomputed-template frames, ENOBUFS counted and skipped, pinned to CPU0",
		"udp": "106-byte frames (64-byte UDP payload), " + strconv.Itoa(c.Flows) + " flows; delivered = packets counted by nftables netdev ingress drop counters on b1+b2 " +
			"(TUN: IPIP frames counted before decapsulation); warm-up " + c.UDPWarm.String() + ", window " + c.UDPWindow.String(),
		"cpu": "director cost per delivered packet at a fixed offered " + fmtVal(c.CPURate) + " pps: CPU1's busy wall time over the window (window − idle − iowait − steal from /proc/stat; " +
			"idle is measured exactly, while the tick-sampled busy fields miss softirq work done from idle and overcount work woken by jiffies timers) ÷ delivered packets. " +
			"Includes the real servers' sink share, and whatever foreign process ran on CPU1: runs with foreign load are marked dirty. The generator-core column is the same for CPU0",
		"tcp":    "wrk -t1 -c64 --latency -H 'Connection: close' for " + c.TCPDur.String() + " (conn/s, loaded latency) and -c1 for " + c.LatDur.String() + " (unloaded latency; wrk times request→response on a fresh connection, not the handshake) against nginx-light (1 worker per real server, keepalive_timeout 0); before every TCP figure the topology's TIME_WAIT sockets are killed (ss -K), so that a candidate's SYNs do not meet the previous candidate's TIME_WAIT sockets on the real servers and get dropped by PAWS (their count is recorded per run, paws_tw_rejects)",
		"iperf3": "iperf3 -c VIP -t " + c.IperfDur.String() + ", one stream client → real server, offloads (TSO/GSO/checksum) left on everywhere",
		"noise":  "before each run both CPUs must be >= 90% idle for " + c.GateSettle.String() + " (wait <= " + c.GateWait.String() + "); a run with foreign processes using > " + strconv.Itoa(int(c.MaxForeign*100)) + "% of a CPU or > " + strconv.Itoa(int(c.MaxSteal*100)) + "% steal on a CPU is dirty" + map[bool]string{true: " and re-run (up to 2x the runs, while the run is shorter than " + c.Budget.String() + ")", false: " (no re-runs in this mode)"}[c.Reruns] + "; a median uses the clean runs when at least 3 are clean, otherwise all runs (marked dirty)",
		"rounds": strconv.Itoa(c.Runs) + " rounds, candidates alternate within each round (order rotated per round)",
		"table": "uvs-nat, uvsd --conns 2097152 --fast-path=false, with d0's receive (RPS) on CPU0 so that uvsd has CPU1 to itself (the figure is uvsd's own work; in the split layout a saturated uvsd is dominated by the receive livelock): " +
			"fill 1 000 flows, measure saturated pps and µs/pkt at the fixed rate, fill " + strconv.Itoa(c.TableFlows) + " flows (sources 198.18.64.0/18 × 64 ports, repeated passes until >= 99 % are live), measure again; " +
			"live connections from uvsadm -Ln; bytes/conn = uvsd RSS growth ÷ live-connection growth",
		"quick": strconv.FormatBool(c.Quick),
	}
	if c.RPSDir != "2" {
		m["layout"] += "; OVERRIDDEN: director/real-server RPS mask " + c.RPSDir
	}
	return m
}
