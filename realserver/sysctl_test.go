package realserver

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"testing"
)

// fakeProc builds a /proc/sys-like tree with the given values.
func fakeProc(t *testing.T, vals map[string]string) ProcSys {
	t.Helper()
	root := t.TempDir()
	for k, v := range vals {
		p := filepath.Join(root, k)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return ProcSys{Root: root}
}

func readAll(t *testing.T, s Sysctls, keys map[string]string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for k := range keys {
		v, err := s.Get(k)
		if err != nil {
			t.Fatalf("get %s: %v", k, err)
		}
		got[k] = v
	}
	return got
}

func TestApplyRestoreSysctls(t *testing.T) {
	before := map[string]string{
		"net/ipv4/conf/all/arp_ignore":     "0",
		"net/ipv4/conf/lo/arp_ignore":      "8",
		"net/ipv4/conf/all/arp_announce":   "2", // already what DR wants
		"net/ipv4/conf/lo/arp_announce":    "0",
		"net/ipv4/conf/all/rp_filter":      "1",
		"net/ipv4/conf/default/rp_filter":  "2",
		"net/ipv4/conf/eth0.100/rp_filter": "1",
	}
	s := fakeProc(t, before)
	saved := map[string]string{}
	if err := ApplySysctls(s, DRSysctls("lo"), saved); err != nil {
		t.Fatal(err)
	}
	// A second application (tun up after dr up) must keep the originals.
	if err := ApplySysctls(s, append(TunSysctls(), Setting{"net/ipv4/conf/eth0.100/rp_filter", "0"}), saved); err != nil {
		t.Fatal(err)
	}
	now := readAll(t, s, before)
	want := map[string]string{
		"net/ipv4/conf/all/arp_ignore": "1", "net/ipv4/conf/lo/arp_ignore": "1",
		"net/ipv4/conf/all/arp_announce": "2", "net/ipv4/conf/lo/arp_announce": "2",
		"net/ipv4/conf/all/rp_filter": "0", "net/ipv4/conf/default/rp_filter": "0",
		"net/ipv4/conf/eth0.100/rp_filter": "0",
	}
	if !maps.Equal(now, want) {
		t.Fatalf("applied %v, want %v", now, want)
	}
	if !maps.Equal(saved, before) {
		t.Fatalf("saved %v, want the originals %v", saved, before)
	}
	// An interface that went away is skipped on restore.
	if err := os.RemoveAll(filepath.Join(s.Root, "net/ipv4/conf/eth0.100")); err != nil {
		t.Fatal(err)
	}
	if err := RestoreSysctls(s, saved); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if len(saved) != 0 {
		t.Fatalf("saved not emptied: %v", saved)
	}
	delete(before, "net/ipv4/conf/eth0.100/rp_filter")
	if got := readAll(t, s, before); !maps.Equal(got, before) {
		t.Fatalf("restored %v, want %v", got, before)
	}
}

func TestApplySysctlsMissingKey(t *testing.T) {
	s := fakeProc(t, map[string]string{"net/ipv4/conf/all/arp_ignore": "0"})
	saved := map[string]string{}
	err := ApplySysctls(s, DRSysctls("nosuch0"), saved)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err %v, want not-exist", err)
	}
	// What was changed before the error is recorded for restore.
	if saved["net/ipv4/conf/all/arp_ignore"] != "0" || len(saved) != 1 {
		t.Fatalf("saved %v", saved)
	}
}

func TestProcSysRejectsBadKeys(t *testing.T) {
	s := fakeProc(t, nil)
	for _, k := range []string{"", "/etc/passwd", "../x", "net/../../x", "net//ipv4"} {
		if _, err := s.Get(k); !errors.Is(err, errBadKey) {
			t.Errorf("Get(%q) = %v, want errBadKey", k, err)
		}
		if err := s.Set(k, "1"); !errors.Is(err, errBadKey) {
			t.Errorf("Set(%q) = %v, want errBadKey", k, err)
		}
	}
}
