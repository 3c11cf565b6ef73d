package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/wait"
)

// uvsadm runs uvsadm inside ns against the director there (no autostart)
// and returns its output and exit code.
func uvsadm(t *testing.T, ns *netnstest.NS, args ...string) (string, int) {
	t.Helper()
	out, err := ns.Run(append([]string{"env", "UVS_NO_AUTOSTART=1", binary("uvsadm")}, args...)...)
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(interface{ ExitCode() int }); ok {
			code = ee.ExitCode()
		}
	}
	return out, code
}

func mustUVSADM(t *testing.T, ns *netnstest.NS, args ...string) string {
	t.Helper()
	out, code := uvsadm(t, ns, args...)
	if code != 0 {
		t.Fatalf("uvsadm %s: exit %d: %s", strings.Join(args, " "), code, out)
	}
	return out
}

// TestSeedDRScript runs seed 000's director script, with uvsadm in place
// of ipvsadm, against a running uvsd, then exercises the listing, save and
// restore, and removal of a real server.
func TestSeedDRScript(t *testing.T) {
	l := newLANLab(t, false)
	for _, rs := range l.rs {
		drRealServer(t, rs, "10.0.5.100")
	}
	startUVSD(t, l.dir, "")
	vip, port, scheduler := "10.0.5.100", "80", "rr"
	mustUVSADM(t, l.dir, "-C")
	mustUVSADM(t, l.dir, "-A", "-t", vip+":"+port, "-s", scheduler)
	mustUVSADM(t, l.dir, "-a", "-t", vip+":"+port, "-r", "10.0.5.11", "-g", "-w", "1")
	mustUVSADM(t, l.dir, "-a", "-t", vip+":"+port, "-r", "10.0.5.12", "-g", "-w", "1")

	want := "IP Virtual Server version 1.2.1 (size=4096)\n" +
		"Prot LocalAddress:Port Scheduler Flags\n" +
		"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n" +
		"TCP  10.0.5.100:80 rr\n" +
		"  -> 10.0.5.11:80                 Route   1      0          0         \n" +
		"  -> 10.0.5.12:80                 Route   1      0          0"
	if got := mustUVSADM(t, l.dir, "-Ln"); got != want {
		t.Fatalf("uvsadm -Ln:\n%q\nwant\n%q", got, want)
	}

	seen := map[string]int{}
	for i := 0; i < 4; i++ {
		seen[curl(t, l.cli, "http://10.0.5.100/")]++
	}
	if seen["rs1"] != 2 || seen["rs2"] != 2 {
		t.Fatalf("answers %v", seen)
	}
	if out := mustUVSADM(t, l.dir, "-Lnc"); !strings.Contains(out, "10.0.5.100:80") || !strings.Contains(out, "IPVS connection entries") {
		t.Fatalf("uvsadm -Lnc shows no connection:\n%s", out)
	}

	// -S, -C, -R restores the same table.
	saved := mustUVSADM(t, l.dir, "-S", "-n")
	file := filepath.Join(t.TempDir(), "saved")
	if err := os.WriteFile(file, []byte(saved+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustUVSADM(t, l.dir, "-C")
	if out := mustUVSADM(t, l.dir, "-Ln"); strings.Contains(out, "10.0.5.100") {
		t.Fatalf("after -C:\n%s", out)
	}
	if out, err := l.dir.Run("sh", "-c", "UVS_NO_AUTOSTART=1 "+binary("uvsadm")+" -R < "+file); err != nil {
		t.Fatalf("uvsadm -R: %v: %s", err, out)
	}
	if again := mustUVSADM(t, l.dir, "-S", "-n"); again != saved {
		t.Fatalf("after -S/-C/-R the table is\n%s\nwant\n%s", again, saved)
	}

	// A removed real server gets no new connection.
	mustUVSADM(t, l.dir, "-d", "-t", vip+":"+port, "-r", "10.0.5.11")
	for i := 0; i < 3; i++ {
		if b := curl(t, l.cli, "http://10.0.5.100/"); b != "rs2" {
			t.Fatalf("after removing rs1, request %d answered by %s", i, b)
		}
	}

	// Errors keep ipvsadm's messages and exit codes and change nothing.
	if out, code := uvsadm(t, l.dir, "-a", "-t", vip+":"+port, "-r", "10.0.5.12", "-g"); code != 255 || out != "Destination already exists" {
		t.Fatalf("duplicate -a: exit %d %q", code, out)
	}
	if out, code := uvsadm(t, l.dir, "-a", "-t", vip+":"+port, "-r", "10.0.5.13", "-w", "70000"); code != 2 || !strings.Contains(out, "illegal weight specified") {
		t.Fatalf("bad weight: exit %d %q", code, out)
	}
}

// TestAutostart: with no director in the namespace, the first uvsadm
// command starts one, as ipvsadm works once the module is loaded.
func TestAutostart(t *testing.T) {
	a, b := netnstest.New(t, "as"), netnstest.New(t, "peer")
	netnstest.Veth(t, a, "e0", b, "e1")
	a.AddrAdd(t, "e0", "10.0.7.1/24")
	t.Cleanup(func() {
		// End the director we caused to start: the processes in our namespace.
		pids, _ := netnsPIDs(a.Name)
		for _, p := range pids {
			if proc, err := os.FindProcess(p); err == nil {
				_ = proc.Signal(os.Interrupt)
			}
		}
		if wait.Until(5*time.Second, func() bool { pids, _ := netnsPIDs(a.Name); return len(pids) == 0 }) {
			return
		}
		pids, _ = netnsPIDs(a.Name)
		for _, p := range pids {
			if proc, err := os.FindProcess(p); err == nil {
				_ = proc.Kill()
			}
		}
	})
	out, err := a.Run(binary("uvsadm"), "-A", "-t", "10.0.7.100:80", "-s", "wrr")
	if err != nil {
		t.Fatalf("uvsadm with autostart: %v: %s", err, out)
	}
	if got := mustUVSADM(t, a, "-Ln"); !strings.Contains(got, "TCP  10.0.7.100:80 wrr") {
		t.Fatalf("after autostart -Ln shows:\n%s", got)
	}
}

// netnsPIDs lists the processes in a named namespace (ip netns pids).
func netnsPIDs(name string) ([]int, error) {
	out, err := runCmd("ip", "netns", "pids", name)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(out) {
		if p, err := strconv.Atoi(f); err == nil {
			pids = append(pids, p)
		}
	}
	return pids, nil
}
