package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/wait"
)

// kaConf is the NAT lab's service as a keepalived.conf: rr on
// 10.0.1.100:80 with both real servers, each with a TCP_CHECK that
// decides within seconds.
func kaConf(inhibit bool) string {
	rs := func(addr string) string {
		s := "    real_server " + addr + " 80 {\n        weight 1\n"
		if inhibit {
			s += "        inhibit_on_failure\n"
		}
		return s + "        TCP_CHECK {\n            connect_timeout 1\n        }\n    }\n"
	}
	return "global_defs {\n    router_id uvs_e2e\n}\n" +
		"virtual_server 10.0.1.100 80 {\n" +
		"    delay_loop 1\n    retry 1\n    delay_before_retry 1\n" +
		"    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n" +
		rs("10.0.2.11") + rs("10.0.2.12") + "}\n"
}

// kaRemoveBound bounds the wait from stopping a real server's web server
// to uvsd taking it out of the pool: the next probe comes within
// delay_loop (the first after BootstrapDelay + warmup), fails within
// connect_timeout, and retry × (delay_before_retry + connect_timeout)
// later the checker decides down: 1 + 1 + 1 × (1 + 1) = 4 s, plus slack
// for a loaded machine.
const kaRemoveBound = 4*time.Second + 26*time.Second

// destWeight returns the weight -Ln lists for real server rs ("10.0.2.11:80"),
// and whether it is listed.
func destWeight(listing, rs string) (string, bool) {
	for _, line := range strings.Split(listing, "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[0] == "->" && f[1] == rs {
			return f[3], true
		}
	}
	return "", false
}

func TestKeepalivedTCPCheck(t *testing.T) { testKeepalived(t, false) }

func TestKeepalivedInhibitOnFailure(t *testing.T) { testKeepalived(t, true) }

// testKeepalived runs uvsd --keepalived on the NAT lab, stops rs1's web
// server and checks that the TCP_CHECK takes rs1 out of the pool (or, with
// inhibit_on_failure, sets its weight to 0), that the clients then reach
// only rs2, and that rs1 comes back when it serves again. The checks are
// the director's own TCP connections to RS:80 on the NAT side: their
// replies come from the port NAT replies come from, and must reach the
// director's stack rather than be taken by its kernel hooks.
func testKeepalived(t *testing.T, inhibit bool) {
	l := newNATLab(t)
	path := filepath.Join(t.TempDir(), "keepalived.conf")
	if err := os.WriteFile(path, []byte(kaConf(inhibit)), 0o644); err != nil {
		t.Fatal(err)
	}
	u := startUVSDArgs(t, l.dir, "--keepalived", path)
	log := func() string { return u.proc.Output() }

	var listing string
	list := func() string {
		out, err := controlList(l.dir)
		if err != nil {
			t.Fatalf("-Ln: %v", err)
		}
		listing = out
		return out
	}
	wait.For(t, startTimeout, func() bool {
		out := list()
		_, ok1 := destWeight(out, "10.0.2.11:80")
		_, ok2 := destWeight(out, "10.0.2.12:80")
		return ok1 && ok2
	}, "-Ln to list both real servers (last:\n%s)", wait.Lazy(func() any { return listing }))
	// The first verdicts: the director's checks reached both web servers.
	for _, rs := range []string{"10.0.2.11", "10.0.2.12"} {
		line := "TCP connection to [" + rs + "]:tcp:80 success."
		wait.For(t, kaRemoveBound, func() bool { return strings.Contains(log(), line) },
			"uvsd to log %q", line)
	}
	seen := map[string]bool{}
	for range 4 {
		seen[curl(t, l.cli, "http://10.0.1.100/")] = true
	}
	if !seen["rs1"] || !seen["rs2"] {
		t.Fatalf("before the failure the VIP reached %v, want rs1 and rs2", seen)
	}

	killed := time.Now()
	l.web[0].stop()
	gone := func(out string) bool {
		w, ok := destWeight(out, "10.0.2.11:80")
		if inhibit {
			return ok && w == "0"
		}
		return !ok
	}
	wait.For(t, kaRemoveBound, func() bool { return gone(list()) },
		"rs1 to leave the pool after its web server stopped (last -Ln:\n%s)", wait.Lazy(func() any { return listing }))
	t.Logf("rs1 stopped → out of the pool (inhibit %v) in %v", inhibit, time.Since(killed).Round(time.Millisecond))
	if w, ok := destWeight(listing, "10.0.2.12:80"); !ok || w != "1" {
		t.Fatalf("rs2 not listed with weight 1 after rs1 failed:\n%s", listing)
	}
	for i := range 6 {
		if got := curl(t, l.cli, "http://10.0.1.100/"); got != "rs2" {
			t.Fatalf("request %d after rs1 failed answered by %q, want rs2", i, got)
		}
	}
	want := "Removing service [10.0.2.11]:tcp:80 from VS [10.0.1.100]:tcp:80"
	if inhibit {
		want = "Disabling service [10.0.2.11]:tcp:80 of VS [10.0.1.100]:tcp:80"
	}
	if !strings.Contains(log(), want) {
		t.Fatalf("uvsd's log lacks %q", want)
	}

	l.web[0].start(t)
	wait.For(t, kaRemoveBound, func() bool {
		w, ok := destWeight(list(), "10.0.2.11:80")
		return ok && w == "1"
	}, "rs1 back in the pool with weight 1 (last -Ln:\n%s)", wait.Lazy(func() any { return listing }))
	back := "Adding service [10.0.2.11]:tcp:80 to VS [10.0.1.100]:tcp:80"
	if inhibit {
		back = "Enabling service [10.0.2.11]:tcp:80 of VS [10.0.1.100]:tcp:80"
	}
	if !strings.Contains(log(), back) {
		t.Fatalf("uvsd's log lacks %q", back)
	}
	seen = map[string]bool{}
	for range 4 {
		seen[curl(t, l.cli, "http://10.0.1.100/")] = true
	}
	if !seen["rs1"] || !seen["rs2"] {
		t.Fatalf("after rs1 came back the VIP reached %v, want rs1 and rs2", seen)
	}
	u.stop(t)
}

