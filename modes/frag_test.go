package modes_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/internal/fuzzwatch"
	"github.com/uvs-lb/uvs/modes"
)

// ipv4Packet builds an Ethernet frame (l2 bytes of link-layer header)
// holding an IPv4 UDP-like packet with the given options and payload
// bytes of data; flags is the flags/fragment-offset word.
func ipv4Packet(l2 int, opts []byte, payload int, flags uint16) []byte {
	hl := header.IPv4MinSize + len(opts)
	frame := make([]byte, l2+hl+payload)
	for i := range l2 {
		frame[i] = byte(0xa0 + i)
	}
	binary.BigEndian.PutUint16(frame[12:], header.EtherTypeIPv4)
	if l2 == 18 {
		binary.BigEndian.PutUint16(frame[12:], header.EtherTypeVLAN)
		binary.BigEndian.PutUint16(frame[16:], header.EtherTypeIPv4)
	}
	ip := frame[l2:]
	ip[0] = 0x40 | byte(hl/4)
	ip[1] = 0x10
	binary.BigEndian.PutUint16(ip[2:], uint16(hl+payload))
	binary.BigEndian.PutUint16(ip[4:], 0xbeef)
	binary.BigEndian.PutUint16(ip[6:], flags)
	ip[8], ip[9] = 63, header.ProtoUDP
	copy(ip[12:], []byte{10, 0, 0, 1})
	copy(ip[16:], []byte{10, 0, 0, 2})
	copy(ip[header.IPv4MinSize:], opts)
	for i := range payload {
		ip[hl+i] = byte(i*7 + i>>8)
	}
	header.IPv4(ip).UpdateChecksum()
	return frame
}

// fragments runs fr to the end and returns copies of the fragments.
func fragments(t testing.TB, fr *modes.Fragmenter) [][]byte {
	t.Helper()
	want := fr.Count()
	buf := make([]byte, fr.MaxLen())
	if fr.Next(buf[:len(buf)-1]) != 0 {
		t.Fatal("Next wrote into a buffer shorter than MaxLen")
	}
	var out [][]byte
	for {
		n := fr.Next(buf)
		if n == 0 {
			break
		}
		out = append(out, bytes.Clone(buf[:n]))
		if len(out) > want {
			t.Fatalf("more fragments than Count %d", want)
		}
	}
	if len(out) != want {
		t.Fatalf("%d fragments, Count said %d", len(out), want)
	}
	return out
}

// reassembleV4 checks the IPv4 fragments of orig (l3: its L2 length) for
// mtu and reassembles them: every fragment carries the link-layer header,
// the ID, a valid checksum, fits mtu, has an 8-byte-aligned offset and MF
// on all but the last; the first keeps every option, the others those
// with the copy flag, the rest NOP. It returns the reassembled packet.
func reassembleV4(t testing.TB, orig []byte, l2, mtu int, frags [][]byte) []byte {
	t.Helper()
	oip := header.IPv4(orig[l2:])
	hl := oip.HeaderLen()
	data := make([]byte, int(oip.TotalLen())-hl)
	next := 0
	for i, f := range frags {
		if !bytes.Equal(f[:l2], orig[:l2]) {
			t.Fatalf("fragment %d: link-layer header changed", i)
		}
		ip := header.IPv4(f[l2:])
		if !ip.IsValid() || int(ip.TotalLen()) != len(ip) || !ip.ChecksumValid() {
			t.Fatalf("fragment %d: bad header (len %d total %d)", i, len(ip), ip.TotalLen())
		}
		if len(ip) > mtu {
			t.Fatalf("fragment %d: %d bytes > MTU %d", i, len(ip), mtu)
		}
		if ip.ID() != oip.ID() || ip.HeaderLen() != hl || ip.TTL() != oip.TTL() || ip.Protocol() != oip.Protocol() {
			t.Fatalf("fragment %d: header fields changed", i)
		}
		ff := ip.FlagsFrag()
		off := int(ff&header.IPv4FragOffMask) * 8
		last := i == len(frags)-1
		if off != next || (ff&header.IPv4FlagMF != 0) == last || ff&header.IPv4FlagDF != 0 {
			t.Fatalf("fragment %d: flags/offset %#04x, want offset %d last %v", i, ff, next, last)
		}
		if !last && (len(ip)-hl)%8 != 0 {
			t.Fatalf("fragment %d: %d data bytes, not a multiple of 8", i, len(ip)-hl)
		}
		opts, oopts := ip[header.IPv4MinSize:hl], oip[header.IPv4MinSize:hl]
		if i == 0 && !bytes.Equal(opts, oopts) {
			t.Fatalf("first fragment: options % x, want % x", opts, oopts)
		}
		if i > 0 {
			checkLaterOptions(t, oopts, opts)
		}
		next += copy(data[off:], ip[hl:])
	}
	if next != len(data) {
		t.Fatalf("reassembled %d bytes, want %d", next, len(data))
	}
	return data
}

