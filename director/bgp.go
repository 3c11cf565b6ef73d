package director

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/uvs-lb/uvs/bgp"
	"github.com/uvs-lb/uvs/control"
)

// Scale-out: uvsd announces the VIPs it can serve to routers by BGP
// (GoBGP in process, package bgp), so that several directors with the
// same configuration share a VIP by ECMP. A VIP is announced while at
// least one of its services has a real server of weight > 0 (what a
// health checker's failure or ipvsadm -e -w 0 takes away) and it is not a
// VRRP standby VIP; it is withdrawn when that stops, on drain (SIGUSR2)
// and on shutdown (SIGTERM: withdraw, close the sessions, forward for
// --bgp-grace more, then stop).

// DefaultBGPGrace is how long uvsd keeps forwarding after withdrawing its
// VIPs on shutdown: packets the router sent before it installed the
// shrunk route still find a director.
const DefaultBGPGrace = time.Second

// DefaultDrainTimeout bounds a drain (SIGUSR2).
const DefaultDrainTimeout = 5 * time.Minute

// bgpVIPs returns the VIPs to announce, sorted: those of non-fwmark
// services with at least one real server of weight > 0 (several services
// on one VIP: announced while any of them has one, as go_keepalived's
// BGP notifier counts them), less the VIPs standby (VRRP backup).
func bgpVIPs(services []control.ServiceInfo, standby map[[16]byte]bool) []netip.Addr {
	alive := map[netip.Addr]bool{}
	for _, s := range services {
		k := s.Config.Key
		if k.IsFWMark() || !k.Addr.IsValid() {
			continue
		}
		vip := k.Addr.Unmap()
		if standby[vip.As16()] { // 16-byte form, IPv4 mapped, as Host.Standby keys it
			continue
		}
		for _, d := range s.Dests {
			if d.Weight() > 0 {
				alive[vip] = true
				break
			}
		}
	}
	out := make([]netip.Addr, 0, len(alive))
	for v := range alive {
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return out
}

// bgpState is the director's announcer (nil without --bgp-as) and
// whether it drains.
type bgpState struct {
	mu       sync.Mutex
	a        *bgp.Announcer
	draining bool
	last     []netip.Addr // logged when it changes
}

// startBGP starts the BGP speaker of Config.BGP (nothing without it): the
// sessions come up, nothing is announced until syncBGP. The returned stop
// withdraws everything, closes the sessions and keeps the workers
// forwarding for Config.BGPGrace; it may be called more than once.
func (d *Director) startBGP(ctx context.Context) (stop func(), err error) {
	if d.cfg.BGP == nil {
		return func() {}, nil
	}
	a, err := bgp.Start(ctx, *d.cfg.BGP, slog.New(zapSlog{d.log.Named("bgp")}))
	if err != nil {
		return nil, err
	}
	d.bgp.mu.Lock()
	d.bgp.a = a
	d.bgp.mu.Unlock()
	peers := make([]string, 0, len(d.cfg.BGP.Peers))
	for _, p := range d.cfg.BGP.Peers {
		peers = append(peers, p.String())
	}
	d.log.Info("BGP speaker started", zap.Uint32("as", d.cfg.BGP.AS), zap.Stringer("router-id", d.cfg.BGP.RouterID),
		zap.Strings("peers", peers))
	var once sync.Once
	return func() {
		once.Do(func() {
			d.bgp.mu.Lock()
			vips := a.Announced()
			err := a.Close()
			d.bgp.mu.Unlock()
			if err != nil {
				d.log.Warn("BGP: withdrawing on shutdown", errField(err))
			}
			d.log.Info("BGP: withdrawn and sessions closed", zap.Stringers("vips", vips), zap.Duration("grace", d.cfg.BGPGrace))
			if d.cfg.BGPGrace > 0 {
				time.Sleep(d.cfg.BGPGrace)
			}
		})
	}, nil
}

// syncBGP announces what bgpVIPs says now (nothing while draining).
func (d *Director) syncBGP() {
	d.bgp.mu.Lock()
	defer d.bgp.mu.Unlock()
	if d.bgp.a == nil {
		return
	}
	var want []netip.Addr
	if !d.bgp.draining {
		var standby map[[16]byte]bool
		if h := d.host.Load(); h != nil {
			standby = h.Standby
		}
		want = bgpVIPs(d.State.Services(), standby)
	}
	err := d.bgp.a.Set(want)
	if err != nil && !errors.Is(err, bgp.ErrStopped) {
		d.log.Error("BGP announcements", errField(err))
	}
	if got := d.bgp.a.Announced(); !slices.Equal(got, d.bgp.last) {
		d.log.Info("BGP: VIPs announced", zap.Stringers("vips", got))
		d.bgp.last = got
	}
}

// activeConns is the number of active connections (ipvsadm's ActiveConn
// summed over every real server: established TCP and SCTP).
func (d *Director) activeConns() int {
	n := 0
	for _, s := range d.State.Services() {
		for _, dst := range s.Dests {
			n += int(dst.ActiveConns())
		}
	}
	return n
}

// Drain withdraws every VIP (BGP), keeps forwarding, and returns once no
// connection is active or after timeout (or when ctx ends). New flows the
// routers still send while the withdrawal spreads are served as usual.
func (d *Director) Drain(ctx context.Context, timeout time.Duration) {
	d.bgp.mu.Lock()
	d.bgp.draining = true
	d.bgp.mu.Unlock()
	d.syncBGP()
	start := time.Now()
	d.log.Info("draining: VIPs withdrawn, waiting for the active connections to end",
		zap.Int("active", d.activeConns()), zap.Duration("timeout", timeout))
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		n := d.activeConns()
		if n == 0 {
			d.log.Info("drained: no active connection left", zap.Duration("after", time.Since(start).Round(time.Millisecond)))
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			d.log.Warn("drain timeout: stopping with connections still active", zap.Int("active", n))
			return
		case <-tick.C:
		}
	}
}

