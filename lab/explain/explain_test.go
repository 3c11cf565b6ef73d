package explain

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Addresses of the synthetic lab: client, VIP, director (client side and
// server side), real server, FULLNAT local address, tunnel endpoints.
var (
	macC  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	macD0 = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xd0}
	macD1 = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xd1}
	macR1 = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x11}

	client  = netip.MustParseAddrPort("198.18.0.1:40000")
	other   = netip.MustParseAddrPort("198.18.0.99:41000")
	vip     = netip.MustParseAddrPort("10.0.0.100:80")
	rip     = netip.MustParseAddrPort("192.168.10.11:8080")
	lip     = netip.MustParseAddrPort("192.168.10.1:5001")
	tunSrc  = netip.MustParseAddr("172.16.0.1")
	tunDst  = netip.MustParseAddr("172.16.0.2")
	cli6    = netip.MustParseAddrPort("[2001:db8::1]:40000")
	vip6    = netip.MustParseAddrPort("[2001:db8:100::1]:80")
	rip6    = netip.MustParseAddrPort("[2001:db8:10::11]:80")
	request = []byte("GET / HTTP/1.0\r\n\r\n")
	reply   = []byte("HTTP/1.0 200 OK\r\n\r\nrs1\n")
)

const (
	isn    = 1_000_000
	srvISN = 7_000_000
)

// pkt describes one TCP frame to build.
type pkt struct {
	smac, dmac net.HardwareAddr
	src, dst   netip.AddrPort
	ttl        uint8
	syn, ack   bool
	rst        bool
	seq, ackN  uint32
	data       []byte
	tun        string // "", "ipip" or "gue"
	outerTTL   uint8  // the tunnel header's TTL (0: ttl)
	vlan       int    // 0: untagged
}

// syn, synack, req and resp build the connection's frames with the given
// L2/L3 addressing; src/dst are as seen at that hop.
func syn(smac, dmac net.HardwareAddr, src, dst netip.AddrPort, ttl uint8) pkt {
	return pkt{smac: smac, dmac: dmac, src: src, dst: dst, ttl: ttl, syn: true, seq: isn}
}

func synack(smac, dmac net.HardwareAddr, src, dst netip.AddrPort, ttl uint8) pkt {
	return pkt{smac: smac, dmac: dmac, src: src, dst: dst, ttl: ttl, syn: true, ack: true, seq: srvISN, ackN: isn + 1}
}

func req(smac, dmac net.HardwareAddr, src, dst netip.AddrPort, ttl uint8) pkt {
	return pkt{smac: smac, dmac: dmac, src: src, dst: dst, ttl: ttl, ack: true, seq: isn + 1, ackN: srvISN + 1, data: request}
}

func resp(smac, dmac net.HardwareAddr, src, dst netip.AddrPort, ttl uint8) pkt {
	return pkt{smac: smac, dmac: dmac, src: src, dst: dst, ttl: ttl, ack: true, seq: srvISN + 1, ackN: isn + 1 + uint32(len(request)), data: reply}
}

func (p pkt) tunnel(kind string) pkt { p.tun = kind; return p }