// checkLaterOptions checks the options of a fragment after the first:
// copied options as they were, the others NOP.
func checkLaterOptions(t testing.TB, orig, got []byte) {
	t.Helper()
	for i := 0; i < len(orig); {
		typ := orig[i]
		if typ == 0 {
			if !bytes.Equal(got[i:], orig[i:]) {
				t.Fatalf("options after end of list changed")
			}
			return
		}
		l := 1
		if typ != 1 {
			if i+1 >= len(orig) || orig[i+1] < 2 || i+int(orig[i+1]) > len(orig) {
				// Malformed: the rest is left as it is.
				if !bytes.Equal(got[i:], orig[i:]) {
					t.Fatalf("options after a malformed one changed")
				}
				return
			}
			l = int(orig[i+1])
		}
		want := orig[i : i+l]
		if typ != 1 && typ&0x80 == 0 {
			want = bytes.Repeat([]byte{1}, l)
		}
		if !bytes.Equal(got[i:i+l], want) {
			t.Fatalf("option %#x at %d: % x, want % x", typ, i, got[i:i+l], want)
		}
		i += l
	}
}

func TestFragmenterIPv4(t *testing.T) {
	// Record route (7, not copied), security-like option 0x82 (copied),
	// NOP, end of list: 20 bytes of options.
	opts := []byte{
		7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, // record route, not copied
		0x82, 4, 0xaa, 0xbb, // copied
		1,          // NOP
		0, 0, 0, 0, // end of list, padding
	}
	for _, tc := range []struct {
		name     string
		l2       int
		opts     []byte
		payload  int
		mtu      int
		wantFrag int
	}{
		{"3028 to 1500", 14, nil, 3008, 1500, 3},
		{"fits", 14, nil, 1000, 1500, 1},
		{"exactly mtu", 14, nil, 1480, 1500, 1},
		{"one over", 14, nil, 1481, 1500, 2},
		{"odd mtu", 14, nil, 4001, 1003, 5},
		{"options", 14, opts, 2999, 1500, 3},
		{"vlan and options", 18, opts, 5000, 576, 10},
		{"minimum mtu", 14, nil, 200, 68, 5},
		{"no payload", 14, nil, 0, 68, 1},
		{"64k", 14, nil, 65515, 9000, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frame := ipv4Packet(tc.l2, tc.opts, tc.payload, 0)
			var fr modes.Fragmenter
			if !fr.InitIPv4(frame, tc.l2, tc.mtu, false) {
				t.Fatal("InitIPv4 refused")
			}
			frags := fragments(t, &fr)
			if len(frags) != tc.wantFrag {
				t.Errorf("%d fragments, want %d", len(frags), tc.wantFrag)
			}
			data := reassembleV4(t, frame, tc.l2, tc.mtu, frags)
			hl := header.IPv4MinSize + len(tc.opts)
			if !bytes.Equal(data, frame[tc.l2+hl:]) {
				t.Fatal("reassembled data differs from the original")
			}
		})
	}
}

func TestFragmenterIPv4FlagsKept(t *testing.T) {
	// A non-last fragment at offset 800, with DF: the fragments continue
	// its offsets and all keep MF; keepDF keeps DF.
	frame := ipv4Packet(14, nil, 2000, header.IPv4FlagMF|header.IPv4FlagDF|100)
	var fr modes.Fragmenter
	if !fr.InitIPv4(frame, 14, 1500, true) {
		t.Fatal("InitIPv4 refused")
	}
	frags := fragments(t, &fr)
	if len(frags) != 2 {
		t.Fatalf("%d fragments", len(frags))
	}
	for i, f := range frags {
		ff := header.IPv4(f[14:]).FlagsFrag()
		want := uint16(header.IPv4FlagMF | header.IPv4FlagDF | (100 + i*1480/8))
		if ff != want {
			t.Errorf("fragment %d: %#04x, want %#04x", i, ff, want)
		}
	}
}

