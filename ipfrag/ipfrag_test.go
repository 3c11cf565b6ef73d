package ipfrag_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/internal/fuzzwatch"
	"github.com/uvs-lb/uvs/ipfrag"
)

// datagram returns an Ethernet frame holding one UDP datagram of n payload
// bytes from src to dst (IPv4 or IPv6 by the addresses), not fragmented.
func datagram(t testing.TB, src, dst string, n int, seed byte) []byte {
	t.Helper()
	payload := make([]byte, n)
	for i := range payload {
		payload[i] = seed + byte(i*7)
	}
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}}
	udp := &layers.UDP{SrcPort: 40000, DstPort: 53}
	var ip gopacket.SerializableLayer
	if s := net.ParseIP(src); s.To4() == nil {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: s, DstIP: net.ParseIP(dst)}
		if err := udp.SetNetworkLayerForChecksum(ip6); err != nil {
			t.Fatal(err)
		}
		ip = ip6
	} else {
		eth.EthernetType = layers.EthernetTypeIPv4
		ip4 := &layers.IPv4{Version: 4, TTL: 64, Id: 0x1234, Protocol: layers.IPProtocolUDP, SrcIP: s, DstIP: net.ParseIP(dst)}
		if err := udp.SetNetworkLayerForChecksum(ip4); err != nil {
			t.Fatal(err)
		}
		ip = ip4
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// split cuts the IP datagram of frame (Ethernet, no VLAN) into fragments
// whose data parts are at most size bytes (a multiple of 8), IPv6 with
// identification id, as a host's output path would.
func split(frame []byte, size int, id uint32) [][]byte {
	const l3 = 14
	var out [][]byte
	if frame[l3]>>4 == 4 {
		ihl := int(frame[l3]&0x0f) * 4
		data := frame[l3+ihl:]
		for off := 0; off < len(data); off += size {
			end := min(off+size, len(data))
			f := append(append([]byte(nil), frame[:l3+ihl]...), data[off:end]...)
			ff := uint16(off / 8)
			if end < len(data) {
				ff |= header.IPv4FlagMF
			}
			binary.BigEndian.PutUint16(f[l3+2:], uint16(ihl+end-off))
			binary.BigEndian.PutUint16(f[l3+6:], ff)
			header.IPv4(f[l3:]).UpdateChecksum()
			out = append(out, f)
		}
		return out
	}
	nh := frame[l3+6]
	data := frame[l3+header.IPv6Size:]
	for off := 0; off < len(data); off += size {
		end := min(off+size, len(data))
		f := append([]byte(nil), frame[:l3+header.IPv6Size]...)
		fh := make([]byte, 8)
		fh[0] = nh
		fw := uint16(off)
		if end < len(data) {
			fw |= 1
		}
		binary.BigEndian.PutUint16(fh[2:], fw)
		binary.BigEndian.PutUint32(fh[4:], id)
		f = append(append(f, fh...), data[off:end]...)
		f[l3+6] = header.ProtoFragment
		binary.BigEndian.PutUint16(f[l3+4:], uint16(8+end-off))
		out = append(out, f)
	}
	return out
}

func newR(t testing.TB, cfg ipfrag.Config) *ipfrag.Reassembler {
	t.Helper()
	r, err := ipfrag.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// add parses frame and feeds it.
func add(r *ipfrag.Reassembler, p *header.Parsed, frame []byte, now int64, dst []byte) (ipfrag.Result, ipfrag.Datagram) {
	p.Parse(frame)
	return r.Add(frame, p, now, dst)
}

var families = []struct {
	name     string
	src, dst string
}{
	{"ipv4", "10.0.0.1", "192.0.2.10"},
	{"ipv6", "2001:db8::1", "2001:db8:1::10"},
}

func TestReassembleOrders(t *testing.T) {
	for _, fam := range families {
		whole := datagram(t, fam.src, fam.dst, 3000, 1)
		frags := split(whole, 1448, 7)
		if len(frags) != 3 {
			t.Fatalf("%s: %d fragments", fam.name, len(frags))
		}
		orders := map[string][]int{"in order": {0, 1, 2}, "reversed": {2, 1, 0}, "first last": {1, 2, 0}, "middle last": {0, 2, 1}}
		for name, order := range orders {
			t.Run(fam.name+"/"+name, func(t *testing.T) {
				r := newR(t, ipfrag.Config{})
				var p header.Parsed
				dst := make([]byte, 70000)
				for i, k := range order {
					res, d := add(r, &p, frags[k], 1, dst)
					if i < len(order)-1 {
						if res != ipfrag.Queued {
							t.Fatalf("fragment %d: %v, want queued", k, res)
						}
						continue
					}
					if res != ipfrag.Complete {
						t.Fatalf("last fragment %d: %v, want complete", k, res)
					}
					if !bytes.Equal(dst[:d.Len], whole) {
						t.Fatalf("reassembled datagram differs from the original:\n got %x\nwant %x", dst[:min(d.Len, 80)], whole[:80])
					}
					if d.FragMax != len(frags[0])-14 {
						t.Errorf("FragMax %d, want %d", d.FragMax, len(frags[0])-14)
					}
				}
				if q, b := r.Usage(); q != 0 || b != 0 {
					t.Errorf("after completion %d queues, %d bytes in use", q, b)
				}
				if d := r.TakeDrops(); d != (ipfrag.Drops{}) {
					t.Errorf("drops %+v", d)
				}
			})
		}
	}
}

func TestOverlapDropsDatagram(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			whole := datagram(t, fam.src, fam.dst, 3000, 2)
			frags := split(whole, 1448, 9)
			// The same data cut differently: its first fragment overlaps
			// fragments 0 and 1.
			other := split(whole, 1000, 9)
			r := newR(t, ipfrag.Config{})
			var p header.Parsed
			dst := make([]byte, 70000)
			if res, _ := add(r, &p, frags[0], 1, dst); res != ipfrag.Queued {
				t.Fatalf("first: %v", res)
			}
			if res, _ := add(r, &p, frags[2], 1, dst); res != ipfrag.Queued {
				t.Fatalf("third: %v", res)
			}
			if res, _ := add(r, &p, other[1], 1, dst); res != ipfrag.Bad {
				t.Fatalf("overlapping fragment: %v, want bad", res)
			}
			if d := r.TakeDrops(); d.Bad != 3 {
				t.Errorf("drops %+v, want the 2 queued fragments and the overlapping one bad", d)
			}
			if q, b := r.Usage(); q != 0 || b != 0 {
				t.Errorf("after the overlap %d queues, %d bytes in use", q, b)
			}
			// The missing fragment alone now starts a new datagram.
			if res, _ := add(r, &p, frags[1], 1, dst); res != ipfrag.Queued {
				t.Fatalf("middle after the drop: %v, want queued (the datagram is gone)", res)
			}
		})
	}
}

