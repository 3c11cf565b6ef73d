package khook

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// sysctls reads the recommended settings' current values.
func recommendedValues(t *testing.T, h *Hooks) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, s := range RecommendedSysctls("d0") {
		v, err := h.Sysctl(s.Name)
		if err != nil {
			t.Fatal(err)
		}
		out[s.Name] = v
	}
	return out
}

func wantValues(t *testing.T, h *Hooks, what string, want map[string]string) {
	t.Helper()
	for k, v := range recommendedValues(t, h) {
		if want[k] != v {
			t.Errorf("%s: %s = %s, want %s", what, k, v, want[k])
		}
	}
}

// TestSysctlStateSurvivesKill: the values before uvsd changed them are on
// disk before the change, so that what a killed uvsd (a Hooks never
// Removed) changed is put back by uvsd --cleanup (RestoreSysctls), and by
// the next uvsd before it records the values as its own originals — not
// the dead one's zeros.
func TestSysctlStateSurvivesKill(t *testing.T) {
	tp := newTopo(t)
	dir := t.TempDir()
	opts := Options{NetNS: tp.dir.h, StateDir: dir}
	probe := New(opts)
	orig := recommendedValues(t, probe)
	for k, v := range orig {
		if v != "1" {
			t.Fatalf("%s = %s in a fresh namespace, want the kernel's 1", k, v)
		}
	}
	zeros := map[string]string{}
	for k := range orig {
		zeros[k] = "0"
	}

	killed := New(opts)
	if err := killed.SetSysctls(RecommendedSysctls("d0")...); err != nil {
		t.Fatal(err)
	}
	wantValues(t, probe, "set", zeros)
	files, _ := filepath.Glob(filepath.Join(dir, "sysctl-*.json"))
	if len(files) != 1 {
		t.Fatalf("state files %v, want one", files)
	}
	var st stateFile
	if b, err := os.ReadFile(files[0]); err != nil || json.Unmarshal(b, &st) != nil || len(st.Sysctls) != 3 || st.Sysctls[0].Value != "1" {
		t.Fatalf("state file %s: %+v, %v", files[0], st, err)
	}

	// uvsd --cleanup.
	if err := RestoreSysctls(tp.dir.h, dir); err != nil {
		t.Fatal(err)
	}
	wantValues(t, probe, "after RestoreSysctls", orig)
	if files, _ := filepath.Glob(filepath.Join(dir, "*")); len(files) != 0 {
		t.Fatalf("files left: %v", files)
	}
	if err := RestoreSysctls(tp.dir.h, dir); err != nil {
		t.Fatalf("RestoreSysctls with nothing to restore: %v", err)
	}

	// Killed again; this time a new uvsd starts and stops.
	killed = New(opts)
	if err := killed.SetSysctls(RecommendedSysctls("d0")...); err != nil {
		t.Fatal(err)
	}
	next := New(opts)
	if err := next.SetSysctls(RecommendedSysctls("d0")...); err != nil {
		t.Fatal(err)
	}
	wantValues(t, probe, "the next uvsd running", zeros)
	if err := next.Remove(); err != nil {
		t.Fatal(err)
	}
	wantValues(t, probe, "the next uvsd stopped", orig)
	if files, _ := filepath.Glob(filepath.Join(dir, "*")); len(files) != 0 {
		t.Fatalf("files left: %v", files)
	}
}

