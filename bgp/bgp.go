// Package bgp announces the director's virtual IPs to routers by BGP, as
// Maglev, Katran's speakers, GLB and Cilium's L4LB do: every director
// announces each VIP it can serve as a host route (/32, /128) with itself
// as next hop, the routers spread flows over the directors by ECMP, and a
// VIP that loses its real servers, a director draining or stopping
// withdraws it. The BGP speaker is GoBGP (github.com/osrg/gobgp), run in
// process; this package only decides what is announced.
//
// It knows nothing of the data plane: the director hands it the set of
// VIPs to announce (Set) whenever that set may have changed.
package bgp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"sync"

	"github.com/google/uuid"
	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gobgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// connectRetry is how often a peer that is down is dialled again (GoBGP's
// default is 120 s: a router restarted after the director would wait that
// long).
const connectRetry = 5

// Announcer is a running BGP speaker announcing a set of VIPs.
type Announcer struct {
	s   *server.BgpServer
	cfg Config

	mu        sync.Mutex
	announced map[netip.Addr]uuid.UUID
	stopped   bool
}

// Start runs a GoBGP server with cfg's global settings and peers; it
// announces nothing until Set. log receives GoBGP's messages (nil: none).
func Start(ctx context.Context, cfg Config, log *slog.Logger) (*Announcer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	lvl := &slog.LevelVar{}
	lvl.Set(slog.LevelInfo)
	s := server.NewBgpServer(server.LoggerOption(log, lvl))
	go s.Serve()
	a := &Announcer{s: s, cfg: cfg, announced: map[netip.Addr]uuid.UUID{}}
	port := cfg.ListenPort
	if port <= 0 {
		port = -1 // GoBGP: no listener
	}
	if err := s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: cfg.AS, RouterId: cfg.RouterID.String(), ListenPort: port,
	}}); err != nil {
		s.Stop()
		return nil, fmt.Errorf("bgp: start (AS %d, router id %s, listen port %d): %w", cfg.AS, cfg.RouterID, cfg.ListenPort, err)
	}
	for _, p := range cfg.Peers {
		if err := s.AddPeer(ctx, &api.AddPeerRequest{Peer: apiPeer(p)}); err != nil {
			s.Stop()
			return nil, fmt.Errorf("bgp: peer %s: %w", p.Addr, err)
		}
	}
	return a, nil
}

func apiPeer(p Peer) *api.Peer {
	ap := &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: p.Addr.String(), PeerAsn: p.AS},
		Transport: &api.Transport{RemotePort: uint32(p.Port), PassiveMode: p.Passive},
		Timers:    &api.Timers{Config: &api.TimersConfig{ConnectRetry: connectRetry}},
	}
	if p.HoldTime > 0 {
		h := uint64(p.HoldTime.Seconds())
		ap.Timers.Config.HoldTime = h
		ap.Timers.Config.KeepaliveInterval = max(h/3, 1)
	}
	if p.Multihop > 0 {
		ap.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: uint32(p.Multihop)}
	}
	return ap
}

// path builds the announcement of vip: a host route, origin IGP, next
// hop unspecified — GoBGP replaces an unspecified next hop of a local
// route by the session's local address for eBGP and iBGP peers alike
// (table.UpdatePathAttrs), which is next-hop self — the communities and
// the MED.
func (a *Announcer) path(vip netip.Addr) (*apiutil.Path, error) {
	nlri, err := gobgp.NewIPAddrPrefix(netip.PrefixFrom(vip, vip.BitLen()))
	if err != nil {
		return nil, err
	}
	attrs := []gobgp.PathAttributeInterface{gobgp.NewPathAttributeOrigin(0)}
	fam := gobgp.RF_IPv4_UC
	if vip.Is4() {
		nh, err := gobgp.NewPathAttributeNextHop(netip.IPv4Unspecified())
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, nh)
	} else {
		fam = gobgp.RF_IPv6_UC
		mp, err := gobgp.NewPathAttributeMpReachNLRI(fam, []gobgp.PathNLRI{{NLRI: nlri}}, netip.IPv6Unspecified())
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, mp)
	}
	if a.cfg.HasMED {
		attrs = append(attrs, gobgp.NewPathAttributeMultiExitDisc(a.cfg.MED))
	}
	if len(a.cfg.Communities) > 0 {
		attrs = append(attrs, gobgp.NewPathAttributeCommunities(slices.Clone(a.cfg.Communities)))
	}
	return &apiutil.Path{Family: fam, Nlri: nlri, Attrs: attrs}, nil
}

// ErrStopped is returned by Set after Close.
var ErrStopped = errors.New("bgp: announcer stopped")

