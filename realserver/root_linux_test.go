package realserver_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/testbin"
	"github.com/uvs-lb/uvs/internal/wait"
	"github.com/uvs-lb/uvs/realserver"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// uvsRS builds cmd/uvs-rs once per test binary and returns its path.
func uvsRS(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "uvs-rs-bin-")
		if buildErr != nil {
			return
		}
		buildErr = testbin.Build(buildDir, "github.com/uvs-lb/uvs/cmd/uvs-rs")
	})
	if buildErr != nil {
		t.Fatalf("build uvs-rs: %v", buildErr)
	}
	return filepath.Join(buildDir, "uvs-rs")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// sysctlKeys are the parameters uvs-rs may touch.
var sysctlKeys = []string{
	"net/ipv4/conf/all/arp_ignore", "net/ipv4/conf/lo/arp_ignore",
	"net/ipv4/conf/all/arp_announce", "net/ipv4/conf/lo/arp_announce",
	"net/ipv4/conf/all/rp_filter", "net/ipv4/conf/default/rp_filter",
}

// snapshot returns the namespace's sysctls and addresses, to compare
// before up and after down.
func snapshot(t *testing.T, ns *netnstest.NS) (map[string]string, string) {
	t.Helper()
	vals := map[string]string{}
	for _, k := range sysctlKeys {
		vals[k] = ns.Exec(t, "cat", "/proc/sys/"+k)
	}
	return vals, ns.IP(t, "-o", "addr", "show")
}

func TestDRUpDownRestoresExactly(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	bin := uvsRS(t)
	rs := netnstest.New(t, "rsdr")
	state := t.TempDir()
	// Unusual starting values, so a restore to kernel defaults would show.
	rs.Sysctl(t, "net.ipv4.conf.all.arp_announce", "1")
	rs.Sysctl(t, "net.ipv4.conf.lo.arp_ignore", "2")
	rs.Sysctl(t, "net.ipv4.conf.all.arp_ignore", "0")
	rs.AddrAdd(t, "lo", "192.0.2.99/32") // someone else's address: must survive
	before, beforeAddrs := snapshot(t, rs)

	up := []string{bin, "dr", "up", "--vip", "192.0.2.10", "--vip", "2001:db8::10", "--vip", "192.0.2.99", "--state-dir", state}
	out := rs.Exec(t, up...)
	t.Logf("dr up: %s", out)
	out2 := rs.Exec(t, up...) // idempotent
	if !strings.Contains(out2, "already") {
		t.Errorf("second dr up: %q, want 'already'", out2)
	}
	addrs := rs.IP(t, "-o", "addr", "show", "dev", "lo")
	for _, want := range []string{"192.0.2.10/32", "2001:db8::10/128", "192.0.2.99/32"} {
		if strings.Count(addrs, want) != 1 {
			t.Errorf("lo after dr up: want %s once in\n%s", want, addrs)
		}
	}
	wantUp := map[string]string{
		"net/ipv4/conf/all/arp_ignore": "1", "net/ipv4/conf/lo/arp_ignore": "1",
		"net/ipv4/conf/all/arp_announce": "2", "net/ipv4/conf/lo/arp_announce": "2",
	}
	for k, v := range wantUp {
		if got := rs.Exec(t, "cat", "/proc/sys/"+k); got != v {
			t.Errorf("%s = %s after dr up, want %s", k, got, v)
		}
	}
	st := rs.Exec(t, bin, "status", "--state-dir", state)
	if !strings.Contains(st, "dr: 192.0.2.10 on lo") || !strings.Contains(st, "net.ipv4.conf.all.arp_announce = 2 (was 1)") {
		t.Errorf("status:\n%s", st)
	}

	// Remove one VIP: the sysctls stay while others remain.
	rs.Exec(t, bin, "dr", "down", "--vip", "192.0.2.10", "--state-dir", state)
	if got := rs.Exec(t, "cat", "/proc/sys/net/ipv4/conf/all/arp_ignore"); got != "1" {
		t.Errorf("arp_ignore = %s with VIPs left, want 1", got)
	}
	rs.Exec(t, bin, "dr", "down", "--state-dir", state)
	after, afterAddrs := snapshot(t, rs)
	if !maps.Equal(before, after) {
		t.Errorf("sysctls after dr down %v, want %v", after, before)
	}
	if afterAddrs != beforeAddrs {
		t.Errorf("addresses after dr down:\n%s\nwant\n%s", afterAddrs, beforeAddrs)
	}
	if m, _ := filepath.Glob(filepath.Join(state, "netns-*", "state.json")); len(m) != 0 {
		t.Errorf("state left behind: %v", m)
	}
}

