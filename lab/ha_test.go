package lab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/wait"
)

func TestMasterDownInterval(t *testing.T) {
	for _, c := range []struct {
		prio int
		want time.Duration
	}{{99, 3*time.Second + 157*time.Second/256}, {100, 3*time.Second + 156*time.Second/256}, {255, 3*time.Second + time.Second/256}} {
		if got := masterDownInterval(time.Second, c.prio); got != c.want {
			t.Errorf("priority %d: %v, want %v", c.prio, got, c.want)
		}
	}
}

// haFiles returns the files an HA scenario writes, by path.
func haFiles(t *testing.T, name string) map[string]string {
	t.Helper()
	files := map[string]string{}
	for _, st := range mustScenario(t, name).plan(Params{Sched: "rr"}, nil).steps {
		if st.kind == stepFile {
			files[st.argv[0]] = st.argv[1]
		}
	}
	return files
}

// TestHAConf: the two-node keepalived.conf is seed 004's (VRRP and the
// virtual server as written, plus the @uvs lvs_sync_daemon line), the
// backup's differs only in state and priority, and both uvsd --check and
// keepalived --config-test accept every file the HA scenarios write.
func TestHAConf(t *testing.T) {
	files := haFiles(t, "keepalived")
	a, b := files["@dir/keepalived-nodea.conf"], files["@dir/keepalived-nodeb.conf"]
	for _, want := range []string{"router_id LVS_SUNINGPOSINF_PRD\n", "@uvs lvs_sync_daemon eth0 VI_1\n", "state MASTER\n",
		"interface eth0\n", "virtual_router_id 51\n", "priority 100\n", "advert_int 1\n", "auth_type PASS\n", "auth_pass 1111\n",
		"        192.168.0.239\n", "virtual_server 192.168.0.239 8898 {\n", "delay_loop 6\n", "lb_algo rr\n", "lb_kind DR\n",
		"persistence_timeout 50\n", "real_server 192.168.0.236 8898 {\n", "real_server 192.168.0.238 8898 {\n",
		"connect_timeout 10\n", "retry 3\n", "delay_before_retry 3\n", "connect_port 8898\n"} {
		if !strings.Contains(a, want) {
			t.Errorf("nodea's keepalived.conf lacks %q", want)
		}
	}
	if got := strings.NewReplacer("state BACKUP", "state MASTER", "priority 99", "priority 100").Replace(b); got != a {
		t.Errorf("nodeb's file differs from nodea's beyond state and priority:\n%s\n---\n%s", a, b)
	}
	nat := haFiles(t, "keepalived-nat")["@dir/keepalived-dira.conf"]
	for _, want := range []string{"vrrp_sync_group VG_1 {\n    group {\n        VI_1\n        VI_GW\n", "vrrp_instance VI_GW {", "        10.0.0.254\n", "lb_kind NAT\n"} {
		if !strings.Contains(nat, want) {
			t.Errorf("keepalived-nat's file lacks %q:\n%s", want, nat)
		}
	}
	ipv := haFiles(t, "keepalived-ipvsadm")
	if c := ipv["@dir/keepalived-nodea.conf"]; strings.Contains(c, "virtual_server") || strings.Contains(c, "lvs_sync_daemon") {
		t.Errorf("the ipvsadm way's keepalived.conf holds more than VRRP:\n%s", c)
	}
	if r := ipv["@dir/rules"]; !strings.Contains(r, "-A -t 192.168.0.239:8898 -s rr -p 50\n") || !strings.Contains(r, "-a -t 192.168.0.239:8898 -r 192.168.0.238:8898 -g -w 1\n") {
		t.Errorf("rules:\n%s", r)
	}

	// keepalived checks that the interfaces exist: a namespace with them.
	var kaNS *netnstest.NS
	if _, err := exec.LookPath("keepalived"); err == nil && os.Geteuid() == 0 {
		kaNS = netnstest.New(t, "hacf")
		netnstest.Veth(t, kaNS, "eth0", kaNS, "eth1") // no dummy module here
	}
	dir := t.TempDir()
	for _, sc := range []string{"keepalived", "keepalived-dr", "keepalived-nat", "keepalived-ipvsadm"} {
		for name, text := range haFiles(t, sc) {
			path := filepath.Join(dir, sc+"-"+filepath.Base(name))
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			if strings.HasSuffix(name, "rules") {
				if out, err := exec.Command(filepath.Join(builtBin, "uvsd"), "--check", "--rules", path).CombinedOutput(); err != nil {
					t.Errorf("%s: uvsd --check --rules: %v\n%s", sc, err, out)
				}
				continue
			}
			if !strings.Contains(sc, "ipvsadm") {
				if out, err := exec.Command(filepath.Join(builtBin, "uvsd"), "--check", "--keepalived", path).CombinedOutput(); err != nil {
					t.Errorf("%s %s: uvsd --check --keepalived: %v\n%s", sc, name, err, out)
				}
			}
			if kaNS != nil {
				if out, err := kaNS.Run("keepalived", "--vrrp", "--config-test", "-f", path); err != nil {
					t.Errorf("%s %s: keepalived --config-test: %v\n%s", sc, name, err, out)
				}
			}
		}
	}
}

