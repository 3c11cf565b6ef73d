package director

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/uvs-lb/uvs/control"
	"github.com/uvs-lb/uvs/ipvsadm"
	"github.com/uvs-lb/uvs/keepalived"
)

func runMain(args ...string) (int, string, string) {
	var o, e strings.Builder
	code := Main(args, &o, &e)
	return code, o.String(), e.String()
}

func TestMainSysctlFlag(t *testing.T) {
	for _, arg := range []string{"sync_version=7", "bogus=1"} {
		code, _, errs := runMain("--sysctl", arg, "--check", "--rules", "/dev/null")
		if code != 2 || !strings.Contains(errs, strings.Split(arg, "=")[0]) {
			t.Errorf("--sysctl %s: exit %d, stderr %q; want 2 naming it", arg, code, errs)
		}
	}
	if code, _, errs := runMain("--sysctl", "backup_only=1", "--sysctl", "sync_threshold=3 50", "--check", "--rules", "/dev/null"); code != 0 {
		t.Errorf("good sysctls: exit %d: %s", code, errs)
	}
}

// fakeSync is a syncFactory whose daemons run until stopped.
type fakeSync struct {
	mu      sync.Mutex
	started []string
	fail    error
}

type fakeRunner struct {
	stop chan struct{}
	once sync.Once
}

func (r *fakeRunner) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-r.stop:
	}
	return nil
}

func (r *fakeRunner) Close() error {
	r.once.Do(func() { close(r.stop) })
	return nil
}

func (f *fakeSync) build(cfg ipvsadm.DaemonConfig) (syncRunner, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	f.started = append(f.started, fmt.Sprintf("%s %s %d", cfg.State, cfg.McastIfn, cfg.SyncID))
	return &fakeRunner{stop: make(chan struct{})}, nil
}

func (f *fakeSync) Master(cfg ipvsadm.DaemonConfig, mtu int) (syncRunner, error) { return f.build(cfg) }
func (f *fakeSync) Backup(cfg ipvsadm.DaemonConfig, mtu int) (syncRunner, error) { return f.build(cfg) }

func newFakeDaemons(t *testing.T, f *fakeSync, changed func()) *syncDaemons {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s := newSyncDaemons(ctx, f, zap.NewNop(), changed)
	s.ifMTU = func(name string) (int, error) {
		switch name {
		case "eth0", "eth1":
			return 1500, nil
		case "jumbo":
			return 9000, nil
		}
		return 0, errors.New("no such interface")
	}
	t.Cleanup(s.stopAll)
	return s
}

func errnoOf(err error) syscall.Errno {
	var e *control.Error
	if errors.As(err, &e) {
		return e.Errno
	}
	return 0
}

