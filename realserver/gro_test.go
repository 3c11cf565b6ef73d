package realserver

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/header"
)

// seg describes one client→VIP TCP segment for the GRO tests.
type seg struct {
	v6      bool
	sport   uint16
	seq     uint32
	ack     uint32
	n       int // payload bytes
	id      uint16
	noDF    bool
	tos     uint8
	ttl     uint8
	win     uint16
	psh     bool
	syn     bool
	fin     bool
	rst     bool
	urg     bool
	cwr     bool
	ece     bool
	ts      uint32 // timestamp option value (0: no options)
	badCsum bool
	ipOpt   bool
}

// build returns the segment's bytes (lengths and checksums by gopacket).
func (s seg) build(t testing.TB) []byte {
	t.Helper()
	if s.ttl == 0 {
		s.ttl = 63
	}
	if s.win == 0 {
		s.win = 502
	}
	payload := make([]byte, s.n)
	for i := range payload {
		payload[i] = byte(s.seq + uint32(i))
	}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(s.sport), DstPort: 80, Seq: s.seq, Ack: s.ack, ACK: !s.syn || s.ack != 0,
		PSH: s.psh, SYN: s.syn, FIN: s.fin, RST: s.rst, URG: s.urg, CWR: s.cwr, ECE: s.ece, Window: s.win}
	if s.ts != 0 {
		v := make([]byte, 8)
		binary.BigEndian.PutUint32(v, s.ts)
		tcp.Options = []layers.TCPOption{{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindNop},
			{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: v}}
	}
	var ipl gopacket.SerializableLayer
	if s.v6 {
		ip := &layers.IPv6{Version: 6, HopLimit: s.ttl, TrafficClass: s.tos, NextHeader: layers.IPProtocolTCP, SrcIP: cliIP6, DstIP: vipIP6}
		_ = tcp.SetNetworkLayerForChecksum(ip)
		ipl = ip
	} else {
		ip := &layers.IPv4{Version: 4, TTL: s.ttl, TOS: s.tos, Id: s.id, Protocol: layers.IPProtocolTCP, SrcIP: cliIP, DstIP: vipIP}
		if !s.noDF {
			ip.Flags = layers.IPv4DontFragment
		}
		if s.ipOpt {
			ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
		}
		_ = tcp.SetNetworkLayerForChecksum(ip)
		ipl = ip
	}
	b := serialize(t, ipl, tcp, gopacket.Payload(payload))
	if s.badCsum {
		b[len(b)-1] ^= 0xff // the payload no longer matches the checksum
	}
	return b
}

// train returns n contiguous full segments of size sz of one flow, IDs
// increasing, starting at seq.
func train(base seg, n, sz int) []seg {
	out := make([]seg, n)
	for i := range out {
		s := base
		s.seq = base.seq + uint32(i*sz)
		s.id = base.id + uint16(i)
		s.n = sz
		out[i] = s
	}
	return out
}

// runGRO feeds the packets to a coalescer (each in its own receive buffer
// with headroom, as ServeBatch does) and returns the TUN frames.
func runGRO(t testing.TB, pkts [][]byte) (frames [][]byte, segs []int) {
	t.Helper()
	g := NewGRO(len(pkts))
	for _, p := range pkts {
		buf := make([]byte, Headroom+MaxPacket)
		copy(buf[Headroom:], p)
		g.Add(buf, Headroom, len(p))
	}
	for i := range g.Len() {
		f, s := g.Frame(i, true)
		frames = append(frames, bytes.Clone(f))
		segs = append(segs, s)
	}
	return frames, segs
}

