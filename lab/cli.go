package lab

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// Usage is uvs-lab's help text.
const Usage = `usage: uvs-lab COMMAND [SCENARIO|EXERCISE] [flags]

The classic LVS labs of the seeds, each in network namespaces in one command:
the director is configured with the ipvsadm commands a student would type
(printed as they run), a client sends real HTTP requests, and a table shows
which real server answered each and the director's reason for choosing it.

commands:
  list                      scenarios, break-it exercises, schedulers
  status                    what is up
  up SCENARIO               build it and configure the director (idempotent)
  run SCENARIO              up if needed, send requests, print the table,
                            down again unless it was up before or --keep
  explain SCENARIO          one request, captured at every hop: the frame's
                            addresses at each hop (the mode's rewrite)
  break EXERCISE            build, break, show the symptom and why, fix, show it works
  down [SCENARIO|EXERCISE]  remove it (all labs without a name): namespaces,
                            links, rules, processes
  demo                      nat, dr, tun and fullnat with real traffic, one summary table
  httpd --name NAME         the lab's real server (HTTP answering NAME; --root DIR: DIR's
                            files instead)

flags (up, run, explain):
  --sched S          scheduler: rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos
  --weights L        real server weights, e.g. rs1=3,rs2=1
  --persist N        persistence timeout in seconds (-p N)
run, explain:
  --requests N       requests to send (run, demo; default 8)
  --pcap DIR         write one pcap per hop into DIR (open with Wireshark or tcpdump -r)
  --keep             leave the lab up afterwards (also break)
all:
  -v, --verbose      print the plumbing commands too (namespaces, links, addresses)
  --prefix P         namespace prefix (default uvs-lab; namespaces are P-SCENARIO-ROLE)
  --state-dir D      state directory (default /run/uvs-lab)
  --bin D            directory of uvsd, uvsadm, uvs-rs, uvs-lab (default: uvs-lab's own)

Every command needs root (network namespaces). Ctrl-C cleans up.
`

// errUsage marks command-line mistakes (exit code 2).
var errUsage = errors.New("usage")

type usageError struct{ msg string }

func (e *usageError) Error() string        { return e.msg }
func (e *usageError) Is(target error) bool { return target == errUsage }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// Main is uvs-lab's command line. ctx is cancelled on Ctrl-C; it returns
// the exit code: 0 success, 1 failure, 2 a usage mistake.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := run(ctx, args, stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, Usage)
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "uvs-lab: %v\n\n%s", err, Usage)
		return 2
	}
	fmt.Fprintf(stderr, "uvs-lab: %v\n", err)
	return 1
}

