package director

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/wait"
)

// TestNAPILifetime runs uvsd with the AF_PACKET backend on a veth whose
// receive RPS names CPU0: while it serves, d0's receive runs in a NAPI
// thread (threaded 1, GRO on, RPS off); after SIGTERM everything is as
// before; after SIGKILL the settings stay until `uvsd --cleanup`.
func TestNAPILifetime(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	netnstest.RequireTool(t, "ethtool")
	uvsd := buildUVSD(t)
	cli, dir := netnstest.New(t, "ncli"), netnstest.New(t, "ndir")
	netnstest.Veth(t, cli, "c0", dir, "d0")
	cli.AddrAdd(t, "c0", "10.9.1.2/24")
	dir.AddrAdd(t, "d0", "10.9.1.1/24")
	dir.Exec(t, "ethtool", "-K", "d0", "gro", "off", "rx-udp-gro-forwarding", "off")
	dir.Exec(t, "sh", "-c", "echo 1 > /sys/class/net/d0/queues/rx-0/rps_cpus")
	rules := filepath.Join(t.TempDir(), "rules")
	if err := os.WriteFile(rules, []byte("-A -u 10.9.1.100:9000 -s rr\n-a -u 10.9.1.100:9000 -r 10.9.1.3:9000 -m -w 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// state is what the test looks at: threaded, RPS mask, GRO.
	state := func() string {
		return strings.TrimSpace(dir.Exec(t, "sh", "-c",
			"cat /sys/class/net/d0/threaded /sys/class/net/d0/queues/rx-0/rps_cpus; ethtool -k d0 | grep -E '^(generic-receive-offload|rx-udp-gro-forwarding):'"))
	}
	before := state()
	if !strings.HasPrefix(before, "0\n") {
		t.Fatalf("d0 starts threaded:\n%s", before)
	}
	start := func(extra ...string) *netnstest.Proc {
		t.Helper()
		p := dir.Start(t, append([]string{uvsd, "--rules", rules, "--control", "", "--iface", "d0", "--io", "afpacket"}, extra...)...)
		waitOutput(t, p, "serving")
		return p
	}
	stop := func(p *netnstest.Proc, sig syscall.Signal) {
		t.Helper()
		if err := p.Cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		select {
		case <-p.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("uvsd did not exit after %v:\n%s", sig, p.Output())
		}
	}
	served := func(p *netnstest.Proc) {
		t.Helper()
		s := state()
		lines := strings.Split(s, "\n")
		if len(lines) != 4 || lines[0] != "1" || strings.Trim(lines[1], "0,") != "" ||
			!strings.HasSuffix(lines[2], ": on") || !strings.HasSuffix(lines[3], ": on") {
			t.Fatalf("while uvsd serves on AF_PACKET, want threaded 1, RPS 0, GRO and UDP GRO forwarding on; got:\n%s\nuvsd:\n%s", s, p.Output())
		}
		if !strings.Contains(p.Output(), "threaded NAPI\t{\"iface\": \"d0\"") {
			t.Errorf("no threaded NAPI line for d0 in uvsd's output:\n%s", p.Output())
		}
	}

	p := start()
	served(p)
	stop(p, syscall.SIGTERM)
	if after := state(); after != before {
		t.Fatalf("after SIGTERM d0 is not as before:\nbefore:\n%s\nafter:\n%s\nuvsd:\n%s", before, after, p.Output())
	}

	p = start()
	served(p)
	stop(p, syscall.SIGKILL)
	if s := state(); s == before {
		t.Fatalf("SIGKILL restored d0: the test cannot tell what --cleanup does")
	}
	dir.Exec(t, uvsd, "--cleanup")
	wait.For(t, 5*time.Second, func() bool { return state() == before },
		"uvsd --cleanup to restore d0:\nbefore:\n%s\nnow:\n%v", before, wait.Lazy(func() any { return state() }))

	// --rx-threads=false: the interface is left as it is.
	p = start("--rx-threads=false")
	if s := state(); s != before {
		t.Errorf("uvsd --rx-threads=false changed d0:\nbefore:\n%s\nwhile serving:\n%s", before, s)
	}
	stop(p, syscall.SIGTERM)
}
