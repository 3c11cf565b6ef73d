package dataplane_test

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

var (
	macCli  = [6]byte{2, 0, 0, 0, 1, 2}
	macDir0 = [6]byte{2, 0, 0, 0, 1, 1}
	macDir1 = [6]byte{2, 0, 0, 0, 2, 1}
	macRS1  = [6]byte{2, 0, 0, 0, 2, 11}
	macRS2  = [6]byte{2, 0, 0, 0, 2, 12}
)

// fakeHops resolves the real servers of the test topology.
type fakeHops map[netip.Addr]dataplane.Hop

func (f fakeHops) Lookup(a netip.Addr) (dataplane.Hop, bool) { h, ok := f[a]; return h, ok }

type rig struct {
	io    *dataplane.FakeIO
	w     *dataplane.Worker
	state *control.State
	conns *conntrack.Table
	env   *dataplane.Env
	clock time.Time
}

func newRig(t testing.TB, rules string) *rig {
	t.Helper()
	r := &rig{io: dataplane.NewFakeIO(64, 10*time.Millisecond), clock: time.Unix(1000, 0)}
	var snap atomic.Pointer[snapshot.Snapshot]
	var host atomic.Pointer[dataplane.Host]
	host.Store(&dataplane.Host{
		Ifaces: map[int]dataplane.Iface{
			1: {Index: 1, Name: "d0", MAC: macDir0, MTU: 1500},
			2: {Index: 2, Name: "d1", MAC: macDir1, MTU: 1500},
		},
		Local: map[[16]byte]bool{},
	})
	ct, err := conntrack.New(conntrack.Config{Capacity: 1 << 12})
	if err != nil {
		t.Fatal(err)
	}
	r.conns = ct
	r.state = control.New(control.Options{Publish: func(s *snapshot.Snapshot) { snap.Store(s) }})
	cmds, err := ipvsadm.ParseRules(strings.NewReader(rules), "rules")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.state.ApplyAll(cmds); err != nil {
		t.Fatal(err)
	}
	env := &dataplane.Env{Snap: &snap, Host: &host, Conns: ct, Hops: testHops(),
		Now: func() time.Time { return r.clock }, Epoch: time.Unix(0, 0),
		Ports: dataplane.NewPortAllocator(0, 0)}
	r.env = env
	r.w = dataplane.NewWorker(r.io, env)
	return r
}

// run pushes frames through one batch and returns what was sent.
func (r *rig) run(t testing.TB, frames ...[]byte) []dataplane.Frame {
	t.Helper()
	batch := make([]dataplane.Frame, len(frames))
	buf := make([]dataplane.Frame, len(frames))
	for _, f := range frames {
		ifindex := 1
		if [6]byte(f[:6]) == macDir1 { // addressed to the server-side interface
			ifindex = 2
		}
		r.io.Inject(f, ifindex, false)
	}
	n, err := r.io.ReadBatch(buf)
	if err != nil || n != len(frames) {
		t.Fatalf("fake read %d frames, %v", n, err)
	}
	copy(batch, buf[:n])
	r.w.ProcessBatch(batch)
	return r.io.Sent()
}

func tcpFrame(t testing.TB, srcMAC, dstMAC [6]byte, src, dst string, sport, dport uint16, syn, ack bool) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(srcMAC[:]), DstMAC: net.HardwareAddr(dstMAC[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst), Flags: layers.IPv4DontFragment}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), SYN: syn, ACK: ack, Seq: 1000, Window: 65535}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp, gopacket.Payload("hello")); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// decode checks a sent frame with gopacket: its checksums must equal
// gopacket's own recomputation.
func decode(t testing.TB, b []byte) (*layers.Ethernet, *layers.IPv4, *layers.TCP) {
	t.Helper()
	p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
	eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if eth == nil || ip == nil || tcp == nil {
		t.Fatalf("sent frame does not decode as Ethernet/IPv4/TCP: %v", p)
	}
	ipc, tcpc := ip.Checksum, tcp.Checksum
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, ip, tcp, gopacket.Payload(tcp.Payload)); err != nil {
		t.Fatal(err)
	}
	p2 := gopacket.NewPacket(buf.Bytes(), layers.LayerTypeIPv4, gopacket.Default)
	if want := p2.Layer(layers.LayerTypeIPv4).(*layers.IPv4).Checksum; want != ipc {
		t.Errorf("IPv4 checksum %#04x, want %#04x", ipc, want)
	}
	if want := p2.Layer(layers.LayerTypeTCP).(*layers.TCP).Checksum; want != tcpc {
		t.Errorf("TCP checksum %#04x, want %#04x", tcpc, want)
	}
	return eth, ip, tcp
}

