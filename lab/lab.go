package lab

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	ctlclient "github.com/uvs-lb/uvs/control/client"
	"github.com/uvs-lb/uvs/control/wire"
	"github.com/uvs-lb/uvs/lab/weights"
	"github.com/uvs-lb/uvs/sched"
)

// DefaultPrefix starts the name of every namespace the lab creates:
// uvs-lab-<instance>-<role>.
const DefaultPrefix = "uvs-lab"

// DefaultStateDir holds the state of running labs.
const DefaultStateDir = "/run/uvs-lab"

// Options configure a Lab.
type Options struct {
	Prefix   string    // namespace prefix (DefaultPrefix); must start with "uvs-"
	StateDir string    // DefaultStateDir
	BinDir   string    // directory of uvsd, uvsadm, uvs-rs and uvs-lab
	Out      io.Writer // the lesson: commands, tables
	Err      io.Writer // progress and warnings
	Verbose  bool      // print the plumbing commands (namespaces, links, addresses) too
	// RequestTimeout bounds one request (4 s).
	RequestTimeout time.Duration
}

// Params are the choices a student makes for a scenario.
type Params struct {
	Sched   string         `json:"sched"`             // scheduler (ipvsadm -s)
	Weights map[string]int `json:"weights,omitempty"` // real server name → weight
	Persist int            `json:"persist,omitempty"` // persistence timeout, seconds (-p)
}

func (p Params) equal(q Params) bool {
	if p.Sched != q.Sched || p.Persist != q.Persist || len(p.Weights) != len(q.Weights) {
		return false
	}
	for k, v := range p.Weights {
		if w, ok := q.Weights[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Lab runs scenarios.
type Lab struct {
	opt  Options
	prog *progress
}

// binaries the lab runs.
var binaries = []string{"uvsd", "uvsadm", "uvs-rs", "uvs-lab", "uvs-sync"}

// New checks the options and returns a Lab.
func New(opt Options) (*Lab, error) {
	if opt.Prefix == "" {
		opt.Prefix = DefaultPrefix
	}
	if !strings.HasPrefix(opt.Prefix, "uvs-") || strings.ContainsAny(opt.Prefix, "/ \t") || len(opt.Prefix) > 40 {
		return nil, fmt.Errorf("namespace prefix %q: must start with \"uvs-\", have no '/' or space, and be at most 40 characters", opt.Prefix)
	}
	if opt.StateDir == "" {
		opt.StateDir = DefaultStateDir
	}
	if opt.BinDir == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("finding the binaries: %w (use --bin DIR)", err)
		}
		opt.BinDir = filepath.Dir(exe)
	}
	if opt.Out == nil {
		opt.Out = io.Discard
	}
	if opt.Err == nil {
		opt.Err = io.Discard
	}
	if opt.RequestTimeout <= 0 {
		opt.RequestTimeout = 4 * time.Second
	}
	return &Lab{opt: opt, prog: newProgress(opt.Err)}, nil
}

// checkBinaries reports a missing binary by name.
func (l *Lab) checkBinaries() error {
	for _, b := range binaries {
		p := filepath.Join(l.opt.BinDir, b)
		if st, err := os.Stat(p); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return fmt.Errorf("%s not found in %s (run make build, or point --bin at the directory holding it)", b, l.opt.BinDir)
		}
	}
	return nil
}

// checkParams validates a student's choices against a scenario.
func checkParams(sc *Scenario, p *Params) error {
	if p.Sched == "" {
		p.Sched = sc.Sched
	}
	if !slices.Contains(sched.Names(), p.Sched) {
		return fmt.Errorf("unknown scheduler %q (one of: %s)", p.Sched, strings.Join(sched.Names(), " "))
	}
	pl := sc.plan(*p, nil)
	for name, w := range p.Weights {
		if !slices.ContainsFunc(pl.servers, func(rs realServer) bool { return rs.Name == name }) {
			var names []string
			for _, rs := range pl.servers {
				names = append(names, rs.Name)
			}
			return fmt.Errorf("--weights: %s has no real server %q (it has %s)", sc.Name, name, strings.Join(names, ", "))
		}
		if w < 0 || w > 65535 {
			return fmt.Errorf("--weights: weight %d of %s out of range 0..65535", w, name)
		}
	}
	if p.Persist < 0 || p.Persist > 86400*31 {
		return fmt.Errorf("--persist %d: out of range", p.Persist)
	}
	return nil
}

