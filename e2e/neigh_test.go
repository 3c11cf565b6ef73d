package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/wait"
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
// so the next hop resolves, usually within the client's 1 s SYN timeout.
//
// What is asserted is not that timing (on a starved machine re-enabling
// ARP can take longer than a second, and the client then retransmits)
// but that no SYN is lost: nftables counts the SYNs the client sends and
// those the real servers receive, and they must be equal — every SYN,
// the first included, waited for the neighbour instead of being dropped.
func TestFirstSYNWaitsForNeighbour(t *testing.T) {
	netnstest.RequireTool(t, "curl")
	netnstest.RequireTool(t, "nft")
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
	wait.For(t, 15*time.Second, func() bool {
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
	}, "the resolver to drop the real servers' next hops:\n%s", wait.Lazy(func() any { return neighs }))
	sent := synCounter(t, l.cli, "output", "dport")
	var received []func() int
	for _, rs := range l.rs {
		received = append(received, synCounter(t, rs, "input", "dport"))
	}
	c := l.cli.Start(t, "curl", "-sS", "--max-time", "8", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", "http://10.0.1.100/")
	// From the SYN on, the test has the client's 1 s SYN timeout to let
	// the real servers answer ARP again: it looks and acts in-process
	// (an exec of ss or sysctl costs tens of milliseconds on a loaded
	// machine).
	vip := netip.MustParseAddrPort("10.0.1.100:80")
	wait.For(t, 5*time.Second, func() bool { return synSent(t, l.cli, vip) }, "the client's SYN (curl: %q)", wait.Lazy(func() any { return c.Output() }))
	for _, rs := range l.rs {
		if err := sysctlIn(rs, "net.ipv4.conf.all.arp_ignore", "0"); err != nil {
			t.Fatal(err)
		}
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
	got := 0
	for _, n := range received {
		got += n()
	}
	if n := sent(); n == 0 || got != n {
		t.Errorf("the client sent %d SYNs to the VIP, the real servers received %d: a SYN was dropped while the next hop resolved", n, got)
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

// synSent reports whether ns has a TCP socket in SYN-SENT towards dst
// (IPv4), from the namespace's /proc/net/tcp read in-process.
func synSent(t *testing.T, ns *netnstest.NS, dst netip.AddrPort) bool {
	t.Helper()
	var tab []byte
	// /proc/thread-self/net is the net namespace of the reading thread,
	// which Do moved into ns (/proc/self/net would be the main thread's).
	if err := ns.Do(func() error {
		var err error
		tab, err = os.ReadFile("/proc/thread-self/net/tcp")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	a := dst.Addr().As4()
	rem := fmt.Sprintf("%02X%02X%02X%02X:%04X", a[3], a[2], a[1], a[0], dst.Port()) // host order, as the kernel prints it
	for _, line := range strings.Split(string(tab), "\n") {
		// sl local_address rem_address st ...; st 02 is TCP_SYN_SENT.
		if f := strings.Fields(line); len(f) > 3 && f[2] == rem && f[3] == "02" {
			return true
		}
	}
	return false
}

// sysctlIn sets a net sysctl in ns in-process: /proc/sys/net belongs to
// the net namespace of the thread that opens it.
func sysctlIn(ns *netnstest.NS, key, value string) error {
	return ns.Do(func() error {
		return os.WriteFile("/proc/sys/"+strings.ReplaceAll(key, ".", "/"), []byte(value), 0)
	})
}

// synCounter counts, with an nftables rule in ns's hook (input or
// output), the TCP SYNs (without ACK) to port 80; the returned function
// reads the count.
func synCounter(t *testing.T, ns *netnstest.NS, hook, dir string) func() int {
	t.Helper()
	rules := fmt.Sprintf("table inet uvs_e2e_syn {\n\tchain c {\n\t\ttype filter hook %s priority 0; policy accept;\n"+
		"\t\ttcp %s 80 tcp flags & (syn | ack) == syn counter\n\t}\n}\n", hook, dir)
	f := t.TempDir() + "/syn.nft"
	if err := os.WriteFile(f, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	ns.Exec(t, "nft", "-f", f)
	re := regexp.MustCompile(`counter packets (\d+)`)
	return func() int {
		out := ns.Exec(t, "nft", "list", "table", "inet", "uvs_e2e_syn")
		m := re.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no counter in:\n%s", out)
		}
		n, err := strconv.Atoi(m[1])
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
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
