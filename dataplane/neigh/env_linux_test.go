package neigh

import (
	"testing"

	"github.com/vishvananda/netns"

	"github.com/uvs-lb/uvs/internal/netnstest"
)

func requireRoot(t *testing.T) {
	t.Helper()
	netnstest.SkipIfNotRoot(t)
	netnstest.RequireTool(t, "ip")
}

// testNS is a netnstest namespace with an open handle, for the package's
// APIs that take one.
type testNS struct {
	*netnstest.NS
	name string
	h    netns.NsHandle
}

func newNS(t *testing.T) *testNS {
	t.Helper()
	ns := netnstest.New(t, "neigh")
	// No duplicate address detection on links made later: IPv6 neighbour
	// discovery works as soon as they are up.
	ns.Sysctl(t, "net.ipv6.conf.default.accept_dad", "0")
	return &testNS{NS: ns, name: ns.Name, h: ns.Handle(t)}
}

// ip runs "ip -n NS args...".
func (n *testNS) ip(t *testing.T, args ...string) string { return n.IP(t, args...) }

// do runs fn on a thread inside the namespace (sockets created in fn stay in it).
func (n *testNS) do(t *testing.T, fn func() error) {
	t.Helper()
	if err := n.Do(fn); err != nil {
		t.Fatal(err)
	}
}

// link connects a (interface an) and b (interface bn) with a veth pair, both up.
func link(t *testing.T, a *testNS, an string, b *testNS, bn string) {
	t.Helper()
	netnstest.Veth(t, a.NS, an, b.NS, bn)
}
