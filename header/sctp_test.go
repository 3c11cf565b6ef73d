package header_test

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/internal/fuzzwatch"
)

// sctpPacket is a common header (ports 1, 2, tag 0x01020304) and chunks.
func sctpPacket(chunks ...byte) []byte {
	return append([]byte{0, 1, 0, 2, 1, 2, 3, 4, 0, 0, 0, 0}, chunks...)
}

// TestSCTPChecksumVector: the CRC32c of RFC 3720 appendix B.4's 32 zero
// bytes is 0x8a9136aa (iSCSI uses the same CRC32c, stored the same way);
// with the checksum field inside those bytes taken as zero the result is
// the same whatever the field holds.
func TestSCTPChecksumVector(t *testing.T) {
	p := make([]byte, 32)
	if got := header.SCTPChecksum(p); got != 0x8a9136aa {
		t.Fatalf("CRC32c of 32 zero bytes = %#08x, want 0x8a9136aa", got)
	}
	header.SetSCTPChecksum(p, 0xdeadbeef)
	if got := header.SCTPChecksum(p); got != 0x8a9136aa {
		t.Fatalf("the field entered the sum: %#08x", got)
	}
	if header.SCTPChecksumOK(p) {
		t.Fatal("a wrong field verifies")
	}
	header.SetSCTPChecksum(p, header.SCTPChecksum(p))
	if !header.SCTPChecksumOK(p) || [4]byte(p[8:12]) != [4]byte{0xaa, 0x36, 0x91, 0x8a} {
		t.Fatalf("stored %x, want the CRC least significant byte first", p[8:12])
	}
}

func TestSCTPChunks(t *testing.T) {
	for _, tc := range []struct {
		name        string
		pkt         []byte
		first, next uint8
		ok, ok2     bool
	}{
		{"no chunk", sctpPacket(), 0, 0, false, false},
		{"short chunk header", sctpPacket(1, 0, 0), 0, 0, false, false},
		{"init", sctpPacket(1, 0, 0, 4), 1, 0, true, false},
		{"cookie echo alone", sctpPacket(10, 0, 0, 8, 9, 9, 9, 9), 10, 0, true, false},
		{"cookie echo + abort", sctpPacket(10, 0, 0, 5, 9, 0, 0, 0, 6, 0, 0, 4), 10, 6, true, true},
		{"cookie ack + data", sctpPacket(11, 0, 0, 4, 0, 3, 0, 16), 11, 0, true, true},
		{"cookie echo, bad length", sctpPacket(10, 0, 0, 3, 6, 0, 0, 4), 10, 0, true, false},
		{"cookie echo, length past end", sctpPacket(10, 0, 0xff, 0xff, 6, 0, 0, 4), 10, 0, true, false},
	} {
		first, ok, next, ok2 := header.SCTPChunks(tc.pkt)
		if first != tc.first || ok != tc.ok || next != tc.next || ok2 != tc.ok2 {
			t.Errorf("%s: got (%d %v %d %v), want (%d %v %d %v)", tc.name, first, ok, next, ok2, tc.first, tc.ok, tc.next, tc.ok2)
		}
	}
}

// FuzzSCTPChunks: chunk parsing and checksumming of arbitrary SCTP
// packets never panic, read only inside the packet, and a stored checksum
// verifies.
func FuzzSCTPChunks(f *testing.F) {
	f.Add(sctpPacket(1, 0, 0, 4))
	f.Add(sctpPacket(10, 0, 0, 5, 9, 0, 0, 0, 6, 0, 0, 4))
	f.Add(sctpPacket(11, 0, 0xff, 0xfc, 6))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("%d bytes %.200q", len(pkt), pkt) })()
		first, ok, next, ok2 := header.SCTPChunks(pkt)
		if ok != (len(pkt) >= header.SCTPHeaderSize+header.SCTPChunkSize) {
			t.Fatalf("ok = %v for %d bytes", ok, len(pkt))
		}
		if ok && first != pkt[header.SCTPHeaderSize] {
			t.Fatalf("first chunk %d, byte %d", first, pkt[header.SCTPHeaderSize])
		}
		if ok2 {
			clen := int(binary.BigEndian.Uint16(pkt[header.SCTPHeaderSize+2:]))
			if off := header.SCTPHeaderSize + (clen+3)&^3; off+header.SCTPChunkSize > len(pkt) || pkt[off] != next {
				t.Fatalf("next chunk %d not at %d", next, off)
			}
		}
		if len(pkt) >= header.SCTPHeaderSize {
			c := append([]byte(nil), pkt...)
			header.SetSCTPChecksum(c, header.SCTPChecksum(c))
			if !header.SCTPChecksumOK(c) {
				t.Fatal("a stored checksum does not verify")
			}
		}
	})
}
