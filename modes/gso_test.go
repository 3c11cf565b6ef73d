package modes_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/internal/fuzzwatch"
	"github.com/uvs-lb/uvs/internal/pkttest"
	"github.com/uvs-lb/uvs/modes"
)

// superFrame builds a GSO super-frame: a packet with payload bytes of
// payload, its L4 checksum in the CHECKSUM_PARTIAL form (pseudo-header sum
// over the whole L4 length), as a TSO sender hands it to the device.
func superFrame(t testing.TB, f pkttest.Flow, cwr bool) ([]byte, header.Parsed) {
	t.Helper()
	ls := f.Layers(t)
	if cwr {
		for _, l := range ls {
			if tcp, ok := l.(*layers.TCP); ok {
				tcp.CWR = true
			}
		}
	}
	frame := pkttest.Serialize(t, ls...)
	var p header.Parsed
	p.Parse(frame)
	if p.Reason != header.ReasonNone {
		t.Fatalf("super-frame: %v", p.Reason)
	}
	if _, _, ok := modes.SeedPartial(frame, &p); !ok {
		t.Fatal("SeedPartial refused a TCP/UDP frame")
	}
	return frame, p
}

// expectedSegment builds segment i of super-frame with gopacket, the way
// Linux's software GSO cuts it: the super-frame's layers with the i-th
// payload chunk, the TCP sequence number advanced, FIN/PSH only on the
// last segment, CWR only on the first, the IPv4 ID plus i, and every
// length and checksum recomputed.
func expectedSegment(t *testing.T, super []byte, i, size int) []byte {
	t.Helper()
	pkt := gopacket.NewPacket(super, layers.LayerTypeEthernet, gopacket.Default)
	var ls []gopacket.SerializableLayer
	var nl gopacket.NetworkLayer
	var payload []byte
	for _, l := range pkt.Layers() {
		switch l := l.(type) {
		case *layers.IPv4:
			l.Id += uint16(i)
			nl = l
		case *layers.IPv6:
			nl = l
		case *layers.TCP:
			payload = l.Payload
			_ = l.SetNetworkLayerForChecksum(nl)
			l.Seq += uint32(i * size)
			if (i+1)*size < len(payload) {
				l.FIN, l.PSH = false, false
			}
			if i > 0 {
				l.CWR = false
			}
		case *layers.UDP:
			payload = l.Payload
			_ = l.SetNetworkLayerForChecksum(nl)
		case *gopacket.Payload:
			continue
		}
		if sl, ok := l.(gopacket.SerializableLayer); ok {
			ls = append(ls, sl)
		}
	}
	chunk := payload[i*size : min((i+1)*size, len(payload))]
	return pkttest.Serialize(t, append(ls, gopacket.Payload(chunk))...)
}

func TestSegmenter(t *testing.T) {
	const size = 1000
	for _, proto := range []layers.IPProtocol{layers.IPProtocolTCP, layers.IPProtocolUDP} {
		for _, v6 := range []bool{false, true} {
			for _, extra := range []bool{false, true} { // VLAN tag and IPv4 options / IPv6 extension headers
				for _, payload := range []int{0, 1, size, 3*size + 1, 9000} {
					name := fmt.Sprintf("%v/v6=%v/extra=%v/payload=%d", proto, v6, extra, payload)
					t.Run(name, func(t *testing.T) {
						f := pkttest.Flow{V6: v6, Vlan: extra, IPOpts: extra && !v6, Ext: extra && v6, Proto: proto,
							Src: "10.0.0.1", Dst: "10.0.0.2", Sport: 4000, Dport: 80, TTL: 64, DF: true, Flags: "FPA", Payload: payload}
						if v6 {
							f.Src, f.Dst = "2001:db8::1", "2001:db8::2"
						}
						super, p := superFrame(t, f, true)
						orig := append([]byte(nil), super...)
						var s modes.Segmenter
						if !s.Init(super, &p, size, false) {
							t.Fatal("Init refused")
						}
						buf := make([]byte, s.MaxLen())
						want := max(1, (payload+size-1)/size)
						got := 0
						for ; ; got++ {
							n := s.Next(buf)
							if n == 0 {
								break
							}
							if got >= want {
								t.Fatalf("more than %d segments", want)
							}
							exp := expectedSegment(t, orig, got, size)
							if len(exp) > n && !bytes.ContainsFunc(exp[n:], func(r rune) bool { return r != 0 }) {
								exp = exp[:n] // gopacket pads to the Ethernet minimum
							}
							if !bytes.Equal(buf[:n], exp) {
								t.Fatalf("segment %d:\n got  %x\n want %x", got, buf[:n], exp)
							}
						}
						if got != want {
							t.Fatalf("%d segments, want %d", got, want)
						}
						if !bytes.Equal(super, orig) {
							t.Fatal("super-frame modified")
						}
					})
				}
			}
		}
	}
}

