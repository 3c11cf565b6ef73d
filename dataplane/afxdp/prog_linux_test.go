package afxdp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/uvs-lb/uvs/internal/fuzzwatch"
	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/pkttest"
	"github.com/uvs-lb/uvs/ownership"
	"github.com/uvs-lb/uvs/spec"
)

var (
	vip4     = netip.MustParseAddr("10.0.0.100")
	vip4any  = netip.MustParseAddr("10.0.0.101") // port-0 TCP service
	vip4loc  = netip.MustParseAddr("10.0.1.1")   // a VIP that is a director address
	vip6     = netip.MustParseAddr("fd00::100")
	rs4      = netip.MustParseAddr("10.0.2.11")
	rs6      = netip.MustParseAddr("fd00:2::11")
	dir4     = netip.MustParseAddr("10.0.2.1") // director address, FULLNAT local address
	dir6     = netip.MustParseAddr("fd00:1::1")
	client4  = "192.0.2.7"
	client6  = "2001:db8::7"
	testSpec = ownership.Set{
		Services: []ownership.Endpoint{
			{Addr: vip4, Proto: spec.ProtoTCP, Port: 80}, {Addr: vip4, Proto: spec.ProtoUDP, Port: 53}, {Addr: vip4any, Proto: spec.ProtoTCP},
			{Addr: vip4loc, Proto: spec.ProtoTCP, Port: 80}, {Addr: vip6, Proto: spec.ProtoTCP, Port: 80}, {Addr: vip6, Proto: spec.ProtoIP, Port: 443},
		},
		NATReplies: []ownership.Endpoint{
			{Addr: rs4, Proto: spec.ProtoTCP, Port: 8080}, {Addr: rs6, Proto: spec.ProtoTCP, Port: 8080}, {Addr: rs4, Proto: spec.ProtoUDP, Port: 5353},
		},
		LocalRanges: []ownership.PortRange{
			{Addr: dir4, Proto: spec.ProtoTCP, First: 61000, Last: 65535}, {Addr: dir6, Proto: spec.ProtoUDP, First: 61000, Last: 61999},
		},
		VIPs:       []netip.Addr{vip4, vip4any, vip4loc, vip6},
		Neighbours: []netip.Addr{vip4, vip4any, vip6},
		Local:      []netip.Addr{vip4loc, dir4, dir6},
	}
)

// testProgram loads the program for a pretend interface with an (unbound)
// AF_XDP socket at queue 0, so test runs of owned frames return
// XDP_REDIRECT, and fills the maps from s. It also returns the maps'
// contents.
func testProgram(t testing.TB, s ownership.Set) (*ebpf.Program, *tables) {
	t.Helper()
	netnstest.SkipIfNotRoot(t)
	p, err := NewProgram(ProgramConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	if err := p.AddInterface(1, 1); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Close(fd) })
	if err := p.ifs[1].xsks.Put(uint32(0), uint32(fd)); err != nil {
		t.Fatal(err)
	}
	if err := p.Update(s); err != nil {
		t.Fatal(err)
	}
	return p.ifs[1].prog, &p.cur
}

// run returns true if the program redirects frame, false if it passes it.
func run(t testing.TB, prog *ebpf.Program, frame []byte) bool {
	t.Helper()
	ret, err := prog.Run(&ebpf.RunOptions{Data: frame})
	if err != nil {
		t.Fatalf("test run: %v", err)
	}
	switch ret {
	case xdpRedirect:
		return true
	case xdpPass:
		return false
	}
	t.Fatalf("program returned %d", ret)
	return false
}

func tcp4(dst string, sport, dport uint16) pkttest.Flow {
	return pkttest.Flow{Proto: layers.IPProtocolTCP, Src: client4, Dst: dst, Sport: sport, Dport: dport, TTL: 64, Flags: "S"}
}

func tcp6(dst string, sport, dport uint16) pkttest.Flow {
	return pkttest.Flow{V6: true, Proto: layers.IPProtocolTCP, Src: client6, Dst: dst, Sport: sport, Dport: dport, TTL: 64, Flags: "S"}
}

