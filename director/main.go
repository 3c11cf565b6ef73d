package director

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"go.uber.org/zap"

	"github.com/uvs-lb/uvs/control"
	"github.com/uvs-lb/uvs/control/wire"
	"github.com/uvs-lb/uvs/dataplane/afxdp"
	"github.com/uvs-lb/uvs/ipvsadm"
	"github.com/uvs-lb/uvs/keepalived"
	"github.com/uvs-lb/uvs/metrics"
	"github.com/uvs-lb/uvs/trace"
)

// Main is uvsd's command line: it parses flags and runs a director until
// SIGINT or SIGTERM. It returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("uvsd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rules := fs.String("rules", "", "rules `file` in ipvsadm-save format (uvsadm -S -n / ipvsadm -S -n)")
	ifaces := fs.String("iface", "", "comma-separated `interfaces` to serve (default: every up, non-loopback interface); they need not exist yet: each is served while it exists and is up")
	workers := fs.Int("workers", 0, "packet workers (default: one per RX queue, at most one per CPU)")
	conns := fs.Int("conns", 1<<20, "connection table capacity")
	level := fs.String("log-level", "info", "log `level`: debug, info, warn, error")
	logFormat := fs.String("log-format", LogConsole, "log `format`: console (one line per entry) or json (one JSON object per line); "+
		"repeated warnings are rate-limited per message (5 per 10 s, then 1 in 1000)")
	cleanup := fs.Bool("cleanup", false, "remove kernel hooks a crashed uvsd left in this namespace and restore the sysctls it changed, then exit")
	lportMin := fs.Uint("lport-min", 0, "FULLNAT local ports: lowest (0 with --lport-max 0: the longest run in 1024-65535 outside net.ipv4.ip_local_port_range and the ports listened on; a range overlapping ip_local_port_range is refused)")
	lportMax := fs.Uint("lport-max", 0, "FULLNAT local ports: highest")
	check := fs.Bool("check", false, "validate the rules file (or the --keepalived file) and exit")
	kaFile := fs.String("keepalived", "", "keepalived.conf `file`: install its IPVS table and run its health checkers, "+
		"adding and removing real servers as they pass and fail (with --check: print its warnings and the table keepalived would install at start)")
	defIO := DefaultIO
	if v := os.Getenv(IOEnv); v != "" {
		defIO = v
	}
	ioName := fs.String("io", defIO, "packet I/O `backend`: afpacket, afxdp, or auto (AF_XDP where it attaches natively to every interface, else AF_PACKET); default from $"+IOEnv)
	rxThreads := fs.Bool("rx-threads", true, "on the AF_PACKET backend and with the AF_XDP fast path, move the served interfaces' receive processing into NAPI threads "+
		"(GRO on, RPS CPUs become the threads', threaded=1; restored at exit and by --cleanup), so a flood on a worker's core cannot starve it; false leaves the interfaces as they are")
	fastPath := fs.Bool("fast-path", true, "on the AF_XDP backend, forward established IPv4 NAT, FULLNAT and DR connections in the XDP program itself "+
		"(to interfaces that take XDP-redirected frames: a veth only while its peer has GRO on or an XDP program)")
	xdpMode := fs.String("xdp-mode", "auto", "XDP attach `mode` for --io afxdp/auto: native, generic, or auto (native where the driver has it)")
	traceFile := fs.String("trace", "", "write one JSON line per scheduling decision to `file` (uvs-lab reads it)")
	defSock := wire.DefaultSocketName
	if v := os.Getenv(wire.SocketEnv); v != "" {
		defSock = v
	}
	dataFile := fs.String("data-file", DefaultDataFile, "`file` SIGUSR1 writes the health checkers' status to (uvsadm --list-checkers's table)")
	vrrpFile := fs.String("vrrp", "", "keepalived.conf `file` whose vrrp_instance VIPs uvsd follows (for --rules; with --keepalived its own file is followed): "+
		"such a VIP is served only while it is configured on its device, as keepalived --vrrp does on MASTER, and its lvs_sync_daemon drives the sync daemons")
	metricsAddr := fs.String("metrics", "", "serve Prometheus metrics on `HOST:PORT` (/metrics, with node_exporter's node_ipvs_* series; /healthz and /readyz for orchestration)")
	var bgpf bgpFlags
	bgpf.register(fs)
	bgpGrace := fs.Duration("bgp-grace", DefaultBGPGrace, "on SIGTERM with --bgp-as: keep forwarding this `long` after withdrawing the VIPs, while the routers move their flows")
	drainTimeout := fs.Duration("drain-timeout", DefaultDrainTimeout, "SIGUSR2 (drain) stops uvsd at the latest this `long` after withdrawing the VIPs")
	hashOrder := fs.String("hash-order", HashSorted, "`order` mh and sh build their tables in: sorted (by real-server address and port: directors with the same real servers agree on every flow) or list (the kernel's: newest real server first)")
	sysctls := DefaultSysctls()
	fs.Var(sysctlFlag{&sysctls}, "sysctl", "kernel IPVS sysctl `NAME=VALUE` (repeatable): backup_only=0|1, sync_threshold=\"T P\", sync_persist_mode=0|1, sync_version=0|1, sloppy_tcp=0|1, sloppy_sctp=0|1")
	sock := fs.String("control", defSock, "unix socket `name` for uvsadm: @NAME is abstract (this network namespace's), "+
		"else a filesystem path (made connectable by all; put it in a directory only root can write); empty: no control socket. "+
		"uvsd refuses to start when a process that is not root holds it")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: uvsd [--rules FILE | --keepalived FILE] [--iface IF,...] [flags]\n\n"+
			"uvsd is the uvs director: it serves the virtual services of the rules file on\n"+
			"this network namespace's interfaces. Change them at run time with uvsadm.\n"+
			"With --keepalived it serves keepalived.conf's virtual servers instead and runs\n"+
			"their health checkers, taking failed real servers out of the pool.\n\n"+
			"Signals: SIGINT and SIGTERM stop uvsd; SIGHUP re-reads the --keepalived file\n"+
			"(a file with a fatal error is refused and nothing changes; unchanged virtual\n"+
			"and real servers keep their checkers' state and their connections); SIGUSR1\n"+
			"writes the checkers' status (uvsadm --list-checkers) to --data-file; SIGUSR2\n"+
			"drains: withdraws the BGP announcements, keeps serving, and exits once no\n"+
			"connection is active (or after --drain-timeout).\n\n"+
			"Scale-out: with --bgp-as, --bgp-router-id and --bgp-peer uvsd announces each\n"+
			"VIP with a live real server to the routers by BGP (next hop self) and\n"+
			"withdraws it when it has none, on drain and on SIGTERM.\n\n"+
			"High availability: with --keepalived (or --vrrp FILE) uvsd follows the file's\n"+
			"vrrp_instance blocks as keepalived --vrrp runs them: a virtual_ipaddress is\n"+
			"served only while it is configured on its device (on MASTER); an instance is\n"+
			"MASTER while all its VIPs are. \"@uvs lvs_sync_daemon IF VI_1\" in global_defs\n"+
			"(read by uvsd, skipped by keepalived) runs the sync daemon as backup and as\n"+
			"master while VI_1 is MASTER; --sysctl backup_only=1 stops serving while the\n"+
			"backup daemon runs. --check also prints the instances followed (stderr).\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flagErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "uvsd: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *kaFile != "" {
		if *rules != "" {
			fmt.Fprintf(stderr, "uvsd: --keepalived and --rules cannot be used together\n")
			return 2
		}
		if *check {
			return checkKeepalived(*kaFile, *vrrpFile, stdout, stderr)
		}
	}
	bgpCfg, err := bgpf.config()
	if err != nil {
		fmt.Fprintf(stderr, "uvsd: %v\n", err)
		return 2
	}
	if *bgpGrace < 0 || *drainTimeout <= 0 {
		fmt.Fprintf(stderr, "uvsd: --bgp-grace %v / --drain-timeout %v: want a positive duration\n", *bgpGrace, *drainTimeout)
		return 2
	}
	if *hashOrder != HashSorted && *hashOrder != HashList {
		fmt.Fprintf(stderr, "uvsd: --hash-order %q: want sorted or list\n", *hashOrder)
		return 2
	}
	lg, err := newLogger(*logFormat, *level, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "uvsd: %v\n", err)
		return 2
	}
	log := lg.Logger
	defer func() { _ = log.Sync() }()

	if *cleanup {
		if err := Cleanup(); err != nil {
			fmt.Fprintf(stderr, "uvsd: cleanup: %v\n", err)
			return 1
		}
		return 0
	}
	if (*lportMin == 0) != (*lportMax == 0) || *lportMax > 65535 || *lportMin > *lportMax {
		fmt.Fprintf(stderr, "uvsd: bad FULLNAT local port range %d-%d\n", *lportMin, *lportMax)
		return 2
	}
	backend, ioErr := ParseIO(*ioName)
	if ioErr != nil {
		fmt.Fprintf(stderr, "uvsd: --io: %v\n", ioErr)
		return 2
	}
	mode, modeErr := afxdp.ParseMode(*xdpMode)
	if modeErr != nil {
		fmt.Fprintf(stderr, "uvsd: --xdp-mode: %v\n", modeErr)
		return 2
	}
	cfg := Config{RulesFile: *rules, Workers: *workers, ConnCapacity: *conns, ControlSocket: *sock,
		LocalPortMin: uint16(*lportMin), LocalPortMax: uint16(*lportMax), IO: backend, XDPMode: mode, NoFastPath: !*fastPath, KeepRx: !*rxThreads, Sysctls: &sysctls,
		BGP: bgpCfg, BGPGrace: *bgpGrace, SortHashDests: *hashOrder == HashSorted}
	if *ifaces != "" {
		cfg.Interfaces = strings.Split(*ifaces, ",")
	}
	if *kaFile != "" {
		ka, err := loadKeepalived(*kaFile, log)
		if err != nil {
			fmt.Fprintf(stderr, "uvsd: %v\n", err)
			return 1
		}
		cfg.Keepalived = ka
	}
	if *vrrpFile != "" {
		vc, err := loadKeepalived(*vrrpFile, log)
		if err != nil {
			fmt.Fprintf(stderr, "uvsd: --vrrp: %v\n", err)
			return 1
		}
		if len(vc.VRRP) == 0 {
			log.Warn(*vrrpFile + ": no vrrp_instance to follow")
		}
		if len(vc.VirtualServers) > 0 && *kaFile != *vrrpFile {
			log.Info(*vrrpFile + ": --vrrp follows its vrrp_instances only; its virtual_server blocks are served with --keepalived")
		}
		cfg.VRRP = vc
	}
	d, err := New(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "uvsd: %v\n", err)
		return 1
	}
	if *check {
		fmt.Fprintf(stdout, "%s: %d services\n", *rules, len(d.State.Services()))
		if cfg.VRRP != nil {
			printVRRP(stderr, cfg.VRRP)
		}
		return 0
	}
	if *metricsAddr != "" {
		// Bound before anything starts: a bad or taken address stops
		// uvsd here.
		ln, err := metrics.Listen(*metricsAddr)
		if err != nil {
			fmt.Fprintf(stderr, "uvsd: %v\n", err)
			return 2
		}
		defer ln.Close()
		d.cfg.Metrics = ln
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// A drain (SIGUSR2) ends by cancelling: uvsd then stops as on SIGTERM.
	ctx, drained := context.WithCancel(ctx)
	defer drained()
	// Under systemd (Type=notify): READY=1 once uvsd serves, STOPPING=1
	// when told to stop (notify.go).
	notifySock := os.Getenv(NotifySocketEnv)
	d.cfg.Ready = func(d *Director) {
		if err := notify(notifySock, readyState(d)); err != nil {
			log.Warn("telling systemd uvsd is ready", errField(err))
		}
	}
	defer context.AfterFunc(ctx, func() {
		if err := notify(notifySock, "STOPPING=1"); err != nil {
			log.Warn("telling systemd uvsd stops", errField(err))
		}
	})()
	defer func() {
		if n := lg.suppressed.Load(); n > 0 {
			log.Info("repeated warnings suppressed by the rate limit", zap.Uint64("suppressed", n))
		}
	}()
	if *traceFile != "" {
		tw, err := trace.Create(*traceFile)
		if err != nil {
			fmt.Fprintf(stderr, "uvsd: --trace: %v\n", err)
			return 1
		}
		d.cfg.Trace = tw.Trace
		defer func() {
			if err := tw.Close(); err != nil {
				log.Warn("trace file", zap.Error(err))
			}
		}()
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	drain := func() {
		d.Drain(ctx, *drainTimeout)
		drained()
	}
	go handleSignals(ctx, d, log, sigs, *kaFile, *dataFile, drain)
	if err := d.Run(ctx); err != nil {
		log.Error("uvsd failed", zap.Error(err))
		return 1
	}
	return 0
}

// --hash-order's values.
const (
	HashSorted = "sorted"
	HashList   = "list"
)

// DefaultDataFile is where SIGUSR1 writes the checkers' status, after
// keepalived's /tmp/keepalived.data.
const DefaultDataFile = "/tmp/uvsd.data"

// handleSignals serves SIGHUP (reload the keepalived file), SIGUSR1
// (write the checkers' status to dataFile) and SIGUSR2 (drain, once)
// until ctx is done.
func handleSignals(ctx context.Context, d *Director, log *zap.Logger, sigs <-chan os.Signal, kaFile, dataFile string, drain func()) {
	draining := false
	for {
		select {
		case <-ctx.Done():
			return
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				reloadKeepalived(d, log, kaFile)
			case syscall.SIGUSR2:
				if draining {
					log.Info("SIGUSR2: already draining")
					continue
				}
				draining = true
				log.Info("SIGUSR2: draining")
				go drain()
			case syscall.SIGUSR1:
				if err := writeDataFile(d, dataFile); err != nil {
					log.Error("SIGUSR1: checker status", zap.Error(err))
				} else {
					log.Info("SIGUSR1: checker status written to " + dataFile)
				}
			}
		}
	}
}

