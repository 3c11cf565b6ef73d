// Command uvs-sync keeps the real servers' web roots identical to the
// director's, as sersync does (seed 000): inotify events, coalesced and
// filtered, sent with rsync to every target; sersync's confxml.xml and
// options (-dro confxml.xml). See package contentsync.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/uvs-lb/uvs/contentsync"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := contentsync.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
