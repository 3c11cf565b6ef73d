package dataplane_test

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/internal/wait"
)

// flakyHops resolves an address only once it is switched up, as the
// next-hop resolver does before and after ARP. upAfter, when set, switches
// an address up right after its next lookup (resolution completing
// between two frames of one batch).
type flakyHops struct {
	mu      sync.Mutex
	all     fakeHops
	up      map[netip.Addr]bool
	upAfter map[netip.Addr]bool
	lookups int
}

func newFlakyHops() *flakyHops {
	h := &flakyHops{all: testHops(), up: map[netip.Addr]bool{}, upAfter: map[netip.Addr]bool{}}
	for a := range h.all {
		h.up[a], h.upAfter[a] = false, false
	}
	return h
}

func (h *flakyHops) Lookup(a netip.Addr) (dataplane.Hop, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lookups++
	if !h.up[a] {
		if h.upAfter[a] {
			h.up[a], h.upAfter[a] = true, false
		}
		return dataplane.Hop{}, false
	}
	hop, ok := h.all[a]
	return hop, ok
}

func (h *flakyHops) set(a string, up bool) {
	h.mu.Lock()
	h.up[netip.MustParseAddr(a)] = up
	h.mu.Unlock()
}

func (h *flakyHops) setUpAfterLookup(a string) {
	h.mu.Lock()
	h.upAfter[netip.MustParseAddr(a)] = true
	h.mu.Unlock()
}

// withHops gives the rig a new worker with next hops h and neighbour
// timeout (0: default).
func (r *rig) withHops(h dataplane.NextHops, timeout time.Duration) {
	env := *r.env
	env.Hops = h
	env.NeighTimeout = timeout
	r.env = &env
	r.w = dataplane.NewWorker(r.io, r.env)
}

// retry runs an empty batch: only the neighbour queue is retried.
func (r *rig) retry() []dataplane.Frame {
	r.w.ProcessBatch(nil)
	return r.io.Sent()
}

