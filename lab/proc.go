package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/uvs-lb/uvs/internal/wait"
)

// Proc is a background process the lab started, recorded in the state file
// so that down ends exactly it.
type Proc struct {
	Role  string `json:"role"`          // namespace role it runs in
	Name  string `json:"name"`          // what it is: "uvsd", "httpd rs1", "uvs-rs tun"
	PID   int    `json:"pid"`           //
	Start uint64 `json:"start"`         // start time in clock ticks (/proc/PID/stat field 22)
	Exe   string `json:"exe"`           // argv[0] it runs
	Log   string `json:"log,omitempty"` // its output
}

// procStat reads a process's command line, start time and state letter.
func procStat(pid int) (cmdline []string, start uint64, state byte, err error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, 0, 0, err
	}
	// The command name is in parentheses and may contain spaces: fields
	// count from after its closing parenthesis.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return nil, 0, 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 20 {
		return nil, 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	state = f[0][0]
	if start, err = strconv.ParseUint(f[19], 10, 64); err != nil {
		return nil, 0, 0, fmt.Errorf("/proc/%d/stat: start time: %w", pid, err)
	}
	cl, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return nil, 0, 0, err
	}
	if cl = bytes.TrimRight(cl, "\x00"); len(cl) > 0 {
		for _, a := range bytes.Split(cl, []byte{0}) {
			cmdline = append(cmdline, string(a))
		}
	}
	return cmdline, start, state, nil
}

// Alive reports whether the recorded process still runs: same PID, same
// start time, same program (or still "ip netns exec" about to exec it, or
// between the two), and not a zombie.
func (p Proc) Alive() bool {
	cl, start, state, err := procStat(p.PID)
	if err != nil || start != p.Start || state == 'Z' || state == 'X' {
		return false
	}
	if len(cl) == 0 || cl[0] == "" {
		// In the middle of execve the new image has no arguments yet; the
		// PID and start time already say it is ours.
		return true
	}
	return cl[0] == p.Exe || (len(cl) >= 3 && cl[1] == "netns" && cl[2] == "exec")
}

// Stop ends the process: SIGTERM, then SIGKILL if it is still alive after
// grace. A process that is no longer the recorded one is left alone.
func (p Proc) Stop(grace time.Duration) error {
	if !p.Alive() {
		return nil
	}
	if err := syscall.Kill(p.PID, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop %s (pid %d): %w", p.Name, p.PID, err)
	}
	if waitGone(p, grace) {
		return nil
	}
	if err := syscall.Kill(p.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill %s (pid %d): %w", p.Name, p.PID, err)
	}
	if !waitGone(p, 3*time.Second) {
		return fmt.Errorf("%s (pid %d) still running after SIGKILL", p.Name, p.PID)
	}
	return nil
}

func waitGone(p Proc, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for p.Alive() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// startDetached starts argv inside the namespace in its own session with
// stdin from /dev/null and output appended to logPath, and returns its
// record. The child is reaped by a goroutine while this process lives;
// after that, init inherits it.
func startDetached(ns, role, name, logPath string, argv []string) (Proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return Proc{}, err
	}
	defer logf.Close()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return Proc{}, fmt.Errorf("start %s: %w", strings.Join(argv, " "), err)
	}
	go func() { _ = cmd.Wait() }()
	_, start, _, err := procStat(cmd.Process.Pid)
	if err != nil {
		_ = cmd.Process.Kill()
		return Proc{}, fmt.Errorf("start %s: %w", name, err)
	}
	return Proc{Role: role, Name: name, PID: cmd.Process.Pid, Start: start, Exe: argv[0], Log: logPath}, nil
}

// adoptProc records a process found in one of the lab's namespaces (a
// daemon a command started on its own, like uvs-rs's decapsulator).
func adoptProc(pid int, role string) (Proc, bool) {
	cl, start, state, err := procStat(pid)
	if err != nil || state == 'Z' || len(cl) == 0 {
		return Proc{}, false
	}
	name := cl[0]
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	if len(cl) > 1 {
		name += " " + cl[1]
	}
	return Proc{Role: role, Name: name, PID: pid, Start: start, Exe: cl[0]}, true
}

// waitReady polls check until it returns nil, the process dies, or
// timeout passes.
func waitReady(ctx context.Context, p Proc, timeout time.Duration, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var err error
	dead := false
	if wait.UntilContext(ctx, func() bool {
		if err = check(); err == nil {
			return true
		}
		dead = !p.Alive()
		return dead
	}) && err == nil {
		return nil
	}
	switch {
	case dead:
		return fmt.Errorf("%s exited before it was ready%s", p.Name, logTail(p.Log))
	case ctx.Err() == context.DeadlineExceeded:
		return fmt.Errorf("%s not ready after %v: %v%s", p.Name, timeout, err, logTail(p.Log))
	}
	return ctx.Err()
}

// logTail returns the last lines of a log file, for error messages.
func logTail(path string) string {
	if path == "" {
		return ""
	}
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	return "; " + path + ":\n  " + strings.Join(lines, "\n  ")
}
