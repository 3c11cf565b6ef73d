package dataplane_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/dataplane"
)

// flowFrame builds a TCP (flags non-empty or tcp set) or UDP frame between
// src:sport and dst:dport on the given MACs.
func flowFrame(t testing.TB, srcMAC, dstMAC [6]byte, src, dst string, sport, dport uint16, tcp bool, flags string, payload string) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(srcMAC[:]), DstMAC: net.HardwareAddr(dstMAC[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst)}
	var l4 gopacket.SerializableLayer
	if tcp {
		ip.Protocol = layers.IPProtocolTCP
		seg := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Seq: 1, Window: 1000}
		for _, c := range flags {
			switch c {
			case 'S':
				seg.SYN = true
			case 'A':
				seg.ACK = true
			case 'F':
				seg.FIN = true
			case 'R':
				seg.RST = true
			}
		}
		if err := seg.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		l4 = seg
	} else {
		ip.Protocol = layers.IPProtocolUDP
		u := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
		if err := u.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		l4 = u
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, l4, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

const mixedRules = natRules + `-A -u 10.0.1.100:53 -s rr
-a -u 10.0.1.100:53 -r 10.0.2.11:53 -m
-a -u 10.0.1.100:53 -r 10.0.2.12:53 -m
`

// randomTraffic returns n frames of a few clients' TCP and UDP flows to the
// VIP and the real servers' replies, with random flags, so that batches
// hold several frames of one flow: new flows followed by more of their
// frames, closes, resets and SYNs on closing connections.
func randomTraffic(t testing.TB, rng *rand.Rand, n int) [][]byte {
	clientFlags := []string{"S", "S", "A", "A", "FA", "R", "SA"}
	replyFlags := []string{"SA", "A", "FA", "R"}
	rss := []struct {
		addr string
		mac  [6]byte
	}{{"10.0.2.11", macRS1}, {"10.0.2.12", macRS2}}
	var out [][]byte
	for i := 0; i < n; i++ {
		cli := fmt.Sprintf("10.0.1.%d", 2+rng.IntN(3))
		cport := uint16(40000 + rng.IntN(3))
		tcp := rng.IntN(3) > 0
		vport, rport := uint16(53), uint16(53)
		if tcp {
			vport, rport = 80, 8080
		}
		payload := fmt.Sprint(i)
		if rng.IntN(3) == 0 {
			rs := rss[rng.IntN(2)]
			out = append(out, flowFrame(t, rs.mac, macDir1, rs.addr, cli, rport, cport, tcp, replyFlags[rng.IntN(len(replyFlags))], payload))
		} else {
			out = append(out, flowFrame(t, macCli, macDir0, cli, "10.0.1.100", cport, vport, tcp, clientFlags[rng.IntN(len(clientFlags))], payload))
		}
	}
	return out
}

// state is what a rig's processing left behind, for comparisons.
func (r *rig) dump(t *testing.T) string {
	t.Helper()
	var b bytes.Buffer
	for k := dataplane.Counter(0); k < dataplane.NumCounters; k++ {
		fmt.Fprintf(&b, "%s=%d ", k, r.w.Counters.Load(k))
	}
	b.WriteString("\n")
	mono := int64(r.clock.Sub(time.Unix(0, 0)))
	var lines []string
	for _, l := range r.conns.Snapshot(mono, nil) {
		lines = append(lines, fmt.Sprintf("%v %v->%v->%v %s %v", l.ProtoName(), l.Client, l.Virtual, l.Real, l.StateName(), l.Remaining))
	}
	slices.Sort(lines)
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	for _, svc := range r.env.Snap.Load().Services() {
		for _, d := range svc.Sched.Dests() {
			s := d.Stats.Load()
			fmt.Fprintf(&b, "%v conns=%d in=%d out=%d inb=%d outb=%d active=%d inact=%d\n", d.AddrPort(), s.Conns,
				s.InPkts, s.OutPkts, s.InBytes, s.OutBytes, d.ActiveConns(), d.InactConns())
		}
	}
	return b.String()
}

// TestBatchMatchesSequential: a batch gives exactly the frames, counters,
// connection states and destination statistics of processing its frames
// one by one (the TrackBatch lookups made before any frame is handled
// must not change the outcome).
func TestBatchMatchesSequential(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	frames := randomTraffic(t, rng, 64*40)
	batched, single := newRig(t, mixedRules), newRig(t, mixedRules)
	for i := 0; i < len(frames); i += dataplane.BatchSize {
		step := time.Duration(rng.IntN(4)) * time.Duration(rng.IntN(130)) * time.Second
		batched.clock = batched.clock.Add(step)
		single.clock = single.clock.Add(step)
		chunk := frames[i:min(i+dataplane.BatchSize, len(frames))]
		got := batched.run(t, chunk...)
		var want []dataplane.Frame
		for _, f := range chunk {
			want = append(want, single.run(t, f)...)
		}
		if len(got) != len(want) {
			t.Fatalf("batch at frame %d: sent %d frames, one by one %d", i, len(got), len(want))
		}
		for j := range got {
			if got[j].Ifindex != want[j].Ifindex || !bytes.Equal(got[j].Data(), want[j].Data()) {
				t.Fatalf("batch at frame %d: sent frame %d differs:\n%x on %d\n%x on %d", i, j,
					got[j].Data(), got[j].Ifindex, want[j].Data(), want[j].Ifindex)
			}
		}
		if gs, ws := batched.dump(t), single.dump(t); gs != ws {
			t.Fatalf("batch at frame %d: state differs\nbatched:\n%s\none by one:\n%s", i, gs, ws)
		}
	}
	c := &batched.w.Counters
	if c.Load(dataplane.CntNewConn) < 20 || c.Load(dataplane.CntTx) < 500 || c.Load(dataplane.CntNotSyn) == 0 {
		t.Fatalf("the traffic did not exercise the table: new %d, tx %d, not-syn %d",
			c.Load(dataplane.CntNewConn), c.Load(dataplane.CntTx), c.Load(dataplane.CntNotSyn))
	}
}

// TestBatchNewFlowFollowers: frames of a flow created earlier in the same
// batch find its connection (SYN then ACK; two datagrams of a new flow).
func TestBatchNewFlowFollowers(t *testing.T) {
	r := newRig(t, mixedRules)
	out := r.run(t,
		flowFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, "S", ""),
		flowFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, "A", "data"),
		flowFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 5000, 53, false, "", "one"),
		flowFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 5000, 53, false, "", "two"),
	)
	if len(out) != 4 {
		t.Fatalf("sent %d frames, want 4 (not-syn %d)", len(out), r.w.Counters.Load(dataplane.CntNotSyn))
	}
	dst := func(f dataplane.Frame) string {
		p := gopacket.NewPacket(f.Data(), layers.LayerTypeEthernet, gopacket.Default)
		return p.Layer(layers.LayerTypeIPv4).(*layers.IPv4).DstIP.String()
	}
	if dst(out[0]) != dst(out[1]) || dst(out[2]) != dst(out[3]) {
		t.Fatalf("a flow's frames went to two real servers: %s %s %s %s", dst(out[0]), dst(out[1]), dst(out[2]), dst(out[3]))
	}
	if r.conns.Len() != 2 || r.w.Counters.Load(dataplane.CntNewConn) != 2 {
		t.Fatalf("connections %d, new-conn %d; want 2, 2", r.conns.Len(), r.w.Counters.Load(dataplane.CntNewConn))
	}
}

