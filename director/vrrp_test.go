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

// TestOwnershipStandby: with local delivery, the services of a standby
// VIP (and MARK targets that are one) stay owned — nothing changes in the
// hooks when keepalived moves the VIP — but the VIP is no neighbour (the
// master answers ARP); without local delivery they are left out of what
// uvsd owns, so that the kernel gets them; under backup_only nothing is.
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
		s, err := d.ownershipSet()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tcp := spec.ProtoTCP
	vip := ownership.Endpoint{Addr: a("192.168.0.239"), Proto: tcp, Port: 8898}
	other := ownership.Endpoint{Addr: a("10.9.0.101"), Proto: tcp, Port: 80}
	mark := ownership.Endpoint{Addr: a("192.168.0.239"), Proto: tcp, Port: 443}
	standby := &dataplane.Host{Standby: map[[16]byte]bool{a("192.168.0.239").As16(): true}}

	for _, local := range []bool{true, false} {
		d.env = nil
		if local {
			d.env = &dataplane.Env{LocalNode: nopLocalNode{}}
		}
		s := compute(&dataplane.Host{})
		for _, e := range []ownership.Endpoint{vip, other, mark} {
			if !slices.Contains(s.Services, e) {
				t.Errorf("local delivery %v, serving: services %v lack %v", local, s.Services, e)
			}
		}
		if !slices.Contains(s.Neighbours, a("192.168.0.239")) {
			t.Errorf("local delivery %v, serving: neighbours %v lack the VIP", local, s.Neighbours)
		}
		s = compute(standby)
		owned := slices.Contains(s.Services, vip) && slices.Contains(s.Services, mark)
		none := !slices.Contains(s.Services, vip) && !slices.Contains(s.Services, mark)
		if !slices.Contains(s.Services, other) || (local && !owned) || (!local && !none) {
			t.Errorf("local delivery %v, standby 192.168.0.239: services %v", local, s.Services)
		}
		if local && !slices.Contains(s.VIPs, a("192.168.0.239")) {
			t.Errorf("standby VIP not among the VIPs whose ICMP errors uvsd takes: %v", s.VIPs)
		}
		if slices.Contains(s.Neighbours, a("192.168.0.239")) {
			t.Errorf("local delivery %v: standby VIP among the neighbours uvsd answers for: %v", local, s.Neighbours)
		}
		s = compute(&dataplane.Host{BackupOnly: true, Standby: standby.Standby})
		if len(s.Services) != 0 || len(s.NATReplies) != 0 {
			t.Errorf("local delivery %v, backup_only: services %v, NAT replies %v; want none", local, s.Services, s.NATReplies)
		}
	}
}

type nopLocalNode struct{}

func (nopLocalNode) Deliver([]byte) error { return nil }

// fakeAddrs is an addrWatcher over a map the test changes.
type fakeAddrs struct {
	mu      sync.Mutex
	present map[heldAddr]bool
	listErr error
	changed chan func()
	events  chan func([]addrEvent)
	lists   int
}

func (f *fakeAddrs) set(m map[heldAddr]bool) {
	f.mu.Lock()
	f.present = m
	f.mu.Unlock()
}

func (f *fakeAddrs) List() (map[heldAddr]bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	if f.listErr != nil {
		return nil, f.listErr
	}
	return copyHeld(f.present), nil
}

func copyHeld(m map[heldAddr]bool) map[heldAddr]bool {
	out := map[heldAddr]bool{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Watch hands the test a function reporting a change without events
// (changed), and, when events is set, the one taking events.
func (f *fakeAddrs) Watch(ctx context.Context, changed func([]addrEvent)) error {
	f.changed <- func() { changed(nil) }
	if f.events != nil {
		f.events <- changed
	}
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

// TestVRRPEventFlip: an address event for a followed VIP flips the
// workers' Host.Standby at once, from the event alone (no list of the
// addresses first), and logs the role change; an event about another
// address changes nothing.
func TestVRRPEventFlip(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	d, err := New(Config{VRRP: vrrpConf("")}, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	fa := &fakeAddrs{present: held("10.1.0.1", "eth1"), changed: make(chan func(), 1), events: make(chan func([]addrEvent), 1)}
	run, err := d.followVRRP(fa)
	if err != nil {
		t.Fatal(err)
	}
	// What refreshHost published before (its own fields must survive).
	d.host.Store(&dataplane.Host{Ifaces: map[int]dataplane.Iface{2: {Index: 2, Name: "eth0"}}, Standby: d.standby})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go run(ctx)
	<-fa.changed
	events := <-fa.events
	a := netip.MustParseAddr
	vip := a("192.168.0.239").As16()
	if !d.host.Load().Standby[vip] {
		t.Fatalf("start: 192.168.0.239 not standby: %v", d.host.Load().Standby)
	}
	// The list is left unchanged, so that only the event can flip.
	fa.mu.Lock()
	fa.listErr = errors.New("not listed")
	fa.mu.Unlock()
	events([]addrEvent{{heldAddr: heldAddr{addr: a("10.0.0.7"), dev: "eth0"}, added: true}})
	if h := d.host.Load(); !h.Standby[vip] {
		t.Fatalf("an unfollowed address flipped the standby set: %v", h.Standby)
	}
	events([]addrEvent{{heldAddr: heldAddr{addr: a("192.168.0.239"), dev: "eth0"}, added: true}})
	h := d.host.Load()
	if h.Standby[vip] || !h.Standby[a("10.1.0.2").As16()] {
		t.Fatalf("after the add event: standby %v, want only 10.1.0.2", h.Standby)
	}
	if _, ok := h.Ifaces[2]; !ok {
		t.Errorf("the flip lost the Host's interfaces: %v", h.Ifaces)
	}
	if !slices.ContainsFunc(logs.All(), func(e observer.LoggedEntry) bool {
		return e.Message == "VRRP instance VI_1: MASTER (192.168.0.239 added on eth0)"
	}) {
		t.Errorf("no MASTER line from the event")
	}
	// Same VIP on another device: not the followed one.
	events([]addrEvent{{heldAddr: heldAddr{addr: a("192.168.0.239"), dev: "lo"}, added: false}})
	if d.host.Load().Standby[vip] {
		t.Fatal("a removal from another device made the VIP standby")
	}
	events([]addrEvent{{heldAddr: heldAddr{addr: a("192.168.0.239"), dev: "eth0"}, added: false}})
	if !d.host.Load().Standby[vip] {
		t.Fatalf("after the remove event: standby %v", d.host.Load().Standby)
	}
}