// seg builds a TCP segment of the client's connection with sequence seq.
func seg(t testing.TB, sport uint16, syn, ack bool, seq uint32, payload string) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(macCli[:]), DstMAC: net.HardwareAddr(macDir0[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.ParseIP("10.0.1.2"), DstIP: net.ParseIP("10.0.1.100"), Flags: layers.IPv4DontFragment}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: 80, SYN: syn, ACK: ack, Seq: seq, Ack: 1, Window: 65535}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// udpFrame builds a client datagram to the VIP.
func udpFrame(t testing.TB, sport, dport uint16, payload []byte) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(macCli[:]), DstMAC: net.HardwareAddr(macDir0[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.ParseIP("10.0.1.2"), DstIP: net.ParseIP("10.0.1.100")}
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// seqs returns the TCP sequence numbers of sent frames, checking each
// is a correct NAT rewrite towards rs2.
func seqs(t *testing.T, out []dataplane.Frame) []uint32 {
	t.Helper()
	var s []uint32
	for _, f := range out {
		eth, ip, tcp := decode(t, f.Data())
		if f.Ifindex != 2 || ip.DstIP.String() != "10.0.2.12" || tcp.DstPort != 8080 || [6]byte(eth.DstMAC) != macRS2 ||
			[6]byte(eth.SrcMAC) != macDir1 || ip.TTL != 63 {
			t.Fatalf("frame sent on %d to %s:%d via %s ttl %d", f.Ifindex, ip.DstIP, tcp.DstPort, eth.DstMAC, ip.TTL)
		}
		s = append(s, tcp.Seq)
	}
	return s
}

func equalSeqs(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// destIn sums the destinations' InPkts of the rig's first service.
func destIn(r *rig) uint64 {
	var n uint64
	for _, d := range r.env.Snap.Load().Services()[0].Sched.Dests() {
		n += d.Stats.Load().InPkts
	}
	return n
}

// TestNeighQueueHoldsUntilResolved: the first SYN to a real server whose
// next hop is unresolved waits and leaves, once, when it resolves; later
// segments of the flow wait behind it and leave in order; nothing is
// counted twice.
func TestNeighQueueHoldsUntilResolved(t *testing.T) {
	r := newRig(t, natRules)
	h := newFlakyHops()
	r.withHops(h, 0)
	c := &r.w.Counters

	if out := r.run(t, seg(t, 40000, true, false, 100, "")); len(out) != 0 {
		t.Fatalf("sent %d frames with the next hop unresolved", len(out))
	}
	if c.Load(dataplane.CntNeighQueued) != 1 || c.Load(dataplane.CntNewConn) != 1 || r.conns.Len() != 1 {
		t.Fatalf("queued %d, new-conn %d, connections %d; want 1, 1, 1", c.Load(dataplane.CntNeighQueued), c.Load(dataplane.CntNewConn), r.conns.Len())
	}
	if out := r.retry(); len(out) != 0 {
		t.Fatalf("retry sent %d frames with the next hop still unresolved", len(out))
	}
	// Two more segments of the flow arrive: they wait behind the SYN.
	if out := r.run(t, seg(t, 40000, false, true, 101, "a"), seg(t, 40000, false, true, 102, "b")); len(out) != 0 {
		t.Fatalf("later segments overtook the queued SYN: sent %d", len(out))
	}
	h.set("10.0.2.12", true)
	// The next batch retries the queue before its own frames.
	out := r.run(t, seg(t, 40000, false, true, 103, "c"))
	if got := seqs(t, out); !equalSeqs(got, []uint32{100, 101, 102, 103}) {
		t.Fatalf("sent sequence numbers %v, want [100 101 102 103]", got)
	}
	if out := r.retry(); len(out) != 0 {
		t.Fatalf("a queued frame was sent twice (%d more)", len(out))
	}
	want := map[dataplane.Counter]uint64{
		dataplane.CntRx: 4, dataplane.CntTx: 4, dataplane.CntNewConn: 1, dataplane.CntNeighQueued: 3,
		dataplane.CntNeighQueueFull: 0, dataplane.CntNeighTimeout: 0, dataplane.CntNeighMiss: 0,
	}
	for k, v := range want {
		if got := c.Load(k); got != v {
			t.Errorf("counter %s = %d, want %d", k, got, v)
		}
	}
	if n := destIn(r); n != 4 {
		t.Errorf("destination InPkts %d, want 4 (each frame once)", n)
	}
	if n := r.env.Snap.Load().Services()[0].Stats.Load().Conns; n != 1 {
		t.Errorf("service connections %d, want 1", n)
	}
}

// TestNeighQueueNoOvertakingWithinBatch: the next hop resolves between two
// frames of one batch; the second must not leave before the first.
func TestNeighQueueNoOvertakingWithinBatch(t *testing.T) {
	r := newRig(t, natRules)
	h := newFlakyHops()
	r.withHops(h, 0)
	h.setUpAfterLookup("10.0.2.12")
	out := r.run(t, seg(t, 40000, true, false, 100, ""), seg(t, 40000, false, true, 101, "a"))
	if len(out) != 0 {
		t.Fatalf("sent %v in the batch: the second frame overtook the queued first", seqs(t, out))
	}
	if got := seqs(t, r.retry()); !equalSeqs(got, []uint32{100, 101}) {
		t.Fatalf("sent %v, want [100 101]", got)
	}
}

// TestNeighQueueOverflow: frames beyond the queue's slots are dropped and
// counted; the queued ones leave in order once the next hop resolves.
func TestNeighQueueOverflow(t *testing.T) {
	r := newRig(t, "-A -u 10.0.1.100:53 -s rr\n-a -u 10.0.1.100:53 -r 10.0.2.12:53 -m\n")
	h := newFlakyHops()
	r.withHops(h, 0)
	const slots = dataplane.NeighQueueSmall + dataplane.NeighQueueLarge
	const total = slots + 40
	var batch [][]byte
	for i := 0; i < total; i++ {
		var p [4]byte
		binary.BigEndian.PutUint32(p[:], uint32(i))
		batch = append(batch, udpFrame(t, 5000, 53, p[:]))
		if len(batch) == dataplane.BatchSize || i == total-1 {
			if out := r.run(t, batch...); len(out) != 0 {
				t.Fatalf("sent %d frames with the next hop unresolved", len(out))
			}
			batch = batch[:0]
		}
	}
	c := &r.w.Counters
	if c.Load(dataplane.CntNeighQueued) != slots || c.Load(dataplane.CntNeighQueueFull) != total-slots {
		t.Fatalf("queued %d, queue-full %d; want %d, %d", c.Load(dataplane.CntNeighQueued), c.Load(dataplane.CntNeighQueueFull), slots, total-slots)
	}
	h.set("10.0.2.12", true)
	out := r.retry()
	if len(out) != slots {
		t.Fatalf("sent %d frames after resolution, want %d", len(out), slots)
	}
	for i, f := range out {
		p := gopacket.NewPacket(f.Data(), layers.LayerTypeEthernet, gopacket.Default)
		udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if udp == nil || ip == nil || ip.DstIP.String() != "10.0.2.12" || len(udp.Payload) != 4 || binary.BigEndian.Uint32(udp.Payload) != uint32(i) {
			t.Fatalf("frame %d: %v", i, p)
		}
	}
	// The slots are free again: a second round queues as many.
	h.set("10.0.2.12", false)
	for i := 0; i < slots; i += dataplane.BatchSize {
		n := min(dataplane.BatchSize, slots-i)
		fs := make([][]byte, n)
		for j := range fs {
			fs[j] = udpFrame(t, 5000, 53, []byte("again"))
		}
		r.run(t, fs...)
	}
	if got := c.Load(dataplane.CntNeighQueueFull); got != total-slots {
		t.Fatalf("second round: queue-full went from %d to %d: slots not freed", total-slots, got)
	}
}

// TestNeighQueueTimeout: a frame whose next hop does not resolve within
// the timeout is dropped and counted, and never sent afterwards.
func TestNeighQueueTimeout(t *testing.T) {
	r := newRig(t, natRules)
	h := newFlakyHops()
	r.withHops(h, 3*time.Second)
	r.run(t, seg(t, 40000, true, false, 100, ""))
	r.clock = r.clock.Add(2900 * time.Millisecond)
	r.retry()
	c := &r.w.Counters
	if c.Load(dataplane.CntNeighTimeout) != 0 {
		t.Fatal("dropped before the timeout")
	}
	r.clock = r.clock.Add(200 * time.Millisecond)
	r.retry()
	if c.Load(dataplane.CntNeighTimeout) != 1 {
		t.Fatalf("neighbour-timeout %d after 3.1 s, want 1", c.Load(dataplane.CntNeighTimeout))
	}
	h.set("10.0.2.12", true)
	if out := r.retry(); len(out) != 0 {
		t.Fatalf("a timed-out frame was sent (%d)", len(out))
	}
	// The flow goes on once the hop is there.
	if got := seqs(t, r.run(t, seg(t, 40000, false, true, 101, "x"))); !equalSeqs(got, []uint32{101}) {
		t.Fatalf("sent %v, want [101]", got)
	}
}

// TestNeighQueueGSO: a 60 KB super-frame waits in a large slot and leaves
// whole, with its offload metadata, rewritten as without the wait.
func TestNeighQueueGSO(t *testing.T) {
	r := newRig(t, natRules)
	r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false))
	h := newFlakyHops()
	env := *r.env
	env.Hops = h
	rec := &recordIO{}
	w := dataplane.NewWorker(rec, &env)
	f := gsoFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, 60000, 1448)
	w.ProcessBatch([]dataplane.Frame{f})
	if len(rec.out) != 0 || w.Counters.Load(dataplane.CntNeighQueued) != 1 {
		t.Fatalf("sent %d, queued %d; want 0, 1", len(rec.out), w.Counters.Load(dataplane.CntNeighQueued))
	}
	clear(f.Buf) // the ring slot is reused: the queue must hold a copy
	h.set("10.0.2.12", true)
	w.ProcessBatch(nil)
	if len(rec.out) != 1 {
		t.Fatalf("sent %d frames, want the super-frame as one", len(rec.out))
	}
	out := rec.out[0]
	if out.GSO != (dataplane.GSO{Type: dataplane.GSOTCPv4, Size: 1448}) || !out.Offload || out.Ifindex != 2 {
		t.Fatalf("super-frame left as %+v on %d", out.GSO, out.Ifindex)
	}
	tcp := checkPartial(t, out)
	if tcp.DstPort != 8080 || len(tcp.Payload) != 60000 || tcp.Seq != 5000 {
		t.Fatalf("rewritten to port %d, payload %d, seq %d", tcp.DstPort, len(tcp.Payload), tcp.Seq)
	}
	for i, b := range tcp.Payload {
		if b != byte(i*13+1) {
			t.Fatalf("payload byte %d is %d, want %d", i, b, byte(i*13+1))
		}
	}
}

