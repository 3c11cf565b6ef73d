package e2e

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/netnstest"
)

// TestFirstSYNWaitsForNeighbour: the first SYN to a real server whose next
// hop is not resolved is queued by the worker and forwarded once the
// neighbour answers, as the kernel's arp_queue does, instead of being
// dropped (which costs the client a 1 s SYN retransmission).
//
// To make the miss certain, after a warm-up request to each real server
// they stop answering ARP (arp_ignore=8) and the director's neighbour cache
// is flushed; the test
// waits until the resolver has dropped the next hop (the kernel then holds
// an INCOMPLETE entry for the real server), starts the request, waits
// until the client's SYN is out (SYN-SENT), and lets the real servers
// answer ARP again. The director retransmits ARP every 50 ms meanwhile,
// so the next hop resolves well within the client's 1 s SYN timeout.
func TestFirstSYNWaitsForNeighbour(t *testing.T) {
	netnstest.RequireTool(t, "curl")
	netnstest.RequireTool(t, "ss")
	l := newNATLab(t)
	l.dir.Sysctl(t, "net.ipv4.neigh.d1.retrans_time_ms", "50")
	l.dir.Sysctl(t, "net.ipv4.neigh.d1.mcast_solicit", "100")
	u := startUVSD(t, l.dir, `-A -t 10.0.1.100:80 -s rr
-a -t 10.0.1.100:80 -r 10.0.2.11:80 -m
-a -t 10.0.1.100:80 -r 10.0.2.12:80 -m
`)
	// The real servers never ARP for the director (an ARP from one would
	// give the director a usable entry for it again).
	d1 := l.dir.Interface(t, "d1")
	for _, rs := range l.rs {
		rs.NeighAdd(t, "r0", "10.0.2.1", d1.HardwareAddr)
	}
	// One request to each real server (rr): both next hops have been
	// resolved and published, so no resolution is in flight when the
	// flush below makes the resolver drop them and start anew.
	if a, b := curl(t, l.cli, "http://10.0.1.100/"), curl(t, l.cli, "http://10.0.1.100/"); a == b {
		t.Fatalf("warm-up requests both answered by %s", a)
	}
	for _, rs := range l.rs {
		rs.Sysctl(t, "net.ipv4.conf.all.arp_ignore", "8")
	}
	l.dir.IP(t, "neigh", "flush", "all")
	var neighs string
	waitFor(t, "the resolver to drop the real servers' next hops", func() bool {
		neighs = l.dir.IP(t, "-4", "neigh", "show", "dev", "d1")
		unresolved := 0
		for _, line := range strings.Split(neighs, "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && (f[0] == "10.0.2.11" || f[0] == "10.0.2.12") &&
				(f[len(f)-1] == "INCOMPLETE" || f[len(f)-1] == "FAILED") {
				unresolved++
			}
		}
		return unresolved == 2
	}, func() string { return neighs })
	before := retransSegs(t, l.cli)
	c := l.cli.Start(t, "curl", "-sS", "--max-time", "8", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", "http://10.0.1.100/")
	waitFor(t, "the client's SYN", func() bool {
		out, _ := l.cli.Run("ss", "-Htn", "state", "syn-sent", "dst", "10.0.1.100")
		return strings.Contains(out, "10.0.1.100:80")
	}, c.Output)
	for _, rs := range l.rs {
		rs.Sysctl(t, "net.ipv4.conf.all.arp_ignore", "0")
	}
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("curl did not finish: %s", c.Output())
	}
	if err := c.Err(); err != nil || !strings.HasPrefix(c.Output(), "200 ") {
		t.Fatalf("curl: %v: %s", err, c.Output())
	}
	t.Logf("request: %s", c.Output())
	if n := retransSegs(t, l.cli) - before; n != 0 {
		t.Errorf("the client retransmitted %d segments: the first SYN was not forwarded", n)
	}
	u.stop(t)
	counters := workerCounters(t, u.proc.Output())
	if counters["neighbour-queued"] == 0 {
		t.Errorf("no frame was queued for a neighbour: %v", counters)
	}
	if counters["neighbour-timeout"] != 0 || counters["neighbour-queue-full"] != 0 {
		t.Errorf("queued frames were dropped: %v", counters)
	}
}

// waitFor polls cond every 10 ms for up to 5 s; state describes what was
// seen, for the failure message.
func waitFor(t *testing.T, what string, cond func() bool, state func() string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s:\n%s", what, state())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// retransSegs reads Tcp RetransSegs from /proc/net/snmp inside ns.
func retransSegs(t *testing.T, ns *netnstest.NS) int {
	t.Helper()
	out := ns.Exec(t, "cat", "/proc/net/snmp")
	var names, values []string
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "Tcp: ") {
			continue
		}
		if names == nil {
			names = strings.Fields(line)
		} else {
			values = strings.Fields(line)
		}
	}
	for i, n := range names {
		if n == "RetransSegs" && i < len(values) {
			v, err := strconv.Atoi(values[i])
			if err != nil {
				t.Fatalf("RetransSegs %q: %v", values[i], err)
			}
			return v
		}
	}
	t.Fatalf("no Tcp RetransSegs in /proc/net/snmp:\n%s", out)
	return 0
}

var counterRE = regexp.MustCompile(`"([a-z-]+)": (\d+)`)

// workerCounters parses the "worker counters" line uvsd logs when it stops.
func workerCounters(t *testing.T, log string) map[string]uint64 {
	t.Helper()
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, "worker counters") {
			continue
		}
		m := map[string]uint64{}
		for _, s := range counterRE.FindAllStringSubmatch(line, -1) {
			v, _ := strconv.ParseUint(s[2], 10, 64)
			m[s[1]] = v
		}
		return m
	}
	t.Fatalf("uvsd logged no worker counters:\n%s", log)
	return nil
}
