package header_test

import (
	"fmt"
	"testing"

	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/internal/fuzzwatch"
)

// FuzzParse checks that Parse never panics, that every offset of an
// accepted frame lies within it, and that the builders and checksum
// helpers cope with whatever Parse accepted.
func FuzzParse(f *testing.F) {
	for _, tc := range parseCases {
		fr := tc.f.Frame(f)
		f.Add(fr)
		f.Add(fr[:len(fr)/2])
		f.Add(icmpErrorFrame(f, tc.f.V6, "172.16.0.1", tc.f.Src, fr[14:]))
	}
	f.Add([]byte{})
	f.Add(make([]byte, 14))
	out := make([]byte, 1600)
	f.Fuzz(func(t *testing.T, frame []byte) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("%d bytes %.200q", len(frame), frame) })()
		var p header.Parsed
		p.Parse(frame)
		if int(p.Reason) >= header.NumReasons {
			t.Fatalf("reason %d", p.Reason)
		}
		switch p.Kind {
		case header.KindIPv4, header.KindIPv6:
			if !(p.L2Len <= p.L3Off && p.L3Off < p.L4Off && p.L4Off <= p.PayloadOff && p.PayloadOff <= p.End && p.End <= len(frame)) {
				t.Fatalf("offsets out of order: l3 %d l4 %d pl %d end %d len %d", p.L3Off, p.L4Off, p.PayloadOff, p.End, len(frame))
			}
			if p.End != p.L3Off+p.IPLen {
				t.Fatalf("End %d != L3Off+IPLen %d", p.End, p.L3Off+p.IPLen)
			}
			if p.Reason == header.ReasonNone {
				_, _ = header.ComputeL4Checksum(frame, &p)
				_ = header.L4ChecksumValid(frame, &p)
			}
			if p.Inner.OK {
				in := p.Inner
				if !(p.PayloadOff <= in.L3Off && in.L3Off < in.L4Off && in.L4Off <= p.End) {
					t.Fatalf("inner offsets: %+v end %d", in, p.End)
				}
				if (in.Proto == header.ProtoTCP || in.Proto == header.ProtoUDP) && in.L4Off+4 > p.End {
					t.Fatalf("inner ports past end")
				}
			}
			if n := header.ICMPv4Error(out, frame, &p, [4]byte{1, 2, 3, 4}, 3, 3, 0); n > len(out) {
				t.Fatal("ICMPv4Error length")
			}
			if n := header.ICMPv6Error(out, frame, &p, [16]byte{1}, 1, 4, 0); n > len(out) {
				t.Fatal("ICMPv6Error length")
			}
			_ = header.NeighborAdvert(out, frame, &p, [6]byte{2}, false)
		case header.KindARP:
			if p.L3Off+header.ARPSize > len(frame) {
				t.Fatalf("arp past end")
			}
			b := append([]byte(nil), frame...)
			_ = header.ARPReplyInPlace(b, &p, [6]byte{2})
		case header.KindUnknown:
			if p.Reason == header.ReasonNone {
				t.Fatalf("unknown kind without a reason")
			}
		}
	})
}
