package control

import (
	"bufio"
	"errors"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/ipvsadm"
	"github.com/uvs-lb/uvs/spec"
)

// Env is what Run needs besides the State and the command line.
type Env struct {
	// Daemons runs the connection-sync daemons (--start-daemon,
	// --stop-daemon, -L --daemon); nil means uvs has none to run.
	Daemons Daemons
	// Prog is argv[0] as typed; its base name selects the personality:
	// a name ending in "-save" behaves as ipvsadm-save, one ending in
	// "-restore" as ipvsadm-restore, anything else as ipvsadm. The name
	// (without those suffixes) is used in messages. Empty means "uvsadm".
	Prog string
	// Conns lists the live connections and templates for -Lnc and the
	// FULLNAT -G counts; nil means an empty table.
	Conns func() []conntrack.Listing
	// Rates supplies --rate figures and is reset by -Z; nil shows zeros.
	Rates *Estimator
	// ConnTabSize is the "(size=N)" of the version line; 0 means
	// ipvsadm.DefaultConnTab (4096, the kernel's default).
	ConnTabSize int
	// Privileged reports whether the caller may change the configuration
	// (a root peer). Unprivileged callers may list services; every change,
	// and the listing of connections, fails with "Permission denied (you
	// must be root)" and exit status 255.
	Privileged bool
	// Unavailable, when Run is called with a nil State, is the reason no
	// director can be reached; it completes ipvsadm's "Can't initialize
	// ipvs: ..." message.
	Unavailable string
	// Checkers lists the health checkers of uvsd --keepalived for
	// --list-checkers; nil (no keepalived file) lists none.
	Checkers func() []ipvsadm.CheckerView
	// LaddrConflicts returns how many FULLNAT connections found no free
	// local port on a local address (-G's CONFLICTS); nil shows zeros.
	LaddrConflicts func(laddr netip.Addr) uint64
	// Counters reads uvsd's run-time counters for --counters (a uvs
	// extension, open to every user as /proc/net/ip_vs_stats is); nil
	// prints the header alone.
	Counters func() Counters
}

// Run executes one ipvsadm 1.31 invocation against st, exactly as ipvsadm
// would against the kernel: it writes what ipvsadm writes to stdout and
// stderr and returns its exit status (0 success, 1 listing failure, 2
// usage/validation error, 255 popt error or rejected operation). args
// exclude argv[0] (env.Prog). stdin is read only by -R and the restore
// personality.
//
// Personalities (by env.Prog's base name, so symlinks work):
//   - "*-save" (ipvsadm-save, uvsadm-save): takes at most "-n", prints the
//     -S rules; any other argument prints "Usage: <prog> [-n]" to stderr
//     and exits 1, as the ipvsadm-save script does.
//   - "*-restore" (ipvsadm-restore, uvsadm-restore): ignores its arguments,
//     clears the table (-C), then restores stdin as -R does.
//
// -R reads one invocation per line: blank lines and lines starting with
// '#' are skipped (ipvsadm -R itself would choke on comments; uvs skips
// them), tokens "ipvsadm"/"uvsadm" are dropped. A usage or validation
// error stops the restore with its status; a rejected operation is
// printed and the restore continues; the status is that of the last line.
// "-R" inside -R gives the "Try ..." message (255), -h/-v end the restore
// with 0, as ipvsadm's exit() does.
//
// Sync daemons are env.Daemons's: --start-daemon and --stop-daemon call
// it (root only) and print what ipvsadm prints for the kernel's errno
// (daemonError: "Daemon has already run", "No daemon is running", "No
// such device", ...) with status 255; --stop-daemon stops the daemon of
// that state whatever its --syncid, as the kernel does (its DEL_DAEMON
// reads only the state). -L --daemon prints one line per running daemon,
// master first, and nothing when none runs. With a nil env.Daemons,
// --start-daemon fails with "Connection synchronization daemon is not
// supported by uvs" and --stop-daemon with "No daemon is running" (255).
// -S never saves daemons.
//
// st may be nil when no director is reachable: parse errors, -h and -v
// still work, and anything else prints ipvsadm's "Can't initialize ipvs"
// message with env.Unavailable and exits 2.
func Run(st *State, env Env, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	pers, prog := ipvsadm.ProgPersonality(env.Prog)
	r := &runner{st: st, env: env, prog: prog, out: stdout, errw: stderr}
	switch pers {
	case ipvsadm.AsSave:
		if !ipvsadm.SaveArgsOK(args) {
			r.errf(ipvsadm.SaveUsage(prog))
			return ipvsadm.ExitList
		}
		code, _ := r.invoke(append([]string{"-S"}, args...), nil, false)
		return code
	case ipvsadm.AsRestore:
		if code, _ := r.invoke([]string{"-C"}, nil, false); code != ipvsadm.ExitOK {
			return code
		}
		code, _ := r.invoke([]string{"-R"}, stdin, false)
		return code
	}
	code, _ := r.invoke(args, stdin, false)
	return code
}