func TestSyncDaemons(t *testing.T) {
	f := &fakeSync{}
	n := 0
	s := newFakeDaemons(t, f, func() { n++ })

	if err := s.StopDaemon("master"); errnoOf(err) != syscall.ESRCH || err.Error() != "No daemon is running" {
		t.Errorf("stop with none: %v", err)
	}
	if err := s.StartDaemon(ipvsadm.DaemonConfig{State: "backup", McastIfn: "eth9"}); errnoOf(err) != syscall.ENODEV || !strings.Contains(err.Error(), "eth9") {
		t.Errorf("unknown interface: %v", err)
	}
	if err := s.StartDaemon(ipvsadm.DaemonConfig{State: "backup", McastIfn: "jumbo", SyncID: 51}); err != nil {
		t.Fatal(err)
	}
	if err := s.StartDaemon(ipvsadm.DaemonConfig{State: "master", SyncID: 51, McastPort: 9000}); err != nil {
		t.Fatal(err)
	}
	if err := s.StartDaemon(ipvsadm.DaemonConfig{State: "master", McastIfn: "eth1"}); errnoOf(err) != syscall.EEXIST || err.Error() != "Daemon has already run" {
		t.Errorf("second master: %v", err)
	}
	if err := s.StartDaemon(ipvsadm.DaemonConfig{State: "sideways", McastIfn: "eth1"}); errnoOf(err) != syscall.EINVAL {
		t.Errorf("bad state: %v", err)
	}
	var b strings.Builder
	if err := ipvsadm.FormatDaemon(&b, s.Daemons()); err != nil {
		t.Fatal(err)
	}
	want := "master sync daemon (mcast=eth0, syncid=51, maxlen=1472, group=224.0.0.81, port=9000, ttl=1)\n" +
		"backup sync daemon (mcast=jumbo, syncid=51, maxlen=8972, group=224.0.0.81, port=8848, ttl=1)\n"
	if b.String() != want {
		t.Errorf("-L --daemon:\n%s\nwant\n%s", b.String(), want)
	}
	if !s.backupRunning() {
		t.Error("backupRunning: false with a backup daemon")
	}
	if err := s.StopDaemon("backup"); err != nil {
		t.Fatal(err)
	}
	if s.backupRunning() {
		t.Error("backupRunning: true after stopping it")
	}
	if err := s.StopDaemon("backup"); errnoOf(err) != syscall.ESRCH {
		t.Errorf("second stop: %v", err)
	}
	if n != 3 {
		t.Errorf("changed called %d times, want 3 (two starts, one stop)", n)
	}
	f.fail = errors.New("socket: permission denied")
	if err := s.StartDaemon(ipvsadm.DaemonConfig{State: "backup", McastIfn: "eth1"}); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("factory failure: %v", err)
	}
	if got := s.Daemons(); len(got) != 1 || got[0].State != "master" {
		t.Errorf("after a failed start: %v", got)
	}
	s.stopAll()
	if got := s.Daemons(); len(got) != 0 {
		t.Errorf("after stopAll: %v", got)
	}
	if err := s.StartDaemon(ipvsadm.DaemonConfig{State: "backup", McastIfn: "eth1"}); err == nil {
		t.Error("start after stopAll: want an error")
	}
}

func TestFillDaemonDefaults(t *testing.T) {
	for _, c := range []struct {
		in   ipvsadm.DaemonConfig
		mtu  int
		want uint16
	}{
		{ipvsadm.DaemonConfig{State: "master"}, 9000, 1472},
		{ipvsadm.DaemonConfig{State: "backup"}, 1400, 1472},
		{ipvsadm.DaemonConfig{State: "backup"}, 9000, 8972},
		{ipvsadm.DaemonConfig{State: "backup", SyncMaxLen: 100}, 1500, 1024},
		{ipvsadm.DaemonConfig{State: "master", SyncMaxLen: 100}, 1500, 100},
		{ipvsadm.DaemonConfig{State: "master", SyncMaxLen: 65535}, 1500, 65507},
		{ipvsadm.DaemonConfig{State: "backup", McastGroup: netip.MustParseAddr("ff02::81")}, 1500, 1452},
	} {
		got := fillDaemonDefaults(c.in, c.mtu)
		if got.SyncMaxLen != c.want || got.McastPort != 8848 || got.McastTTL != 1 || !got.McastGroup.IsValid() {
			t.Errorf("fillDaemonDefaults(%+v, %d) = %+v, want maxlen %d", c.in, c.mtu, got, c.want)
		}
	}
}