// fragment sets the IPv4 fragment field of a frame.
func fragment(f []byte, mf bool, offset8 uint16) []byte {
	v := offset8 & 0x1fff
	if mf {
		v |= 0x2000
	}
	binary.BigEndian.PutUint16(f[20:], v)
	return f
}

func arp(t testing.TB, op uint16, target string) []byte {
	return pkttest.Serialize(t,
		&layers.Ethernet{SrcMAC: pkttest.MACA, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: op, SourceHwAddress: pkttest.MACA, SourceProtAddress: net.ParseIP(client4).To4(),
			DstHwAddress: make([]byte, 6), DstProtAddress: net.ParseIP(target).To4()})
}

func ndp(t testing.TB, typ uint8, target string) []byte {
	ip := &layers.IPv6{Version: 6, HopLimit: 255, NextHeader: layers.IPProtocolICMPv6,
		SrcIP: net.ParseIP(client6), DstIP: net.ParseIP("ff02::1:ff00:100")}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 0)}
	_ = icmp.SetNetworkLayerForChecksum(ip)
	body := make([]byte, 20)
	copy(body[4:], net.ParseIP(target).To16())
	return pkttest.Serialize(t, &layers.Ethernet{SrcMAC: pkttest.MACA, DstMAC: pkttest.MACB, EthernetType: layers.EthernetTypeIPv6},
		ip, icmp, gopacket.Payload(body))
}

// icmpErr4 builds an ICMP error from src to dst quoting the IP header and 8
// bytes of the frame quoted.
func icmpErr4(t testing.TB, typ uint8, src, dst string, quoted []byte) []byte {
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4,
		SrcIP: net.ParseIP(src).To4(), DstIP: net.ParseIP(dst).To4()}
	ihl := int(quoted[14]&15) * 4
	return pkttest.Serialize(t, &layers.Ethernet{SrcMAC: pkttest.MACA, DstMAC: pkttest.MACB, EthernetType: layers.EthernetTypeIPv4},
		ip, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 3)}, gopacket.Payload(quoted[14:14+ihl+8]))
}

func icmpErr6(t testing.TB, typ uint8, src, dst string, quoted []byte) []byte {
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst)}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 4)}
	_ = icmp.SetNetworkLayerForChecksum(ip)
	return pkttest.Serialize(t, &layers.Ethernet{SrcMAC: pkttest.MACA, DstMAC: pkttest.MACB, EthernetType: layers.EthernetTypeIPv6},
		ip, icmp, gopacket.Payload(append(make([]byte, 4), quoted[14:14+48]...)))
}

type progCase struct {
	name     string
	frame    []byte
	redirect bool
}

