package control

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/ipvsadm"
	"github.com/uvs-lb/uvs/sched"
	"github.com/uvs-lb/uvs/spec"
)

type result struct {
	out, err string
	code     int
}

func runCLI(st *State, env Env, stdin string, args ...string) result {
	var o, e bytes.Buffer
	code := Run(st, env, args, strings.NewReader(stdin), &o, &e)
	return result{o.String(), e.String(), code}
}

var root = Env{Prog: "ipvsadm", Privileged: true}

// mustRun runs a command as root and fails the test unless it succeeds
// silently.
func mustRun(t *testing.T, st *State, line string) {
	t.Helper()
	r := runCLI(st, root, "", strings.Fields(line)...)
	if r.code != 0 || r.err != "" || r.out != "" {
		t.Fatalf("%s: code %d stdout %q stderr %q", line, r.code, r.out, r.err)
	}
}

// fixture is the example table of ipvsadm(8)'s listing and save formats, built with ipvsadm commands.
var fixture = []string{
	"-A -t 10.0.0.1:80 -s wlc",
	"-a -t 10.0.0.1:80 -r 192.168.1.2:80 -m -w 1 -x 100 -y 50",
	"-a -t 10.0.0.1:80 -r 192.168.1.3:8080 -m -w 2",
	"-A -u 10.0.0.1:53 -s rr -p 360 -M 255.255.255.0 -o",
	"-a -u 10.0.0.1:53 -r 192.168.1.2:53 -g -w 1",
	"-A -t 10.0.0.1:8080 -s rr",
	"-a -t 10.0.0.1:8080 -r 192.168.10.1:8080 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum",
	"-a -t 10.0.0.1:8080 -r 192.168.11.1:8080 -i -w 1 --tun-type gre --tun-csum",
	"-A -t [2001:db8::80]:80 -s rr",
	"-a -t [2001:db8::80]:80 -r [2001:db8::a0a0]:80 -m",
	"-A -f 1 -6 -s wlc -p 360 -M 64",
	"-A -f 7 -s sh -b sh-fallback,sh-port",
	"-a -f 7 -r 192.168.1.9:0 -i -w 0",
}

func findDest(t *testing.T, st *State, svc spec.ServiceKey, addr string) *sched.Dest {
	t.Helper()
	ap := netip.MustParseAddrPort(addr)
	for _, si := range st.Services() {
		if si.Config.Key != svc {
			continue
		}
		for _, d := range si.Dests {
			if d.AddrPort() == ap {
				return d
			}
		}
	}
	t.Fatalf("no dest %s in %v", addr, svc)
	return nil
}

func findStats(t *testing.T, st *State, svc spec.ServiceKey) *sched.Stats {
	t.Helper()
	for _, si := range st.Services() {
		if si.Config.Key == svc {
			return si.Stats
		}
	}
	t.Fatalf("no service %v", svc)
	return nil
}

var (
	tcp80 = spec.ServiceKey{Proto: spec.ProtoTCP, Addr: netip.MustParseAddr("10.0.0.1"), Port: 80}
	udp53 = spec.ServiceKey{Proto: spec.ProtoUDP, Addr: netip.MustParseAddr("10.0.0.1"), Port: 53}
)

func setStats(s *sched.Stats, v [5]uint64) {
	s.Zero()
	s.Add(sched.Counts{Conns: v[0], InPkts: v[1], OutPkts: v[2], InBytes: v[3], OutBytes: v[4]})
}

// newFixture builds the fixture table with some connection counters and
// traffic statistics.
func newFixture(t *testing.T) *State {
	t.Helper()
	st := New(Options{})
	for _, l := range fixture {
		mustRun(t, st, l)
	}
	d := findDest(t, st, tcp80, "192.168.1.2:80")
	for range 13 {
		d.BindConn(false)
	}
	for range 3 {
		d.SetActive(true)
	}
	for range 5 {
		d.BindConn(true)
	}
	d53 := findDest(t, st, udp53, "192.168.1.2:53")
	for range 4 {
		d53.BindConn(false)
	}
	big := [5]uint64{1234, 56789, 43210, 123456789, 987654321012}
	setStats(findStats(t, st, tcp80), big)
	setStats(&d.Stats, big)
	return st
}

// The expected outputs below are built with ipvsadm's own printf formats
// (ipvsadm.c print_title/print_service_entry), independently of the
// ipvsadm package's formatter.

const versionLine = "IP Virtual Server version 1.2.1 (size=4096)\n"

func destRow(name, fwd string, w, act, inact int) string {
	return fmt.Sprintf("  -> %-28s %-7s %-6d %-10d %-10d\n", name, fwd, w, act, inact)
}

// largenum is print_largenum without --exact.
func largenum(v uint64) string {
	switch {
	case v < 100000000:
		return fmt.Sprintf("%9d", v)
	case v < 1000000000:
		return fmt.Sprintf("%8dK", v/1000)
	case v < 100000000000:
		return fmt.Sprintf("%8dM", v/1000000)
	case v < 100000000000000:
		return fmt.Sprintf("%8dG", v/1000000000)
	}
	return fmt.Sprintf("%8dT", v/1000000000000)
}

func exactnum(v uint64) string {
	s := fmt.Sprint(v)
	if len(s) <= 8 {
		return fmt.Sprintf("%9d", v)
	}
	return fmt.Sprintf("%*d", len(s)+1, v)
}

func statsRow(v [5]uint64, num func(uint64) string) string {
	var b strings.Builder
	for _, x := range v {
		b.WriteString(num(x))
	}
	return b.String()
}

