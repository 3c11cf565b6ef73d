package header_test

import (
	"encoding/binary"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/uvs-lb/uvs/header"
)

// slowChecksum is the textbook RFC 1071 loop over 16-bit words, the
// reference for the 64-bit implementation.
func slowChecksum(b []byte, initial uint16) uint16 {
	s := uint32(initial)
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

func TestChecksumMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 2000)
	for i := range 5000 {
		n := r.IntN(len(buf))
		if i < 70 {
			n = i // every short length, all tail paths
		}
		b := buf[:n]
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		if i%7 == 0 {
			for j := range b {
				b[j] = 0xff // carry-heavy input
			}
		}
		init := uint16(r.Uint32())
		if got, want := header.Checksum(b, init), slowChecksum(b, init); got != want {
			t.Fatalf("len %d init %#x: got %#x want %#x", n, init, got, want)
		}
	}
}

// TestIncrementalMatchesFull changes words and addresses of random data and
// checks that the RFC 1624 update gives the checksum a full recomputation
// gives.
func TestIncrementalMatchesFull(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, 64)
	for range 20000 {
		for j := range data {
			data[j] = byte(r.Uint32())
		}
		check := ^header.Checksum(data, 0)
		switch r.IntN(3) {
		case 0:
			i := 2 * r.IntN(len(data)/2)
			old := binary.BigEndian.Uint16(data[i:])
			nw := uint16(r.Uint32())
			binary.BigEndian.PutUint16(data[i:], nw)
			check = header.UpdateChecksum16(check, old, nw)
		case 1, 2:
			n := 4
			if r.IntN(2) == 0 {
				n = 16
			}
			i := 2 * r.IntN((len(data)-n)/2)
			old := append([]byte(nil), data[i:i+n]...)
			nw := make([]byte, n)
			for j := range nw {
				nw[j] = byte(r.Uint32())
			}
			check = header.UpdateChecksumAddr(check, old, nw)
			copy(data[i:], nw)
		}
		if want := ^header.Checksum(data, 0); check != want {
			t.Fatalf("incremental %#x full %#x", check, want)
		}
		// And the packet verifies.
		if header.CombineChecksums(header.Checksum(data, 0), check) != 0xffff {
			t.Fatalf("does not verify")
		}
	}
}

func TestUDPChecksumValue(t *testing.T) {
	if header.UDPChecksumValue(0) != 0xffff || header.UDPChecksumValue(0x1234) != 0x1234 || header.UDPChecksumValue(0xffff) != 0xffff {
		t.Fatal("UDP zero rule")
	}
}

func TestPseudoHeader(t *testing.T) {
	src, dst := []byte{10, 0, 0, 1}, []byte{10, 0, 0, 2}
	// Build the pseudo-header bytes explicitly (RFC 768) and sum them.
	ph := append(append(append([]byte(nil), src...), dst...), 0, 17, 0x01, 0x02)
	if got, want := header.PseudoHeaderChecksum(17, src, dst, 0x0102), slowChecksum(ph, 0); got != want {
		t.Fatalf("v4 %#x want %#x", got, want)
	}
	s6, d6 := make([]byte, 16), make([]byte, 16)
	for i := range s6 {
		s6[i], d6[i] = byte(i*13), byte(255-i)
	}
	ph6 := append(append(append([]byte(nil), s6...), d6...), 0, 1, 0, 2, 0, 0, 0, 6) // length 0x10002, next header 6
	if got, want := header.PseudoHeaderChecksum(6, s6, d6, 0x10002), slowChecksum(ph6, 0); got != want {
		t.Fatalf("v6 %#x want %#x", got, want)
	}
}

func TestChecksumNoAllocs(t *testing.T) {
	b := make([]byte, 1500)
	old, nw := make([]byte, 16), make([]byte, 16)
	nw[3] = 9
	var sink uint16
	if n := testing.AllocsPerRun(100, func() {
		sink += header.Checksum(b, 0)
		sink += header.UpdateChecksum16(sink, 1, 2)
		sink += header.UpdateChecksumAddr(sink, old, nw)
		sink += header.UpdateChecksumAddr(sink, old[:4], nw[:4])
		sink += header.PseudoHeaderChecksum(6, old, nw, 1000)
	}); n != 0 {
		t.Fatalf("allocates %v", n)
	}
	_ = sink
}

func BenchmarkChecksum(b *testing.B) {
	for _, n := range []int{20, 64, 1500} {
		buf := make([]byte, n)
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			var s uint16
			for b.Loop() {
				s += header.Checksum(buf, s)
			}
		})
	}
}

func BenchmarkUpdateChecksumAddr16(b *testing.B) {
	old, nw := make([]byte, 16), make([]byte, 16)
	b.ReportAllocs()
	var s uint16
	for b.Loop() {
		s = header.UpdateChecksumAddr(s, old, nw)
		nw[0]++
	}
}