type runner struct {
	st   *State
	env  Env
	prog string
	out  io.Writer
	errw io.Writer
}

// errf writes one line to stderr.
func (r *runner) errf(msg string) { _, _ = io.WriteString(r.errw, msg+"\n") }

// invoke runs one command line. stop reports that ipvsadm would have
// exited here (usage errors, listing failures, -h/-v), which ends a -R.
func (r *runner) invoke(args []string, stdin io.Reader, inRestore bool) (code int, stop bool) {
	cmd, code, done := ipvsadm.Answer(r.prog, args, r.out, r.errw)
	if done {
		return code, true
	}
	if r.st == nil {
		why := r.env.Unavailable
		if why == "" {
			why = "no uvs director in this network namespace"
		}
		r.errf(ipvsadm.Unavailable(why))
		return ipvsadm.ExitUsage, true
	}
	switch cmd.Kind {
	case ipvsadm.CmdList:
		return r.list(&cmd)
	case ipvsadm.CmdSave:
		err := ipvsadm.FormatSave(r.out, r.views(), cmd.List.Numeric)
		if err != nil {
			r.errf(err.Error())
			return ipvsadm.ExitList, true
		}
		return ipvsadm.ExitOK, false
	case ipvsadm.CmdRestore:
		if inRestore {
			r.errf("Try `" + r.prog + " -h' or '" + r.prog + " --help' for more information.")
			return ipvsadm.ExitPopt, true
		}
		return r.restore(stdin), false
	case ipvsadm.CmdGetLaddr:
		return r.getLaddr(&cmd)
	case ipvsadm.CmdListCheckers:
		var rows []ipvsadm.CheckerView
		if r.env.Checkers != nil {
			rows = r.env.Checkers()
		}
		if err := ipvsadm.FormatCheckers(r.out, rows); err != nil {
			return ipvsadm.ExitList, true
		}
		return ipvsadm.ExitOK, false
	case ipvsadm.CmdCounters:
		return r.counters(&cmd)
	case ipvsadm.CmdStartDaemon, ipvsadm.CmdStopDaemon:
		return r.daemon(&cmd), false
	}
	return r.change(&cmd), false
}

// daemon is --start-daemon and --stop-daemon.
func (r *runner) daemon(c *ipvsadm.Command) int {
	if !r.env.Privileged {
		return r.reject(strerror(c.Kind, syscall.EPERM))
	}
	d := r.env.Daemons
	var err error
	switch {
	case d == nil && c.Kind == ipvsadm.CmdStopDaemon:
		err = syscall.ESRCH
	case d == nil:
		err = &Error{Errno: syscall.EOPNOTSUPP, Msg: "Connection synchronization daemon is not supported by uvs"}
	case c.Kind == ipvsadm.CmdStopDaemon:
		err = d.StopDaemon(c.Daemon.State)
	default:
		err = d.StartDaemon(c.Daemon)
	}
	if err != nil {
		return r.reject(daemonError(c.Kind, err))
	}
	return ipvsadm.ExitOK
}