// reloadKeepalived is SIGHUP: re-read the --keepalived file and switch to
// it; a file with a fatal error is refused and nothing changes.
func reloadKeepalived(d *Director, log *zap.Logger, kaFile string) {
	if kaFile == "" {
		log.Info("SIGHUP: nothing to reload without --keepalived")
		return
	}
	log.Info("Reloading keepalived configuration " + kaFile)
	cfg, err := loadKeepalived(kaFile, log)
	if err != nil {
		log.Error("reload refused, the running configuration stays", zap.Error(err))
		return
	}
	if err := d.ReloadKeepalived(cfg); err != nil {
		log.Error("reload", zap.Error(err))
	}
}

// writeDataFile writes the --list-checkers table to file, replacing it:
// a temporary file of the same directory renamed over it, so a reader
// never sees half a table and a symlink planted at file is replaced, not
// followed.
func writeDataFile(d *Director, file string) error {
	var b strings.Builder
	if err := ipvsadm.FormatCheckers(&b, d.Checkers()); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(file), filepath.Base(file)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after the rename, a no-op
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), file)
}

// loadKeepalived reads a keepalived.conf for uvsd --keepalived: it logs
// each diagnostic with its FILE:LINE and the ignored sections once, and
// returns a fatal error naming its line.
func loadKeepalived(file string, log *zap.Logger) (*keepalived.Config, error) {
	cfg, diags, err := keepalived.Load(file, keepaliveOptions())
	for _, d := range diags {
		if d.Severity == keepalived.SevError {
			log.Error(d.String())
		} else {
			log.Warn(d.String())
		}
	}
	if err != nil {
		return nil, err
	}
	if len(cfg.Ignored) > 0 {
		names := make([]string, 0, len(cfg.Ignored))
		for _, s := range cfg.Ignored {
			names = append(names, s.Name+" ("+s.Pos.String()+")")
		}
		log.Info("keepalived sections not acted on: " + strings.Join(names, ", "))
	}
	return cfg, nil
}