// Topology of the tunnel test: the client namespace plays director and
// client (it sends the encapsulated packets and expects the direct reply).
const (
	cliOuter = "172.16.0.1"
	rsOuter  = "172.16.0.2"
	cliAddr  = "198.18.1.2"
	vipAddr  = "198.18.0.10"
	vipAddr2 = "198.18.0.11" // added later to the running decapsulator
	echoPort = 5353
	cliPort  = 40000
	guePort  = 6080
)

// encapUDP returns client:cliPort → VIP:echoPort carrying payload, as an
// IPIP packet (outer header included) and as the GUE payload for a UDP
// socket.
func encapUDP(t *testing.T, vip, payload string) (ipipPkt, guePayload []byte) {
	t.Helper()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	ip := &layers.IPv4{Version: 4, TTL: 63, Protocol: layers.IPProtocolUDP,
		SrcIP: net.ParseIP(cliAddr).To4(), DstIP: net.ParseIP(vip).To4()}
	udp := &layers.UDP{SrcPort: cliPort, DstPort: echoPort}
	_ = udp.SetNetworkLayerForChecksum(ip)
	outer := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolIPv4, Flags: layers.IPv4DontFragment,
		SrcIP: net.ParseIP(cliOuter).To4(), DstIP: net.ParseIP(rsOuter).To4()}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, opts, outer, ip, udp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	ipipPkt = append([]byte(nil), buf.Bytes()...)
	g := &layers.AGUEVar0{Protocol: layers.IPProtocolIPv4}
	if err := gopacket.SerializeLayers(buf, opts, g, ip, udp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return ipipPkt, append([]byte(nil), buf.Bytes()...)
}

// tunState reads the decapsulator's recorded state.
func tunState(t *testing.T, dir string) *realserver.TunState {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "netns-*"))
	if len(m) != 1 {
		t.Fatalf("want one namespace state dir in %s, got %v", dir, m)
	}
	st, err := realserver.LoadState(m[0])
	if err != nil {
		t.Fatal(err)
	}
	return st.Tun
}

// TestTunEndToEnd: IPIP packets are decapsulated by the tc BPF program on
// the receiving interface, GUE in user space.
func TestTunEndToEnd(t *testing.T) { tunEndToEnd(t, true) }

// TestTunEndToEndNoBPF: with --no-bpf every packet is decapsulated in user
// space.
func TestTunEndToEndNoBPF(t *testing.T) { tunEndToEnd(t, false) }

