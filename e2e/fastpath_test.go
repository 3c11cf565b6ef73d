package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/wait"
)

// uvsCounters returns uvsadm --counters' totals by name.
func uvsCounters(t *testing.T, ns *netnstest.NS) map[string]uint64 {
	t.Helper()
	out := uvsadmIn(t, ns, "--counters", "--json")
	var cs struct {
		Counters []struct {
			Name  string
			Total uint64
		}
	}
	if err := json.Unmarshal([]byte(out), &cs); err != nil {
		t.Fatalf("uvsadm --counters --json: %v\n%s", err, out)
	}
	m := map[string]uint64{}
	for _, c := range cs.Counters {
		m[c.Name] = c.Total
	}
	return m
}

// fastNATLab is newNATLab set up for the fast path: GRO on the peers of
// d0 and d1 (a veth takes XDP-redirected frames only then), the client's
// and real servers' checksums complete (tx-checksumming off), a stream
// server on each real server.
func fastNATLab(t *testing.T) *natLab {
	t.Helper()
	l := newNATLab(t)
	l.cli.Exec(t, "ethtool", "-K", "c0", "gro", "on", "tx", "off")
	l.sw.Exec(t, "ethtool", "-K", "s0", "gro", "on")
	for _, rs := range l.rs {
		rs.Exec(t, "ethtool", "-K", "r0", "tx", "off")
		startStreamServer(t, rs)
	}
	return l
}

// fastDrained waits until no flow is left in dir's fast path (the
// connections closed) and returns the counters then.
func fastDrained(t *testing.T, dir *netnstest.NS, what string) map[string]uint64 {
	t.Helper()
	var after map[string]uint64
	if !wait.Until(10*time.Second, func() bool {
		after = uvsCounters(t, dir)
		return after["fastpath.flows"] == 0
	}) {
		t.Fatalf("%s: %d fast-path flows after the streams closed, want 0", what, after["fastpath.flows"])
	}
	return after
}

