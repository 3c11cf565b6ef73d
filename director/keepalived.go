package director

// uvsd --keepalived FILE: the LVS half of keepalived's checker process.
// New installs the start-up table (keepalived.Config.Commands); Run starts
// one healthcheck.Checker per checker block and one healthcheck.RealServer
// per real server, and turns their events into ipvsadm commands on the
// control State, as keepalived's perform_svr_state and update_quorum_state
// do (reference §2.4–§2.7). The data plane follows through the snapshot
// the State publishes.
//
// Established connections of a real server taken out of the pool behave as
// IPVS's do on DELDEST with the default expire_nodest_conn=0: the
// connection entry keeps pointing at the removed destination, whose
// Available flag DelDest clears, so the worker drops the client's packets
// of those connections (dataplane/worker.go forward: CntDestGone) and the
// entry stays until it times out. Adding the real server back takes the
// same destination out of the service's trash (sched.Service.AddDest, like
// ip_vs_trash_get_dest), so its surviving connections work again. With
// inhibit_on_failure the destination stays with weight 0: no new
// connections are scheduled to it and its established ones keep working.
//
// SIGHUP (Director.ReloadKeepalived, kaRunner.reload) switches to a new
// file as keepalived does: kept servers keep their checkers and their
// connections. uvsadm --list-checkers and SIGUSR1 show the checkers
// (Director.Checkers).

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/uvs-lb/uvs/control"
	"github.com/uvs-lb/uvs/healthcheck"
	"github.com/uvs-lb/uvs/ipvsadm"
	"github.com/uvs-lb/uvs/keepalived"
	"github.com/uvs-lb/uvs/spec"
)

// pool is what the keepalived runner changes: the control State.
type pool interface {
	Apply(c *ipvsadm.Command) error
}

// kaOptions wire a keepalived runner; zero fields take the real clock,
// the real probers and the real script runner.
type kaOptions struct {
	// Checker is the base of every checker's options (Clock, Rand).
	Checker healthcheck.Options
	// Prober, when set, replaces the prober of every checker (tests).
	Prober func(*keepalived.Checker) healthcheck.Prober
	// Script, when set, replaces running a notify or quorum script.
	Script func(ctx context.Context, s *keepalived.Script)
	// Local reports whether an address is one of the director's (its
	// host addresses, refreshed every 2 s); nil: ha_suspend is not
	// applied and every checker runs.
	Local func(netip.Addr) bool
}

// kaRunner runs the checkers of one keepalived configuration.
type kaRunner struct {
	log  *zap.Logger
	cfg  *keepalived.Config
	pool pool
	opt  kaOptions

	// mu guards vss (the runner's goroutine changes it on reload; the
	// status view reads it). Lock order: mu, then a kaVS's mu.
	mu  sync.Mutex
	vss []*kaVS

	reloads chan kaReload
	done    chan struct{} // closed when Run returns

	ctx     context.Context
	scripts sync.WaitGroup

	// haTimer polls the addresses of the ha_suspend virtual servers;
	// haStopped (under mu) stops it.
	haTimer   healthcheck.Timer
	haStopped bool
}

// kaReload asks the running runner to switch to cfg.
type kaReload struct {
	cfg  *keepalived.Config
	done chan struct{}
}

// kaVS is a virtual server: its IPVS services and its real servers. mu
// serialises the pool changes of its real servers and its quorum.
type kaVS struct {
	vs     *keepalived.VirtualServer
	name   string // keepalived's "[10.0.1.100]:tcp:80"
	keys   []spec.ServiceKey
	rss    []*kaRS
	sorry  *kaRS // nil: no sorry server
	quorum *healthcheck.Quorum
	// suspended: ha_suspend has disabled the checkers (the address is
	// not the director's). Guarded by mu.
	suspended bool

	mu sync.Mutex
}

// kaRS is a real server (or the sorry server) and its checkers.
type kaRS struct {
	rs    *keepalived.RealServer
	name  string // "[10.0.2.11]:tcp:80"
	hc    *healthcheck.RealServer
	alive bool // guarded by the virtual server's mu
	// adj is what each FILE_CHECK with a weight adds to the configured
	// weight; dyn the weight each MISC_CHECK with misc_dynamic asks for
	// (absent after exit 0). Together keepalived's checkers' cur_weight.
	// Guarded by the virtual server's mu.
	adj, dyn map[*healthcheck.Checker]int64
}

// weight is the real server's weight in the pool while alive: the
// configured one plus the checkers' adjustments (keepalived's
// rs->iweight + Σ cur_weight, where a misc_dynamic script's cur_weight
// is its weight − iweight), clamped. The virtual server's mu is held.
func (r *kaRS) weight() uint32 {
	w := r.rs.Weight
	for _, a := range r.adj {
		w += a
	}
	for _, d := range r.dyn {
		w += d - r.rs.Weight
	}
	return realWeight(w)
}

// newKeepalived prepares the runner of cfg; Run starts its checkers.
func newKeepalived(cfg *keepalived.Config, p pool, log *zap.Logger, opt kaOptions) *kaRunner {
	k := &kaRunner{log: log, cfg: cfg, pool: p, opt: opt, reloads: make(chan kaReload), done: make(chan struct{})}
	for _, vs := range cfg.VirtualServers {
		k.vss = append(k.vss, k.newVS(vs))
	}
	return k
}

// newVS prepares a virtual server of k.cfg and its real servers' checkers.
func (k *kaRunner) newVS(vs *keepalived.VirtualServer) *kaVS {
	v := &kaVS{vs: vs, name: vsString(vs), keys: k.cfg.Keys(vs)}
	var all int64
	for _, rs := range vs.RealServers {
		all += int64(realWeight(rs.Weight))
		v.rss = append(v.rss, k.newRS(v, rs))
	}
	if vs.SorryServer != nil {
		v.sorry = &kaRS{rs: vs.SorryServer, name: rsString(vs, vs.SorryServer)}
	}
	q, h := healthcheck.ClampQuorum(vs.Quorum, vs.Hysteresis, all)
	qc := healthcheck.QuorumConfig{Quorum: q, Hysteresis: h, VS: v.name, SorryInhibit: vs.SorryServerInhibit}
	if v.sorry != nil {
		qc.SorryServer = v.sorry.name
	}
	v.quorum = healthcheck.NewQuorum(qc, 0)
	return v
}