// checkKeepalived is uvsd --check --keepalived FILE: it prints each
// diagnostic as FILE:LINE: message and the ignored sections to stderr,
// and the start-up IPVS table in ipvsadm-save form to stdout.
func checkKeepalived(file, vrrpFile string, stdout, stderr io.Writer) int {
	cfg, diags, err := keepalived.Load(file, keepaliveOptions())
	for _, d := range diags {
		fmt.Fprintf(stderr, "%s\n", d)
	}
	if err != nil {
		fmt.Fprintf(stderr, "uvsd: %v\n", err)
		return 1
	}
	if len(cfg.Ignored) > 0 {
		names := make([]string, 0, len(cfg.Ignored))
		for _, s := range cfg.Ignored {
			names = append(names, s.Name+" ("+s.Pos.String()+")")
		}
		fmt.Fprintf(stderr, "uvsd: sections not acted on: %s\n", strings.Join(names, ", "))
	}
	st := control.New(control.Options{})
	if err := st.ApplyAll(cfg.Commands()); err != nil {
		fmt.Fprintf(stderr, "uvsd: %s: %v\n", file, err)
		return 1
	}
	vc := cfg
	if vrrpFile != "" {
		v, diags, err := keepalived.Load(vrrpFile, keepaliveOptions())
		for _, d := range diags {
			fmt.Fprintf(stderr, "%s\n", d)
		}
		if err != nil {
			fmt.Fprintf(stderr, "uvsd: --vrrp: %v\n", err)
			return 1
		}
		vc = v
	}
	printVRRP(stderr, vc)
	return control.Run(st, control.Env{Prog: "ipvsadm", Privileged: true}, []string{"-S", "-n"}, nil, stdout, stderr)
}

