//go:build !unix

package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"runtime"
)

// Probe fails: MISC_CHECK needs process groups and signals (unix only).
func (m *MiscCheck) Probe(ctx context.Context, t Target) Result {
	return Result{Msg: fmt.Sprintf("Misc check for [%s]: not supported on %s.", m.serverName(t), runtime.GOOS)}
}

// RunAs fails for a user: running as another user is unix only.
func RunAs(cmd *exec.Cmd, name, group string) error {
	if name == "" {
		return nil
	}
	return errors.New("running as user " + name + " is not supported on " + runtime.GOOS)
}
