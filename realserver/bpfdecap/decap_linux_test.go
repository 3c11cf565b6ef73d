package bpfdecap_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/internal/fuzzwatch"
	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/realserver"
	"github.com/uvs-lb/uvs/realserver/bpfdecap"
)

var (
	local = netip.MustParseAddr("10.9.0.2")   // the real server's address
	vip   = netip.MustParseAddr("192.0.2.80") // its VIP
	other = netip.MustParseAddr("10.9.0.77")  // neither
)

// ipv4 writes a 20-byte IPv4 header (with a valid checksum) into b.
func ipv4(b []byte, tos byte, total int, frag uint16, proto byte, src, dst netip.Addr) {
	b[0], b[1] = 0x45, tos
	binary.BigEndian.PutUint16(b[2:], uint16(total))
	binary.BigEndian.PutUint16(b[4:], 0x1234)
	binary.BigEndian.PutUint16(b[6:], frag)
	b[8], b[9] = 64, proto
	b[10], b[11] = 0, 0
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	binary.BigEndian.PutUint16(b[10:], ^header.Checksum(b[:20], 0))
}

// frame is an IPIP frame: Ethernet, outer IPv4 (outerDst), inner IPv4
// (innerDst) carrying payload bytes of UDP, and pad bytes after it.
func frame(tos, innerTOS byte, outerDst, innerDst netip.Addr, payload, pad int) []byte {
	inner := 20 + 8 + payload
	b := make([]byte, 14+20+inner+pad)
	copy(b, []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00})
	ipv4(b[14:], tos, 20+inner, 0, 4, netip.MustParseAddr("10.9.0.1"), outerDst)
	ipv4(b[34:], innerTOS, inner, 0x4000, 17, netip.MustParseAddr("198.51.100.7"), innerDst)
	binary.BigEndian.PutUint16(b[54:], 40000)
	binary.BigEndian.PutUint16(b[56:], 53)
	binary.BigEndian.PutUint16(b[58:], uint16(8+payload))
	for i := 62; i < 34+inner; i++ {
		b[i] = byte(i)
	}
	return b
}

// want returns what the kernel path does with f: the frame the program
// should leave and whether it decapsulates. It decapsulates exactly the
// frames user-space decapsulation (realserver.DecapIPIP) accepts for a VIP
// in an outer packet to a local address, except those it leaves to user
// space on purpose: outer or inner IP options, outer CE, an inner IPv4
// header whose checksum is wrong (the kernel's ip_rcv drops those after it).
func want(f []byte, isLocal, isVIP func(netip.Addr) bool) ([]byte, bool) {
	if len(f) < 54 || binary.BigEndian.Uint16(f[12:]) != 0x0800 || f[14] != 0x45 || f[34] != 0x45 || f[15]&3 == 3 {
		return f, false
	}
	if header.Checksum(f[14:34], 0) != 0xffff {
		return f, false
	}
	outerLen := int(binary.BigEndian.Uint16(f[16:]))
	if outerLen < 40 || 14+outerLen > len(f) {
		return f, false
	}
	innerLen := int(binary.BigEndian.Uint16(f[36:]))
	if innerLen < 20 || innerLen > outerLen-20 {
		return f, false
	}
	if !isLocal(netip.AddrFrom4([4]byte(f[30:34]))) || !isVIP(netip.AddrFrom4([4]byte(f[50:54]))) {
		return f, false
	}
	pkt := bytes.Clone(f[14 : 14+outerLen])
	in, r := realserver.DecapIPIP(pkt)
	if r == realserver.ReasonInnerChecksum {
		// The program leaves the inner header to ip_rcv.
	} else if r != realserver.ReasonOK {
		return f, false
	} else if !bytes.Equal(in, f[34:34+innerLen]) {
		panic("DecapIPIP changed an inner packet without outer CE")
	}
	out := append(append(bytes.Clone(f[:12]), 0x08, 0x00), f[34:]...)
	return out, true
}

// runMin is the shortest frame bpf_prog_test_run_skb takes with any
// EtherType (an IPv4 one needs its header): the program passes every frame
// shorter than 54 bytes before it reads anything but the skb's length.
// runMax stays under the longest it takes (a page less the skb's head and
// tail room).
const (
	runMin = 14 + 20
	runMax = 3000
)