// TestNeighQueueFullNATCreate: with FULLNAT and no local address pool the
// connection needs the route's source address, which comes with the next
// hop: the first datagram waits to create it, the second of the same flow
// waits behind it, and both leave on one connection.
func TestNeighQueueFullNATCreate(t *testing.T) {
	r := newRig(t, "-A -u 10.0.1.100:53 -s rr\n-a -u 10.0.1.100:53 -r 10.0.2.11:53 -b\n-a -u 10.0.1.100:53 -r 10.0.2.12:53 -b\n")
	h := newFlakyHops()
	r.withHops(h, 0)
	if out := r.run(t, udpFrame(t, 5000, 53, []byte("one")), udpFrame(t, 5000, 53, []byte("two"))); len(out) != 0 {
		t.Fatalf("sent %d frames with the next hop unresolved", len(out))
	}
	c := &r.w.Counters
	if c.Load(dataplane.CntNeighQueued) != 2 || c.Load(dataplane.CntNewConn) != 0 || c.Load(dataplane.CntFullNATNoPort) != 0 {
		t.Fatalf("queued %d, new-conn %d, fullnat-no-port %d; want 2, 0, 0",
			c.Load(dataplane.CntNeighQueued), c.Load(dataplane.CntNewConn), c.Load(dataplane.CntFullNATNoPort))
	}
	h.set("10.0.2.11", true)
	h.set("10.0.2.12", true)
	out := r.retry()
	if len(out) != 2 {
		t.Fatalf("sent %d frames, want 2", len(out))
	}
	var dst, src string
	for i, f := range out {
		p := gopacket.NewPacket(f.Data(), layers.LayerTypeEthernet, gopacket.Default)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if ip == nil || udp == nil || string(udp.Payload) != []string{"one", "two"}[i] || ip.SrcIP.String() != "10.0.2.1" {
			t.Fatalf("frame %d: %v", i, p)
		}
		d, s := ip.DstIP.String(), net.JoinHostPort(ip.SrcIP.String(), udp.SrcPort.String())
		if i == 1 && (d != dst || s != src) {
			t.Fatalf("second datagram went %s -> %s, first %s -> %s: not one connection", s, d, src, dst)
		}
		dst, src = d, s
	}
	if c.Load(dataplane.CntNewConn) != 1 || r.conns.Len() != 1 {
		t.Fatalf("new-conn %d, connections %d; want 1, 1", c.Load(dataplane.CntNewConn), r.conns.Len())
	}
}

