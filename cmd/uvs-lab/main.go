// Command uvs-lab runs the classic LVS labs in network namespaces: uvs-lab
// list | status | up | run | explain | break | down | demo, and httpd, the
// labs' real server. See lab/README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/uvs-lb/uvs/lab"
)

func main() {
	// Ctrl-C, a kill, a closed terminal or a closed output pipe (uvs-lab
	// run nat | head) all end the command the same way: it removes what it
	// built.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	code := lab.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
