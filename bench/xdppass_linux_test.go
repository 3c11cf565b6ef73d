package bench

import (
	"strings"
	"testing"

	"github.com/uvs-lb/uvs/internal/netnstest"
)

// TestXDPPassTurnsPeerTSOOff: attachXDPPass attaches in native mode, and
// while it is attached the veth's peer has TSO off — the effect
// kernel-forward-xdp measures; closing the attachment detaches the program
// and the peer's TSO comes back.
func TestXDPPassTurnsPeerTSOOff(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	netnstest.RequireTool(t, "ethtool")
	a, b := netnstest.New(t, "xpa"), netnstest.New(t, "xpb")
	netnstest.Veth(t, a, "c0", b, "d0")
	a.LinkUp(t, "c0")
	b.LinkUp(t, "d0")
	tso := func() string {
		for _, l := range strings.Split(a.Exec(t, "ethtool", "-k", "c0"), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "tcp-segmentation-offload: "); ok {
				return v
			}
		}
		t.Fatal("ethtool -k c0: no tcp-segmentation-offload line")
		return ""
	}
	if got := tso(); got != "on" {
		t.Fatalf("peer's TSO before: %q, want on", got)
	}
	l, err := attachXDPPass(b.Name, "d0")
	if err != nil {
		t.Fatal(err)
	}
	if out := b.IP(t, "-d", "link", "show", "d0"); !strings.Contains(out, "xdp ") && !strings.Contains(out, "xdpdrv") {
		t.Errorf("d0 shows no native XDP program:\n%s", out)
	}
	if got := tso(); got != "off" {
		t.Errorf("peer's TSO with XDP on d0: %q, want off", got)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if out := b.IP(t, "link", "show", "d0"); strings.Contains(out, "xdp") {
		t.Errorf("d0 still has an XDP program after Close:\n%s", out)
	}
	if got := tso(); got != "on" {
		t.Errorf("peer's TSO after Close: %q, want on", got)
	}
}