func TestSegmenterRefuses(t *testing.T) {
	fr := pkttest.Flow{Proto: layers.IPProtocolICMPv4, Src: "10.0.0.1", Dst: "10.0.0.2", TTL: 9, Payload: 100}.Frame(t)
	var p header.Parsed
	p.Parse(fr)
	var s modes.Segmenter
	if s.Init(fr, &p, 100, false) {
		t.Error("ICMP accepted")
	}
	fr = pkttest.Flow{Proto: layers.IPProtocolTCP, Src: "10.0.0.1", Dst: "10.0.0.2", TTL: 9, Payload: 100}.Frame(t)
	p.Parse(fr)
	if s.Init(fr, &p, 0, false) {
		t.Error("size 0 accepted")
	}
	if !s.Init(fr, &p, 50, false) {
		t.Fatal("TCP refused")
	}
	if n := s.Next(make([]byte, s.MaxLen()-1)); n != 0 {
		t.Errorf("short buffer: wrote %d", n)
	}
}

// TestSegmenterAccECN: with AccECN, CWR is part of a counter and stays on
// every segment.
func TestSegmenterAccECN(t *testing.T) {
	super, p := superFrame(t, pkttest.Flow{Proto: layers.IPProtocolTCP, Src: "10.0.0.1", Dst: "10.0.0.2", TTL: 9, Flags: "A", Payload: 300}, true)
	var s modes.Segmenter
	s.Init(super, &p, 100, true)
	buf := make([]byte, s.MaxLen())
	for i := 0; ; i++ {
		n := s.Next(buf)
		if n == 0 {
			break
		}
		if buf[p.L4Off+13]&header.TCPFlagCWR == 0 {
			t.Fatalf("segment %d lost CWR", i)
		}
	}
}

// TestKeepPartialSuperFrame rewrites a super-frame once with a partial
// checksum (CsumKeepPartial), then segments it the way the kernel's GSO
// does for a CHECKSUM_PARTIAL skb (tcp_gso_segment / __udp_gso_segment:
// the pseudo-header sum in the field has its length replaced by each
// segment's L4 length, and the device completes the sum over the
// segment). Every resulting segment must carry the correct checksum.
func TestKeepPartialSuperFrame(t *testing.T) {
	const size = 1448
	for _, tc := range natCases(natV4) {
		for _, v6 := range []bool{false, true} {
			for _, proto := range []layers.IPProtocol{layers.IPProtocolTCP, layers.IPProtocolUDP} {
				t.Run(fmt.Sprintf("%s/v6=%v/%v", tc.name, v6, proto), func(t *testing.T) {
					if v6 {
						for _, c6 := range natCases(natV6) {
							if c6.name == tc.name {
								tc = c6
							}
						}
					}
					f := pkttest.Flow{V6: v6, Proto: proto, Src: tc.inSrc.Addr().String(), Dst: tc.inDst.Addr().String(),
						Sport: tc.inSrc.Port(), Dport: tc.inDst.Port(), TTL: 64, DF: true, Flags: "PA", Payload: 60000}
					super, p := superFrame(t, f, false)
					if r := tc.apply(super, &p, modes.CsumKeepPartial); !r.OK() {
						t.Fatalf("verdict %v", r.Verdict)
					}
					co := header.L4ChecksumOffset(p.Proto)
					seed := binary.BigEndian.Uint16(super[p.L4Off+co:])
					oldLen := uint32(p.End - p.L4Off)
					var s modes.Segmenter
					if !s.Init(super, &p, size, false) {
						t.Fatal("Init refused")
					}
					buf := make([]byte, s.MaxLen())
					for i := 0; ; i++ {
						n := s.Next(buf)
						if n == 0 {
							break
						}
						seg := buf[:n]
						var q header.Parsed
						q.Parse(seg)
						// Kernel GSO: replace the length in the seed, keep the
						// rest of the segment's header (the Segmenter
						// already set ports, lengths, sequence numbers).
						segLen := uint32(q.End - q.L4Off)
						c := header.CombineChecksums(seed, ^uint16(oldLen))
						c = header.CombineChecksums(c, uint16(segLen))
						binary.BigEndian.PutUint16(seg[q.L4Off+co:], c)
						completePartial(seg, &q)
						if !header.L4ChecksumValid(seg, &q) {
							t.Fatalf("segment %d: checksum from the partial sum does not verify", i)
						}
					}
				})
			}
		}
	}
}

