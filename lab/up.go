package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// teardownTimeout bounds a teardown that runs after the command's context
// was cancelled (Ctrl-C).
const teardownTimeout = 30 * time.Second

// Up builds a scenario under its own name and configures the director. On
// an instance that is already up it changes nothing but the director's
// services, and only when p differs.
func (l *Lab) Up(ctx context.Context, scenario string, p Params) error {
	sc, ok := LookupScenario(scenario)
	if !ok {
		return unknownScenario(scenario)
	}
	_, _, err := l.up(ctx, sc, sc.Name, p)
	return err
}

func unknownScenario(name string) error {
	var names []string
	for _, s := range scenarios {
		names = append(names, s.Name)
	}
	return fmt.Errorf("unknown scenario %q (uvs-lab list shows them: %s)", name, strings.Join(names, ", "))
}

// up builds (or finds) instance of sc. It returns the session and whether
// the instance was already up.
func (l *Lab) up(ctx context.Context, sc *Scenario, instance string, p Params) (*session, bool, error) {
	if err := l.checkBinaries(); err != nil {
		return nil, false, err
	}
	if err := checkParams(sc, &p); err != nil {
		return nil, false, err
	}
	unlock, err := l.lockInstance(instance)
	if err != nil {
		return nil, false, err
	}
	defer unlock()

	st, err := l.loadState(instance)
	if err != nil {
		return nil, false, err
	}
	if st != nil && st.Scenario != sc.Name {
		return nil, false, fmt.Errorf("%s is already up running scenario %s: uvs-lab down %s first", instance, st.Scenario, instance)
	}
	if st != nil {
		if l.healthy(st) {
			s := l.session(sc, st)
			if st.Params.equal(p) {
				fmt.Fprintf(s.out, "== %s is already up (uvs-lab down %s removes it)\n", instance, instance)
				return s, true, s.listing(ctx)
			}
			return s, true, s.reconfigure(ctx, p)
		}
		fmt.Fprintf(l.opt.Err, "%s is half built (an interrupted up?): removing it first\n", instance)
		if err := l.teardown(ctx, instance, st); err != nil {
			return nil, false, err
		}
	} else if left := l.leftovers(instance); len(left) > 0 {
		fmt.Fprintf(l.opt.Err, "removing namespaces a previous run left: %s\n", strings.Join(left, " "))
		if err := l.teardown(ctx, instance, nil); err != nil {
			return nil, false, err
		}
	}

	st = &State{Scenario: sc.Name, Instance: instance, Prefix: l.opt.Prefix, Params: p,
		NextPort: firstClientPort, Created: time.Now()}
	s := l.session(sc, st)
	for _, r := range s.pl.roles {
		st.Namespaces = append(st.Namespaces, s.ns(r))
	}
	if err := l.saveState(st); err != nil {
		return nil, false, err
	}
	if err := s.build(ctx); err != nil {
		fail := err
		if ctx.Err() != nil {
			fail = fmt.Errorf("interrupted: %w", ctx.Err())
			fmt.Fprintf(l.opt.Err, "interrupted: removing %s\n", instance)
		}
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), teardownTimeout)
		defer cancel()
		if terr := l.teardown(tctx, instance, st); terr != nil {
			fail = errors.Join(fail, fmt.Errorf("cleaning up: %w", terr))
		} else {
			l.forget(instance)
		}
		return nil, false, fail
	}
	return s, false, nil
}

// session makes a session for a state.
func (l *Lab) session(sc *Scenario, st *State) *session {
	return &session{l: l, sc: sc, st: st, pl: sc.plan(st.Params, &l.opt), dir: l.instanceDir(st.Instance), out: l.opt.Out}
}

// healthy reports whether an instance is completely up: every namespace
// and every recorded process still there.
func (l *Lab) healthy(st *State) bool {
	if !st.Ready {
		return false
	}
	for _, n := range st.Namespaces {
		if !nsExists(n) {
			return false
		}
	}
	for _, p := range st.Procs {
		if !p.Alive() {
			return false
		}
	}
	return true
}

