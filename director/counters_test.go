package director

import (
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/control"
	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/ipvsadm"
	"github.com/uvs-lb/uvs/snapshot"
)

type noHops struct{}

func (noHops) Lookup(netip.Addr) (dataplane.Hop, bool) { return dataplane.Hop{}, false }

// udpTo is a UDP datagram from a client to 10.0.1.100:53 arriving on the
// director's interface (MAC 02:00:00:00:01:01).
func udpTo(t *testing.T, sport uint16) dataplane.Frame {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 1, 2}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 1, 1}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IPv4(10, 0, 1, 2), DstIP: net.IPv4(10, 0, 1, 100)}
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: 53}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	sb := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, gopacket.Payload("q")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64+len(sb.Bytes()))
	return dataplane.Frame{Buf: buf, Off: 64, Len: copy(buf[64:], sb.Bytes()), Ifindex: 1}
}

// TestCountersBatchFigures: uvsadm --counters has each worker's
// neighbour-queue depth, its batches and its batches by size, a retired
// worker's column included.
func TestCountersBatchFigures(t *testing.T) {
	var snap atomic.Pointer[snapshot.Snapshot]
	var host atomic.Pointer[dataplane.Host]
	host.Store(&dataplane.Host{
		Ifaces: map[int]dataplane.Iface{1: {Index: 1, Name: "d0", MAC: [6]byte{2, 0, 0, 0, 1, 1}, MTU: 1500}},
		Local:  map[[16]byte]bool{},
	})
	st := control.New(control.Options{Publish: func(s *snapshot.Snapshot) { snap.Store(s) }})
	cmds, err := ipvsadm.ParseRules(strings.NewReader("-A -u 10.0.1.100:53 -s rr\n-a -u 10.0.1.100:53 -r 10.0.2.12:53 -m\n"), "rules")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.ApplyAll(cmds); err != nil {
		t.Fatal(err)
	}
	ct, err := conntrack.New(conntrack.Config{Capacity: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	env := &dataplane.Env{Snap: &snap, Host: &host, Conns: ct, Hops: noHops{},
		Now: time.Now, Epoch: time.Now(), Ports: dataplane.NewPortAllocator(0, 0)}
	w0 := dataplane.NewWorker(dataplane.NewFakeIO(64, 0), env)
	w1 := dataplane.NewWorker(dataplane.NewFakeIO(64, 0), env)
	w0.ProcessBatch([]dataplane.Frame{udpTo(t, 5000)})
	w1.ProcessBatch([]dataplane.Frame{udpTo(t, 5001), udpTo(t, 5002), udpTo(t, 5003)})
	w1.ProcessBatch([]dataplane.Frame{udpTo(t, 5004), udpTo(t, 5005)})
	d := &Director{Conns: ct, retired: []*dataplane.Worker{w0}, workers: []*dataplane.Worker{w1}}
	cs := d.counters()
	got := map[string][]uint64{}
	for _, c := range cs.Counters {
		if !strings.HasPrefix(c.Name, "worker.") {
			continue
		}
		row := []uint64{c.Total}
		for _, v := range c.Workers {
			if v == nil {
				t.Fatalf("%s: a worker without a value", c.Name)
			}
			row = append(row, *v)
		}
		got[c.Name] = row
	}
	want := map[string][]uint64{
		"worker.neighbour-queue-depth": {6, 1, 5},
		"worker.batches":               {3, 1, 2},
		"worker.batches-1":             {1, 1, 0},
		"worker.batches-2-4":           {2, 0, 2},
		"worker.batches-5-16":          {0, 0, 0},
		"worker.batches-17-64":         {0, 0, 0},
	}
	if len(got) != len(want) {
		t.Errorf("worker.* lines %v, want %v", got, want)
	}
	for name, w := range want {
		if g := got[name]; len(g) != len(w) || g[0] != w[0] || g[1] != w[1] || g[2] != w[2] {
			t.Errorf("%s = %v (total, w0, w1), want %v", name, g, w)
		}
	}
}
