// Command uvs-lab runs the classic LVS labs in network namespaces. For now
// it provides the lab's real server: `uvs-lab httpd --name rs1 [--listen :80]`.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/uvs-lb/uvs/lab"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "httpd" {
		fmt.Fprintln(os.Stderr, "usage: uvs-lab httpd --name NAME [--listen ADDR]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("uvs-lab httpd", flag.ExitOnError)
	name := fs.String("name", "", "name the server answers with")
	listen := fs.String("listen", ":80", "TCP and UDP address to serve")
	_ = fs.Parse(os.Args[2:])
	if *name == "" {
		fmt.Fprintln(os.Stderr, "uvs-lab httpd: --name is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := lab.ServeName(ctx, *listen, *name); err != nil {
		fmt.Fprintln(os.Stderr, "uvs-lab httpd:", err)
		os.Exit(1)
	}
}
