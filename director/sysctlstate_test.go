package director

import (
	"strings"
	"testing"

	"go.uber.org/zap"
)

// TestSysctlsSloppy: uvsd --sysctl sloppy_tcp=1 / sloppy_sctp=1, by short
// or full name; bad values are errors naming the sysctl and change nothing.
func TestSysctlsSloppy(t *testing.T) {
	s := DefaultSysctls()
	if s.SloppyTCP || s.SloppySCTP {
		t.Fatalf("defaults %+v: sloppy_tcp and sloppy_sctp are off in the kernel", s)
	}
	for _, arg := range []string{"sloppy_tcp=1", "net.ipv4.vs.sloppy_sctp=1"} {
		if err := s.Set(arg); err != nil {
			t.Fatalf("Set(%q): %v", arg, err)
		}
	}
	if !s.SloppyTCP || !s.SloppySCTP {
		t.Fatalf("after setting both: %+v", s)
	}
	before := s
	for _, arg := range []string{"sloppy_tcp=2", "sloppy_sctp=on", "net/ipv4/vs/sloppy_tcp"} {
		err := s.Set(arg)
		if err == nil || !strings.Contains(err.Error(), "sloppy_") {
			t.Errorf("Set(%q) = %v, want an error naming the sysctl", arg, err)
		}
		if s != before {
			t.Errorf("Set(%q) changed the sysctls: %+v", arg, s)
		}
	}
	if err := s.Set("net/ipv4/vs/sloppy_tcp=0"); err != nil || s.SloppyTCP {
		t.Fatalf("sloppy_tcp=0: %v %+v", err, s)
	}
}

// TestSysctlsDefense: drop_entry, drop_packet, secure_tcp (levels 0-3),
// amemthresh and am_droprate reach conntrack.Defense; bad values are
// errors naming the sysctl and change nothing; the table refuses an
// amemthresh above its capacity at start.
func TestSysctlsDefense(t *testing.T) {
	s := DefaultSysctls()
	for _, arg := range []string{"drop_entry=1", "net.ipv4.vs.drop_packet=2", "secure_tcp=3", "amemthresh=1024", "am_droprate=5"} {
		if err := s.Set(arg); err != nil {
			t.Fatalf("Set(%q): %v", arg, err)
		}
	}
	d := s.Defense
	if d.DropEntry != 1 || d.DropPacket != 2 || d.SecureTCP != 3 || d.AmemThresh != 1024 || d.AmDropRate != 5 {
		t.Fatalf("defense %+v", d)
	}
	before := s
	for _, arg := range []string{"drop_entry=4", "secure_tcp=-1", "amemthresh=x", "drop_packet="} {
		err := s.Set(arg)
		if err == nil || !strings.Contains(err.Error(), strings.SplitN(arg, "=", 2)[0]) {
			t.Errorf("Set(%q) = %v, want an error naming the sysctl", arg, err)
		}
		if s != before {
			t.Errorf("Set(%q) changed the sysctls: %+v", arg, s)
		}
	}
	s.Defense.AmemThresh = 1 << 20
	if _, err := New(Config{ConnCapacity: 1024, Sysctls: &s, LocalPortMin: 61000, LocalPortMax: 65535}, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "amemthresh") {
		t.Errorf("New with amemthresh above the capacity: %v, want an error naming amemthresh", err)
	}
}
