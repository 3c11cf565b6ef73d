package afxdp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/internal/fuzzwatch"
)

// seg describes one test segment.
type seg struct {
	v6       bool
	src, dst byte // last address byte
	sport    uint16
	seq, ack uint32
	flags    uint8
	id       uint16
	df       bool
	win      uint16
	urg      uint16 // urgent pointer (without URG: the kernel's GRO ignores it)
	opts     []byte // TCP options (a multiple of 4 bytes)
	payload  []byte
	full     bool // a complete checksum instead of a partial one
	badCsum  bool // neither
	ifindex  int
}

func (s seg) frame() []byte {
	l3 := 20
	if s.v6 {
		l3 = 40
	}
	doff := 20 + len(s.opts)
	f := make([]byte, ethHdrLen+l3+doff+len(s.payload))
	copy(f[0:6], []byte{2, 0, 0, 0, 0, 1})
	copy(f[6:12], []byte{2, 0, 0, 0, 0, 2})
	ip := f[ethHdrLen:]
	if s.v6 {
		binary.BigEndian.PutUint16(f[12:], etherIPv6)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(doff+len(s.payload)))
		ip[6], ip[7] = header.ProtoTCP, 64
		ip[8], ip[23] = 0xfd, s.src
		ip[24], ip[39] = 0xfd, s.dst
	} else {
		binary.BigEndian.PutUint16(f[12:], etherIPv4)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
		binary.BigEndian.PutUint16(ip[4:], s.id)
		if s.df {
			ip[6] = 0x40
		}
		ip[8], ip[9] = 64, header.ProtoTCP
		copy(ip[12:16], []byte{10, 0, 0, s.src})
		copy(ip[16:20], []byte{10, 0, 0, s.dst})
		binary.BigEndian.PutUint16(ip[10:], ^header.Checksum(ip[:20], 0))
	}
	th := f[ethHdrLen+l3:]
	binary.BigEndian.PutUint16(th[0:], s.sport)
	binary.BigEndian.PutUint16(th[2:], 80)
	binary.BigEndian.PutUint32(th[4:], s.seq)
	binary.BigEndian.PutUint32(th[8:], s.ack)
	th[12] = byte(doff/4) << 4
	th[13] = s.flags
	if s.win == 0 {
		s.win = 500
	}
	binary.BigEndian.PutUint16(th[14:], s.win)
	binary.BigEndian.PutUint16(th[18:], s.urg)
	copy(th[20:], s.opts)
	copy(th[doff:], s.payload)
	ps := pseudo(f, s.v6, len(th))
	switch {
	case s.badCsum:
		binary.BigEndian.PutUint16(th[tcpCsumOff:], ps^0x5555)
	case s.full:
		binary.BigEndian.PutUint16(th[tcpCsumOff:], ^header.Checksum(th, ps))
	default:
		binary.BigEndian.PutUint16(th[tcpCsumOff:], ps)
	}
	return f
}

// train returns n segments of size bytes of one flow, then a last one of
// last bytes (none if 0), starting at seq 1000 and IP ID 7.
func train(base seg, n, size, last int) []seg {
	var out []seg
	seq, id := uint32(1000), uint16(7)
	for i := 0; i <= n; i++ {
		l := size
		if i == n {
			if last == 0 {
				break
			}
			l = last
		}
		s := base
		s.seq, s.id = seq, id
		s.payload = bytes.Repeat([]byte{byte('a' + i%26)}, l)
		out = append(out, s)
		seq += uint32(l)
		id++
	}
	return out
}

func batchOf(segs []seg) []dataplane.Frame {
	frames := make([]dataplane.Frame, len(segs))
	for i, s := range segs {
		buf := make([]byte, PacketHeadroom+2048)
		n := copy(buf[PacketHeadroom:], s.frame())
		ifx := s.ifindex
		if ifx == 0 {
			ifx = 3
		}
		frames[i] = dataplane.Frame{Buf: buf, Off: PacketHeadroom, Len: n, Ifindex: ifx, CsumUnknown: true}
	}
	return frames
}

func payloadOf(t *testing.T, f *dataplane.Frame) []byte {
	t.Helper()
	s, ok := parseSeg(f.Data())
	if !ok {
		t.Fatalf("not a TCP segment: % x", f.Data())
	}
	return f.Data()[s.pay:]
}