func TestRunListDefault(t *testing.T) {
	st := newFixture(t)
	want := versionLine +
		"Prot LocalAddress:Port Scheduler Flags\n" +
		"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n" +
		"TCP  10.0.0.1:80 wlc\n" +
		destRow("192.168.1.2:80", "Masq", 1, 3, 10) +
		destRow("192.168.1.3:8080", "Masq", 2, 0, 0) +
		"TCP  10.0.0.1:8080 rr\n" +
		destRow("192.168.10.1:8080", "Tunnel", 1, 0, 0) +
		destRow("192.168.11.1:8080", "Tunnel", 1, 0, 0) +
		"UDP  10.0.0.1:53 rr persistent 360 mask 255.255.255.0 ops\n" +
		destRow("192.168.1.2:53", "Route", 1, 0, 4) +
		"TCP  [2001:db8::80]:80 rr\n" +
		destRow("[2001:db8::a0a0]:80", "Masq", 1, 0, 0) +
		"FWM  1 IPv6 wlc persistent 360 mask 64\n" +
		"FWM  7 sh (sh-fallback,sh-port)\n" +
		destRow("192.168.1.9:0", "Tunnel", 0, 0, 0)
	for _, args := range [][]string{{"-Ln"}, {"-L"}, {"-l", "-n"}, {"--list", "--numeric", "--sort"}, {}} {
		r := runCLI(st, Env{Prog: "ipvsadm"}, "", args...) // listing needs no privilege
		if r.code != 0 || r.err != "" || r.out != want {
			t.Errorf("%q: code %d stderr %q\n got:\n%s\nwant:\n%s", args, r.code, r.err, r.out, want)
		}
	}
}

func TestRunListFormats(t *testing.T) {
	st := newFixture(t)
	big := [5]uint64{1234, 56789, 43210, 123456789, 987654321012}
	zero := [5]uint64{}
	svcStats := func(name string, v [5]uint64, num func(uint64) string) string {
		return fmt.Sprintf("%-33s", name) + statsRow(v, num) + "\n"
	}
	dstStats := func(name string, v [5]uint64, num func(uint64) string) string {
		return fmt.Sprintf("  -> %-28s", name) + statsRow(v, num) + "\n"
	}
	statsBody := func(num func(uint64) string) string {
		return svcStats("TCP  10.0.0.1:80", big, num) +
			dstStats("192.168.1.2:80", big, num) +
			dstStats("192.168.1.3:8080", zero, num) +
			svcStats("TCP  10.0.0.1:8080", zero, num) +
			dstStats("192.168.10.1:8080", zero, num) +
			dstStats("192.168.11.1:8080", zero, num) +
			svcStats("UDP  10.0.0.1:53", zero, num) +
			dstStats("192.168.1.2:53", zero, num) +
			svcStats("TCP  [2001:db8::80]:80", zero, num) +
			dstStats("[2001:db8::a0a0]:80", zero, num) +
			svcStats("FWM  1 IPv6", zero, num) +
			svcStats("FWM  7", zero, num) +
			dstStats("192.168.1.9:0", zero, num)
	}
	statsTitle := fmt.Sprintf("%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n",
		"Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes")
	rateTitle := fmt.Sprintf("%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n",
		"Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS")
	rateSvc := func(name string) string { return svcStats(name, zero, largenum) }
	rateDst := func(name string) string {
		return fmt.Sprintf("  -> %-28s %8d %8d %8d", name, 0, 0, 0) + largenum(0) + largenum(0) + "\n"
	}
	thrTitle := fmt.Sprintf("%-33s %-10s %-10s %-10s %-10s\n  -> RemoteAddress:Port\n",
		"Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn")
	thrDst := func(name string, u, l, a, i int) string {
		return fmt.Sprintf("  -> %-28s %-10d %-10d %-10d %-10d\n", name, u, l, a, i)
	}
	pcTitle := fmt.Sprintf("%-33s %-9s %-11s %-10s %-10s\n  -> RemoteAddress:Port\n",
		"Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn")
	pcDst := func(name string, w, p, a, i int) string {
		return fmt.Sprintf("  -> %-28s %-9d %-11d %-10d %-10d\n", name, w, p, a, i)
	}
	tunDst := func(name, fwd, info string, w, a, i int) string {
		return fmt.Sprintf("  -> %-28s %-7s %-13s %-6d %-10d %-10d\n", name, fwd, info, w, a, i)
	}
	svcRows := []string{
		"TCP  10.0.0.1:80 wlc\n", "TCP  10.0.0.1:8080 rr\n",
		"UDP  10.0.0.1:53 rr persistent 360 mask 255.255.255.0 ops\n", "TCP  [2001:db8::80]:80 rr\n",
		"FWM  1 IPv6 wlc persistent 360 mask 64\n", "FWM  7 sh (sh-fallback,sh-port)\n",
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"stats", []string{"-Ln", "--stats"}, versionLine + statsTitle + statsBody(largenum)},
		{"stats-exact", []string{"-Ln", "--stats", "--exact"}, versionLine + statsTitle + statsBody(exactnum)},
		{"stats-beats-rate", []string{"-L", "--rate", "--stats", "-n"}, versionLine + statsTitle + statsBody(largenum)},
		{"rate", []string{"-Ln", "--rate"}, versionLine + rateTitle +
			rateSvc("TCP  10.0.0.1:80") + rateDst("192.168.1.2:80") + rateDst("192.168.1.3:8080") +
			rateSvc("TCP  10.0.0.1:8080") + rateDst("192.168.10.1:8080") + rateDst("192.168.11.1:8080") +
			rateSvc("UDP  10.0.0.1:53") + rateDst("192.168.1.2:53") +
			rateSvc("TCP  [2001:db8::80]:80") + rateDst("[2001:db8::a0a0]:80") +
			rateSvc("FWM  1 IPv6") + rateSvc("FWM  7") + rateDst("192.168.1.9:0")},
		{"thresholds", []string{"-Ln", "--thresholds"}, versionLine + thrTitle +
			svcRows[0] + thrDst("192.168.1.2:80", 100, 50, 3, 10) + thrDst("192.168.1.3:8080", 0, 0, 0, 0) +
			svcRows[1] + thrDst("192.168.10.1:8080", 0, 0, 0, 0) + thrDst("192.168.11.1:8080", 0, 0, 0, 0) +
			svcRows[2] + thrDst("192.168.1.2:53", 0, 0, 0, 4) +
			svcRows[3] + thrDst("[2001:db8::a0a0]:80", 0, 0, 0, 0) +
			svcRows[4] + svcRows[5] + thrDst("192.168.1.9:0", 0, 0, 0, 0)},
		{"persistent-conn", []string{"-Ln", "--persistent-conn"}, versionLine + pcTitle +
			svcRows[0] + pcDst("192.168.1.2:80", 1, 5, 3, 10) + pcDst("192.168.1.3:8080", 2, 0, 0, 0) +
			svcRows[1] + pcDst("192.168.10.1:8080", 1, 0, 0, 0) + pcDst("192.168.11.1:8080", 1, 0, 0, 0) +
			svcRows[2] + pcDst("192.168.1.2:53", 1, 0, 0, 4) +
			svcRows[3] + pcDst("[2001:db8::a0a0]:80", 1, 0, 0, 0) +
			svcRows[4] + svcRows[5] + pcDst("192.168.1.9:0", 0, 0, 0, 0)},
		{"tun-info", []string{"-Ln", "--tun-info"}, versionLine +
			"Prot LocalAddress:Port Scheduler Flags\n" +
			"  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n" +
			svcRows[0] + tunDst("192.168.1.2:80", "Masq", "n/a", 1, 3, 10) + tunDst("192.168.1.3:8080", "Masq", "n/a", 2, 0, 0) +
			svcRows[1] + tunDst("192.168.10.1:8080", "Tunnel", "gue:6080:-c", 1, 0, 0) +
			tunDst("192.168.11.1:8080", "Tunnel", "gre:+c", 1, 0, 0) +
			svcRows[2] + tunDst("192.168.1.2:53", "Route", "n/a", 1, 0, 4) +
			svcRows[3] + tunDst("[2001:db8::a0a0]:80", "Masq", "n/a", 1, 0, 0) +
			svcRows[4] + svcRows[5] + tunDst("192.168.1.9:0", "Tunnel", "ipip", 0, 0, 0)},
		{"nosort", []string{"-Ln", "--nosort", "-t", "10.0.0.1:80"},
			"Prot LocalAddress:Port Scheduler Flags\n" +
				"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n" +
				svcRows[0] + destRow("192.168.1.3:8080", "Masq", 2, 0, 0) + destRow("192.168.1.2:80", "Masq", 1, 3, 10)},
		{"one-service", []string{"-L", "-n", "-u", "10.0.0.1:53"},
			"Prot LocalAddress:Port Scheduler Flags\n" +
				"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n" +
				svcRows[2] + destRow("192.168.1.2:53", "Route", 1, 0, 4)},
		{"one-fwmark-stats", []string{"-L", "-f", "7", "--stats"}, statsTitle + svcStats("FWM  7", zero, largenum) +
			dstStats("192.168.1.9:0", zero, largenum)},
		{"timeout", []string{"-L", "--timeout"}, "Timeout (tcp tcpfin udp): 900 120 300\n"},
		{"daemon", []string{"-L", "--daemon"}, ""},
		{"save", []string{"-S", "-n"}, "-A -t 10.0.0.1:80 -s wlc\n" +
			"-a -t 10.0.0.1:80 -r 192.168.1.2:80 -m -w 1\n" +
			"-a -t 10.0.0.1:80 -r 192.168.1.3:8080 -m -w 2\n" +
			"-A -t 10.0.0.1:8080 -s rr\n" +
			"-a -t 10.0.0.1:8080 -r 192.168.10.1:8080 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum\n" +
			"-a -t 10.0.0.1:8080 -r 192.168.11.1:8080 -i -w 1 --tun-type gre --tun-csum\n" +
			"-A -u 10.0.0.1:53 -s rr -p 360 -M 255.255.255.0 -o\n" +
			"-a -u 10.0.0.1:53 -r 192.168.1.2:53 -g -w 1\n" +
			"-A -t [2001:db8::80]:80 -s rr\n" +
			"-a -t [2001:db8::80]:80 -r [2001:db8::a0a0]:80 -m -w 1\n" +
			"-A -f 1 -6 -s wlc -p 360 -M 64\n" +
			"-A -f 7 -s sh -b sh-fallback,sh-port\n" +
			"-a -f 7 -r 192.168.1.9:0 -i -w 0 --tun-type ipip\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := runCLI(st, Env{Prog: "ipvsadm"}, "", c.args...)
			if r.code != 0 || r.err != "" || r.out != c.want {
				t.Errorf("%q: code %d stderr %q\n got:\n%s\nwant:\n%s", c.args, r.code, r.err, r.out, c.want)
			}
		})
	}
	// ipvsadm-save is -S with at most -n.
	for _, prog := range []string{"ipvsadm-save", "/usr/sbin/uvsadm-save"} {
		for _, args := range [][]string{nil, {"-n"}} {
			r := runCLI(st, Env{Prog: prog}, "", args...)
			if r.code != 0 || r.out != cases[len(cases)-1].want {
				t.Errorf("%s %q: code %d out %q err %q", prog, args, r.code, r.out, r.err)
			}
		}
	}
}

