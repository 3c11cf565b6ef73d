package bench

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/uvs-lb/uvs/internal/wait"
)

// cmdTimeout bounds every short configuration command.
const cmdTimeout = 15 * time.Second

// run runs a command with a timeout and returns its combined output; the
// error names the command and carries its output.
func run(timeout time.Duration, name string, args ...string) (string, error) {
	return runIn(timeout, nil, name, args...)
}

// runIn is run with stdin.
func runIn(timeout time.Duration, stdin []byte, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	s := strings.TrimSpace(out.String())
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("timed out after %v", timeout)
		}
		return s, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, trunc([]byte(s)))
	}
	return s, nil
}

// nsArgs prefixes args with `ip netns exec NS` and, for cpu >= 0, with
// `nice -n -20 taskset -c CPU`: every process the benchmark measures or
// serves with (uvsd, HAProxy, nginx, the iperf3 servers, wrk, the iperf3
// client) runs pinned and at the highest priority, so that other
// processes on a shared machine take as little of its CPU as the
// scheduler allows. The kernel paths run in softirq, which no process
// preempts, so this only levels the field.
func nsArgs(ns string, cpu int, args ...string) []string {
	var pre []string
	if ns != "" {
		pre = append(pre, "ip", "netns", "exec", ns)
	}
	if cpu >= 0 {
		pre = append(pre, "nice", "-n", "-20", "taskset", "-c", fmt.Sprint(cpu))
	}
	return append(pre, args...)
}

// nsRun runs args in namespace ns, pinned to cpu (-1: not pinned).
func nsRun(timeout time.Duration, ns string, cpu int, args ...string) (string, error) {
	a := nsArgs(ns, cpu, args...)
	return run(timeout, a[0], a[1:]...)
}

// proc is a background process the harness started; it is stopped by PID.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *lockedBuf
	done chan struct{}
	err  error
}

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 1<<20 { // keep the tail bounded: drop the oldest half
		keep := l.b.Bytes()[l.b.Len()/2:]
		nb := bytes.Buffer{}
		nb.Write(keep)
		l.b = nb
	}
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start starts args in namespace ns pinned to cpu. `ip netns exec` and
// taskset exec the command, so the PID is the command's own.
func start(name, ns string, cpu int, args ...string) (*proc, error) {
	a := nsArgs(ns, cpu, args...)
	cmd := exec.Command(a[0], a[1:]...)
	p := &proc{name: name, cmd: cmd, out: &lockedBuf{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitFor polls cond (internal/wait) until it holds, the process exits or
// timeout passes.
func (p *proc) waitFor(timeout time.Duration, what string, cond func() bool) error {
	exited := false
	if wait.Until(timeout, func() bool {
		if cond() {
			return true
		}
		exited = p.exited()
		return exited
	}) && !exited {
		return nil
	}
	if exited {
		return fmt.Errorf("%s exited before %s: %v: %s", p.name, what, p.err, trunc([]byte(p.out.String())))
	}
	return fmt.Errorf("%s: no %s after %v: %s", p.name, what, timeout, trunc([]byte(p.out.String())))
}

// stop sends SIGTERM, waits up to grace, then SIGKILLs. It returns the
// exit error of a process that ended by itself before being stopped.
func (p *proc) stop(grace time.Duration) error {
	if p.exited() {
		return p.err
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, p.cmd.Process.Pid)
	}
	return fmt.Errorf("%s did not stop within %v of SIGTERM and was killed", p.name, grace)
}