// newHATestLab is newTestLab for the HA scenarios: keepalived is
// required, and no keepalived of this lab may be left afterwards (its
// command line names the lab's state directory).
func newHATestLab(t *testing.T) *testLab {
	t.Helper()
	netnstest.SkipIfNotRoot(t)
	netnstest.RequireTool(t, "keepalived")
	tl := newTestLab(t)
	t.Cleanup(func() {
		if left := tl.keepaliveds(); len(left) > 0 && !wait.Until(5*time.Second, func() bool { left = tl.keepaliveds(); return len(left) == 0 }) {
			t.Errorf("keepalived left running: %v", left)
		}
	})
	return tl
}

// keepaliveds lists the live keepalived processes of this lab.
func (tl *testLab) keepaliveds() []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		cl, _, state, err := procStat(pid)
		if err != nil || state == 'Z' || len(cl) == 0 {
			continue
		}
		if strings.HasSuffix(cl[0], "keepalived") && strings.Contains(strings.Join(cl, " "), tl.state) {
			out = append(out, strings.Join(cl, " "))
		}
	}
	return out
}

// checkFailover asserts what a failover run must show: the VIP and its
// MAC moved to the backup, the backup held the connections (sync) before,
// the transfer went on, every connection whose real server lived kept
// answering, and the persistent client stayed on its real server.
func checkFailover(t *testing.T, rep *HAReport, master, backup string) {
	t.Helper()
	if rep == nil {
		t.Fatal("no HA report")
	}
	if rep.Master != master || rep.Backup != backup {
		t.Fatalf("master %q backup %q, want %s and %s", rep.Master, rep.Backup, master, backup)
	}
	if rep.VIPMoved <= 0 || rep.MACMoved <= 0 {
		t.Fatalf("VIP moved after %v, MAC after %v: both should have", rep.VIPMoved, rep.MACMoved)
	}
	if !strings.Contains(rep.NeighAfter, "lladdr") || rep.NeighAfter == rep.NeighBefore {
		t.Fatalf("neighbour entry before %q, after %q", rep.NeighBefore, rep.NeighAfter)
	}
	if rep.SyncedFirst < rep.FlowsAlive {
		t.Fatalf("the backup held %d established connections before the pull, want at least %d", rep.SyncedFirst, rep.FlowsAlive)
	}
	if !rep.Transfer.Continued() {
		t.Fatalf("the transfer did not continue: %+v", rep.Transfer)
	}
	if rep.FlowsAlive == 0 || rep.Survived != rep.FlowsAlive {
		t.Fatalf("%d of %d connections survived: %v", rep.Survived, rep.FlowsAlive, rep.FlowErrors)
	}
	if rep.PersistServer == "" || len(rep.PersistAfter) == 0 {
		t.Fatalf("persistent client: on %q, %d requests after", rep.PersistServer, len(rep.PersistAfter))
	}
	for _, r := range rep.PersistAfter {
		if r.OK() && r.Answer != rep.PersistServer {
			t.Fatalf("persistent client answered by %s after the failover, was on %s", r.Answer, rep.PersistServer)
		}
	}
	last := rep.PersistAfter[len(rep.PersistAfter)-1]
	if !last.OK() || !last.Decided || rep.PersistVia[last.Client] != backup || !strings.Contains(last.Why, "persistence: template") {
		t.Fatalf("the persistent client's last request: %+v via %q, want answered through %s by its template", last, rep.PersistVia[last.Client], backup)
	}
}