func TestRunConnections(t *testing.T) {
	st := New(Options{})
	ls := []conntrack.Listing{
		{Proto: conntrack.ProtoTCP, State: conntrack.StateEstablished, Remaining: 898*time.Second + 900*time.Millisecond,
			Client: netip.MustParseAddrPort("10.1.2.3:54321"), Virtual: netip.MustParseAddrPort("10.0.0.1:80"),
			Real: netip.MustParseAddrPort("192.168.1.2:80")},
		{Proto: conntrack.ProtoUDP, State: conntrack.StateNormal, Remaining: 297 * time.Second,
			Client: netip.MustParseAddrPort("10.1.2.3:40000"), Virtual: netip.MustParseAddrPort("10.0.0.1:53"),
			Real: netip.MustParseAddrPort("192.168.1.2:53")},
		{Proto: conntrack.ProtoTCP, Template: true, State: conntrack.StateNone, Remaining: 5 * time.Second,
			Client: netip.MustParseAddrPort("10.1.2.0:0"), Virtual: netip.MustParseAddrPort("10.0.0.1:80"),
			Real: netip.MustParseAddrPort("192.168.1.2:80")},
		{Proto: conntrack.ProtoIP, Template: true, State: conntrack.StateAssured, Remaining: 6001 * time.Second,
			Client: netip.MustParseAddrPort("10.1.2.3:0"), Virtual: netip.MustParseAddrPort("0.0.0.7:0"),
			Real: netip.MustParseAddrPort("192.168.1.9:0")},
		{Proto: conntrack.ProtoTCP, State: conntrack.StateSynRecv, Remaining: 59 * time.Second,
			Client: netip.MustParseAddrPort("[2001:db8::5]:1234"), Virtual: netip.MustParseAddrPort("[2001:db8::80]:80"),
			Real: netip.MustParseAddrPort("[2001:db8::a0a0]:80")},
	}
	env := Env{Prog: "ipvsadm", Privileged: true, Conns: func() []conntrack.Listing { return ls }}
	row := func(p, exp, state, src, vip, dst string) string {
		return fmt.Sprintf("%-3s %-6s %-11s %-18s %-18s %s\n", p, exp, state, src, vip, dst)
	}
	want := "IPVS connection entries\n" +
		fmt.Sprintf("pro expire %-11s %-18s %-18s %s\n", "state", "source", "virtual", "destination") +
		row("TCP", "14:58", "ESTABLISHED", "10.1.2.3:54321", "10.0.0.1:80", "192.168.1.2:80") +
		row("UDP", "04:57", "UDP", "10.1.2.3:40000", "10.0.0.1:53", "192.168.1.2:53") +
		row("TCP", "00:05", "NONE", "10.1.2.0:0", "10.0.0.1:80", "192.168.1.2:80") +
		row("IP", "100:01", "ASSURED", "10.1.2.3:0", "0.0.0.7:0", "192.168.1.9:0") +
		row("TCP", "00:59", "SYN_RECV", "[2001:db8::5]:1234", "[2001:db8::80]:80", "[2001:db8::a0a0]:80")
	for _, args := range [][]string{{"-Lnc"}, {"-L", "-c"}, {"-lcn"}} {
		r := runCLI(st, env, "", args...)
		if r.code != 0 || r.err != "" || r.out != want {
			t.Errorf("%q: code %d err %q\n got:\n%s\nwant:\n%s", args, r.code, r.err, r.out, want)
		}
	}
	// An empty or absent table prints the two header lines.
	r := runCLI(st, root, "", "-Lnc")
	if r.code != 0 || r.out != "IPVS connection entries\n"+fmt.Sprintf("pro expire %-11s %-18s %-18s %s\n", "state", "source", "virtual", "destination") {
		t.Errorf("empty -Lnc: %d %q", r.code, r.out)
	}
	// Connections are root's, as the kernel's /proc/net/ip_vs_conn (0440)
	// and netlink dump (CAP_NET_ADMIN) are; services stay listable.
	env.Privileged = false
	for _, args := range [][]string{{"-Lnc"}, {"-L", "-c", "--persistent-conn"}} {
		r := runCLI(st, env, "", args...)
		if r.code != 255 || r.out != "" || r.err != "Permission denied (you must be root)\n" {
			t.Errorf("non-root %q: %+v", args, r)
		}
	}
	if r := runCLI(st, env, "", "-Ln"); r.code != 0 || r.err != "" {
		t.Errorf("non-root -Ln: %+v", r)
	}
}

