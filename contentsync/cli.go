package contentsync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Usage is uvs-sync's help.
const Usage = `usage: uvs-sync [-d] [-r] [-o confxml.xml] [-n THREADS] [flags]

Keeps the real servers' copies of a tree identical to this one, as sersync
does: inotify events, coalesced and filtered, sent with rsync, several
targets in parallel, failures queued and retried.

sersync's options:
  -o FILE          read sersync's confxml.xml (the flags below add to it)
  -r               first sync the whole tree to every target
  -d               accepted: uvs-sync stays in the foreground (systemd, or &)
  -n THREADS       rsync runs at once (10)
  -m PLUGIN        plugins are not supported: an error

flags:
  --watch DIR              the tree to watch (<localpath watch>)
  --target DEST            repeatable: rsync://[user@]host[:port]/module,
                           [user@]host::module (rsync daemon), host:/path (ssh)
  --password-file FILE     rsync --password-file for the daemon targets
  --params "-artuz"        rsync's common parameters
  --timeout SECONDS        rsync --timeout
  --exclude REGEX          repeatable: drop changes of matching paths
  --crontab MINUTES        full sync every MINUTES (sersync's crontab)
  --state-dir DIR          failure queue and temporary files (/var/lib/uvs-sync)
  --window DURATION        gather changes this long before a batch (200ms)
  --retry-base DURATION    first retry of a failed sync (1s), doubling up to
  --retry-max DURATION     (failLog timeToExecute, 60m by default)
  --queue-max N            paths kept per target before a full sync instead (10000)
  --rsync BINARY           the rsync to run (rsync)
  --log-level LEVEL        debug, info, warn, error (info)
  --check                  read the configuration, print it and exit
`

// Main is uvs-sync: it parses args, runs until ctx is done, and returns
// the exit status.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, check, level, err := parseArgs(args)
	if errors.Is(err, errHelp) {
		fmt.Fprint(stdout, Usage)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "uvs-sync: %v\n", err)
		return 2
	}
	if err := o.Config.Validate(); err != nil {
		fmt.Fprintf(stderr, "uvs-sync: %v\n", err)
		return 2
	}
	if check {
		printConfig(stdout, o)
		return 0
	}
	log := newLogger(stderr, level)
	defer func() { _ = log.Sync() }()
	for _, w := range o.Config.Warnings {
		log.Warn(w)
	}
	o.Log = log
	s, err := New(o)
	if err != nil {
		fmt.Fprintf(stderr, "uvs-sync: %v\n", err)
		return 1
	}
	if err := s.Run(ctx); err != nil {
		log.Error("uvs-sync", zap.Error(err))
		return 1
	}
	return 0
}

var errHelp = errors.New("help")

// newLogger logs to w in the console encoding uvsd uses.
func newLogger(w io.Writer, level zapcore.Level) *zap.Logger {
	ec := zap.NewProductionEncoderConfig()
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(ec), zapcore.Lock(zapcore.AddSync(w)), level)
	return zap.New(core)
}

func printConfig(w io.Writer, o Options) {
	c := o.Config
	fmt.Fprintf(w, "watch %s\n", c.Watch)
	for _, t := range c.Targets {
		mode := "daemon"
		if t.SSH {
			mode = "ssh"
		}
		fmt.Fprintf(w, "target %s (%s", t.Dest(), mode)
		if t.PasswordFile != "" {
			fmt.Fprintf(w, ", --password-file=%s", t.PasswordFile)
		}
		fmt.Fprintln(w, ")")
	}
	fmt.Fprintf(w, "rsync %s --delete", strings.Join(c.Params, " "))
	if c.Timeout > 0 {
		fmt.Fprintf(w, " --timeout=%d", c.Timeout)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "events %+v\n", c.Events)
	for _, re := range c.Excludes {
		fmt.Fprintf(w, "exclude %s\n", re)
	}
	if c.Crontab > 0 {
		fmt.Fprintf(w, "crontab every %v, excluding %q\n", c.Crontab, c.CronExcludes)
	}
	fmt.Fprintf(w, "failure queue %s, retry every %v..%v\n", o.StateDir, o.RetryBase, o.RetryMax)
	for _, x := range c.Warnings {
		fmt.Fprintf(w, "warning: %s\n", x)
	}
}