// plan instantiates a scenario.
func (sc *Scenario) plan(p Params, o *Options) *plan {
	if p.Sched == "" {
		p.Sched = sc.Sched
	}
	b := newBuilder(p, o)
	sc.build(b)
	return b.plan
}

// ParseWeights parses "rs1=3,rs2=1" (weights.Parse).
func ParseWeights(s string) (map[string]int, error) { return weights.Parse(s) }

// session is an instance being built or used.
type session struct {
	l   *Lab
	sc  *Scenario
	pl  *plan
	st  *State
	dir string
	out io.Writer
	// results are the requests sent so far, in order.
	results    []Result
	toldClient bool
	// health is what the health-check scenario measured.
	health *HealthReport
	// ha is what an HA scenario or exercise measured.
	ha *HAReport
	// sync is what the sync scenario measured (sync.go).
	sync *SyncReport
	// ecmp is what the ecmp scenario measured (ecmp_run.go).
	ecmp *ECMPReport
}

func (s *session) ns(role string) string { return nsName(s.l.opt.Prefix, s.st.Instance, role) }
func (s *session) tracePath() string     { return filepath.Join(s.dir, "trace.jsonl") }

// expand replaces the lab's placeholders in an argument.
func (s *session) expand(a string) string {
	switch a {
	case "@trace":
		return s.tracePath()
	case "@cert":
		return filepath.Join(s.dir, "server.pem")
	case "@key":
		return filepath.Join(s.dir, "server.key")
	case "@ca":
		return filepath.Join(s.dir, "ca.pem")
	case "@keepalived":
		return filepath.Join(s.dir, "keepalived.conf")
	}
	if name, ok := strings.CutPrefix(a, "@dir/"); ok {
		return filepath.Join(s.dir, name) // a file in the instance's state directory
	}
	if r, ok := strings.CutPrefix(a, "@"); ok && slices.Contains(s.pl.roles, r) {
		return s.ns(r)
	}
	return strings.ReplaceAll(a, "@ca", filepath.Join(s.dir, "ca.pem"))
}

// display is a step as the student reads it.
func (s *session) display(st step) string {
	var args []string
	for _, a := range st.argv {
		args = append(args, s.expand(a))
	}
	line := strings.Join(args, " ")
	switch st.kind {
	case stepHost:
		return "# " + line
	case stepDaemon:
		return "[" + st.role + "]# " + line + " &"
	case stepNote:
		return "# " + line
	case stepFile:
		return "[" + st.role + "]# cat > " + s.expand(st.argv[0]) + " <<'EOF'\n" + st.argv[1] + "EOF"
	}
	return "[" + st.role + "]# " + line
}

// resolve turns a displayed command into what runs: the lab's binaries
// from BinDir (ipvsadm is uvsadm), placeholders expanded.
func (s *session) resolve(st step) []string {
	argv := make([]string, 0, len(st.argv)+4)
	for _, a := range st.argv {
		argv = append(argv, s.expand(a))
	}
	bin := s.l.opt.BinDir
	switch argv[0] {
	case "ipvsadm":
		argv = append([]string{"env", "UVS_NO_AUTOSTART=1", filepath.Join(bin, "uvsadm")}, argv[1:]...)
	case "uvs-rs":
		argv = append([]string{filepath.Join(bin, "uvs-rs")}, argv[1:]...)
		argv = append(argv, "--state-dir", filepath.Join(s.dir, "uvs-rs-"+st.role))
	case "uvsd", "uvs-lab", "uvs-sync":
		argv[0] = filepath.Join(bin, argv[0])
	}
	return argv
}