// newRS prepares a real server of v and its checkers, alive unless one of
// them is alpha.
func (k *kaRunner) newRS(v *kaVS, rs *keepalived.RealServer) *kaRS {
	r := &kaRS{rs: rs, name: rsString(v.vs, rs), alive: !failedAtStart(rs)}
	r.hc = healthcheck.NewRealServer(r.name, func(ev healthcheck.RSEvent) { k.onEvent(v, r, ev) })
	for _, c := range rs.Checkers {
		cc, pr, err := k.checker(rs, c)
		if err != nil {
			k.log.Warn(c.Pos.String()+": "+c.Kind+" of "+r.name+" not run: "+err.Error(), zap.String("vs", v.name))
			continue
		}
		copt := k.opt.Checker
		copt.Logger = k.log
		if c.MiscDynamic && cc.Kind == healthcheck.KindMisc || cc.Kind == healthcheck.KindFile {
			copt.OnResult = func(hc *healthcheck.Checker, res healthcheck.Result) { k.onResult(v, r, hc, res) }
		}
		r.hc.AddChecker(cc, pr, copt)
	}
	return r
}

// Run starts the checkers, applies the reloads it is asked for, and
// stops the checkers when ctx is done; it returns once no checker runs
// and no script it started is left.
func (k *kaRunner) Run(ctx context.Context) {
	defer close(k.done)
	k.start(ctx)
	for {
		select {
		case <-ctx.Done():
			k.stop()
			return
		case r := <-k.reloads:
			k.reload(r.cfg)
			close(r.done)
		}
	}
}

// Reload hands cfg to Run and waits until it is applied; false when the
// runner has stopped.
func (k *kaRunner) Reload(cfg *keepalived.Config) bool {
	r := kaReload{cfg: cfg, done: make(chan struct{})}
	select {
	case k.reloads <- r:
	case <-k.done:
		return false
	}
	<-r.done
	return true
}

// start evaluates the start-up quorum of each virtual server and starts
// the checkers; ctx bounds the scripts.
func (k *kaRunner) start(ctx context.Context) {
	k.ctx = ctx
	n := 0
	for _, v := range k.vss {
		// Commands installed the start-up pool, quorum included; this only
		// brings the Quorum in step, logs and runs quorum_up/quorum_down.
		v.mu.Lock()
		if c, ok := v.quorum.Update(v.aliveSum(), true); ok {
			v.sorry.setAlive(c.AddSorry)
			k.quorumNotify(v, c)
		}
		v.mu.Unlock()
		k.haApply(v)
		for _, r := range v.rss {
			r.hc.Start()
			n += len(r.hc.Checkers())
		}
	}
	k.log.Info("keepalived checkers started", zap.Int("virtual-servers", len(k.vss)), zap.Int("checkers", n))
	if k.opt.Local != nil {
		k.mu.Lock()
		k.haTimer = k.clock().AfterFunc(haPoll, k.haTick)
		k.mu.Unlock()
	}
}

// haPoll is how often the addresses of the ha_suspend virtual servers
// are looked at (keepalived follows netlink address events; the director
// refreshes its addresses every 2 s).
const haPoll = 2 * time.Second

func (k *kaRunner) clock() healthcheck.Clock {
	if k.opt.Checker.Clock != nil {
		return k.opt.Checker.Clock
	}
	return healthcheck.RealClock{}
}

// haTick applies ha_suspend to every virtual server and re-arms.
func (k *kaRunner) haTick() {
	k.mu.Lock()
	if k.haStopped {
		k.mu.Unlock()
		return
	}
	vss := k.vss
	k.mu.Unlock()
	for _, v := range vss {
		k.haApply(v)
	}
	k.mu.Lock()
	if !k.haStopped {
		k.haTimer = k.clock().AfterFunc(haPoll, k.haTick)
	}
	k.mu.Unlock()
}