func progCases(t testing.TB) []progCase {
	natReq := pkttest.Flow{Proto: layers.IPProtocolTCP, Src: client4, Dst: rs4.String(), Sport: 40000, Dport: 8080, TTL: 63, Flags: "S"}.Frame(t)
	natReqOther := pkttest.Flow{Proto: layers.IPProtocolTCP, Src: client4, Dst: rs4.String(), Sport: 40000, Dport: 22, TTL: 63, Flags: "S"}.Frame(t)
	natReq6 := pkttest.Flow{V6: true, Proto: layers.IPProtocolTCP, Src: client6, Dst: rs6.String(), Sport: 40000, Dport: 8080, TTL: 63, Flags: "S"}.Frame(t)
	fullnatReq := pkttest.Flow{Proto: layers.IPProtocolTCP, Src: dir4.String(), Dst: rs4.String(), Sport: 61001, Dport: 80, TTL: 63, Flags: "S"}.Frame(t)
	fullnatReqOut := pkttest.Flow{Proto: layers.IPProtocolTCP, Src: dir4.String(), Dst: rs4.String(), Sport: 6100, Dport: 80, TTL: 63, Flags: "S"}.Frame(t)
	fullnatReq6 := pkttest.Flow{V6: true, Proto: layers.IPProtocolUDP, Src: dir6.String(), Dst: rs6.String(), Sport: 61999, Dport: 53, TTL: 63}.Frame(t)
	vipReply := pkttest.Flow{Proto: layers.IPProtocolTCP, Src: vip4.String(), Dst: client4, Sport: 80, Dport: 40000, TTL: 63, Flags: "SA"}.Frame(t)
	ipopts := tcp4(vip4.String(), 40000, 80)
	ipopts.IPOpts = true
	ext6 := tcp6(vip6.String(), 40000, 80)
	ext6.Ext = true
	tagged := tcp4(vip4.String(), 40000, 80)
	tagged.Vlan = true
	full := tcp4(vip4.String(), 40000, 80).Frame(t)
	echo := pkttest.Serialize(t, &layers.Ethernet{SrcMAC: pkttest.MACA, DstMAC: pkttest.MACB, EthernetType: layers.EthernetTypeIPv4},
		&layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: net.ParseIP(client4).To4(), DstIP: vip4.AsSlice()},
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0)}, gopacket.Payload(make([]byte, 16)))
	return []progCase{
		{"tcp to VIP:80", full, true},
		{"tcp to VIP:22", tcp4(vip4.String(), 40000, 22).Frame(t), false},
		{"udp to VIP:53", pkttest.Flow{Proto: layers.IPProtocolUDP, Src: client4, Dst: vip4.String(), Sport: 4000, Dport: 53, TTL: 64}.Frame(t), true},
		{"udp to VIP:80 (tcp-only service)", pkttest.Flow{Proto: layers.IPProtocolUDP, Src: client4, Dst: vip4.String(), Sport: 4000, Dport: 80, TTL: 64}.Frame(t), false},
		{"tcp to port-0 VIP", tcp4(vip4any.String(), 40000, 1234).Frame(t), true},
		{"udp to port-0 tcp VIP", pkttest.Flow{Proto: layers.IPProtocolUDP, Src: client4, Dst: vip4any.String(), Sport: 4000, Dport: 1234, TTL: 64}.Frame(t), false},
		{"tcp to VIP:80 with IPv4 options", ipopts.Frame(t), true},
		{"first fragment to VIP:80", fragment(tcp4(vip4.String(), 40000, 80).Frame(t), true, 0), true},
		{"later fragment to VIP:80", fragment(tcp4(vip4.String(), 40000, 80).Frame(t), false, 100), true},
		{"later fragment to port-0 VIP", fragment(tcp4(vip4any.String(), 40000, 80).Frame(t), true, 100), true},
		{"tcp to a director address that is a VIP", tcp4(vip4loc.String(), 40000, 80).Frame(t), true},
		{"tcp to a director address, other port", tcp4(vip4loc.String(), 40000, 22).Frame(t), false},
		{"NAT reply from RS:8080", pkttest.Flow{Proto: layers.IPProtocolTCP, Src: rs4.String(), Dst: client4, Sport: 8080, Dport: 40000, TTL: 64, Flags: "SA"}.Frame(t), true},
		{"NAT reply from RS:8080 to the director", pkttest.Flow{Proto: layers.IPProtocolTCP, Src: rs4.String(), Dst: dir4.String(), Sport: 8080, Dport: 40000, TTL: 64, Flags: "SA"}.Frame(t), false},
		{"from RS:22", pkttest.Flow{Proto: layers.IPProtocolTCP, Src: rs4.String(), Dst: client4, Sport: 22, Dport: 40000, TTL: 64, Flags: "SA"}.Frame(t), false},
		{"UDP NAT reply from RS:5353", pkttest.Flow{Proto: layers.IPProtocolUDP, Src: rs4.String(), Dst: client4, Sport: 5353, Dport: 4000, TTL: 64}.Frame(t), true},
		{"FULLNAT reply to local:61000", pkttest.Flow{Proto: layers.IPProtocolTCP, Src: rs4.String(), Dst: dir4.String(), Sport: 80, Dport: 61000, TTL: 64, Flags: "SA"}.Frame(t), true},
		{"FULLNAT reply to local:65535", pkttest.Flow{Proto: layers.IPProtocolTCP, Src: rs4.String(), Dst: dir4.String(), Sport: 80, Dport: 65535, TTL: 64, Flags: "SA"}.Frame(t), true},
		{"to local:60999", pkttest.Flow{Proto: layers.IPProtocolTCP, Src: rs4.String(), Dst: dir4.String(), Sport: 80, Dport: 60999, TTL: 64, Flags: "SA"}.Frame(t), false},
		{"udp to tcp local range", pkttest.Flow{Proto: layers.IPProtocolUDP, Src: rs4.String(), Dst: dir4.String(), Sport: 80, Dport: 61000, TTL: 64}.Frame(t), false},
		{"ICMP echo to VIP", echo, false},
		{"ICMP unreachable to VIP", icmpErr4(t, 3, "198.51.100.1", vip4.String(), vipReply), true},
		{"ICMP time exceeded to VIP", icmpErr4(t, 11, "198.51.100.1", vip4.String(), vipReply), true},
		{"ICMP redirect to VIP", icmpErr4(t, 5, "198.51.100.1", vip4.String(), vipReply), false},
		{"ICMP error from RS about a NAT request", icmpErr4(t, 3, rs4.String(), client4, natReq), true},
		{"ICMP error from RS about another port", icmpErr4(t, 3, rs4.String(), client4, natReqOther), false},
		{"ICMP error about a NAT request, to the director", icmpErr4(t, 3, rs4.String(), dir4.String(), natReq), false},
		{"ARP request for VIP", arp(t, 1, vip4.String()), true},
		{"ARP request for a director address", arp(t, 1, dir4.String()), false},
		{"ARP request for a local VIP", arp(t, 1, vip4loc.String()), false},
		{"ARP reply from VIP", arp(t, 2, vip4.String()), false},
		{"tcp6 to VIP:80", tcp6(vip6.String(), 40000, 80).Frame(t), true},
		{"tcp6 to VIP:22", tcp6(vip6.String(), 40000, 22).Frame(t), false},
		{"udp6 to VIP:443 (any protocol)", pkttest.Flow{V6: true, Proto: layers.IPProtocolUDP, Src: client6, Dst: vip6.String(), Sport: 4000, Dport: 443, TTL: 64}.Frame(t), true},
		{"tcp6 to VIP:80 behind extension headers", ext6.Frame(t), true},
		{"NAT6 reply from RS:8080", pkttest.Flow{V6: true, Proto: layers.IPProtocolTCP, Src: rs6.String(), Dst: client6, Sport: 8080, Dport: 40000, TTL: 64, Flags: "SA"}.Frame(t), true},
		{"udp6 FULLNAT reply to local", pkttest.Flow{V6: true, Proto: layers.IPProtocolUDP, Src: rs6.String(), Dst: dir6.String(), Sport: 53, Dport: 61500, TTL: 64}.Frame(t), true},
		{"NS for VIP6", ndp(t, 135, vip6.String()), true},
		{"NS for a director address", ndp(t, 135, dir6.String()), false},
		{"NA for VIP6", ndp(t, 136, vip6.String()), false},
		{"ICMPv6 unreachable to VIP6", icmpErr6(t, 1, "2001:db8::1", vip6.String(), tcp6(vip6.String(), 40000, 80).Frame(t)), true},
		{"ICMPv6 error from RS about a NAT request", icmpErr6(t, 1, rs6.String(), client6, natReq6), true},
		{"ICMPv6 echo to VIP6", icmpErr6(t, 128, "2001:db8::1", vip6.String(), tcp6(vip6.String(), 40000, 80).Frame(t)), false},
		{"802.1Q-tagged to VIP:80", tagged.Frame(t), true},
		{"802.1Q-tagged to VIP:22", func() []byte { f := tcp4(vip4.String(), 40000, 22); f.Vlan = true; return f.Frame(t) }(), false},
		{"802.1ad-tagged to VIP:80", func() []byte { f := tagged.Frame(t); f[12], f[13] = 0x88, 0xa8; return f }(), false},
		{"first fragment to VIP:22 (a TCP VIP)", fragment(tcp4(vip4.String(), 40000, 22).Frame(t), true, 0), true},
		{"later fragment from RS of a NAT service", fragment(pkttest.Flow{Proto: layers.IPProtocolUDP, Src: rs4.String(), Dst: client4, Sport: 5353, Dport: 4000, TTL: 64}.Frame(t), false, 10), true},
		{"later fragment from RS to the director", fragment(pkttest.Flow{Proto: layers.IPProtocolUDP, Src: rs4.String(), Dst: vip4loc.String(), Sport: 5353, Dport: 4000, TTL: 64}.Frame(t), false, 10), false},
		{"first fragment of an ICMP echo to VIP", fragment(append([]byte(nil), echo...), true, 0), true},
		{"truncated TCP to VIP:80", full[:14+20+2], false},
		{"truncated IPv4", full[:30], false},
		{"Ethernet header only", full[:14], false},
		{"other EtherType", append(append([]byte{}, full[:12]...), 0x88, 0xcc, 0, 0), false},
		{"tcp to VIP:80, total length past the frame", totLen(tcp4(vip4.String(), 40000, 80).Frame(t), 200), false},
		{"tcp to VIP:80, total length below the header", totLen(tcp4(vip4.String(), 40000, 80).Frame(t), 16), false},
		{"tcp6 to the IPv4-mapped VIP:80", tcp6("::ffff:"+vip4.String(), 40000, 80).Frame(t), false},
		{"NS for the IPv4-mapped VIP", ndp(t, 135, "::ffff:"+vip4.String()), false},
		{"ICMP error about a FULLNAT connection", icmpErr4(t, 3, rs4.String(), dir4.String(), fullnatReq), true},
		{"ICMP error about a FULLNAT connection, port outside the range", icmpErr4(t, 3, rs4.String(), dir4.String(), fullnatReqOut), false},
		{"ICMPv6 error about a FULLNAT connection", icmpErr6(t, 1, rs6.String(), dir6.String(), fullnatReq6), true},
	}
}

