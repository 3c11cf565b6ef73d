package director

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/dataplane/nic"
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

// TestNAPIFileDeadNamespace: the kernel gives a dead namespace's inode
// number to the next namespace it creates, so the NAPI state file a uvsd
// killed in a namespace now gone names a new one too. `uvsd --cleanup`
// (and a starting uvsd) must not turn off the newcomer's GRO, a feature
// the dead uvsd had turned on; a file of the namespace's own (its cookie)
// still restores.
func TestNAPIFileDeadNamespace(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	netnstest.RequireTool(t, "ethtool")
	uvsd := buildUVSD(t)
	a, b := netnstest.New(t, "nda"), netnstest.New(t, "ndb")
	netnstest.Veth(t, a, "a0", b, "b0")
	b.Exec(t, "ethtool", "-K", "b0", "gro", "on")
	gro := func() string {
		return strings.TrimSpace(b.Exec(t, "sh", "-c", "ethtool -k b0 | grep '^generic-receive-offload:'"))
	}
	var path string
	write := func(cookieDelta uint64) {
		t.Helper()
		err := b.Do(func() (err error) {
			if path, err = napiStateFile(); err != nil {
				return err
			}
			t.Cleanup(func() { _ = os.Remove(path) })
			if err := writeNAPIFile(path, []nic.RxState{{Ifname: "b0", Threaded: "0", Features: []string{"rx-gro"}}}); err != nil {
				return err
			}
			var f napiFile
			raw, err := os.ReadFile(path)
			if err == nil {
				err = json.Unmarshal(raw, &f)
			}
			if err != nil || f.Cookie == 0 || len(f.Interfaces) != 1 {
				return fmt.Errorf("state file %s: %+v, %v", path, f, err)
			}
			f.Cookie += cookieDelta
			raw, _ = json.Marshal(f)
			return os.WriteFile(path, raw, 0o644)
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	write(1) // a dead namespace's file
	b.Exec(t, uvsd, "--cleanup")
	if g := gro(); !strings.HasSuffix(g, ": on") {
		t.Fatalf("uvsd --cleanup restored a dead namespace's file: %s", g)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the dead namespace's file stays: %v", err)
	}
	write(0) // the namespace's own: GRO goes back off, as uvsd found it
	b.Exec(t, uvsd, "--cleanup")
	if g := gro(); !strings.HasSuffix(g, ": off") {
		t.Fatalf("uvsd --cleanup did not restore the namespace's own file: %s", g)
	}
}