// TestSysctlStateLiveOwner: while a uvsd owning the table lives, neither a
// second one nor uvsd --cleanup touches the sysctls it changed.
func TestSysctlStateLiveOwner(t *testing.T) {
	tp := newTopo(t)
	dir := t.TempDir()
	opts := Options{NetNS: tp.dir.h, StateDir: dir}
	live := New(opts)
	t.Cleanup(func() { _ = live.Remove() })
	if err := live.SetSysctls(RecommendedSysctls("d0")...); err != nil {
		t.Fatal(err)
	}
	if err := live.Apply(baseSpec()); err != nil {
		t.Fatal(err)
	}
	second := New(opts)
	if err := second.SetSysctls(Sysctl{Name: "net.ipv4.conf.d0.send_redirects", Value: "1"}); !errors.Is(err, ErrTableBusy) {
		t.Fatalf("a second Hooks' SetSysctls: %v, want ErrTableBusy", err)
	}
	if err := RestoreSysctls(tp.dir.h, dir); !errors.Is(err, ErrTableBusy) {
		t.Fatalf("RestoreSysctls while the owner lives: %v, want ErrTableBusy", err)
	}
	if v, _ := live.Sysctl("net.ipv4.conf.d0.send_redirects"); v != "0" {
		t.Fatalf("send_redirects %s, want the live uvsd's 0", v)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "sysctl-*.json")); len(files) != 1 {
		t.Fatalf("state files %v, want the live uvsd's", files)
	}
}

// TestSysctlStateRejectsForeignPaths: a state file naming anything but a
// /proc/sys/net file writes nothing.
func TestSysctlStateRejectsForeignPaths(t *testing.T) {
	tp := newTopo(t)
	dir := t.TempDir()
	h := New(Options{NetNS: tp.dir.h, StateDir: dir})
	path, _, err := h.statePath()
	if err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(stateFile{Sysctls: []Sysctl{{Name: victim, Value: "x"}}})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := RestoreSysctls(tp.dir.h, dir); err == nil {
		t.Fatal("a state file naming a file outside /proc/sys/net was accepted")
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Fatalf("victim now %q", b)
	}
}

// TestSysctlStateDeadNamespace: the kernel gives a dead namespace's inode
// number to the next namespace it creates, so the state file a uvsd
// killed in a namespace that is gone now names a new namespace too. Its
// cookie says it is not the new namespace's: deleted, nothing restored —
// neither by uvsd --cleanup nor by the next uvsd, which records the new
// namespace's own values as the originals.
func TestSysctlStateDeadNamespace(t *testing.T) {
	tp := newTopo(t)
	dir := t.TempDir()
	opts := Options{NetNS: tp.dir.h, StateDir: dir}
	probe := New(opts)
	orig := recommendedValues(t, probe)
	path, ino, err := probe.statePath()
	if err != nil {
		t.Fatal(err)
	}
	var cookie uint64
	if err := inNetNS(tp.dir.h, func() (err error) { cookie, err = NetNSCookie(); return err }); err != nil {
		t.Fatal(err)
	}
	var self uint64
	if self, err = NetNSCookie(); err != nil || self == cookie || cookie == 0 {
		t.Fatalf("cookies: this namespace's %d, the test namespace's %d (%v): want two different ones", self, cookie, err)
	}
	dead := func() {
		t.Helper()
		var st stateFile
		st.NetNS, st.Cookie, st.PID = ino, cookie+1000, 1
		for _, s := range RecommendedSysctls("d0") {
			p, err := sysctlPath(s.Name)
			if err != nil {
				t.Fatal(err)
			}
			st.Sysctls = append(st.Sysctls, Sysctl{Name: p, Value: "0"})
		}
		b, _ := json.Marshal(st)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	dead()
	if err := RestoreSysctls(tp.dir.h, dir); err != nil {
		t.Fatal(err)
	}
	wantValues(t, probe, "uvsd --cleanup over a dead namespace's file", orig)
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the dead namespace's file stays: %v", err)
	}

	dead()
	next := New(opts)
	if err := next.SetSysctls(RecommendedSysctls("d0")...); err != nil {
		t.Fatal(err)
	}
	var st stateFile
	if b, err := os.ReadFile(path); err != nil || json.Unmarshal(b, &st) != nil || st.Cookie != cookie || len(st.Sysctls) != 3 || st.Sysctls[0].Value != "1" {
		t.Fatalf("the next uvsd's state file: %+v, %v (want cookie %d, originals 1)", st, err, cookie)
	}
	if err := next.Remove(); err != nil {
		t.Fatal(err)
	}
	wantValues(t, probe, "the next uvsd stopped", orig)
}
