package nic

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/uvs-lb/uvs/internal/netnstest"
)

// inNetNSSysfs runs fn on a thread that is in ns's network namespace and in
// a private mount namespace where /sys is a sysfs mounted from inside it
// (what `ip netns exec` does), so that /sys/class/net shows ns. The thread
// is never returned to the runtime: it exits with the goroutine.
func inNetNSSysfs(t *testing.T, ns *netnstest.NS, fn func() error) error {
	t.Helper()
	h := ns.Handle(t)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with us
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			done <- fmt.Errorf("unshare mount namespace: %w", err)
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
			done <- fmt.Errorf("make / a slave mount: %w", err)
			return
		}
		if err := unix.Setns(int(h), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("setns %s: %w", ns.Name, err)
			return
		}
		if err := unix.Unmount("/sys", unix.MNT_DETACH); err != nil {
			done <- fmt.Errorf("unmount /sys: %w", err)
			return
		}
		if err := unix.Mount(ns.Name, "/sys", "sysfs", 0, ""); err != nil {
			done <- fmt.Errorf("mount sysfs: %w", err)
			return
		}
		done <- fn()
	}()
	return <-done
}

func readFile(t *testing.T, ns *netnstest.NS, path string) string {
	t.Helper()
	return strings.TrimSpace(ns.Exec(t, "cat", path))
}

// niceOf returns a task's nice value (field 19 of /proc/PID/stat).
func niceOf(pid int) (int, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("bad stat %q", s)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 17 {
		return 0, fmt.Errorf("bad stat %q", s)
	}
	return strconv.Atoi(f[16]) // field 19 of the whole line
}

// TestThreadRx applies threaded NAPI to a veth whose receive RPS sends to
// CPU0 and checks every step, then that Restore puts the interface back as
// it was: GRO and UDP GRO forwarding off, RPS on CPU0, threaded off and the
// NAPI thread gone.
func TestThreadRx(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	netnstest.RequireTool(t, "ethtool")
	a, b := netnstest.New(t, "napa"), netnstest.New(t, "napb")
	netnstest.Veth(t, a, "na0", b, "nb0")
	a.Exec(t, "ethtool", "-K", "na0", "gro", "off", "rx-udp-gro-forwarding", "off")
	a.Exec(t, "sh", "-c", "echo 1 > /sys/class/net/na0/queues/rx-0/rps_cpus")
	ifi := a.Interface(t, "na0")
	before := a.Exec(t, "ethtool", "-k", "na0")

	var st RxState
	var napis []NAPI
	err := inNetNSSysfs(t, a, func() error {
		var err error
		if st, err = ThreadRx("na0", RxOptions{Nice: 7, SetNice: true}); err != nil {
			return err
		}
		napis, err = NAPIs(ifi.Index)
		return err
	})
	if err != nil {
		t.Fatalf("ThreadRx(na0): %v", err)
	}
	t.Cleanup(func() { _ = inNetNSSysfs(t, a, st.Restore) })
	if got := readFile(t, a, "/sys/class/net/na0/threaded"); got != "1" {
		t.Errorf("threaded = %q after ThreadRx, want 1", got)
	}
	if got := readFile(t, a, "/sys/class/net/na0/queues/rx-0/rps_cpus"); strings.Trim(got, "0,") != "" {
		t.Errorf("rps_cpus = %q after ThreadRx, want 0", got)
	}
	k := a.Exec(t, "ethtool", "-k", "na0")
	for _, f := range []string{"generic-receive-offload: on", "rx-udp-gro-forwarding: on"} {
		if !strings.Contains(k, f) {
			t.Errorf("ethtool -k na0 after ThreadRx lacks %q:\n%s", f, k)
		}
	}
	if st.Threaded != "0" || st.RPS["rx-0"] == "" || len(st.Features) != 2 {
		t.Errorf("state = %+v, want threaded 0, rx-0's mask and two features", st)
	}
	var pids []int
	for _, x := range napis {
		if x.PID != 0 {
			pids = append(pids, x.PID)
		}
	}
	if len(pids) == 0 {
		t.Fatalf("no NAPI thread for na0 after ThreadRx: %+v", napis)
	}
	for _, pid := range pids {
		comm, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
		if !strings.HasPrefix(string(comm), "napi/na0-") {
			t.Errorf("NAPI thread %d is %q, want napi/na0-*", pid, comm)
		}
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(pid, &set); err != nil {
			t.Fatal(err)
		}
		if set.Count() != 1 || !set.IsSet(0) {
			t.Errorf("NAPI thread %d: affinity %d CPUs (CPU0 %v), want CPU0 only (RPS's mask)", pid, set.Count(), set.IsSet(0))
		}
		if n, err := niceOf(pid); err != nil || n != 7 {
			t.Errorf("NAPI thread %d: nice %d, %v; want 7", pid, n, err)
		}
	}

	if err := inNetNSSysfs(t, a, st.Restore); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := readFile(t, a, "/sys/class/net/na0/threaded"); got != "0" {
		t.Errorf("threaded = %q after Restore, want 0", got)
	}
	if got := readFile(t, a, "/sys/class/net/na0/queues/rx-0/rps_cpus"); strings.Trim(got, "0,") != "1" {
		t.Errorf("rps_cpus = %q after Restore, want 1", got)
	}
	if after := a.Exec(t, "ethtool", "-k", "na0"); after != before {
		t.Errorf("features after Restore differ from before:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	for _, pid := range pids {
		if comm, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm")); err == nil && strings.HasPrefix(string(comm), "napi/na0-") {
			t.Errorf("NAPI thread %d still runs after Restore", pid)
		}
	}
	// Restoring twice is harmless.
	if err := inNetNSSysfs(t, a, st.Restore); err != nil {
		t.Errorf("second Restore: %v", err)
	}
}