// TestKeepalivedDynamicWeights runs uvsd --keepalived with a FILE_CHECK
// on rs1 (track_file with init_file 3, weight 2: 1 + 3 × 2 = 7) and a
// misc_dynamic MISC_CHECK on rs2 whose script exits 12 (weight 10), then
// changes the tracked file: -Ln follows (0: the configured 1; 5:
// 1 + 5 × 2 = 11), and a value whose weight is IPVS_WEIGHT_FAULT takes
// rs1 out.
func TestKeepalivedDynamicWeights(t *testing.T) {
	l := newNATLab(t)
	dir := t.TempDir()
	tf := filepath.Join(dir, "rs1.trk")
	conf := "track_file TF1 {\n    file " + tf + "\n    weight 2\n    init_file 3\n}\n" +
		"virtual_server 10.0.1.100 80 {\n    delay_loop 1\n    lb_algo wrr\n    lb_kind NAT\n    protocol TCP\n" +
		"    real_server 10.0.2.11 80 {\n        weight 1\n        FILE_CHECK {\n            track_file TF1\n        }\n    }\n" +
		"    real_server 10.0.2.12 80 {\n        weight 1\n        MISC_CHECK {\n            misc_path \"/bin/sh -c 'exit 12'\"\n            misc_dynamic\n        }\n    }\n}\n"
	path := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	u := startUVSDArgs(t, l.dir, "--keepalived", path)
	var listing string
	list := func() string {
		out, err := controlList(l.dir)
		if err != nil {
			t.Fatalf("-Ln: %v", err)
		}
		listing = out
		return out
	}
	weights := func(w1, w2 string, what string) {
		t.Helper()
		wait.For(t, startTimeout+kaRemoveBound, func() bool {
			out := list()
			g1, ok1 := destWeight(out, "10.0.2.11:80")
			g2, ok2 := destWeight(out, "10.0.2.12:80")
			return (w1 == "" && !ok1 || ok1 && g1 == w1) && ok2 && g2 == w2
		}, "%s: rs1 weight %q, rs2 %q (last -Ln:\n%s)", what, w1, w2, wait.Lazy(func() any { return listing }))
	}
	weights("7", "10", "start")
	if err := os.WriteFile(tf, []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	weights("1", "10", "tracked file 0")
	if err := os.WriteFile(tf, []byte("-1073741824\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	weights("", "10", "tracked file -2^30 (× 2 = IPVS_WEIGHT_FAULT)")
	if err := os.WriteFile(tf, []byte("5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	weights("11", "10", "tracked file 5")
	for _, line := range []string{
		"Changing weight from 1 to 10 for active service [10.0.2.12]:tcp:80 of VS [10.0.1.100]:tcp:80",
		"Removing service [10.0.2.11]:tcp:80 from VS [10.0.1.100]:tcp:80",
	} {
		if !strings.Contains(u.proc.Output(), line) {
			t.Errorf("uvsd's log lacks %q", line)
		}
	}
	u.stop(t)
}
