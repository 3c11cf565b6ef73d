package contentsync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Job is one rsync run: a batch of changes (or the whole tree) to one
// target.
type Job struct {
	Target  Target
	Changes Changes
}

// Runner runs one job and returns nil when the target has the changes.
// Exec is the real one; tests substitute their own.
type Runner func(ctx context.Context, j Job) error

// RsyncError is a failed rsync run.
type RsyncError struct {
	Dest   string
	Code   int // rsync's exit status, -1 when it did not exit
	Stderr string
	Err    error
}

func (e *RsyncError) Error() string {
	var lines []string
	for _, l := range strings.Split(e.Stderr, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	msg := strings.Join(lines, " | ")
	if len(msg) > 400 {
		msg = msg[:400] + "…"
	}
	if msg == "" && e.Err != nil {
		msg = e.Err.Error()
	}
	return fmt.Sprintf("rsync to %s: exit %d: %s", e.Dest, e.Code, msg)
}

func (e *RsyncError) Unwrap() error { return e.Err }

// rsync's exit statuses (rsync(1), EXIT VALUES) that leave the target
// with the changes: 0, and 24 (a file vanished before it was sent: its
// deletion is the next event).
func rsyncOK(code int) bool { return code == 0 || code == 24 }

// Exec runs the real rsync binary.
type Exec struct {
	// Rsync is the binary ("rsync" on PATH by default).
	Rsync string
	// Config supplies the watched tree, the parameters and timeout.
	Config *Config
	// TmpDir holds each run's filter file (the state directory).
	TmpDir string
}

// Argv is the command line of j, and the content of its filter file (""
// for a full sync). rsync runs in the watched tree and sends "./":
//
//	rsync -artuz --delete [--ignore-times --filter='. FILE' | --exclude=…]
//	      [--timeout=N] [--password-file=F | -e 'ssh -p P'] ./ DEST
//
// --delete with the filter removes the batch's deleted paths on the
// target, and only those (FilterRules). A batch's paths are known to
// have changed, so they are sent with --ignore-times: rsync's quick check
// compares sizes and whole seconds of mtime (--modify-window 0), and a
// file rewritten with the same size within the second of its last sync
// would otherwise be skipped — "synced", and stale on the target (sersync,
// which runs plain -artuz, has that hole). The delta algorithm keeps an
// unchanged file's transfer to its checksums. A full sync keeps the quick
// check: it walks the whole tree.
func (x *Exec) Argv(j Job, filterFile string) (argv []string, rules string, err error) {
	c := x.Config
	bin := x.Rsync
	if bin == "" {
		bin = "rsync"
	}
	argv = append([]string{bin}, c.Params...)
	argv = append(argv, "--delete")
	if j.Changes.Full {
		for _, e := range defaultRsyncExcludes {
			argv = append(argv, "--exclude="+e)
		}
		for _, e := range c.CronExcludes {
			argv = append(argv, "--exclude="+e)
		}
	} else {
		var bad []string
		rules, bad = FilterRules(j.Changes.Sorted())
		if len(bad) > 0 {
			return nil, "", fmt.Errorf("file name %q holds a newline: rsync's filter rules cannot name it", bad[0])
		}
		argv = append(argv, "--ignore-times", "--filter=. "+filterFile)
	}
	if c.Timeout > 0 {
		argv = append(argv, "--timeout="+strconv.Itoa(c.Timeout))
	}
	t := j.Target
	if t.SSH {
		if t.Port != 0 {
			argv = append(argv, "-e", "ssh -p "+strconv.Itoa(t.Port))
		}
	} else if t.PasswordFile != "" {
		argv = append(argv, "--password-file="+t.PasswordFile)
	}
	argv = append(argv, "./", t.Dest())
	return argv, rules, nil
}

// Run runs j's rsync and waits for it; cancelling ctx stops it.
func (x *Exec) Run(ctx context.Context, j Job) error {
	var filterFile string
	if !j.Changes.Full {
		f, err := os.CreateTemp(x.TmpDir, "batch-*.rules")
		if err != nil {
			return fmt.Errorf("rsync filter file: %w", err)
		}
		filterFile = f.Name()
		f.Close()
		defer os.Remove(filterFile)
	}
	argv, rules, err := x.Argv(j, filterFile)
	if err != nil {
		return err
	}
	if filterFile != "" {
		if err := os.WriteFile(filterFile, []byte(rules), 0o600); err != nil {
			return fmt.Errorf("rsync filter file: %w", err)
		}
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = x.Config.Watch
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	// SIGTERM first, as rsync cleans up its temporary files on it.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 3 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		code = -1
	}
	if err == nil || rsyncOK(code) {
		return nil
	}
	return &RsyncError{Dest: j.Target.Dest(), Code: code, Stderr: stderr.String(), Err: err}
}

// absWatch resolves the watched tree.
func absWatch(dir string) (string, error) {
	a, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	st, err := os.Stat(a)
	if err != nil {
		return "", fmt.Errorf("watch %s: %w", dir, err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("watch %s: not a directory", dir)
	}
	return a, nil
}