// daemonError turns a Daemons error into what ipvsadm 1.31 prints for
// the kernel's errno (libipvs ipvs_strerror): the start/stop-specific
// messages, then the ones for any command, then strerror(3). An *Error is
// printed as it is; an error carrying no errno by its own text.
func daemonError(kind ipvsadm.CmdKind, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var no syscall.Errno
	if !errors.As(err, &no) {
		return err
	}
	msg := ""
	switch {
	case kind == ipvsadm.CmdStartDaemon && no == syscall.EEXIST:
		msg = "Daemon has already run"
	case kind == ipvsadm.CmdStopDaemon && no == syscall.ESRCH:
		msg = "No daemon is running"
	case no == syscall.ENOPROTOOPT:
		msg = "Protocol not available"
	case no == syscall.EOPNOTSUPP:
		msg = "Operation not supported with IPv6"
	case no == syscall.EAFNOSUPPORT:
		msg = "Operation not supported with specified address family"
	case no == syscall.EMSGSIZE:
		msg = "Module is wrong version"
	default:
		// EPERM, EINVAL and ENOMEM have libipvs's words there; others
		// strerror's ("No such device" for ENODEV).
		return strerror(kind, no)
	}
	return &Error{Errno: no, Msg: msg}
}

// Daemons starts, stops and lists the connection synchronisation daemons
// (the director's connsync master and backup). The control server calls
// it from concurrent requests.
type Daemons interface {
	// StartDaemon starts the master or backup daemon (cfg.State); the
	// kernel's errors: EEXIST "Daemon has already run" for a second one
	// of a kind, ENODEV for an unknown interface.
	//
	// Errors are returned as a syscall.Errno (possibly wrapped), which Run
	// prints as ipvsadm does (daemonError), or as an *Error, printed as
	// it is; any other error is printed by its text. All exit 255.
	StartDaemon(cfg ipvsadm.DaemonConfig) error
	// StopDaemon stops the daemon of that state ("master" or "backup");
	// ESRCH "No daemon is running" when none runs.
	StopDaemon(state string) error
	// Daemons lists the running daemons, master first, with the
	// defaults filled in (as current kernels report them).
	Daemons() []ipvsadm.DaemonConfig
}

// reject prints a rejected operation's message and returns 255.
func (r *runner) reject(err error) int {
	var e *Error
	if errors.As(err, &e) {
		r.errf(e.Msg)
	} else {
		r.errf(err.Error())
	}
	return ipvsadm.ExitKernel
}

// change applies a state-changing command.
func (r *runner) change(c *ipvsadm.Command) int {
	if !r.env.Privileged {
		return r.reject(strerror(c.Kind, syscall.EPERM))
	}
	if err := r.st.Apply(c); err != nil {
		return r.reject(err)
	}
	if c.Kind == ipvsadm.CmdZero && r.env.Rates != nil {
		for _, si := range r.st.Services() {
			if c.HasService && si.Config.Key != c.Service.Key {
				continue
			}
			r.env.Rates.Reset(si.Stats)
			for _, d := range si.Dests {
				r.env.Rates.Reset(&d.Stats)
			}
		}
	}
	return ipvsadm.ExitOK
}

// restore is -R: one invocation per stdin line.
func (r *runner) restore(stdin io.Reader) int {
	if stdin == nil {
		return ipvsadm.ExitOK
	}
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	result := ipvsadm.ExitOK
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		args := fields[:0:0]
		for _, f := range fields {
			if f != "ipvsadm" && f != ipvsadm.DefaultProg && f != r.prog {
				args = append(args, f)
			}
		}
		if len(args) == 0 {
			continue
		}
		code, stop := r.invoke(args, nil, true)
		if stop {
			return code
		}
		result = code
	}
	if err := sc.Err(); err != nil {
		r.errf("restore: " + err.Error())
		return ipvsadm.ExitUsage
	}
	return result
}