// parseArgs reads sersync's short options (clustered as in -dro FILE) and
// the long flags.
func parseArgs(args []string) (o Options, check bool, level zapcore.Level, err error) {
	level = zapcore.InfoLevel
	o.StateDir = "/var/lib/uvs-sync"
	var confFile, watch, passFile, params string
	var targets, excludes []string
	timeout, crontab := -1, -1
	set := map[string]bool{}
	value := func(name string, i *int) (string, error) {
		if *i+1 >= len(args) {
			return "", fmt.Errorf("%s needs a value", name)
		}
		*i++
		return args[*i], nil
	}
	dur := func(name, v string) (time.Duration, error) {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return 0, fmt.Errorf("%s %q: want a duration > 0 (200ms, 2s)", name, v)
		}
		return d, nil
	}
	num := func(name, v string, min, max int) (int, error) {
		n, err := strconv.Atoi(v)
		if err != nil || n < min || n > max {
			return 0, fmt.Errorf("%s %q: want %d..%d", name, v, min, max)
		}
		return n, nil
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "-h" || a == "--help" || a == "-help" {
			return o, false, level, errHelp
		}
		if strings.HasPrefix(a, "--") {
			name, v, hasV := strings.Cut(a[2:], "=")
			get := func() (string, error) {
				if hasV {
					return v, nil
				}
				return value("--"+name, &i)
			}
			var x string
			switch name {
			case "check":
				check = true
				continue
			case "watch", "target", "password-file", "params", "timeout", "exclude", "crontab", "state-dir",
				"window", "retry-base", "retry-max", "queue-max", "rsync", "log-level":
				if x, err = get(); err != nil {
					return
				}
			default:
				return o, false, level, fmt.Errorf("unknown flag --%s (uvs-sync -h lists them)", name)
			}
			if name != "target" && name != "exclude" && set[name] {
				return o, false, level, fmt.Errorf("--%s given twice", name)
			}
			set[name] = true
			switch name {
			case "watch":
				watch = x
			case "target":
				targets = append(targets, x)
			case "password-file":
				passFile = x
			case "params":
				params = x
			case "timeout":
				timeout, err = num("--timeout", x, 0, 86400)
			case "exclude":
				excludes = append(excludes, x)
			case "crontab":
				crontab, err = num("--crontab", x, 0, 7*24*60)
			case "state-dir":
				o.StateDir = x
			case "window":
				o.Window, err = dur("--window", x)
			case "retry-base":
				o.RetryBase, err = dur("--retry-base", x)
			case "retry-max":
				o.RetryMax, err = dur("--retry-max", x)
			case "queue-max":
				o.QueueMax, err = num("--queue-max", x, 1, 10_000_000)
			case "rsync":
				o.Rsync = x
			case "log-level":
				if err = level.Set(x); err != nil {
					err = fmt.Errorf("--log-level %q: %w", x, err)
				}
			}
			if err != nil {
				return
			}
			continue
		}
		if !strings.HasPrefix(a, "-") || len(a) < 2 {
			return o, false, level, fmt.Errorf("unexpected argument %q (uvs-sync -h)", a)
		}
		// A cluster of sersync's short options: -dro FILE, -n10.
		for j := 1; j < len(a); j++ {
			c := a[j]
			arg := func() (string, error) {
				if j+1 < len(a) {
					v := a[j+1:]
					j = len(a)
					return v, nil
				}
				return value("-"+string(c), &i)
			}
			var x string
			switch c {
			case 'd':
				// sersync -d forks into the background; under systemd
				// (Type=simple) a daemon stays in the foreground.
			case 'r':
				o.FullAtStart = true
			case 'o':
				if x, err = arg(); err != nil {
					return
				}
				confFile = x
			case 'n':
				if x, err = arg(); err != nil {
					return
				}
				if o.Threads, err = num("-n", x, 1, 1000); err != nil {
					return
				}
			case 'm':
				if x, err = arg(); err != nil {
					return
				}
				return o, false, level, fmt.Errorf("-m %s: sersync's plugins (command, socket, refreshCDN) are not supported", x)
			default:
				return o, false, level, fmt.Errorf("unknown option -%c in %q (uvs-sync -h)", c, a)
			}
		}
	}
	cfg := DefaultConfig()
	if confFile != "" {
		f, ferr := os.Open(confFile)
		if ferr != nil {
			return o, false, level, ferr
		}
		cfg, err = ParseConfXML(f)
		f.Close()
		if err != nil {
			return o, false, level, fmt.Errorf("%s: %w", confFile, err)
		}
	}
	if watch != "" {
		cfg.Watch = watch
	}
	if params != "" {
		cfg.Params = strings.Fields(params)
	}
	if timeout >= 0 {
		cfg.Timeout = timeout
	}
	if crontab >= 0 {
		cfg.Crontab = time.Duration(crontab) * time.Minute
	}
	for _, e := range excludes {
		re, rerr := regexp.Compile(e)
		if rerr != nil {
			return o, false, level, fmt.Errorf("--exclude %q: %w", e, rerr)
		}
		cfg.Excludes = append(cfg.Excludes, re)
	}
	for _, s := range targets {
		t, terr := ParseTarget(s)
		if terr != nil {
			return o, false, level, terr
		}
		if !t.SSH {
			t.PasswordFile = passFile
		}
		cfg.Targets = append(cfg.Targets, t)
	}
	if passFile != "" && len(targets) == 0 {
		return o, false, level, errors.New("--password-file applies to --target daemon targets; confxml.xml has <auth passwordfile>")
	}
	o.Config = cfg
	return o, check, level, nil
}