// checkSuper checks a super-frame's headers and metadata.
func checkSuper(t *testing.T, f *dataplane.Frame, v6 bool, gso int) {
	t.Helper()
	d := f.Data()
	s, ok := parseSeg(d)
	if !ok {
		t.Fatalf("super-frame does not parse: length fields wrong?")
	}
	want := dataplane.GSOTCPv4
	if v6 {
		want = dataplane.GSOTCPv6
	}
	if f.GSO.Type != want || int(f.GSO.Size) != gso || !f.Offload || !f.CsumPartial || f.CsumUnknown {
		t.Errorf("metadata %+v offload %v partial %v unknown %v, want %v size %d", f.GSO, f.Offload, f.CsumPartial, f.CsumUnknown, want, gso)
	}
	if int(f.CsumStart) != s.l4 || f.CsumOffset != tcpCsumOff {
		t.Errorf("csum start/offset %d/%d, want %d/%d", f.CsumStart, f.CsumOffset, s.l4, tcpCsumOff)
	}
	if !v6 && header.Checksum(d[ethHdrLen:ethHdrLen+20], 0) != 0xffff {
		t.Errorf("IPv4 header checksum does not verify")
	}
	if got, want := binary.BigEndian.Uint16(d[s.l4+tcpCsumOff:]), pseudo(d, v6, len(d)-s.l4); got != want {
		t.Errorf("TCP checksum field %#04x, want the pseudo-header sum %#04x", got, want)
	}
	if f.Off < PacketHeadroom {
		t.Errorf("headroom %d", f.Off)
	}
}

func TestCoalesceTrain(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		base := seg{v6: v6, src: 1, dst: 2, sport: 4000, ack: 99, flags: tcpACK, df: true,
			opts: []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2}}
		segs := train(base, 10, 1000, 300)
		segs[3].full = true // a complete checksum joins too
		segs[len(segs)-1].flags |= tcpPSH
		frames := batchOf(segs)
		c := newCoalescer(PacketHeadroom)
		n := c.coalesce(frames)
		if n != 1 {
			t.Fatalf("v6 %v: %d frames, want 1", v6, n)
		}
		checkSuper(t, &frames[0], v6, 1000)
		var want []byte
		for _, s := range segs {
			want = append(want, s.payload...)
		}
		if got := payloadOf(t, &frames[0]); !bytes.Equal(got, want) {
			t.Errorf("v6 %v: payload of %d bytes differs from the %d sent", v6, len(got), len(want))
		}
		if th := frames[0].Data()[frames[0].CsumStart:]; th[13] != tcpACK|tcpPSH {
			t.Errorf("flags %#x, want ACK|PSH", th[13])
		}
		if c.supers != 1 || c.merged != uint64(len(segs)) {
			t.Errorf("counters %d/%d", c.supers, c.merged)
		}
	}
}

// TestCoalesceKeepsOrder interleaves two flows and the reverse ACKs: each
// flow becomes one super-frame at the place of its first segment, the
// ACKs stay as they are, and a FIN after a flow's segments stays after
// its super-frame.
func TestCoalesceKeepsOrder(t *testing.T) {
	a := train(seg{src: 1, dst: 2, sport: 1, ack: 5, flags: tcpACK}, 4, 1000, 0)
	b := train(seg{src: 1, dst: 2, sport: 2, ack: 5, flags: tcpACK}, 4, 1000, 0)
	ack := seg{src: 2, dst: 1, sport: 80, seq: 5, ack: 2000, flags: tcpACK}
	fin := seg{src: 1, dst: 2, sport: 1, seq: 5000, ack: 5, id: 11, flags: tcpACK | tcpFIN}
	in := []seg{a[0], b[0], ack, a[1], b[1], a[2], ack, b[2], a[3], fin, a[3], b[3]}
	in[10].seq += 1 // after the FIN: not merged (the item is closed)
	frames := batchOf(in)
	n := newCoalescer(PacketHeadroom).coalesce(frames)
	if n != 6 {
		t.Fatalf("%d frames, want 6 (a, b, ack, ack, fin, a[3]')", n)
	}
	checkSuper(t, &frames[0], false, 1000)
	checkSuper(t, &frames[1], false, 1000)
	if got := len(payloadOf(t, &frames[0])); got != 4000 {
		t.Errorf("flow a: %d bytes", got)
	}
	if got := len(payloadOf(t, &frames[1])); got != 4000 {
		t.Errorf("flow b: %d bytes", got)
	}
	for i, want := range []uint8{tcpACK, tcpACK, tcpACK | tcpFIN, tcpACK} {
		f := &frames[2+i]
		if f.GSO.IsGSO() || f.Offload || !f.CsumUnknown {
			t.Errorf("frame %d: metadata changed", 2+i)
		}
		if fl := f.Data()[ethHdrLen+20+13]; fl != want {
			t.Errorf("frame %d: flags %#x, want %#x", 2+i, fl, want)
		}
	}
}

