package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Main is uvs-bench's command line; it returns the exit code.
//
//	uvs-bench [--quick] [--bin DIR] [--out DIR] [flags]   the comparative benchmark (root)
//	uvs-bench gen --netns NS --iface IF --dst IP[,IP] ... the generator alone
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "gen" {
		return genMain(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "render" {
		return renderMain(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("uvs-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "reduced run (3 runs, short windows, fewer TCP candidates): under three minutes")
	exe, _ := os.Executable()
	bin := fs.String("bin", filepath.Dir(exe), "`directory` holding uvsd, uvsadm and uvs-rs")
	out := fs.String("out", "bench/results", "results `directory`")
	runs := fs.Int("runs", 0, "runs per figure (default 5, quick 3)")
	only := fs.String("only", "", "comma-separated `candidates` to measure (default: all)")
	micro := fs.String("micro", "default", "`packages` whose Go benchmarks run afterwards (\"none\" to skip)")
	microTime := fs.String("micro-benchtime", "", "-benchtime of the Go benchmarks")
	noTable := fs.Bool("no-table", false, "skip the 1 k / 1 M connection-table figure")
	cpuRate := fs.Float64("cpu-rate", 0, "fixed offered `pps` of the CPU-cost figure (default 150000)")
	budget := fs.Duration("budget", 0, "time after which dirty runs are no longer re-run (default 20m; quick: no re-runs)")
	syncFig := fs.Bool("sync", false, "also measure the connection-sync figure: the master sync daemon's director CPU and sync traffic at 10 k new connections/s (about 1.5 min)")
	syncOnly := fs.Bool("sync-only", false, "measure only the connection-sync figure (implies --sync, --no-table and, unless given, --micro none)")
	floodFig := fs.Bool("flood", false, "also measure the table-pressure figure: a SYN flood and a UDP new-flow flood (hping3) with a control client (about 3 min a round)")
	floodOnly := fs.Bool("flood-only", false, "measure only the table-pressure figure (implies --flood, --no-table and, unless given, --micro none)")
	rps := fs.String("rps-dir", "", "RPS CPU `mask` of the director's and real servers' interfaces (default 2: CPU1; 1 puts their receive on the generator's CPU)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: uvs-bench [flags]        (as root; `make bench` builds and runs it)\n"+
			"       uvs-bench gen [flags]    the UDP generator alone (uvs-bench gen -h)\n\n"+
			"Measures uvs against kernel forwarding, nftables DNAT, iptables statistic DNAT and\n"+
			"HAProxy on one namespace topology and writes Markdown, JSON and SVG results.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "uvs-bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg := DefaultConfig(*quick)
	cfg.Bin, cfg.Out, cfg.Log = *bin, *out, stderr
	if abs, err := filepath.Abs(*bin); err == nil {
		cfg.Bin = abs
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "runs" {
			cfg.Runs = *runs // Validate rejects a bad count
		}
	})
	if *only != "" {
		cfg.Only = strings.Split(*only, ",")
	}
	switch *micro {
	case "default":
	case "none", "":
		cfg.Micro = ""
	default:
		cfg.Micro = *micro
	}
	if *microTime != "" {
		cfg.MicroTime = *microTime
	}
	if *noTable {
		cfg.TableRounds = 0
	}
	if *cpuRate != 0 {
		cfg.CPURate = *cpuRate
	}
	if *budget != 0 {
		cfg.Budget, cfg.Reruns = *budget, true
	}
	if *rps != "" {
		cfg.RPSDir = *rps
	}
	if *syncFig || *syncOnly {
		cfg.SyncRounds = cfg.Runs
	}
	if *floodFig || *floodOnly {
		cfg.FloodRounds = cfg.Runs
	}
	if *floodOnly {
		cfg.FloodOnly, cfg.TableRounds = true, 0
		microSet := false
		fs.Visit(func(f *flag.Flag) { microSet = microSet || f.Name == "micro" })
		if !microSet {
			cfg.Micro = ""
		}
	}
	if *syncOnly {
		cfg.SyncOnly, cfg.TableRounds = true, 0
		microSet := false
		fs.Visit(func(f *flag.Flag) { microSet = microSet || f.Name == "micro" })
		if !microSet {
			cfg.Micro = ""
		}
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "uvs-bench: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, err := Benchmark(ctx, cfg)
	if rep == nil {
		fmt.Fprintf(stderr, "uvs-bench: %v\n", err)
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "uvs-bench: %v (writing the partial results)\n", err)
	}
	if rep.Table != nil {
		const n = 1 << 20
		b, merr := ConntrackBytesPerConn(n, n)
		if merr != nil {
			rep.Table.Note = "in-process conntrack figure failed: " + merr.Error()
		}
		rep.Table.InProcess, rep.Table.InProcCap = Num(b), n
	}
	if cfg.Micro != "" && ctx.Err() == nil {
		fmt.Fprintf(stderr, "uvs-bench: Go micro-benchmarks (%s, -benchtime %s)\n", cfg.Micro, cfg.MicroTime)
		raw, merr := runMicro(ctx, cfg.Micro, cfg.MicroTime)
		rep.Micro = ParseGoBench(raw)
		if merr != nil {
			rep.MicroErr = merr.Error()
		}
		name := rep.Timestamp + "-micro.txt"
		if werr := os.MkdirAll(cfg.Out, 0o755); werr == nil {
			if werr := os.WriteFile(filepath.Join(cfg.Out, name), []byte(raw), 0o644); werr == nil {
				rep.MicroFile = name
			}
		}
	}
	rep.Summarise("generator-ceiling")
	paths, werr := rep.Write(cfg.Out)
	if werr != nil {
		fmt.Fprintf(stderr, "uvs-bench: writing results: %v\n", werr)
		return 1
	}
	fmt.Fprintln(stdout, rep.Markdown(rep.Timestamp+".svg"))
	fmt.Fprintf(stderr, "uvs-bench: wrote %s\n", strings.Join(paths, ", "))
	if err != nil || rep.MicroErr != "" {
		return 1
	}
	return 0
}

// runMicro runs the Go benchmarks of pkgs once with -benchmem and returns
// their output.
func runMicro(ctx context.Context, pkgs, benchtime string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	args := append([]string{"test", "-count=1", "-run", "^$", "-bench", ".", "-benchmem", "-benchtime", benchtime}, strings.Fields(pkgs)...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

// renderMain is `uvs-bench render FILE.json`: it summarises a report's
// runs again and rewrites its Markdown and SVG (and latest.md), so that a
// change to the summary or rendering code does not need a new run.
func renderMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("uvs-bench render", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "results `directory` (default: the JSON file's)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: uvs-bench render [--out DIR] RESULTS.json")
		return 2
	}
	b, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "uvs-bench render: %v\n", err)
		return 1
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		fmt.Fprintf(stderr, "uvs-bench render: %s: %v\n", fs.Arg(0), err)
		return 1
	}
	if rep.Timestamp == "" || len(rep.Runs) == 0 {
		fmt.Fprintf(stderr, "uvs-bench render: %s holds no benchmark runs\n", fs.Arg(0))
		return 1
	}
	dir := *out
	if dir == "" {
		dir = filepath.Dir(fs.Arg(0))
	}
	rep.Summarise("generator-ceiling")
	paths, err := rep.Write(dir)
	if err != nil {
		fmt.Fprintf(stderr, "uvs-bench render: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s\n", strings.Join(paths, ", "))
	return 0
}

// genMain is `uvs-bench gen`: the generator on its own, printing its
// counts as JSON.
func genMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("uvs-bench gen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ns := fs.String("netns", "", "network `namespace` of the interface (default: the current one)")
	iface := fs.String("iface", "", "`interface` to send on (required)")
	srcMAC := fs.String("src-mac", "", "source `MAC` (default: the interface's)")
	dstMAC := fs.String("dst-mac", "", "destination `MAC` (required)")
	src := fs.String("src", "198.18.1.2", "first source `address`")
	sport := fs.Uint("sport", 1024, "first source `port`")
	ports := fs.Int("ports", 4096, "source ports per source address")
	dst := fs.String("dst", "", "comma-separated destination `addresses` (required)")
	dport := fs.Uint("dport", UDPPort, "destination `port`")
	flows := fs.Int("flows", 4096, "number of flows")
	payload := fs.Int("payload", 64, "UDP payload `bytes`")
	rate := fs.Float64("rate", 0, "offered `pps` (0: as fast as possible)")
	d := fs.Duration("d", 5*time.Second, "duration")
	n := fs.Uint64("n", 0, "stop after this many frames (0: no limit)")
	cpu := fs.Int("cpu", -1, "pin the sending thread to this `CPU`")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	bad := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "uvs-bench gen: "+format+"\n", a...)
		return 2
	}
	if *iface == "" || *dstMAC == "" || *dst == "" {
		return bad("--iface, --dst-mac and --dst are required")
	}
	spec := FlowSpec{PortsPerSrc: *ports, DstPort: uint16(*dport), Payload: *payload, Flows: *flows, SrcPort: uint16(*sport)}
	if *sport > 65535 || *dport > 65535 {
		return bad("port out of range: --sport %d --dport %d", *sport, *dport)
	}
	var err error
	if spec.SrcBase, err = netip.ParseAddr(*src); err != nil {
		return bad("--src %q: %v", *src, err)
	}
	for _, s := range strings.Split(*dst, ",") {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			return bad("--dst %q: %v", s, err)
		}
		spec.Dsts = append(spec.Dsts, a)
	}
	if spec.DstMAC, err = parseMAC(*dstMAC); err != nil {
		return bad("--dst-mac: %v", err)
	}
	if *srcMAC != "" {
		if spec.SrcMAC, err = parseMAC(*srcMAC); err != nil {
			return bad("--src-mac: %v", err)
		}
	} else if spec.SrcMAC, err = ifaceMAC(*ns, *iface); err != nil {
		return bad("%v", err)
	}
	if err := spec.Validate(); err != nil {
		return bad("%v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res, err := Generate(ctx, GenConfig{NetNS: *ns, Iface: *iface, Flow: spec, Rate: *rate, Duration: *d, Count: *n, CPU: *cpu})
	js, _ := json.Marshal(res)
	fmt.Fprintln(stdout, string(js))
	if err != nil {
		fmt.Fprintf(stderr, "uvs-bench gen: %v\n", err)
		return 1
	}
	return 0
}

func parseMAC(s string) ([6]byte, error) {
	var m [6]byte
	parts := strings.Split(s, ":")
	if len(parts) != 6 {
		return m, fmt.Errorf("%q is not a MAC address (aa:bb:cc:dd:ee:ff)", s)
	}
	for i, p := range parts {
		var v uint
		if _, err := fmt.Sscanf(p, "%x", &v); err != nil || len(p) != 2 {
			return m, fmt.Errorf("%q is not a MAC address (aa:bb:cc:dd:ee:ff)", s)
		}
		m[i] = byte(v)
	}
	return m, nil
}