// haApply is ha_suspend for v (reference §2.8, check_api.c
// update_checker_activity): its checkers run only while one of its
// addresses is the director's; disabled ones keep their state and re-arm
// every delay_loop without probing.
func (k *kaRunner) haApply(v *kaVS) {
	if k.opt.Local == nil {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.vs.HASuspend {
		if v.suspended {
			v.suspended = false
			v.setEnabled(k, true, true)
		}
		return
	}
	local, hasAddr := false, false
	for _, key := range v.keys {
		if key.IsFWMark() {
			continue
		}
		hasAddr = true
		local = local || k.opt.Local(key.Addr)
	}
	if !hasAddr || local == !v.suspended {
		v.setEnabled(k, !v.suspended, false) // checkers of real servers added on reload
		return
	}
	v.suspended = !local
	v.setEnabled(k, local, true)
}

// setEnabled enables or disables the checkers of v, logging the change
// as keepalived does when log is set. v.mu is held.
func (v *kaVS) setEnabled(k *kaRunner, on, log bool) {
	for _, r := range v.rss {
		for _, c := range r.hc.Checkers() {
			c.SetEnabled(on)
			if !log {
				continue
			}
			if on {
				k.log.Info("Activating healthchecker for service " + c.Service() + " for VS " + v.name)
			} else {
				k.log.Info("Suspending healthchecker for service " + c.Service() + " for VS " + v.name)
			}
		}
	}
}

// stop stops the checkers and waits for them and for the scripts (which
// ctx's end kills).
func (k *kaRunner) stop() {
	k.mu.Lock()
	vss := k.vss
	k.haStopped = true
	if k.haTimer != nil {
		k.haTimer.Stop()
	}
	k.mu.Unlock()
	for _, v := range vss {
		for _, r := range v.rss {
			r.hc.Stop()
		}
	}
	k.scripts.Wait()
}

func (r *kaRS) setAlive(on bool) {
	if r != nil {
		r.alive = on
	}
}

// aliveSum is the quorum's weight sum: Σ real_weight of the alive real
// servers. v.mu is held.
func (v *kaVS) aliveSum() int64 {
	var sum int64
	for _, r := range v.rss {
		if r.alive {
			sum += int64(r.weight())
		}
	}
	return sum
}

// onEvent is perform_svr_state and do_rs_notifies for one real server
// event; it runs under the real server's lock, one event at a time.
func (k *kaRunner) onEvent(v *kaVS, r *kaRS, ev healthcheck.RSEvent) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if ev.Transition {
		verb := map[[2]bool]string{
			{true, false}:  "Adding service " + r.name + " to VS " + v.name,
			{false, false}: "Removing service " + r.name + " from VS " + v.name,
			{true, true}:   "Enabling service " + r.name + " of VS " + v.name,
			{false, true}:  "Disabling service " + r.name + " of VS " + v.name,
		}[[2]bool{ev.Alive, r.rs.Inhibit}]
		k.log.Info(verb)
		if v.quorum.PoolWritable() {
			if ev.Alive {
				k.addRS(v, r.rs, r.weight(), r.rs.Inhibit)
			} else {
				k.removeRS(v, r.rs, r.rs.Inhibit)
			}
		}
		r.alive = ev.Alive
	}
	if ev.Alive {
		k.script(r.rs.NotifyUp)
	} else {
		k.script(r.rs.NotifyDown)
	}
	if ev.Transition {
		k.quorumStep(v)
	}
}

