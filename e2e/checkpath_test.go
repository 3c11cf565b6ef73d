package e2e

import "testing"

// TestDirectorReachesNATRealServers is the path a health checker takes: the
// director's own stack connects to a NAT real server on the very port its
// service forwards to. The real server's replies come from RS:port — what
// the kernel hooks keep from the kernel for NAT replies — but they are
// addressed to one of the director's own addresses, so they must reach the
// director's socket, while clients keep going through the VIP.
func TestDirectorReachesNATRealServers(t *testing.T) {
	l := newNATLab(t)
	startUVSD(t, l.dir, natRules)
	for _, c := range []struct{ name, rs, vip string }{
		{"IPv4", "http://10.0.2.11/", "http://10.0.1.100/"},
		{"IPv6", "http://[fd00:2::11]/", "http://[fd00:1::100]/"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for i := 0; i < 3; i++ {
				if got := curl(t, l.dir, c.rs); got != "rs1" {
					t.Fatalf("the director's own request to %s: answer %q, want rs1", c.rs, got)
				}
				if got := curl(t, l.cli, c.vip); got != "rs1" && got != "rs2" {
					t.Fatalf("client request to %s: answer %q", c.vip, got)
				}
			}
		})
	}
}