// Set makes vips the announced set: it announces those not announced yet
// and withdraws those announced but not in vips. An address that fails
// is left as it was and named in the error; the others still change.
func (a *Announcer) Set(vips []netip.Addr) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		return ErrStopped
	}
	return a.setLocked(vips)
}

func (a *Announcer) setLocked(vips []netip.Addr) error {
	want := map[netip.Addr]bool{}
	for _, v := range vips {
		want[v.Unmap()] = true
	}
	var errs []error
	for _, v := range a.sorted() {
		if want[v] {
			continue
		}
		if err := a.s.DeletePath(apiutil.DeletePathRequest{UUIDs: []uuid.UUID{a.announced[v]}}); err != nil {
			errs = append(errs, fmt.Errorf("bgp: withdraw %s: %w", v, err))
			continue
		}
		delete(a.announced, v)
	}
	add := make([]netip.Addr, 0, len(want))
	for v := range want {
		if _, ok := a.announced[v]; !ok {
			add = append(add, v)
		}
	}
	slices.SortFunc(add, func(x, y netip.Addr) int { return x.Compare(y) })
	for _, v := range add {
		if !v.IsValid() || v.IsUnspecified() {
			errs = append(errs, fmt.Errorf("bgp: announce %q: not an address", v))
			continue
		}
		p, err := a.path(v)
		if err == nil {
			var resp []apiutil.AddPathResponse
			resp, err = a.s.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{p}})
			if err == nil && len(resp) == 1 {
				a.announced[v] = resp[0].UUID
				continue
			}
			if err == nil {
				err = fmt.Errorf("%d answers to one path", len(resp))
			}
		}
		errs = append(errs, fmt.Errorf("bgp: announce %s: %w", v, err))
	}
	return errors.Join(errs...)
}

func (a *Announcer) sorted() []netip.Addr {
	out := make([]netip.Addr, 0, len(a.announced))
	for v := range a.announced {
		out = append(out, v)
	}
	slices.SortFunc(out, func(x, y netip.Addr) int { return x.Compare(y) })
	return out
}

// Announced returns the VIPs announced, sorted.
func (a *Announcer) Announced() []netip.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sorted()
}

// PeerState is one peer's session as GoBGP sees it.
type PeerState struct {
	Addr        netip.Addr
	AS          uint32
	State       string // idle, connect, active, opensent, openconfirm, established
	Established bool
}

// Peers returns the sessions' states, in configuration order.
func (a *Announcer) Peers(ctx context.Context) ([]PeerState, error) {
	got := map[string]*api.Peer{}
	if err := a.s.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		if p.Conf != nil {
			got[p.Conf.NeighborAddress] = p
		}
	}); err != nil {
		return nil, err
	}
	out := make([]PeerState, 0, len(a.cfg.Peers))
	for _, c := range a.cfg.Peers {
		ps := PeerState{Addr: c.Addr, AS: c.AS, State: "unknown"}
		if p := got[c.Addr.String()]; p != nil && p.State != nil {
			ps.State = sessionName(p.State.SessionState)
			ps.Established = p.State.SessionState == api.PeerState_SESSION_STATE_ESTABLISHED
		}
		out = append(out, ps)
	}
	return out, nil
}

func sessionName(s api.PeerState_SessionState) string {
	switch s {
	case api.PeerState_SESSION_STATE_IDLE:
		return "idle"
	case api.PeerState_SESSION_STATE_CONNECT:
		return "connect"
	case api.PeerState_SESSION_STATE_ACTIVE:
		return "active"
	case api.PeerState_SESSION_STATE_OPENSENT:
		return "opensent"
	case api.PeerState_SESSION_STATE_OPENCONFIRM:
		return "openconfirm"
	case api.PeerState_SESSION_STATE_ESTABLISHED:
		return "established"
	}
	return "state-" + strconv.Itoa(int(s))
}

// Close withdraws every VIP, then closes the sessions (a CEASE
// notification each) and stops the speaker. Set fails afterwards; Close
// again does nothing.
func (a *Announcer) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		return nil
	}
	a.stopped = true
	werr := a.setLocked(nil)
	// StopBgp sends each established peer a CEASE (peer
	// de-configured) and closes its session; the withdrawals queued
	// above go first on each session.
	// (Stop would do the same and log the error; there is no BFD or
	// gRPC server to stop besides.)
	serr := a.s.StopBgp(context.Background(), &api.StopBgpRequest{})
	if serr != nil {
		return errors.Join(werr, fmt.Errorf("bgp: stop: %w", serr))
	}
	return werr
}
