package bench

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// TestRaisePriorityAutogroup: raisePriority gives the benchmark's
// autogroup (its session) nice -20, so that processes of other sessions
// compete with the benchmark at that weight (see raisePriority), and
// puts it back after. Run in a child process in a session of its own: the
// test's session keeps its priority.
func TestRaisePriorityAutogroup(t *testing.T) {
	if os.Getenv("UVS_BENCH_PRIORITY_CHILD") == "1" {
		restore := raisePriority()
		for range 2 {
			b, err := os.ReadFile("/proc/self/autogroup")
			if err != nil {
				t.Fatal(err)
			}
			os.Stdout.Write(b)
			restore()
		}
		return
	}
	if _, err := os.Stat("/proc/self/autogroup"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI's kernel has autogroups (CONFIG_SCHED_AUTOGROUP), this one not: %v", err)
		}
		t.Skip("kernel without autogroups (CONFIG_SCHED_AUTOGROUP): nothing to raise")
	}
	if os.Geteuid() != 0 {
		t.Skip("a negative autogroup nice needs CAP_SYS_NICE (root)")
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestRaisePriorityAutogroup$")
	cmd.Env = append(os.Environ(), "UVS_BENCH_PRIORITY_CHILD=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	// "/autogroup-N nice -20" while raised, "… nice 0" once restored,
	// then the test framework's PASS.
	lines := strings.Split(string(out), "\n")
	if len(lines) < 2 || !strings.HasSuffix(lines[0], " nice -20") || !strings.HasSuffix(lines[1], " nice 0") {
		t.Errorf("child's autogroup after raisePriority and after restoring:\n%s\nwant nice -20, then nice 0", out)
	}
	if b, err := os.ReadFile("/proc/self/autogroup"); err == nil && strings.Contains(string(b), "nice -20") {
		t.Errorf("the test's own autogroup was changed: %q", b)
	}
}