func TestDuplicateKeepsDatagram(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			whole := datagram(t, fam.src, fam.dst, 3000, 3)
			frags := split(whole, 1448, 11)
			r := newR(t, ipfrag.Config{})
			var p header.Parsed
			dst := make([]byte, 70000)
			add(r, &p, frags[0], 1, dst)
			if res, _ := add(r, &p, frags[0], 1, dst); res != ipfrag.Bad {
				t.Fatalf("duplicate: %v, want bad", res)
			}
			add(r, &p, frags[1], 1, dst)
			res, d := add(r, &p, frags[2], 1, dst)
			if res != ipfrag.Complete || !bytes.Equal(dst[:d.Len], whole) {
				t.Fatalf("after a duplicate: %v, datagram equal %v", res, bytes.Equal(dst[:d.Len], whole))
			}
			if d := r.TakeDrops(); d != (ipfrag.Drops{Bad: 1}) {
				t.Errorf("drops %+v, want 1 bad", d)
			}
		})
	}
}

func TestInconsistentEnds(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			whole := datagram(t, fam.src, fam.dst, 3000, 4)
			frags := split(whole, 1448, 12)
			r := newR(t, ipfrag.Config{})
			var p header.Parsed
			dst := make([]byte, 70000)
			add(r, &p, frags[1], 1, dst)
			// A last fragment ending inside data received: the middle
			// fragment 200 bytes shorter, MF clear.
			short := append([]byte(nil), frags[1][:len(frags[1])-200]...)
			if fam.name == "ipv4" {
				binary.BigEndian.PutUint16(short[14+6:], uint16(1448/8))
				binary.BigEndian.PutUint16(short[14+2:], uint16(len(short)-14))
				header.IPv4(short[14:]).UpdateChecksum()
			} else {
				binary.BigEndian.PutUint16(short[14+40+2:], uint16(1448))
				binary.BigEndian.PutUint16(short[14+4:], uint16(len(short)-14-40))
			}
			if res, _ := add(r, &p, short, 1, dst); res != ipfrag.Bad {
				t.Fatalf("last fragment ending before data received: %v, want bad", res)
			}
			add(r, &p, frags[2], 1, dst)
			// A second last fragment with another end.
			longer := append(append([]byte(nil), frags[2]...), make([]byte, 16)...)
			if fam.name == "ipv4" {
				binary.BigEndian.PutUint16(longer[14+2:], uint16(len(longer)-14))
				header.IPv4(longer[14:]).UpdateChecksum()
			} else {
				binary.BigEndian.PutUint16(longer[14+4:], uint16(len(longer)-14-40))
			}
			if res, _ := add(r, &p, longer, 1, dst); res != ipfrag.Bad {
				t.Fatalf("second last fragment with another end: %v, want bad", res)
			}
			res, d := add(r, &p, frags[0], 1, dst)
			if res != ipfrag.Complete || !bytes.Equal(dst[:d.Len], whole) {
				t.Fatalf("the datagram did not survive the bad fragments: %v", res)
			}
		})
	}
}

