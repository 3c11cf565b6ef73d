package conntrack

import (
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/internal/pkttest"
)

// TestKeyFromParsed: a parsed packet's addresses are key addresses as they
// stand (header's As16 form), equal to KeyFrom's and KeyFromBytes'.
func TestKeyFromParsed(t *testing.T) {
	for _, f := range []pkttest.Flow{
		{Proto: layers.IPProtocolTCP, Src: "10.0.1.2", Dst: "10.0.1.100", Sport: 40000, Dport: 80, TTL: 64},
		{V6: true, Proto: layers.IPProtocolUDP, Src: "2001:db8::2", Dst: "2001:db8::100", Sport: 5353, Dport: 53, TTL: 64},
	} {
		var p header.Parsed
		p.Parse(f.Frame(t))
		k := Key{Src: p.Src, Dst: p.Dst, SrcPort: p.SrcPort, DstPort: p.DstPort, Proto: p.Proto}
		src, dst := netip.MustParseAddr(f.Src), netip.MustParseAddr(f.Dst)
		if want := KeyFrom(p.Proto, netip.AddrPortFrom(src, f.Sport), netip.AddrPortFrom(dst, f.Dport)); k != want {
			t.Errorf("%s: parsed key %+v, KeyFrom %+v", f.Src, k, want)
		}
		if want, ok := KeyFromBytes(p.Proto, p.SrcIP(), p.DstIP(), p.SrcPort, p.DstPort); !ok || k != want {
			t.Errorf("%s: parsed key %+v, KeyFromBytes %+v", f.Src, k, want)
		}
		if k.SrcAddrPort() != netip.AddrPortFrom(src, f.Sport) || k.DstAddrPort() != netip.AddrPortFrom(dst, f.Dport) {
			t.Errorf("%s: key reads back %v -> %v", f.Src, k.SrcAddrPort(), k.DstAddrPort())
		}
	}
	if _, ok := KeyFromBytes(ProtoTCP, make([]byte, 5), make([]byte, 4), 1, 2); ok {
		t.Error("KeyFromBytes accepted a 5-byte address")
	}
}
