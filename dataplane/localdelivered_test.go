package dataplane_test

import (
	"errors"
	"testing"

	"github.com/uvs-lb/uvs/dataplane"
)

// TestLocalDeliveredCounted: packets handed to the director's own stack
// (LOCALNODE) are counted as local-delivered (besides tx); a failed
// delivery is a tx error, not a delivery.
func TestLocalDeliveredCounted(t *testing.T) {
	ln := &fakeLocal{}
	r := localRig(t, "-A -t 10.0.1.100:80 -s rr\n-a -t 10.0.1.100:80 -r "+dirAddr+" -g\n", ln)
	r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false))
	r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, false, true))
	if len(ln.pkts) != 2 {
		t.Fatalf("delivered %d packets, want 2", len(ln.pkts))
	}
	c := &r.w.Counters
	if got := c.Load(dataplane.CntLocalDelivered); got != 2 {
		t.Fatalf("local-delivered %d, want 2", got)
	}
	ln.err = errors.New("stack gone")
	r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, false, true))
	if got, txErr := c.Load(dataplane.CntLocalDelivered), c.Load(dataplane.CntTxErr); got != 2 || txErr != 1 {
		t.Fatalf("after a failed delivery: local-delivered %d (want 2), tx-error %d (want 1)", got, txErr)
	}
}