// TestCoalesceRefuses lists segments that must not join the first.
func TestCoalesceRefuses(t *testing.T) {
	base := seg{src: 1, dst: 2, sport: 9, ack: 5, flags: tcpACK, opts: []byte{1, 1, 1, 1}}
	for name, change := range map[string]func(s *seg){
		"seq gap":          func(s *seg) { s.seq++ },
		"other ack":        func(s *seg) { s.ack++ },
		"other window":     func(s *seg) { s.win = 7 },
		"other urgent ptr": func(s *seg) { s.urg = 6 },
		"other options":    func(s *seg) { s.opts = []byte{1, 1, 1, 0} },
		"no options":       func(s *seg) { s.opts = nil },
		"bad checksum":     func(s *seg) { s.badCsum = true },
		"SYN":              func(s *seg) { s.flags |= tcpSYN },
		"FIN":              func(s *seg) { s.flags |= tcpFIN },
		"RST":              func(s *seg) { s.flags |= tcpRST },
		"URG":              func(s *seg) { s.flags |= tcpURG },
		"CWR":              func(s *seg) { s.flags |= tcpCWR },
		"ID jump":          func(s *seg) { s.id += 2 },
		"same ID, no DF":   func(s *seg) { s.id-- },
		"longer":           func(s *seg) { s.payload = append(s.payload, 'x') },
		"other interface":  func(s *seg) { s.ifindex = 4 },
		"other port":       func(s *seg) { s.sport++ },
		"other address":    func(s *seg) { s.dst++ },
		"empty":            func(s *seg) { s.payload = nil },
		"other IP version": func(s *seg) { s.v6 = true },
	} {
		segs := train(base, 2, 100, 0)
		change(&segs[1])
		frames := batchOf(segs)
		if n := newCoalescer(PacketHeadroom).coalesce(frames); n != 2 {
			t.Errorf("%s: %d frames, want 2", name, n)
		}
		if frames[0].GSO.IsGSO() {
			t.Errorf("%s: the first became a super-frame", name)
		}
	}
	// A first segment with PSH, or with a bad checksum, starts nothing.
	for name, change := range map[string]func(s *seg){
		"PSH first":          func(s *seg) { s.flags |= tcpPSH },
		"bad checksum first": func(s *seg) { s.badCsum = true },
	} {
		segs := train(base, 2, 100, 0)
		change(&segs[0])
		if n := newCoalescer(PacketHeadroom).coalesce(batchOf(segs)); n != 2 {
			t.Errorf("%s: %d frames, want 2", name, n)
		}
	}
	// A shorter segment closes the super-frame.
	segs := train(base, 2, 100, 50)
	segs = append(segs, train(base, 4, 100, 0)[3])
	segs[3].seq = segs[2].seq + 50
	if n := newCoalescer(PacketHeadroom).coalesce(batchOf(segs)); n != 2 {
		t.Errorf("after a short segment: %d frames, want 2", n)
	}
}

// TestCoalesceLimits: a super-frame stops below 64 KB of IP length, and
// flows beyond the preallocated regions stay unmerged.
func TestCoalesceLimits(t *testing.T) {
	segs := train(seg{src: 1, dst: 2, sport: 9, flags: tcpACK, df: true}, 50, 1460, 0)
	frames := batchOf(segs)
	n := newCoalescer(PacketHeadroom).coalesce(frames)
	total := 0
	for i := range n {
		if l := frames[i].Len - ethHdrLen; l > groMaxIP {
			t.Errorf("frame %d: IP length %d", i, l)
		}
		total += len(payloadOf(t, &frames[i]))
	}
	if n != 2 || total != 50*1460 {
		t.Errorf("%d frames with %d bytes, want 2 with %d", n, total, 50*1460)
	}

	var many []seg
	for p := range groRegions + 2 {
		many = append(many, train(seg{src: 1, dst: 2, sport: uint16(100 + p), flags: tcpACK}, 2, 100, 0)...)
	}
	frames = batchOf(many)
	if n := newCoalescer(PacketHeadroom).coalesce(frames); n != groRegions+2*2 {
		t.Errorf("%d frames, want %d", n, groRegions+4)
	}
}