// onResult applies the weight a probe asks for (misc_dynamic: exit
// status − 2, exit 0 the configured weight; FILE_CHECK: value × weight
// added to it) as keepalived's update_svr_wgt does: the weight changes in
// the pool (EDITDEST) only when the real server is alive and the pool is
// writable (quorum up, or no sorry server active), and the quorum is
// re-evaluated. A failed probe keeps the adjustment: the real server
// goes down, and comes back with the weight of its next success.
func (k *kaRunner) onResult(v *kaVS, r *kaRS, c *healthcheck.Checker, res healthcheck.Result) {
	if !res.OK {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	old := r.weight()
	switch {
	case c.Config().Kind == healthcheck.KindFile:
		if r.adj == nil {
			r.adj = map[*healthcheck.Checker]int64{}
		}
		r.adj[c] = int64(res.Weight) // 0 without HasWeight
	case res.HasWeight:
		if r.dyn == nil {
			r.dyn = map[*healthcheck.Checker]int64{}
		}
		r.dyn[c] = int64(res.Weight)
	default:
		delete(r.dyn, c) // exit 0: the configured weight
	}
	nw := r.weight()
	if nw == old {
		return
	}
	k.log.Info(fmt.Sprintf("Changing weight from %d to %d for %sactive service %s of VS %s",
		old, nw, map[bool]string{true: "", false: "in"}[r.alive], r.name, v.name))
	if !r.alive || !v.quorum.PoolWritable() {
		return
	}
	for _, key := range v.keys {
		if d, ok := destFor(r.rs, key, nw); ok {
			k.apply(&ipvsadm.Command{Kind: ipvsadm.CmdEditServer, Service: spec.Service{Key: key}, HasService: true, Dest: d})
		}
	}
	k.quorumStep(v)
}

// quorumStep re-evaluates the quorum of v after its alive weight changed
// and moves the pool and the sorry server as update_quorum_state does.
// v.mu is held.
func (k *kaRunner) quorumStep(v *kaVS) {
	c, ok := v.quorum.Update(v.aliveSum(), false)
	if !ok {
		return
	}
	k.quorumNotify(v, c)
	if c.RemoveSorry && v.sorry != nil {
		k.removeRS(v, v.sorry.rs, v.vs.SorryServerInhibit)
		v.sorry.alive = false
	}
	if c.AddAlive || c.RemoveAlive {
		for _, x := range v.rss {
			switch {
			case !x.alive:
			case c.AddAlive:
				k.addRS(v, x.rs, x.weight(), x.rs.Inhibit)
			default:
				k.removeRS(v, x.rs, x.rs.Inhibit)
			}
		}
	}
	if c.AddSorry && v.sorry != nil {
		k.addRS(v, v.sorry.rs, 1, v.vs.SorryServerInhibit)
		v.sorry.alive = true
	}
}

// quorumNotify logs a quorum change and runs quorum_up or quorum_down.
func (k *kaRunner) quorumNotify(v *kaVS, c healthcheck.QuorumChange) {
	for _, m := range c.Msgs {
		k.log.Info(m)
	}
	if c.Up {
		k.script(v.vs.QuorumUp)
	} else {
		k.script(v.vs.QuorumDown)
	}
}

// addRS puts a real server into every service of v (ADDDEST); an
// inhibited one that is present gets its weight back (EDITDEST), as
// keepalived's ipvs_cmd rewrites it.
func (k *kaRunner) addRS(v *kaVS, rs *keepalived.RealServer, w uint32, inhibit bool) {
	for _, key := range v.keys {
		d, ok := destFor(rs, key, w)
		if !ok {
			continue
		}
		c := ipvsadm.Command{Kind: ipvsadm.CmdAddServer, Service: spec.Service{Key: key}, HasService: true, Dest: d}
		if inhibit {
			c.Kind = ipvsadm.CmdEditServer
			if err := k.pool.Apply(&c); !errors.Is(err, syscall.ENOENT) {
				k.cmdResult(&c, err)
				continue
			}
			c.Kind = ipvsadm.CmdAddServer
		}
		err := k.pool.Apply(&c)
		if errors.Is(err, syscall.EEXIST) {
			err = nil // keepalived treats EEXIST on add as success
		}
		k.cmdResult(&c, err)
	}
}

// removeRS takes a real server out of every service of v (DELDEST), or
// sets its weight to 0 with inhibit_on_failure (EDITDEST).
func (k *kaRunner) removeRS(v *kaVS, rs *keepalived.RealServer, inhibit bool) {
	for _, key := range v.keys {
		d, ok := destFor(rs, key, 0)
		if !ok {
			continue
		}
		c := ipvsadm.Command{Kind: ipvsadm.CmdDelServer, Service: spec.Service{Key: key}, HasService: true, Dest: d}
		if inhibit {
			c.Kind = ipvsadm.CmdEditServer
		}
		err := k.pool.Apply(&c)
		if errors.Is(err, syscall.ENOENT) {
			err = nil // keepalived treats ENOENT on delete as success
		}
		k.cmdResult(&c, err)
	}
}

// cmdResult logs a failed command as keepalived's ipvs_cmd does.
func (k *kaRunner) cmdResult(c *ipvsadm.Command, err error) {
	if err == nil {
		return
	}
	no := syscall.EINVAL
	var ce *control.Error
	if errors.As(err, &ce) {
		no = ce.Errno
	}
	k.log.Error(fmt.Sprintf("IPVS cmd %s(%d) error: %v(%d)", cmdName(c.Kind), c.Kind, err, int(no)),
		zap.String("service", c.Service.Key.String()), zap.Stringer("dest", c.Dest.AddrPort()))
}

func cmdName(k ipvsadm.CmdKind) string {
	switch k {
	case ipvsadm.CmdAddServer:
		return "ADDDEST"
	case ipvsadm.CmdDelServer:
		return "DELDEST"
	case ipvsadm.CmdEditServer:
		return "EDITDEST"
	}
	return "CMD"
}

// script runs a notify or quorum script without a shell, with the words
// keepalived splits it into and no extra arguments (reference §2.7).
// It is killed when uvsd stops.
func (k *kaRunner) script(s *keepalived.Script) {
	if s == nil || s.Cmd == "" || k.ctx == nil {
		return
	}
	ctx := k.ctx
	k.scripts.Add(1)
	go func() {
		defer k.scripts.Done()
		if k.opt.Script != nil {
			k.opt.Script(ctx, s)
			return
		}
		argv, err := healthcheck.SplitMiscPath(s.Cmd)
		if err != nil {
			k.log.Warn("script " + strconv.Quote(s.Cmd) + ": " + err.Error())
			return
		}
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.WaitDelay = time.Second
		if u, g := k.scriptUser(s.User, s.Group); u != "" {
			if os.Geteuid() != 0 {
				k.log.Warn("script " + strconv.Quote(s.Cmd) + ": running as user " + u + " needs root; running as uvsd's user")
			} else if err := healthcheck.RunAs(cmd, u, g); err != nil {
				k.log.Warn("script "+strconv.Quote(s.Cmd)+" not run", zap.Error(err))
				return
			}
		}
		if out, err := cmd.CombinedOutput(); err != nil && ctx.Err() == nil {
			k.log.Warn("script "+strconv.Quote(s.Cmd)+" failed", zap.Error(err), zap.ByteString("output", out))
		}
	}()
}

// scriptUser is who a script runs as: its own `user [group]` (the
// words after a notify script, misc_path's user keyword), else
// global_defs' script_user.
func (k *kaRunner) scriptUser(user, group string) (string, string) {
	if user == "" && k.cfg != nil {
		return k.cfg.Global.ScriptUser, k.cfg.Global.ScriptGroup
	}
	return user, group
}

// destFor is the destination of rs in service key with weight w, as
// keepalived.Config.Commands builds it; false for a real server of the
// other family (unless tunnelled, or FULLNAT, which translates).
func destFor(rs *keepalived.RealServer, key spec.ServiceKey, w uint32) (spec.Dest, bool) {
	d := spec.Dest{Addr: rs.Addr, Port: rs.Port, Fwd: rs.Method.Fwd, Weight: w,
		UThreshold: rs.UThreshold, LThreshold: rs.LThreshold,
		TunType: rs.Method.TunType, TunPort: rs.Method.TunPort, TunCsum: rs.Method.TunCsum}
	if d.Fwd == spec.FwdRoute || d.Fwd == spec.FwdTunnel {
		d.Port = key.Port
	}
	if d.Fwd != spec.FwdTunnel {
		d.TunType, d.TunPort, d.TunCsum = 0, 0, 0
	}
	is4 := key.Addr.Is4()
	if key.IsFWMark() {
		is4 = !key.IPv6
	}
	if d.Addr.Is4() != is4 && d.Fwd != spec.FwdTunnel && d.Fwd != spec.FwdFullNAT {
		return spec.Dest{}, false
	}
	return d, true
}

// realWeight is keepalived's real_weight: the weight clamped to
// [0, INT32_MAX].
func realWeight(w int64) uint32 {
	return uint32(min(max(w, 0), math.MaxInt32))
}

// failedAtStart reports whether a real server starts down: one of its
// checkers is alpha.
func failedAtStart(rs *keepalived.RealServer) bool {
	for _, c := range rs.Checkers {
		if c.Alpha {
			return true
		}
	}
	return false
}

// protoWord is the protocol word of keepalived's service trio.
func protoWord(p spec.Proto) string {
	switch p {
	case spec.ProtoUDP:
		return "udp"
	case spec.ProtoSCTP:
		return "sctp"
	}
	return "tcp"
}

// vsString names a virtual server as keepalived's FMT_VS does:
// "[10.0.1.100]:tcp:80", "FWM 5", "[GROUP]:0".
func vsString(vs *keepalived.VirtualServer) string {
	switch {
	case vs.Group != "":
		return "[" + vs.Group + "]:" + strconv.Itoa(int(vs.Port))
	case vs.FWMark != 0:
		return "FWM " + strconv.FormatUint(uint64(vs.FWMark), 10)
	}
	return healthcheck.ServiceString(netip.AddrPortFrom(vs.Addr, vs.Port), protoWord(vs.Proto))
}

// rsString names a real server as keepalived's FMT_RS does.
func rsString(vs *keepalived.VirtualServer, rs *keepalived.RealServer) string {
	return healthcheck.ServiceString(netip.AddrPortFrom(rs.Addr, rs.Port), protoWord(vs.Proto))
}

var checkerKinds = map[string]healthcheck.Kind{
	"TCP_CHECK": healthcheck.KindTCP, "HTTP_GET": healthcheck.KindHTTP, "SSL_GET": healthcheck.KindSSL,
	"UDP_CHECK": healthcheck.KindUDP, "PING_CHECK": healthcheck.KindPing, "DNS_CHECK": healthcheck.KindDNS,
	"MISC_CHECK": healthcheck.KindMisc, "SMTP_CHECK": healthcheck.KindSMTP, "FILE_CHECK": healthcheck.KindFile,
}

// checker turns a checker block into the checker's configuration and its
// prober; an error says why the block cannot run.
func (k *kaRunner) checker(rs *keepalived.RealServer, c *keepalived.Checker) (healthcheck.CheckerConfig, healthcheck.Prober, error) {
	kind, ok := checkerKinds[c.Kind]
	if !ok {
		return healthcheck.CheckerConfig{}, nil, errors.New("checker type not supported by uvs")
	}
	ip, port := c.ConnectIP, c.ConnectPort
	if !ip.IsValid() {
		ip = rs.Addr
	}
	if port == 0 {
		port = rs.Port
	}
	cc := healthcheck.CheckerConfig{
		Kind: kind,
		Target: healthcheck.Target{Addr: netip.AddrPortFrom(ip, port), BindTo: c.BindTo, BindPort: c.BindPort,
			FWMark: c.FWMark, Timeout: c.ConnectTimeout},
		DelayLoop: c.DelayLoop, DelayBeforeRetry: c.DelayBeforeRetry, Warmup: max(c.Warmup, 0),
		Retry: uint(max(c.Retry, 0)), Alpha: c.Alpha, LogAllFailures: k.cfg.Global.CheckerLogAllFailures,
		FastRecovery: c.FastRecovery, FromStart: kind == healthcheck.KindMisc,
	}
	if c.BindIf != "" {
		k.log.Warn(c.Pos.String() + ": bind_if " + c.BindIf + " is not supported; probing without it")
	}
	if kind == healthcheck.KindFile {
		// keepalived watches the file with inotify; the checker reads it
		// every fileCheckPoll instead, and a change decides at once.
		if c.File == nil {
			return cc, nil, errors.New("track_file " + strconv.Quote(c.TrackFile) + " not defined")
		}
		cc.DelayLoop, cc.DelayBeforeRetry, cc.Warmup, cc.Retry, cc.Alpha = fileCheckPoll, fileCheckPoll, 0, 0, false
		cc.Service = "track_file " + c.File.Name
		if err := initTrackFile(c.File); err != nil {
			k.log.Warn(c.File.Pos.String() + ": init_file of track_file " + c.File.Name + ": " + err.Error())
		}
	}
	if k.opt.Prober != nil {
		return cc, k.opt.Prober(c), nil
	}
	p, err := k.prober(kind, rs, c)
	return cc, p, err
}

// prober builds the prober of a checker block.
func (k *kaRunner) prober(kind healthcheck.Kind, rs *keepalived.RealServer, c *keepalived.Checker) (healthcheck.Prober, error) {
	switch kind {
	case healthcheck.KindTCP:
		return healthcheck.TCPCheck{}, nil
	case healthcheck.KindHTTP, healthcheck.KindSSL:
		proto, err := healthcheck.ParseHTTPProtocol(c.HTTPProtocol)
		if err != nil {
			return nil, err
		}
		h := &healthcheck.HTTPGet{Protocol: proto, VirtualHost: c.Virtualhost, TLS: kind == healthcheck.KindSSL,
			EnableSNI: c.EnableSNI, SNIName: c.SNIName}
		for _, u := range c.URLs {
			x := healthcheck.URL{Path: u.Path, Digest: u.Digest, VirtualHost: u.Virtualhost}
			for _, r := range u.StatusCodes {
				x.Status = append(x.Status, healthcheck.StatusRange{Lo: r[0], Hi: r[1]})
			}
			if u.Regex != "" {
				re, err := regexp.Compile(u.Regex)
				if err != nil {
					return nil, fmt.Errorf("regex %q: %w", u.Regex, err)
				}
				x.Regex = re
			}
			h.URLs = append(h.URLs, x)
		}
		if len(h.URLs) == 0 {
			return nil, errors.New("no url")
		}
		return h, nil
	case healthcheck.KindUDP:
		u := &healthcheck.UDPCheck{RequireReply: c.RequireReply,
			MinReplyLength: int(c.MinReplyLength), MaxReplyLength: int(c.MaxReplyLength)}
		if c.Payload != "" {
			m, err := healthcheck.ParseHexMask(c.Payload, false)
			if err != nil {
				return nil, fmt.Errorf("payload: %w", err)
			}
			u.Payload = m.Data
		}
		if c.ReplyPattern != "" {
			m, err := healthcheck.ParseHexMask(c.ReplyPattern, true)
			if err != nil {
				return nil, fmt.Errorf("require_reply: %w", err)
			}
			u.Reply = m
		}
		return u, nil
	case healthcheck.KindPing:
		return &healthcheck.PingCheck{}, nil
	case healthcheck.KindDNS:
		typ, err := healthcheck.ParseDNSType(c.DNSType)
		if err != nil {
			return nil, err
		}
		return &healthcheck.DNSCheck{Type: typ, Name: c.DNSName}, nil
	case healthcheck.KindSMTP:
		return &healthcheck.SMTPCheck{HeloName: c.HeloName}, nil
	case healthcheck.KindMisc:
		if c.MiscPath == nil || c.MiscPath.Cmd == "" {
			return nil, errors.New("no misc_path")
		}
		argv, err := healthcheck.SplitMiscPath(c.MiscPath.Cmd)
		if err != nil {
			return nil, fmt.Errorf("misc_path: %w", err)
		}
		u, g := k.scriptUser(c.MiscPath.User, c.MiscPath.Group)
		return &healthcheck.MiscCheck{Argv: argv, Timeout: c.MiscTimeout, Dynamic: c.MiscDynamic,
			User: u, Group: g}, nil
	case healthcheck.KindFile:
		return &healthcheck.FileCheck{Path: c.File.Path, Weight: int32(c.FileWeight), Reverse: c.FileReverse}, nil
	}
	return nil, errors.New("checker type not supported by uvs")
}

// fileCheckPoll is how often a FILE_CHECK reads its file: the stand-in
// for keepalived's inotify watch (a change is seen within it).
const fileCheckPoll = time.Second

// initTrackFile does init_file: the file is written with the initial
// value if it does not exist, or always with overwrite.
func initTrackFile(tf *keepalived.TrackFile) error {
	if !tf.Init {
		return nil
	}
	flag := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if tf.InitOverwrite {
		flag = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(tf.Path, flag, 0o644)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "%d\n", tf.InitValue)
	return errors.Join(err, f.Close())
}

// hostLocal reports whether a is one of the director's addresses, as
// refreshHost last read them (ha_suspend).
func (d *Director) hostLocal(a netip.Addr) bool {
	h := d.host.Load()
	return h != nil && h.Local[a.As16()]
}

// startKeepalived starts the checkers of Config.Keepalived, if any; the
// function it returns waits until they have stopped, after ctx is done.
func (d *Director) startKeepalived(ctx context.Context) (wait func()) {
	if d.ka == nil {
		return func() {}
	}
	if d.ka.opt.Local == nil {
		d.ka.opt.Local = d.hostLocal // ha_suspend
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.ka.Run(ctx)
	}()
	return func() { <-done }
}

// ErrNoKeepalived is ReloadKeepalived's error for a director started
// without --keepalived.
var ErrNoKeepalived = errors.New("not running with --keepalived")

// ReloadKeepalived switches a running uvsd --keepalived to cfg as
// keepalived does on SIGHUP (kaRunner.reload); it returns once the table
// and the checkers follow cfg, or the director has stopped. The VRRP
// instances followed (unless --vrrp names another file) and
// lvs_sync_daemon follow cfg too (reloadVRRP).
func (d *Director) ReloadKeepalived(cfg *keepalived.Config) error {
	if d.ka == nil {
		return ErrNoKeepalived
	}
	if !d.ka.Reload(cfg) {
		return errors.New("keepalived checkers stopped")
	}
	d.reloadVRRP(cfg)
	return nil
}

// Checkers lists the health checkers of --keepalived with their state,
// last result and next run (uvsadm --list-checkers); none without it.
func (d *Director) Checkers() []ipvsadm.CheckerView {
	if d.ka == nil {
		return nil
	}
	return d.ka.checkerViews(time.Now())
}

// reload switches the runner to nc, keepalived's way on SIGHUP (reference
// §2.8; keepalived's clear_diff_services and migrate_checkers):
//
//   - a virtual server of both configurations (same address, port and
//     protocol, fwmark or group) is kept: its changed service parameters
//     (lb_algo, persistence, ops, …) are applied with -E, and its
//     services added or removed with its group's addresses;
//   - a real server of both (same address and port) whose checker blocks
//     are unchanged is kept with its checkers, their state and schedule
//     (no new probe from scratch, no flap) and its connections; a changed
//     weight, forwarding method or threshold is applied with -e;
//   - removed real servers and virtual servers are deleted ("Removing
//     service …") after their checkers stop;
//   - new ones are added by the start-up rules (alpha: down until the
//     first success; inhibit_on_failure: in with weight 0) and their
//     checkers start. A real server whose checker blocks changed is
//     removed and added again.
//
// A changed lvs_timeouts is applied with --set; FULLNAT local addresses
// of a kept virtual server with -P/-Q. Not applied until a restart:
// lvs_flush (keepalived flushes only at start), and quorum, hysteresis and
// sorry_server of a kept virtual server (the quorum is re-evaluated with
// the new pool, against the old thresholds).
func (k *kaRunner) reload(nc *keepalived.Config) {
	oldCfg := k.cfg
	byID := make(map[string]*kaVS, len(k.vss))
	for _, v := range k.vss {
		byID[vsID(v.vs)] = v
	}
	type keptVS struct {
		v    *kaVS
		nvs  *keepalived.VirtualServer
		keep map[*keepalived.RealServer]*kaRS // new model → kept runner
	}
	var kept []keptVS
	var next, added []*kaVS
	var stopRS []*kaRS
	used := map[*kaVS]bool{}
	k.cfg = nc // newVS and newRS read it
	for _, nvs := range nc.VirtualServers {
		v := byID[vsID(nvs)]
		if v == nil || used[v] {
			nv := k.newVS(nvs)
			next, added = append(next, nv), append(added, nv)
			continue
		}
		used[v] = true
		kv := keptVS{v: v, nvs: nvs, keep: map[*keepalived.RealServer]*kaRS{}}
		olds := map[netip.AddrPort]*kaRS{}
		for _, r := range v.rss {
			olds[netip.AddrPortFrom(r.rs.Addr, r.rs.Port)] = r
		}
		for _, rs := range nvs.RealServers {
			id := netip.AddrPortFrom(rs.Addr, rs.Port)
			if r := olds[id]; r != nil && sameCheckers(r.rs, rs) {
				kv.keep[rs] = r
				delete(olds, id)
			}
		}
		for _, r := range v.rss {
			if olds[netip.AddrPortFrom(r.rs.Addr, r.rs.Port)] == r {
				stopRS = append(stopRS, r)
			}
		}
		kept = append(kept, kv)
		next = append(next, v)
	}
	var gone []*kaVS
	for _, v := range k.vss {
		if !used[v] {
			gone = append(gone, v)
			stopRS = append(stopRS, v.rss...)
		}
	}
	// Stop the checkers first: no event of a removed real server can put
	// it back once it is deleted. Events of kept ones wait on v.mu.
	for _, r := range stopRS {
		r.hc.Stop()
	}

	k.mu.Lock()
	defer k.mu.Unlock()
	og, ng := oldCfg.Global, nc.Global
	if (og.TimeoutTCP != ng.TimeoutTCP || og.TimeoutTCPFin != ng.TimeoutTCPFin || og.TimeoutUDP != ng.TimeoutUDP) &&
		(ng.TimeoutTCP != 0 || ng.TimeoutTCPFin != 0 || ng.TimeoutUDP != 0) {
		k.apply(&ipvsadm.Command{Kind: ipvsadm.CmdSetTimeout,
			TimeoutTCP: ng.TimeoutTCP, TimeoutTCPFin: ng.TimeoutTCPFin, TimeoutUDP: ng.TimeoutUDP})
	}
	newKeys := map[spec.ServiceKey]bool{}
	for _, vs := range nc.VirtualServers {
		for _, key := range nc.Keys(vs) {
			newKeys[key] = true
		}
	}
	for _, v := range gone {
		k.log.Info("Removing virtual server " + v.name)
		for _, key := range v.keys {
			if !newKeys[key] {
				k.apply(&ipvsadm.Command{Kind: ipvsadm.CmdDelService, Service: spec.Service{Key: key}, HasService: true})
				continue
			}
			// The service stays for another virtual server (a group
			// now naming the address): only this one's servers leave.
			for _, r := range append(v.rss[:len(v.rss):len(v.rss)], v.sorry) {
				if r != nil {
					k.setDest(key, r.rs, nil)
				}
			}
		}
	}
	var start []*kaRS
	for _, kv := range kept {
		start = append(start, k.migrate(oldCfg, kv.v, kv.nvs, kv.keep)...)
	}
	if len(added) > 0 {
		vss := make([]*keepalived.VirtualServer, len(added))
		for i, v := range added {
			vss[i] = v.vs
		}
		sub := &keepalived.Config{Groups: nc.Groups, LocalAddressGroups: nc.LocalAddressGroups, VirtualServers: vss}
		for _, c := range sub.Commands() {
			k.apply(&c)
		}
	}
	k.vss = next
	for _, v := range added {
		k.log.Info("Adding virtual server " + v.name)
		v.mu.Lock()
		if c, ok := v.quorum.Update(v.aliveSum(), true); ok {
			v.sorry.setAlive(c.AddSorry)
			k.quorumNotify(v, c)
		}
		v.mu.Unlock()
		start = append(start, v.rss...)
	}
	for _, v := range next {
		k.haApply(v)
	}
	n := 0
	for _, r := range start {
		r.hc.Start()
		n += len(r.hc.Checkers())
	}
	k.log.Info("keepalived configuration reloaded", zap.Int("virtual-servers", len(next)),
		zap.Int("removed-virtual-servers", len(gone)), zap.Int("added-virtual-servers", len(added)),
		zap.Int("stopped-real-servers", len(stopRS)), zap.Int("started-checkers", n))
}

// migrate moves the kept virtual server v from its configuration in old
// to nvs: keep maps the real servers of nvs that keep their runner. It
// returns the new real servers, whose checkers the caller starts.
func (k *kaRunner) migrate(old *keepalived.Config, v *kaVS, nvs *keepalived.VirtualServer, keep map[*keepalived.RealServer]*kaRS) []*kaRS {
	v.mu.Lock()
	defer v.mu.Unlock()
	oldVS := v.vs
	oldSvc, newSvc := serviceParams(old, oldVS), serviceParams(k.cfg, nvs)
	for _, key := range v.keys {
		if _, ok := newSvc[key]; !ok {
			k.apply(&ipvsadm.Command{Kind: ipvsadm.CmdDelService, Service: spec.Service{Key: key}, HasService: true})
		}
	}
	oldKeys := v.keys
	v.keys = k.cfg.Keys(nvs)
	for _, key := range v.keys {
		svc := newSvc[key]
		if o, ok := oldSvc[key]; !ok || !slices.Contains(oldKeys, key) {
			k.apply(&ipvsadm.Command{Kind: ipvsadm.CmdAddService, Service: svc, HasService: true})
			for _, la := range nvs.LocalAddrs {
				k.apply(&ipvsadm.Command{Kind: ipvsadm.CmdAddLaddr, Service: svc, HasService: true, Laddr: spec.Dest{Addr: la}})
			}
		} else {
			if !reflect.DeepEqual(o, svc) {
				k.log.Info("Updating virtual server " + v.name)
				k.apply(&ipvsadm.Command{Kind: ipvsadm.CmdEditService, Service: svc, HasService: true})
			}
			k.migrateLaddrs(svc, oldVS.LocalAddrs, nvs.LocalAddrs)
		}
	}
	writable := v.quorum.PoolWritable()
	v.vs = nvs
	inNew := map[*kaRS]bool{}
	for _, r := range keep {
		inNew[r] = true
	}
	for _, r := range v.rss {
		if inNew[r] {
			continue
		}
		k.log.Info("Removing service " + r.name + " from VS " + v.name)
		for _, key := range v.keys {
			if slices.Contains(oldKeys, key) {
				k.setDest(key, r.rs, nil)
			}
		}
	}
	var rss, start []*kaRS
	for _, rs := range nvs.RealServers {
		r := keep[rs]
		if r == nil {
			r = k.newRS(v, rs)
			k.log.Info("Adding service " + r.name + " to VS " + v.name)
			if writable {
				for _, key := range v.keys {
					k.setDest(key, rs, want(rs, r.weight(), r.alive, key))
				}
			}
			rss, start = append(rss, r), append(start, r)
			continue
		}
		prev, pw := r.rs, r.weight()
		r.rs = rs
		rss = append(rss, r)
		if !writable {
			continue
		}
		for _, key := range v.keys {
			w := want(rs, r.weight(), r.alive, key)
			if slices.Contains(oldKeys, key) && reflect.DeepEqual(w, want(prev, pw, r.alive, key)) {
				continue
			}
			k.setDest(key, rs, w)
		}
	}
	v.rss = rss
	k.quorumStep(v)
	return start
}

// migrateLaddrs moves the FULLNAT local addresses of svc from old to nw
// (-P, -Q).
func (k *kaRunner) migrateLaddrs(svc spec.Service, old, nw []netip.Addr) {
	for _, a := range nw {
		if !slices.Contains(old, a) {
			k.apply(&ipvsadm.Command{Kind: ipvsadm.CmdAddLaddr, Service: svc, HasService: true, Laddr: spec.Dest{Addr: a}})
		}
	}
	for _, a := range old {
		if !slices.Contains(nw, a) {
			k.apply(&ipvsadm.Command{Kind: ipvsadm.CmdDelLaddr, Service: svc, HasService: true, Laddr: spec.Dest{Addr: a}})
		}
	}
}

// want is the destination of rs in service key as the pool holds it,
// with weight w while alive: nil when absent (down without
// inhibit_on_failure, or of the other family).
func want(rs *keepalived.RealServer, w uint32, alive bool, key spec.ServiceKey) *spec.Dest {
	if !alive {
		if !rs.Inhibit {
			return nil
		}
		w = 0
	}
	d, ok := destFor(rs, key, w)
	if !ok {
		return nil
	}
	return &d
}

// setDest makes the destination of rs in service key d (nil: absent):
// -e, or -a when it is not there; -d.
func (k *kaRunner) setDest(key spec.ServiceKey, rs *keepalived.RealServer, d *spec.Dest) {
	if d == nil {
		old, ok := destFor(rs, key, 0)
		if !ok {
			return
		}
		k.apply(&ipvsadm.Command{Kind: ipvsadm.CmdDelServer, Service: spec.Service{Key: key}, HasService: true, Dest: old})
		return
	}
	c := ipvsadm.Command{Kind: ipvsadm.CmdEditServer, Service: spec.Service{Key: key}, HasService: true, Dest: *d}
	if err := k.pool.Apply(&c); !errors.Is(err, syscall.ENOENT) {
		k.cmdResult(&c, err)
		return
	}
	c.Kind = ipvsadm.CmdAddServer
	k.apply(&c)
}

// apply runs one command, treating EEXIST on an add and ENOENT/ESRCH on
// a delete as success, as keepalived's ipvs_cmd does.
func (k *kaRunner) apply(c *ipvsadm.Command) {
	err := k.pool.Apply(c)
	switch c.Kind {
	case ipvsadm.CmdAddService, ipvsadm.CmdAddServer, ipvsadm.CmdAddLaddr:
		if errors.Is(err, syscall.EEXIST) {
			err = nil
		}
	case ipvsadm.CmdDelService, ipvsadm.CmdDelServer, ipvsadm.CmdDelLaddr:
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ESRCH) {
			err = nil
		}
	}
	k.cmdResult(c, err)
}