const natRules = `-A -t 10.0.1.100:80 -s rr
-a -t 10.0.1.100:80 -r 10.0.2.11:8080 -m
-a -t 10.0.1.100:80 -r 10.0.2.12:8080 -m
`

func TestNATRequestAndReply(t *testing.T) {
	r := newRig(t, natRules)
	out := r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false))
	if len(out) != 1 || out[0].Ifindex != 2 {
		t.Fatalf("request: sent %d frames (%+v), want 1 on ifindex 2", len(out), out)
	}
	eth, ip, tcp := decode(t, out[0].Data())
	// rr over list order [rs2, rs1]: the first connection goes to rs2.
	if ip.DstIP.String() != "10.0.2.12" || tcp.DstPort != 8080 || [6]byte(eth.DstMAC) != macRS2 || [6]byte(eth.SrcMAC) != macDir1 {
		t.Fatalf("request rewritten to %s:%d via %s", ip.DstIP, tcp.DstPort, eth.DstMAC)
	}
	if ip.SrcIP.String() != "10.0.1.2" || ip.TTL != 63 {
		t.Fatalf("request source %s ttl %d", ip.SrcIP, ip.TTL)
	}

	out = r.run(t, tcpFrame(t, macRS2, macDir1, "10.0.2.12", "10.0.1.2", 8080, 40000, true, true))
	if len(out) != 1 || out[0].Ifindex != 1 {
		t.Fatalf("reply: sent %d frames, want 1 on ifindex 1", len(out))
	}
	eth, ip, tcp = decode(t, out[0].Data())
	if ip.SrcIP.String() != "10.0.1.100" || tcp.SrcPort != 80 || [6]byte(eth.DstMAC) != macCli || [6]byte(eth.SrcMAC) != macDir0 {
		t.Fatalf("reply rewritten to %s:%d -> %s", ip.SrcIP, tcp.SrcPort, eth.DstMAC)
	}

	// The second client goes to rs1.
	out = r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.3", "10.0.1.100", 40001, 80, true, false))
	if len(out) != 1 {
		t.Fatalf("second request: sent %d frames", len(out))
	}
	if _, ip, _ := decode(t, out[0].Data()); ip.DstIP.String() != "10.0.2.11" {
		t.Fatalf("second connection went to %s, want 10.0.2.11", ip.DstIP)
	}
	if r.conns.Len() != 2 {
		t.Fatalf("connection table holds %d, want 2", r.conns.Len())
	}
}

func TestNotOursIsLeftAlone(t *testing.T) {
	r := newRig(t, natRules)
	out := r.run(t,
		tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.1", 40000, 22, true, false),                     // to the director itself
		tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 443, true, false),                  // VIP, no such service
		tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, false, true),                   // VIP, not a SYN
		tcpFrame(t, macCli, [6]byte{2, 9, 9, 9, 9, 9}, "10.0.1.2", "10.0.1.100", 40000, 80, true, false), // another station's frame
	)
	if len(out) != 0 {
		t.Fatalf("sent %d frames for traffic uvsd does not own", len(out))
	}
	c := &r.w.Counters
	if c.Load(dataplane.CntNotSyn) != 1 || c.Load(dataplane.CntNotOurs) != 2 {
		t.Fatalf("counters not-syn=%d not-ours=%d", c.Load(dataplane.CntNotSyn), c.Load(dataplane.CntNotOurs))
	}
}

func TestNoDestinationSendsPortUnreachable(t *testing.T) {
	r := newRig(t, "-A -t 10.0.1.100:80 -s wlc\n-a -t 10.0.1.100:80 -r 10.0.2.11:80 -m -w 0\n")
	out := r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false))
	if len(out) != 1 || out[0].Ifindex != 1 {
		t.Fatalf("sent %d frames, want one ICMP error back", len(out))
	}
	p := gopacket.NewPacket(out[0].Data(), layers.LayerTypeEthernet, gopacket.Default)
	icmp, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if icmp == nil || icmp.TypeCode != layers.CreateICMPv4TypeCode(3, 3) || ip.SrcIP.String() != "10.0.1.100" || ip.DstIP.String() != "10.0.1.2" {
		t.Fatalf("not a port unreachable from the VIP: %v", p)
	}
	if r.w.Counters.Load(dataplane.CntNoDest) != 1 {
		t.Fatal("no-destination not counted")
	}
}