// TestNeighQueueICMP: an ICMP error for a NAT connection waits for the real
// server's next hop like any request.
func TestNeighQueueICMP(t *testing.T) {
	r := newRig(t, natRules)
	r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false))
	h := newFlakyHops()
	r.withHops(h, 0)
	quoted := tcpFrame(t, macDir0, macCli, "10.0.1.100", "10.0.1.2", 80, 40000, true, true)[14:]
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(macCli[:]), DstMAC: net.HardwareAddr(macDir0[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: net.ParseIP("10.0.1.2"), DstIP: net.ParseIP("10.0.1.100")}
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 3)}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, icmp, gopacket.Payload(quoted[:28])); err != nil {
		t.Fatal(err)
	}
	if out := r.run(t, buf.Bytes()); len(out) != 0 || r.w.Counters.Load(dataplane.CntNeighQueued) != 1 {
		t.Fatalf("sent %d, queued %d; want 0, 1", len(out), r.w.Counters.Load(dataplane.CntNeighQueued))
	}
	h.set("10.0.2.12", true)
	out := r.retry()
	if len(out) != 1 || out[0].Ifindex != 2 {
		t.Fatalf("sent %d frames, want the error forwarded to the real server", len(out))
	}
	p := gopacket.NewPacket(out[0].Data(), layers.LayerTypeEthernet, gopacket.Default)
	ic, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	oip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if oip == nil || oip.DstIP.String() != "10.0.2.12" || ic == nil || net.IP(ic.Payload[12:16]).String() != "10.0.2.12" {
		t.Fatalf("not translated for the real server: %v", p)
	}
}