// TestBatchSYNReuse: a SYN on a TIME_WAIT connection schedules a new one
// (conn_reuse_mode); the ACK after it in the same batch belongs to the new
// connection.
func TestBatchSYNReuse(t *testing.T) {
	r := newRig(t, natRules)
	cli := func(flags, payload string) []byte {
		return flowFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, flags, payload)
	}
	rep := func(flags string) []byte {
		return flowFrame(t, macRS2, macDir1, "10.0.2.12", "10.0.1.2", 8080, 40000, true, flags, "")
	}
	// rr over [rs2, rs1]: the first connection goes to rs2. Close it.
	for _, f := range [][]byte{cli("S", ""), rep("SA"), cli("A", ""), cli("FA", ""), rep("FA"), cli("A", "")} {
		r.run(t, f)
	}
	ls := r.conns.Snapshot(int64(r.clock.Sub(time.Unix(0, 0))), nil)
	if len(ls) != 1 || ls[0].StateName() != "TIME_WAIT" {
		t.Fatalf("connection not in TIME_WAIT: %+v", ls)
	}
	out := r.run(t, cli("S", ""), cli("A", "new"))
	if len(out) != 2 {
		t.Fatalf("sent %d frames, want 2", len(out))
	}
	for i, f := range out {
		p := gopacket.NewPacket(f.Data(), layers.LayerTypeEthernet, gopacket.Default)
		if ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ip.DstIP.String() != "10.0.2.11" {
			t.Fatalf("frame %d went to %s, want the new connection's 10.0.2.11", i, ip.DstIP)
		}
	}
	ls = r.conns.Snapshot(int64(r.clock.Sub(time.Unix(0, 0))), nil)
	if len(ls) != 1 || ls[0].Real.Addr().String() != "10.0.2.11" {
		t.Fatalf("connections after reuse: %+v", ls)
	}
}