type cliFlags struct {
	sched, weights, pcap, prefix, stateDir, bin string
	requests, persist                           int
	keep, verbose                               bool
	name, listen, tlsListen, cert, key, root    string
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "-h", "--help", "help":
		return flag.ErrHelp
	}
	var f cliFlags
	fs := flag.NewFlagSet("uvs-lab "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.prefix, "prefix", DefaultPrefix, "")
	fs.StringVar(&f.stateDir, "state-dir", DefaultStateDir, "")
	fs.StringVar(&f.bin, "bin", "", "")
	fs.BoolVar(&f.verbose, "v", false, "")
	fs.BoolVar(&f.verbose, "verbose", false, "")
	fs.StringVar(&f.sched, "sched", "", "")
	fs.StringVar(&f.weights, "weights", "", "")
	fs.IntVar(&f.persist, "persist", 0, "")
	fs.IntVar(&f.requests, "requests", 0, "")
	fs.StringVar(&f.pcap, "pcap", "", "")
	fs.BoolVar(&f.keep, "keep", false, "")
	fs.StringVar(&f.name, "name", "", "")
	fs.StringVar(&f.listen, "listen", ":80", "")
	fs.StringVar(&f.tlsListen, "tls", "", "")
	fs.StringVar(&f.cert, "cert", "", "")
	fs.StringVar(&f.key, "key", "", "")
	fs.StringVar(&f.root, "root", "", "")

	// One positional argument, before or after the flags.
	var pos []string
	for len(rest) > 0 {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return usagef("%s: %v", cmd, err)
		}
		rest = fs.Args()
		if len(rest) > 0 {
			pos = append(pos, rest[0])
			rest = rest[1:]
		}
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	allowed := map[string][]string{
		"list":    {},
		"status":  {},
		"up":      {"sched", "weights", "persist"},
		"run":     {"sched", "weights", "persist", "requests", "pcap", "keep"},
		"explain": {"sched", "weights", "persist", "pcap", "keep"},
		"break":   {"keep"},
		"down":    {},
		"demo":    {"requests"},
		"httpd":   {"name", "listen", "tls", "cert", "key", "root"},
	}
	ok, known := allowed[cmd]
	if !known {
		return usagef("unknown command %q", cmd)
	}
	common := []string{"prefix", "state-dir", "bin", "v", "verbose"}
	for name := range set {
		if !contains(ok, name) && !contains(common, name) {
			return usagef("%s does not take --%s", cmd, name)
		}
	}
	wantArg := map[string]int{"up": 1, "run": 1, "explain": 1, "break": 1}
	switch {
	case wantArg[cmd] == 1 && len(pos) != 1:
		if cmd == "break" && len(pos) == 0 {
			return usagef("break needs an exercise: %s", strings.Join(exerciseNames(), ", "))
		}
		return usagef("%s needs exactly one scenario (uvs-lab list shows them)", cmd)
	case cmd == "down" && len(pos) > 1:
		return usagef("down takes at most one name")
	case wantArg[cmd] == 0 && cmd != "down" && len(pos) > 0:
		return usagef("%s takes no argument (got %q)", cmd, pos[0])
	}

	if cmd == "httpd" {
		return serveCLI(ctx, f)
	}
	l, err := New(Options{Prefix: f.prefix, StateDir: f.stateDir, BinDir: f.bin, Out: stdout, Err: stderr, Verbose: f.verbose})
	if err != nil {
		return err
	}
	if cmd == "list" {
		l.List(stdout)
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("uvs-lab %s needs root: it creates network namespaces", cmd)
	}
	weights, err := ParseWeights(f.weights)
	if err != nil {
		return usagef("%v", err)
	}
	params := Params{Sched: f.sched, Weights: weights, Persist: f.persist}
	switch cmd {
	case "status":
		return l.Status(stdout)
	case "up":
		return l.Up(ctx, pos[0], params)
	case "run":
		_, err := l.Run(ctx, pos[0], RunOptions{Params: params, Requests: f.requests, Pcap: f.pcap, Keep: f.keep})
		return err
	case "explain":
		return l.Explain(ctx, pos[0], RunOptions{Params: params, Pcap: f.pcap, Keep: f.keep})
	case "break":
		res, err := l.Break(ctx, pos[0], f.keep)
		if err != nil {
			return err
		}
		if !res.Symptom {
			return fmt.Errorf("%s: the symptom did not show", pos[0])
		}
		if !res.Fixed {
			return fmt.Errorf("%s: the fix did not restore service", pos[0])
		}
		return nil
	case "down":
		name := ""
		if len(pos) == 1 {
			name = pos[0]
		}
		return l.Down(ctx, name)
	case "demo":
		_, err := l.Demo(ctx, f.requests)
		return err
	}
	return usagef("unknown command %q", cmd)
}

func serveCLI(ctx context.Context, f cliFlags) error {
	if f.name == "" {
		return usagef("httpd: --name is required")
	}
	cfg := ServerConfig{Name: f.name, CertFile: f.cert, KeyFile: f.key, Root: f.root}
	for _, a := range strings.Split(f.listen, ",") {
		if a = strings.TrimSpace(a); a != "" {
			cfg.HTTP = append(cfg.HTTP, a)
		}
	}
	for _, a := range strings.Split(f.tlsListen, ",") {
		if a = strings.TrimSpace(a); a != "" {
			cfg.HTTPS = append(cfg.HTTPS, a)
		}
	}
	if len(cfg.HTTPS) > 0 && (f.cert == "" || f.key == "") {
		return usagef("httpd: --tls needs --cert and --key")
	}
	return Serve(ctx, cfg)
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func exerciseNames() []string {
	var out []string
	for _, e := range exercises {
		out = append(out, e.Name)
	}
	return out
}