// TestThreadRxBadInput: a bad or unknown interface name changes nothing and
// is named in the error.
func TestThreadRxBadInput(t *testing.T) {
	for _, name := range []string{"", "..", "a/b", "averyveryverylongname0"} {
		if _, err := ThreadRx(name, RxOptions{}); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", name)) {
			t.Errorf("ThreadRx(%q) = %v, want an error naming it", name, err)
		}
	}
	netnstest.SkipIfNotRoot(t)
	if _, err := ThreadRx("nonexistent0", RxOptions{}); err == nil || !strings.Contains(err.Error(), "nonexistent0") {
		t.Errorf("ThreadRx(nonexistent0) = %v, want an error naming it", err)
	}
}

func TestParseCPUMask(t *testing.T) {
	for _, c := range []struct {
		in   string
		cpus []int
		bad  bool
	}{
		{"0", nil, false},
		{"2", []int{1}, false},
		{"00000000,00000003", []int{0, 1}, false},
		{"00000001,00000000", []int{32}, false},
		{"xyz", nil, true},
		{"", nil, true},
	} {
		set, err := parseCPUMask(c.in)
		if (err != nil) != c.bad {
			t.Errorf("parseCPUMask(%q) error %v, want bad=%v", c.in, err, c.bad)
			continue
		}
		if set.Count() != len(c.cpus) {
			t.Errorf("parseCPUMask(%q): %d CPUs, want %v", c.in, set.Count(), c.cpus)
		}
		for _, cpu := range c.cpus {
			if !set.IsSet(cpu) {
				t.Errorf("parseCPUMask(%q): CPU %d not set", c.in, cpu)
			}
		}
	}
}

// TestXDPNDOXmit: a veth takes XDP-redirected frames only while its peer
// can receive them (GRO on), and the answer follows the peer.
func TestXDPNDOXmit(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	netnstest.RequireTool(t, "ethtool")
	a, b := netnstest.New(t, "ndxa"), netnstest.New(t, "ndxb")
	netnstest.Veth(t, a, "xa0", b, "xb0")
	ifi := a.Interface(t, "xa0")
	ask := func() bool {
		t.Helper()
		var ok bool
		if err := a.Do(func() error {
			var err error
			ok, err = XDPNDOXmit(ifi.Index)
			return err
		}); err != nil {
			t.Fatalf("XDPNDOXmit: %v", err)
		}
		return ok
	}
	b.Exec(t, "ethtool", "-K", "xb0", "gro", "off")
	if ask() {
		t.Error("xa0 takes redirected frames with its peer's GRO off")
	}
	b.Exec(t, "ethtool", "-K", "xb0", "gro", "on")
	if !ask() {
		t.Error("xa0 does not take redirected frames with its peer's GRO on")
	}
}