// leftovers lists namespaces of instance that exist without a state.
func (l *Lab) leftovers(instance string) []string {
	all, _ := listNamespaces(l.opt.Prefix + "-" + instance + "-")
	var out []string
	for _, n := range all {
		if in, _, ok := splitNS(l.opt.Prefix, n); ok && in == instance {
			out = append(out, n)
		}
	}
	return out
}

// build creates the topology and runs the lesson.
func (s *session) build(ctx context.Context) error {
	fmt.Fprintf(s.out, "== %s: %s\n   seed %s; %s\n%s\n\n", s.st.Instance, s.sc.Title, s.sc.Seed, s.sc.Mode, strings.TrimLeft(s.sc.Diagram, "\n"))
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return err
	}
	if s.pl.needCert {
		var ips []netip.Addr
		if s.pl.vip.IsValid() {
			ips = append(ips, s.pl.vip)
		}
		if _, err := makeCert(s.dir, ips); err != nil {
			return err
		}
	}
	// The plumbing first (namespaces, links, addresses: quiet unless
	// --verbose), then the lesson, printed as it runs.
	var plumbing, lesson []step
	for _, r := range s.pl.roles {
		plumbing = append(plumbing, step{kind: stepHost, argv: []string{"ip", "netns", "add", "@" + r}},
			step{kind: stepHost, argv: []string{"ip", "-n", "@" + r, "link", "set", "lo", "up"}})
	}
	for _, st := range s.pl.steps {
		if st.kind == stepHost || (st.kind == stepNS && !st.show) {
			plumbing = append(plumbing, st)
		} else {
			lesson = append(lesson, st)
		}
	}
	stop := s.l.prog.start(fmt.Sprintf("building %d namespaces and their links", len(s.pl.roles)))
	for _, st := range plumbing {
		if err := ctx.Err(); err != nil {
			stop()
			return err
		}
		if _, err := s.run(ctx, st); err != nil {
			stop()
			return err
		}
	}
	stop()
	for _, st := range lesson {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := s.run(ctx, st); err != nil {
			return err
		}
	}
	s.st.Ready = true
	if err := s.l.saveState(s.st); err != nil {
		return err
	}
	return s.listing(ctx)
}

// listing prints ipvsadm -Ln.
func (s *session) listing(ctx context.Context) error {
	out, err := s.ipvsadm(ctx, true, "-Ln")
	s.printOut(out)
	return err
}

// reconfigure replaces the director's services with those p asks for.
func (s *session) reconfigure(ctx context.Context, p Params) error {
	if s.pl.keepalived {
		return fmt.Errorf("%s's services come from its keepalived.conf: uvs-lab down %s, then up with the new choices", s.st.Instance, s.st.Instance)
	}
	fmt.Fprintf(s.out, "== %s is already up: reconfiguring the director (-s %s)\n", s.st.Instance, p.Sched)
	pl := s.sc.plan(p, &s.l.opt)
	if _, err := s.ipvsadm(ctx, true, "-C"); err != nil {
		return err
	}
	for _, st := range pl.steps {
		if st.kind == stepNS && st.role == pl.director && len(st.argv) > 0 && st.argv[0] == "ipvsadm" {
			if _, err := s.run(ctx, st); err != nil {
				return err
			}
		}
	}
	s.st.Params, s.pl = p, pl
	if err := s.l.saveState(s.st); err != nil {
		return err
	}
	return s.listing(ctx)
}