func TestCoalesceNoAllocs(t *testing.T) {
	segs := train(seg{src: 1, dst: 2, sport: 9, flags: tcpACK}, 30, 1000, 0)
	segs = append(segs, seg{src: 2, dst: 1, sport: 80, flags: tcpACK})
	orig := batchOf(segs)
	frames := make([]dataplane.Frame, len(orig))
	c := newCoalescer(PacketHeadroom)
	allocs := testing.AllocsPerRun(100, func() {
		copy(frames, orig)
		c.coalesce(frames)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per batch", allocs)
	}
}

func BenchmarkCoalesce(b *testing.B) {
	for _, bc := range []struct {
		name string
		segs []seg
	}{
		{"train", train(seg{src: 1, dst: 2, sport: 9, flags: tcpACK}, 63, 1448, 0)},
		{"udp", func() []seg {
			// Not TCP: parseSeg looks at the protocol and stops.
			var s []seg
			for i := range 64 {
				s = append(s, seg{src: 2, dst: 1, sport: uint16(i), flags: tcpACK, payload: []byte("0123456789abcdef")})
			}
			return s
		}()},
		{"acks", func() []seg {
			var s []seg
			for i := range 64 {
				s = append(s, seg{src: 2, dst: 1, sport: uint16(i), flags: tcpACK})
			}
			return s
		}()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			orig := batchOf(bc.segs)
			if bc.name == "udp" {
				for i := range orig {
					orig[i].Data()[ethHdrLen+9] = header.ProtoUDP
				}
			}
			frames := make([]dataplane.Frame, len(orig))
			c := newCoalescer(PacketHeadroom)
			b.ReportAllocs()
			for b.Loop() {
				copy(frames, orig)
				c.coalesce(frames)
			}
		})
	}
}

// FuzzCoalesce feeds frames cut from the input (a length byte, then that
// many bytes, repeated) mixed with valid segments: coalescing must not
// panic, and the payload bytes of the TCP segments come out unchanged in
// number.
func FuzzCoalesce(f *testing.F) {
	f.Add([]byte{})
	f.Add(train(seg{src: 1, dst: 2, sport: 9, flags: tcpACK}, 1, 40, 0)[0].frame())
	f.Add(seg{v6: true, src: 1, dst: 2, sport: 9, flags: tcpACK, payload: []byte("abcd")}.frame())
	f.Fuzz(func(t *testing.T, data []byte) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("%d bytes %.200q", len(data), data) })()
		segs := train(seg{src: 1, dst: 2, sport: 9, flags: tcpACK}, 3, 60, 0)
		frames := batchOf(segs)
		for len(data) > 0 && len(frames) < 64 {
			n := min(int(data[0]), len(data)-1)
			buf := make([]byte, PacketHeadroom+2048)
			copy(buf[PacketHeadroom:], data[1:1+n])
			frames = append(frames, dataplane.Frame{Buf: buf, Off: PacketHeadroom, Len: n, Ifindex: 3})
			data = data[1+n:]
		}
		bytesIn := 0
		for i := range frames {
			if s, ok := parseSeg(frames[i].Data()); ok && s.merge {
				bytesIn += s.size
			}
		}
		c := newCoalescer(PacketHeadroom)
		n := c.coalesce(frames)
		bytesOut := 0
		for i := range n {
			if s, ok := parseSeg(frames[i].Data()); ok && s.merge {
				bytesOut += s.size
			}
		}
		// Merged frames carry a partial checksum that verifies as such,
		// so their payload is counted again on the way out.
		if bytesOut != bytesIn {
			t.Fatalf("payload bytes %d in, %d out", bytesIn, bytesOut)
		}
	})
}
