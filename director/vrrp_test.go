package director

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/keepalived"
	"github.com/uvs-lb/uvs/ownership"
	"github.com/uvs-lb/uvs/spec"
)

// vrrpConf is what the keepalived parser reads from
//
//	vrrp_instance VI_1 { interface eth0; virtual_router_id 51; priority 100;
//	    virtual_ipaddress { 192.168.0.239 } }
//	vrrp_instance VI_2 { interface eth0; virtual_router_id 52; priority 255;
//	    virtual_ipaddress { 10.1.0.1/24 dev eth1; 10.1.0.2 } }
//
// with syncVI, when set, as global_defs' "lvs_sync_daemon eth1 syncVI".
func vrrpConf(syncVI string) *keepalived.Config {
	p := netip.MustParsePrefix
	cfg := &keepalived.Config{VRRP: []*keepalived.VRRPInstance{
		{Name: "VI_1", Interface: "eth0", VRID: 51, Priority: 100, State: "MASTER",
			VIPs: []keepalived.VRRPAddress{{Prefix: p("192.168.0.239/32")}}},
		{Name: "VI_2", Interface: "eth0", VRID: 52, Priority: 255,
			VIPs: []keepalived.VRRPAddress{{Prefix: p("10.1.0.1/24"), Dev: "eth1"}, {Prefix: p("10.1.0.2/32")}}},
	}}
	if syncVI != "" {
		cfg.SyncDaemon = &keepalived.SyncDaemon{Interface: "eth1", Instance: syncVI, SyncID: -1}
	}
	return cfg
}

func held(pairs ...string) map[heldAddr]bool {
	m := map[heldAddr]bool{}
	for i := 0; i < len(pairs); i += 2 {
		m[heldAddr{addr: netip.MustParseAddr(pairs[i]), dev: pairs[i+1]}] = true
	}
	return m
}

func TestVRRPRoles(t *testing.T) {
	r := newVRRPRoles(vrrpConf(""))
	a := netip.MustParseAddr

	// Start: VI_1's VIP is on eth0 (MASTER); VI_2 holds one of two.
	ch, taken := r.update(held("192.168.0.239", "eth0", "10.1.0.1", "eth1", "10.0.0.5", "eth0"))
	want := []string{
		"VRRP instance VI_1: MASTER (192.168.0.239 on eth0)",
		"VRRP instance VI_2: BACKUP (10.1.0.2 not on eth0)",
	}
	if got := changeStrings(ch); !slices.Equal(got, want) {
		t.Errorf("start: %q, want %q", got, want)
	}
	if len(taken) != 1 || taken[0].addr != a("192.168.0.239") {
		t.Errorf("start: taken %v, want VI_1's VIP", taken)
	}
	if sb := r.standby(); len(sb) != 1 || !sb[a("10.1.0.2").As16()] {
		t.Errorf("standby %v, want only 10.1.0.2", sb)
	}

	// Nothing changed: nothing reported.
	if ch, taken := r.update(held("192.168.0.239", "eth0", "10.1.0.1", "eth1")); len(ch) != 0 || len(taken) != 0 {
		t.Errorf("no change: %v %v", ch, taken)
	}

	// The VIP on the wrong device does not count.
	ch, _ = r.update(held("192.168.0.239", "eth1", "10.1.0.1", "eth1"))
	if got := changeStrings(ch); !slices.Equal(got, []string{"VRRP instance VI_1: BACKUP (192.168.0.239 removed from eth0)"}) {
		t.Errorf("moved to eth1: %q", got)
	}
	if !r.standby()[a("192.168.0.239").As16()] || r.isMaster("VI_1") {
		t.Error("VI_1's VIP should be on standby")
	}

	// Both: VI_2 becomes MASTER with its last VIP, VI_1 again.
	ch, taken = r.update(held("192.168.0.239", "eth0", "10.1.0.1", "eth1", "10.1.0.2", "eth0"))
	want = []string{
		"VRRP instance VI_1: MASTER (192.168.0.239 added on eth0)",
		"VRRP instance VI_2: MASTER (10.1.0.2 added on eth0)",
	}
	if got := changeStrings(ch); !slices.Equal(got, want) {
		t.Errorf("takeover: %q, want %q", got, want)
	}
	if len(taken) != 2 {
		t.Errorf("taken %v, want the two VIPs added", taken)
	}
	if r.standby() != nil {
		t.Errorf("standby %v, want none", r.standby())
	}

	// Losing one VIP of two: BACKUP, that VIP on standby, the other not.
	ch, _ = r.update(held("192.168.0.239", "eth0", "10.1.0.2", "eth0"))
	if got := changeStrings(ch); !slices.Equal(got, []string{"VRRP instance VI_2: BACKUP (10.1.0.1 removed from eth1)"}) {
		t.Errorf("partial loss: %q", got)
	}
	if sb := r.standby(); len(sb) != 1 || !sb[a("10.1.0.1").As16()] {
		t.Errorf("standby %v, want only 10.1.0.1", sb)
	}
}