// Down removes an instance (a scenario's name, or a break exercise's), or
// every instance with the lab's prefix when name is "".
func (l *Lab) Down(ctx context.Context, name string) error {
	names := []string{name}
	if name == "" {
		names = nil
		insts, err := l.instances()
		if err != nil {
			return err
		}
		names = append(names, insts...)
		all, err := listNamespaces(l.opt.Prefix + "-")
		if err != nil {
			return err
		}
		for _, n := range all {
			if in, _, ok := splitNS(l.opt.Prefix, n); ok && !slices.Contains(names, in) {
				names = append(names, in)
			}
		}
	}
	var errs []error
	for _, n := range names {
		if err := l.down(ctx, n); err != nil {
			errs = append(errs, err)
		}
	}
	if name == "" {
		// Lock files of interrupted commands that left nothing else.
		locks, _ := filepath.Glob(filepath.Join(l.opt.StateDir, l.opt.Prefix, ".*.lock"))
		for _, f := range locks {
			in := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "."), ".lock")
			if slices.Contains(names, in) {
				continue
			}
			if unlock, err := l.lockInstance(in); err == nil {
				if st, _ := l.loadState(in); st == nil && len(l.leftovers(in)) == 0 {
					l.forget(in)
				}
				unlock()
			}
		}
		if len(names) == 0 {
			fmt.Fprintln(l.opt.Out, "no lab is up")
		}
	}
	return errors.Join(errs...)
}

func (l *Lab) down(ctx context.Context, instance string) error {
	unlock, err := l.lockInstance(instance)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := l.loadState(instance)
	if err != nil {
		return err
	}
	if st == nil && len(l.leftovers(instance)) == 0 {
		if _, ok := LookupScenario(instance); !ok && !isExercise(instance) {
			return fmt.Errorf("nothing called %q is up (uvs-lab status lists what is)", instance)
		}
		fmt.Fprintf(l.opt.Out, "%s is not up\n", instance)
		l.forget(instance)
		return nil
	}
	if err := l.teardown(ctx, instance, st); err != nil {
		return err
	}
	l.forget(instance)
	fmt.Fprintf(l.opt.Out, "%s is down: namespaces, links, rules and processes removed\n", instance)
	return nil
}

// teardown removes everything of an instance: its processes (the recorded
// ones, then any lab binary still running in its namespaces), its
// namespaces (with their links, bridges, routes and nftables/iptables
// rules) and its state. It checks that nothing is left.
func (l *Lab) teardown(ctx context.Context, instance string, st *State) error {
	var errs []error
	nss := l.leftovers(instance)
	if st != nil {
		for i := len(st.Procs) - 1; i >= 0; i-- {
			if err := st.Procs[i].Stop(3 * time.Second); err != nil {
				errs = append(errs, err)
			}
		}
		for _, n := range st.Namespaces {
			if !slices.Contains(nss, n) && nsExists(n) {
				nss = append(nss, n)
			}
		}
	}
	for _, n := range nss {
		pids, _ := nsPIDs(ctx, n)
		for _, pid := range pids {
			p, ok := adoptProc(pid, "")
			if !ok {
				continue
			}
			if l.isLabBinary(p.Exe) {
				if err := p.Stop(3 * time.Second); err != nil {
					errs = append(errs, err)
				}
			} else {
				fmt.Fprintf(l.opt.Err, "warning: process %d (%s) still uses namespace %s; not killing what the lab did not start\n", pid, p.Exe, n)
			}
		}
	}
	for _, n := range nss {
		if _, err := runCmd(ctx, "ip", "netns", "del", n); err != nil && nsExists(n) {
			errs = append(errs, err)
		}
	}
	for _, n := range nss {
		if nsExists(n) {
			errs = append(errs, fmt.Errorf("namespace %s still exists", n))
		}
	}
	if len(errs) == 0 {
		if err := os.RemoveAll(l.instanceDir(instance)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// forget removes an instance's lock file, and the state directories if
// they are left empty. The lock is held: a command waiting for it gets the
// deleted file, finds no state and builds afresh.
func (l *Lab) forget(instance string) {
	_ = os.Remove(filepath.Join(l.opt.StateDir, l.opt.Prefix, "."+instance+".lock"))
	_ = os.Remove(filepath.Join(l.opt.StateDir, l.opt.Prefix))
	if l.opt.StateDir == DefaultStateDir {
		_ = os.Remove(l.opt.StateDir)
	}
}

// isLabBinary reports whether exe is one of the lab's binaries.
func (l *Lab) isLabBinary(exe string) bool {
	dir := l.opt.BinDir
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		real = dir
	}
	for _, b := range binaries {
		if exe == filepath.Join(dir, b) || exe == filepath.Join(real, b) {
			return true
		}
	}
	return false
}