func TestSegmenterNoAllocs(t *testing.T) {
	super, p := superFrame(t, pkttest.Flow{Proto: layers.IPProtocolTCP, Src: "10.0.0.1", Dst: "10.0.0.2", TTL: 9, Flags: "A", Payload: 64000}, false)
	var s modes.Segmenter
	buf := make([]byte, 2048)
	if n := testing.AllocsPerRun(20, func() {
		s.Init(super, &p, 1448, false)
		for s.Next(buf) > 0 {
		}
	}); n != 0 {
		t.Errorf("allocates %v", n)
	}
}

func BenchmarkSegmenter(b *testing.B) {
	super, p := superFrame(b, pkttest.Flow{Proto: layers.IPProtocolTCP, Src: "10.0.0.1", Dst: "10.0.0.2", TTL: 9, Flags: "A", Payload: 65000}, false)
	var s modes.Segmenter
	buf := make([]byte, 2048)
	b.ReportAllocs()
	b.SetBytes(int64(len(super)))
	for b.Loop() {
		s.Init(super, &p, 1448, false)
		for s.Next(buf) > 0 {
		}
	}
}

// FuzzSegment cuts arbitrary frames: Init refuses what it cannot cut,
// nothing panics, and every segment of an accepted frame parses cleanly,
// carries valid checksums, and the segments' payloads add up to the
// super-frame's.
func FuzzSegment(f *testing.F) {
	for _, v6 := range []bool{false, true} {
		for _, proto := range []layers.IPProtocol{layers.IPProtocolTCP, layers.IPProtocolUDP} {
			fl := pkttest.Flow{V6: v6, Ext: v6, IPOpts: !v6, Proto: proto, Src: "10.0.0.1", Dst: "10.0.0.2", Sport: 1, Dport: 80, TTL: 9, Flags: "FPA", Payload: 250}
			if v6 {
				fl.Src, fl.Dst = "2001:db8::1", "2001:db8::2"
			}
			f.Add(fl.Frame(f), uint16(100))
		}
	}
	buf := make([]byte, 1<<17)
	f.Fuzz(func(t *testing.T, frame []byte, size uint16) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("size %d, %d bytes %.200q", size, len(frame), frame) })()
		var p header.Parsed
		p.Parse(frame)
		var s modes.Segmenter
		if !s.Init(frame, &p, int(size), false) {
			return
		}
		total := 0
		for i := 0; ; i++ {
			n := s.Next(buf)
			if n == 0 {
				break
			}
			if i > p.End {
				t.Fatalf("runaway: %d segments", i)
			}
			var q header.Parsed
			q.Parse(buf[:n])
			if q.Reason != header.ReasonNone {
				t.Fatalf("segment %d: %v", i, q.Reason)
			}
			if !header.L4ChecksumValid(buf[:n], &q) {
				t.Fatalf("segment %d: L4 checksum", i)
			}
			if q.Kind == header.KindIPv4 && !header.IPv4(buf[q.L3Off:]).ChecksumValid() {
				t.Fatalf("segment %d: IPv4 checksum", i)
			}
			total += q.End - q.PayloadOff
		}
		if total != p.End-p.PayloadOff {
			t.Fatalf("payload %d, want %d", total, p.End-p.PayloadOff)
		}
	})
}
