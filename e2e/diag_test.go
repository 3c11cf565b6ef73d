//go:build linux

package e2e

import (
	"fmt"
	"strings"

	"github.com/uvs-lb/uvs/internal/netnstest"
)

// directorState returns what the director in ns knows at the time of a
// failure, for a test to print so that a flake explains itself: uvsd's
// counters (drops by reason, neighbour queue, per worker), its table and
// connections, the kernel's neighbour table (a next hop that is not
// REACHABLE or STALE holds uvsd's frames in its neighbour queue) and the
// kernel hooks with their counters (frames the kernel was kept off).
// A command that fails is reported in place of its output: this is a
// diagnosis, never a reason to stop the test.
func directorState(ns *netnstest.NS) string {
	var b strings.Builder
	for _, cmd := range [][]string{
		{"env", "UVS_NO_AUTOSTART=1", binary("uvsadm"), "--counters"},
		{"env", "UVS_NO_AUTOSTART=1", binary("uvsadm"), "-Ln", "--stats"},
		{"env", "UVS_NO_AUTOSTART=1", binary("uvsadm"), "-Lnc"},
		{"ip", "-s", "neigh", "show"},
		{"nft", "list", "table", "netdev", "uvs"},
	} {
		name := strings.Join(cmd, " ")
		if cmd[0] == "env" {
			name = "uvsadm " + strings.Join(cmd[3:], " ")
		}
		out, err := ns.Run(cmd...)
		fmt.Fprintf(&b, "--- %s", name)
		if err != nil {
			fmt.Fprintf(&b, " (%v)", err)
		}
		fmt.Fprintf(&b, ":\n%s\n", strings.TrimRight(out, "\n"))
	}
	return b.String()
}