func tunEndToEnd(t *testing.T, bpf bool) {
	netnstest.SkipIfNotRoot(t)
	bin := uvsRS(t)
	cli := netnstest.New(t, "cli")
	rs := netnstest.New(t, "rs")
	netnstest.Veth(t, cli, "c0", rs, "r0")
	cli.AddrAdd(t, "c0", cliOuter+"/24")
	cli.AddrAdd(t, "c0", cliAddr+"/32")
	cli.RouteAdd(t, vipAddr+"/32", "via", rsOuter)
	rs.AddrAdd(t, "r0", rsOuter+"/24")
	rs.RouteAdd(t, "default", "via", cliOuter)
	// Static neighbours: the one datagram of each exchange below never
	// waits for ARP.
	cli.NeighAdd(t, "c0", rsOuter, rs.Interface(t, "r0").HardwareAddr)
	rs.NeighAdd(t, "r0", cliOuter, cli.Interface(t, "c0").HardwareAddr)
	rs.Sysctl(t, "net.ipv4.conf.all.rp_filter", "1") // strict: uvs-rs must relax it
	rs.Sysctl(t, "net.ipv4.conf.default.rp_filter", "1")
	rs.Sysctl(t, "net.ipv4.conf.r0.rp_filter", "1") // the in-kernel path must relax it
	state := t.TempDir()
	before, _ := snapshot(t, rs)

	args := []string{"tun", "up", "--vip", vipAddr, "--gue-port", fmt.Sprint(guePort), "--force-userspace", "--state-dir", state}
	if !bpf {
		args = append(args, "--no-bpf")
	}
	out := rs.Exec(t, append([]string{bin}, args...)...)
	t.Logf("tun up: %s", out)
	ts := tunState(t, state)
	if ts == nil || ts.PID == 0 || ts.Mode != realserver.TunUserspace {
		t.Fatalf("tun state after up: %+v", ts)
	}
	if want := map[bool][]string{true: {"r0"}}[bpf]; !slices.Equal(ts.BPF, want) {
		t.Fatalf("in-kernel decapsulation on %v, want %v", ts.BPF, want)
	}
	pid := ts.PID
	t.Cleanup(func() {
		// Stop the decapsulator we started if the test did not.
		if _, err := rs.Run(bin, "tun", "down", "--state-dir", state); err != nil {
			if p, err := os.FindProcess(pid); err == nil {
				_ = p.Kill()
			}
		}
	})
	if addrs := rs.IP(t, "-o", "addr", "show", "dev", "uvstun0"); !strings.Contains(addrs, vipAddr+"/32") {
		t.Fatalf("uvstun0 lacks the VIP:\n%s", addrs)
	}
	wantSys := map[string]string{"all/rp_filter": "0", "default/rp_filter": "0", "uvstun0/rp_filter": "0", "all/arp_ignore": "1", "all/arp_announce": "2"}
	if bpf {
		wantSys["r0/rp_filter"] = "0"
	}
	for k, v := range wantSys {
		if got := rs.Exec(t, "cat", "/proc/sys/net/ipv4/conf/"+k); got != v {
			t.Errorf("%s = %s, want %s", k, got, v)
		}
	}

	// The real server: a UDP echo bound to the VIP.
	startEcho(t, rs, vipAddr)
	cli.RouteAdd(t, vipAddr2+"/32", "via", rsOuter)

	// The client: a socket for the direct reply, a raw socket for IPIP and
	// a UDP socket for GUE.
	var reply, gueConn *net.UDPConn
	var raw int
	if err := cli.Do(func() (err error) {
		reply, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(fmt.Sprintf("%s:%d", cliAddr, cliPort))))
		if err != nil {
			return err
		}
		gueConn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(cliOuter)})
		if err != nil {
			return err
		}
		raw, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		return err
	}); err != nil {
		t.Fatalf("client sockets: %v", err)
	}
	defer reply.Close()
	defer gueConn.Close()
	defer unix.Close(raw)
	rsSA := &unix.SockaddrInet4{Addr: netip.MustParseAddr(rsOuter).As4()}
	gueDst := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(fmt.Sprintf("%s:%d", rsOuter, guePort)))

	// exchange sends one encapsulated datagram and reads the echo, which
	// the real server sends straight back from the VIP. The decapsulator
	// reads from sockets it opened before tun up returned, and the
	// neighbours are static: one datagram must do.
	exchange := func(name, vip string, send func(pkt, gue []byte) error) {
		t.Helper()
		payload := "hello over " + name
		pkt, gp := encapUDP(t, vip, payload)
		if err := send(pkt, gp); err != nil {
			t.Fatalf("%s: send: %v", name, err)
		}
		buf := make([]byte, 2048)
		_ = reply.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := reply.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("%s: no reply from the VIP: %v; daemon log:\n%s", name, err, readLog(state))
		}
		if want := netip.MustParseAddrPort(fmt.Sprintf("%s:%d", vip, echoPort)); from != want {
			t.Fatalf("%s: reply from %v, want %v (direct from the VIP)", name, from, want)
		}
		if string(buf[:n]) != "echo:"+payload {
			t.Fatalf("%s: reply %q", name, buf[:n])
		}
	}
	sendIPIP := func(pkt, _ []byte) error { return unix.Sendto(raw, pkt, 0, rsSA) }
	sendGUE := func(_, gp []byte) error { _, err := gueConn.WriteToUDP(gp, gueDst); return err }
	exchange("ipip", vipAddr, sendIPIP)
	exchange("gue", vipAddr, sendGUE)

	// A second VIP joins the running decapsulator (SIGHUP reload).
	out = rs.Exec(t, bin, "tun", "up", "--vip", vipAddr2, "--state-dir", state)
	t.Logf("tun up (second VIP): %s", out)
	if got := tunState(t, state); got.PID != pid || len(got.VIPs) != 2 {
		t.Fatalf("state after adding a VIP: %+v (want pid %d, 2 VIPs)", got, pid)
	}
	startEcho(t, rs, vipAddr2)
	// tun up signals the decapsulator (SIGHUP) and returns; the
	// decapsulator logs the VIPs it serves once it has taken the new list.
	wait.For(t, 5*time.Second, func() bool { return servesVIP(readLog(state), vipAddr2) },
		"the decapsulator to take %s; log:\n%s", vipAddr2, wait.Lazy(func() any { return readLog(state) }))
	exchange("ipip to the second VIP", vipAddr2, sendIPIP)

	// Counters reach the status output (refreshed every second).
	// With the tc program the two IPIP packets never reach user space,
	// the GUE one does.
	var st string
	wantUser, wantBPF := uint64(3), uint64(0)
	if bpf {
		wantUser, wantBPF = 1, 2
	}
	wait.For(t, 5*time.Second, func() bool {
		st = rs.Exec(t, bin, "status", "--state-dir", state)
		c := counters(st)
		return strings.Contains(st, "running") && c["decapsulated"] == wantUser && c["bpf-decapsulated"] == wantBPF
	}, "status to show the decapsulator running with %d packets decapsulated in user space and %d in the kernel:\n%s",
		wantUser, wantBPF, wait.Lazy(func() any { return st }))
	if got := strings.Contains(st, "IPv4-in-IPv4 decapsulated in the kernel (tc BPF) on r0"); got != bpf {
		t.Errorf("status names the in-kernel decapsulation: %v, want %v:\n%s", got, bpf, st)
	}

	out = rs.Exec(t, bin, "tun", "down", "--vip", vipAddr, "--state-dir", state)
	t.Logf("tun down (first VIP): %s", out)
	if got := tunState(t, state); got == nil || got.PID != pid || len(got.VIPs) != 1 {
		t.Fatalf("state after removing one VIP: %+v", got)
	}
	out = rs.Exec(t, bin, "tun", "down", "--vip", vipAddr2, "--state-dir", state)
	t.Logf("tun down: %s", out)
	if _, err := rs.Run("ip", "link", "show", "uvstun0"); err == nil {
		t.Error("uvstun0 still exists after tun down")
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); !strings.Contains(string(b), ") Z") {
			t.Errorf("decapsulator %d still running after tun down", pid)
		}
	}
	after, _ := snapshot(t, rs)
	if !maps.Equal(before, after) {
		t.Errorf("sysctls after tun down %v, want %v", after, before)
	}
	if got := rs.Exec(t, "cat", "/proc/sys/net/ipv4/conf/r0/rp_filter"); got != "1" {
		t.Errorf("r0/rp_filter after tun down = %s, want 1 again", got)
	}
}

