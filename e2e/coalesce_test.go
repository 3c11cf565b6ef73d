package e2e

import (
	"fmt"
	"testing"

	"github.com/uvs-lb/uvs/internal/netnstest"
)

// TestOffloadNATCoalesceAFXDP uploads 64 MB through a NAT director on the
// AF_XDP backend. Its native XDP program turns off the client veth's TSO
// (veth_xdp_set), so the client's stack sends MTU-sized segments; uvsd's
// AF_XDP receive path merges a batch's segments of the stream into
// super-frames, rewrites each once and sends it with a virtio_net_hdr, and
// the real server's stack receives it whole. The stream must arrive
// intact, and the counters must show the super-frames both ways (read
// and built: afxdp.rx-super; sent with GSO metadata: afxdp.tx-gso; seen by
// the worker: dataplane.gso).
func TestOffloadNATCoalesceAFXDP(t *testing.T) {
	t.Setenv("UVS_E2E_IO", "afxdp") // about the AF_XDP backend, in every e2e pass (startUVSDArgs passes it as --io)
	l := newNATLab(t)
	for _, rs := range l.rs {
		startStreamServer(t, rs)
	}
	startUVSD(t, l.dir, fmt.Sprintf(`-A -t 10.0.1.100:%[1]d -s rr
-a -t 10.0.1.100:%[1]d -r 10.0.2.11:%[1]d -m
-A -t [fd00:1::100]:%[1]d -s rr
-a -t [fd00:1::100]:%[1]d -r [fd00:2::11]:%[1]d -m
`, streamPort), "--io", "afxdp")
	totals := func() map[string]uint64 { return uvsCounters(t, l.dir) }
	check := func(name string, before map[string]uint64) map[string]uint64 {
		t.Helper()
		after := totals()
		for _, c := range []string{"afxdp.rx-super", "afxdp.tx-gso", "dataplane.gso"} {
			if after[c] <= before[c] {
				t.Errorf("%s: %s %d → %d, want more", name, c, before[c], after[c])
			}
		}
		if after["afxdp.tx-errors"] != before["afxdp.tx-errors"] {
			t.Errorf("%s: afxdp.tx-errors %d → %d", name, before["afxdp.tx-errors"], after["afxdp.tx-errors"])
		}
		return after
	}
	before := totals()
	transfer(t, l.cli, fmt.Sprintf("10.0.1.100:%d", streamPort), true, 64<<20)
	before = check("IPv4", before)
	transfer(t, l.cli, fmt.Sprintf("[fd00:1::100]:%d", streamPort), true, 64<<20)
	check("IPv6", before)
	for _, ns := range []*netnstest.NS{l.cli, l.rs[0]} {
		if n := nstatCounter(t, ns, "TcpInCsumErrors"); n != 0 {
			t.Errorf("%s counted %d TCP checksum errors", ns.Name, n)
		}
	}
}
