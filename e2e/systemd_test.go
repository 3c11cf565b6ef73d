package e2e

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/netnstest"
)

// TestSdNotify runs uvsd as systemd runs a Type=notify service: with
// $NOTIFY_SOCKET naming a unix datagram socket the test listens on. uvsd
// must send READY=1 only once it serves — the control socket answers at
// once, without a retry — and STOPPING=1 on SIGTERM. On the way, uvsadm
// --counters, run by a user that is not root, shows the connections the
// test made.
func TestSdNotify(t *testing.T) {
	l := newNATLab(t)
	sock := filepath.Join(t.TempDir(), "notify")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	rules := filepath.Join(t.TempDir(), "rules")
	if err := os.WriteFile(rules, []byte(natRules), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"env", "NOTIFY_SOCKET=" + sock, binary("uvsd"), "--log-format", "json", "--rules", rules}
	if io := os.Getenv("UVS_E2E_IO"); io != "" {
		args = append(args, "--io", io)
	}
	p := l.dir.Start(t, args...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("uvsd output:\n%s", p.Output())
		}
	})
	read := func(what string) string {
		t.Helper()
		_ = ln.SetReadDeadline(time.Now().Add(startTimeout))
		b := make([]byte, 4096)
		n, err := ln.Read(b)
		if err != nil {
			t.Fatalf("waiting for %s on $NOTIFY_SOCKET: %v", what, err)
		}
		return string(b[:n])
	}
	ready := read("READY=1")
	if !strings.Contains("\n"+ready+"\n", "\nREADY=1\n") || !strings.Contains(ready, "STATUS=serving 4 virtual services") {
		t.Fatalf("first notification %q, want READY=1 with its status", ready)
	}
	// Ready means serving: the control socket answers now, first try.
	if out, err := controlList(l.dir); err != nil || !strings.Contains(out, "10.0.1.100:80") {
		t.Fatalf("control socket right after READY=1: %v\n%s", err, out)
	}
	for range 3 {
		if got := curl(t, l.cli, "http://10.0.1.100/"); !strings.HasPrefix(got, "rs") {
			t.Fatalf("VIP answered %q", got)
		}
	}
	// uvsadm --counters --json, as nobody (SO_PEERCRED is real here).
	out, err := l.dir.Run("env", "UVS_NO_AUTOSTART=1", "setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
		binary("uvsadm"), "--counters", "--json")
	if err != nil {
		t.Fatalf("uvsadm --counters --json as nobody: %v\n%s", err, out)
	}
	var cs struct {
		Workers  []struct{ Running bool }
		Counters []struct {
			Name    string
			Total   uint64
			Workers []*uint64
		}
	}
	if err := json.Unmarshal([]byte(out), &cs); err != nil {
		t.Fatalf("--counters --json: %v\n%s", err, out)
	}
	totals := map[string]uint64{}
	for _, c := range cs.Counters {
		totals[c.Name] = c.Total
		if strings.HasPrefix(c.Name, "dataplane.") && len(c.Workers) != len(cs.Workers) {
			t.Errorf("%s: %d worker values for %d workers", c.Name, len(c.Workers), len(cs.Workers))
		}
	}
	if len(cs.Workers) == 0 || totals["dataplane.new-conn"] < 3 || totals["dataplane.rx"] == 0 || totals["conntrack.capacity"] == 0 {
		t.Errorf("counters after 3 requests: %d workers, new-conn %d, rx %d, conntrack capacity %d\n%s",
			len(cs.Workers), totals["dataplane.new-conn"], totals["dataplane.rx"], totals["conntrack.capacity"], out)
	}
	// A change through uvsadm is logged with who made it.
	if out, err := l.dir.Run("env", "UVS_NO_AUTOSTART=1", binary("uvsadm"), "-D", "-t", "10.0.1.100:8080"); err != nil {
		t.Fatalf("uvsadm -D: %v\n%s", err, out)
	}

	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got := read("STOPPING=1"); got != "STOPPING=1" {
		t.Errorf("notification on SIGTERM %q, want STOPPING=1", got)
	}
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("uvsd did not exit within 10s of SIGTERM")
	}
	var audited bool
	for _, line := range strings.Split(p.Output(), "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		if e["msg"] == "configuration changed by uvsadm" && e["command"] == "uvsadm -D -t 10.0.1.100:8080" && e["uid"] == float64(0) {
			audited = true
		}
	}
	if !audited {
		t.Errorf("uvsadm -D not logged as a JSON line with its command and uid:\n%s", p.Output())
	}
}