func TestFragmenterRefuses(t *testing.T) {
	var fr modes.Fragmenter
	frame := ipv4Packet(14, nil, 100, 0)
	if fr.InitIPv4(frame, 14, 27, false) {
		t.Error("MTU leaving 7 bytes of data accepted")
	}
	if fr.Next(make([]byte, 2000)) != 0 || fr.Count() != 0 {
		t.Error("a refused Fragmenter writes fragments")
	}
	if fr.InitIPv4(frame[:50], 14, 1500, false) {
		t.Error("truncated packet accepted")
	}
	if fr.InitIPv4(frame, 15, 1500, false) {
		t.Error("wrong L3 offset accepted")
	}
	v6 := ipv6Packet(nil, header.ProtoFragment, 100)
	if fr.InitIPv6(v6, 14, 1280, 1) {
		t.Error("IPv6 packet with a fragment header accepted")
	}
}

// ipv6Packet builds an Ethernet frame with an IPv6 packet whose
// extension headers are ext (each given as next-header value, then its
// bytes with the length byte set), followed by payload bytes of proto.
func ipv6Packet(ext [][]byte, proto uint8, payload int) []byte {
	n := 0
	for _, e := range ext {
		n += len(e) - 1
	}
	frame := make([]byte, 14+header.IPv6Size+n+payload)
	binary.BigEndian.PutUint16(frame[12:], header.EtherTypeIPv6)
	ip := frame[14:]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(n+payload))
	ip[7] = 64
	ip[8], ip[23] = 0x20, 1
	ip[24], ip[39] = 0x20, 2
	nhOff, off := 6, header.IPv6Size
	for _, e := range ext {
		ip[nhOff] = e[0]
		copy(ip[off:], e[1:])
		nhOff = off
		off += len(e) - 1
	}
	ip[nhOff] = proto
	for i := range payload {
		ip[off+i] = byte(i*13 + 1)
	}
	return frame
}

// extHdr returns an extension header of type typ and 8*(1+l) bytes.
func extHdr(typ uint8, l int) []byte {
	b := make([]byte, 1+8*(l+1))
	b[0] = typ
	b[2] = byte(l)
	for i := 3; i < len(b); i++ {
		b[i] = typ + byte(i)
	}
	return b
}

func TestFragmenterIPv6(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ext     [][]byte
		unfrag  int // extension-header bytes in the unfragmentable part
		payload int
		mtu     int
		want    int
	}{
		{"plain", nil, 0, 3000, 1500, 3},
		{"fits", nil, 0, 1000, 1500, 1},
		{"hop-by-hop and destination", [][]byte{extHdr(0, 0), extHdr(60, 1)}, 24, 2999, 1280, 3},
		{"routing then destination", [][]byte{extHdr(0, 0), extHdr(43, 0), extHdr(60, 2)}, 16, 5001, 1500, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frame := ipv6Packet(tc.ext, header.ProtoUDP, tc.payload)
			var fr modes.Fragmenter
			if !fr.InitIPv6(frame, 14, tc.mtu, 0xdeadbeef) {
				t.Fatal("InitIPv6 refused")
			}
			frags := fragments(t, &fr)
			if len(frags) != tc.want {
				t.Errorf("%d fragments, want %d", len(frags), tc.want)
			}
			got := reassembleV6(t, frame, tc.unfrag, tc.mtu, 0xdeadbeef, frags)
			if !bytes.Equal(got, frame) {
				t.Fatal("reassembled packet differs from the original")
			}
		})
	}
}

// reassembleV6 checks IPv6 fragments (unfrag bytes of extension headers
// before the fragment header) and rebuilds the original frame from them,
// as RFC 8200 section 4.5 reassembles.
func reassembleV6(t testing.TB, orig []byte, unfrag, mtu int, id uint32, frags [][]byte) []byte {
	t.Helper()
	h := 14 + header.IPv6Size + unfrag
	var out []byte
	next := 0
	var nh uint8
	for i, f := range frags {
		ip := f[14:]
		if len(ip) > mtu || int(binary.BigEndian.Uint16(ip[4:]))+header.IPv6Size != len(ip) {
			t.Fatalf("fragment %d: %d bytes, payload length %d, MTU %d", i, len(ip), binary.BigEndian.Uint16(ip[4:]), mtu)
		}
		fh := f[h : h+8]
		word := binary.BigEndian.Uint16(fh[2:])
		last := i == len(frags)-1
		if int(word&0xfff8) != next || (word&1 != 0) == last || binary.BigEndian.Uint32(fh[4:]) != id {
			t.Fatalf("fragment %d: offset word %#04x id %#x, want offset %d", i, word, binary.BigEndian.Uint32(fh[4:]), next)
		}
		// The header before the fragment header points at it.
		nhOff := 14 + 6
		if unfrag > 0 {
			for o := 14 + header.IPv6Size; o < h; o += (int(f[o+1]) + 1) * 8 {
				nhOff = o
			}
		}
		if f[nhOff] != header.ProtoFragment {
			t.Fatalf("fragment %d: next header %d before the fragment header", i, f[nhOff])
		}
		if i == 0 {
			nh = fh[0]
			out = append(out, f[:h]...)
			out[nhOff] = nh
		} else if fh[0] != nh || !bytes.Equal(f[:18], orig[:18]) || !bytes.Equal(f[20:nhOff], orig[20:nhOff]) {
			t.Fatalf("fragment %d: unfragmentable part differs", i)
		}
		if !last && (len(f)-h-8)%8 != 0 {
			t.Fatalf("fragment %d: data not a multiple of 8", i)
		}
		out = append(out, f[h+8:]...)
		next += len(f) - h - 8
	}
	binary.BigEndian.PutUint16(out[14+4:], uint16(len(out)-14-header.IPv6Size))
	return out
}