func TestARPForVIP(t *testing.T) {
	r := newRig(t, natRules)
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(macCli[:]), DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP}
	arp := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: layers.ARPRequest, SourceHwAddress: macCli[:], SourceProtAddress: net.ParseIP("10.0.1.2").To4(),
		DstHwAddress: make([]byte, 6), DstProtAddress: net.ParseIP("10.0.1.100").To4()}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, eth, arp); err != nil {
		t.Fatal(err)
	}
	out := r.run(t, buf.Bytes())
	if len(out) != 1 {
		t.Fatalf("sent %d frames, want an ARP reply", len(out))
	}
	p := gopacket.NewPacket(out[0].Data(), layers.LayerTypeEthernet, gopacket.Default)
	rep, _ := p.Layer(layers.LayerTypeARP).(*layers.ARP)
	if rep == nil || rep.Operation != layers.ARPReply || [6]byte(rep.SourceHwAddress) != macDir0 ||
		net.IP(rep.SourceProtAddress).String() != "10.0.1.100" {
		t.Fatalf("bad ARP reply: %v", p)
	}
}

// TestPerPacketNoAllocs guards the steady-state path of an established
// connection: parse, lookup, NAT rewrite, transmit — 0 allocations.
func TestPerPacketNoAllocs(t *testing.T) {
	r := newRig(t, natRules)
	syn := tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false)
	r.run(t, syn)
	data := tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, false, true)
	w := dataplane.NewWorker(discardIO{}, r.env)
	buf := make([]byte, 64+len(data))
	frames := []dataplane.Frame{{Buf: buf, Off: 64, Len: len(data), Ifindex: 1}}
	allocs := testing.AllocsPerRun(200, func() {
		copy(buf[64:], data)
		frames[0] = dataplane.Frame{Buf: buf, Off: 64, Len: len(data), Ifindex: 1}
		w.ProcessBatch(frames)
	})
	if w.Counters.Load(dataplane.CntTx) == 0 {
		t.Fatal("the measured path sent nothing")
	}
	if allocs != 0 {
		t.Fatalf("per-packet path allocates %.1f times", allocs)
	}
}

// discardIO is a PacketIO that drops writes (for benchmarks).
type discardIO struct{}

func (discardIO) ReadBatch([]dataplane.Frame) (int, error)    { return 0, dataplane.ErrClosed }
func (discardIO) WriteBatch(f []dataplane.Frame) (int, error) { return len(f), nil }
func (discardIO) Close() error                                { return nil }

// BenchmarkNATPerPacket measures parse + connection lookup + NAT rewrite of
// an established connection's packet, per packet, in batches of 64.
func BenchmarkNATPerPacket(b *testing.B) {
	r := newRig(b, natRules)
	r.run(b, tcpFrame(b, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false))
	data := tcpFrame(b, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, false, true)
	w := dataplane.NewWorker(discardIO{}, r.env)
	const batch = 64
	bufs := make([][]byte, batch)
	frames := make([]dataplane.Frame, batch)
	for i := range bufs {
		bufs[i] = make([]byte, 64+len(data))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		for j := range frames {
			copy(bufs[j][64:], data)
			frames[j] = dataplane.Frame{Buf: bufs[j], Off: 64, Len: len(data), Ifindex: 1}
		}
		w.ProcessBatch(frames)
	}
}

// TestICMPErrorFromClientReachesRealServer: an ICMP error the client sends
// about a reply (quoting VIP:80 -> client) is translated for the NAT
// connection and forwarded to the real server (net/netfilter/ipvs/ip_vs_core.c, ip_vs_in_icmp and ip_vs_out_icmp).
func TestICMPErrorFromClientReachesRealServer(t *testing.T) {
	r := newRig(t, natRules)
	r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false))
	quoted := tcpFrame(t, macDir0, macCli, "10.0.1.100", "10.0.1.2", 80, 40000, true, true)[14:]
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(macCli[:]), DstMAC: net.HardwareAddr(macDir0[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: net.ParseIP("10.0.1.2"), DstIP: net.ParseIP("10.0.1.100")}
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 3)}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, icmp, gopacket.Payload(quoted[:28])); err != nil {
		t.Fatal(err)
	}
	out := r.run(t, buf.Bytes())
	if len(out) != 1 || out[0].Ifindex != 2 {
		t.Fatalf("sent %d frames, want the error forwarded to the real server", len(out))
	}
	p := gopacket.NewPacket(out[0].Data(), layers.LayerTypeEthernet, gopacket.Default)
	oip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if oip == nil || oip.DstIP.String() != "10.0.2.12" {
		t.Fatalf("outer destination not the real server: %v", p)
	}
	ic, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if ic == nil || len(ic.Payload) < 28 || net.IP(ic.Payload[12:16]).String() != "10.0.2.12" {
		t.Fatalf("quoted source not rewritten to the real server: %v", p)
	}
	if r.w.Counters.Load(dataplane.CntICMPRelated) != 1 {
		t.Fatal("icmp-related not counted")
	}
}