// TestNeighQueueRunIdle: with no traffic, Run retries the queue on the
// backend's poll timeouts.
func TestNeighQueueRunIdle(t *testing.T) {
	r := newRig(t, natRules)
	h := newFlakyHops()
	r.withHops(h, 0)
	r.io.Inject(seg(t, 40000, true, false, 100, ""), 1, false)
	done := make(chan error, 1)
	go func() { done <- r.w.Run() }()
	t.Cleanup(func() {
		r.io.Close()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	wait.For(t, 5*time.Second, func() bool { return r.w.Counters.Load(dataplane.CntNeighQueued) > 0 }, "the SYN to be queued")
	h.set("10.0.2.12", true)
	var out []dataplane.Frame
	wait.For(t, 5*time.Second, func() bool { out = append(out, r.io.Sent()...); return len(out) > 0 },
		"the queued SYN to be sent once its next hop resolved")
	if got := seqs(t, out); !equalSeqs(got, []uint32{100}) {
		t.Fatalf("sent %v, want [100]", got)
	}
}

// TestNeighQueueNoAllocs: queueing a frame and sending it once its next hop
// resolves allocates nothing.
func TestNeighQueueNoAllocs(t *testing.T) {
	r := newRig(t, natRules)
	r.run(t, seg(t, 40000, true, false, 100, ""))
	h := newFlakyHops()
	env := *r.env
	env.Hops = h
	w := dataplane.NewWorker(discardIO{}, &env)
	data := seg(t, 40000, false, true, 101, "x")
	buf := make([]byte, 64+len(data))
	frames := []dataplane.Frame{{}}
	rs2 := netip.MustParseAddr("10.0.2.12")
	allocs := testing.AllocsPerRun(200, func() {
		h.up[rs2] = false
		copy(buf[64:], data)
		frames[0] = dataplane.Frame{Buf: buf, Off: 64, Len: len(data), Ifindex: 1}
		w.ProcessBatch(frames)
		h.up[rs2] = true
		w.ProcessBatch(nil)
	})
	if q, tx := w.Counters.Load(dataplane.CntNeighQueued), w.Counters.Load(dataplane.CntTx); q < 200 || tx != q {
		t.Fatalf("queued %d, sent %d: the measured path did not queue and send", q, tx)
	}
	if allocs != 0 {
		t.Fatalf("queue and retry allocate %.1f times", allocs)
	}
}

// pollIO is a FakeIO whose poll timeout the worker may set; it records the
// settings.
type pollIO struct {
	*dataplane.FakeIO
	mu  sync.Mutex
	set []time.Duration
}

func (p *pollIO) SetPollTimeout(d time.Duration) {
	p.mu.Lock()
	p.set = append(p.set, d)
	p.mu.Unlock()
}

func (p *pollIO) settings() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Duration(nil), p.set...)
}

// TestNeighQueueShortPoll: while frames wait, Run shortens the backend's
// poll timeout to NeighPoll, and restores it once the queue is empty.
func TestNeighQueueShortPoll(t *testing.T) {
	r := newRig(t, natRules)
	h := newFlakyHops()
	pio := &pollIO{FakeIO: r.io}
	env := *r.env
	env.Hops = h
	w := dataplane.NewWorker(pio, &env)
	done := make(chan error, 1)
	go func() { done <- w.Run() }()
	t.Cleanup(func() {
		r.io.Close()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	waitSettings := func(want int) []time.Duration {
		wait.For(t, 5*time.Second, func() bool { return len(pio.settings()) >= want }, "%d poll-timeout settings", want)
		return pio.settings()
	}
	r.io.Inject(seg(t, 40000, true, false, 100, ""), 1, false)
	if s := waitSettings(1); s[0] != dataplane.NeighPoll {
		t.Fatalf("first setting %v, want NeighPoll", s[0])
	}
	h.set("10.0.2.12", true)
	if s := waitSettings(2); s[1] != 0 {
		t.Fatalf("second setting %v, want 0 (restore)", s[1])
	}
	if got := seqs(t, r.io.Sent()); !equalSeqs(got, []uint32{100}) {
		t.Fatalf("sent %v, want [100]", got)
	}
}