// resegment is the test's model of what the kernel does with a TUN frame
// (virtio_net_hdr_to_skb, then tcp_gso_segment when it must): a plain
// packet stays as it is; a TCP super-frame is cut into gso_size pieces,
// each with its sequence number, lengths, IPv4 ID (increasing unless
// fixedID), PSH on the last only and complete checksums.
func resegment(t testing.TB, frame []byte, fixedID bool) [][]byte {
	t.Helper()
	v, pkt := frame[:vnetHdrLen], frame[vnetHdrLen:]
	if v[1] == 0 {
		switch v[0] {
		case 0:
			return [][]byte{pkt}
		case vnetNeedsCsum: // a kernel-merged packet of one segment's size
			return [][]byte{complete(frame)}
		}
		t.Fatalf("plain frame with flags %#x", v[0])
	}
	hl := int(binary.NativeEndian.Uint16(v[2:]))
	gso := int(binary.NativeEndian.Uint16(v[4:]))
	cs, co := int(binary.NativeEndian.Uint16(v[6:])), int(binary.NativeEndian.Uint16(v[8:]))
	v6 := pkt[0]>>4 == 6
	ihl := 20
	gsoType := v[1] &^ vnetGSOECN
	if v6 {
		ihl = 40
		if gsoType != vnetGSOTCPv6 {
			t.Fatalf("IPv6 super-frame with gso_type %d", v[1])
		}
	} else if gsoType != vnetGSOTCPv4 {
		t.Fatalf("IPv4 super-frame with gso_type %d", v[1])
	}
	if v[0] != vnetNeedsCsum || cs != ihl || co != 16 || gso == 0 {
		t.Fatalf("vnet header %x", v)
	}
	// The partial checksum must be the pseudo-header sum of the whole.
	l4 := uint32(len(pkt) - ihl)
	var ph uint16
	if v6 {
		ph = header.PseudoHeaderChecksum(header.ProtoTCP, pkt[8:24], pkt[24:40], l4)
		if int(binary.BigEndian.Uint16(pkt[4:])) != len(pkt)-40 {
			t.Fatalf("IPv6 payload length %d, frame %d", binary.BigEndian.Uint16(pkt[4:]), len(pkt))
		}
	} else {
		ph = header.PseudoHeaderChecksum(header.ProtoTCP, pkt[12:16], pkt[16:20], l4)
		if int(binary.BigEndian.Uint16(pkt[2:])) != len(pkt) || header.Checksum(pkt[:20], 0) != 0xffff {
			t.Fatalf("IPv4 header of the super-frame: length %d (frame %d), checksum ok %v",
				binary.BigEndian.Uint16(pkt[2:]), len(pkt), header.Checksum(pkt[:20], 0) == 0xffff)
		}
	}
	if got := binary.BigEndian.Uint16(pkt[ihl+16:]); got != ph {
		t.Fatalf("partial checksum field %#x, want pseudo-header sum %#x", got, ph)
	}
	hdr, pay := pkt[:hl], pkt[hl:]
	seq := binary.BigEndian.Uint32(hdr[ihl+4:])
	id := binary.BigEndian.Uint16(hdr[4:])
	var out [][]byte
	for i := 0; len(pay) > 0; i++ {
		n := min(gso, len(pay))
		s := append(bytes.Clone(hdr), pay[:n]...)
		pay = pay[n:]
		binary.BigEndian.PutUint32(s[ihl+4:], seq)
		seq += uint32(n)
		if len(pay) > 0 {
			s[ihl+13] &^= tcpPSH | tcpFIN
		}
		if i > 0 {
			s[ihl+13] &^= tcpCWR // tcp_gso_segment: CWR on the first segment only
		}
		if v6 {
			binary.BigEndian.PutUint16(s[4:], uint16(len(s)-40))
		} else {
			binary.BigEndian.PutUint16(s[2:], uint16(len(s)))
			if !fixedID {
				binary.BigEndian.PutUint16(s[4:], id+uint16(i))
			}
			s[10], s[11] = 0, 0
			binary.BigEndian.PutUint16(s[10:], ^header.Checksum(s[:20], 0))
		}
		s[ihl+16], s[ihl+17] = 0, 0
		var p uint16
		if v6 {
			p = header.PseudoHeaderChecksum(header.ProtoTCP, s[8:24], s[24:40], uint32(len(s)-ihl))
		} else {
			p = header.PseudoHeaderChecksum(header.ProtoTCP, s[12:16], s[16:20], uint32(len(s)-ihl))
		}
		binary.BigEndian.PutUint16(s[ihl+16:], ^header.Checksum(s[ihl:], p))
		out = append(out, s)
	}
	return out
}

