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
	sigs := []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE}
	if len(os.Args) > 1 && os.Args[1] == "httpd" {
		// The labs' real server: with SIGPIPE notified, the runtime raises
		// it for a broken pipe on any descriptor, so a client resetting a
		// connection mid-answer (EPIPE on its socket) would stop the
		// server. Unnotified, such a write just fails with EPIPE.
		sigs = sigs[:3]
	}
	ctx, stop := signal.NotifyContext(context.Background(), sigs...)
	code := lab.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
