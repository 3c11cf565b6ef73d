package khook

import (
	"github.com/uvs-lb/uvs/internal/netnstest"

	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"strings"
	"testing"

	"github.com/vishvananda/netns"
)

func requireRoot(t *testing.T) {
	t.Helper()
	netnstest.SkipIfNotRoot(t)
	netnstest.RequireTool(t, "ip")
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// testNS is a named network namespace deleted when the test ends.
type testNS struct {
	name string
	h    netns.NsHandle
}

func newNS(t *testing.T) *testNS {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "uvs-tk" + hex.EncodeToString(b)
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("open netns %s: %v", name, err)
	}
	t.Cleanup(func() { h.Close() })
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return &testNS{name: name, h: h}
}

// ip runs "ip -n NS args...".
func (n *testNS) ip(t *testing.T, args ...string) string {
	t.Helper()
	return run(t, append([]string{"ip", "-n", n.name}, args...)...)
}

// do runs fn with the calling thread inside the namespace (sockets created in
// fn stay in it).
func (n *testNS) do(t *testing.T, fn func() error) {
	t.Helper()
	if err := inNetNS(n.h, fn); err != nil {
		t.Fatal(err)
	}
}

// link connects a (interface an) and b (interface bn) with a veth pair and
// brings both ends up.
func link(t *testing.T, a *testNS, an string, b *testNS, bn string) {
	t.Helper()
	a.ip(t, "link", "add", an, "type", "veth", "peer", "name", bn, "netns", b.name)
	a.ip(t, "link", "set", an, "up")
	b.ip(t, "link", "set", bn, "up")
}
