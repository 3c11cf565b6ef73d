package bench

import (
	"slices"
	"testing"
)

// DR and TUN rows (the seeds' LVS-DR/TUN deployments: the real server's
// gateway is not the director) reply via the router; NAT, FULLNAT, the
// kernel rows, HAProxy and the comparison variants via the director
// (kernel-forward-rtr, the DR/TUN rows' kernel reference, and
// uvs-tun-rsuser, uvs-tun with user-space decapsulation, via the router);
// the variants run only when named.
func TestCandidateReplyPaths(t *testing.T) {
	h := &harness{topo: NewTopo("x-", 2)}
	router := []string{"uvs-dr", "uvs-tun", "uvs-tun-afpacket", "uvs-tun-rsuser", "kernel-forward-rtr"}
	for _, c := range h.candidates() {
		want := ReplyViaDirector
		switch {
		case c.ceiling:
			want = ""
		case slices.Contains(router, c.name):
			want = ReplyViaRouter
		}
		if c.reply != want {
			t.Errorf("%s: reply path %q, want %q", c.name, c.reply, want)
		}
		if variant := c.name == "uvs-dr-dirgw" || c.name == "uvs-tun-dirgw" || c.name == "kernel-forward-rtr" || c.name == "kernel-forward-xdp" || c.name == "uvs-nat-afpacket-2w" ||
			c.name == "uvs-nat-nofast" || c.name == "uvs-nat-nothreads" || c.name == "uvs-tun-rsuser"; c.onlyNamed != variant {
			t.Errorf("%s: onlyNamed %v", c.name, c.onlyNamed)
		}
	}
}