// TestRunConnectionsFromTable lists a real connection table.
func TestRunConnectionsFromTable(t *testing.T) {
	ct, err := conntrack.New(conntrack.Config{Capacity: 64})
	if err != nil {
		t.Fatal(err)
	}
	st := New(Options{})
	mustRun(t, st, "-A -f 7 -s rr -p 600")
	mustRun(t, st, "-a -f 7 -r 192.168.1.9:0 -m")
	d := findDest(t, st, spec.ServiceKey{FWMark: 7, Proto: spec.ProtoTCP}, "192.168.1.9:0")
	now := int64(time.Hour)
	k := conntrack.NewTemplateKey(conntrack.ProtoIP, netip.MustParseAddr("10.1.2.3"), netip.AddrFrom4([4]byte{0, 0, 0, 7}), 0)
	if _, err := ct.InsertTemplate(k, d, 600*time.Second, now); err != nil {
		t.Fatal(err)
	}
	env := Env{Prog: "ipvsadm", Privileged: true, Conns: func() []conntrack.Listing { return ct.Snapshot(now+int64(90*time.Second), nil) }}
	r := runCLI(st, env, "", "-Lnc")
	want := fmt.Sprintf("%-3s %-6s %-11s %-18s %-18s %s\n", "IP", "08:30", "NONE", "10.1.2.3:0", "0.0.0.7:0", "192.168.1.9:0")
	if r.code != 0 || !strings.HasSuffix(r.out, want) || strings.Count(r.out, "\n") != 3 {
		t.Errorf("-Lnc over a real table: %d %q, want last line %q", r.code, r.out, want)
	}
}

func TestRunLaddr(t *testing.T) {
	st := New(Options{})
	mustRun(t, st, "-A -t 10.0.0.1:80 -s rr")
	mustRun(t, st, "-a -t 10.0.0.1:80 -r 192.168.1.2:80 -b")
	mustRun(t, st, "-P -t 10.0.0.1:80 -z 192.168.0.200")
	mustRun(t, st, "-P -t 10.0.0.1:80 -z 192.168.0.201")
	lip := netip.MustParseAddr("192.168.0.201")
	conn := func(lport uint16) conntrack.Listing {
		return conntrack.Listing{Proto: conntrack.ProtoTCP, Fwd: spec.FwdFullNAT,
			Client: netip.MustParseAddrPort("10.1.2.3:5000"), Virtual: netip.MustParseAddrPort("10.0.0.1:80"),
			Real: netip.MustParseAddrPort("192.168.1.2:80"), Local: netip.AddrPortFrom(lip, lport)}
	}
	other := conn(9)
	other.Virtual = netip.MustParseAddrPort("10.0.0.1:81")
	ls := []conntrack.Listing{conn(7), conn(8), other}
	env := Env{Prog: "ipvsadm", Privileged: true, Conns: func() []conntrack.Listing { return ls }}
	want := fmt.Sprintf("%-20s %-8s %-20s %-10s %-10s\n", "VIP:VPORT", "TOTAL", "LADDR", "CONFLICTS", "CONNS") +
		fmt.Sprintf("%-20s %-8d \n", "10.0.0.1:80", 2) +
		fmt.Sprintf("%-20s %-8s %-20s %-10d %-10d\n", "", "", "192.168.0.200", 0, 0) +
		fmt.Sprintf("%-20s %-8s %-20s %-10d %-10d\n", "", "", "192.168.0.201", 0, 2)
	r := runCLI(st, env, "", "-G", "-t", "10.0.0.1:80")
	if r.code != 0 || r.err != "" || r.out != want {
		t.Errorf("-G: %d %q\n got:\n%s\nwant:\n%s", r.code, r.err, r.out, want)
	}
	r = runCLI(st, env, "", "-G", "-t", "10.0.0.2:80")
	if r.code != 255 || r.err != "No such service\n" || r.out != "" {
		t.Errorf("-G unknown service: %+v", r)
	}
	// -S writes the pool back.
	r = runCLI(st, env, "", "-S")
	if !strings.Contains(r.out, "-a -t 10.0.0.1:80 -r 192.168.1.2:80 -b -w 1\n-P -t 10.0.0.1:80 -z 192.168.0.200\n-P -t 10.0.0.1:80 -z 192.168.0.201\n") {
		t.Errorf("-S with laddrs:\n%s", r.out)
	}
	mustRun(t, st, "-Q -t 10.0.0.1:80 -z 192.168.0.200")
	r = runCLI(st, root, "", "-Q", "-t", "10.0.0.1:80", "-z", "192.168.0.200")
	if r.code != 255 || r.err != "No such local address\n" {
		t.Errorf("-Q twice: %+v", r)
	}
}

