package e2e

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/wait"
)

// Interfaces that come and go (issue #15, "Boot order"): uvsd starts in a
// namespace where only lo is up, takes rules, and serves the interfaces as
// they appear, go away and come back, on the backend UVS_E2E_IO selects.
//
//	cli c0 10.0.1.2 ── d0 10.0.1.1 [dir] d1 10.0.2.1 ── r0 10.0.2.11 [rs1]
//
// The VIP 10.0.1.100:80 is NAT to 10.0.2.11:80; nothing configures it, uvsd
// answers ARP for it.
type ifLab struct {
	cli, dir, rs *netnstest.NS
}

const (
	ifVIP = "10.0.1.100:80"
	// ifServeTimeout bounds the wait for a new interface to be served:
	// the rtnetlink watcher reacts at once, the poll within 2 s; the rest
	// is a loaded machine.
	ifServeTimeout = 20 * time.Second
)

// newIfLab makes the namespaces and starts the real server; no link joins
// them yet.
func newIfLab(t *testing.T) *ifLab {
	t.Helper()
	l := &ifLab{cli: netnstest.New(t, "ifcli"), dir: netnstest.New(t, "ifdir"), rs: netnstest.New(t, "ifrs")}
	l.dir.Sysctl(t, "net.ipv4.ip_forward", "1")
	startRealServer(t, l.rs, "rs1")
	return l
}

// linkClient creates (again) the client's link, d0 in the director.
func (l *ifLab) linkClient(t *testing.T) {
	t.Helper()
	netnstest.Veth(t, l.cli, "c0", l.dir, "d0")
	l.cli.AddrAdd(t, "c0", "10.0.1.2/24")
	l.cli.RouteAdd(t, "default", "via", "10.0.1.1")
	l.dir.AddrAdd(t, "d0", "10.0.1.1/24")
}

// linkServer creates (again) the real server's link, d1 in the director.
func (l *ifLab) linkServer(t *testing.T) {
	t.Helper()
	netnstest.Veth(t, l.dir, "d1", l.rs, "r0")
	l.dir.AddrAdd(t, "d1", "10.0.2.1/24")
	l.rs.AddrAdd(t, "r0", "10.0.2.11/24")
	l.rs.RouteAdd(t, "default", "via", "10.0.2.1")
}

// addService configures the VIP through uvsadm and checks the listing.
func (l *ifLab) addService(t *testing.T) {
	t.Helper()
	mustUVSADM(t, l.dir, "-A", "-t", ifVIP, "-s", "rr")
	mustUVSADM(t, l.dir, "-a", "-t", ifVIP, "-r", "10.0.2.11:80", "-m")
	got := mustUVSADM(t, l.dir, "-Ln")
	if !strings.Contains(got, "TCP  10.0.1.100:80 rr") || !strings.Contains(got, "-> 10.0.2.11:80") {
		t.Fatalf("uvsadm -Ln after -A/-a:\n%s", got)
	}
}

// waitServed waits until a request to the VIP from the client gets the
// real server's answer.
func (l *ifLab) waitServed(t *testing.T, u *uvsd, what string) {
	t.Helper()
	var last string
	wait.For(t, ifServeTimeout, func() bool {
		select {
		case <-u.proc.Done():
			t.Fatalf("uvsd exited: %v\n%s", u.proc.Err(), u.proc.Output())
		default:
		}
		out, err := l.cli.Run("curl", "-sS", "--max-time", "2", "http://"+ifVIP+"/")
		last = strings.TrimSpace(out)
		return err == nil && last == "rs1"
	}, "the VIP to be served %s (last answer: %q)", what, wait.Lazy(func() any { return last }))
}

// TestStartWithoutInterfaces: uvsd starts where only lo is up, accepts
// rules (-A/-a, -Ln), and serves the VIP once the links appear.
func TestStartWithoutInterfaces(t *testing.T) {
	l := newIfLab(t)
	u := startUVSDArgs(t, l.dir)
	l.addService(t)
	l.linkServer(t)
	l.linkClient(t)
	l.waitServed(t, u, "after the links appeared")
	if io := os.Getenv("UVS_E2E_IO"); (io == "" || io == "afpacket") && runtime.NumCPU() >= 2 {
		// Started with one packet socket, for want of queues; the two
		// veths (one RX queue each) call for two.
		wait.For(t, ifServeTimeout, func() bool {
			return strings.Contains(u.proc.Output(), `"backend": "afpacket", "sockets": 2}`)
		}, "a second packet socket for the second interface:\n%v", wait.Lazy(func() any { return u.proc.Output() }))
	}
	u.stop(t)
}