// ipLayers returns the IP and TCP layers of p.
func ipLayers(t testing.TB, p pkt) []gopacket.SerializableLayer {
	t.Helper()
	tcp := &layers.TCP{SrcPort: layers.TCPPort(p.src.Port()), DstPort: layers.TCPPort(p.dst.Port()),
		Seq: p.seq, Ack: p.ackN, SYN: p.syn, ACK: p.ack, RST: p.rst, PSH: len(p.data) > 0, Window: 64240}
	var ip gopacket.NetworkLayer
	if p.src.Addr().Is4() {
		ip = &layers.IPv4{Version: 4, TTL: p.ttl, Protocol: layers.IPProtocolTCP, Flags: layers.IPv4DontFragment,
			SrcIP: p.src.Addr().AsSlice(), DstIP: p.dst.Addr().AsSlice()}
	} else {
		ip = &layers.IPv6{Version: 6, HopLimit: p.ttl, NextHeader: layers.IPProtocolTCP,
			SrcIP: p.src.Addr().AsSlice(), DstIP: p.dst.Addr().AsSlice()}
	}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	return []gopacket.SerializableLayer{ip.(gopacket.SerializableLayer), tcp, gopacket.Payload(p.data)}
}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// frame builds p as an Ethernet frame; tunnelled frames get an outer
// IPv4 header tunSrc > tunDst with TTL p.ttl (IPIP, or UDP 45000 > 6080
// with a GUE v0 header), around the inner packet with TTL p.ttl.
func frame(t testing.TB, p pkt) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: p.smac, DstMAC: p.dmac, EthernetType: layers.EthernetTypeIPv4}
	if !p.src.Addr().Is4() {
		eth.EthernetType = layers.EthernetTypeIPv6
	}
	l2 := []gopacket.SerializableLayer{eth}
	if p.vlan != 0 {
		l2 = append(l2, &layers.Dot1Q{VLANIdentifier: uint16(p.vlan), Type: eth.EthernetType})
		eth.EthernetType = layers.EthernetTypeDot1Q
	}
	inner := ipLayers(t, p)
	if p.tun == "" {
		return serialize(t, append(l2, inner...)...)
	}
	innerBytes := serialize(t, inner...)
	outerTTL := p.ttl
	if p.outerTTL != 0 {
		outerTTL = p.outerTTL
	}
	outer := &layers.IPv4{Version: 4, TTL: outerTTL, Protocol: layers.IPProtocolIPv4, SrcIP: tunSrc.AsSlice(), DstIP: tunDst.AsSlice()}
	eth.EthernetType = layers.EthernetTypeIPv4
	switch p.tun {
	case "ipip":
		return serialize(t, append(l2, outer, gopacket.Payload(innerBytes))...)
	case "gue":
		outer.Protocol = layers.IPProtocolUDP
		udp := &layers.UDP{SrcPort: 45000, DstPort: 6080}
		_ = udp.SetNetworkLayerForChecksum(outer)
		gueHdr := []byte{0, byte(layers.IPProtocolIPv4), 0, 0}
		return serialize(t, append(l2, outer, udp, gopacket.Payload(append(gueHdr, innerBytes...)))...)
	}
	t.Fatalf("unknown tunnel %q", p.tun)
	return nil
}

// noise is traffic of no interest: an ARP request and another client's
// connection to the VIP.
func noise(t testing.TB) [][]byte {
	arp := serialize(t, &layers.Ethernet{SrcMAC: macC, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: macC, SourceProtAddress: client.Addr().AsSlice(),
			DstHwAddress: make([]byte, 6), DstProtAddress: vip.Addr().AsSlice()})
	o := syn(macC, macD0, other, vip, 64)
	o.seq = 12345
	return [][]byte{arp, frame(t, o)}
}