// gopacketValid decodes a complete packet with gopacket, re-serialises it
// with computed checksums and reports whether the bytes are unchanged
// (lengths and checksums valid by gopacket's reckoning).
func gopacketValid(t testing.TB, pkt []byte) bool {
	t.Helper()
	first := layers.LayerTypeIPv4
	if pkt[0]>>4 == 6 {
		first = layers.LayerTypeIPv6
	}
	p := gopacket.NewPacket(pkt, first, gopacket.Default)
	var ls []gopacket.SerializableLayer
	var netl gopacket.NetworkLayer
	for _, l := range p.Layers() {
		switch l := l.(type) {
		case *layers.IPv4:
			netl = l
			ls = append(ls, l)
		case *layers.IPv6:
			netl = l
			ls = append(ls, l)
		case *layers.TCP:
			_ = l.SetNetworkLayerForChecksum(netl)
			ls = append(ls, l, gopacket.Payload(l.Payload))
		}
	}
	if len(ls) != 3 {
		t.Fatalf("gopacket decoded %d layers of %x", len(ls), pkt[:min(len(pkt), 60)])
	}
	return bytes.Equal(serialize(t, ls...), pkt)
}

// complete fills in the partial TCP checksum of a super-frame, as the
// stack would (skb_checksum_help).
func complete(frame []byte) []byte {
	pkt := bytes.Clone(frame[vnetHdrLen:])
	if frame[0]&vnetNeedsCsum == 0 {
		return pkt
	}
	cs := int(binary.NativeEndian.Uint16(frame[6:]))
	co := int(binary.NativeEndian.Uint16(frame[8:]))
	binary.BigEndian.PutUint16(pkt[cs+co:], ^header.Checksum(pkt[cs:], 0))
	return pkt
}

func builds(t testing.TB, ss []seg) [][]byte {
	var out [][]byte
	for _, s := range ss {
		out = append(out, s.build(t))
	}
	return out
}

func TestGROMergesOneFlow(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		base := seg{v6: v6, sport: 40000, seq: 1000, ack: 77, id: 10, ts: 12345}
		ss := train(base, 5, 1200)
		ss[4].n, ss[4].psh = 300, true // short last segment with PSH
		in := builds(t, ss)
		frames, segs := runGRO(t, in)
		if len(frames) != 1 || segs[0] != 5 {
			t.Fatalf("v6=%v: %d frames, segments %v: want one super-frame of 5", v6, len(frames), segs)
		}
		f := frames[0]
		if got := binary.NativeEndian.Uint16(f[4:]); got != 1200 {
			t.Errorf("v6=%v: gso_size %d, want 1200", v6, got)
		}
		if got := len(f) - vnetHdrLen; got != len(in[0])+3*1200+300 {
			t.Errorf("v6=%v: super-frame %d bytes", v6, got)
		}
		whole := complete(f)
		if !gopacketValid(t, whole) {
			t.Errorf("v6=%v: the completed super-frame's lengths or checksums are wrong by gopacket", v6)
		}
		back := resegment(t, f, false)
		if len(back) != len(in) {
			t.Fatalf("v6=%v: resegmented into %d, want %d", v6, len(back), len(in))
		}
		for i := range in {
			if !bytes.Equal(back[i], in[i]) {
				t.Errorf("v6=%v: segment %d differs after coalescing and cutting again:\n got %x\nwant %x", v6, i, back[i][:60], in[i][:60])
			}
		}
	}
}