// startEcho runs a UDP echo server bound to vip:echoPort inside ns until
// the test ends.
func startEcho(t *testing.T, ns *netnstest.NS, vip string) {
	t.Helper()
	var echo *net.UDPConn
	if err := ns.Do(func() (err error) {
		echo, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(fmt.Sprintf("%s:%d", vip, echoPort))))
		return err
	}); err != nil {
		t.Fatalf("echo listen on %s: %v", vip, err)
	}
	t.Cleanup(func() { echo.Close() })
	go func() {
		buf := make([]byte, 2048)
		for i := 0; i < 100; i++ {
			_ = echo.SetReadDeadline(time.Now().Add(20 * time.Second))
			n, from, err := echo.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			_, _ = echo.WriteToUDPAddrPort(append([]byte("echo:"), buf[:n]...), from)
		}
	}()
}

// counters extracts the JSON counters from status output.
func counters(status string) map[string]uint64 {
	_, js, ok := strings.Cut(status, "tun: counters ")
	if !ok {
		return nil
	}
	js, _, _ = strings.Cut(js, "\n")
	m := map[string]uint64{}
	_ = json.Unmarshal([]byte(js), &m)
	return m
}

// servesVIP reports whether the decapsulator's log says it serves vip
// ("uvs-rs: VIPs now [...]", logged after a SIGHUP reload).
func servesVIP(log, vip string) bool {
	for _, line := range strings.Split(log, "\n") {
		if _, list, ok := strings.Cut(line, "uvs-rs: VIPs now "); ok && slices.Contains(strings.Fields(strings.Trim(list, "[]")), vip) {
			return true
		}
	}
	return false
}

// readLog returns the daemon log for failure messages.
func readLog(state string) string {
	m, _ := filepath.Glob(filepath.Join(state, "netns-*", "tun.log"))
	if len(m) == 0 {
		return "(no log)"
	}
	b, _ := os.ReadFile(m[0])
	return string(b)
}