func (r *runner) connTabSize() int {
	if r.env.ConnTabSize > 0 {
		return r.env.ConnTabSize
	}
	return ipvsadm.DefaultConnTab
}

// list is -L/-l in all its forms.
func (r *runner) list(c *ipvsadm.Command) (int, bool) {
	o := c.List
	var err error
	switch {
	case o.Connections && !r.env.Privileged:
		// The kernel's /proc/net/ip_vs_conn is 0440 root and its
		// netlink dump needs CAP_NET_ADMIN: connections are root's.
		return r.reject(strerror(c.Kind, syscall.EPERM)), true
	case o.Connections:
		err = ipvsadm.FormatConns(r.out, r.conns(), o.PersistentConn)
	case c.HasService:
		for _, v := range r.views() {
			if v.Service.Key == c.Service.Key {
				err = ipvsadm.FormatService(r.out, v, o)
				if err != nil {
					break
				}
				return ipvsadm.ExitOK, false
			}
		}
		if err == nil {
			r.errf(strerror(ipvsadm.CmdList, syscall.ESRCH).Error())
			return ipvsadm.ExitList, true
		}
	case o.Timeout:
		t := r.st.Timeouts()
		err = ipvsadm.FormatTimeout(r.out, secs(t.TCP), secs(t.TCPFin), secs(t.UDP))
	case o.Daemon:
		err = ipvsadm.FormatDaemon(r.out, r.daemons())
	default:
		err = ipvsadm.FormatList(r.out, r.views(), o, r.connTabSize())
	}
	if err != nil {
		r.errf(err.Error())
		return ipvsadm.ExitList, true
	}
	return ipvsadm.ExitOK, false
}

func secs(d time.Duration) uint32 { return uint32(d / time.Second) }

// daemons lists the running sync daemons, master first (list_daemon
// prints the kernel's answer in that order).
func (r *runner) daemons() []ipvsadm.DaemonConfig {
	if r.env.Daemons == nil {
		return nil
	}
	ds := r.env.Daemons.Daemons()
	out := make([]ipvsadm.DaemonConfig, 0, len(ds))
	for _, state := range []string{"master", "backup"} {
		for _, d := range ds {
			if d.State == state {
				out = append(out, d)
			}
		}
	}
	return out
}

func nonNeg(v int32) uint32 {
	if v < 0 {
		return 0
	}
	return uint32(v)
}

// Views is what uvsadm -Ln --stats lists: the services in insertion
// order with their real servers, counters and (with est, which may be nil)
// rates. The metrics endpoint reads it, so that its figures are the
// listing's.
func Views(st *State, est *Estimator) []ipvsadm.ServiceView {
	return (&runner{st: st, env: Env{Rates: est}}).views()
}

// views snapshots the State (and the estimator) for the formatters.
func (r *runner) views() []ipvsadm.ServiceView {
	infos := r.st.Services()
	out := make([]ipvsadm.ServiceView, 0, len(infos))
	for _, si := range infos {
		v := ipvsadm.ServiceView{Service: si.Config}
		if si.Stats != nil {
			v.Stats = statsView(load(si.Stats))
			v.Rate = r.env.Rates.Rate(si.Stats)
		}
		v.Dests = make([]ipvsadm.DestView, 0, len(si.Dests))
		for _, d := range si.Dests {
			v.Dests = append(v.Dests, ipvsadm.DestView{
				Dest:         d.Config(),
				ActiveConns:  nonNeg(d.ActiveConns()),
				InactConns:   nonNeg(d.InactConns()),
				PersistConns: nonNeg(d.PersistConns()),
				Stats:        statsView(load(&d.Stats)),
				Rate:         r.env.Rates.Rate(&d.Stats),
			})
		}
		out = append(out, v)
	}
	return out
}

