//go:build linux

package client

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// ExecLauncher starts uvsd detached from the calling uvsadm: in a new
// session (setsid), stdin from /dev/null, stdout and stderr appended to a
// log file, with no rules and its default interfaces (every up,
// non-loopback interface of the namespace). Autostarts are serialised per
// network namespace with an flock, so concurrent uvsadm runs start one
// director.
type ExecLauncher struct {
	// Path is the uvsd binary.
	Path string
	// Args are uvsd's arguments (none by default).
	Args []string
	// Env is the child's environment (os.Environ() when nil).
	Env []string
	// Dir holds the lock and log files: /run/uvs when it can be created,
	// else the temporary directory.
	Dir string
	// netns names the network namespace in file names ("net4026531840").
	netns string
}

// NewExecLauncher finds uvsd next to the running executable, else on
// PATH, and prepares the lock and log locations for the current network
// namespace.
func NewExecLauncher() (*ExecLauncher, error) {
	l := &ExecLauncher{netns: netnsID()}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "uvsd")
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			l.Path = p
		}
	}
	if l.Path == "" {
		p, err := exec.LookPath("uvsd")
		if err != nil {
			return nil, fmt.Errorf("find uvsd: not next to %s nor on PATH: %w", os.Args[0], err)
		}
		l.Path = p
	}
	l.Dir = "/run/uvs"
	if err := os.MkdirAll(l.Dir, 0o755); err != nil || unix.Access(l.Dir, unix.W_OK) != nil {
		l.Dir = os.TempDir()
	}
	return l, nil
}

// netnsID names the current network namespace by its inode number.
func netnsID() string {
	st, err := os.Stat("/proc/self/ns/net")
	if err != nil {
		return "net"
	}
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return "net" + strconv.FormatUint(s.Ino, 10)
	}
	return "net"
}

// LogPath is where the started uvsd writes its output.
func (l *ExecLauncher) LogPath() string {
	return filepath.Join(l.Dir, "uvsd-"+l.netns+".log")
}

// Lock takes the per-namespace autostart lock (blocking).
func (l *ExecLauncher) Lock() (func(), error) {
	p := filepath.Join(l.Dir, "autostart-"+l.netns+".lock")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("autostart lock: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("autostart lock %s: %w", p, err)
	}
	return func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
}

// Launch starts uvsd. The returned channel receives its exit status if it
// exits while the caller still runs.
func (l *ExecLauncher) Launch() (<-chan error, error) {
	logf, err := os.OpenFile(l.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("uvsd log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(l.Path, l.Args...)
	cmd.Env = l.Env
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", l.Path, err)
	}
	exited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		if err == nil {
			err = errors.New("exited")
		}
		exited <- fmt.Errorf("%s %w (see %s)", l.Path, err, l.LogPath())
	}()
	return exited, nil
}