func TestRunErrors(t *testing.T) {
	st := newFixture(t)
	cases := []struct {
		args []string
		err  string
		code int
	}{
		// popt and usage errors.
		{[]string{"-t", "10.0.0.1:80"}, "Try `ipvsadm -h' or 'ipvsadm --help' for more information.\n", 255},
		{[]string{"-L", "--bogus"}, "--bogus: unknown option\n", 255},
		{[]string{"-A", "-t", "10.0.0.9:80", "-w", "3"}, "Illegal 'weight' option with the 'add-service' command\n", 2},
		{[]string{"-a", "-t", "10.0.0.1:80", "-r", "1.2.3.4", "-w", "70000"}, "illegal weight specified\n", 2},
		{[]string{"-A", "-t", "10.0.0.9:0"}, "Zero port specified for non-persistent service\n", 2},
		{[]string{"--set", "1", "2"}, "--set option requires 3 timeout values\n", 2},
		{[]string{"-L", "-t", "10.0.0.1:80", "-c"}, "The option 'service-address' conflicts with the 'connection' option in the 'list' command\n", 2},
		{[]string{"--start-daemon", "slave"}, "illegal start-daemon parameter specified\n", 2},
		// Rejected operations (kernel errors).
		{[]string{"-A", "-t", "10.0.0.1:80"}, "Service already exists\n", 255},
		{[]string{"-A", "-t", "10.0.0.9:80", "-s", "nosuch"}, "Scheduler or persistence engine not found\n", 255},
		{[]string{"-E", "-t", "10.0.0.9:80"}, "No such service\n", 255},
		{[]string{"-D", "-t", "10.0.0.9:80"}, "No such service\n", 255},
		{[]string{"-Z", "-t", "10.0.0.9:80"}, "No such service\n", 255},
		{[]string{"-a", "-t", "10.0.0.9:80", "-r", "1.2.3.4"}, "Service not defined\n", 255},
		{[]string{"-a", "-t", "10.0.0.1:80", "-r", "192.168.1.2:80", "-m"}, "Destination already exists\n", 255},
		{[]string{"-e", "-t", "10.0.0.1:80", "-r", "192.168.1.99:80", "-m"}, "No such destination\n", 255},
		{[]string{"-d", "-t", "10.0.0.1:80", "-r", "192.168.1.99:80"}, "No such destination\n", 255},
		{[]string{"-d", "-t", "10.0.0.9:80", "-r", "192.168.1.99:80"}, "Service not defined\n", 255},
		{[]string{"--stop-daemon", "master"}, "No daemon is running\n", 255},
		{[]string{"--start-daemon", "master"}, "Connection synchronization daemon is not supported by uvs\n", 255},
		// Listing failures.
		{[]string{"-L", "-t", "10.0.0.9:80"}, "No such service\n", 1},
	}
	before := runCLI(st, root, "", "-S").out
	for _, c := range cases {
		r := runCLI(st, root, "", c.args...)
		if r.code != c.code || r.err != c.err || r.out != "" {
			t.Errorf("%q: code %d stderr %q stdout %q; want %d %q", c.args, r.code, r.err, r.out, c.code, c.err)
		}
	}
	if after := runCLI(st, root, "", "-S").out; after != before {
		t.Errorf("failed commands changed the table:\n%s\nwas:\n%s", after, before)
	}
}

func TestRunHelpVersion(t *testing.T) {
	for _, st := range []*State{New(Options{}), nil} {
		r := runCLI(st, Env{Prog: "/sbin/ipvsadm"}, "", "-h")
		if r.code != 0 || r.out != ipvsadm.UsageFor("ipvsadm") || r.err != "" {
			t.Errorf("-h: %d %q", r.code, r.err)
		}
		r = runCLI(st, Env{}, "", "--version")
		if r.code != 0 || r.out != "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n" {
			t.Errorf("-v: %d %q", r.code, r.out)
		}
		r = runCLI(st, Env{}, "", "-x")
		if r.code != 255 || r.err != "Try `uvsadm -h' or 'uvsadm --help' for more information.\n" {
			t.Errorf("uvsadm -x: %+v", r)
		}
	}
	r := runCLI(nil, Env{Prog: "uvsadm", Unavailable: "no director"}, "", "-Ln")
	if r.code != 2 || r.err != "Can't initialize ipvs: no director\nAre you sure that IP Virtual Server is built in the kernel or as module?\n" {
		t.Errorf("no state: %+v", r)
	}
}

func TestRunPermission(t *testing.T) {
	st := newFixture(t)
	user := Env{Prog: "ipvsadm"}
	before := runCLI(st, user, "", "-S").out
	for _, args := range [][]string{
		{"-A", "-t", "10.0.0.9:80"}, {"-E", "-t", "10.0.0.1:80"}, {"-D", "-t", "10.0.0.1:80"}, {"-C"},
		{"-a", "-t", "10.0.0.1:80", "-r", "1.2.3.4"}, {"-e", "-t", "10.0.0.1:80", "-r", "192.168.1.2", "-m"},
		{"-d", "-t", "10.0.0.1:80", "-r", "192.168.1.2"}, {"--set", "1", "2", "3"}, {"-Z"},
		{"-P", "-t", "10.0.0.1:80", "-z", "1.1.1.1"}, {"--start-daemon", "master"}, {"--stop-daemon", "backup"},
	} {
		r := runCLI(st, user, "", args...)
		if r.code != 255 || r.err != "Permission denied (you must be root)\n" {
			t.Errorf("non-root %q: %+v", args, r)
		}
	}
	if after := runCLI(st, user, "", "-S").out; after != before {
		t.Errorf("non-root changed the table")
	}
	if got := findStats(t, st, tcp80).Load().Conns; got != 1234 {
		t.Errorf("non-root -Z zeroed counters: %d", got)
	}
	// -R as non-root: every line is refused, the restore goes on, the
	// status is the last line's.
	r := runCLI(st, user, "-A -t 10.9.9.9:80\n-A -t 10.9.9.8:80\n", "-R")
	if r.code != 255 || strings.Count(r.err, "Permission denied (you must be root)\n") != 2 {
		t.Errorf("non-root -R: %+v", r)
	}
}