// TestHAKeepalived is seed 004's two nodes: A is master, both nodes answer
// through it, A's cable is pulled under load, B takes over with what A
// synced: the transfer and every connection B serves carry on.
func TestHAKeepalived(t *testing.T) {
	tl := newHATestLab(t)
	rep, err := tl.Run(testCtx(t), "keepalived", RunOptions{Requests: 8})
	if err != nil {
		t.Fatal(err)
	}
	h := rep.HA
	if h == nil || h.Answered["A"] == 0 || h.Answered["B"] == 0 || h.Via["nodea"] != 8 {
		t.Fatalf("before the failover: answers %v via %v, want A and B, all through nodea", h.Answered, h.Via)
	}
	if !strings.Contains(h.NeighBefore, "02:00:00:00:02:01") {
		t.Fatalf("client's neighbour entry %q, want nodea's eth0 MAC", h.NeighBefore)
	}
	checkFailover(t, h, "nodea", "nodeb")
	if h.FlowsAlive == h.Flows || h.FlowsAlive == 0 {
		t.Fatalf("%d of %d connections on B: both nodes should have had some", h.FlowsAlive, h.Flows)
	}
	out := tl.out.String()
	for _, want := range []string{"@uvs lvs_sync_daemon eth0 VI_1", "[nodea]# keepalived --vrrp -n -l -D -f ", "[switch]# ip link set p-nodea down",
		"master sync daemon (mcast=eth0, syncid=51", "backup sync daemon (mcast=eth0, syncid=51", "<- nodeb eth0"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

// TestHAKeepalivedDR: a director pair in front of two DR real servers.
func TestHAKeepalivedDR(t *testing.T) {
	tl := newHATestLab(t)
	rep, err := tl.Run(testCtx(t), "keepalived-dr", RunOptions{Requests: 4})
	if err != nil {
		t.Fatal(err)
	}
	checkFailover(t, rep.HA, "dira", "dirb")
	if rep.HA.Flows != HAFlows || rep.HA.FlowsAlive != HAFlows {
		t.Fatalf("%d connections, %d alive, want %d", rep.HA.Flows, rep.HA.FlowsAlive, HAFlows)
	}
}

// TestHAKeepalivedNAT: a NAT director pair; the real servers' gateway
// moves with the VIP (vrrp_sync_group).
func TestHAKeepalivedNAT(t *testing.T) {
	tl := newHATestLab(t)
	rep, err := tl.Run(testCtx(t), "keepalived-nat", RunOptions{Requests: 4})
	if err != nil {
		t.Fatal(err)
	}
	checkFailover(t, rep.HA, "dira", "dirb")
}

// TestHABreakSyncOff: without the sync daemons the failover kills the
// transfer and the connections; with them, none is lost.
func TestHABreakSyncOff(t *testing.T) {
	tl := newHATestLab(t)
	res, err := tl.Break(testCtx(t), "ha-sync-off", false)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Symptom || res.HABroken == nil || res.HABroken.Transfer.Continued() || res.HABroken.Survived != 0 {
		t.Fatalf("no symptom: %s", res.SymptomText)
	}
	if res.HABroken.SyncedFirst != 0 {
		t.Fatalf("the backup held %d connections with the sync daemons stopped", res.HABroken.SyncedFirst)
	}
	if !res.Fixed {
		t.Fatalf("not fixed: %+v", res.HAFixed)
	}
	checkFailover(t, res.HAFixed, "dira", "dirb")
}

// TestHABreakBackupOnlyOff: a backup without backup_only re-balances what
// the master forwards to it; with it, every request is answered.
func TestHABreakBackupOnlyOff(t *testing.T) {
	tl := newHATestLab(t)
	res, err := tl.Break(testCtx(t), "ha-backup-only-off", false)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Symptom {
		t.Fatalf("no symptom: %s", res.SymptomText)
	}
	if !res.Fixed {
		t.Fatalf("not fixed: %v", res.After)
	}
}
