package sim

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/uvs-lb/uvs/spec"
)

// Exit statuses of Main.
const (
	ExitOK    = 0
	ExitError = 1 // the simulation ran but output could not be written
	ExitUsage = 2 // bad flags or bad input files; nothing was simulated
)

const usageText = `usage: uvs-sim --rules FILE [--conns N] [--clients N] [--ports N] [--proto tcp|udp|sctp]
               [--rate R] [--hold DIST] [--trace-in CSV] [--events FILE]
               [--trace [--why]] [--svg FILE] [--seed S] [--hash-order sorted|list]

Replays a workload through the uvs scheduling core on a simulated clock and
prints a summary per destination (or, with --trace, one line per connection).
The same inputs and seed give byte-identical output.

  --rules FILE     services and destinations in ipvsadm save format (-A/-a lines)
  --conns N        connections to generate (default 1000)
  --clients N      distinct clients, from 172.16.0.0/12 in order (default 100)
  --ports N        distinct source ports per client, from 32768 (default 28232)
  --proto P        tcp, udp or sctp: which services get the generated workload
                   (default: the protocol of the first service)
  --rate R         Poisson arrival rate, connections per second (default 100)
  --hold DIST      hold time: const:500ms, exp:2s, uniform:1s-5s (default exp:2s)
  --trace-in CSV   replay time,proto,client,vip,duration rows instead of generating
  --events FILE    timed changes: "5s add -t VIP:PORT -r RIP:PORT -w 2", "10s del ...",
                   "12s weight ... W", "15s overload ...", "20s clear ...", "edit ..."
  --trace          print every new connection (time, client, service, destination)
  --why            with --trace: add the scheduler's reason
  --svg FILE       write a chart of open connections per destination over time
  --seed S         seed of every random choice (default 1)
  --hash-order O   order mh and sh build their tables in, as uvsd's option:
                   sorted (by real-server address and port, the default: the
                   same real servers give the same choices whatever order they
                   were added in) or list (the kernel's: newest real server first)
`

// --hash-order's values, the same as uvsd's.
const (
	HashSorted = "sorted"
	HashList   = "list"
)

// Main is uvs-sim: it parses args (without the program name), runs the
// simulation and returns the exit status. Input errors name the file, line
// and token and give ExitUsage; in that case nothing is written to stdout
// and no SVG file is created.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("uvs-sim", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	rules := fs.String("rules", "", "")
	conns := fs.Int("conns", 1000, "")
	clients := fs.Int("clients", 100, "")
	ports := fs.Int("ports", defaultPorts, "")
	proto := fs.String("proto", "", "")
	rate := fs.Float64("rate", 100, "")
	hold := fs.String("hold", "exp:2s", "")
	traceIn := fs.String("trace-in", "", "")
	events := fs.String("events", "", "")
	trace := fs.Bool("trace", false, "")
	why := fs.Bool("why", false, "")
	svg := fs.String("svg", "", "")
	seed := fs.Uint64("seed", 1, "")
	hashOrder := fs.String("hash-order", HashSorted, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			io.WriteString(stdout, usageText)
			return ExitOK
		}
		fmt.Fprintf(stderr, "uvs-sim: %v\n%s", err, usageText)
		return ExitUsage
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "uvs-sim: "+format+"\n", a...)
		return ExitUsage
	}
	if fs.NArg() > 0 {
		return fail("unexpected argument %q", fs.Arg(0))
	}
	if *rules == "" {
		return fail("--rules FILE is required (try --help)")
	}
	cfg := Config{
		RulesName: *rules,
		Workload:  Workload{Conns: *conns, Clients: *clients, Ports: *ports, Rate: *rate},
		Seed:      *seed,
		Trace:     *trace || *why,
		Why:       *why,
	}
	switch *hashOrder {
	case HashSorted:
	case HashList:
		cfg.ListHashOrder = true
	default:
		return fail("--hash-order %q: want %s or %s", *hashOrder, HashSorted, HashList)
	}
	var err error
	if cfg.Workload.Hold, err = ParseDist(*hold); err != nil {
		return fail("--hold %s: %v", *hold, err)
	}
	switch strings.ToLower(*proto) {
	case "":
	case "tcp":
		cfg.Workload.Proto = spec.ProtoTCP
	case "udp":
		cfg.Workload.Proto = spec.ProtoUDP
	case "sctp":
		cfg.Workload.Proto = spec.ProtoSCTP
	default:
		return fail("--proto %s: want tcp, udp or sctp", *proto)
	}
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	open := func(name string) (io.Reader, error) {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
		return f, nil
	}
	if cfg.Rules, err = open(*rules); err != nil {
		return fail("%v", err)
	}
	if *events != "" {
		cfg.EventsName = *events
		if cfg.Events, err = open(*events); err != nil {
			return fail("%v", err)
		}
	}
	if *traceIn != "" {
		cfg.TraceInName = *traceIn
		if cfg.TraceIn, err = open(*traceIn); err != nil {
			return fail("%v", err)
		}
	}
	var chart bytes.Buffer
	if *svg != "" {
		cfg.SVG = &chart
	}
	var out bytes.Buffer
	if err := Run(cfg, &out); err != nil {
		var ie *InputError
		if errors.As(err, &ie) {
			return fail("%v", err)
		}
		fmt.Fprintf(stderr, "uvs-sim: %v\n", err)
		return ExitError
	}
	if _, err := stdout.Write(out.Bytes()); err != nil {
		fmt.Fprintf(stderr, "uvs-sim: %v\n", err)
		return ExitError
	}
	if *svg != "" {
		if err := os.WriteFile(*svg, chart.Bytes(), 0o644); err != nil {
			fmt.Fprintf(stderr, "uvs-sim: %v\n", err)
			return ExitError
		}
	}
	return ExitOK
}