func TestTimeouts(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			whole := datagram(t, fam.src, fam.dst, 3000, 5)
			frags := split(whole, 1448, 13)
			r := newR(t, ipfrag.Config{})
			var p header.Parsed
			dst := make([]byte, 70000)
			start := int64(time.Hour)
			add(r, &p, frags[0], start, dst)
			add(r, &p, frags[1], start+int64(time.Second), dst)
			timeout := ipfrag.DefaultTimeout4
			if fam.name == "ipv6" {
				timeout = ipfrag.DefaultTimeout6
			}
			r.Expire(start + int64(timeout) - 1)
			if q, _ := r.Usage(); q != 1 {
				t.Fatalf("expired before its time (%v): %d queues", timeout, q)
			}
			if fam.name == "ipv6" {
				r.Expire(start + int64(ipfrag.DefaultTimeout4))
				if q, _ := r.Usage(); q != 1 {
					t.Fatalf("IPv6 datagram expired at ipfrag_time")
				}
			}
			// The timer runs from the first fragment, not the last
			// (inet_frag_create arms it once).
			res, _ := add(r, &p, frags[2], start+int64(timeout), dst)
			if res != ipfrag.Queued {
				t.Fatalf("last fragment after the timeout: %v, want queued in a new datagram", res)
			}
			if d := r.TakeDrops(); d.Timeout != 2 {
				t.Errorf("drops %+v, want 2 timed out", d)
			}
		})
	}
}

func TestAtomicFragment(t *testing.T) {
	whole := datagram(t, "2001:db8::1", "2001:db8::2", 100, 6)
	f := split(whole, 2000, 99)[0] // one fragment: offset 0, M clear
	var p header.Parsed
	p.Parse(f)
	if p.Reason != header.ReasonNone {
		t.Fatalf("atomic fragment parses as %v", p.Reason)
	}
	r := newR(t, ipfrag.Config{})
	dst := make([]byte, 2000)
	res, d := r.Add(f, &p, 1, dst)
	if res != ipfrag.Complete || !bytes.Equal(dst[:d.Len], whole) {
		t.Fatalf("atomic fragment: %v, equal to the datagram without its fragment header: %v", res, bytes.Equal(dst[:d.Len], whole))
	}
	if q, _ := r.Usage(); q != 0 {
		t.Errorf("an atomic fragment left a queue")
	}
}

func TestNotFragment(t *testing.T) {
	for _, fam := range families {
		whole := datagram(t, fam.src, fam.dst, 100, 7)
		var p header.Parsed
		r := newR(t, ipfrag.Config{})
		if res, _ := add(r, &p, whole, 1, make([]byte, 2000)); res != ipfrag.NotFragment {
			t.Errorf("%s: whole datagram: %v", fam.name, res)
		}
	}
}

func TestOversize(t *testing.T) {
	whole := datagram(t, "10.0.0.1", "10.0.0.2", 1400, 8)
	f := split(whole, 2000, 0)[0]
	// Offset 65528 with 1400 bytes: past 65535.
	binary.BigEndian.PutUint16(f[14+6:], 65528/8)
	header.IPv4(f[14:]).UpdateChecksum()
	r := newR(t, ipfrag.Config{})
	var p header.Parsed
	if res, _ := add(r, &p, f, 1, make([]byte, 70000)); res != ipfrag.Bad {
		t.Fatalf("fragment past 65535 bytes: %v, want bad", res)
	}
}

