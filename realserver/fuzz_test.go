package realserver

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"testing"

	"github.com/gopacket/gopacket"

	"github.com/uvs-lb/uvs/internal/fuzzwatch"
)

// FuzzDecap feeds arbitrary bytes to every decapsulator (IPIP/GRE over
// IPv4, GUE, and the IPv6 raw-socket payloads). Whatever they
// accept must be a well-formed inner packet lying inside the input; they
// must never panic.
func FuzzDecap(f *testing.F) {
	v4, _ := ipip(f, 3, innerUDP4("seed", 2)...)
	v6, _ := ipip(f, 0, innerTCP6(0)...)
	g4, _ := gue(f, nil, 0, innerUDP4("seed", 0)...)
	g6, _ := gue(f, []byte{0, 0, 0, 0}, gueFlagPriv, innerTCP6(0)...)
	gre, _ := gre4(f, true, true, true, innerUDP4("seed", 0)...)
	gre6 := outer6Payload(f, 47, append([]gopacket.SerializableLayer{greLayer(true, false, false, true)}, innerTCP6(0)...)...)
	for _, s := range [][]byte{v4, v6, g4, g6, v4[:20], g4[:4], {}, {0x45}, {0x40, 0, 0, 0}, gre, gre6, v6[20:]} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("%d bytes %.200q", len(data), data) })()
		for _, kind := range []Encap{EncapIPIP, EncapGUE, EncapIPv6IPIP, EncapIPv6IPv6, EncapIPv6GRE} {
			orig := append([]byte(nil), data...)
			var inner []byte
			var r Reason
			switch kind {
			case EncapIPIP:
				inner, r = DecapIPIP(data)
			case EncapGUE:
				inner, r = DecapGUE(data)
			case EncapIPv6IPIP:
				inner, r = DecapIPv6Payload(ProtoIPIP, data)
			case EncapIPv6IPv6:
				inner, r = DecapIPv6Payload(ProtoIPv6, data)
			case EncapIPv6GRE:
				inner, r = DecapIPv6Payload(ProtoGRE, data)
			}
			if r >= NumReasons {
				t.Fatalf("%v: reason %d out of range", kind, r)
			}
			if r != ReasonOK {
				if inner != nil {
					t.Fatalf("%v: rejected (%v) but returned %d bytes", kind, r, len(inner))
				}
				continue
			}
			if len(inner) == 0 || cap(inner) > cap(data) || &inner[0] != &data[:cap(data)][cap(data)-cap(inner)] || len(inner) > len(data) {
				t.Fatalf("%v: inner is not a sub-slice of the input", kind)
			}
			switch inner[0] >> 4 {
			case 4:
				ihl := int(inner[0]&0x0f) * 4
				if ihl < 20 || int(binary.BigEndian.Uint16(inner[2:])) != len(inner) || ihl > len(inner) {
					t.Fatalf("%v: bad inner IPv4 accepted: %x", kind, inner)
				}
			case 6:
				if len(inner) < 40 || 40+int(binary.BigEndian.Uint16(inner[4:])) != len(inner) {
					t.Fatalf("%v: bad inner IPv6 accepted: %x", kind, inner)
				}
			default:
				t.Fatalf("%v: inner version %d accepted", kind, inner[0]>>4)
			}
			copy(data, orig) // ECN propagation may have changed the inner header
		}
	})
}

