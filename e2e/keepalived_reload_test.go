package e2e

import (
	"bufio"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/wait"
)

// kaReloadConf is kaConf's service with rs1 only, and a second virtual
// server 10.0.1.101:80 with rs2.
const kaReloadConf = "global_defs {\n    router_id uvs_e2e\n}\n" +
	"virtual_server 10.0.1.100 80 {\n" +
	"    delay_loop 1\n    retry 1\n    delay_before_retry 1\n" +
	"    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n" +
	"    real_server 10.0.2.11 80 {\n        weight 1\n        TCP_CHECK {\n            connect_timeout 1\n        }\n    }\n" +
	"}\n" +
	"virtual_server 10.0.1.101 80 {\n" +
	"    delay_loop 1\n    retry 1\n    delay_before_retry 1\n" +
	"    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n" +
	"    real_server 10.0.2.12 80 {\n        weight 1\n        TCP_CHECK {\n            connect_timeout 1\n        }\n    }\n" +
	"}\n"

// keepAlive is an HTTP/1.1 connection from the client through the VIP
// that stays open across requests.
type keepAlive struct {
	conn net.Conn
	r    *bufio.Reader
}

// get sends GET / and returns the body (the real server's name).
func (k *keepAlive) get() (string, error) {
	if err := k.conn.SetDeadline(time.Now().Add(8 * time.Second)); err != nil {
		return "", err
	}
	if _, err := k.conn.Write([]byte("GET / HTTP/1.1\r\nHost: vip\r\n\r\n")); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(k.r, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var b strings.Builder
	if _, err := bufio.NewReader(resp.Body).WriteTo(&b); err != nil {
		return "", err
	}
	return strings.TrimSpace(b.String()), nil
}

// TestKeepalivedReload runs uvsd --keepalived with rs1 and rs2, rewrites
// the file to drop rs2 from the virtual server and add a second virtual
// server, and sends SIGHUP: the table follows, rs1's checker is not
// restarted (its success line is not repeated) and a connection to rs1
// opened before the reload still works after it; uvsadm --list-checkers
// and SIGUSR1's data file show both checkers UP. A file with a fatal
// error is refused.
func TestKeepalivedReload(t *testing.T) {
	l := newNATLab(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(path, []byte(kaConf(false)), 0o644); err != nil {
		t.Fatal(err)
	}
	dataFile := filepath.Join(dir, "uvsd.data")
	u := startUVSDArgs(t, l.dir, "--keepalived", path, "--data-file", dataFile)
	log := func() string { return u.proc.Output() }
	success := func(rs string) string { return "TCP connection to [" + rs + "]:tcp:80 success." }
	for _, rs := range []string{"10.0.2.11", "10.0.2.12"} {
		wait.For(t, kaRemoveBound, func() bool { return strings.Contains(log(), success(rs)) },
			"uvsd to log %q", success(rs))
	}

	// A connection to rs1 through the VIP, opened before the reload.
	var ka *keepAlive
	for i := 0; ka == nil && i < 8; i++ {
		var c net.Conn
		if err := l.cli.Do(func() error {
			var err error
			c, err = net.DialTimeout("tcp", "10.0.1.100:80", 8*time.Second)
			return err
		}); err != nil {
			t.Fatalf("dial the VIP: %v", err)
		}
		k := &keepAlive{conn: c, r: bufio.NewReader(c)}
		got, err := k.get()
		if err != nil {
			t.Fatalf("GET through the VIP: %v", err)
		}
		if got == "rs1" {
			ka = k
			t.Cleanup(func() { _ = c.Close() })
		} else {
			_ = c.Close()
		}
	}
	if ka == nil {
		t.Fatal("no connection through the VIP reached rs1")
	}

	if err := os.WriteFile(path, []byte(kaReloadConf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := u.proc.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatalf("SIGHUP: %v", err)
	}
	var listing string
	reloaded := func() bool {
		out, err := controlList(l.dir)
		if err != nil {
			t.Fatalf("-Ln: %v", err)
		}
		listing = out
		vs1, vs2 := strings.Index(out, "10.0.1.100:80"), strings.Index(out, "10.0.1.101:80")
		if vs1 < 0 || vs2 < 0 || strings.Count(out, "->") != 3 { // the header's "-> RemoteAddress" and two servers
			return false
		}
		a, b := out[vs1:], out[vs2:]
		if vs1 < vs2 {
			a = out[vs1:vs2]
		} else {
			b = out[vs2:vs1]
		}
		return strings.Contains(a, "10.0.2.11:80") && !strings.Contains(a, "10.0.2.12:80") &&
			strings.Contains(b, "10.0.2.12:80") && !strings.Contains(b, "10.0.2.11:80")
	}
	wait.For(t, startTimeout, reloaded, "-Ln to show the reloaded table (last:\n%s)", wait.Lazy(func() any { return listing }))
	// The new virtual server's checker is new: its first verdict logs
	// rs2's success line a second time; rs1's stays at one.
	wait.For(t, kaRemoveBound, func() bool { return strings.Count(log(), success("10.0.2.12")) == 2 },
		"the new checker of rs2 to log %q", success("10.0.2.12"))
	if n := strings.Count(log(), success("10.0.2.11")); n != 1 {
		t.Errorf("rs1's success line logged %d times: its checker restarted on reload", n)
	}
	if got, err := ka.get(); err != nil || got != "rs1" {
		t.Errorf("the connection to rs1 opened before the reload: %q, %v", got, err)
	}
	if got := curl(t, l.cli, "http://10.0.1.101/"); got != "rs2" {
		t.Errorf("the new virtual server answered %q, want rs2", got)
	}

	upRows := func(out string) int {
		n := 0
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) >= 5 && f[2] == "TCP_CHECK" && f[4] == "UP" &&
				(f[0] == "[10.0.1.100]:tcp:80" && f[1] == "[10.0.2.11]:tcp:80" ||
					f[0] == "[10.0.1.101]:tcp:80" && f[1] == "[10.0.2.12]:tcp:80") {
				n++
			}
		}
		return n
	}
	out := mustUVSADM(t, l.dir, "--list-checkers")
	if !strings.HasPrefix(out, "VS ") || upRows(out) != 2 || strings.Count(strings.TrimSpace(out), "\n") != 2 {
		t.Errorf("uvsadm --list-checkers: want the header and both checkers UP:\n%s", out)
	}
	if err := u.proc.Cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatalf("SIGUSR1: %v", err)
	}
	var data string
	wait.For(t, startTimeout, func() bool {
		b, _ := os.ReadFile(dataFile)
		data = string(b)
		return upRows(data) == 2
	}, "SIGUSR1 to write both checkers UP to %s (last:\n%s)", dataFile, wait.Lazy(func() any { return data }))

	// A file with a fatal error is refused; nothing changes.
	if err := os.WriteFile(path, []byte("virtual_server 10.0.1.100 80 {\n}\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := u.proc.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatalf("SIGHUP: %v", err)
	}
	wait.For(t, startTimeout, func() bool { return strings.Contains(log(), "reload refused") },
		"uvsd to refuse the broken file")
	if !reloaded() {
		t.Errorf("the refused reload changed the table:\n%s", listing)
	}
	u.stop(t)
}