func TestMaxSizeDatagram(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			n := 65535 - 20 - 8
			if fam.name == "ipv6" {
				n = 65535 - 8
			}
			whole := datagram(t, fam.src, fam.dst, n, 9)
			frags := split(whole, 8192, 3)
			r := newR(t, ipfrag.Config{})
			var p header.Parsed
			dst := make([]byte, 70000)
			var res ipfrag.Result
			var d ipfrag.Datagram
			for i := len(frags) - 1; i >= 0; i-- {
				res, d = add(r, &p, frags[i], 1, dst)
			}
			if res != ipfrag.Complete || !bytes.Equal(dst[:d.Len], whole) {
				t.Fatalf("largest datagram: %v", res)
			}
			// One byte more does not fit.
			frags[len(frags)-1] = append(frags[len(frags)-1], 0)
			last := frags[len(frags)-1]
			if fam.name == "ipv4" {
				binary.BigEndian.PutUint16(last[14+2:], uint16(len(last)-14))
				header.IPv4(last[14:]).UpdateChecksum()
			} else {
				binary.BigEndian.PutUint16(last[14+4:], uint16(len(last)-14-40))
			}
			for i := len(frags) - 1; i >= 0; i-- {
				res, _ = add(r, &p, frags[i], 1, dst)
			}
			if res == ipfrag.Complete {
				t.Fatalf("a datagram over 65535 bytes was reassembled")
			}
		})
	}
}

func TestECN(t *testing.T) {
	whole := datagram(t, "10.0.0.1", "10.0.0.2", 3000, 10)
	frags := split(whole, 1448, 0)
	setECN := func(f []byte, ecn byte) {
		f[14+1] = f[14+1]&^3 | ecn
		header.IPv4(f[14:]).UpdateChecksum()
	}
	r := newR(t, ipfrag.Config{})
	var p header.Parsed
	dst := make([]byte, 70000)
	// ECT(0) and CE: CE.
	for i, f := range frags {
		setECN(f, []byte{2, 3, 2}[i])
		add(r, &p, f, 1, dst)
	}
	if dst[14+1]&3 != 3 {
		t.Errorf("ECT(0)+CE reassembled with ECN %d, want CE", dst[14+1]&3)
	}
	if !header.IPv4(dst[14:]).ChecksumValid() {
		t.Errorf("IPv4 header checksum invalid after setting CE")
	}
	// Not-ECT mixed with ECT: dropped.
	for i, f := range frags {
		setECN(f, []byte{0, 2, 0}[i])
		binary.BigEndian.PutUint16(f[14+4:], 77)
		header.IPv4(f[14:]).UpdateChecksum()
		if res, _ := add(r, &p, f, 1, dst); i == 2 && res != ipfrag.Bad {
			t.Errorf("Not-ECT with ECT: %v, want bad", res)
		}
	}
}

