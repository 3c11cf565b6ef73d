package control

import (
	"fmt"
	"net/netip"
	"testing"
)

// TestRunLaddrConflicts: -G's CONFLICTS column shows, per local address,
// the failed local-port allocations env.LaddrConflicts reports.
func TestRunLaddrConflicts(t *testing.T) {
	st := New(Options{})
	mustRun(t, st, "-A -t 10.0.0.1:80 -s rr")
	mustRun(t, st, "-a -t 10.0.0.1:80 -r 192.168.1.2:80 -b")
	mustRun(t, st, "-P -t 10.0.0.1:80 -z 192.168.0.200")
	mustRun(t, st, "-P -t 10.0.0.1:80 -z 192.168.0.201")
	conflicts := map[netip.Addr]uint64{netip.MustParseAddr("192.168.0.201"): 42}
	env := Env{Prog: "ipvsadm", Privileged: true, LaddrConflicts: func(a netip.Addr) uint64 { return conflicts[a] }}
	want := fmt.Sprintf("%-20s %-8s %-20s %-10s %-10s\n", "VIP:VPORT", "TOTAL", "LADDR", "CONFLICTS", "CONNS") +
		fmt.Sprintf("%-20s %-8d \n", "10.0.0.1:80", 2) +
		fmt.Sprintf("%-20s %-8s %-20s %-10d %-10d\n", "", "", "192.168.0.200", 0, 0) +
		fmt.Sprintf("%-20s %-8s %-20s %-10d %-10d\n", "", "", "192.168.0.201", 42, 0)
	r := runCLI(st, env, "", "-G", "-t", "10.0.0.1:80")
	if r.code != 0 || r.err != "" || r.out != want {
		t.Errorf("-G: %d %q\n got:\n%s\nwant:\n%s", r.code, r.err, r.out, want)
	}
}
