package dataplane_test

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/modes"
)

// recordIO is a PacketIO that keeps copies of written frames with their
// offload metadata, as a PACKET_VNET_HDR backend would pass them to the
// kernel.
type recordIO struct{ out []dataplane.Frame }

func (*recordIO) ReadBatch([]dataplane.Frame) (int, error) { return 0, dataplane.ErrClosed }
func (r *recordIO) WriteBatch(fs []dataplane.Frame) (int, error) {
	for _, f := range fs {
		c := f
		c.Buf = append([]byte(nil), f.Data()...)
		c.Off, c.Len = 0, len(c.Buf)
		r.out = append(r.out, c)
	}
	return len(fs), nil
}
func (*recordIO) Close() error { return nil }

// gsoFrame builds a TCP super-frame of an established connection with
// payload bytes of payload, as a TSO sender hands it over with
// PACKET_VNET_HDR: the L4 checksum field holds the pseudo-header sum over
// the whole L4 length (CHECKSUM_PARTIAL) and the frame carries GSO metadata.
func gsoFrame(t testing.TB, srcMAC, dstMAC [6]byte, src, dst string, sport, dport uint16, payload int, mss uint16) dataplane.Frame {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(srcMAC[:]), DstMAC: net.HardwareAddr(dstMAC[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst),
		Flags: layers.IPv4DontFragment, Id: 100}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), ACK: true, PSH: true, Seq: 5000, Ack: 7, Window: 65535,
		Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindNop},
			{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: make([]byte, 8)}}}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	pl := make([]byte, payload)
	for i := range pl {
		pl[i] = byte(i*13 + 1)
	}
	sb := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp, gopacket.Payload(pl)); err != nil {
		t.Fatal(err)
	}
	var p header.Parsed
	p.Parse(sb.Bytes())
	buf := make([]byte, 64+len(sb.Bytes()))
	copy(buf[64:], sb.Bytes())
	start, off, ok := modes.SeedPartial(buf[64:], &p)
	if !ok {
		t.Fatal("seed")
	}
	return dataplane.Frame{Buf: buf, Off: 64, Len: len(sb.Bytes()), Ifindex: 1, Offload: true, CsumPartial: true,
		CsumStart: start, CsumOffset: off, GSO: dataplane.GSO{Type: dataplane.GSOTCPv4, Size: mss}}
}

// checkPartial checks that a sent frame's partial checksum is the
// pseudo-header sum of its (rewritten) packet, then completes it as the
// egress device would and checks every checksum with gopacket.
func checkPartial(t *testing.T, f dataplane.Frame) *layers.TCP {
	t.Helper()
	b := f.Data()
	var p header.Parsed
	p.Parse(b)
	if p.Reason != header.ReasonNone || !f.CsumPartial || int(f.CsumStart) != p.L4Off || int(f.CsumOffset) != header.TCPChecksumOff {
		t.Fatalf("sent frame: reason %v partial %v start %d offset %d (L4 at %d)", p.Reason, f.CsumPartial, f.CsumStart, f.CsumOffset, p.L4Off)
	}
	got := binary.BigEndian.Uint16(b[p.L4Off+16:])
	want := append([]byte(nil), b...)
	modes.SeedPartial(want, &p)
	if w := binary.BigEndian.Uint16(want[p.L4Off+16:]); got != w {
		t.Fatalf("partial checksum %#04x, want the pseudo-header sum %#04x", got, w)
	}
	binary.BigEndian.PutUint16(b[p.L4Off+16:], ^header.Checksum(b[p.L4Off:p.End], 0))
	_, _, tcp := decode(t, b)
	return tcp
}

func TestGSONAT(t *testing.T) {
	r := newRig(t, natRules)
	r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false))
	rec := &recordIO{}
	w := dataplane.NewWorker(rec, r.env)

	// Request direction: client → VIP, one 60 KB super-frame.
	f := gsoFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, 60000, 1448)
	w.ProcessBatch([]dataplane.Frame{f})
	if len(rec.out) != 1 {
		t.Fatalf("sent %d frames, want the super-frame as one", len(rec.out))
	}
	out := rec.out[0]
	if out.GSO != f.GSO || !out.Offload || out.Ifindex != 2 || out.Len != f.Len {
		t.Fatalf("super-frame left as %+v (len %d), want GSO %+v on ifindex 2, len %d", out.GSO, out.Len, f.GSO, f.Len)
	}
	tcp := checkPartial(t, out)
	if tcp.DstPort != 8080 || len(tcp.Payload) != 60000 || tcp.Seq != 5000 {
		t.Fatalf("rewritten to port %d, payload %d, seq %d", tcp.DstPort, len(tcp.Payload), tcp.Seq)
	}
	_, ip, _ := decode(t, out.Data())
	if ip.DstIP.String() != "10.0.2.12" || ip.TTL != 63 {
		t.Fatalf("rewritten to %s ttl %d", ip.DstIP, ip.TTL)
	}

	// Reply direction: the real server's super-frame back to the client.
	rec.out = nil
	f = gsoFrame(t, macRS2, macDir1, "10.0.2.12", "10.0.1.2", 8080, 40000, 30000, 1448)
	f.Ifindex = 2
	w.ProcessBatch([]dataplane.Frame{f})
	if len(rec.out) != 1 || rec.out[0].GSO != f.GSO || rec.out[0].Ifindex != 1 {
		t.Fatalf("reply: sent %+v", rec.out)
	}
	tcp = checkPartial(t, rec.out[0])
	if tcp.SrcPort != 80 {
		t.Fatalf("reply source port %d", tcp.SrcPort)
	}
	if w.Counters.Load(dataplane.CntGSO) != 2 {
		t.Fatalf("gso counter %d, want 2", w.Counters.Load(dataplane.CntGSO))
	}
}

