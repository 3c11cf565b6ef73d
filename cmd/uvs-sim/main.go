// Command uvs-sim replays a workload through the uvs scheduling core on a
// simulated clock, deterministically. See sim/README.md.
package main

import (
	"os"

	"github.com/uvs-lb/uvs/sim"
)

func main() {
	os.Exit(sim.Main(os.Args[1:], os.Stdout, os.Stderr))
}