func changeStrings(cs []roleChange) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.String()
	}
	return out
}

func TestNewVRRPRolesNone(t *testing.T) {
	if r := newVRRPRoles(nil); r != nil {
		t.Error("no configuration: want no follower")
	}
	if r := newVRRPRoles(&keepalived.Config{}); r != nil {
		t.Error("no instance: want no follower")
	}
}

// TestOwnershipStandby: the services of a standby VIP (and MARK targets
// that are one) are left out of what uvsd owns; under backup_only
// nothing is.
func TestOwnershipStandby(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules")
	if err := os.WriteFile(rules, []byte(`-A -t 192.168.0.239:8898 -s rr -p 50
-a -t 192.168.0.239:8898 -r 192.168.0.10:8898 -g -w 1
-A -t 10.9.0.101:80 -s rr
-a -t 10.9.0.101:80 -r 10.9.0.4:80 -m -w 1
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
	d.markTargets.Store(&[]markTarget{{mark: 7, addr: a("192.168.0.239"), proto: spec.ProtoTCP, ports: []uint16{443}}})
	compute := func(h *dataplane.Host) *ownership.Set {
		t.Helper()
		d.host.Store(h)
		s, err := ownership.Compute(d.ownershipInput())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tcp := spec.ProtoTCP
	vip := ownership.Endpoint{Addr: a("192.168.0.239"), Proto: tcp, Port: 8898}
	other := ownership.Endpoint{Addr: a("10.9.0.101"), Proto: tcp, Port: 80}
	mark := ownership.Endpoint{Addr: a("192.168.0.239"), Proto: tcp, Port: 443}

	s := compute(&dataplane.Host{})
	for _, e := range []ownership.Endpoint{vip, other, mark} {
		if !slices.Contains(s.Services, e) {
			t.Errorf("serving: services %v lack %v", s.Services, e)
		}
	}
	s = compute(&dataplane.Host{Standby: map[[16]byte]bool{a("192.168.0.239").As16(): true}})
	if slices.Contains(s.Services, vip) || slices.Contains(s.Services, mark) || !slices.Contains(s.Services, other) {
		t.Errorf("standby 192.168.0.239: services %v, want only %v", s.Services, other)
	}
	if slices.Contains(s.Neighbours, a("192.168.0.239")) {
		t.Errorf("standby VIP among the neighbours uvsd answers for: %v", s.Neighbours)
	}
	s = compute(&dataplane.Host{BackupOnly: true})
	if len(s.Services) != 0 || len(s.NATReplies) != 0 {
		t.Errorf("backup_only: services %v, NAT replies %v; want none", s.Services, s.NATReplies)
	}
}

// fakeAddrs is an addrWatcher over a map the test changes.
type fakeAddrs struct {
	mu      sync.Mutex
	present map[heldAddr]bool
	listErr error
	changed chan func()
}

func (f *fakeAddrs) set(m map[heldAddr]bool) {
	f.mu.Lock()
	f.present = m
	f.mu.Unlock()
}

func (f *fakeAddrs) List() (map[heldAddr]bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.listErr != nil {
		return nil, f.listErr
	}
	return maps(f.present), nil
}

func maps(m map[heldAddr]bool) map[heldAddr]bool {
	out := map[heldAddr]bool{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (f *fakeAddrs) Watch(ctx context.Context, changed func()) error {
	f.changed <- changed
	<-ctx.Done()
	return ctx.Err()
}

// TestFollowVRRP drives a Director's follower with a fake address
// source: the first list sets the roles (logged once each), changes are
// logged once, Host.Standby follows through refreshHost, and the VIPs
// taken over on a device that is not served are queued for GARP.
func TestFollowVRRP(t *testing.T) {
	cfg := vrrpConf("")
	core, logs := observer.New(zap.InfoLevel)
	d, err := New(Config{VRRP: cfg}, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	fa := &fakeAddrs{present: held("10.1.0.1", "eth1"), changed: make(chan func(), 1)}
	if _, err := (&Director{vrrp: d.vrrp, log: d.log}).followVRRP(&fakeAddrs{listErr: errors.New("boom")}); err == nil {
		t.Error("followVRRP: a failing first list should be an error")
	}
	run, err := d.followVRRP(fa)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go run(ctx)
	changed := <-fa.changed

	a := netip.MustParseAddr
	standby, _ := d.haState()
	if !standby[a("192.168.0.239").As16()] || !standby[a("10.1.0.2").As16()] || standby[a("10.1.0.1").As16()] {
		t.Errorf("start: standby %v", standby)
	}
	fa.set(held("10.1.0.1", "eth1", "192.168.0.239", "eth0", "10.1.0.2", "eth0"))
	changed()
	changed() // spurious: nothing more logged
	var lines []string
	for _, e := range logs.All() {
		if strings.HasPrefix(e.Message, "VRRP instance") {
			lines = append(lines, e.Message)
		}
	}
	want := []string{
		"VRRP instance VI_1: BACKUP (192.168.0.239 not on eth0)",
		"VRRP instance VI_2: BACKUP (10.1.0.2 not on eth0)",
		"VRRP instance VI_1: MASTER (192.168.0.239 added on eth0)",
		"VRRP instance VI_2: MASTER (10.1.0.2 added on eth0)",
	}
	if !slices.Equal(lines, want) {
		t.Errorf("log lines:\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	select {
	case <-d.haChanged:
	default:
		t.Error("housekeeping was not asked to apply the roles")
	}
	// refreshHost's Host carries Standby (here: none left).
	d.host.Store(&dataplane.Host{Ifaces: map[int]dataplane.Iface{2: {Index: 2, Name: "eth0"}}})
	standby, _ = d.haState()
	if standby != nil {
		t.Errorf("after takeover: standby %v", standby)
	}
	// 192.168.0.239 and 10.1.0.2 were put on eth0, a served interface:
	// the kernel and keepalived announce them; 10.1.0.1 was held at start
	// on eth1 (not served), but VI_2 was not MASTER then.
	if g := d.takeGARPs(); !slices.Equal(g, nil) {
		t.Errorf("GARPs %v, want none (the VIPs are on the served eth0)", g)
	}
	fa.set(held("192.168.0.239", "eth0", "10.1.0.2", "eth0"))
	changed()
	fa.set(held("192.168.0.239", "eth0", "10.1.0.2", "eth0", "10.1.0.1", "eth1"))
	changed()
	if g := d.takeGARPs(); !slices.Equal(g, []netip.Addr{a("10.1.0.1")}) {
		t.Errorf("GARPs %v, want 10.1.0.1 (taken over on eth1, not served)", g)
	}
}