// run executes one step, printing it when it is a lesson (or verbose).
func (s *session) run(ctx context.Context, st step) (string, error) {
	if st.kind == stepNote {
		fmt.Fprintln(s.out, s.display(st))
		return "", nil
	}
	if st.kind == stepFile {
		if st.show || s.l.opt.Verbose {
			fmt.Fprintln(s.out, s.display(st))
		}
		return "", os.WriteFile(s.expand(st.argv[0]), []byte(st.argv[1]), 0o644)
	}
	if st.show || s.l.opt.Verbose {
		fmt.Fprintln(s.out, s.display(st))
	}
	argv := s.resolve(st)
	switch st.kind {
	case stepHost:
		return runCmd(ctx, argv[0], argv[1:]...)
	case stepDaemon:
		return "", s.startDaemon(ctx, st, argv)
	}
	out, err := runCmd(ctx, "ip", append([]string{"netns", "exec", s.ns(st.role)}, argv...)...)
	if err != nil {
		return out, fmt.Errorf("%s: %s: %w", st.role, strings.Join(st.argv, " "), err)
	}
	if argv[0] == filepath.Join(s.l.opt.BinDir, "uvs-rs") {
		// uvs-rs tun up leaves a decapsulator running: record it.
		if err := s.adopt(ctx, st.role); err != nil {
			return out, err
		}
	}
	return out, nil
}

// startDaemon starts a background process and waits until it is ready.
func (s *session) startDaemon(ctx context.Context, st step, argv []string) error {
	logPath := filepath.Join(s.dir, strings.ReplaceAll(st.name, " ", "-")+".log")
	p, err := startDetached(s.ns(st.role), st.role, st.name, logPath, argv)
	if err != nil {
		return err
	}
	s.st.Procs = append(s.st.Procs, p)
	if err := s.l.saveState(s.st); err != nil {
		return err
	}
	if st.started != nil {
		return st.started(ctx, s, p)
	}
	var check func() error
	switch st.ready {
	case readyServing:
		// uvsd answers its control socket once its workers run.
		check = func() error { return controlAnswers(ctx, s.ns(st.role)) }
	case readyTCP:
		check = func() error {
			return inNetNS(s.ns(st.role), func() error {
				c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(st.port)), time.Second)
				if err == nil {
					c.Close()
				}
				return err
			})
		}
	default:
		return nil
	}
	stop := s.l.prog.start("waiting for " + st.name + " in " + st.role)
	defer stop()
	return waitReady(ctx, p, 10*time.Second, check)
}

// adopt records processes in role's namespace the lab did not start itself.
func (s *session) adopt(ctx context.Context, role string) error {
	pids, err := nsPIDs(ctx, s.ns(role))
	if err != nil {
		return err
	}
	for _, pid := range pids {
		if slices.ContainsFunc(s.st.Procs, func(p Proc) bool { return p.PID == pid }) {
			continue
		}
		if p, ok := adoptProc(pid, role); ok {
			s.st.Procs = append(s.st.Procs, p)
		}
	}
	return s.l.saveState(s.st)
}

// ipvsadm runs an ipvsadm command on the director, printed when show.
func (s *session) ipvsadm(ctx context.Context, show bool, args ...string) (string, error) {
	return s.run(ctx, step{kind: stepNS, role: s.pl.director, argv: append([]string{"ipvsadm"}, args...), show: show})
}

// exec runs a lesson command in a namespace, printed.
func (s *session) exec(ctx context.Context, role string, argv ...string) (string, error) {
	return s.run(ctx, step{kind: stepNS, role: role, argv: argv, show: true})
}

// note prints a comment for the student.
func (s *session) note(format string, args ...any) {
	fmt.Fprintf(s.out, "# "+format+"\n", args...)
}

// printOut prints a command's output indented under it.
func (s *session) printOut(out string) {
	if out == "" {
		return
	}
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		fmt.Fprintln(s.out, "    "+line)
	}
}

// controlAnswers asks the uvsd of namespace ns for its table (ipvsadm -Ln)
// over the control socket, as uvsadm would, and reports why it did not
// answer.
func controlAnswers(ctx context.Context, ns string) error {
	var conn net.Conn
	c := ctlclient.Client{Socket: os.Getenv(wire.SocketEnv), Timeout: 2 * time.Second}
	if err := inNetNS(ns, func() (err error) {
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		conn, err = c.Dial(dctx)
		return err
	}); err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	defer conn.Close()
	if _, err := c.List(ctx, conn); err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	return nil
}
