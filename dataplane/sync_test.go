package dataplane_test

import (
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/connsync"
	"github.com/uvs-lb/uvs/connsync/wire"
	"github.com/uvs-lb/uvs/dataplane"
)

// withSync gives the rig a sync tap (a master daemon running, policy p)
// and a new worker registered on it.
func (r *rig) withSync(p connsync.Policy) *connsync.Tap {
	tap := connsync.NewTap()
	tap.SetPolicy(p)
	tap.SetSending(true)
	r.env.Sync = tap
	r.w = dataplane.NewWorker(r.io, r.env)
	return tap
}

// drain returns the entries queued on the tap's rings.
func drain(tap *connsync.Tap) []wire.Entry {
	var es []wire.Entry
	for _, rg := range tap.Rings() {
		rg.Drain(func(e *wire.Entry) { es = append(es, *e) })
	}
	return es
}

// finFrame is the client's FIN|ACK of the test connection.
func finFrame(t *testing.T) []byte {
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(macCli[:]), DstMAC: net.HardwareAddr(macDir0[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.ParseIP("10.0.1.2"), DstIP: net.ParseIP("10.0.1.100")}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, FIN: true, ACK: true, Seq: 2000, Window: 65535}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	return serialize(t, eth, ip, tcp)
}

func a16(s string) [16]byte { return netip.MustParseAddr(s).As16() }

// The master sends a connection when the kernel would: not in SYN_RECV,
// not on its second packet (ESTABLISHED is no forced change), on the
// third inbound packet (sync_threshold 3), then every 50th (53, 103, …);
// a change to a closing state at once. Replies do not count.
func TestSyncSendsAtThreshold(t *testing.T) {
	r := newRig(t, natRules)
	tap := r.withSync(connsync.DefaultPolicy)
	syn := tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false)
	ack := tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, false, true)
	reply := tcpFrame(t, macRS2, macDir1, "10.0.2.12", "10.0.1.2", 8080, 40000, true, true)
	r.run(t, syn)
	r.run(t, reply)
	r.run(t, ack)
	if es := drain(tap); len(es) != 0 {
		t.Fatalf("sent after 2 inbound packets: %+v", es)
	}
	r.run(t, ack)
	es := drain(tap)
	if len(es) != 1 {
		t.Fatalf("third packet: %d entries, want 1", len(es))
	}
	want := wire.Entry{
		Proto: 6, Flags: 0, State: 1, CPort: 40000, VPort: 80, DPort: 8080, Timeout: 900,
		CAddr: a16("10.0.1.2"), VAddr: a16("10.0.1.100"), DAddr: a16("10.0.2.12"),
	}
	if es[0] != want {
		t.Fatalf("entry\n %+v\nwant\n %+v", es[0], want)
	}
	for i := 4; i <= 53; i++ {
		r.run(t, ack)
		if n := len(drain(tap)); (i == 53) != (n == 1) || n > 1 {
			t.Fatalf("packet %d: %d entries", i, n)
		}
	}
	// A FIN moves ESTABLISHED to CLOSE_WAIT: sent at once.
	r.run(t, finFrame(t))
	if es := drain(tap); len(es) != 1 || es[0].State != 7 {
		t.Fatalf("FIN: entries %+v, want one in CLOSE_WAIT (7)", es)
	}
	if got := r.w.Counters.Load(dataplane.CntSyncSent); got != 3 {
		t.Fatalf("sync-sent %d, want 3", got)
	}
	// No master daemon: nothing is queued.
	tap.SetSending(false)
	for range 60 {
		r.run(t, ack)
	}
	if es := drain(tap); len(es) != 0 {
		t.Fatalf("sent %d entries without a master daemon", len(es))
	}
}

const persistDRRules = `-A -t 10.0.1.100:80 -s rr -p 50
-a -t 10.0.1.100:80 -r 10.0.2.11:80 -g
-a -t 10.0.1.100:80 -r 10.0.2.12:80 -g
`

