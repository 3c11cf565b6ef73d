package realserver

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/header"
)

// kernelMergedPkt returns what the kernel's GRO makes of a train of n
// segments of sz bytes (tcp_gro_complete): one packet carrying the whole
// payload whose TCP checksum field holds the pseudo-header sum, and the
// same packet with a complete checksum.
func kernelMergedPkt(t testing.TB, base seg, n, sz int) (partial, whole []byte) {
	t.Helper()
	base.n = n * sz
	whole = base.build(t)
	partial = bytes.Clone(whole)
	ihl := 20
	ph := header.PseudoHeaderChecksum(header.ProtoTCP, partial[12:16], partial[16:20], uint32(len(partial)-ihl))
	if base.v6 {
		ihl = 40
		ph = header.PseudoHeaderChecksum(header.ProtoTCP, partial[8:24], partial[24:40], uint32(len(partial)-ihl))
	}
	binary.BigEndian.PutUint16(partial[ihl+16:], ph)
	return partial, whole
}

func TestGROKernelMergedVnet(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		for _, cwr := range []bool{false, true} {
			partial, whole := kernelMergedPkt(t, seg{v6: v6, sport: 40000, seq: 1000, ack: 77, ts: 5, cwr: cwr}, 20, 1448)
			frames, segs := runGRO(t, [][]byte{partial})
			if len(frames) != 1 || segs[0] != 1 {
				t.Fatalf("v6=%v: %d frames %v, want 1", v6, len(frames), segs)
			}
			v := frames[0][:vnetHdrLen]
			ihl, typ := 20, byte(vnetGSOTCPv4)
			if v6 {
				ihl, typ = 40, vnetGSOTCPv6
			}
			if cwr {
				typ |= vnetGSOECN
			}
			thl := 32 // timestamps
			wantMSS := defaultMTU - ihl - thl
			if v[0] != vnetNeedsCsum || v[1] != typ ||
				binary.NativeEndian.Uint16(v[2:]) != uint16(ihl+thl) || binary.NativeEndian.Uint16(v[4:]) != uint16(wantMSS) ||
				binary.NativeEndian.Uint16(v[6:]) != uint16(ihl) || binary.NativeEndian.Uint16(v[8:]) != 16 {
				t.Fatalf("v6=%v cwr=%v: vnet header %x, want NEEDS_CSUM, gso type %#x, hdr_len %d, gso_size %d, csum %d+16",
					v6, cwr, v, typ, ihl+thl, wantMSS, ihl)
			}
			// The stack completes the checksum: the packet the
			// kernel merged, with its checksum.
			if got := complete(frames[0]); !bytes.Equal(got, whole) {
				t.Fatalf("v6=%v: completed frame differs from the merged packet with its checksum", v6)
			}
			// Cut at gso_size, every segment fits the MTU and is valid.
			parts := resegment(t, frames[0], true)
			var pay []byte
			for _, p := range parts {
				if len(p) > defaultMTU || !gopacketValid(t, p) {
					t.Fatalf("v6=%v: segment of %d bytes (MTU %d), valid %v", v6, len(p), defaultMTU, gopacketValid(t, p))
				}
				pay = append(pay, p[ihl+thl:]...)
			}
			if !bytes.Equal(pay, whole[ihl+thl:]) {
				t.Fatalf("v6=%v: segments carry %d payload bytes, not the merged packet's %d", v6, len(pay), len(whole)-ihl-thl)
			}
		}
	}
}

// A merged packet no longer than one segment (two small segments) needs
// its checksum completed but no segmentation.
func TestGROKernelMergedSmall(t *testing.T) {
	partial, whole := kernelMergedPkt(t, seg{sport: 40000, seq: 1, ack: 1}, 2, 300)
	frames, _ := runGRO(t, [][]byte{partial})
	v := frames[0][:vnetHdrLen]
	if v[0] != vnetNeedsCsum || v[1] != 0 || binary.NativeEndian.Uint16(v[6:]) != 20 || binary.NativeEndian.Uint16(v[8:]) != 16 {
		t.Fatalf("vnet header %x, want NEEDS_CSUM at 20+16 and no GSO", v)
	}
	if !bytes.Equal(complete(frames[0]), whole) {
		t.Fatal("completed frame differs from the packet with its checksum")
	}
}

// SetMTU bounds the segments.
func TestGROKernelMergedMTU(t *testing.T) {
	partial, _ := kernelMergedPkt(t, seg{sport: 40000, seq: 1, ack: 1}, 10, 1400)
	g := NewGRO(1)
	g.SetMTU(9000)
	buf := make([]byte, Headroom+MaxPacket)
	copy(buf[Headroom:], partial)
	g.Add(buf, Headroom, len(partial))
	f, _ := g.Frame(0, true)
	if got := binary.NativeEndian.Uint16(f[4:]); got != 9000-40 {
		t.Fatalf("gso_size %d with MTU 9000, want %d", got, 9000-40)
	}
}