func TestNoAllocs(t *testing.T) {
	for _, fam := range families {
		whole := datagram(t, fam.src, fam.dst, 3000, 11)
		frags := split(whole, 1448, 5)
		r := newR(t, ipfrag.Config{})
		var p header.Parsed
		dst := make([]byte, 70000)
		now := int64(1)
		allocs := testing.AllocsPerRun(200, func() {
			now++
			for _, f := range frags {
				add(r, &p, f, now, dst)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per datagram", fam.name, allocs)
		}
		if r.Reassembled() < 200 {
			t.Errorf("%s: %d datagrams reassembled", fam.name, r.Reassembled())
		}
	}
}

// TestFloodBounded sends a flood of incomplete datagrams (each a first
// fragment whose rest never comes, from ever new sources) with, among
// them, legitimate datagrams whose fragments arrive together. The
// reassembler never holds more than its preallocated capacity, allocates
// nothing, and every legitimate datagram is reassembled.
func TestFloodBounded(t *testing.T) {
	r := newR(t, ipfrag.Config{Memory: 1 << 20})
	capQ, capB := r.Capacity()
	if capQ*576+capB > 1<<20 {
		t.Fatalf("capacity %d queues + %d bytes exceeds the configured 1 MiB", capQ, capB)
	}
	junk := split(datagram(t, "10.9.0.1", "192.0.2.10", 3000, 12), 1448, 0)[0]
	legit := split(datagram(t, "10.0.0.1", "192.0.2.10", 3000, 13), 1448, 0)
	var p header.Parsed
	dst := make([]byte, 70000)
	rng := rand.New(rand.NewPCG(1, 2))
	complete, floods := 0, 0
	maxQ, maxB := 0, 0
	now := int64(time.Hour)
	allocs := testing.AllocsPerRun(50, func() {
		for range 500 {
			// A new incomplete datagram: another source and ID.
			binary.BigEndian.PutUint32(junk[14+12:], rng.Uint32())
			binary.BigEndian.PutUint16(junk[14+4:], uint16(rng.Uint32()))
			header.IPv4(junk[14:]).UpdateChecksum()
			add(r, &p, junk, now, dst)
			floods++
			q, b := r.Usage()
			maxQ, maxB = max(maxQ, q), max(maxB, b)
		}
		for i, f := range legit {
			binary.BigEndian.PutUint16(f[14+4:], uint16(complete))
			header.IPv4(f[14:]).UpdateChecksum()
			if res, _ := add(r, &p, f, now, dst); i == len(legit)-1 && res == ipfrag.Complete {
				complete++
			}
		}
		now += int64(time.Millisecond)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per round of the flood", allocs)
	}
	if maxQ > capQ || maxB > capB {
		t.Errorf("usage reached %d queues, %d bytes; capacity %d, %d", maxQ, maxB, capQ, capB)
	}
	rounds := 51 // AllocsPerRun runs once more to warm up
	if complete != rounds {
		t.Errorf("%d of %d legitimate datagrams reassembled under a flood of %d incomplete ones", complete, rounds, floods)
	}
	d := r.TakeDrops()
	if d.Overflow == 0 {
		t.Errorf("the flood evicted nothing: %+v (capacity %d queues)", d, capQ)
	}
	t.Logf("flood: %d incomplete datagrams, peak %d queues / %d data bytes (capacity %d / %d), %d fragments evicted, %d/%d legitimate reassembled",
		floods, maxQ, maxB, capQ, capB, d.Overflow, complete, rounds)
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []ipfrag.Config{{Memory: 1000}, {Memory: 1 << 30}, {LowThresh: 5 << 20}, {Timeout4: -1}} {
		if _, err := ipfrag.New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}

// BenchmarkAdd measures the cost per fragment of reassembling 3000-byte
// UDP datagrams sent in three fragments.
func BenchmarkAdd(b *testing.B) {
	for _, fam := range families {
		b.Run(fam.name, func(b *testing.B) {
			frags := split(datagram(b, fam.src, fam.dst, 3000, 14), 1448, 1)
			ps := make([]header.Parsed, len(frags))
			for i := range frags {
				ps[i].Parse(frags[i])
			}
			r := newR(b, ipfrag.Config{})
			dst := make([]byte, 70000)
			b.ReportAllocs()
			b.SetBytes(int64(len(frags[0])))
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				k := i % len(frags)
				if res, _ := r.Add(frags[k], &ps[k], 1, dst); res == ipfrag.Bad || res == ipfrag.Overflow {
					b.Fatal(res)
				}
			}
		})
	}
}

func FuzzAdd(f *testing.F) {
	for _, fam := range families {
		frags := split(datagram(f, fam.src, fam.dst, 3000, 15), 1448, 1)
		var seed []byte
		for _, fr := range frags {
			seed = binary.BigEndian.AppendUint16(seed, uint16(len(fr)))
			seed = append(seed, fr...)
		}
		f.Add(seed)
		f.Add(seed[:len(seed)/2])
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("%d bytes %.200q", len(in), in) })()
		r, err := ipfrag.New(ipfrag.Config{Memory: ipfrag.MinMemory})
		if err != nil {
			t.Fatal(err)
		}
		capQ, capB := r.Capacity()
		var p header.Parsed
		dst := make([]byte, 70000)
		now := int64(0)
		for len(in) >= 2 {
			n := int(binary.BigEndian.Uint16(in))
			in = in[2:]
			n = min(n, len(in))
			frame := in[:n]
			in = in[n:]
			now += int64(time.Second)
			p.Parse(frame)
			res, d := r.Add(frame, &p, now, dst)
			if res == ipfrag.Complete {
				var q header.Parsed
				q.Parse(dst[:d.Len])
				if q.Kind != p.Kind {
					t.Fatalf("reassembled a %v from a %v fragment", q.Kind, p.Kind)
				}
				if q.Reason == header.ReasonFragment {
					t.Fatalf("reassembled datagram is a fragment: %s", fmt.Sprintf("%x", dst[:min(d.Len, 80)]))
				}
			}
			if qs, b := r.Usage(); qs > capQ || b > capB {
				t.Fatalf("usage %d queues %d bytes over capacity", qs, b)
			}
		}
		r.Expire(now + int64(time.Hour))
		if qs, b := r.Usage(); qs != 0 || b != 0 {
			t.Fatalf("after expiry %d queues, %d bytes in use", qs, b)
		}
	})
}