func TestRunSetTimeout(t *testing.T) {
	st := New(Options{})
	mustRun(t, st, "--set 1000 0 30")
	r := runCLI(st, root, "", "-L", "--timeout")
	if r.out != "Timeout (tcp tcpfin udp): 1000 120 30\n" {
		t.Errorf("--timeout after --set: %q", r.out)
	}
}

func TestRunZero(t *testing.T) {
	st := newFixture(t)
	est := NewEstimator(st)
	env := root
	env.Rates = est
	svc := findStats(t, st, tcp80)
	d := findDest(t, st, tcp80, "192.168.1.2:80")
	est.Sample()
	svc.Add(sched.Counts{Conns: 1000})
	d.Stats.Add(sched.Counts{Conns: 1000})
	d53 := findDest(t, st, udp53, "192.168.1.2:53")
	d53.Stats.Zero()
	d53.Stats.Add(sched.Counts{InPkts: 77})
	est.Sample()
	if est.Rate(svc).CPS == 0 {
		t.Fatal("no rate before -Z")
	}
	// Zero one service: its counters and rates, not the others'.
	if r := runCLI(st, env, "", "-Z", "-t", "10.0.0.1:80"); r.code != 0 {
		t.Fatalf("-Z -t: %+v", r)
	}
	if svc.Load().Conns != 0 || d.Stats.Load().Conns != 0 || est.Rate(svc) != (ipvsadm.RateView{}) || est.Rate(&d.Stats) != (ipvsadm.RateView{}) {
		t.Errorf("-Z -t left counters %d/%d rates %+v/%+v", svc.Load().Conns, d.Stats.Load().Conns, est.Rate(svc), est.Rate(&d.Stats))
	}
	if d53.Stats.Load().InPkts != 77 {
		t.Errorf("-Z -t zeroed another service")
	}
	est.Sample()
	if est.Rate(svc) != (ipvsadm.RateView{}) {
		t.Errorf("rate after -Z and an idle sample: %+v", est.Rate(svc))
	}
	if r := runCLI(st, env, "", "-Z"); r.code != 0 {
		t.Fatalf("-Z: %+v", r)
	}
	if d53.Stats.Load().InPkts != 0 {
		t.Errorf("-Z left %d", d53.Stats.Load().InPkts)
	}
}

func TestRunRestore(t *testing.T) {
	st := New(Options{})
	in := "# a comment\n" +
		"\n" +
		"ipvsadm -A -t 10.0.0.1:80 -s rr\n" +
		"   \t  \n" +
		"-a -t 10.0.0.1:80 -r 192.168.1.2 -g -w 3\n" +
		"-a -t 10.0.0.9:80 -r 192.168.1.2\n" + // rejected: printed, restore goes on
		"uvsadm -A -u 10.0.0.1:53\n" +
		"-a -u 10.0.0.1:53 -r 192.168.1.3 -m\n"
	r := runCLI(st, root, in, "-R")
	if r.code != 0 || r.err != "Service not defined\n" {
		t.Errorf("-R: %+v", r)
	}
	want := "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 192.168.1.2:80 -g -w 3\n" +
		"-A -u 10.0.0.1:53 -s wlc\n-a -u 10.0.0.1:53 -r 192.168.1.3:53 -m -w 1\n"
	if got := runCLI(st, root, "", "-S").out; got != want {
		t.Errorf("after -R:\n%s\nwant:\n%s", got, want)
	}

	// The status is the last line's: a rejected last line gives 255.
	r = runCLI(st, root, "-A -t 10.0.0.2:80\n-A -t 10.0.0.2:80\n", "-R")
	if r.code != 255 || r.err != "Service already exists\n" {
		t.Errorf("-R ending in an error: %+v", r)
	}
	// A validation error stops the restore: later lines are not run.
	r = runCLI(st, root, "-A -t 10.0.0.3:80\n-A -t 10.0.0.4:80 -w 1\n-A -t 10.0.0.5:80\n", "-R")
	if r.code != 2 || r.err != "Illegal 'weight' option with the 'add-service' command\n" {
		t.Errorf("-R with a usage error: %+v", r)
	}
	s := runCLI(st, root, "", "-S").out
	if !strings.Contains(s, "10.0.0.3:80") || strings.Contains(s, "10.0.0.5:80") {
		t.Errorf("-R did not stop at the bad line:\n%s", s)
	}
	// -R inside -R.
	r = runCLI(st, root, "-A -t 10.0.0.6:80\n-R\n-A -t 10.0.0.7:80\n", "-R")
	if r.code != 255 || r.err != "Try `ipvsadm -h' or 'ipvsadm --help' for more information.\n" {
		t.Errorf("nested -R: %+v", r)
	}
	// Listings inside -R run.
	r = runCLI(st, root, "-L --timeout\n", "-R")
	if r.code != 0 || r.out != "Timeout (tcp tcpfin udp): 900 120 300\n" {
		t.Errorf("-L in -R: %+v", r)
	}
	// Empty input succeeds.
	if r = runCLI(st, root, "", "-R"); r.code != 0 || r.err != "" {
		t.Errorf("empty -R: %+v", r)
	}
}