func TestGRONotMerged(t *testing.T) {
	base := seg{sport: 40000, seq: 1000, ack: 77, id: 10, n: 1000}
	next := base
	next.seq, next.id = 2000, 11
	tests := []struct {
		name string
		b    func(s *seg) // applied to the second segment
		a    func(s *seg) // applied to the first segment
	}{
		{name: "sequence gap", b: func(s *seg) { s.seq += 1 }},
		{name: "retransmission", b: func(s *seg) { s.seq = 1000 }},
		{name: "other flow", b: func(s *seg) { s.sport = 40001 }},
		{name: "SYN", b: func(s *seg) { s.syn = true }},
		{name: "FIN", b: func(s *seg) { s.fin = true }},
		{name: "RST", b: func(s *seg) { s.rst = true }},
		{name: "URG", b: func(s *seg) { s.urg = true }},
		{name: "CWR", b: func(s *seg) { s.cwr = true }},
		{name: "ECE differs", b: func(s *seg) { s.ece = true }},
		{name: "first has PSH", a: func(s *seg) { s.psh = true }},
		{name: "first short", a: func(s *seg) { s.n = 500 }, b: func(s *seg) { s.seq = 1500 }},
		{name: "second larger", b: func(s *seg) { s.n = 1001 }},
		{name: "ack differs", b: func(s *seg) { s.ack = 78 }},
		{name: "window differs", b: func(s *seg) { s.win = 600 }},
		{name: "options differ", a: func(s *seg) { s.ts = 1 }, b: func(s *seg) { s.ts = 2 }},
		{name: "TOS (ECN CE) differs", b: func(s *seg) { s.tos = 3 }},
		{name: "TTL differs", b: func(s *seg) { s.ttl = 62 }},
		{name: "ID not next", b: func(s *seg) { s.id = 13 }},
		{name: "ID fixed without DF", a: func(s *seg) { s.noDF = true }, b: func(s *seg) { s.noDF, s.id = true, 10 }},
		{name: "IP options", a: func(s *seg) { s.ipOpt = true }, b: func(s *seg) { s.ipOpt = true }},
		{name: "bad checksum second", b: func(s *seg) { s.badCsum = true }},
		{name: "bad checksum first", a: func(s *seg) { s.badCsum = true }},
		{name: "no payload", b: func(s *seg) { s.n = 0 }},
	}
	for _, tt := range tests {
		a, b := base, next
		if tt.a != nil {
			tt.a(&a)
		}
		if tt.b != nil {
			tt.b(&b)
		}
		in := builds(t, []seg{a, b})
		frames, _ := runGRO(t, in)
		if len(frames) != 2 {
			t.Errorf("%s: %d frames, want the 2 segments unmerged", tt.name, len(frames))
			continue
		}
		for i, f := range frames {
			if !bytes.Equal(f[:vnetHdrLen], make([]byte, vnetHdrLen)) || !bytes.Equal(f[vnetHdrLen:], in[i]) {
				t.Errorf("%s: frame %d changed: vnet %x", tt.name, i, f[:vnetHdrLen])
			}
		}
	}
	// The control: the same pair unmodified merges.
	if frames, _ := runGRO(t, builds(t, []seg{base, next})); len(frames) != 1 {
		t.Fatalf("control pair: %d frames, want 1", len(frames))
	}
	// DF with a fixed ID merges (inet_gro_receive accepts it).
	b := next
	b.id = 10
	if frames, _ := runGRO(t, builds(t, []seg{base, b})); len(frames) != 1 {
		t.Fatalf("DF, fixed ID: %d frames, want 1", len(frames))
	}
}

// Interleaved flows are merged each on its own, in the order of their first
// segments; a packet of a flow that is not merged (a pure ACK, a FIN) ends
// that flow's super-frame, so nothing overtakes it.
func TestGROFlowsAndOrder(t *testing.T) {
	a := train(seg{sport: 1, seq: 100, ack: 5, id: 1}, 3, 1000)
	b := train(seg{sport: 2, seq: 900, ack: 5, id: 50, v6: true}, 3, 1000)
	ackOnly := seg{sport: 1, seq: 3100, ack: 5, id: 4}
	tail := train(seg{sport: 1, seq: 3100, ack: 5, id: 5}, 2, 1000)
	udp := serialize(t, innerUDP4("x", 0)...)
	in := builds(t, []seg{a[0], b[0], a[1], b[1], a[2], b[2], ackOnly})
	in = append(in, udp)
	in = append(in, builds(t, tail)...)
	frames, segs := runGRO(t, in)
	want := []int{3, 3, 1, 1, 2}
	if len(segs) != len(want) {
		t.Fatalf("segments per frame %v, want %v", segs, want)
	}
	for i := range want {
		if segs[i] != want[i] {
			t.Fatalf("segments per frame %v, want %v", segs, want)
		}
	}
	var back [][]byte
	for _, f := range frames {
		back = append(back, resegment(t, f, false)...)
	}
	order := []int{0, 2, 4, 1, 3, 5, 6, 7, 8, 9}
	for i, j := range order {
		if !bytes.Equal(back[i], in[j]) {
			t.Errorf("output %d is not input %d", i, j)
		}
	}
}

