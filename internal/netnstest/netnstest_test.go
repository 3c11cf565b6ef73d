package netnstest

import (
	"fmt"
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

// TestRemoveUVSState: the regular files naming the inode number as a
// whole number go; names with it inside a longer number, other numbers
// and directories stay.
func TestRemoveUVSState(t *testing.T) {
	dir := t.TempDir()
	const ino = 4026532694
	gone := []string{"sysctl-4026532694.json", "napi-4026532694.json", "lports-4026532694", "lports-4026532694-740668", "uvsd-net4026532694.log", "autostart-net4026532694.lock", "x-14026532694-4026532694"}
	kept := []string{"sysctl-40265326941.json", "sysctl-14026532694.json", "lports-4026532695-40265326940", "napi-4026532690.json"}
	for _, name := range append(gone, kept...) {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "d-4026532694"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := RemoveUVSState(dir, ino); err != nil {
		t.Fatal(err)
	}
	for _, name := range gone {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			t.Errorf("%s left", name)
		}
	}
	for _, name := range append(kept, "d-4026532694") {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s removed: %v", name, err)
		}
	}
	if err := RemoveUVSState(filepath.Join(dir, "none"), ino); err != nil {
		t.Errorf("missing directory: %v", err)
	}
}

// TestCleanupRemovesUVSState: a file in StateDir named by a namespace's
// inode number is gone once the test that made the namespace ended.
func TestCleanupRemovesUVSState(t *testing.T) {
	SkipIfNotRoot(t)
	var path string
	t.Run("ns", func(t *testing.T) {
		n := New(t, "state")
		ino, err := nsInode(n.Name)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(StateDir, 0o755); err != nil {
			t.Fatal(err)
		}
		path = filepath.Join(StateDir, fmt.Sprintf("netnstest-%d.json", ino))
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := os.Stat(path); err == nil {
		_ = os.Remove(path)
		t.Fatalf("%s left after the namespace's test ended", path)
	}
}
