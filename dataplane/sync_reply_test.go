package dataplane_test

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/spec"
)

type switchHops struct {
	mu sync.Mutex
	m  fakeHops
}

func (s *switchHops) Lookup(a netip.Addr) (dataplane.Hop, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.m[a]
	return h, ok
}

// A promoted backup: a NAT connection created by ApplySync (no client
// MAC) has its replies routed to the client, queued while unresolved.
func TestSyncedNATReply(t *testing.T) {
	r := newRig(t, natRules)
	hops := &switchHops{m: testHops()}
	r.withHops(hops, time.Second)
	svc := r.env.Snap.Load().Services()[0]
	d := svc.Sched.Dest(netip.MustParseAddrPort("10.0.2.12:8080"))
	s := conntrack.SyncConn{Proto: 6, State: conntrack.StateEstablished,
		Client:  conntrack.EndpointFrom(netip.MustParseAddrPort("10.0.1.2:40000")),
		Virtual: conntrack.EndpointFrom(netip.MustParseAddrPort("10.0.1.100:80")),
		Real:    conntrack.EndpointFrom(netip.MustParseAddrPort("10.0.2.12:8080")),
		Timeout: 900 * time.Second, Dest: d, Fwd: spec.FwdMasq, Service: svc.ID, InPkts: 3}
	if _, err := r.conns.ApplySync(&s, int64(r.clock.Sub(time.Unix(0, 0)))); err != nil {
		t.Fatal(err)
	}
	reply := tcpFrame(t, macRS2, macDir1, "10.0.2.12", "10.0.1.2", 8080, 40000, false, true)
	if out := r.run(t, reply); len(out) != 0 {
		t.Fatalf("unresolved client: sent %d", len(out))
	}
	if r.w.Counters.Load(dataplane.CntNeighQueued) != 1 {
		t.Fatal("not queued")
	}
	gw := [6]byte{2, 0, 0, 0, 1, 0xfe}
	hops.mu.Lock()
	hops.m[netip.MustParseAddr("10.0.1.2")] = dataplane.Hop{Ifindex: 1, SrcMAC: macDir0, DstMAC: gw, MTU: 1500}
	hops.mu.Unlock()
	out := r.retry()
	if len(out) != 1 || out[0].Ifindex != 1 {
		t.Fatalf("after resolution: sent %d", len(out))
	}
	eth, ip, tcp := decode(t, out[0].Data())
	if [6]byte(eth.DstMAC) != gw || [6]byte(eth.SrcMAC) != macDir0 || ip.SrcIP.String() != "10.0.1.100" || tcp.SrcPort != 80 {
		t.Fatalf("reply %v %v %v", eth.DstMAC, ip.SrcIP, tcp.SrcPort)
	}
	out = r.run(t, reply)
	if len(out) != 1 {
		t.Fatalf("resolved: sent %d", len(out))
	}
	// The request direction works too.
	if out := r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, false, true)); len(out) != 1 || out[0].Ifindex != 2 {
		t.Fatalf("request of the synced connection: sent %d", len(out))
	}
}