// TestGSOTooBig: a super-frame whose segments would not fit the path MTU
// gets ICMP fragmentation needed, like any too-big packet.
func TestGSOTooBig(t *testing.T) {
	r := newRig(t, natRules)
	r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false))
	rec := &recordIO{}
	w := dataplane.NewWorker(rec, r.env)
	// 20 (IP) + 32 (TCP with timestamps) + 1449 > 1500.
	w.ProcessBatch([]dataplane.Frame{gsoFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, 20000, 1449)})
	if len(rec.out) != 1 || rec.out[0].Ifindex != 1 || rec.out[0].GSO.IsGSO() {
		t.Fatalf("sent %+v, want one ICMP error back", rec.out)
	}
	p := gopacket.NewPacket(rec.out[0].Data(), layers.LayerTypeEthernet, gopacket.Default)
	icmp, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if icmp == nil || icmp.TypeCode != layers.CreateICMPv4TypeCode(3, 4) || binary.BigEndian.Uint16(icmp.Contents[6:]) != 1500 {
		t.Fatalf("not fragmentation needed with MTU 1500: %v", p)
	}
	if w.Counters.Load(dataplane.CntTooBig) != 1 {
		t.Fatal("too-big not counted")
	}
	// Segments of exactly the MTU pass.
	rec.out = nil
	w.ProcessBatch([]dataplane.Frame{gsoFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, 20000, 1448)})
	if len(rec.out) != 1 || !rec.out[0].GSO.IsGSO() {
		t.Fatalf("1448-byte segments: sent %+v", rec.out)
	}
}

// TestGSOBad: metadata that does not describe the frame is dropped and
// counted.
func TestGSOBad(t *testing.T) {
	r := newRig(t, natRules)
	r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false))
	rec := &recordIO{}
	w := dataplane.NewWorker(rec, r.env)
	f := gsoFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, 5000, 1000)
	f.GSO.Type = dataplane.GSOTCPv6
	g := gsoFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, 5000, 1000)
	g.GSO.Size = 0
	w.ProcessBatch([]dataplane.Frame{f, g})
	if len(rec.out) != 0 || w.Counters.Load(dataplane.CntGSOBad) != 2 {
		t.Fatalf("sent %d, gso-bad %d", len(rec.out), w.Counters.Load(dataplane.CntGSOBad))
	}
}

// TestGSOSeedsMissingPartial: a super-frame that arrives without a partial
// checksum (CHECKSUM_UNNECESSARY after GRO) leaves with one, since the
// segmentation needs the seed.
func TestGSOSeedsMissingPartial(t *testing.T) {
	r := newRig(t, natRules)
	r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false))
	rec := &recordIO{}
	w := dataplane.NewWorker(rec, r.env)
	f := gsoFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, 5000, 1000)
	f.CsumPartial, f.CsumStart, f.CsumOffset = false, 0, 0
	binary.BigEndian.PutUint16(f.Data()[34+16:], 0xbeef) // whatever GRO left there
	w.ProcessBatch([]dataplane.Frame{f})
	if len(rec.out) != 1 {
		t.Fatalf("sent %d", len(rec.out))
	}
	checkPartial(t, rec.out[0])
}

// TestPartialKeptOrCompleted: a non-GSO partial frame stays partial
// through a backend that carries offloads and is completed in software
// (and no longer marked partial) through one that does not.
func TestPartialKeptOrCompleted(t *testing.T) {
	for _, offload := range []bool{true, false} {
		r := newRig(t, natRules)
		r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false))
		rec := &recordIO{}
		w := dataplane.NewWorker(rec, r.env)
		f := gsoFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, 500, 0)
		f.GSO = dataplane.GSO{}
		f.Offload = offload
		if !offload {
			f.CsumStart, f.CsumOffset = 0, 0
		}
		w.ProcessBatch([]dataplane.Frame{f})
		if len(rec.out) != 1 {
			t.Fatalf("offload=%v: sent %d", offload, len(rec.out))
		}
		if offload {
			checkPartial(t, rec.out[0])
			continue
		}
		if rec.out[0].CsumPartial {
			t.Fatal("completed frame still marked partial")
		}
		decode(t, rec.out[0].Data())
	}
}

