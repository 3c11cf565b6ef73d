package netnstest

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/wait"
)

func TestNamespaces(t *testing.T) {
	a := New(t, "nsa")
	b := New(t, "nsb")
	for _, n := range []*NS{a, b} {
		if !strings.HasPrefix(n.Name, Prefix+"ns") {
			t.Errorf("name %q lacks the prefix", n.Name)
		}
		if _, err := os.Stat(filepath.Join("/run/netns", n.Name)); err != nil {
			t.Errorf("namespace %s not created: %v", n.Name, err)
		}
	}
	if a.Name == b.Name {
		t.Fatalf("two namespaces named %s", a.Name)
	}
	Veth(t, a, "ta", b, "tb")
	a.AddrAdd(t, "ta", "198.18.7.1/24")
	b.AddrAdd(t, "tb", "198.18.7.2/24")
	a.AddrAdd(t, "ta", "fd00:7::1/64")

	// Inside a, the veth end exists; in the test's own namespace it
	// does not.
	ifi := a.Interface(t, "ta")
	if ifi.Flags&net.FlagUp == 0 {
		t.Errorf("ta is not up: %v", ifi.Flags)
	}
	if _, err := net.InterfaceByName("ta"); err == nil {
		t.Errorf("ta visible outside its namespace")
	}

	// Traffic crosses the pair.
	out := b.Exec(t, "ping", "-c", "1", "-W", "2", "198.18.7.1")
	if !strings.Contains(out, "1 received") {
		t.Errorf("ping: %s", out)
	}
	b.RouteAdd(t, "198.18.8.0/24", "via", "198.18.7.1")
	if got := b.IP(t, "route", "show", "198.18.8.0/24"); !strings.Contains(got, "via 198.18.7.1") {
		t.Errorf("route not added: %q", got)
	}
	if _, err := a.Run("false"); err == nil {
		t.Errorf("Run of a failing command returned no error")
	}

	// A process started in b runs there and is killed at cleanup.
	var p *Proc
	t.Run("start", func(t *testing.T) {
		p = b.Start(t, "sh", "-c", "ip -o link show tb && echo ready && exec sleep 60")
		wait.For(t, 5*time.Second, func() bool {
			select {
			case <-p.Done():
				t.Fatalf("process exited: %v: %q", p.Err(), p.Output())
			default:
			}
			return strings.Contains(p.Output(), "ready")
		}, "the process to say ready: %q", wait.Lazy(func() any { return p.Output() }))
	})
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		t.Fatalf("process still running after its test's cleanup")
	}
}

func TestDoError(t *testing.T) {
	n := &NS{Name: Prefix + "does-not-exist"}
	SkipIfNotRoot(t)
	if err := n.Do(func() error { return nil }); err == nil {
		t.Errorf("Do in a missing namespace succeeded")
	}
}
