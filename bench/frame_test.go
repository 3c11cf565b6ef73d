package bench

import (
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

func testSpec() FlowSpec {
	return FlowSpec{SrcMAC: ClientMAC, DstMAC: DirMAC, SrcBase: netip.MustParseAddr("198.18.64.0"), SrcPort: 1024,
		PortsPerSrc: 64, Dsts: []netip.Addr{netip.MustParseAddr("198.18.2.2"), netip.MustParseAddr("198.18.3.2")},
		DstPort: 9000, Payload: 64, Flows: 1_000_000}
}

// TestFrameChecksums decodes built frames with gopacket and compares them
// with gopacket's own serialisation of the same headers (checksums
// computed from scratch).
func TestFrameChecksums(t *testing.T) {
	b, err := NewFrameBuilder(testSpec())
	if err != nil {
		t.Fatal(err)
	}
	if b.Len() != 106 {
		t.Fatalf("frame length %d, want 106 (64-byte payload)", b.Len())
	}
	buf := make([]byte, b.Len())
	for _, i := range []int{0, 1, 2, 63, 64, 65, 4095, 4096, 65535, 999_999, 1_000_000, 1_234_567} {
		b.Fill(buf, i)
		pkt := gopacket.NewPacket(buf, layers.LayerTypeEthernet, gopacket.Default)
		ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		udp, _ := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if ip == nil || udp == nil {
			t.Fatalf("flow %d: not IPv4/UDP: %v", i, pkt)
		}
		src, sport, dst := b.Flow(i)
		if ip.SrcIP.String() != src.String() || ip.DstIP.String() != dst.String() || uint16(udp.SrcPort) != sport || udp.DstPort != 9000 {
			t.Fatalf("flow %d: %v:%d > %v:%d, want %v:%d > %v:9000", i, ip.SrcIP, udp.SrcPort, ip.DstIP, udp.DstPort, src, sport, dst)
		}
		// Re-serialise with computed checksums and compare byte for byte.
		eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(ClientMAC[:]), DstMAC: net.HardwareAddr(DirMAC[:]), EthernetType: layers.EthernetTypeIPv4}
		ip2 := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolUDP,
			SrcIP: ip.SrcIP, DstIP: ip.DstIP}
		udp2 := &layers.UDP{SrcPort: udp.SrcPort, DstPort: udp.DstPort}
		if err := udp2.SetNetworkLayerForChecksum(ip2); err != nil {
			t.Fatal(err)
		}
		out := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(out, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true},
			eth, ip2, udp2, gopacket.Payload(udp.Payload)); err != nil {
			t.Fatal(err)
		}
		if got, want := buf, out.Bytes(); string(got) != string(want) {
			t.Fatalf("flow %d:\n got %x\nwant %x", i, got, want)
		}
	}
}

func TestFlowsDistinct(t *testing.T) {
	s := testSpec()
	s.Flows = 4096
	s.SrcBase, s.PortsPerSrc = ClientAddr, 4096
	b, err := NewFrameBuilder(s)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[[3]string]bool{}
	perDst := map[netip.Addr]int{}
	for i := range s.Flows {
		src, sport, dst := b.Flow(i)
		k := [3]string{src.String(), string(rune(sport)), dst.String()}
		if seen[k] {
			t.Fatalf("flow %d repeats %v", i, k)
		}
		seen[k] = true
		perDst[dst]++
	}
	if perDst[s.Dsts[0]] != 2048 || perDst[s.Dsts[1]] != 2048 {
		t.Fatalf("destinations not alternated: %v", perDst)
	}
	if src, sport, _ := b.Flow(4096); src != ClientAddr || sport != 1024 {
		t.Fatalf("flow 4096 does not wrap to flow 0: %v:%d", src, sport)
	}
}

func TestFrameFillAllocs(t *testing.T) {
	b, err := NewFrameBuilder(testSpec())
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, b.Len())
	i := 0
	if n := testing.AllocsPerRun(1000, func() { b.Fill(buf, i); i += 7919 }); n != 0 {
		t.Fatalf("Fill allocates %v times per frame", n)
	}
}

func TestFlowSpecValidate(t *testing.T) {
	bad := map[string]func(*FlowSpec){
		"not IPv4": func(s *FlowSpec) { s.SrcBase = netip.MustParseAddr("::1") },
		"no dest":  func(s *FlowSpec) { s.Dsts = nil },
		"ports":    func(s *FlowSpec) { s.SrcPort = 65000; s.PortsPerSrc = 1000 },
		"flows":    func(s *FlowSpec) { s.Flows = 0 },
		"payload":  func(s *FlowSpec) { s.Payload = 2000 },
		"overflow": func(s *FlowSpec) { s.SrcBase = netip.MustParseAddr("255.255.255.250"); s.PortsPerSrc = 1 },
		"v6 dest":  func(s *FlowSpec) { s.Dsts = []netip.Addr{netip.MustParseAddr("::2")} },
	}
	for name, mut := range bad {
		s := testSpec()
		mut(&s)
		if _, err := NewFrameBuilder(s); err == nil {
			t.Errorf("%s: accepted %+v", name, s)
		}
	}
}

func BenchmarkFrameFill(b *testing.B) {
	fb, err := NewFrameBuilder(testSpec())
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, fb.Len())
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		fb.Fill(buf, i)
	}
}
