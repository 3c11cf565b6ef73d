package bench

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
)

// Connections of one candidate and the next share 4-tuples on the real
// servers: nginx closes first, so each connection leaves a TIME_WAIT socket
// (real server:80, client:port) for 60 s, and the next candidate's client
// reuses those ports within the minute. A SYN that meets a TIME_WAIT socket
// is accepted only when its timestamp is newer (tcp_timewait_state_process,
// PAWS); the client's timestamps start at an offset drawn per (source,
// destination) address pair, and kernel-forward's client talks to the real
// server's address where the NAT rows' talks to the VIP, so after a NAT
// row about half of kernel-forward's SYNs to reused ports are dropped
// (TcpExtPAWSTimewait), each costing the client a 1 s retransmission, and
// the same the other way round. Measured: 8–12 k such drops per 5 s run
// after the other candidate, none in the first run of a fresh topology;
// kernel-forward's conn/s fell from ~24 k to ~18–20 k. So the harness
// kills every TIME_WAIT socket of the topology before each TCP figure
// (flushTimeWait), as if each candidate met fresh servers, and records the
// drops that still happen (FigCPS/FigLat/iperf3 runs' "paws_tw_rejects").

// pawsTimewait returns TcpExtPAWSTimewait from /proc/net/netstat's text
// (the "TcpExt:" header line and the value line after it).
func pawsTimewait(netstat string) (uint64, error) {
	sc := bufio.NewScanner(strings.NewReader(netstat))
	var names []string
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != "TcpExt:" {
			continue
		}
		if names == nil {
			names = f[1:]
			continue
		}
		vals := f[1:]
		if len(vals) != len(names) {
			return 0, fmt.Errorf("TcpExt: %d names, %d values", len(names), len(vals))
		}
		for i, n := range names {
			if n == "PAWSTimewait" {
				return strconv.ParseUint(vals[i], 10, 64)
			}
		}
		return 0, fmt.Errorf("TcpExt has no PAWSTimewait")
	}
	return 0, fmt.Errorf("no TcpExt lines")
}