// keepaliveOptions are how uvsd reads a keepalived.conf: "@ID" lines for
// the short host name (keepalived's default config-id) and, besides,
// "@uvs" lines, which keepalived run with its default config-id skips —
// the place for lvs_sync_daemon in a file keepalived --vrrp shares.
func keepaliveOptions() keepalived.Options {
	host, _ := os.Hostname()
	host, _, _ = strings.Cut(host, ".")
	return keepalived.Options{ConfigID: host, AlsoID: "uvs", Getenv: os.Getenv}
}

// printVRRP is --check's account of VIP following, one line each:
//
//	uvsd: VRRP instance VI_1 (interface eth0, virtual_router_id 51, priority 100): follows 192.168.0.239 on eth0
//	uvsd: lvs_sync_daemon on eth1, syncid 51: backup, master while VRRP instance VI_1 is MASTER
func printVRRP(w io.Writer, cfg *keepalived.Config) {
	for _, vi := range cfg.VRRP {
		var vips []string
		for _, v := range vi.VIPs {
			dev := v.Dev
			if dev == "" {
				dev = vi.Interface
			}
			vips = append(vips, v.Prefix.Addr().String()+" on "+dev)
		}
		follows := "no virtual_ipaddress: never MASTER for uvsd"
		if len(vips) > 0 {
			follows = "follows " + strings.Join(vips, ", ")
		}
		fmt.Fprintf(w, "uvsd: VRRP instance %s (interface %s, virtual_router_id %d, priority %d): %s\n",
			vi.Name, vi.Interface, vi.VRID, vi.Priority, follows)
	}
	if cfg.SyncDaemon == nil {
		return
	}
	ls, err := newLVSSync(cfg.SyncDaemon, cfg.VRRP)
	if err != nil {
		fmt.Fprintf(w, "uvsd: %v\n", err)
		return
	}
	fmt.Fprintf(w, "uvsd: lvs_sync_daemon on %s, syncid %d: backup, master while VRRP instance %s is MASTER\n",
		ls.cfg.McastIfn, ls.cfg.SyncID, ls.instance)
}

// sysctlFlag is --sysctl NAME=VALUE, repeatable.
type sysctlFlag struct{ s *Sysctls }

func (f sysctlFlag) String() string { return "" }

func (f sysctlFlag) Set(v string) error {
	t := *f.s
	if err := t.Set(v); err != nil {
		return err
	}
	*f.s = t
	return nil
}
