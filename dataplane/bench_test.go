package dataplane_test

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/connsync"
	"github.com/uvs-lb/uvs/connsync/wire"
	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/control"
	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/ipvsadm"
	"github.com/uvs-lb/uvs/snapshot"
)

// bigFlows is the number of live connections of BenchmarkNAT1M.
const bigFlows = 1 << 20

// bigFlowKey returns the client address and port of flow i: clients spread
// over 10.16.0.0/12, 16 ports each.
func bigFlowKey(i int) ([4]byte, uint16) {
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], 0x0a100000|uint32(i>>4))
	return a, uint16(1024 + i&15)
}

// BenchmarkNAT1M measures the per-packet path (parse, connection lookup,
// NAT rewrite, transmit) in batches of 64 against a table holding 1 M live
// NAT connections, visited in a pseudo-random order, so that lookups miss
// the CPU caches as they do on a loaded director. Compare with
// BenchmarkNATPerPacket (one connection, always cached).
func BenchmarkNAT1M(b *testing.B) {
	var snap atomic.Pointer[snapshot.Snapshot]
	var host atomic.Pointer[dataplane.Host]
	host.Store(&dataplane.Host{
		Ifaces: map[int]dataplane.Iface{
			1: {Index: 1, Name: "d0", MAC: macDir0, MTU: 1500},
			2: {Index: 2, Name: "d1", MAC: macDir1, MTU: 1500},
		},
		Local: map[[16]byte]bool{},
	})
	ct, err := conntrack.New(conntrack.Config{Capacity: bigFlows + 1<<12, Seed: 7})
	if err != nil {
		b.Fatal(err)
	}
	st := control.New(control.Options{Publish: func(s *snapshot.Snapshot) { snap.Store(s) }})
	cmds, err := ipvsadm.ParseRules(strings.NewReader(natRules), "rules")
	if err != nil {
		b.Fatal(err)
	}
	if err := st.ApplyAll(cmds); err != nil {
		b.Fatal(err)
	}
	svc := snap.Load().Services()[0]
	env := &dataplane.Env{Snap: &snap, Host: &host, Conns: ct, Hops: testHops(),
		Now: time.Now, Epoch: time.Now(), Ports: dataplane.NewPortAllocator(0, 0)}
	// Fill the table directly: scheduling 1 M SYNs through the worker
	// would only add setup time.
	var key conntrack.Key
	putV4(&key.Dst, [4]byte{10, 0, 1, 100})
	key.DstPort, key.Proto = 80, 6
	for i := range bigFlows {
		a, port := bigFlowKey(i)
		putV4(&key.Src, a)
		key.SrcPort = port
		d := svc.Sched.Dests()[i&1]
		nc := conntrack.NewConn{In: key, Fwd: d.Fwd(), Dest: d, MAC: macCli, Ifindex: 1, Service: svc.ID}
		if err := ct.Create(&nc, 0x12, 0, nil); err != nil {
			b.Fatal(err)
		}
	}
	tmpl := tcpFrame(b, macCli, macDir0, "10.16.0.0", "10.0.1.100", 1024, 80, false, true)
	w := dataplane.NewWorker(discardIO{}, env)
	const batch = 64
	bufs := make([][]byte, batch)
	frames := make([]dataplane.Frame, batch)
	for i := range bufs {
		bufs[i] = make([]byte, 64+len(tmpl))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		for j := range frames {
			flow := ((i + j) * 0x9E3779B1) & (bigFlows - 1)
			a, port := bigFlowKey(flow)
			buf := bufs[j]
			copy(buf[64:], tmpl)
			copy(buf[64+26:], a[:])
			header.IPv4(buf[64+14:]).UpdateChecksum() // the worker drops a header that does not verify
			binary.BigEndian.PutUint16(buf[64+34:], port)
			frames[j] = dataplane.Frame{Buf: buf, Off: 64, Len: len(tmpl), Ifindex: 1}
		}
		w.ProcessBatch(frames)
	}
	b.StopTimer()
	if tx, rx := w.Counters.Load(dataplane.CntTx), w.Counters.Load(dataplane.CntRx); tx != rx || w.Counters.Load(dataplane.CntNewConn) != 0 {
		b.Fatalf("forwarded %d of %d packets, %d new connections: not all hit the table (not-syn %d)",
			tx, rx, w.Counters.Load(dataplane.CntNewConn), w.Counters.Load(dataplane.CntNotSyn))
	}
}

func putV4(dst *[16]byte, a [4]byte) {
	*dst = [16]byte{10: 0xff, 11: 0xff}
	copy(dst[12:], a[:])
}

// testHops resolves the real servers of the test topology.
func testHops() fakeHops {
	return fakeHops{
		netip.MustParseAddr("10.0.2.11"): {Ifindex: 2, SrcMAC: macDir1, DstMAC: macRS1, Src: netip.MustParseAddr("10.0.2.1"), MTU: 1500},
		netip.MustParseAddr("10.0.2.12"): {Ifindex: 2, SrcMAC: macDir1, DstMAC: macRS2, Src: netip.MustParseAddr("10.0.2.1"), MTU: 1500},
	}
}

// BenchmarkWorkerSync is BenchmarkNATPerPacket with the sync daemon's tap
// in place: "off" with no master daemon running (the cost of the check),
// "on" with one running and the default policy (sync_threshold 3 50: one
// entry per 50 packets of the connection), for a plain NAT service and for
// a persistent one, whose template is queued after every packet as the
// kernel does. The rings are drained after every batch, as the daemon
// does on another core.
func BenchmarkWorkerSync(b *testing.B) {
	const persistRules = "-A -t 10.0.1.100:80 -s rr -p 300\n-a -t 10.0.1.100:80 -r 10.0.2.11:8080 -m\n-a -t 10.0.1.100:80 -r 10.0.2.12:8080 -m\n"
	for _, bc := range []struct {
		name  string
		rules string
		on    bool
	}{
		{"nat/off", natRules, false},
		{"nat/on", natRules, true},
		{"persistent/off", persistRules, false},
		{"persistent/on", persistRules, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := newRig(b, bc.rules)
			tap := connsync.NewTap()
			tap.SetSending(bc.on)
			r.env.Sync = tap
			r.run(b, tcpFrame(b, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false))
			data := tcpFrame(b, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, false, true)
			w := dataplane.NewWorker(discardIO{}, r.env)
			const batch = 64
			bufs := make([][]byte, batch)
			frames := make([]dataplane.Frame, batch)
			for i := range bufs {
				bufs[i] = make([]byte, 64+len(data))
			}
			drained := 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				for j := range frames {
					copy(bufs[j][64:], data)
					frames[j] = dataplane.Frame{Buf: bufs[j], Off: 64, Len: len(data), Ifindex: 1}
				}
				w.ProcessBatch(frames)
				for _, rg := range tap.Rings() {
					drained += rg.Drain(func(*wire.Entry) {})
				}
			}
			b.StopTimer()
			if bc.on && drained == 0 && b.N > 100 {
				b.Fatal("sync on, but nothing was queued")
			}
			b.ReportMetric(float64(drained)/float64(b.N), "entries/pkt")
		})
	}
}