// writePcap writes frames to dir/name and returns its path.
func writePcap(t testing.TB, dir, name string, frames ...[]byte) string {
	t.Helper()
	var b bytes.Buffer
	w := pcapgo.NewWriterNanos(&b)
	if err := w.WriteFileHeader(262144, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(1700000000, 0)
	for i, f := range frames {
		ci := gopacket.CaptureInfo{Timestamp: ts.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(f), Length: len(f)}
		if err := w.WritePacket(ci, f); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func frames(t testing.TB, ps ...pkt) [][]byte {
	var out [][]byte
	for _, p := range ps {
		out = append(out, frame(t, p))
	}
	return out
}

// hopSections splits Flow's output into the text of each hop, by number.
func hopSections(out string) map[int]string {
	m := map[int]string{}
	re := regexp.MustCompile(`(?m)^hop (\d+) `)
	idx := re.FindAllStringSubmatchIndex(out, -1)
	for i, loc := range idx {
		end := len(out)
		if i+1 < len(idx) {
			end = idx[i+1][0]
		}
		var n int
		for _, c := range out[loc[2]:loc[3]] {
			n = n*10 + int(c-'0')
		}
		m[n] = out[loc[0]:end]
	}
	return m
}

// rowWith returns the line of section that starts with packet kind and
// contains all of parts, or "".
func rowWith(section, kind string, parts ...string) string {
	for _, l := range strings.Split(section, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != kind {
			continue
		}
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return l
		}
	}
	return ""
}

type want struct {
	hop   int
	kind  string   // packet column
	parts []string // substrings of that row
}

func checkFlow(t *testing.T, hops []Hop, cl netip.Addr, v netip.AddrPort, wants []want, notSeen []int) string {
	t.Helper()
	var b bytes.Buffer
	if err := Flow(&b, hops, cl, v); err != nil {
		t.Fatalf("Flow: %v", err)
	}
	out := b.String()
	secs := hopSections(out)
	if len(secs) != len(hops) {
		t.Fatalf("%d hop sections, want %d:\n%s", len(secs), len(hops), out)
	}
	for _, w := range wants {
		if rowWith(secs[w.hop], w.kind, w.parts...) == "" {
			t.Errorf("hop %d: no %s row with %q in:\n%s", w.hop, w.kind, w.parts, secs[w.hop])
		}
	}
	for _, h := range notSeen {
		if !strings.Contains(secs[h], "(not seen)\n") {
			t.Errorf("hop %d is not \"(not seen)\":\n%s", h, secs[h])
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
	return out
}

func TestFlowNAT(t *testing.T) {
	dir := t.TempDir()
	in := frames(t,
		syn(macC, macD0, client, vip, 64),
		synack(macD0, macC, vip, client, 63),
		req(macC, macD0, client, vip, 64),
		resp(macD0, macC, vip, client, 63))
	out := frames(t,
		syn(macD1, macR1, client, rip, 63),
		synack(macR1, macD1, rip, client, 64),
		req(macD1, macR1, client, rip, 63),
		resp(macR1, macD1, rip, client, 64))
	hops := []Hop{
		{"client c0", writePcap(t, dir, "c0.pcap", append(noise(t), in...)...)},
		{"director d0 (in)", writePcap(t, dir, "d0.pcap", in...)},
		{"director d1 (out)", writePcap(t, dir, "d1.pcap", out...)},
		{"rs1 r0", writePcap(t, dir, "r0.pcap", append(out, out[0])...)}, // a retransmitted SYN
	}
	o := checkFlow(t, hops, client.Addr(), vip, []want{
		{1, "SYN", []string{"02:00:00:00:00:01 > 02:00:00:00:00:d0", "198.18.0.1:40000 > 10.0.0.100:80", " 64"}},
		{1, "SYN-ACK", []string{"10.0.0.100:80 > 198.18.0.1:40000"}},
		{1, "request", []string{"198.18.0.1:40000 > 10.0.0.100:80"}},
		{1, "response", []string{"10.0.0.100:80 > 198.18.0.1:40000"}},
		{2, "SYN", []string{"198.18.0.1:40000 > 10.0.0.100:80", "unchanged"}},
		{3, "SYN", []string{"02:00:00:00:00:d1 > 02:00:00:00:00:11", "198.18.0.1:40000 > 192.168.10.11:8080",
			"changed: src MAC, dst MAC, dst IP 10.0.0.100 > 192.168.10.11, dst port 80 > 8080, TTL 64 > 63"}},
		{3, "SYN-ACK", []string{"192.168.10.11:8080 > 198.18.0.1:40000"}},
		{3, "response", []string{"192.168.10.11:8080 > 198.18.0.1:40000"}},
		{4, "SYN", []string{"x2", "198.18.0.1:40000 > 192.168.10.11:8080", "unchanged"}},
	}, nil)
	if !strings.HasPrefix(o, "TCP connection 198.18.0.1:40000 > 10.0.0.100:80 (client SYN seq 1000000)\n") {
		t.Errorf("title:\n%s", o)
	}
	if strings.Contains(o, "198.18.0.99") || strings.Contains(o, "outer IP") {
		t.Errorf("output shows the other connection or an empty tunnel column:\n%s", o)
	}
}

// TestFlowDR has a one-armed director: its capture holds the SYN on the
// way in and on the way out; the reply bypasses it.
func TestFlowDR(t *testing.T) {
	dir := t.TempDir()
	hops := []Hop{
		{"client c0", writePcap(t, dir, "c0.pcap", frames(t,
			syn(macC, macD0, client, vip, 64), synack(macR1, macC, vip, client, 64))...)},
		{"director d0", writePcap(t, dir, "d0.pcap", frames(t,
			syn(macC, macD0, client, vip, 64), syn(macD0, macR1, client, vip, 64))...)},
		{"rs1 r0", writePcap(t, dir, "r0.pcap", frames(t,
			syn(macD0, macR1, client, vip, 64), synack(macR1, macC, vip, client, 64))...)},
	}
	o := checkFlow(t, hops, client.Addr(), vip, []want{
		{1, "SYN", []string{"02:00:00:00:00:01 > 02:00:00:00:00:d0", "198.18.0.1:40000 > 10.0.0.100:80"}},
		{2, "SYN", []string{"02:00:00:00:00:01 > 02:00:00:00:00:d0", "unchanged"}},
		{2, "SYN", []string{"02:00:00:00:00:d0 > 02:00:00:00:00:11", "198.18.0.1:40000 > 10.0.0.100:80", "changed: src MAC, dst MAC"}},
		{2, "SYN-ACK", []string{"(not seen at this hop)"}},
		{3, "SYN-ACK", []string{"02:00:00:00:00:11 > 02:00:00:00:00:01", "10.0.0.100:80 > 198.18.0.1:40000"}},
	}, nil)
	if strings.Contains(o, "dst IP") {
		t.Errorf("DR changed an IP address:\n%s", o)
	}
}

func TestFlowTUN(t *testing.T) {
	for _, kind := range []string{"ipip", "gue"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			tunSyn := syn(macD1, macR1, client, vip, 63).tunnel(kind)
			hops := []Hop{
				{"client c0", writePcap(t, dir, "c0.pcap", frames(t,
					syn(macC, macD0, client, vip, 64), synack(macR1, macC, vip, client, 64))...)},
				{"director d1 (out)", writePcap(t, dir, "d1.pcap", frames(t, tunSyn)...)},
				{"rs1 r0", writePcap(t, dir, "r0.pcap", frames(t, tunSyn, synack(macR1, macC, vip, client, 64))...)},
			}
			outer := "IPIP 172.16.0.1 > 172.16.0.2 ttl 63"
			if kind == "gue" {
				outer = "GUE 172.16.0.1:45000 > 172.16.0.2:6080 ttl 63"
			}
			added := "+" + strings.Fields(outer)[0] + " header 172.16.0."
			o := checkFlow(t, hops, client.Addr(), vip, []want{
				{2, "SYN", []string{outer, "198.18.0.1:40000 > 10.0.0.100:80", added, "TTL 64 > 63"}},
				{3, "SYN", []string{outer, "198.18.0.1:40000 > 10.0.0.100:80", "unchanged"}},
				{3, "SYN-ACK", []string{"10.0.0.100:80 > 198.18.0.1:40000"}},
				{2, "SYN-ACK", []string{"(not seen at this hop)"}},
			}, nil)
			if !strings.Contains(o, "outer IP (tunnel)") {
				t.Errorf("no tunnel column:\n%s", o)
			}
		})
	}
}

// TestFlowTUNSharedSegment is seed 003's TUN lab: the router, the director
// and the real server share one segment, so the router's and the
// director's captures both hold the SYN as the router forwarded it and as
// the director encapsulated it. Each row compares with the same packet one
// hop earlier: the untouched SYN is unchanged, the encapsulated one gained
// its IPIP header and lost a TTL.
func TestFlowTUNSharedSegment(t *testing.T) {
	dir := t.TempDir()
	routed := syn(macD0, macD1, client, vip, 63)
	tunSyn := syn(macD1, macR1, client, vip, 62).tunnel("ipip")
	segment := frames(t, routed, tunSyn)
	// A router between the director and the real server forwards the
	// outer packet: new MACs, outer TTL 62 > 61, the inner packet as is.
	forwarded := syn(macD0, macR1, client, vip, 62).tunnel("ipip")
	forwarded.outerTTL = 61
	hops := []Hop{
		{"client c0", writePcap(t, dir, "c0.pcap", frames(t, syn(macC, macD0, client, vip, 64))...)},
		{"router r1", writePcap(t, dir, "r1.pcap", segment...)},
		{"director d0", writePcap(t, dir, "d0.pcap", segment...)},
		{"rs1 r0", writePcap(t, dir, "r0.pcap", frames(t, tunSyn)...)},
		{"rs2 r0 (behind a router)", writePcap(t, dir, "r2.pcap", frames(t, forwarded)...)},
	}
	o := checkFlow(t, hops, client.Addr(), vip, []want{
		{2, "SYN", []string{"02:00:00:00:00:d0 > 02:00:00:00:00:d1", "changed: src MAC, dst MAC, TTL 64 > 63"}},
		{2, "SYN", []string{"IPIP", "changed: src MAC, dst MAC, +IPIP header 172.16.0.1 > 172.16.0.2, TTL 63 > 62"}},
		{3, "SYN", []string{"02:00:00:00:00:d0 > 02:00:00:00:00:d1", "unchanged"}},
		{3, "SYN", []string{"IPIP", "unchanged"}},
		{4, "SYN", []string{"IPIP", "unchanged"}},
		{5, "SYN", []string{"IPIP", "ttl 61", "changed: src MAC, outer TTL 62 > 61"}},
	}, nil)
	if strings.Contains(o, "-IPIP") {
		t.Errorf("a frame the director has not touched reads as losing a tunnel header:\n%s", o)
	}
}

func TestFlowFULLNAT(t *testing.T) {
	dir := t.TempDir()
	hops := []Hop{
		{"client c0", writePcap(t, dir, "c0.pcap", frames(t,
			syn(macC, macD0, client, vip, 64), synack(macD0, macC, vip, client, 63))...)},
		{"director d1 (out)", writePcap(t, dir, "d1.pcap", frames(t,
			syn(macD1, macR1, lip, rip, 63), synack(macR1, macD1, rip, lip, 64))...)},
		{"rs1 r0", writePcap(t, dir, "r0.pcap", frames(t,
			syn(macD1, macR1, lip, rip, 63), synack(macR1, macD1, rip, lip, 64))...)},
	}
	checkFlow(t, hops, client.Addr(), vip, []want{
		{2, "SYN", []string{"192.168.10.1:5001 > 192.168.10.11:8080",
			"changed: src MAC, dst MAC, src IP 198.18.0.1 > 192.168.10.1, src port 40000 > 5001, dst IP 10.0.0.100 > 192.168.10.11, dst port 80 > 8080"}},
		{2, "SYN-ACK", []string{"192.168.10.11:8080 > 192.168.10.1:5001"}},
		{3, "SYN", []string{"192.168.10.1:5001 > 192.168.10.11:8080", "unchanged"}},
	}, nil)
}

// TestFlowNotSeen breaks the lab: the director forwards nothing, the real
// server resets, and one capture is empty.
func TestFlowNotSeen(t *testing.T) {
	dir := t.TempDir()
	rst := pkt{smac: macR1, dmac: macC, src: vip, dst: client, ttl: 64, rst: true, ack: true, ackN: isn + 1}
	hops := []Hop{
		{"client c0", writePcap(t, dir, "c0.pcap", frames(t,
			syn(macC, macD0, client, vip, 64), syn(macC, macD0, client, vip, 64), rst)...)},
		{"director d1 (out)", writePcap(t, dir, "d1.pcap", noise(t)...)},
		{"rs1 r0", writePcap(t, dir, "r0.pcap")},
	}
	o := checkFlow(t, hops, client.Addr(), vip, []want{
		{1, "SYN", []string{"x2", "198.18.0.1:40000 > 10.0.0.100:80"}},
		{1, "SYN-ACK", []string{"(not seen at this hop)"}},
		{1, "RST", []string{"10.0.0.100:80 > 198.18.0.1:40000"}},
	}, []int{2, 3})
	if !strings.Contains(o, "hop 2  director d1 (out)  ("+hops[1].Path+", 2 frames)") ||
		!strings.Contains(o, "hop 3  rs1 r0  ("+hops[2].Path+", 0 frames)") {
		t.Errorf("hop headings:\n%s", o)
	}
}

func TestFlowIPv6VLAN(t *testing.T) {
	dir := t.TempDir()
	s := syn(macC, macD0, cli6, vip6, 64)
	s.vlan = 7
	hops := []Hop{
		{"client c0", writePcap(t, dir, "c0.pcap", frames(t, s)...)},
		{"rs1 r0", writePcap(t, dir, "r0.pcap", frames(t, syn(macD1, macR1, cli6, rip6, 63))...)},
	}
	// Any client (invalid Addr) and any port (0) match.
	checkFlow(t, hops, netip.Addr{}, netip.AddrPortFrom(vip6.Addr(), 0), []want{
		{1, "SYN", []string{"vlan 7", "[2001:db8::1]:40000 > [2001:db8:100::1]:80"}},
		{2, "SYN", []string{"[2001:db8::1]:40000 > [2001:db8:10::11]:80", "vlan 7 > none", "dst IP 2001:db8:100::1 > 2001:db8:10::11"}},
	}, nil)
}

func TestFlowTruncated(t *testing.T) {
	dir := t.TempDir()
	c0 := writePcap(t, dir, "c0.pcap", frames(t, syn(macC, macD0, client, vip, 64))...)
	r0 := writePcap(t, dir, "r0.pcap", frames(t, syn(macD1, macR1, client, rip, 63), synack(macR1, macD1, rip, client, 64))...)
	b, _ := os.ReadFile(r0)
	if err := os.WriteFile(r0, b[:len(b)-10], 0o644); err != nil {
		t.Fatal(err)
	}
	checkFlow(t, []Hop{{"client c0", c0}, {"rs1 r0", r0}}, client.Addr(), vip, []want{
		{2, "SYN", []string{"192.168.10.11:8080"}},
		{2, "SYN-ACK", []string{"(not seen at this hop)"}},
	}, nil)
	var out bytes.Buffer
	_ = Flow(&out, []Hop{{"client c0", c0}, {"rs1 r0", r0}}, client.Addr(), vip)
	if !strings.Contains(out.String(), "(capture ends early: unexpected EOF)") {
		t.Errorf("no truncation note:\n%s", out.String())
	}
}

func TestFlowErrors(t *testing.T) {
	dir := t.TempDir()
	good := writePcap(t, dir, "good.pcap", frames(t, syn(macC, macD0, client, vip, 64))...)
	nosyn := writePcap(t, dir, "nosyn.pcap", noise(t)...)
	garbage := filepath.Join(dir, "garbage.pcap")
	_ = os.WriteFile(garbage, []byte("this is not a capture file"), 0o644)
	ng := filepath.Join(dir, "x.pcapng")
	_ = os.WriteFile(ng, []byte{0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 0}, 0o644)
	missing := filepath.Join(dir, "missing.pcap")
	for _, tc := range []struct {
		name string
		hops []Hop
		vip  netip.AddrPort
		want []string
	}{
		{"no hops", nil, vip, []string{"no hops"}},
		{"no vip", []Hop{{"client c0", good}}, netip.AddrPort{}, []string{"no virtual service"}},
		{"no syn", []Hop{{"client c0", nosyn}, {"rs1 r0", nosyn}}, vip, []string{"no TCP SYN from 198.18.0.1 to 10.0.0.100:80", `"client c0"`, nosyn}},
		{"wrong port", []Hop{{"client c0", good}}, netip.MustParseAddrPort("10.0.0.100:443"), []string{"no TCP SYN", "10.0.0.100:443"}},
		{"missing file", []Hop{{"client c0", good}, {"rs1 r0", missing}}, vip, []string{`hop "rs1 r0"`, missing}},
		{"garbage", []Hop{{"client c0", garbage}}, vip, []string{`hop "client c0"`, garbage, "not a pcap file"}},
		{"pcapng", []Hop{{"client c0", ng}}, vip, []string{"pcapng is not supported", ng}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := Flow(&out, tc.hops, client.Addr(), tc.vip)
			if err == nil {
				t.Fatalf("no error; output:\n%s", out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if out.Len() != 0 {
				t.Errorf("output on error:\n%s", out.String())
			}
		})
	}
	var perr *os.PathError
	err := Flow(io.Discard, []Hop{{"c", missing}}, client.Addr(), vip)
	if !errors.As(err, &perr) {
		t.Errorf("missing file: %v is not a *os.PathError", err)
	}
}

// TestDecodeGUEv1 checks GUE version 1 (the UDP payload is the IP packet).
func TestDecodeGUEv1(t *testing.T) {
	inner := serialize(t, ipLayers(t, syn(nil, nil, client, vip, 61))...)
	outer := &layers.IPv4{Version: 4, TTL: 61, Protocol: layers.IPProtocolUDP, SrcIP: tunSrc.AsSlice(), DstIP: tunDst.AsSlice()}
	udp := &layers.UDP{SrcPort: 1, DstPort: 6080}
	_ = udp.SetNetworkLayerForChecksum(outer)
	f := serialize(t, &layers.Ethernet{SrcMAC: macD1, DstMAC: macR1, EthernetType: layers.EthernetTypeIPv4},
		outer, udp, gopacket.Payload(inner))
	d := decoder{link: layers.LinkTypeEthernet}
	s, ok := d.decode(f)
	if !ok || s.tun.kind != "GUE" || s.src != client || s.dst != vip || s.seq != isn || !s.syn {
		t.Errorf("decode = %+v, %v", s, ok)
	}
}