// A 64 KB super-frame stops growing at the IPv4 length limit.
func TestGROBoundedBy64K(t *testing.T) {
	in := builds(t, train(seg{sport: 3, seq: 1, ack: 1, id: 1}, 60, 1448))
	frames, segs := runGRO(t, in)
	total := 0
	for i, f := range frames {
		if len(f)-vnetHdrLen > maxSuper {
			t.Fatalf("frame %d is %d bytes", i, len(f)-vnetHdrLen)
		}
		total += segs[i]
	}
	if total != 60 || len(frames) != 2 || segs[0] != 45 {
		t.Fatalf("segments per frame %v, want [45 15]", segs)
	}
}

// fakeBatch is a BatchReader returning the same packets every read, n
// reads in all.
type fakeBatch struct {
	pkts [][]byte
	left int
}

func (f *fakeBatch) ReadBatch(bufs [][]byte, sizes []int) (int, error) {
	if f.left == 0 {
		return 0, net.ErrClosed
	}
	f.left--
	for i, p := range f.pkts {
		sizes[i] = copy(bufs[i][Headroom:], p)
	}
	return len(f.pkts), nil
}

// discard is a TUN device that counts writes.
type discard struct{ n, bytes int }

func (d *discard) Write(b []byte) (int, error) { d.n++; d.bytes += len(b); return len(b), nil }

func ipipTrain(t testing.TB, n int) [][]byte {
	var out [][]byte
	for _, s := range train(seg{sport: 40000, seq: 1, ack: 1, id: 1}, n, 1448) {
		inner := s.build(t)
		o := outer4(layers.IPProtocolIPv4, 0)
		out = append(out, serialize(t, o, gopacket.Payload(inner)))
	}
	return out
}

func TestServeBatchCoalesces(t *testing.T) {
	pkts := ipipTrain(t, 32)
	d := NewDecapsulator([]netip.Addr{netip.MustParseAddr("198.18.0.10")})
	for _, vnet := range []bool{true, false} {
		dst := &discard{}
		b := NewBatch(64)
		before, writes := d.Counters().Decapsulated.Load(), d.Counters().Writes.Load()
		if err := d.ServeBatch(EncapIPIP, &fakeBatch{pkts: pkts, left: 2}, dst, vnet, b); err != nil {
			t.Fatalf("ServeBatch: %v", err)
		}
		wantWrites := 64
		if vnet {
			wantWrites = 2
		}
		if dst.n != wantWrites || d.Counters().Decapsulated.Load()-before != 64 || int(d.Counters().Writes.Load()-writes) != wantWrites {
			t.Errorf("vnet=%v: %d writes (counter %d), %d decapsulated; want %d writes of 64 segments", vnet,
				dst.n, d.Counters().Writes.Load()-writes, d.Counters().Decapsulated.Load()-before, wantWrites)
		}
	}
}

func TestServeBatchNoAllocs(t *testing.T) {
	pkts := ipipTrain(t, 32)
	d := NewDecapsulator([]netip.Addr{netip.MustParseAddr("198.18.0.10")})
	b := NewBatch(64)
	src := &fakeBatch{pkts: pkts}
	dst := &discard{}
	if n := testing.AllocsPerRun(100, func() {
		src.left = 1
		_ = d.ServeBatch(EncapIPIP, src, dst, true, b)
	}); n != 0 {
		t.Fatalf("%v allocations per batch", n)
	}
}

func BenchmarkServeBatch(b *testing.B) {
	for _, vnet := range []bool{true, false} {
		name := "plain"
		if vnet {
			name = "gro"
		}
		b.Run(name, func(b *testing.B) {
			pkts := ipipTrain(b, 44)
			d := NewDecapsulator([]netip.Addr{netip.MustParseAddr("198.18.0.10")})
			bt := NewBatch(64)
			src := &fakeBatch{pkts: pkts}
			dst := &discard{}
			b.ReportAllocs()
			b.SetBytes(int64(44 * len(pkts[0])))
			for b.Loop() {
				src.left = 1
				_ = d.ServeBatch(EncapIPIP, src, dst, vnet, bt)
			}
		})
	}
}