const tunRules = `-A -t 10.0.1.100:80 -s rr
-a -t 10.0.1.100:80 -r 10.0.2.11 -i
`

// TestGSOTunnel: a super-frame towards a TUN real server is cut into
// segments in software, each encapsulated with complete checksums; several
// super-frames in one batch overflow the segment slab and the output batch,
// which are flushed early.
func TestGSOTunnel(t *testing.T) {
	r := newRig(t, tunRules)
	r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false))
	rec := &recordIO{}
	w := dataplane.NewWorker(rec, r.env)
	const payload, mss, n = 60000, 1400, 6
	var batch []dataplane.Frame
	for range n {
		batch = append(batch, gsoFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, payload, mss))
	}
	w.ProcessBatch(batch)
	per := (payload + mss - 1) / mss
	if len(rec.out) != n*per {
		t.Fatalf("sent %d frames, want %d segments", len(rec.out), n*per)
	}
	var data []byte
	for i, f := range rec.out[:per] {
		if f.GSO.IsGSO() || f.CsumPartial || f.Ifindex != 2 {
			t.Fatalf("segment %d: %+v", i, f)
		}
		p := gopacket.NewPacket(f.Data(), layers.LayerTypeEthernet, gopacket.Default)
		ls := p.Layers()
		if len(ls) < 4 {
			t.Fatalf("segment %d: %v", i, p)
		}
		outer, _ := ls[1].(*layers.IPv4)
		if outer == nil || outer.Protocol != layers.IPProtocolIPv4 || outer.DstIP.String() != "10.0.2.11" || outer.SrcIP.String() != "10.0.2.1" {
			t.Fatalf("segment %d: outer header %v", i, p)
		}
		inner := f.Data()[14+20:]
		l2 := make([]byte, 14)
		l2[12] = 0x08                                 // IPv4
		_, ip, tcp := decode(t, append(l2, inner...)) // checks the inner checksums
		if ip.Id != uint16(100+i) || tcp.Seq != uint32(5000+i*mss) || ip.TTL != 63 {
			t.Fatalf("segment %d: id %d seq %d ttl %d", i, ip.Id, tcp.Seq, ip.TTL)
		}
		if tcp.PSH != (i == per-1) {
			t.Fatalf("segment %d: PSH %v", i, tcp.PSH)
		}
		data = append(data, tcp.Payload...)
	}
	want := make([]byte, payload)
	for i := range want {
		want[i] = byte(i*13 + 1)
	}
	if !bytes.Equal(data, want) {
		t.Fatal("segments' payload differs from the super-frame's")
	}
	if w.Counters.Load(dataplane.CntGSOSegment) != uint64(n*per) || w.Counters.Load(dataplane.CntTx) != uint64(n*per) {
		t.Fatalf("gso-segment %d tx %d", w.Counters.Load(dataplane.CntGSOSegment), w.Counters.Load(dataplane.CntTx))
	}
}

// TestGSONoAllocs guards the super-frame paths: NAT rewrite of a
// super-frame and software segmentation for TUN.
func TestGSONoAllocs(t *testing.T) {
	for _, rules := range []string{natRules, tunRules} {
		r := newRig(t, rules)
		r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false))
		w := dataplane.NewWorker(discardIO{}, r.env)
		f := gsoFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, 60000, 1400)
		orig := append([]byte(nil), f.Buf...)
		frames := make([]dataplane.Frame, 8)
		allocs := testing.AllocsPerRun(50, func() {
			for i := range frames {
				copy(f.Buf, orig)
				frames[i] = f
			}
			w.ProcessBatch(frames)
		})
		if w.Counters.Load(dataplane.CntTx) == 0 {
			t.Fatal("the measured path sent nothing")
		}
		if allocs != 0 {
			t.Fatalf("super-frame path allocates %.1f times", allocs)
		}
	}
}

// BenchmarkGSO measures one 64 KB super-frame through NAT (rewritten once)
// and through TUN (segmented and encapsulated in software).
func BenchmarkGSO(b *testing.B) {
	for _, tc := range []struct{ name, rules string }{{"nat", natRules}, {"tun", tunRules}} {
		b.Run(tc.name, func(b *testing.B) {
			r := newRig(b, tc.rules)
			r.run(b, tcpFrame(b, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false))
			w := dataplane.NewWorker(discardIO{}, r.env)
			f := gsoFrame(b, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, 64000, 1400)
			orig := append([]byte(nil), f.Buf...)
			frames := []dataplane.Frame{f}
			b.SetBytes(int64(f.Len))
			b.ReportAllocs()
			for b.Loop() {
				copy(f.Buf[:64+100], orig[:64+100]) // headers: TTL and checksums
				frames[0] = f
				w.ProcessBatch(frames)
			}
		})
	}
}
