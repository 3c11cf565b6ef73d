//go:build unix

package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/wait"
)

var miscTarget = Target{Addr: netip.MustParseAddrPort("192.0.2.7:80"), Timeout: 5 * time.Second}

// miscScript writes an executable /bin/sh script into dir and returns its
// path.
func miscScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMiscCheckExitStatus(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name      string
		body      string
		dynamic   bool
		ok        bool
		hasWeight bool
		weight    int
		msg       string
	}{
		{"exit0", "exit 0", false, true, false, 0, "succeeded."},
		{"exit1", "exit 1", false, false, false, 0, "failed (exited with status 1)."},
		{"exit7", "exit 7", false, false, false, 0, "failed (exited with status 7)."},
		{"exit1-dynamic", "exit 1", true, false, false, 0, "failed (exited with status 1)."},
		{"exit0-dynamic", "exit 0", true, true, false, 0, "succeeded."},
		{"exit2-dynamic", "exit 2", true, true, true, 0, "succeeded."},
		{"exit12-dynamic", "exit 12", true, true, true, 10, "succeeded."},
		{"exit255-dynamic", "exit 255", true, true, true, 253, "succeeded."},
		{"signal", "kill -USR1 $$", false, false, false, 0, fmt.Sprintf("failed (due to signal %d).", int(syscall.SIGUSR1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := miscScript(t, dir, tt.name+".sh", tt.body)
			m := &MiscCheck{Argv: []string{p}, Dynamic: tt.dynamic, Timeout: 30 * time.Second}
			r := m.Probe(context.Background(), miscTarget)
			if r.OK != tt.ok || r.HasWeight != tt.hasWeight || r.Weight != tt.weight {
				t.Errorf("got %+v, want ok=%v hasWeight=%v weight=%d", r, tt.ok, tt.hasWeight, tt.weight)
			}
			want := "Misc check for [192.0.2.7:80] by [" + p + "] " + tt.msg
			if r.Msg != want {
				t.Errorf("msg %q, want %q", r.Msg, want)
			}
		})
	}
}

func TestMiscCheckArgsNoShell(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	p := miscScript(t, dir, "args.sh", `printf '%s|' "$@" > "$OUT_FILE"`)
	path := p + ` 'a b' "c'd" $HOME \x41`
	argv, err := SplitMiscPath(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("OUT_FILE", out)
	r := (&MiscCheck{Argv: argv, Timeout: 30 * time.Second}).Probe(context.Background(), miscTarget)
	if !r.OK {
		t.Fatalf("probe failed: %+v", r)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// No shell: $HOME is passed literally.
	if want := `a b|c'd|$HOME|A|`; string(got) != want {
		t.Errorf("args %q, want %q", got, want)
	}
}

func TestMiscCheckNoShebangFallsBackToSh(t *testing.T) {
	p := filepath.Join(t.TempDir(), "noshebang")
	if err := os.WriteFile(p, []byte("exit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := (&MiscCheck{Argv: []string{p}, Dynamic: true, Timeout: 30 * time.Second}).Probe(context.Background(), miscTarget)
	if !r.OK || !r.HasWeight || r.Weight != 1 {
		t.Errorf("got %+v, want success with weight 1", r)
	}
}

func TestMiscCheckMissingProgram(t *testing.T) {
	r := (&MiscCheck{Argv: []string{filepath.Join(t.TempDir(), "absent")}, Timeout: 30 * time.Second}).Probe(context.Background(), miscTarget)
	if r.OK || !strings.Contains(r.Msg, "failed") {
		t.Errorf("got %+v, want a failure", r)
	}
}

// procGone reports that pid no longer runs (absent, or a zombie waiting
// for a parent that may never reap it).
func procGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return os.IsNotExist(err)
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// TestMiscCheckTimeoutKillsGroup runs a script that starts a child and
// waits; after misc_timeout both must be gone. The "ignore TERM" variant
// needs the SIGKILL that follows 2 s later.
func TestMiscCheckTimeoutKillsGroup(t *testing.T) {
	for _, ignoreTerm := range []bool{false, true} {
		t.Run(fmt.Sprintf("ignoreTERM=%v", ignoreTerm), func(t *testing.T) {
			dir := t.TempDir()
			pids := filepath.Join(dir, "pids")
			trap := ""
			if ignoreTerm {
				trap = "trap '' TERM\n"
			}
			p := miscScript(t, dir, "sleepy.sh", trap+"sleep 300 &\necho $$ $! > "+pids+".tmp\nmv "+pids+".tmp "+pids+"\nwait\nexit 0")
			// The timeout must fire after the script has recorded its
			// pids; on a slow machine it may not have, so try longer.
			var r Result
			var b []byte
			for _, timeout := range []time.Duration{time.Second, 5 * time.Second, 20 * time.Second} {
				m := &MiscCheck{Argv: []string{p}, Timeout: timeout}
				r = m.Probe(context.Background(), miscTarget)
				var err error
				if b, err = os.ReadFile(pids); err == nil {
					break
				}
			}
			if b == nil {
				t.Fatal("the script never recorded its pids before misc_timeout")
			}
			if r.OK {
				t.Fatalf("got %+v, want a timeout failure", r)
			}
			if want := "Misc check for [192.0.2.7:80] by [" + p + "] timed out."; r.Msg != want {
				t.Errorf("msg %q, want %q", r.Msg, want)
			}
			var leader, child int
			if _, err := fmt.Sscan(string(b), &leader, &child); err != nil {
				t.Fatalf("pids %q: %v", b, err)
			}
			wait.For(t, 10*time.Second, func() bool { return procGone(child) && procGone(leader) },
				"script %d and child %d to be gone", leader, child)
		})
	}
}

func TestMiscCheckContextCancelKills(t *testing.T) {
	dir := t.TempDir()
	p := miscScript(t, dir, "forever.sh", "trap '' TERM\nwhile :; do sleep 1; done")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Result, 1)
	go func() { done <- (&MiscCheck{Argv: []string{p}, Timeout: time.Hour}).Probe(ctx, miscTarget) }()
	cancel()
	select {
	case r := <-done:
		if r.OK {
			t.Errorf("got %+v, want failure", r)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Probe did not return after its context was cancelled")
	}
}

func TestMiscCheckUser(t *testing.T) {
	netnstest.SkipIfNotRoot(t) // running a script as another user needs root
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("no user nobody: %v", err)
	}
	dir := t.TempDir()
	// nobody must be able to reach and run the script.
	for d := dir; d != os.TempDir() && d != "/" && d != "."; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p := miscScript(t, dir, "whoami.sh", fmt.Sprintf(`[ "$(id -u)" = %q ] && [ "$(id -g)" = %q ] && [ "$(id -G)" = %q ]`, u.Uid, u.Gid, u.Gid))
	r := (&MiscCheck{Argv: []string{p}, User: "nobody", Timeout: 30 * time.Second}).Probe(context.Background(), miscTarget)
	if !r.OK {
		t.Errorf("as nobody: %+v", r)
	}
	r = (&MiscCheck{Argv: []string{p}, Timeout: 30 * time.Second}).Probe(context.Background(), miscTarget)
	if r.OK {
		t.Errorf("as root the script should fail: %+v", r)
	}
	r = (&MiscCheck{Argv: []string{p}, User: "no-such-user-uvs", Timeout: 30 * time.Second}).Probe(context.Background(), miscTarget)
	if r.OK || !strings.Contains(r.Msg, "no-such-user-uvs") {
		t.Errorf("unknown user: %+v", r)
	}
}
