// Package testbin builds the module's commands for tests that run them as
// separate processes (uvsd, uvsadm, uvs-rs, ...). Builds are static
// (CGO_ENABLED=0), like the release binaries.
//
//	var bin string
//
//	func TestMain(m *testing.M) { testbin.Main(m, &bin, "uvs-e2e-bin-", "../cmd/...") }
package testbin

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Build runs go build with CGO_ENABLED=0 for pkgs (package paths or
// patterns, relative ones from the current directory), writing the
// executables into dir under their package names. The error carries the
// compiler's output.
func Build(dir string, pkgs ...string) error {
	if len(pkgs) == 0 {
		return errors.New("testbin: no package to build")
	}
	args := append([]string{"build", "-o", dir + string(filepath.Separator)}, pkgs...)
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", strings.Join(pkgs, " "), err, out)
	}
	return nil
}

// Main is a whole TestMain: it builds pkgs into a new temporary directory
// named prefix*, stores its path in *dir, runs the tests, removes the
// directory and exits with the tests' status. If the build fails it prints
// why and exits 1 without running any test.
func Main(m *testing.M, dir *string, prefix string, pkgs ...string) {
	d, err := os.MkdirTemp("", prefix)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := Build(d, pkgs...); err != nil {
		fmt.Fprintln(os.Stderr, "building the commands:", err)
		os.RemoveAll(d)
		os.Exit(1)
	}
	*dir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}