// TestNestedFragmentHeader: a second fragment header in the chain (here
// an atomic fragment header followed by a real one) is dropped: removing
// the first would leave a fragment (found by FuzzAdd).
func TestNestedFragmentHeader(t *testing.T) {
	f := split(datagram(t, "2001:db8::1", "2001:db8::2", 100, 16), 2000, 1)[0]
	const fh = 14 + 40
	inner := []byte{f[fh], 0, 0, 1, 0, 0, 0, 2} // next header as the outer had, offset 0, M set
	g := append(append(append([]byte(nil), f[:fh+8]...), inner...), f[fh+8:]...)
	g[fh] = header.ProtoFragment
	binary.BigEndian.PutUint16(g[14+4:], uint16(len(g)-14-40))
	r := newR(t, ipfrag.Config{})
	var p header.Parsed
	if res, _ := add(r, &p, g, 1, make([]byte, 70000)); res != ipfrag.Bad {
		t.Fatalf("nested fragment header: %v, want bad", res)
	}
}

// TestReset: a reassembler that holds incomplete datagrams, has evicted
// and completed some is, after Reset, empty, its counters zero, and
// reassembles what a new one does, with the same results, without
// allocating.
func TestReset(t *testing.T) {
	cfg := ipfrag.Config{Memory: ipfrag.MinMemory}
	// frags returns the fragments of a datagram with IP ID id.
	frags := func(src, dst string, n int, id uint32) [][]byte {
		fs := split(datagram(t, src, dst, n, byte(id)), 1448, id)
		for _, f := range fs {
			if f[14]>>4 == 4 {
				binary.BigEndian.PutUint16(f[14+4:], uint16(id))
				header.IPv4(f[14:]).UpdateChecksum()
			}
		}
		return fs
	}
	used := newR(t, cfg)
	var p header.Parsed
	dst := make([]byte, 70000)
	now := int64(time.Hour)
	for i := range 400 { // past the queues' capacity: evictions
		add(used, &p, frags("10.9.0.1", "192.0.2.10", 3000, uint32(i))[0], now, dst)
	}
	for _, f := range frags("2001:db8::1", "2001:db8::2", 5000, 77) {
		add(used, &p, f, now, dst)
	}
	if q, _ := used.Usage(); q == 0 || used.Reassembled() != 1 || used.TakeDrops().Overflow == 0 {
		t.Fatalf("the used reassembler holds %d queues, reassembled %d: the test sets up nothing", q, used.Reassembled())
	}
	add(used, &p, frags("10.9.0.2", "192.0.2.10", 3000, 9)[1], now, dst)
	if allocs := testing.AllocsPerRun(5, used.Reset); allocs != 0 {
		t.Errorf("Reset allocates %v times", allocs)
	}
	if q, b := used.Usage(); q != 0 || b != 0 || used.Reassembled() != 0 || used.TakeDrops() != (ipfrag.Drops{}) {
		t.Fatalf("after Reset: %d queues, %d bytes, %d reassembled", q, b, used.Reassembled())
	}
	fresh := newR(t, cfg)
	if used.Config() != fresh.Config() {
		t.Fatalf("config %+v after Reset, %+v new", used.Config(), fresh.Config())
	}
	var frames [][]byte
	for i := range 300 {
		src, dst := "10.8.0.1", "192.0.2.10"
		if i%3 == 0 {
			src, dst = "2001:db8::7", "2001:db8::2"
		}
		fs := frags(src, dst, 2000+i, uint32(i%50))
		frames = append(frames, fs[len(fs)-1])
		if i%4 != 0 {
			frames = append(frames, fs[:len(fs)-1]...)
		}
	}
	dstA, dstB := make([]byte, 70000), make([]byte, 70000)
	for i, f := range frames {
		ra, da := add(used, &p, f, now, dstA)
		rb, db := add(fresh, &p, f, now, dstB)
		if ra != rb || da != db || !bytes.Equal(dstA[:da.Len], dstB[:db.Len]) {
			t.Fatalf("frame %d: after Reset %v %+v, new %v %+v", i, ra, da, rb, db)
		}
		now += int64(time.Millisecond)
	}
	if used.Reassembled() == 0 || used.Reassembled() != fresh.Reassembled() || used.TakeDrops() != fresh.TakeDrops() {
		t.Fatalf("reassembled %d after Reset, %d new", used.Reassembled(), fresh.Reassembled())
	}
}
