// Command uvsd is the uvs director: a userspace IPVS that forwards the
// traffic of virtual services to real servers. See `uvsd -h`.
package main

import (
	"os"

	"github.com/uvs-lb/uvs/director"
)

func main() { os.Exit(director.Main(os.Args[1:], os.Stdout, os.Stderr)) }
