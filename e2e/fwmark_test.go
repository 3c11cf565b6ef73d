package e2e

import (
	"strings"
	"testing"
)

// TestFWMarkPersistence is seed 001's recipe, unchanged: iptables marks
// http and https to the VIP with 10, one fwmark service with persistence
// (PFWMC) serves both ports, and a client sticks to one real server for
// both while its template lives.
func TestFWMarkPersistence(t *testing.T) {
	l := newNATLab(t)
	l.cli.AddrAdd(t, "c0", "10.0.1.3/24")
	l.dir.Exec(t, "iptables", "-t", "mangle", "-A", "PREROUTING", "-d", "10.0.1.200", "-p", "tcp",
		"-m", "multiport", "--dports", "80,443", "-j", "MARK", "--set-mark", "10")
	startUVSD(t, l.dir, `-A -f 10 -s rr -p
-a -f 10 -r 10.0.2.11 -m -w 1
-a -f 10 -r 10.0.2.12 -m -w 1
`)
	get := func(src, url string) string {
		t.Helper()
		out, err := l.cli.Run("curl", "-sS", "--max-time", "8", "--interface", src, url)
		if err != nil {
			t.Fatalf("curl --interface %s %s: %v: %s", src, url, err, out)
		}
		return out
	}
	var first [2]string
	for i, src := range []string{"10.0.1.2", "10.0.1.3"} {
		first[i] = get(src, "http://10.0.1.200/")
		for _, url := range []string{"http://10.0.1.200:443/", "http://10.0.1.200/", "http://10.0.1.200:443/"} {
			if got := get(src, url); got != first[i] {
				t.Fatalf("client %s: %s answered by %q, but its first request by %q: persistence broken", src, url, got, first[i])
			}
		}
	}
	if first[0] == first[1] {
		t.Fatalf("both clients went to %q: rr should have given the second client's template the other server", first[0])
	}
	out := mustUVSADM(t, l.dir, "-Lnc")
	if !strings.Contains(out, "IP ") || !strings.Contains(out, "0.0.0.10:0") {
		t.Fatalf("uvsadm -Lnc shows no PFWMC template (IP ... 0.0.0.10:0):\n%s", out)
	}
}

// TestPCC: a persistent port-0 service (`-t VIP:0 -p`, persistent client
// connection) sends every port of the VIP from one client to one real
// server while its template lives; DR, as the seeds run it.
func TestPCC(t *testing.T) {
	l := newLANLab(t, false)
	for _, rs := range l.rs {
		drRealServer(t, rs, "10.0.5.100")
	}
	l.cli.AddrAdd(t, "c0", "10.0.5.3/24")
	startUVSD(t, l.dir, `-A -t 10.0.5.100:0 -s rr -p 60
-a -t 10.0.5.100:0 -r 10.0.5.11 -g -w 1
-a -t 10.0.5.100:0 -r 10.0.5.12 -g -w 1
`)
	var first [2]string
	for i, src := range []string{"10.0.5.2", "10.0.5.3"} {
		for j, url := range []string{"http://10.0.5.100/", "http://10.0.5.100:443/", "http://10.0.5.100/"} {
			out, err := l.cli.Run("curl", "-sS", "--max-time", "8", "--interface", src, url)
			if err != nil {
				t.Fatalf("curl --interface %s %s: %v: %s", src, url, err, out)
			}
			if j == 0 {
				first[i] = out
			} else if out != first[i] {
				t.Fatalf("client %s: %s answered by %q, first request by %q", src, url, out, first[i])
			}
		}
	}
	if first[0] == first[1] {
		t.Fatalf("both clients on %q", first[0])
	}
	if out := mustUVSADM(t, l.dir, "-Ln"); !strings.Contains(out, "TCP  10.0.5.100:0 rr persistent 60") {
		t.Fatalf("listing:\n%s", out)
	}
}