func load(t testing.TB) *bpfdecap.Decap {
	t.Helper()
	netnstest.SkipIfNotRoot(t)
	d, err := bpfdecap.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	if err := d.SetAddrs([]netip.Addr{local, vip}, []netip.Addr{vip, netip.MustParseAddr("2001:db8::1")}); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDecapAsUserSpace: random IPIP frames, most of them decapsulable,
// the rest each wrong in one way; the program decapsulates exactly those
// user space would, leaving the same inner packet behind the frame's MACs,
// and passes every other frame unchanged.
func TestDecapAsUserSpace(t *testing.T) {
	d := load(t)
	isLocal := func(a netip.Addr) bool { return a == local || a == vip }
	isVIP := func(a netip.Addr) bool { return a == vip }
	rng := rand.New(rand.NewPCG(1, 2))
	took := 0
	for i := range 2000 {
		tos, innerTOS := byte(rng.IntN(256))&^3|byte(rng.IntN(3)), byte(rng.IntN(256))
		outerDst, innerDst := local, vip
		pad := 0
		if rng.IntN(4) == 0 {
			pad = rng.IntN(20)
		}
		f := frame(tos, innerTOS, outerDst, innerDst, rng.IntN(1400), pad)
		switch rng.IntN(32) {
		case 0:
			f = frame(tos, innerTOS, other, innerDst, rng.IntN(100), pad)
		case 1:
			f = frame(tos, innerTOS, outerDst, other, rng.IntN(100), pad)
		case 2:
			f = frame(tos, innerTOS, vip, vip, rng.IntN(100), pad) // outer to the VIP: local too
		case 3:
			f[14+rng.IntN(20)] ^= byte(1 + rng.IntN(255)) // damaged outer header
		case 4:
			f[34+rng.IntN(20)] ^= byte(1 + rng.IntN(255)) // damaged inner header
		case 5:
			binary.BigEndian.PutUint16(f[20:], uint16(rng.IntN(0x4000))|0x2000) // a fragment
			fixOuter(f)
		case 6:
			f[23] = []byte{41, 47, 17}[rng.IntN(3)]
			fixOuter(f)
		case 7:
			f[12], f[13] = 0x81, 0x00 // 802.1Q
		case 8:
			binary.BigEndian.PutUint16(f[16:], uint16(rng.IntN(len(f)+40))) // outer length anything
			fixOuter(f)
		case 9:
			binary.BigEndian.PutUint16(f[36:], uint16(rng.IntN(len(f)+40))) // inner length anything
			fixInner(f)
		case 10:
			f = f[:14+rng.IntN(len(f)-14)] // cut short
		case 11:
			f[15] |= 3 // outer CE: RFC 6040 is the user-space path's
			fixOuter(f)
		}
		wantOut, wantTook := want(f, isLocal, isVIP)
		if len(f) < runMin {
			continue
		}
		out, ok, err := d.Run(bytes.Clone(f))
		if err != nil {
			t.Fatalf("frame %d (%x): %v", i, f, err)
		}
		if ok != wantTook || !bytes.Equal(out, wantOut) {
			t.Fatalf("frame %d (%x):\ngot  decapsulated %v %x\nwant decapsulated %v %x", i, f, ok, out, wantTook, wantOut)
		}
		if ok {
			took++
		}
	}
	st, err := d.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Packets != uint64(took) || took < 1000 {
		t.Fatalf("%d frames decapsulated, %d counted (want ≥ 1000, all counted)", took, st.Packets)
	}
	t.Logf("%d of 2000 frames decapsulated, %d inner bytes", took, st.Bytes)
}

// TestDecapFollowsAddrs: the map follows SetAddrs: a VIP removed is no
// longer decapsulated, a local address added is.
func TestDecapFollowsAddrs(t *testing.T) {
	d := load(t)
	f := frame(0, 0, other, vip, 10, 0)
	if _, ok, _ := d.Run(f); ok {
		t.Fatal("decapsulated a packet to a foreign outer address")
	}
	if err := d.SetAddrs([]netip.Addr{other}, []netip.Addr{vip}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := d.Run(f); !ok {
		t.Fatal("a packet to a new local address was not decapsulated")
	}
	if err := d.SetAddrs([]netip.Addr{other}, nil); err != nil {
		t.Fatal(err)
	}
	if out, ok, _ := d.Run(f); ok || !bytes.Equal(out, f) {
		t.Fatal("a packet to a removed VIP was decapsulated")
	}
}

// FuzzDecap: any frame, with its outer and inner destinations made local
// and a VIP or not as the input says: the program does what want says.
func FuzzDecap(f *testing.F) {
	f.Add(frame(0, 0, local, vip, 30, 0), byte(3))
	f.Add(frame(3, 1, local, vip, 0, 6), byte(3))
	f.Add(frame(2, 3, local, vip, 100, 0), byte(1))
	f.Add([]byte{1, 2, 3}, byte(0))
	d := load(f)
	f.Fuzz(func(t *testing.T, b []byte, which byte) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("%d bytes %.200q", len(b), b) })()
		var loc, vips []netip.Addr
		if len(b) >= 54 {
			if which&1 != 0 {
				loc = append(loc, netip.AddrFrom4([4]byte(b[30:34])))
			}
			if which&2 != 0 {
				vips = append(vips, netip.AddrFrom4([4]byte(b[50:54])))
			}
		}
		if err := d.SetAddrs(loc, vips); err != nil {
			t.Fatal(err)
		}
		in := func(s []netip.Addr) func(netip.Addr) bool {
			return func(a netip.Addr) bool {
				for _, x := range s {
					if x == a {
						return true
					}
				}
				return false
			}
		}
		wantOut, wantTook := want(b, in(loc), in(vips))
		if len(b) < runMin || len(b) > runMax {
			return
		}
		out, ok, err := d.Run(bytes.Clone(b))
		if err != nil {
			t.Fatal(err)
		}
		if ok != wantTook || !bytes.Equal(out, wantOut) {
			t.Fatalf("frame %x:\ngot  decapsulated %v %x\nwant decapsulated %v %x", b, ok, out, wantTook, wantOut)
		}
	})
}

func fixOuter(f []byte) { fixSum(f[14:34]) }
func fixInner(f []byte) { fixSum(f[34:54]) }

func fixSum(h []byte) {
	h[10], h[11] = 0, 0
	binary.BigEndian.PutUint16(h[10:], ^header.Checksum(h, 0))
}