// TestFastPathNAT runs a NAT director on the AF_XDP backend whose
// neighbours' veths take XDP-redirected frames (GRO on the peers of d0
// and d1) and whose clients and real servers complete their checksums
// (tx-checksumming off): the XDP program forwards the established
// connections itself. A TCP stream each way arrives intact with most of
// its packets forwarded by the fast path, the services' statistics count
// them, and the connection leaves the fast path when it closes. A UDP flow
// that keeps talking past its 3 s timeout through the fast path keeps its
// one connection (the counters read back re-arm its timer), and expires
// once it stops.
func TestFastPathNAT(t *testing.T) {
	t.Setenv("UVS_E2E_IO", "afxdp") // about the AF_XDP backend, in every e2e pass
	l := fastNATLab(t)
	for _, rs := range l.rs {
		startUDPWhoAmI(t, rs, ":5300")
	}
	startUVSD(t, l.dir, fmt.Sprintf(`-A -t 10.0.1.100:%[1]d -s rr
-a -t 10.0.1.100:%[1]d -r 10.0.2.11:%[1]d -m
-a -t 10.0.1.100:%[1]d -r 10.0.2.12:%[1]d -m
-A -u 10.0.1.100:5300 -s rr
-a -u 10.0.1.100:5300 -r 10.0.2.11:5300 -m
-a -u 10.0.1.100:5300 -r 10.0.2.12:5300 -m
`, streamPort), "--io", "afxdp")
	uvsadmIn(t, l.dir, "--set", "900", "120", "3")

	vip := fmt.Sprintf("10.0.1.100:%d", streamPort)
	before := uvsCounters(t, l.dir)
	st0 := serviceStats(t, l.dir, vip)
	transfer(t, l.cli, vip, true, 32<<20)
	transfer(t, l.cli, vip, false, 32<<20)
	// The connections closed (FIN through the workers): nothing is left
	// in the fast path, and the last counts are read back.
	after := fastDrained(t, l.dir, "NAT")
	fast := after["fastpath.packets"] - before["fastpath.packets"]
	rx := after["dataplane.rx"] - before["dataplane.rx"]
	t.Logf("fast path: %d packets, %d installs; workers received %d frames", fast,
		after["fastpath.installs"]-before["fastpath.installs"], rx)
	// 64 MB is over 46 000 full-sized segments, and their ACKs: most of
	// them, and ten times what the workers received, is the fast path's.
	if fast < 20000 || fast < 10*rx {
		t.Errorf("the fast path forwarded %d packets and the workers received %d: want most packets in the fast path", fast, rx)
	}
	st1 := serviceStats(t, l.dir, vip)
	if got := uint64(st1[1]-st0[1]) + uint64(st1[2]-st0[2]); got < fast {
		t.Errorf("service statistics: %d packets counted, fewer than the fast path's %d", got, fast)
	}
	for _, ns := range []*netnstest.NS{l.cli, l.rs[0], l.rs[1]} {
		if n := nstatCounter(t, ns, "TcpInCsumErrors"); n != 0 {
			t.Errorf("%s counted %d TCP checksum errors", ns.Name, n)
		}
	}

	// UDP: one flow, enough exchanges at once for the fast path to take
	// it (FastMinPackets), then one every 200 ms for 6 s, past its 3 s
	// timeout.
	var c net.Conn
	if err := l.cli.Do(func() error {
		var err error
		c, err = net.Dial("udp", "10.0.1.100:5300")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 256)
	ask := func() bool {
		if _, err := c.Write([]byte("who")); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		_, err := c.Read(buf)
		return err == nil
	}
	before = uvsCounters(t, l.dir)
	for range 2 * dataplane.FastMinPackets {
		ask()
	}
	mid := uvsCounters(t, l.dir)
	answered := 0
	for end := time.Now().Add(6 * time.Second); time.Now().Before(end); {
		if ask() {
			answered++
		}
		time.Sleep(200 * time.Millisecond)
	}
	after = uvsCounters(t, l.dir)
	if answered < 10 {
		t.Fatalf("UDP: %d answers in 6 s", answered)
	}
	if n := after["dataplane.new-conn"] - before["dataplane.new-conn"]; n != 1 {
		t.Errorf("UDP: %d connections created for one flow talking past its timeout, want 1 (the fast path's traffic re-arms the timer)", n)
	}
	if n := after["fastpath.packets"] - mid["fastpath.packets"]; n < uint64(answered) {
		t.Errorf("UDP: the fast path forwarded %d packets of %d exchanges, want most", n, answered)
	}
	// Quiet: the connection expires (3 s, FastGrace later) and leaves
	// the fast path.
	if !wait.Until(15*time.Second, func() bool {
		return !strings.Contains(uvsadmIn(t, l.dir, "-Lnc"), ":5300") && uvsCounters(t, l.dir)["fastpath.flows"] == 0
	}) {
		t.Errorf("UDP: the quiet connection did not expire and leave the fast path:\n%s", uvsadmIn(t, l.dir, "-Lnc"))
	}
}

// fastUpload uploads 32 MB through addr and returns how many packets the
// fast path forwarded meanwhile, once the connection has left it.
func fastUpload(t *testing.T, cli, dir *netnstest.NS, addr string) uint64 {
	t.Helper()
	before := uvsCounters(t, dir)
	transfer(t, cli, addr, true, 32<<20)
	return fastDrained(t, dir, addr)["fastpath.packets"] - before["fastpath.packets"]
}

// TestFastPathFullNATAndDR: the fast path forwards FULLNAT connections
// (both ends rewritten, the reply addressed to the director's local
// address) and DR connections (the frame sent on as it came, to the real
// server's MAC, out of the interface it arrived on); the streams arrive
// intact, and most of each 32 MB upload's ~23 000 full-sized segments
// (15 000) took the fast path.
func TestFastPathFullNATAndDR(t *testing.T) {
	t.Setenv("UVS_E2E_IO", "afxdp")
	l := fastNATLab(t)
	startUVSD(t, l.dir, fmt.Sprintf("-A -t 10.0.1.100:%d -s rr\n-a -t 10.0.1.100:%[1]d -r 10.0.2.11:%d -b\n", streamPort+1, streamPort), "--io", "afxdp")
	if n := fastUpload(t, l.cli, l.dir, fmt.Sprintf("10.0.1.100:%d", streamPort+1)); n < 15000 {
		t.Errorf("FULLNAT: the fast path forwarded %d packets of a 32 MB upload, want most", n)
	}

	lan := newLANLab(t, false)
	lan.cli.Exec(t, "ethtool", "-K", "c0", "tx", "off")
	lan.sw.Exec(t, "ethtool", "-K", "p2", "gro", "on") // the director's port
	for _, rs := range lan.rs {
		drRealServer(t, rs, "10.0.5.100")
		startStreamServer(t, rs)
	}
	startUVSD(t, lan.dir, fmt.Sprintf("-A -t 10.0.5.100:%d -s rr\n-a -t 10.0.5.100:%[1]d -r 10.0.5.11 -g\n", streamPort), "--io", "afxdp")
	if n := fastUpload(t, lan.cli, lan.dir, fmt.Sprintf("10.0.5.100:%d", streamPort)); n < 15000 {
		t.Errorf("DR: the fast path forwarded %d packets of a 32 MB upload, want most", n)
	}
}

// TestFastPathTUN: the fast path forwards an IPIP service's connections
// in IPIP (the outer header written by the XDP program, sent back out of
// the interface they came in on, towards the router); a 32 MB upload
// arrives intact through the real server's in-kernel decapsulation
// (uvs-rs's tc program), most of its segments through both.
func TestFastPathTUN(t *testing.T) {
	t.Setenv("UVS_E2E_IO", "afxdp")
	l := newRoutedLab(t)
	netnstest.RequireTool(t, "ethtool")
	l.cli.Exec(t, "ethtool", "-K", "c0", "tx", "off")
	l.rtr.Exec(t, "ethtool", "-K", "x1", "gro", "on") // d0's peer takes redirected frames
	var states []string
	for _, rs := range l.rs {
		states = append(states, uvsRS(t, rs, "tun", "10.0.3.100"))
		startStreamServer(t, rs)
	}
	startUVSD(t, l.dir, fmt.Sprintf("-A -t 10.0.3.100:%d -s rr\n-a -t 10.0.3.100:%[1]d -r 10.0.4.11 -i\n", streamPort), "--io", "afxdp")
	n := fastUpload(t, l.cli, l.dir, fmt.Sprintf("10.0.3.100:%d", streamPort))
	if n < 15000 {
		t.Errorf("TUN: the fast path forwarded %d packets of a 32 MB upload, want most", n)
	}
	// The real server's GRO merges the tunnelled segments before its tc
	// program sees them: fewer packets, every one decapsulated in the
	// kernel, none in user space.
	var st string
	wait.For(t, 5*time.Second, func() bool {
		st = l.rs[0].Exec(t, binary("uvs-rs"), "status", "--state-dir", states[0])
		return tunCounters(st)["bpf-decapsulated"] > 0
	}, "the real server to count packets decapsulated in the kernel; status:\n%s", wait.Lazy(func() any { return st }))
	if c := tunCounters(st); c["decapsulated"] != 0 {
		t.Errorf("the real server decapsulated %d packets in user space, want all in the kernel: %v", c["decapsulated"], c)
	}
}
