package ipvsadm

import "testing"

func TestProgPersonality(t *testing.T) {
	for _, c := range []struct {
		argv0 string
		p     Personality
		name  string
	}{
		{"ipvsadm", AsAdm, "ipvsadm"},
		{"/usr/local/bin/uvsadm", AsAdm, "uvsadm"},
		{"", AsAdm, "uvsadm"},
		{"ipvsadm-save", AsSave, "ipvsadm"},
		{"/x/uvsadm-restore", AsRestore, "uvsadm"},
		{"-save", AsAdm, "-save"},
	} {
		p, name := ProgPersonality(c.argv0)
		if p != c.p || name != c.name {
			t.Errorf("%q: %v %q, want %v %q", c.argv0, p, name, c.p, c.name)
		}
	}
}
