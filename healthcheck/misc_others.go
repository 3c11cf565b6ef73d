//go:build !unix

package healthcheck

import (
	"context"
	"fmt"
	"runtime"
)

// Probe fails: MISC_CHECK needs process groups and signals (unix only).
func (m *MiscCheck) Probe(ctx context.Context, t Target) Result {
	return Result{Msg: fmt.Sprintf("Misc check for [%s]: not supported on %s.", m.serverName(t), runtime.GOOS)}
}