// TestLVSSyncDaemon: keepalived's lvs_sync_daemon starts the backup
// daemon, switches to master when its instance becomes MASTER and back
// when it leaves; backup_only follows the backup daemon.
func TestLVSSyncDaemon(t *testing.T) {
	cfg := vrrpConf("VI_1")
	core, logs := observer.New(zap.InfoLevel)
	sys := DefaultSysctls()
	sys.BackupOnly = true
	d, err := New(Config{VRRP: cfg, Sysctls: &sys}, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeSync{}
	d.syncd = newFakeDaemons(t, f, d.daemonsChanged)
	fa := &fakeAddrs{present: held(), changed: make(chan func(), 1)}
	run, err := d.followVRRP(fa)
	if err != nil {
		t.Fatal(err)
	}
	d.startLVSSync()
	if _, bo := d.haState(); !bo {
		t.Error("backup_only on and the backup daemon running: want BackupOnly")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go run(ctx)
	changed := <-fa.changed
	fa.set(held("192.168.0.239", "eth0"))
	changed()
	if _, bo := d.haState(); bo {
		t.Error("master daemon only: want no BackupOnly")
	}
	fa.set(held("192.168.0.239", "eth1")) // VI_2 is not lvs_sync_daemon's
	changed()
	fa.set(held())
	changed()
	if want := []string{"backup eth1 51", "master eth1 51", "backup eth1 51"}; !slices.Equal(f.started, want) {
		t.Errorf("daemons started %q, want %q", f.started, want)
	}
	if got := d.syncd.Daemons(); len(got) != 1 || got[0].State != "backup" {
		t.Errorf("running %v, want the backup only", got)
	}
	var lines []string
	for _, e := range logs.All() {
		if strings.HasPrefix(e.Message, "lvs_sync_daemon") || strings.HasPrefix(e.Message, "backup_only") {
			lines = append(lines, e.Message)
		}
	}
	want := []string{
		"backup_only: the backup sync daemon runs: director function off (no service is served)",
		"lvs_sync_daemon: VRRP instance VI_1 is MASTER: sync daemon backup → master",
		"backup_only: no backup sync daemon: director function on",
		"lvs_sync_daemon: VRRP instance VI_1 left MASTER: sync daemon master → backup",
		"backup_only: the backup sync daemon runs: director function off (no service is served)",
	}
	if !slices.Equal(lines, want) {
		t.Errorf("log:\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}

	// Priority 255 (VI_2): master at once.
	cfg.SyncDaemon.Instance, cfg.SyncDaemon.SyncID = "VI_2", -1
	d2, err := New(Config{VRRP: cfg}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	f2 := &fakeSync{}
	d2.syncd = newFakeDaemons(t, f2, d2.daemonsChanged)
	if _, err := d2.followVRRP(&fakeAddrs{present: held()}); err != nil {
		t.Fatal(err)
	}
	d2.startLVSSync()
	if want := []string{"master eth1 52"}; !slices.Equal(f2.started, want) {
		t.Errorf("priority 255: started %q, want %q", f2.started, want)
	}
}

func TestNewLVSSync(t *testing.T) {
	cfg := vrrpConf("")
	if _, err := newLVSSync(nil, cfg.VRRP); err != nil {
		t.Error(err)
	}
	ls, err := newLVSSync(&keepalived.SyncDaemon{Interface: "eth1", Instance: "VI_1", SyncID: 7, Port: 9000}, cfg.VRRP)
	if err != nil || ls.cfg.SyncID != 7 || ls.cfg.McastPort != 9000 || ls.cfg.McastIfn != "eth1" {
		t.Errorf("%+v %v", ls, err)
	}
	if _, err := newLVSSync(&keepalived.SyncDaemon{Interface: "eth1", SyncID: -1}, cfg.VRRP); err == nil {
		t.Error("no instance: want an error (not managed)")
	}
	if _, err := newLVSSync(&keepalived.SyncDaemon{Interface: "eth1", Instance: "VI_9", SyncID: -1}, cfg.VRRP); err == nil || !strings.Contains(err.Error(), "VI_9") {
		t.Errorf("unknown instance: %v", err)
	}
}

// TestMainCheckVRRP: uvsd --check --keepalived prints the instances it
// follows and the lvs_sync_daemon an "@uvs" line gives it (keepalived,
// whose config-id is the host name, skips that line).
func TestMainCheckVRRP(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "keepalived.conf")
	if err := os.WriteFile(conf, []byte(`global_defs {
   router_id LVS_A
   @uvs lvs_sync_daemon eth1 VI_1
}
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 100
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass 1111
    }
    virtual_ipaddress {
        192.168.0.239
    }
}
virtual_server 192.168.0.239 8898 {
    lb_algo rr
    lb_kind DR
    protocol TCP
    persistence_timeout 50
    real_server 192.168.0.10 8898 {
        TCP_CHECK {
            connect_timeout 3
        }
    }
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runMain("--check", "--keepalived", conf)
	if code != 0 || !strings.HasPrefix(out, "-A -t 192.168.0.239:8898 -s rr -p 50\n") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	for _, want := range []string{
		"uvsd: VRRP instance VI_1 (interface eth0, virtual_router_id 51, priority 100): follows 192.168.0.239 on eth0\n",
		"uvsd: lvs_sync_daemon on eth1, syncid 51: backup, master while VRRP instance VI_1 is MASTER\n",
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	// --vrrp with --rules: the same lines.
	rules := filepath.Join(t.TempDir(), "rules")
	if err := os.WriteFile(rules, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs = runMain("--check", "--rules", rules, "--vrrp", conf)
	if code != 0 || !strings.Contains(errs, "uvsd: VRRP instance VI_1 (") || !strings.Contains(errs, "uvsd: lvs_sync_daemon on eth1") {
		t.Errorf("--check --rules --vrrp: exit %d, stderr %q", code, errs)
	}
}

// TestReloadVRRP: a reload keeps the role of unchanged instances (not
// logged again), reports new ones, and restarts a changed
// lvs_sync_daemon for its new instance's role.
func TestReloadVRRP(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	d, err := New(Config{Keepalived: vrrpConf("VI_1")}, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeSync{}
	d.syncd = newFakeDaemons(t, f, d.daemonsChanged)
	fa := &fakeAddrs{present: held("192.168.0.239", "eth0", "10.1.0.1", "eth1", "10.1.0.2", "eth0")}
	d.addrs = fa
	if _, err := d.followVRRP(fa); err != nil {
		t.Fatal(err)
	}
	d.startLVSSync()

	nc := vrrpConf("VI_3")
	nc.VRRP = append(nc.VRRP[:1], &keepalived.VRRPInstance{Name: "VI_3", Interface: "eth0", VRID: 53, Priority: 100,
		VIPs: []keepalived.VRRPAddress{{Prefix: netip.MustParsePrefix("10.3.0.1/32")}}})
	d.reloadVRRP(nc)

	var lines []string
	for _, e := range logs.All() {
		if strings.HasPrefix(e.Message, "VRRP instance") || strings.HasPrefix(e.Message, "reload") {
			lines = append(lines, e.Message)
		}
	}
	want := []string{
		"VRRP instance VI_1: MASTER (192.168.0.239 on eth0)",
		"VRRP instance VI_2: MASTER (all of 10.1.0.1, 10.1.0.2 present)",
		"reload: lvs_sync_daemon changed: stopping its sync daemon",
		"VRRP instance VI_3: BACKUP (10.3.0.1 not on eth0)",
	}
	if !slices.Equal(lines, want) {
		t.Errorf("log:\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if want := []string{"master eth1 51", "backup eth1 53"}; !slices.Equal(f.started, want) {
		t.Errorf("daemons started %q, want %q", f.started, want)
	}
	standby, _ := d.haState()
	if len(standby) != 1 || !standby[netip.MustParseAddr("10.3.0.1").As16()] {
		t.Errorf("standby %v, want only 10.3.0.1 (VI_2's VIPs are no longer followed)", standby)
	}
	if got := d.syncd.Daemons(); len(got) != 1 || got[0].State != "backup" || got[0].SyncID != 53 {
		t.Errorf("running %+v, want the backup of VI_3", got)
	}
}