// TestRunSaveClearRestore: -S, then -C, then -R gives the same table, and
// ipvsadm-restore clears first.
func TestRunSaveClearRestore(t *testing.T) {
	st := newFixture(t)
	saved := runCLI(st, root, "", "-S", "-n")
	mustRun(t, st, "-C")
	if r := runCLI(st, root, "", "-S"); r.out != "" {
		t.Fatalf("-C left %q", r.out)
	}
	r := runCLI(st, root, saved.out, "-R")
	if r.code != 0 || r.err != "" {
		t.Fatalf("-R of -S output: %+v", r)
	}
	if again := runCLI(st, root, "", "-S", "-n"); again.out != saved.out {
		t.Errorf("-S after -R:\n%s\nwant:\n%s", again.out, saved.out)
	}
	// Thresholds are not saved (ipvsadm does not save them) and counters
	// start again from zero; the rest of the table is the same.
	after := runCLI(st, Env{Prog: "ipvsadm"}, "", "-Ln")
	mustRun(t, st, "-C")
	for _, l := range fixture {
		mustRun(t, st, strings.ReplaceAll(l, " -x 100 -y 50", ""))
	}
	if want := runCLI(st, Env{Prog: "ipvsadm"}, "", "-Ln"); after.out != want.out {
		t.Errorf("table after restore:\n%s\nwant:\n%s", after.out, want.out)
	}

	// ipvsadm-restore: "-C" first, '#' lines skipped, arguments ignored.
	mustRun(t, st, "-A -t 10.9.9.9:80")
	r = runCLI(st, Env{Prog: "/sbin/ipvsadm-restore", Privileged: true}, "# saved\n"+saved.out, "--whatever")
	if r.code != 0 || r.err != "" {
		t.Fatalf("ipvsadm-restore: %+v", r)
	}
	if got := runCLI(st, root, "", "-S", "-n").out; got != saved.out {
		t.Errorf("after ipvsadm-restore:\n%s\nwant:\n%s", got, saved.out)
	}
	// ipvsadm-save usage.
	r = runCLI(st, Env{Prog: "ipvsadm-save"}, "", "-x")
	if r.code != 1 || r.err != "Usage: ipvsadm-save [-n]\n" || r.out != "" {
		t.Errorf("ipvsadm-save -x: %+v", r)
	}
}

func BenchmarkRunListFixture(b *testing.B) {
	st := New(Options{})
	for _, l := range fixture {
		if r := runCLI(st, root, "", strings.Fields(l)...); r.code != 0 {
			b.Fatal(r.err)
		}
	}
	var o, e bytes.Buffer
	args := []string{"-Ln"}
	b.ReportAllocs()
	for b.Loop() {
		o.Reset()
		if Run(st, Env{Prog: "ipvsadm"}, args, nil, &o, &e) != 0 {
			b.Fatal(e.String())
		}
	}
}

func TestListCheckers(t *testing.T) {
	st := New(Options{})
	header := "VS                       RS                       TYPE       TARGET                 STATE RETRY NEXT  LAST\n"
	if r := runCLI(st, root, "", "--list-checkers"); r.code != 0 || r.out != header || r.err != "" {
		t.Errorf("without checkers: %+v", r)
	}
	env := root
	env.Privileged = false // a query: an unprivileged peer may list
	env.Checkers = func() []ipvsadm.CheckerView {
		return []ipvsadm.CheckerView{{VS: "[10.0.1.100]:tcp:80", RS: "[10.0.2.11]:tcp:80", Type: "TCP_CHECK",
			Target: "10.0.2.11:80", Up: true, RetriesLeft: 3, Next: time.Second}}
	}
	want := header + "[10.0.1.100]:tcp:80      [10.0.2.11]:tcp:80       TCP_CHECK  10.0.2.11:80           UP    3     1     never\n"
	if r := runCLI(st, env, "", "--list-checkers", "-n"); r.code != 0 || r.out != want || r.err != "" {
		t.Errorf("got %+v, want stdout %q", r, want)
	}
	if r := runCLI(st, env, "", "--list-checkers", "-t", "10.0.1.100:80"); r.code != ipvsadm.ExitUsage {
		t.Errorf("--list-checkers -t: exit %d, want %d (%q)", r.code, ipvsadm.ExitUsage, r.err)
	}
}

// fakeDaemons follows the kernel's rules for the sync daemons
// (start_sync_thread, stop_sync_thread): one master and one backup at
// most, an unknown interface is ENODEV, stopping matches the state only,
// and the listing reports the defaults a kernel fills in.
type fakeDaemons struct {
	mu      sync.Mutex // the control server calls from its goroutines
	ifaces  map[string]bool
	running map[string]ipvsadm.DaemonConfig
	stops   []string
}

func newFakeDaemons(ifaces ...string) *fakeDaemons {
	f := &fakeDaemons{ifaces: map[string]bool{}, running: map[string]ipvsadm.DaemonConfig{}}
	for _, i := range ifaces {
		f.ifaces[i] = true
	}
	return f
}

func (f *fakeDaemons) StartDaemon(c ipvsadm.DaemonConfig) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.ifaces[c.McastIfn] {
		return syscall.ENODEV
	}
	if _, ok := f.running[c.State]; ok {
		return syscall.EEXIST
	}
	if !c.McastGroup.IsValid() {
		c.McastGroup = netip.AddrFrom4([4]byte{224, 0, 0, 81})
	}
	if c.McastPort == 0 {
		c.McastPort = 8848
	}
	if c.McastTTL == 0 {
		c.McastTTL = 1
	}
	if c.SyncMaxLen == 0 {
		c.SyncMaxLen = 1472
	}
	f.running[c.State] = c
	return nil
}

func (f *fakeDaemons) StopDaemon(state string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stops = append(f.stops, state)
	if _, ok := f.running[state]; !ok {
		return syscall.ESRCH
	}
	delete(f.running, state)
	return nil
}

func (f *fakeDaemons) Daemons() []ipvsadm.DaemonConfig {
	f.mu.Lock()
	defer f.mu.Unlock()
	// Backup first on purpose: Run prints master first whatever the
	// order of the answer.
	var out []ipvsadm.DaemonConfig
	for _, s := range []string{"backup", "master"} {
		if d, ok := f.running[s]; ok {
			out = append(out, d)
		}
	}
	return out
}