// bgpFlags are uvsd's --bgp-* flags.
type bgpFlags struct {
	as, routerID, med string
	listenPort        int
	peers, comms      stringList
}

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, " ") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

func (f *bgpFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.as, "bgp-as", "", "announce the VIPs by BGP from `AS` (the director's AS; enables BGP; see README \"Scale-out with BGP and ECMP\")")
	fs.StringVar(&f.routerID, "bgp-router-id", "", "BGP router `id` (an IPv4 address; required with --bgp-as)")
	fs.Var(&f.peers, "bgp-peer", "BGP peer (repeatable): `ADDR,as=AS[,port=PORT][,passive][,multihop=TTL][,hold=SECONDS]`")
	fs.IntVar(&f.listenPort, "bgp-listen-port", -1, "TCP `port` to accept BGP sessions on (179; -1: none, uvsd only dials out)")
	fs.Var(&f.comms, "bgp-community", "community attached to every announcement (repeatable): `AS:VALUE`, no-export, no-advertise, no-export-subconfed or graceful-shutdown")
	fs.StringVar(&f.med, "bgp-med", "", "MULTI_EXIT_DISC `value` of every announcement (default: none)")
}

// config turns the flags into the announcer's configuration: nil without
// --bgp-as, an error naming the flag and the value when one is wrong.
func (f *bgpFlags) config() (*bgp.Config, error) {
	if f.as == "" {
		switch {
		case f.routerID != "":
			return nil, errors.New("--bgp-router-id needs --bgp-as")
		case len(f.peers) > 0:
			return nil, errors.New("--bgp-peer needs --bgp-as")
		case len(f.comms) > 0:
			return nil, errors.New("--bgp-community needs --bgp-as")
		case f.med != "":
			return nil, errors.New("--bgp-med needs --bgp-as")
		case f.listenPort != -1:
			return nil, errors.New("--bgp-listen-port needs --bgp-as")
		}
		return nil, nil
	}
	c := &bgp.Config{}
	as, err := bgp.ParseAS(f.as)
	if err != nil {
		return nil, fmt.Errorf("--bgp-as: %w", err)
	}
	c.AS = as
	if f.routerID == "" {
		return nil, errors.New("--bgp-as needs --bgp-router-id (an IPv4 address)")
	}
	rid, err := netip.ParseAddr(f.routerID)
	if err != nil || !rid.Is4() {
		return nil, fmt.Errorf("--bgp-router-id %q: want an IPv4 address", f.routerID)
	}
	c.RouterID = rid
	if f.listenPort != -1 && (f.listenPort < 1 || f.listenPort > 65535) {
		return nil, fmt.Errorf("--bgp-listen-port %d: want 1 to 65535, or -1 for none", f.listenPort)
	}
	c.ListenPort = int32(f.listenPort)
	if len(f.peers) == 0 {
		return nil, errors.New("--bgp-as needs at least one --bgp-peer")
	}
	for _, s := range f.peers {
		p, err := bgp.ParsePeer(s)
		if err != nil {
			return nil, fmt.Errorf("--bgp-peer: %w", err)
		}
		c.Peers = append(c.Peers, p)
	}
	for _, s := range f.comms {
		v, err := bgp.ParseCommunity(s)
		if err != nil {
			return nil, fmt.Errorf("--bgp-community: %w", err)
		}
		c.Communities = append(c.Communities, v)
	}
	if f.med != "" {
		v, err := strconv.ParseUint(f.med, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("--bgp-med %q: want a number from 0 to 4294967295", f.med)
		}
		c.MED, c.HasMED = uint32(v), true
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("--bgp-*: %w", err)
	}
	return c, nil
}

// zapSlog hands GoBGP's slog records to uvsd's zap logger.
type zapSlog struct{ l *zap.Logger }

func (h zapSlog) Enabled(_ context.Context, l slog.Level) bool {
	return h.l.Core().Enabled(zapLevel(l))
}

func (h zapSlog) Handle(_ context.Context, r slog.Record) error {
	fields := make([]zap.Field, 0, r.NumAttrs())
	r.Attrs(func(a slog.Attr) bool {
		fields = append(fields, zap.Any(a.Key, a.Value.Any()))
		return true
	})
	if ce := h.l.Check(zapLevel(r.Level), r.Message); ce != nil {
		ce.Write(fields...)
	}
	return nil
}

func (h zapSlog) WithAttrs(as []slog.Attr) slog.Handler {
	fields := make([]zap.Field, 0, len(as))
	for _, a := range as {
		fields = append(fields, zap.Any(a.Key, a.Value.Any()))
	}
	return zapSlog{h.l.With(fields...)}
}

func (h zapSlog) WithGroup(name string) slog.Handler { return zapSlog{h.l.Named(name)} }

func zapLevel(l slog.Level) zapcore.Level {
	switch {
	case l >= slog.LevelError:
		return zapcore.ErrorLevel
	case l >= slog.LevelWarn:
		return zapcore.WarnLevel
	case l >= slog.LevelInfo:
		return zapcore.InfoLevel
	}
	return zapcore.DebugLevel
}