// totLen sets the IPv4 total length of a frame.
func totLen(f []byte, n uint16) []byte {
	binary.BigEndian.PutUint16(f[16:], n)
	return f
}

// TestProgram runs the XDP program in the kernel (BPF_PROG_TEST_RUN) on
// synthetic frames and checks each verdict, and that ownership's
// reference classifier agrees.
func TestProgram(t *testing.T) {
	prog, _ := testProgram(t, testSpec)
	for _, c := range progCases(t) {
		t.Run(c.name, func(t *testing.T) {
			if got := run(t, prog, c.frame); got != c.redirect {
				t.Errorf("program: redirect = %v, want %v", got, c.redirect)
			}
			if got := testSpec.Classify(c.frame) != ownership.Kernel; got != c.redirect {
				t.Errorf("reference: redirect = %v, want %v", got, c.redirect)
			}
		})
	}
}

// TestProgramUpdate changes the maps under a loaded program: no reload is
// needed, and removed entries stop matching.
func TestProgramUpdate(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	p, err := NewProgram(ProgramConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.AddInterface(1, 1); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := p.ifs[1].xsks.Put(uint32(0), uint32(fd)); err != nil {
		t.Fatal(err)
	}
	prog := p.ifs[1].prog
	frame := tcp4(vip4.String(), 40000, 80).Frame(t)
	arpReq := arp(t, 1, vip4.String())
	if run(t, prog, frame) || run(t, prog, arpReq) {
		t.Fatal("empty maps redirect")
	}
	if err := p.SetOwnership(&testSpec); err != nil {
		t.Fatal(err)
	}
	if !run(t, prog, frame) || !run(t, prog, arpReq) {
		t.Fatal("not redirected after Update")
	}
	s := testSpec
	s.Services = s.Services[1:]
	s.Neighbours = nil
	if err := p.Update(s); err != nil {
		t.Fatal(err)
	}
	if run(t, prog, frame) || run(t, prog, arpReq) {
		t.Fatal("still redirected after the service was removed")
	}
	if err := p.SetOwnership(nil); err != nil {
		t.Fatal(err)
	}
	var k addrKey
	var v uint32
	if it := p.addrs.Iterate(); it.Next(&k, &v) {
		t.Fatalf("addrs not empty after SetOwnership(nil): %x", k)
	}
	var pk portKey
	if it := p.ports.Iterate(); it.Next(&pk, &v) {
		t.Fatalf("ports not empty after SetOwnership(nil): %x", pk)
	}
	bad := ownership.Set{LocalRanges: []ownership.PortRange{{Addr: dir4, Proto: spec.ProtoTCP, First: 1, Last: 3}, {Addr: dir4, Proto: spec.ProtoTCP, First: 5, Last: 9}}}
	if err := p.Update(bad); err == nil {
		t.Fatal("disjoint ranges of one address accepted")
	}
}

// TestRemoveInterface: a removed interface's program instance is gone (its
// attachment detached), another's stays, and the interface can be added
// again.
func TestRemoveInterface(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	ns := netnstest.New(t, "xrm")
	peer := netnstest.New(t, "xrmp")
	netnstest.Veth(t, ns, "a0", peer, "a1")
	netnstest.Veth(t, ns, "b0", peer, "b1")
	ia, ib := ns.Interface(t, "a0").Index, ns.Interface(t, "b0").Index
	err := ns.Do(func() error {
		p, err := NewProgram(ProgramConfig{})
		if err != nil {
			return err
		}
		defer p.Close()
		for _, i := range []int{ia, ib} {
			if err := p.AddInterface(i, 1); err != nil {
				return err
			}
			if _, err := p.Attach(i, ModeGeneric); err != nil {
				return err
			}
		}
		if err := p.RemoveInterface(ia); err != nil {
			return err
		}
		if _, ok := p.Mode(ia); ok {
			return errors.New("a0 still attached after RemoveInterface")
		}
		if _, ok := p.Mode(ib); !ok {
			return errors.New("b0 detached by removing a0")
		}
		if err := p.RemoveInterface(ia); err != nil {
			return fmt.Errorf("removing twice: %w", err)
		}
		if out, err := ns.Run("ip", "link", "show", "a0"); err != nil || strings.Contains(out, "xdp") {
			return fmt.Errorf("a0 keeps an XDP program (%v): %s", err, out)
		}
		if out, err := ns.Run("ip", "link", "show", "b0"); err != nil || !strings.Contains(out, "xdp") {
			return fmt.Errorf("b0 lost its XDP program (%v): %s", err, out)
		}
		if err := p.AddInterface(ia, 1); err != nil {
			return fmt.Errorf("adding again: %w", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestTestRunner checks the exported runner against the table.
func TestTestRunner(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	r, err := NewTestRunner()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.SetOwnership(&testSpec); err != nil {
		t.Fatal(err)
	}
	for _, c := range progCases(t) {
		if got, err := r.Redirects(c.frame); err != nil || got != c.redirect {
			t.Errorf("%s: redirect = %v, %v; want %v", c.name, got, err, c.redirect)
		}
	}
	if got, err := r.Redirects([]byte{1, 2}); got || err != nil {
		t.Errorf("runt: %v, %v", got, err)
	}
}

// FuzzProgram checks the kernel's verdicts against ownership's reference
// classifier on arbitrary frames (seeded with the table's frames).
func FuzzProgram(f *testing.F) {
	for _, c := range progCases(f) {
		f.Add(c.frame)
	}
	prog, _ := testProgram(f, testSpec)
	f.Fuzz(func(t *testing.T, frame []byte) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("%d bytes %.200q", len(frame), frame) })()
		if len(frame) < 14 || len(frame) > 1600 {
			return // the kernel's test run wants at least an Ethernet header
		}
		got := run(t, prog, frame)
		if want := testSpec.Classify(frame) != ownership.Kernel; got != want {
			t.Fatalf("program redirect = %v, reference %v, frame %x", got, want, frame)
		}
	})
}
