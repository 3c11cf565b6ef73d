package e2e

import (
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/wait"
)

// kill sends SIGKILL to uvsd and waits for it to be gone.
func (u *uvsd) kill(t *testing.T) {
	t.Helper()
	if err := u.proc.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL: %v", err)
	}
	select {
	case <-u.proc.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("uvsd did not exit within 10s of SIGKILL")
	}
}

// uvsTable reports whether the namespace has an nftables table named uvs.
func uvsTable(t *testing.T, ns *netnstest.NS) bool {
	t.Helper()
	for _, line := range strings.Split(ns.Exec(t, "nft", "list", "tables"), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "table" && f[2] == "uvs" {
			return true
		}
	}
	return false
}

// redirects returns the director's send_redirects settings uvsd changes.
func redirects(t *testing.T, ns *netnstest.NS) string {
	t.Helper()
	var vals []string
	for _, n := range []string{"all", "default", "d0", "d1"} {
		vals = append(vals, n+"="+strings.TrimSpace(ns.Exec(t, "cat", "/proc/sys/net/ipv4/conf/"+n+"/send_redirects")))
	}
	return strings.Join(vals, " ")
}

// TestCrashLeavesNothing: uvsd killed with SIGKILL leaves no nftables rule
// (its table is owned by its netlink socket) — the real servers, reached
// through the director directly, answer at once instead of having their
// replies dropped as NAT replies by a leftover table; uvsd --cleanup puts
// back the send_redirects it changed; a fresh uvsd on the same rules
// serves again (the time to its first answered request is logged); and a
// fresh uvsd started after a SIGKILL restores, on its clean exit, the
// values from before the first uvsd, not the dead one's.
func TestCrashLeavesNothing(t *testing.T) {
	netnstest.RequireTool(t, "nft")
	l := newNATLab(t)
	before := redirects(t, l.dir)
	if !strings.Contains(before, "d0=1") {
		t.Fatalf("send_redirects before uvsd: %s, want the kernel's 1", before)
	}
	u := startUVSD(t, l.dir, natRules)
	if got := curl(t, l.cli, "http://10.0.1.100/"); !strings.HasPrefix(got, "rs") {
		t.Fatalf("VIP answered %q", got)
	}
	if !uvsTable(t, l.dir) {
		t.Fatal("no uvs table while uvsd runs")
	}
	if got := redirects(t, l.dir); strings.Contains(got, "=1") {
		t.Fatalf("send_redirects while uvsd runs: %s, want all 0", got)
	}

	u.kill(t)
	wait.For(t, time.Second, func() bool { return !uvsTable(t, l.dir) },
		"no uvs table after SIGKILL (nft list tables:\n%s)", wait.Lazy(func() any { return l.dir.Exec(t, "nft", "list", "tables") }))
	// A leftover table would drop rs1's replies (a NAT reply's source,
	// to an address not the director's): the client's direct request
	// through the director would get no answer.
	if got := curl(t, l.cli, "http://10.0.2.11/"); got != "rs1" {
		t.Fatalf("real server answered %q directly after the kill", got)
	}

	out, err := l.dir.Run(binary("uvsd"), "--cleanup")
	if err != nil {
		t.Fatalf("uvsd --cleanup: %v\n%s", err, out)
	}
	if got := redirects(t, l.dir); got != before {
		t.Fatalf("send_redirects after SIGKILL and uvsd --cleanup: %s, want %s", got, before)
	}

	// Restart: time from start to the first request answered through the
	// VIP.
	start := time.Now()
	u = startUVSD(t, l.dir, natRules)
	ready := time.Since(start)
	var last string
	wait.For(t, 10*time.Second, func() bool {
		out, err := l.cli.Run("curl", "-sS", "--max-time", "1", "http://10.0.1.100/")
		last = out
		return err == nil && strings.HasPrefix(strings.TrimSpace(out), "rs")
	}, "a request through the VIP answered after the restart (last: %q)", wait.Lazy(func() any { return last }))
	t.Logf("restart after SIGKILL: control socket answered after %v, first request through the VIP answered after %v",
		ready.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	// Killed again, then a fresh uvsd starts and stops cleanly.
	u.kill(t)
	u = startUVSD(t, l.dir, natRules)
	if got := curl(t, l.cli, "http://10.0.1.100/"); !strings.HasPrefix(got, "rs") {
		t.Fatalf("VIP answered %q", got)
	}
	u.stop(t)
	if got := redirects(t, l.dir); got != before {
		t.Fatalf("send_redirects after SIGKILL, a fresh uvsd and its clean exit: %s, want %s", got, before)
	}
	if uvsTable(t, l.dir) {
		t.Fatal("uvs table left after the clean exit")
	}
}

// drMHRules is a DR service scheduled by mh: a restarted director sends a
// flow it has no connection for to the same real server.
const drMHRules = `-A -t 10.0.5.100:80 -s mh
-a -t 10.0.5.100:80 -r 10.0.5.11 -g -w 1
-a -t 10.0.5.100:80 -r 10.0.5.12 -g -w 1
`

// TestCrashSloppyKeepsConnection: with mh and sloppy_tcp, an established
// connection sending a request every 100 ms survives SIGKILL and restart
// of its DR director: its first packets after the restart (no SYN) are
// scheduled to the same real server, which answers the client directly.
func TestCrashSloppyKeepsConnection(t *testing.T) {
	l := newLANLab(t, false)
	for _, rs := range l.rs {
		drRealServer(t, rs, "10.0.5.100")
	}
	u := startUVSD(t, l.dir, drMHRules, "--sysctl", "sloppy_tcp=1")
	k := dialHAConn(t, l.cli, l.clientAddr, "10.0.5.100:80")
	first, err := k.get("/", 5*time.Second)
	if err != nil || !strings.HasPrefix(first, "rs") {
		t.Fatalf("first request: %q, %v", first, err)
	}

	var mu sync.Mutex
	var answers int
	var failure error
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			// TCP's retransmissions carry the request across the
			// restart: a generous bound.
			got, err := k.get("/", 30*time.Second)
			mu.Lock()
			if err == nil && got != first {
				err = &wrongServer{got: got, want: first}
			}
			if err != nil {
				failure = err
				mu.Unlock()
				return
			}
			answers++
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-done
	})
	status := func() (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return answers, failure
	}
	progress := func(n int, what string) {
		t.Helper()
		wait.For(t, 40*time.Second, func() bool {
			a, err := status()
			if err != nil {
				t.Fatalf("the connection broke %s after %d answers: %v\nuvsd:\n%s", what, a, err, u.proc.Output())
			}
			return a >= n
		}, "%d answers on the connection %s", n, what)
	}
	progress(5, "before the kill")

	u.kill(t)
	killedAt, _ := status()
	start := time.Now()
	u = startUVSD(t, l.dir, drMHRules, "--sysctl", "sloppy_tcp=1")
	progress(killedAt+10, "after the restart")
	t.Logf("the connection answered 10 more requests %v after the restart began (%d before the kill)",
		time.Since(start).Round(time.Millisecond), killedAt)
	close(stop)
	<-done
	if _, err := status(); err != nil {
		t.Fatal(err)
	}
}

type wrongServer struct{ got, want string }

func (e *wrongServer) Error() string {
	return "answered by " + e.got + ", the connection's real server is " + e.want
}
