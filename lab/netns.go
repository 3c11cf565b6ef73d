package lab

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
	"time"

	"github.com/uvs-lb/uvs/internal/netnsdo"
)

// netnsDir is where ip(8) keeps named network namespaces.
const netnsDir = "/run/netns"

// commandTimeout bounds every command the lab runs in the foreground.
const commandTimeout = 15 * time.Second

// inNetNS runs fn on a fresh OS thread inside the named namespace and waits
// for it (see internal/netnsdo). Sockets fn creates stay in that namespace
// and may be used from any goroutine afterwards.
func inNetNS(name string, fn func() error) error {
	return netnsdo.Do(name, fn)
}

// runCmd runs a command with a timeout and returns its combined output
// (trimmed). The error names the command and carries its output.
func runCmd(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	s := strings.TrimRight(out.String(), "\n")
	if err != nil {
		msg := strings.TrimSpace(s)
		if msg != "" {
			return s, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
		}
		return s, fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return s, nil
}

// nsExists reports whether the named namespace exists.
func nsExists(name string) bool {
	_, err := os.Stat(filepath.Join(netnsDir, name))
	return err == nil
}

// listNamespaces returns the named namespaces that start with prefix.
func listNamespaces(prefix string) ([]string, error) {
	ents, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// nsPIDs lists the processes whose network namespace is the named one.
func nsPIDs(ctx context.Context, name string) ([]int, error) {
	out, err := runCmd(ctx, "ip", "netns", "pids", name)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(out) {
		if p, err := strconv.Atoi(f); err == nil {
			pids = append(pids, p)
		}
	}
	return pids, nil
}
