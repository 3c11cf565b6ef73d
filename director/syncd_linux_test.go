package director

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/uvs-lb/uvs/connsync"
	"github.com/uvs-lb/uvs/connsync/wire"
	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/wait"
	"github.com/uvs-lb/uvs/ipvsadm"
)

// TestSyncDaemonsNetns wires two directors' sync daemons as uvsd does
// (connsyncFactory): the master drains the director's tap, the backup
// applies into the other director's connection table against its
// snapshot; both sit in their own namespace, joined by a veth pair.
func TestSyncDaemonsNetns(t *testing.T) {
	a, b := netnstest.New(t, "sdm"), netnstest.New(t, "sdb")
	netnstest.Veth(t, a, "s0", b, "s1")
	a.AddrAdd(t, "s0", "198.18.6.1/24")
	b.AddrAdd(t, "s1", "198.18.6.2/24")
	rules := filepath.Join(t.TempDir(), "rules")
	if err := os.WriteFile(rules, []byte("-A -t 192.168.0.239:8898 -s rr -p 50\n-a -t 192.168.0.239:8898 -r 192.168.0.10:8898 -g -w 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	director := func(ns *netnstest.NS) *Director {
		d, err := New(Config{RulesFile: rules}, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		d.tap = connsync.NewTap()
		d.syncd = newSyncDaemons(ctx, connsyncFactory{d: d}, zap.NewNop(), d.daemonsChanged)
		t.Cleanup(d.syncd.stopAll)
		return d
	}
	start := func(ns *netnstest.NS, d *Director, c ipvsadm.DaemonConfig) error {
		return ns.Do(func() error { return d.syncd.StartDaemon(c) })
	}
	m, bk := director(a), director(b)
	ring := m.tap.NewRing()
	if err := start(b, bk, ipvsadm.DaemonConfig{State: "backup", McastIfn: "s1", SyncID: 51}); err != nil {
		t.Fatal(err)
	}
	if err := start(a, m, ipvsadm.DaemonConfig{State: "master", McastIfn: "s0", SyncID: 51}); err != nil {
		t.Fatal(err)
	}
	if err := start(a, m, ipvsadm.DaemonConfig{State: "master", McastIfn: "s0"}); errnoOf(err) != syscall.EEXIST {
		t.Errorf("second master: %v", err)
	}
	if err := start(a, m, ipvsadm.DaemonConfig{State: "backup", McastIfn: "nope0"}); errnoOf(err) != syscall.ENODEV {
		t.Errorf("unknown interface: %v", err)
	}
	wait.For(t, 5*time.Second, m.tap.Sending, "the master to report Sending on the tap")
	var b1 strings.Builder
	if err := ipvsadm.FormatDaemon(&b1, m.syncd.Daemons()); err != nil {
		t.Fatal(err)
	}
	if want := "master sync daemon (mcast=s0, syncid=51, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"; b1.String() != want {
		t.Errorf("-L --daemon: %q, want %q", b1.String(), want)
	}

	e := wire.Entry{Proto: syscall.IPPROTO_TCP, Flags: wire.FwdDRoute, State: wire.TCPEstablished, Timeout: 900,
		CAddr: wire.Addr16(netip.MustParseAddr("192.168.0.77")), CPort: 40000,
		VAddr: wire.Addr16(netip.MustParseAddr("192.168.0.239")), VPort: 8898,
		DAddr: wire.Addr16(netip.MustParseAddr("192.168.0.10")), DPort: 8898}
	if !ring.Push(&e) {
		t.Fatal("ring full")
	}
	client := netip.MustParseAddrPort("192.168.0.77:40000")
	conns := func() []conntrack.Listing { return bk.Conns.Snapshot(int64(time.Since(bk.epoch)), nil) }
	wait.For(t, 10*time.Second, func() bool {
		return slices.ContainsFunc(conns(), func(l conntrack.Listing) bool { return l.Client == client })
	}, "the synced connection in the backup's table: %v", wait.Lazy(func() any { return conns() }))
	for _, l := range conns() {
		if l.Client == client && (l.Real != netip.MustParseAddrPort("192.168.0.10:8898") || l.Dest == nil) {
			t.Errorf("synced connection %+v: want bound to the backup's real server 192.168.0.10:8898", l)
		}
	}
	if err := m.syncd.StopDaemon("master"); err != nil {
		t.Fatal(err)
	}
	if m.tap.Sending() {
		t.Error("the tap still reports Sending after the master stopped")
	}
}
