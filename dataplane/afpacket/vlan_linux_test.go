package afpacket

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/internal/netnstest"
)

// tagged returns frame with an 802.1Q tag (tci) in front of its EtherType.
func tagged(frame []byte, tci uint16) []byte {
	out := append([]byte{}, frame[:12]...)
	out = binary.BigEndian.AppendUint16(out, 0x8100)
	out = binary.BigEndian.AppendUint16(out, tci)
	return append(out, frame[12:]...)
}

// TestVLANTagRestored: a tagged frame, whose tag the receiving kernel
// moves into skb metadata (TP_STATUS_VLAN_VALID, tp_vlan_tci), reaches the
// worker with the tag back in-line, the priority bits kept, and a partial
// checksum's csum_start moved with the L4 header; written back as it is,
// it leaves tagged. (Before: the frame arrived untagged and the reply left
// untagged.)
func TestVLANTagRestored(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	for _, offload := range []bool{true, false} {
		t.Run(fmt.Sprintf("offload=%v", offload), func(t *testing.T) {
			tp := newTopo(t, false)
			ra := open(t, tp.a, Config{Interface: "va", DisableOffload: !offload})
			sb := open(t, tp.b, Config{Interface: "vb"})
			const tci = 0x2000 | 100 // priority 1, VLAN 100
			const port = 9100
			plain := udpFrame(t, tp.bIf.HardwareAddr, tp.aIf.HardwareAddr, ipB, ipA, port, "tagged-frame")
			out := tagged(plain, tci)
			const l4 = 14 + 4 + 20
			f := dataplane.Frame{Buf: out, Len: len(out)}
			if offload {
				// A partial checksum: the pseudo-header sum in the field,
				// completed by whoever receives it as CHECKSUM_PARTIAL.
				ps := header.PseudoHeaderChecksum(17, out[18+12:18+16], out[18+16:18+20], uint32(len(out)-l4))
				binary.BigEndian.PutUint16(out[l4+6:], ps)
				f.Offload, f.CsumPartial, f.CsumStart, f.CsumOffset = true, true, l4, 6
			}
			sent := append([]byte{}, out...)
			if n, err := sb.WriteBatch([]dataplane.Frame{f}); n != 1 || err != nil {
				t.Fatalf("send tagged frame: %d, %v", n, err)
			}
			var got []byte
			readUntil(t, ra, func(f *dataplane.Frame) bool {
				d := f.Data()
				if len(d) < l4+8 || binary.BigEndian.Uint16(d[l4+2:]) != port && binary.BigEndian.Uint16(d[l4-4+2:]) != port {
					return false
				}
				if binary.BigEndian.Uint16(d[12:]) != 0x8100 || binary.BigEndian.Uint16(d[14:]) != tci {
					t.Fatalf("frame received without its tag in-line: %x", d[:18])
				}
				if !bytes.Equal(d, sent) {
					t.Fatalf("received\n%x\nwant\n%x", d, sent)
				}
				if offload && (!f.CsumPartial || f.CsumStart != l4 || f.CsumOffset != 6) {
					t.Fatalf("partial checksum at %d+%d (partial %v), want %d+6", f.CsumStart, f.CsumOffset, f.CsumPartial, l4)
				}
				got = append([]byte{}, d...)
				back := *f
				copy(d[0:6], tp.bIf.HardwareAddr)
				copy(d[6:12], tp.aIf.HardwareAddr)
				if n, err := ra.WriteBatch([]dataplane.Frame{back}); n != 1 || err != nil {
					t.Fatalf("send back: %d, %v", n, err)
				}
				return true
			})
			readUntil(t, sb, func(f *dataplane.Frame) bool {
				d := f.Data()
				if len(d) != len(got) || !bytes.Equal(d[0:6], tp.bIf.HardwareAddr) {
					return false
				}
				if binary.BigEndian.Uint16(d[12:]) != 0x8100 || binary.BigEndian.Uint16(d[14:]) != tci {
					t.Fatalf("frame written back arrived without its tag: %x", d[:18])
				}
				if !bytes.Equal(d[12:l4+6], got[12:l4+6]) || !bytes.Equal(d[l4+8:], got[l4+8:]) {
					t.Fatalf("frame written back changed:\n%x\nwant\n%x", d, got)
				}
				return true
			})
		})
	}
}