// serviceParams returns the IPVS services of vs as cfg's start-up table
// adds them, by key.
func serviceParams(cfg *keepalived.Config, vs *keepalived.VirtualServer) map[spec.ServiceKey]spec.Service {
	sub := &keepalived.Config{Groups: cfg.Groups, LocalAddressGroups: cfg.LocalAddressGroups,
		VirtualServers: []*keepalived.VirtualServer{vs}}
	out := map[spec.ServiceKey]spec.Service{}
	for _, c := range sub.Commands() {
		if c.Kind == ipvsadm.CmdAddService {
			out[c.Service.Key] = c.Service
		}
	}
	return out
}

// vsID is what makes two virtual servers the same one across a reload
// (keepalived's vs_iseq): address, port and protocol; fwmark and family;
// or group, port and protocol.
func vsID(vs *keepalived.VirtualServer) string {
	return vsString(vs) + "/" + protoWord(vs.Proto) + "/" + strconv.FormatBool(vs.IPv6)
}

// sameCheckers reports whether two real server blocks have the same
// checker blocks (positions in the file aside): then the checkers keep
// running across a reload.
func sameCheckers(a, b *keepalived.RealServer) bool {
	if len(a.Checkers) != len(b.Checkers) {
		return false
	}
	for i := range a.Checkers {
		x, y := *a.Checkers[i], *b.Checkers[i]
		x.Pos, y.Pos = keepalived.Pos{}, keepalived.Pos{}
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}

// checkerViews lists the checkers for uvsadm --list-checkers, in
// configuration order.
func (k *kaRunner) checkerViews(now time.Time) []ipvsadm.CheckerView {
	type rsRef struct {
		vs, rs string
		hc     *healthcheck.RealServer
	}
	var refs []rsRef
	k.mu.Lock()
	for _, v := range k.vss {
		v.mu.Lock()
		for _, r := range v.rss {
			refs = append(refs, rsRef{v.name, r.name, r.hc})
		}
		v.mu.Unlock()
	}
	k.mu.Unlock()
	var out []ipvsadm.CheckerView
	for _, ref := range refs {
		for _, c := range ref.hc.Checkers() {
			st := c.Status()
			cfg := c.Config()
			cv := ipvsadm.CheckerView{VS: ref.vs, RS: ref.rs, Type: cfg.Kind.String(), Target: cfg.Target.Addr.String(),
				Up: st.Up, LastMsg: st.LastMsg, LastAt: st.LastAt, RetriesLeft: st.RetriesLeft, Next: -1}
			if !st.Next.IsZero() {
				cv.Next = max(st.Next.Sub(now), 0)
			}
			out = append(out, cv)
		}
	}
	return out
}
