package sysctls

import (
	"fmt"
	"strings"
	"testing"

	"github.com/uvs-lb/uvs/connsync"
	"github.com/uvs-lb/uvs/internal/fuzzwatch"
)

func TestSysctlsSet(t *testing.T) {
	s := Default()
	for _, arg := range []string{"backup_only=1", "net.ipv4.vs.sync_threshold=5 100", "net/ipv4/vs/sync_persist_mode=1", "sync_version = 0"} {
		if err := s.Set(arg); err != nil {
			t.Fatalf("Set(%q): %v", arg, err)
		}
	}
	want := Sysctls{BackupOnly: true, Policy: connsync.Policy{Threshold: 5, Period: 100, PersistMode: true, Version: 0}}
	if s != want {
		t.Errorf("got %+v, want %+v", s, want)
	}
	if err := s.Set("sync_threshold=3 0"); err != nil || s.Policy.Threshold != 3 || s.Policy.Period != 0 {
		t.Errorf("period 0 (threshold alone): %v %+v", err, s.Policy)
	}
	before := s
	for arg, name := range map[string]string{
		"backup_only=2":           "backup_only",
		"backup_only":             "backup_only",
		"sync_threshold=50 3":     "sync_threshold",
		"sync_threshold=3":        "sync_threshold",
		"sync_threshold=-1 50":    "sync_threshold",
		"sync_threshold=3 50 7":   "sync_threshold",
		"sync_version=2":          "sync_version",
		"sync_persist_mode=yes":   "sync_persist_mode",
		"sync_refresh_period=0":   "sync_refresh_period",
		"net.ipv4.vs.conntrack=1": "net.ipv4.vs.conntrack",
	} {
		err := s.Set(arg)
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("Set(%q) = %v, want an error naming %s", arg, err, name)
		}
		if s != before {
			t.Errorf("Set(%q) changed the sysctls: %+v", arg, s)
		}
	}
}

// FuzzSysctlsSet: a bad NAME=VALUE changes nothing; a good one leaves a
// policy connsync accepts.
func FuzzSysctlsSet(f *testing.F) {
	for _, s := range []string{"backup_only=1", "sync_threshold=3 50", "sync_threshold=50 3", "net.ipv4.vs.sync_version=0",
		"net/ipv4/vs/sync_persist_mode=1", "sync_threshold= 0 0", "=", "x", "sync_threshold=4294967295 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("%d bytes %.200q", len(arg), arg) })()
		s := Default()
		before := s
		if err := s.Set(arg); err != nil {
			if s != before {
				t.Fatalf("Set(%q) failed (%v) but changed %+v", arg, err, s)
			}
			return
		}
		if err := s.Policy.Validate(); err != nil {
			t.Fatalf("Set(%q) accepted a policy connsync refuses: %v", arg, err)
		}
	})
}