// TestRunDaemons drives --start-daemon, --stop-daemon and -L --daemon
// through Env.Daemons with ipvsadm's messages and statuses.
func TestRunDaemons(t *testing.T) {
	st := newFixture(t)
	fd := newFakeDaemons("eth0", "eth1")
	env := Env{Prog: "ipvsadm", Privileged: true, Daemons: fd}
	before := runCLI(st, env, "", "-S").out
	steps := []struct {
		args     string
		out, err string
		code     int
	}{
		{"-L --daemon", "", "", 0},
		{"--stop-daemon master", "", "No daemon is running\n", 255},
		{"--start-daemon master --mcast-interface eth1 --syncid 51", "", "", 0},
		{"-L --daemon", "master sync daemon (mcast=eth1, syncid=51, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n", "", 0},
		{"--start-daemon master --mcast-interface eth0", "", "Daemon has already run\n", 255},
		{"--start-daemon backup --mcast-interface eth9", "", "No such device\n", 255},
		// --mcast-interface defaults to eth0, as in ipvsadm.
		{"--start-daemon backup --syncid 7 --sync-maxlen 1400 --mcast-group 224.0.0.82 --mcast-port 8849 --mcast-ttl 2", "", "", 0},
		{"-L --daemon -n",
			"master sync daemon (mcast=eth1, syncid=51, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n" +
				"backup sync daemon (mcast=eth0, syncid=7, maxlen=1400, group=224.0.0.82, port=8849, ttl=2)\n", "", 0},
		// Stopping matches the state, not the syncid (the kernel's
		// DEL_DAEMON reads only the state).
		{"--stop-daemon master --syncid 9", "", "", 0},
		{"--stop-daemon master", "", "No daemon is running\n", 255},
		{"-L --daemon", "backup sync daemon (mcast=eth0, syncid=7, maxlen=1400, group=224.0.0.82, port=8849, ttl=2)\n", "", 0},
		{"--stop-daemon backup", "", "", 0},
		{"-L --daemon", "", "", 0},
	}
	for _, s := range steps {
		r := runCLI(st, env, "", strings.Fields(s.args)...)
		if r.code != s.code || r.out != s.out || r.err != s.err {
			t.Errorf("%s: code %d stdout %q stderr %q; want %d %q %q", s.args, r.code, r.out, r.err, s.code, s.out, s.err)
		}
	}
	if want := []string{"master", "master", "master", "backup"}; strings.Join(fd.stops, " ") != strings.Join(want, " ") {
		t.Errorf("StopDaemon calls %q, want %q", fd.stops, want)
	}
	// -S never saves daemons; the table is untouched.
	if r := runCLI(st, env, "", "--start-daemon", "master", "--mcast-interface", "eth1"); r.code != 0 {
		t.Fatalf("start: %+v", r)
	}
	if after := runCLI(st, env, "", "-S").out; after != before {
		t.Errorf("-S with a daemon running:\n%s\nwas:\n%s", after, before)
	}
}

// TestRunDaemonsRefused: unprivileged callers may list the daemons but
// not start or stop them, and nothing reaches Env.Daemons.
func TestRunDaemonsRefused(t *testing.T) {
	st := newFixture(t)
	fd := newFakeDaemons("eth1")
	if err := fd.StartDaemon(ipvsadm.DaemonConfig{State: "backup", McastIfn: "eth1", SyncID: 3}); err != nil {
		t.Fatal(err)
	}
	user := Env{Prog: "ipvsadm", Daemons: fd}
	for _, args := range []string{"--start-daemon master --mcast-interface eth1", "--stop-daemon backup"} {
		r := runCLI(st, user, "", strings.Fields(args)...)
		if r.code != 255 || r.err != "Permission denied (you must be root)\n" || r.out != "" {
			t.Errorf("non-root %s: %+v", args, r)
		}
	}
	if len(fd.running) != 1 || len(fd.stops) != 0 {
		t.Errorf("daemons changed by a non-root caller: %+v stops %v", fd.running, fd.stops)
	}
	r := runCLI(st, user, "", "-L", "--daemon")
	if r.code != 0 || r.out != "backup sync daemon (mcast=eth1, syncid=3, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n" {
		t.Errorf("non-root -L --daemon: %+v", r)
	}
}

// errDaemons returns one fixed error from every call.
type errDaemons struct{ err error }

func (e errDaemons) StartDaemon(ipvsadm.DaemonConfig) error { return e.err }
func (e errDaemons) StopDaemon(string) error                { return e.err }
func (e errDaemons) Daemons() []ipvsadm.DaemonConfig        { return nil }

// TestDaemonErrors: errno → ipvsadm 1.31's words (libipvs ipvs_strerror,
// then strerror(3)); *Error and other errors print as they are.
func TestDaemonErrors(t *testing.T) {
	st := New(Options{})
	cases := []struct {
		err        error
		start, stp string
	}{
		{syscall.EEXIST, "Daemon has already run", "File exists"},
		{syscall.ESRCH, "No such process", "No daemon is running"},
		{syscall.ENODEV, "No such device", "No such device"},
		{fmt.Errorf("connsync: interface eth9: %w", syscall.ENODEV), "No such device", "No such device"},
		{syscall.EPERM, "Permission denied (you must be root)", "Permission denied (you must be root)"},
		{syscall.EINVAL, "Invalid operation.  Possibly wrong module version, address not unicast, ...",
			"Invalid operation.  Possibly wrong module version, address not unicast, ..."},
		{syscall.ENOMEM, "Memory allocation problem", "Memory allocation problem"},
		{syscall.ENOPROTOOPT, "Protocol not available", "Protocol not available"},
		{syscall.EOPNOTSUPP, "Operation not supported with IPv6", "Operation not supported with IPv6"},
		{syscall.EAFNOSUPPORT, "Operation not supported with specified address family",
			"Operation not supported with specified address family"},
		{syscall.EMSGSIZE, "Module is wrong version", "Module is wrong version"},
		{syscall.EADDRINUSE, "Address already in use", "Address already in use"},
		{&Error{Errno: syscall.EIO, Msg: "sync socket: boom"}, "sync socket: boom", "sync socket: boom"},
		{fmt.Errorf("connsync: bind 224.0.0.81:8848: something"), "connsync: bind 224.0.0.81:8848: something",
			"connsync: bind 224.0.0.81:8848: something"},
	}
	for _, c := range cases {
		env := Env{Prog: "ipvsadm", Privileged: true, Daemons: errDaemons{c.err}}
		if r := runCLI(st, env, "", "--start-daemon", "master"); r.code != 255 || r.err != c.start+"\n" {
			t.Errorf("start, %v: %+v, want %q", c.err, r, c.start)
		}
		if r := runCLI(st, env, "", "--stop-daemon", "master"); r.code != 255 || r.err != c.stp+"\n" {
			t.Errorf("stop, %v: %+v, want %q", c.err, r, c.stp)
		}
	}
}
