package bgp

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gobgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/uvs-lb/uvs/internal/wait"
)

// router is a second GoBGP server playing the router: it listens on
// 127.0.0.1 and takes whatever the announcer sends.
type router struct {
	s    *server.BgpServer
	port uint16
}

func freePort(t *testing.T) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

func newRouter(t *testing.T, as, peerAS uint32) *router {
	t.Helper()
	r := &router{s: server.NewBgpServer(), port: freePort(t)}
	go r.s.Serve()
	ctx := context.Background()
	if err := r.s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: as, RouterId: "10.255.0.1", ListenPort: int32(r.port), ListenAddresses: []string{"127.0.0.1"},
	}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.s.Stop)
	if err := r.s.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: "127.0.0.1", PeerAsn: peerAS},
		Transport: &api.Transport{PassiveMode: true},
	}}); err != nil {
		t.Fatal(err)
	}
	return r
}

// route is what the router holds for one prefix.
type route struct {
	nexthop     string
	med         int64 // -1: none
	communities []uint32
}

// routes lists the router's IPv4 unicast routes.
func (r *router) routes(t *testing.T) map[string]route {
	t.Helper()
	var mu sync.Mutex
	out := map[string]route{}
	err := r.s.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: gobgp.RF_IPv4_UC},
		func(prefix gobgp.NLRI, paths []*apiutil.Path) {
			for _, p := range paths {
				rt := route{med: -1}
				for _, a := range p.Attrs {
					switch v := a.(type) {
					case *gobgp.PathAttributeNextHop:
						rt.nexthop = v.Value.String()
					case *gobgp.PathAttributeMultiExitDisc:
						rt.med = int64(v.Value)
					case *gobgp.PathAttributeCommunities:
						rt.communities = v.Value
					}
				}
				mu.Lock()
				out[prefix.String()] = rt
				mu.Unlock()
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func startAnnouncer(t *testing.T, r *router, hold time.Duration) *Announcer {
	t.Helper()
	cfg := Config{AS: 65001, RouterID: netip.MustParseAddr("10.0.0.1"), ListenPort: -1,
		Peers:       []Peer{{Addr: netip.MustParseAddr("127.0.0.1"), AS: 65000, Port: r.port, HoldTime: hold}},
		Communities: []uint32{65001<<16 | 100, 0xffffff01}, MED: 10, HasMED: true}
	a, err := Start(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	wait.For(t, 20*time.Second, func() bool {
		ps, err := a.Peers(context.Background())
		return err == nil && len(ps) == 1 && ps[0].Established
	}, "the session to the router to come up")
	return a
}

// TestAnnounceWithdraw: Set announces each VIP as a host route with next
// hop self (the session's local address), the MED and the communities,
// withdraws what leaves the set, and Close withdraws everything.
func TestAnnounceWithdraw(t *testing.T) {
	r := newRouter(t, 65000, 65001)
	a := startAnnouncer(t, r, 0)
	vips := []netip.Addr{netip.MustParseAddr("10.10.10.10"), netip.MustParseAddr("10.10.10.11")}
	if err := a.Set(vips); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, func() bool { return len(r.routes(t)) == 2 }, "two routes at the router (have %v)",
		wait.Lazy(func() any { return r.routes(t) }))
	got := r.routes(t)["10.10.10.10/32"]
	if got.nexthop != "127.0.0.1" || got.med != 10 || !slices.Equal(got.communities, []uint32{65001<<16 | 100, 0xffffff01}) {
		t.Errorf("route 10.10.10.10/32 = %+v, want next hop 127.0.0.1, MED 10, communities 65001:100 no-export", got)
	}
	if !slices.Equal(a.Announced(), vips) {
		t.Errorf("Announced() = %v, want %v", a.Announced(), vips)
	}

	// Quorum lost on .11: withdrawn, .10 stays.
	if err := a.Set(vips[:1]); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, func() bool {
		rs := r.routes(t)
		_, ok := rs["10.10.10.10/32"]
		return len(rs) == 1 && ok
	}, "only 10.10.10.10/32 at the router (have %v)", wait.Lazy(func() any { return r.routes(t) }))

	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, func() bool { return len(r.routes(t)) == 0 }, "no route left after Close (have %v)",
		wait.Lazy(func() any { return r.routes(t) }))
	if err := a.Set(vips); err != ErrStopped {
		t.Errorf("Set after Close: %v, want ErrStopped", err)
	}
}

// TestAnnounceBeforeSession: VIPs set before the session is up are sent
// once it comes up.
func TestAnnounceBeforeSession(t *testing.T) {
	port := freePort(t)
	cfg := Config{AS: 65001, RouterID: netip.MustParseAddr("10.0.0.1"),
		Peers: []Peer{{Addr: netip.MustParseAddr("127.0.0.1"), AS: 65000, Port: port}}}
	a, err := Start(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	if err := a.Set([]netip.Addr{netip.MustParseAddr("10.10.10.12")}); err != nil {
		t.Fatal(err)
	}
	// The router comes up on the port the announcer dials.
	r := &router{s: server.NewBgpServer(), port: port}
	go r.s.Serve()
	if err := r.s.StartBgp(context.Background(), &api.StartBgpRequest{Global: &api.Global{
		Asn: 65000, RouterId: "10.255.0.1", ListenPort: int32(port), ListenAddresses: []string{"127.0.0.1"},
	}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.s.Stop)
	if err := r.s.AddPeer(context.Background(), &api.AddPeerRequest{Peer: &api.Peer{
		Conf: &api.PeerConf{NeighborAddress: "127.0.0.1", PeerAsn: 65001}, Transport: &api.Transport{PassiveMode: true},
	}}); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 30*time.Second, func() bool { _, ok := r.routes(t)["10.10.10.12/32"]; return ok },
		"10.10.10.12/32 at the router once the session is up")
	if got := r.routes(t)["10.10.10.12/32"]; got.med != -1 || len(got.communities) != 0 {
		t.Errorf("route without MED or communities configured: %+v", got)
	}
}

func TestConfigErrors(t *testing.T) {
	good := func() Config {
		return Config{AS: 65001, RouterID: netip.MustParseAddr("10.0.0.1"),
			Peers: []Peer{{Addr: netip.MustParseAddr("10.0.9.1"), AS: 65000}}}
	}
	if c := good(); c.Validate() != nil {
		t.Fatalf("good config: %v", c.Validate())
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no AS", func(c *Config) { c.AS = 0 }, "local AS"},
		{"v6 router id", func(c *Config) { c.RouterID = netip.MustParseAddr("::1") }, "router id"},
		{"no router id", func(c *Config) { c.RouterID = netip.Addr{} }, "router id"},
		{"no peer", func(c *Config) { c.Peers = nil }, "no peer"},
		{"peer twice", func(c *Config) { c.Peers = append(c.Peers, c.Peers[0]) }, "twice"},
		{"passive without listener", func(c *Config) { c.Peers[0].Passive = true }, "passive needs a listen port"},
		{"ibgp multihop", func(c *Config) { c.Peers[0].AS = 65001; c.Peers[0].Multihop = 2 }, "multihop is for eBGP"},
		{"hold 2s", func(c *Config) { c.Peers[0].HoldTime = 2 * time.Second }, "hold time"},
		{"port", func(c *Config) { c.ListenPort = 70000 }, "listen port"},
	} {
		c := good()
		tc.edit(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
		if _, err := Start(context.Background(), c, nil); err == nil {
			t.Errorf("%s: Start accepted it", tc.name)
		}
	}
}
