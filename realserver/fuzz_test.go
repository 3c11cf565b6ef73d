package realserver

import (
	"encoding/binary"
	"fmt"
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