// A persistent connection's template follows it on every inbound packet
// (templates skip the packet rule), with the kernel's flags (TEMPLATE |
// the destination's INACTIVE, NOOUTPUT and method: 0x1183 for DR),
// its key (client network, cport 0, VIP and port) and timeout.
func TestSyncTemplate(t *testing.T) {
	r := newRig(t, persistDRRules)
	tap := r.withSync(connsync.DefaultPolicy)
	r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false))
	es := drain(tap)
	if len(es) != 1 {
		t.Fatalf("SYN: %d entries, want the template", len(es))
	}
	tm := es[0]
	want := wire.Entry{
		Proto: 6, Flags: wire.FlagTemplate | wire.FlagInactive | wire.FlagNoOutput | wire.FwdDRoute, State: 0, CPort: 0, VPort: 80, DPort: 80, Timeout: 50,
		CAddr: a16("10.0.1.2"), VAddr: a16("10.0.1.100"), DAddr: tm.DAddr,
	}
	if tm != want || (tm.DAddr != a16("10.0.2.11") && tm.DAddr != a16("10.0.2.12")) {
		t.Fatalf("template\n %+v\nwant\n %+v", tm, want)
	}
	ack := tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, false, true)
	r.run(t, ack)
	if es := drain(tap); len(es) != 1 || es[0].Flags&wire.FlagTemplate == 0 || es[0].State != 1 {
		t.Fatalf("second packet: %+v, want the template, ASSURED", es)
	}
	r.run(t, ack)
	es = drain(tap)
	if len(es) != 2 || es[0].Flags != wire.FwdDRoute|wire.FlagNoOutput || es[0].CPort != 40000 || es[1].Flags&wire.FlagTemplate == 0 {
		t.Fatalf("third packet: %+v, want the connection (DR, NOOUTPUT) then its template", es)
	}
}

// sync_persist_mode: a connection under a template is not sent, its
// template is. sync_version 0: the template goes only with a connection
// that is sent.
func TestSyncPersistModeAndV0(t *testing.T) {
	ack := func(t *testing.T) []byte {
		return tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, false, true)
	}
	for _, tc := range []struct {
		name string
		pol  connsync.Policy
		want []int // entries after packets 1, 2, 3: 1 per template, 10 per connection
	}{
		{"persist-mode", connsync.Policy{Threshold: 3, Period: 50, PersistMode: true, Version: 1}, []int{1, 1, 1}},
		{"v0", connsync.Policy{Threshold: 3, Period: 50, Version: 0}, []int{0, 0, 11}},
		{"period-0", connsync.Policy{Threshold: 3, Period: 0, Version: 1}, []int{0, 0, 11}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, persistDRRules)
			tap := r.withSync(tc.pol)
			r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false))
			for i, want := range tc.want {
				if i > 0 {
					r.run(t, ack(t))
				}
				got := 0
				for _, e := range drain(tap) {
					if e.Flags&wire.FlagTemplate != 0 {
						got++
					} else {
						got += 10
					}
				}
				if got != want {
					t.Fatalf("packet %d: entries %d (1 per template, 10 per connection), want %d", i+1, got, want)
				}
			}
		})
	}
}

// A FULLNAT connection carries its local address and port (and, UDP,
// stays INACTIVE as in the kernel).
func TestSyncFullNAT(t *testing.T) {
	n := fullnat4
	r := n.rig(t)
	tap := r.withSync(connsync.DefaultPolicy)
	cli := netip.AddrPortFrom(n.cli, 5000)
	vip := netip.AddrPortFrom(n.vip, 53)
	for range 3 {
		r.run(t, n.udp(t, macCli, macDir0, cli, vip, "q"))
	}
	es := drain(tap)
	if len(es) != 1 {
		t.Fatalf("%d entries, want 1", len(es))
	}
	e := es[0]
	if e.Proto != 17 || e.Flags != wire.FlagInactive|wire.FwdFullNAT || !e.HasLocal || e.LAddr != n.lip.As16() || e.LPort == 0 ||
		e.DAddr != n.rs.As16() || e.DPort != 5353 || e.Timeout != 300 {
		t.Fatalf("FULLNAT entry %+v", e)
	}
}

// The per-packet path with sync on (connection and template pushed) does
// not allocate.
func TestSyncNoAllocs(t *testing.T) {
	r := newRig(t, persistDRRules)
	tap := r.withSync(connsync.Policy{Threshold: 1, Period: 2, Version: 1})
	r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false))
	data := tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, false, true)
	w := dataplane.NewWorker(discardIO{}, r.env)
	buf := make([]byte, 64+len(data))
	frames := []dataplane.Frame{{}}
	allocs := testing.AllocsPerRun(200, func() {
		copy(buf[64:], data)
		frames[0] = dataplane.Frame{Buf: buf, Off: 64, Len: len(data), Ifindex: 1}
		w.ProcessBatch(frames)
	})
	if w.Counters.Load(dataplane.CntTx) == 0 || w.Counters.Load(dataplane.CntSyncSent) < 200 {
		t.Fatalf("the measured path sent %d frames, %d sync entries", w.Counters.Load(dataplane.CntTx), w.Counters.Load(dataplane.CntSyncSent))
	}
	if allocs != 0 {
		t.Fatalf("per-packet path with sync allocates %.1f times", allocs)
	}
	_ = tap
}