// TestInterfaceRemovedAndReadded: the client's link is deleted and created
// again (a new ifindex), then the server's link is set down and up; the
// VIP is served again each time.
func TestInterfaceRemovedAndReadded(t *testing.T) {
	l := newIfLab(t)
	l.linkServer(t)
	l.linkClient(t)
	u := startUVSDArgs(t, l.dir)
	l.addService(t)
	l.waitServed(t, u, "at start")

	l.dir.IP(t, "link", "del", "d0")
	l.linkClient(t)
	l.waitServed(t, u, "after d0 was deleted and created again")

	l.dir.IP(t, "link", "set", "d1", "down")
	wait.For(t, ifServeTimeout, func() bool { return loggedServing(u, `["d0"]`) },
		"uvsd to log that it serves d0 alone once d1 is down")
	l.dir.LinkUp(t, "d1")
	l.waitServed(t, u, "after d1 went down and up")
	u.stop(t)
}

// TestIfaceNotYetThere: --iface names interfaces that do not exist at
// start; uvsd starts, and serves them once they appear.
func TestIfaceNotYetThere(t *testing.T) {
	l := newIfLab(t)
	u := startUVSDArgs(t, l.dir, "--iface", "d0,d1")
	l.addService(t)
	l.linkServer(t)
	l.linkClient(t)
	l.waitServed(t, u, "after the named links appeared")
	u.stop(t)
}

// TestBootOrderRestore is the boot order of issue #15: ipvsadm-restore
// (here uvsadm -R, which starts uvsd when none answers) runs before the
// network is up, in a namespace where only lo is up. The restore succeeds,
// -Ln lists the rules, and the VIP is served once the links come up.
func TestBootOrderRestore(t *testing.T) {
	l := newIfLab(t)
	t.Cleanup(func() { endNetnsProcs(l.dir.Name) }) // the uvsd uvsadm started
	rules := filepath.Join(t.TempDir(), "rules")
	if err := os.WriteFile(rules, []byte("-A -t "+ifVIP+" -s rr\n-a -t "+ifVIP+" -r 10.0.2.11:80 -m -w 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"sh", "-c", `"$0" -R < "$1"`, binary("uvsadm"), rules}
	if io := os.Getenv("UVS_E2E_IO"); io != "" {
		args = append([]string{"env", "UVS_IO=" + io}, args...) // the autostarted uvsd's --io
	}
	if out, err := l.dir.Run(args...); err != nil {
		t.Fatalf("uvsadm -R with only lo up: %v: %s", err, out)
	}
	if got := mustUVSADM(t, l.dir, "-Ln"); !strings.Contains(got, "TCP  10.0.1.100:80 rr") || !strings.Contains(got, "-> 10.0.2.11:80") {
		t.Fatalf("-Ln after the restore:\n%s", got)
	}
	l.linkServer(t)
	l.linkClient(t)
	var last string
	wait.For(t, ifServeTimeout, func() bool {
		out, err := l.cli.Run("curl", "-sS", "--max-time", "2", "http://"+ifVIP+"/")
		last = strings.TrimSpace(out)
		return err == nil && last == "rs1"
	}, "the VIP to be served once the links came up (last answer: %q)", wait.Lazy(func() any { return last }))
}

// endNetnsProcs ends the processes of a named namespace: SIGINT, then
// SIGKILL for those still there after 5 s.
func endNetnsProcs(name string) {
	signal := func(sig os.Signal) {
		pids, _ := netnsPIDs(name)
		for _, p := range pids {
			if proc, err := os.FindProcess(p); err == nil {
				_ = proc.Signal(sig)
			}
		}
	}
	signal(os.Interrupt)
	if !wait.Until(5*time.Second, func() bool { pids, _ := netnsPIDs(name); return len(pids) == 0 }) {
		signal(os.Kill)
	}
}

// loggedServing reports whether uvsd logged that the served interfaces
// changed to ifaces (a JSON list, as the log shows it).
func loggedServing(u *uvsd, ifaces string) bool {
	for _, line := range strings.Split(u.proc.Output(), "\n") {
		if strings.Contains(line, "served interfaces changed") && strings.Contains(line, ifaces) {
			return true
		}
	}
	return false
}
