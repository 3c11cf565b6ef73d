package director

import (
	"strings"
	"testing"
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
