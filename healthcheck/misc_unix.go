//go:build unix

package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"
	"time"
)

// Probe runs the program once and waits for it (see MiscCheck).
func (m *MiscCheck) Probe(ctx context.Context, t Target) Result {
	if len(m.Argv) == 0 {
		return Result{Msg: fmt.Sprintf("Misc check for [%s]: no misc_path.", m.serverName(t))}
	}
	cred, err := miscCredential(m.User, m.Group)
	if err != nil {
		return Result{Msg: fmt.Sprintf("Misc check for [%s] by [%s] failed: %v.", m.serverName(t), m.Argv[0], err)}
	}
	cmd := m.command(m.Argv[0], m.Argv, cred)
	err = cmd.Start()
	if errors.Is(err, syscall.ENOEXEC) {
		// A script without a #! line: keepalived retries with /bin/sh.
		cmd = m.command("/bin/sh", append([]string{"/bin/sh"}, m.Argv...), cred)
		err = cmd.Start()
	}
	if err != nil {
		return Result{Msg: fmt.Sprintf("Misc check for [%s] by [%s] failed: %v.", m.serverName(t), m.Argv[0], err)}
	}
	pgid := cmd.Process.Pid
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()

	timeout := m.Timeout
	if timeout <= 0 {
		timeout = t.Timeout
	}
	var expire <-chan time.Time
	if timeout > 0 {
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		expire = timer.C
	}
	timedOut := false
	select {
	case <-done:
	case <-expire:
		// misc_timeout: SIGTERM, then SIGKILL 2 s later.
		timedOut = true
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		grace := time.NewTimer(miscKillDelay)
		select {
		case <-done:
		case <-grace.C:
		case <-ctx.Done():
		}
		grace.Stop()
	case <-ctx.Done():
		// The caller gives up (shutdown): no grace period.
		timedOut = true
	}
	if timedOut {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
	}
	// The leader is gone; anything it left in its group goes too. (The
	// kernel keeps the group's ID from being reused while any member
	// lives, so this cannot hit a stranger.)
	_ = syscall.Kill(-pgid, syscall.SIGKILL)

	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		sig := ws.Signal()
		return m.miscResult(t, false, 0, int(sig), timedOut && (sig == syscall.SIGTERM || sig == syscall.SIGKILL))
	}
	return m.miscResult(t, true, ws.ExitStatus(), 0, false)
}

// command builds the exec.Cmd: no shell, own process group, optional
// credentials, stdio on /dev/null.
func (m *MiscCheck) command(path string, argv []string, cred *syscall.Credential) *exec.Cmd {
	return &exec.Cmd{
		Path:        path,
		Args:        argv,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true, Credential: cred},
	}
}

// miscCredential resolves `user name [group]`: the user's uid and primary
// gid, or the named group's gid; no supplementary groups.
func miscCredential(name, group string) (*syscall.Credential, error) {
	if name == "" {
		return nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("misc user %q: %w", name, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("misc user %q: uid %q: %w", name, u.Uid, err)
	}
	gidStr := u.Gid
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			return nil, fmt.Errorf("misc group %q: %w", group, err)
		}
		gidStr = g.Gid
	}
	gid, err := strconv.ParseUint(gidStr, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("misc user %q: gid %q: %w", name, gidStr, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// RunAs makes cmd run as user name (its primary group, or group), as
// MISC_CHECK's `user name [group]` does: for the director's notify
// scripts. Empty name: cmd is left alone. Needs root to start.
func RunAs(cmd *exec.Cmd, name, group string) error {
	cred, err := miscCredential(name, group)
	if err != nil || cred == nil {
		return err
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Credential = cred
	return nil
}