func TestFragmenterNoAllocs(t *testing.T) {
	v4 := ipv4Packet(14, []byte{0x82, 4, 1, 2}, 8000, 0)
	v6 := ipv6Packet([][]byte{extHdr(0, 0)}, header.ProtoUDP, 8000)
	buf := make([]byte, 2000)
	var fr modes.Fragmenter
	allocs := testing.AllocsPerRun(100, func() {
		fr.InitIPv4(v4, 14, 1500, false)
		for fr.Next(buf) > 0 {
		}
		fr.InitIPv6(v6, 14, 1500, 7)
		for fr.Next(buf) > 0 {
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run", allocs)
	}
}

func BenchmarkFragmenterIPv4(b *testing.B) {
	v4 := ipv4Packet(14, nil, 8952, 0)
	buf := make([]byte, 2000)
	var fr modes.Fragmenter
	b.ReportAllocs()
	b.SetBytes(int64(len(v4)))
	for b.Loop() {
		fr.InitIPv4(v4, 14, 1500, false)
		for fr.Next(buf) > 0 {
		}
	}
}

// FuzzFragmenter: whatever the bytes and MTU, the Fragmenter never
// panics, and when it accepts an IPv4 packet its fragments reassemble to
// the original.
func FuzzFragmenter(f *testing.F) {
	f.Add(ipv4Packet(14, nil, 3008, 0), uint16(1500), false)
	f.Add(ipv4Packet(18, []byte{7, 7, 4, 0, 0, 0, 0, 0x83, 3, 1, 1, 0}, 999, 0), uint16(100), false)
	f.Add(ipv4Packet(14, []byte{7, 200, 0, 0}, 300, 0), uint16(68), false)
	f.Add(ipv6Packet([][]byte{extHdr(0, 0), extHdr(43, 1)}, header.ProtoUDP, 3000), uint16(1280), true)
	f.Add(ipv6Packet([][]byte{extHdr(60, 0)}, header.ProtoTCP, 100), uint16(60), true)
	f.Fuzz(func(t *testing.T, frame []byte, mtu uint16, v6 bool) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("mtu %d v6 %t, %d bytes %.200q", mtu, v6, len(frame), frame) })()
		var fr modes.Fragmenter
		l2 := 14
		if len(frame) >= 18 && binary.BigEndian.Uint16(frame[12:]) == header.EtherTypeVLAN {
			l2 = 18
		}
		if v6 {
			if fr.InitIPv6(frame, l2, int(mtu), 1) {
				for _, fg := range fragments(t, &fr) {
					if len(fg)-l2 > int(mtu) {
						t.Fatalf("fragment of %d bytes > MTU %d", len(fg)-l2, mtu)
					}
				}
			}
			return
		}
		if !fr.InitIPv4(frame, l2, int(mtu), false) {
			return
		}
		frags := fragments(t, &fr)
		ip := header.IPv4(frame[l2:])
		hl := ip.HeaderLen()
		if ip.FlagsFrag()&(header.IPv4FragOffMask|header.IPv4FlagMF) != 0 {
			return // a fragment itself: offsets continue, checked elsewhere
		}
		orig := frame[:l2+int(ip.TotalLen())]
		data := reassembleV4(t, orig, l2, int(mtu), frags)
		if !bytes.Equal(data, orig[l2+hl:]) {
			t.Fatalf("reassembled data differs (%d fragments)", len(frags))
		}
	})
}