func statsView(c [numEst]uint64) ipvsadm.StatsView {
	return ipvsadm.StatsView{Conns: c[estConns], InPkts: c[estInPkts], OutPkts: c[estOutPkts],
		InBytes: c[estInBytes], OutBytes: c[estOutBytes]}
}

func (r *runner) listings() []conntrack.Listing {
	if r.env.Conns == nil {
		return nil
	}
	return r.env.Conns()
}

// conns converts the connection table listing to -Lnc rows, in table
// order (the kernel prints in hash order).
func (r *runner) conns() []ipvsadm.ConnView {
	ls := r.listings()
	out := make([]ipvsadm.ConnView, 0, len(ls))
	for i := range ls {
		l := &ls[i]
		out = append(out, ipvsadm.ConnView{
			Proto:   spec.Proto(l.Proto),
			Expire:  uint32(l.Remaining / time.Second),
			State:   l.StateName(),
			Client:  l.Client,
			Virtual: l.Virtual,
			Dest:    l.Real,
		})
	}
	return out
}

// getLaddr is -G (DPVS's --get-laddr): the FULLNAT local addresses of one
// service with the number of connections using each, in DPVS's layout:
//
//	VIP:VPORT            TOTAL    LADDR                CONFLICTS  CONNS
//	10.0.0.1:80          2
//	                              192.168.0.200        0          3
//
// CONFLICTS is, as in DPVS, how many new connections found no free local
// port on that address (env.LaddrConflicts). A firewall-mark service is
// named "FWM  <mark>".
func (r *runner) getLaddr(c *ipvsadm.Command) (int, bool) {
	var svc *spec.Service
	for _, si := range r.st.Services() {
		if si.Config.Key == c.Service.Key {
			cfg := si.Config
			svc = &cfg
			break
		}
	}
	if svc == nil {
		// DPVS looks the service up first (ipvs_get_service).
		r.errf(strerror(ipvsadm.CmdList, syscall.ESRCH).Error())
		return ipvsadm.ExitKernel, false
	}
	k := svc.Key
	counts := make(map[netip.Addr]uint64, len(svc.LocalAddrs))
	for _, l := range r.listings() {
		if l.Template || !l.Local.IsValid() {
			continue
		}
		if k.IsFWMark() {
			if l.FWMark != k.FWMark {
				continue
			}
		} else if l.Proto != uint8(k.Proto) || l.Virtual.Addr().Unmap() != k.Addr.Unmap() || l.Virtual.Port() != k.Port {
			continue
		}
		counts[l.Local.Addr().Unmap()]++
	}
	var b strings.Builder
	b.WriteString(pad("VIP:VPORT", 20) + " " + pad("TOTAL", 8) + " " + pad("LADDR", 20) + " " +
		pad("CONFLICTS", 10) + " " + pad("CONNS", 10) + "\n")
	name := "FWM  " + strconv.FormatUint(uint64(k.FWMark), 10)
	if !k.IsFWMark() {
		name = netip.AddrPortFrom(k.Addr, k.Port).String()
	}
	b.WriteString(pad(name, 20) + " " + pad(strconv.Itoa(len(svc.LocalAddrs)), 8) + " \n")
	for _, a := range svc.LocalAddrs {
		var conflicts uint64
		if r.env.LaddrConflicts != nil {
			conflicts = r.env.LaddrConflicts(a)
		}
		b.WriteString(pad("", 20) + " " + pad("", 8) + " " + pad(a.String(), 20) + " " +
			pad(strconv.FormatUint(conflicts, 10), 10) + " " +
			pad(strconv.FormatUint(counts[a.Unmap()], 10), 10) + "\n")
	}
	if _, err := io.WriteString(r.out, b.String()); err != nil {
		return ipvsadm.ExitList, true
	}
	return ipvsadm.ExitOK, false
}

// pad is printf's "%-*s".
func pad(s string, w int) string {
	if len(s) >= w {
		return s
	}
	return s + strings.Repeat(" ", w-len(s))
}
