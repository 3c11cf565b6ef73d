package sim

import (
	"io"

	"github.com/uvs-lb/uvs/ipvsadm"
)

// parseIpvsadm parses one ipvsadm command line (without the program name).
func parseIpvsadm(args []string) (ipvsadm.Command, error) { return ipvsadm.Parse(args) }

// parseRules reads a rules file in ipvsadm save format.
func parseRules(r io.Reader, name string) ([]ipvsadm.Command, error) {
	return ipvsadm.ParseRules(r, name)
}
