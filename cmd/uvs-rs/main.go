// Command uvs-rs prepares a Linux real server for LVS direct routing and
// tunnelling (see realserver.Usage); for tunnelling on kernels without the
// ipip module it runs a userspace decapsulator into a TUN device.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/uvs-lb/uvs/realserver"
)

func main() {
	err := realserver.Run(context.Background(), realserver.Env{Stdout: os.Stdout, Stderr: os.Stderr}, os.Args[1:])
	if err == nil {
		return
	}
	fmt.Fprintf(os.Stderr, "uvs-rs: %v\n", err)
	if errors.Is(err, realserver.ErrUsage) {
		fmt.Fprint(os.Stderr, realserver.Usage)
		os.Exit(2)
	}
	os.Exit(1)
}
