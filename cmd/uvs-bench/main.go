// Command uvs-bench measures uvs against kernel forwarding, nftables DNAT,
// iptables statistic DNAT and HAProxy on one namespace topology (`make
// bench`); `uvs-bench gen` is its UDP generator on its own. See package
// bench.
package main

import (
	"os"

	"github.com/uvs-lb/uvs/bench"
)

func main() { os.Exit(bench.Main(os.Args[1:], os.Stdout, os.Stderr)) }