// TestMakeInstall runs make install into a DESTDIR and checks what a
// packager gets: the commands, uvsd.service with the installed paths
// (systemd-analyze verify passes on it), and the configuration files,
// which a second install leaves as the operator changed them.
func TestMakeInstall(t *testing.T) {
	netnstest.RequireTool(t, "make")
	netnstest.RequireTool(t, "systemd-analyze")
	dest := t.TempDir()
	install := func() {
		t.Helper()
		cmd := exec.Command("make", "-C", "..", "install", "DESTDIR="+dest, "BIN="+filepath.Join(dest, "build"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make install: %v\n%s", err, out)
		}
	}
	install()
	unit := filepath.Join(dest, "usr/local/lib/systemd/system/uvsd.service")
	b, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, want := range []string{"\nType=notify\n", "\nExecStart=/usr/local/bin/uvsd $UVSD_ARGS\n", "\nExecStopPost=/usr/local/bin/uvsd --cleanup\n",
		"\nEnvironmentFile=-/etc/default/uvsd\n", "\nRestart=on-failure\n", "\nCapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW "} {
		if !strings.Contains(text, want) {
			t.Errorf("installed unit lacks %q", strings.TrimSpace(want))
		}
	}
	if strings.Contains(text, "@") {
		t.Errorf("installed unit has a placeholder left:\n%s", text)
	}
	for _, f := range []string{"usr/local/bin/uvsd", "usr/local/bin/uvsadm", "usr/local/bin/uvsadm-save", "etc/default/uvsd", "etc/uvs/uvsd.rules"} {
		if _, err := os.Stat(filepath.Join(dest, f)); err != nil {
			t.Errorf("make install: %v", err)
		}
	}
	def, err := os.ReadFile(filepath.Join(dest, "etc/default/uvsd"))
	if err != nil || !strings.Contains(string(def), `UVSD_ARGS="--rules /etc/uvs/uvsd.rules`) {
		t.Errorf("etc/default/uvsd: %v\n%s", err, def)
	}
	// The default rules file is one uvsd accepts.
	if out, err := exec.Command(filepath.Join(dest, "usr/local/bin/uvsd"), "--check", "--rules", filepath.Join(dest, "etc/uvs/uvsd.rules")).CombinedOutput(); err != nil {
		t.Errorf("uvsd --check on the installed rules file: %v\n%s", err, out)
	}
	// The operator's configuration survives a second install.
	mine := []byte("UVSD_ARGS=\"--keepalived /etc/keepalived/keepalived.conf\"\n")
	if err := os.WriteFile(filepath.Join(dest, "etc/default/uvsd"), mine, 0o644); err != nil {
		t.Fatal(err)
	}
	install()
	if got, _ := os.ReadFile(filepath.Join(dest, "etc/default/uvsd")); string(got) != string(mine) {
		t.Errorf("a second make install replaced etc/default/uvsd:\n%s", got)
	}
	// systemd-analyze verify checks that the commands exist on this
	// system; they are in DESTDIR, so point the unit's paths there (and
	// only those) for the check.
	check := filepath.Join(t.TempDir(), "uvsd.service")
	local := strings.ReplaceAll(text, "/usr/local/bin/", filepath.Join(dest, "usr/local/bin")+"/")
	if err := os.WriteFile(check, []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("systemd-analyze", "verify", "--man=no", check).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