// Without vnet headers the checksum is completed in place.
func TestGROKernelMergedPlain(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		partial, whole := kernelMergedPkt(t, seg{v6: v6, sport: 40000, seq: 1, ack: 1}, 30, 1448)
		g := NewGRO(1)
		g.off = true
		buf := make([]byte, Headroom+MaxPacket)
		copy(buf[Headroom:], partial)
		g.Add(buf, Headroom, len(partial))
		f, segs := g.Frame(0, false)
		if segs != 1 || !bytes.Equal(f, whole) {
			t.Fatalf("v6=%v: plain frame is not the packet with its complete checksum", v6)
		}
	}
}

// A complete packet is never taken for a merged one, and the segments that
// follow a merged packet are not appended to it: the flow's order stays.
func TestGROKernelMergedInFlow(t *testing.T) {
	ss := train(seg{sport: 40000, seq: 1, ack: 1, id: 1}, 6, 1000)
	in := builds(t, ss)
	partial, _ := kernelMergedPkt(t, seg{sport: 40000, seq: ss[5].seq + 1000, ack: 1, id: 7}, 10, 1000)
	tail := builds(t, train(seg{sport: 40000, seq: ss[5].seq + 11000, ack: 1, id: 8}, 3, 1000))
	in = append(append(in, partial), tail...)
	g := NewGRO(len(in))
	for _, p := range in {
		buf := make([]byte, Headroom+MaxPacket)
		copy(buf[Headroom:], p)
		g.Add(buf, Headroom, len(p))
	}
	if g.Partial != 1 || g.Len() != 3 {
		t.Fatalf("%d items, %d kernel-merged; want 3 (6 segments, the merged packet, 3 segments), 1", g.Len(), g.Partial)
	}
	var seqs []uint32
	for i := range g.Len() {
		f, _ := g.Frame(i, true)
		seqs = append(seqs, binary.BigEndian.Uint32(f[vnetHdrLen+24:]))
	}
	if seqs[0] != 1 || seqs[1] != ss[5].seq+1000 || seqs[2] != ss[5].seq+11000 {
		t.Fatalf("items start at sequence numbers %v", seqs)
	}
}

// ServeBatch counts kernel-merged packets and still allocates nothing.
func TestServeBatchKernelMerged(t *testing.T) {
	partial, _ := kernelMergedPkt(t, seg{sport: 40001, seq: 1, ack: 1, id: 1}, 40, 1448)
	pkts := append(ipipTrain(t, 8), serialize(t, outer4(layers.IPProtocolIPv4, 0), gopacket.Payload(partial)))
	d := NewDecapsulator([]netip.Addr{netip.MustParseAddr("198.18.0.10")})
	b := NewBatch(64)
	src := &fakeBatch{pkts: pkts, left: 1}
	dst := &discard{}
	if err := d.ServeBatch(EncapIPIP, src, dst, true, b); err != nil {
		t.Fatal(err)
	}
	if got := d.Counters().KernelGRO.Load(); got != 1 || dst.n != 2 {
		t.Fatalf("kernel-gro %d, %d writes; want 1 and 2", got, dst.n)
	}
	if n := testing.AllocsPerRun(100, func() {
		src.left = 1
		_ = d.ServeBatch(EncapIPIP, src, dst, true, b)
	}); n != 0 {
		t.Fatalf("%v allocations per batch", n)
	}
}

// A GRE packet merged by the kernel keeps its first segment's GRE checksum
// (gre_gro_complete): accepted when the inner packet is a merged one,
// refused otherwise.
func TestDecapGREKernelMerged(t *testing.T) {
	partial, _ := kernelMergedPkt(t, seg{sport: 40000, seq: 1, ack: 1}, 10, 1448)
	whole := seg{sport: 40000, seq: 1, ack: 1, n: 1448}.build(t)
	for _, c := range []struct {
		name  string
		inner []byte
		want  Reason
	}{{"merged", partial, ReasonOK}, {"complete", whole, ReasonGREChecksum}} {
		pkt := serialize(t, outer4(layers.IPProtocolGRE, 0), greLayer(true, false, false, false), gopacket.Payload(c.inner))
		if _, r := DecapIPIP(pkt); r != ReasonOK {
			t.Fatalf("%s: with a valid GRE checksum: %v", c.name, r)
		}
		pkt[24] ^= 0x5a // a stale GRE checksum
		inner, r := DecapIPIP(pkt)
		if r != c.want || (r == ReasonOK && !bytes.Equal(inner, c.inner)) {
			t.Fatalf("%s: stale GRE checksum gives %v, want %v", c.name, r, c.want)
		}
	}
}
