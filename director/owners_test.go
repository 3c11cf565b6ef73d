package director

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.uber.org/zap"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/ownership"
	"github.com/uvs-lb/uvs/spec"
)

// TestOwnershipInput checks what the director hands ownership.Compute: the
// rules' services, the MARK targets, the host addresses, the route
// sources and the default local port range.
func TestOwnershipInput(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules")
	if err := os.WriteFile(rules, []byte(`-A -t 10.9.0.100:80 -s rr
-a -t 10.9.0.100:80 -r 10.9.0.3:8080 -m -w 1
-A -t 10.9.0.101:80 -s rr
-a -t 10.9.0.101:80 -r 10.9.0.4:80 -b -w 1
-P -t 10.9.0.101:80 -z 10.9.0.200
-A -f 7 -s rr
-a -f 7 -r 10.9.0.5:0 -m -w 1
`), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := New(Config{RulesFile: rules}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr
	d.host.Store(&dataplane.Host{Local: map[[16]byte]bool{a("10.9.0.1").As16(): true, a("10.9.0.100").As16(): true}})
	d.markTargets.Store(&[]markTarget{{mark: 7, addr: a("10.9.0.102"), proto: spec.ProtoTCP, ports: []uint16{443}}})
	d.routeSources = []netip.Addr{a("10.9.0.1")}
	s, err := ownership.Compute(d.ownershipInput())
	if err != nil {
		t.Fatal(err)
	}
	tcp := spec.ProtoTCP
	for _, e := range []ownership.Endpoint{{Addr: a("10.9.0.100"), Proto: tcp, Port: 80}, {Addr: a("10.9.0.101"), Proto: tcp, Port: 80}, {Addr: a("10.9.0.102"), Proto: tcp, Port: 443}} {
		if !slices.Contains(s.Services, e) {
			t.Errorf("services %v lack %v", s.Services, e)
		}
	}
	if want := []ownership.Endpoint{{Addr: a("10.9.0.3"), Proto: tcp, Port: 8080}, {Addr: a("10.9.0.5"), Proto: tcp, Port: 443}}; !slices.Equal(s.NATReplies, want) {
		t.Errorf("NAT replies %v, want %v", s.NATReplies, want)
	}
	for _, la := range []string{"10.9.0.1", "10.9.0.200"} {
		r := ownership.PortRange{Addr: a(la), Proto: tcp, First: d.cfg.LocalPortMin, Last: d.cfg.LocalPortMax}
		if !slices.Contains(s.LocalRanges, r) {
			t.Errorf("local ranges %v lack %v", s.LocalRanges, r)
		}
	}
	if want := []netip.Addr{a("10.9.0.101"), a("10.9.0.102")}; !slices.Equal(s.Neighbours, want) {
		t.Errorf("neighbours %v, want %v (the VIP on a director interface is the kernel's)", s.Neighbours, want)
	}
	if want := []netip.Addr{a("10.9.0.1"), a("10.9.0.100")}; !slices.Equal(s.Local, want) {
		t.Errorf("local %v, want %v", s.Local, want)
	}
}