// FuzzGRO feeds up to 8 inner packets (cut from the input by 2-byte length
// prefixes, each validated as the decapsulator does) to the coalescer. Cut
// again (resegment) its frames must give back exactly the packets given,
// each flow in its order; it must never panic.
func FuzzGRO(f *testing.F) {
	seeds := [][]seg{
		train(seg{sport: 1, seq: 5, ack: 9, id: 3, ts: 7}, 4, 100),
		train(seg{sport: 1, seq: 5, ack: 9, v6: true}, 3, 64),
		{{sport: 1, seq: 5, ack: 9, n: 10}, {sport: 1, seq: 15, ack: 9, n: 10, id: 1, psh: true}, {sport: 2, seq: 1, ack: 1, n: 3}},
		{{sport: 1, seq: 5, ack: 9, n: 10}, {sport: 1, seq: 15, ack: 9, n: 10, fin: true, id: 1}},
	}
	for _, ss := range seeds {
		var in []byte
		for _, s := range ss {
			p := s.build(f)
			in = binary.BigEndian.AppendUint16(in, uint16(len(p)))
			in = append(in, p...)
		}
		f.Add(in)
	}
	f.Add([]byte{0, 1, 0x45})
	merged, _ := kernelMergedPkt(f, seg{sport: 1, seq: 5, ack: 9, ts: 7}, 3, 700)
	f.Add(append(binary.BigEndian.AppendUint16(nil, uint16(len(merged))), merged...))
	f.Fuzz(func(t *testing.T, data []byte) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("%d bytes %.200q", len(data), data) })()
		var pkts [][]byte
		for len(data) >= 2 && len(pkts) < 8 {
			n := int(binary.BigEndian.Uint16(data))
			data = data[2:]
			if n > len(data) {
				break
			}
			p := data[:n]
			data = data[n:]
			if len(p) == 0 {
				continue
			}
			v := byte(4)
			if p[0]>>4 == 6 {
				v = 6
			}
			inner, r := validateInner(bytes.Clone(p), v)
			if r != ReasonOK {
				continue
			}
			if kernelMerged(&groItem{}, inner) {
				// Written on its own with NEEDS_CSUM: completing the
				// checksum (and cutting it at gso_size) must give
				// back exactly its bytes and headers.
				checkKernelMerged(t, inner)
				continue
			}
			pkts = append(pkts, inner)
		}
		if len(pkts) == 0 {
			return
		}
		frames, segs := runGRO(t, pkts)
		var back [][]byte
		for i, fr := range frames {
			// IPv4 IDs of a super-frame either increased or (DF) stayed
			// fixed: the frame does not say which, so try both.
			got := resegment(t, fr, false)
			if !allIn(got, pkts) {
				got = resegment(t, fr, true)
			}
			if len(got) != segs[i] {
				t.Fatalf("frame %d said %d segments, cuts into %d", i, segs[i], len(got))
			}
			back = append(back, got...)
		}
		if len(back) != len(pkts) {
			t.Fatalf("%d packets in, %d out", len(pkts), len(back))
		}
		// Each output packet is an input packet; per flow (same
		// addresses and ports) the order is the input's.
		used := make([]bool, len(pkts))
		for _, b := range back {
			found := false
			for j, p := range pkts {
				if !used[j] && bytes.Equal(b, p) {
					for k := range j {
						if !used[k] && sameFlow(pkts[k], p) {
							t.Fatalf("packet %d overtook packet %d of its flow", j, k)
						}
					}
					used[j], found = true, true
					break
				}
			}
			if !found {
				t.Fatalf("output packet %x is none of the inputs", b[:min(len(b), 60)])
			}
		}
	})
}

// checkKernelMerged runs one packet taken for a kernel-merged one through
// a coalescer and checks its frame: NEEDS_CSUM at the TCP checksum, and
// the packet with its checksum completed is the input but for that field
// (and, segmented, carries the same payload in segments of at most the
// MTU).
func checkKernelMerged(t *testing.T, pkt []byte) {
	t.Helper()
	frames, segs := runGRO(t, [][]byte{pkt})
	if len(frames) != 1 || segs[0] != 1 {
		t.Fatalf("kernel-merged packet gave %d frames", len(frames))
	}
	fr := frames[0]
	ihl := 20
	if pkt[0]>>4 == 6 {
		ihl = 40
	}
	if fr[0] != vnetNeedsCsum || binary.NativeEndian.Uint16(fr[6:]) != uint16(ihl) || binary.NativeEndian.Uint16(fr[8:]) != 16 {
		t.Fatalf("kernel-merged frame's vnet header %x", fr[:vnetHdrLen])
	}
	got := complete(fr)
	if !bytes.Equal(got[:ihl+16], pkt[:ihl+16]) || !bytes.Equal(got[ihl+18:], pkt[ihl+18:]) {
		t.Fatalf("completed frame differs from the input beyond the checksum")
	}
	if !tcpChecksumOK(got, ihl, ihl == 40) {
		t.Fatalf("completed frame's checksum is wrong")
	}
	for _, s := range resegment(t, fr, true) {
		if len(s) > defaultMTU && fr[1] != 0 {
			t.Fatalf("segment of %d bytes", len(s))
		}
	}
}

// sameFlow reports whether two validated packets have the same IP version,
// addresses and (when long enough) first 4 transport bytes.
func sameFlow(a, b []byte) bool {
	if a[0]>>4 != b[0]>>4 {
		return false
	}
	lo, hi := 12, 20
	if a[0]>>4 == 6 {
		lo, hi = 8, 40
	}
	if !bytes.Equal(a[lo:hi], b[lo:hi]) {
		return false
	}
	ia, ib := hi, hi
	if a[0]>>4 == 4 {
		ia, ib = int(a[0]&0xf)*4, int(b[0]&0xf)*4
	}
	if len(a) < ia+4 || len(b) < ib+4 {
		return true
	}
	return bytes.Equal(a[ia:ia+4], b[ib:ib+4])
}

// allIn reports whether every packet of got is one of pkts.
func allIn(got, pkts [][]byte) bool {
	for _, g := range got {
		if !slices.ContainsFunc(pkts, func(p []byte) bool { return bytes.Equal(g, p) }) {
			return false
		}
	}
	return true
}
