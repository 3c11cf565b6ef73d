package afpacket

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"

	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/internal/fuzzwatch"
	"github.com/uvs-lb/uvs/ownership"
	"github.com/uvs-lb/uvs/spec"
)

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 2}

	vip4   = netip.MustParseAddr("198.18.0.10")
	vip6   = netip.MustParseAddr("2001:db8::10")
	rs4    = netip.MustParseAddr("198.19.0.2")
	rs6    = netip.MustParseAddr("2001:db8:1::2")
	local4 = netip.MustParseAddr("198.19.0.100")
	local6 = netip.MustParseAddr("2001:db8:1::100")
	cli4   = netip.MustParseAddr("198.18.1.1")
	cli6   = netip.MustParseAddr("2001:db8:2::1")
	other4 = netip.MustParseAddr("198.18.0.11")
	other6 = netip.MustParseAddr("2001:db8::11")
)

// etherTypeIPv4 is the name the socket tests use.
const etherTypeIPv4 = header.EtherTypeIPv4

// serialize builds a frame with checksums and lengths filled in.
func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return slices.Clone(buf.Bytes())
}

func eth(typ layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: typ}
}

func ipLayer(src, dst netip.Addr, proto layers.IPProtocol) gopacket.NetworkLayer {
	if src.Is4() {
		return &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	}
	return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
}

func etherOf(a netip.Addr) layers.EthernetType {
	if a.Is4() {
		return layers.EthernetTypeIPv4
	}
	return layers.EthernetTypeIPv6
}

// l4 builds a TCP or UDP frame.
func l4(t testing.TB, proto layers.IPProtocol, src netip.Addr, sport uint16, dst netip.Addr, dport uint16) []byte {
	ip := ipLayer(src, dst, proto)
	var tl interface {
		gopacket.SerializableLayer
		SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
	}
	if proto == layers.IPProtocolTCP {
		tl = &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), SYN: true, Window: 1000}
	} else {
		tl = &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	}
	_ = tl.SetNetworkLayerForChecksum(ip)
	return serialize(t, eth(etherOf(src)), ip.(gopacket.SerializableLayer), tl, gopacket.Payload("hello"))
}

func udp4(t testing.TB, src, dst netip.Addr) []byte {
	return l4(t, layers.IPProtocolUDP, src, 1234, dst, 80)
}

func tcp6(t testing.TB, src, dst netip.Addr) []byte {
	return l4(t, layers.IPProtocolTCP, src, 1234, dst, 80)
}

func icmp4(t testing.TB, src, dst netip.Addr, typ uint8, ihlOptions bool, fragOff uint16) []byte {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: src.AsSlice(), DstIP: dst.AsSlice(), FragOffset: fragOff}
	if ihlOptions {
		ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
	}
	ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0)}
	return serialize(t, eth(layers.EthernetTypeIPv4), ip, ic, gopacket.Payload(make([]byte, 28)))
}

// icmpQuote builds an ICMP error from src to dst quoting the IP packet of
// the frame quoted (its header and 8 bytes more).
func icmpQuote(t testing.TB, typ uint8, src, dst netip.Addr, quoted []byte) []byte {
	in := quoted[header.EthernetMinSize:]
	n := header.IPv6Size + 8
	if src.Is4() {
		n = int(in[0]&15)*4 + 8
	}
	if src.Is4() {
		ip := ipLayer(src, dst, layers.IPProtocolICMPv4)
		return serialize(t, eth(layers.EthernetTypeIPv4), ip.(gopacket.SerializableLayer),
			&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 3)}, gopacket.Payload(in[:n]))
	}
	ip := ipLayer(src, dst, layers.IPProtocolICMPv6)
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 4)}
	_ = ic.SetNetworkLayerForChecksum(ip)
	return serialize(t, eth(layers.EthernetTypeIPv6), ip.(gopacket.SerializableLayer), ic, gopacket.Payload(append(make([]byte, 4), in[:n]...)))
}

func icmp6(t testing.TB, src, dst netip.Addr, typ uint8) []byte {
	ip := &layers.IPv6{Version: 6, HopLimit: 255, NextHeader: layers.IPProtocolICMPv6, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 0)}
	_ = ic.SetNetworkLayerForChecksum(ip)
	return serialize(t, eth(layers.EthernetTypeIPv6), ip, ic, gopacket.Payload(make([]byte, 24)))
}

// ns is a neighbour solicitation for target.
func ns(t testing.TB, target netip.Addr) []byte {
	ip := &layers.IPv6{Version: 6, HopLimit: 255, NextHeader: layers.IPProtocolICMPv6, SrcIP: cli6.AsSlice(),
		DstIP: net.ParseIP("ff02::1:ff00:10")}
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(header.ICMPv6NeighborSolicit, 0)}
	_ = ic.SetNetworkLayerForChecksum(ip)
	return serialize(t, eth(layers.EthernetTypeIPv6), ip, ic, gopacket.Payload(append(make([]byte, 4), target.AsSlice()...)))
}

func arpFor(t testing.TB, op uint16, target netip.Addr) []byte {
	a := &layers.ARP{
		AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, Operation: op,
		SourceHwAddress: macA, SourceProtAddress: cli4.AsSlice(),
		DstHwAddress: make([]byte, 6), DstProtAddress: target.AsSlice(),
	}
	return serialize(t, eth(layers.EthernetTypeARP), a)
}

func arp(t testing.TB) []byte { return arpFor(t, layers.ARPRequest, vip4) }

// tag8021Q inserts an 802.1Q tag (VLAN 7) after the MAC addresses.
func tag8021Q(f []byte) []byte {
	return slices.Concat(f[:header.EthernetTypeOff], []byte{0x81, 0, 0, 7}, f[header.EthernetTypeOff:])
}

// qinq makes the outer tag of a tagged frame an 802.1ad one.
func qinq(f []byte) []byte {
	f = slices.Clone(f)
	binary.BigEndian.PutUint16(f[header.EthernetTypeOff:], header.EtherTypeQinQ)
	return f
}

// frag4 makes an IPv4 frame a fragment: the MF flag and the offset (in
// 8-byte units).
func frag4(f []byte, more bool, off uint16) []byte {
	f = slices.Clone(f)
	ff := off & header.IPv4FragOffMask
	if more {
		ff |= header.IPv4FlagMF
	}
	binary.BigEndian.PutUint16(f[header.EthernetMinSize+header.IPv4FlagsFragOff:], ff)
	return f
}

func vlanUDP4(t testing.TB, dst netip.Addr) []byte {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: cli4.AsSlice(), DstIP: dst.AsSlice()}
	u := &layers.UDP{SrcPort: 1234, DstPort: 80}
	_ = u.SetNetworkLayerForChecksum(ip)
	return serialize(t, eth(layers.EthernetTypeDot1Q),
		&layers.Dot1Q{VLANIdentifier: 7, Type: layers.EthernetTypeIPv4}, ip, u)
}

// tagVM is a filter in golang.org/x/net/bpf's VM, fed frames as the
// kernel feeds a packet socket's filter. The VM implements no ancillary
// load but the length: an outer 802.1Q or 802.1ad tag of a frame is taken
// out of its bytes, as skb_vlan_untag (net/core/dev.c) moves it to skb
// metadata before the packet taps run, and the program's loads of
// SKF_AD_VLAN_TAG_PRESENT, SKF_AD_VLAN_TPID and SKF_AD_VLAN_TAG are replaced
// by the constants that metadata gives: one VM per tag protocol.
type tagVM struct {
	t     testing.TB
	insns []bpf.Instruction
	vms   map[uint32]*bpf.VM
}

// vm loads a filter into tagVMs.
func vm(t testing.TB, raw []bpf.RawInstruction) *tagVM {
	t.Helper()
	insns, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatalf("filter does not disassemble")
	}
	v := &tagVM{t: t, insns: insns, vms: map[uint32]*bpf.VM{}}
	for _, tpid := range []uint32{0, header.EtherTypeVLAN, header.EtherTypeQinQ} {
		v.vm(tpid)
	}
	return v
}

func (v *tagVM) vm(tpid uint32) *bpf.VM {
	if m := v.vms[tpid]; m != nil {
		return m
	}
	insns := slices.Clone(v.insns)
	for i, in := range insns {
		if e, ok := in.(bpf.LoadExtension); ok {
			switch e.Num {
			case bpf.ExtVLANTagPresent:
				insns[i] = bpf.LoadConstant{Dst: bpf.RegA, Val: min(tpid, 1)}
			case bpf.ExtVLANProto:
				insns[i] = bpf.LoadConstant{Dst: bpf.RegA, Val: tpid}
			case bpf.ExtVLANTag:
				insns[i] = bpf.LoadConstant{Dst: bpf.RegA, Val: 7}
			}
		}
	}
	m, err := bpf.NewVM(insns)
	if err != nil {
		v.t.Fatalf("NewVM: %v", err)
	}
	v.vms[tpid] = m
	return m
}

// kernelView returns frame as a packet socket's filter sees it: without
// its outer VLAN tag, whose protocol is tpid (0: untagged).
func kernelView(frame []byte) (tpid uint32, f []byte) {
	if len(frame) >= header.EthernetVLANSize {
		switch et := uint32(binary.BigEndian.Uint16(frame[header.EthernetTypeOff:])); et {
		case header.EtherTypeVLAN, header.EtherTypeQinQ:
			return et, slices.Concat(frame[:header.EthernetTypeOff], frame[header.EthernetVLANSize-2:])
		}
	}
	return 0, frame
}

// accepts runs frame through v, failing on a truncating snap length.
func accepts(t testing.TB, v *tagVM, frame []byte) bool {
	t.Helper()
	tpid, f := kernelView(frame)
	n, err := v.vm(tpid).Run(f)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n > 0 && n < len(f) {
		t.Fatalf("accepted %d bytes of %d: frame truncated", n, len(f))
	}
	return n > 0
}

// exactSet is a Set with every class for the exact filter's own tests (the
// ownership package's differential test runs a larger one).
func exactSet() *ownership.Set {
	tcp, udp := spec.ProtoTCP, spec.ProtoUDP
	return &ownership.Set{
		Services: []ownership.Endpoint{
			{Addr: vip4, Proto: tcp, Port: 80}, {Addr: other4}, {Addr: vip6, Proto: tcp, Port: 80}, {Addr: other6, Proto: udp},
		},
		NATReplies: []ownership.Endpoint{{Addr: rs4, Proto: tcp, Port: 8080}, {Addr: rs6, Proto: tcp, Port: 8080}},
		LocalRanges: []ownership.PortRange{
			{Addr: local4, First: 61000, Last: 65535}, {Addr: local6, Proto: udp, First: 61000, Last: 61999},
		},
		VIPs:       []netip.Addr{vip4, other4, vip6, other6},
		Neighbours: []netip.Addr{vip4, vip6},
		Local:      []netip.Addr{cli4, local4, local6},
	}
}

type filterCase struct {
	name  string
	frame []byte
	want  bool
}

func filterCases(t testing.TB) []filterCase {
	tcp, udp := layers.IPProtocolTCP, layers.IPProtocolUDP
	return []filterCase{
		{"tcp4 to VIP:80", l4(t, tcp, cli4, 1, vip4, 80), true},
		{"tcp4 to VIP:81", l4(t, tcp, cli4, 1, vip4, 81), false},
		{"udp4 to VIP:80", l4(t, udp, cli4, 1, vip4, 80), false},
		{"udp4 to port-0 VIP", l4(t, udp, cli4, 1, other4, 9), true},
		{"tcp6 to VIP:80", l4(t, tcp, cli6, 1, vip6, 80), true},
		{"tcp6 to a UDP port-0 VIP", l4(t, tcp, cli6, 1, other6, 80), false},
		{"udp6 to port-0 VIP", l4(t, udp, cli6, 1, other6, 80), true},
		{"NAT reply", l4(t, tcp, rs4, 8080, netip.MustParseAddr("203.0.113.1"), 1), true},
		{"NAT reply to a director address", l4(t, tcp, rs4, 8080, cli4, 1), false},
		{"NAT6 reply", l4(t, tcp, rs6, 8080, cli6, 1), true},
		{"FULLNAT reply", l4(t, udp, rs4, 53, local4, 61000), true},
		{"to a local address below the range", l4(t, udp, rs4, 53, local4, 60999), false},
		{"FULLNAT6 reply", l4(t, udp, rs6, 53, local6, 61999), true},
		{"tcp6 to a UDP local range", l4(t, tcp, rs6, 53, local6, 61999), false},
		{"ICMP error to VIP", icmp4(t, rs4, vip4, 3, false, 0), true},
		{"ICMP error to VIP, IPv4 options", icmp4(t, rs4, vip4, 11, true, 0), true},
		{"ICMP echo to VIP", icmp4(t, rs4, vip4, 8, false, 0), false},
		{"ICMP error to a client", icmp4(t, rs4, cli4, 3, false, 0), false},
		{"ICMP error about a NAT connection", icmpQuote(t, 3, rs4, other4, l4(t, tcp, other4, 1, rs4, 8080)), true},
		{"ICMP error about a FULLNAT connection", icmpQuote(t, 3, rs4, local4, l4(t, udp, local4, 62000, rs4, 53)), true},
		{"ICMP error to a local address quoting another", icmpQuote(t, 3, rs4, local4, l4(t, udp, cli4, 62000, rs4, 53)), false},
		{"ICMPv6 error to VIP", icmp6(t, rs6, vip6, 1), true},
		{"ICMPv6 error about a NAT connection", icmpQuote(t, 1, rs6, cli6, l4(t, tcp, cli6, 1, rs6, 8080)), true},
		{"ICMPv6 error about a FULLNAT connection", icmpQuote(t, 2, rs6, local6, l4(t, udp, local6, 61000, rs6, 53)), true},
		{"ICMPv6 error about a FULLNAT TCP connection", icmpQuote(t, 2, rs6, local6, l4(t, tcp, local6, 61000, rs6, 53)), false},
		{"ARP request for VIP", arp(t), true},
		{"ARP request for a client", arpFor(t, layers.ARPRequest, cli4), false},
		{"ARP reply", arpFor(t, layers.ARPReply, vip4), false},
		{"NS for VIP", ns(t, vip6), true},
		{"NS for another address", ns(t, other6), false},
		{"802.1Q udp4 to VIP:80 (a TCP VIP)", vlanUDP4(t, vip4), false},
		{"802.1Q tcp4 to VIP:80", tag8021Q(l4(t, tcp, cli4, 1, vip4, 80)), true},
		{"802.1Q tcp6 to VIP:80", tag8021Q(l4(t, tcp, cli6, 1, vip6, 80)), true},
		{"802.1Q tcp4 to VIP:81", tag8021Q(l4(t, tcp, cli4, 1, vip4, 81)), false},
		{"802.1ad tcp4 to VIP:80", qinq(tag8021Q(l4(t, tcp, cli4, 1, vip4, 80))), false},
		{"802.1Q in 802.1Q tcp4 to VIP:80", tag8021Q(tag8021Q(l4(t, tcp, cli4, 1, vip4, 80))), false},
		{"tcp4 first fragment to VIP:81 (a TCP VIP)", frag4(l4(t, tcp, cli4, 1, vip4, 81), true, 0), true},
		{"tcp4 non-first fragment to VIP", frag4(l4(t, tcp, cli4, 1, vip4, 80), false, 10), true},
		{"udp4 first fragment to VIP:80 (a TCP VIP)", frag4(udp4(t, cli4, vip4), true, 0), false},
		{"udp4 first fragment to a client", frag4(udp4(t, cli4, cli4), true, 0), false},
		{"udp4 non-first fragment to a local range", frag4(l4(t, udp, rs4, 53, local4, 1), false, 10), true},
		{"tcp4 non-first fragment from RS", frag4(l4(t, tcp, rs4, 8080, netip.MustParseAddr("203.0.113.1"), 1), false, 10), true},
		{"tcp4 non-first fragment from RS to a director address", frag4(l4(t, tcp, rs4, 8080, cli4, 1), false, 10), false},
		{"short frame", []byte{1, 2, 3}, false},
		{"truncated ipv4", udp4(t, cli4, vip4)[:20], false},
	}
}

// TestExactFilter checks the exact filter, the reference classifier and the
// table against each other.
func TestExactFilter(t *testing.T) {
	s := exactSet()
	raw, err := Filter(s)
	if err != nil {
		t.Fatal(err)
	}
	v := vm(t, raw)
	for _, c := range filterCases(t) {
		if got := accepts(t, v, c.frame); got != c.want {
			t.Errorf("%s: accepted = %v, want %v", c.name, got, c.want)
		}
		if ref := s.Classify(c.frame) != ownership.Kernel; ref != c.want {
			t.Errorf("%s: Classify owns = %v, want %v", c.name, ref, c.want)
		}
	}
	// The kernel's own loads of the VLAN tag, not the VM's stand-in, are
	// in the program.
	insns, _ := bpf.Disassemble(raw)
	if !slices.Contains(insns, bpf.Instruction(bpf.LoadExtension{Num: bpf.ExtVLANTagPresent})) {
		t.Error("the filter does not check SKF_AD_VLAN_TAG_PRESENT")
	}
}

// TestFilterEmpty checks that an empty Set owns nothing.
func TestFilterEmpty(t *testing.T) {
	raw, err := Filter(nil)
	if err != nil {
		t.Fatal(err)
	}
	v := vm(t, raw)
	for _, c := range filterCases(t) {
		if accepts(t, v, c.frame) {
			t.Errorf("%s: accepted with nothing owned", c.name)
		}
	}
	if _, err := Filter(&ownership.Set{VIPs: []netip.Addr{{}}}); err == nil {
		t.Error("invalid address accepted")
	}
}

// TestFilterFarJumps grows the Set until the program needs trampolines
// and then more than 4096 instructions, checking the verdicts on the way,
// and FilterFor's fallbacks.
func TestFilterFarJumps(t *testing.T) {
	s := exactSet()
	frames := filterCases(t)
	check := func(v *tagVM, what string, cs []filterCase) {
		t.Helper()
		for _, c := range cs {
			if got := accepts(t, v, c.frame); got != c.want {
				t.Errorf("%s: %s: accepted = %v, want %v", what, c.name, got, c.want)
			}
		}
	}
	var sizes []int
	for i := range 1000 {
		a4 := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
		s.Services = append(s.Services, ownership.Endpoint{Addr: a4, Proto: spec.ProtoTCP, Port: uint16(1000 + i)})
		a6 := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 9, 14: byte(i >> 8), 15: byte(i)})
		if i%10 == 0 {
			s.NATReplies = append(s.NATReplies, ownership.Endpoint{Addr: a6, Proto: spec.ProtoUDP, Port: uint16(i + 1)})
		}
		if i == 100 || i == 300 || i == 450 {
			raw, err := Filter(s)
			if err != nil {
				t.Fatalf("%d services: %v", i+1, err)
			}
			sizes = append(sizes, len(raw))
			check(vm(t, raw), fmt.Sprintf("%d services", i+1), append(frames,
				filterCase{"last service", l4(t, layers.IPProtocolTCP, cli4, 1, a4, uint16(1000+i)), true},
				filterCase{"last service, other port", l4(t, layers.IPProtocolTCP, cli4, 1, a4, uint16(999+i)), false},
				filterCase{"last NAT reply", l4(t, layers.IPProtocolUDP, a6, uint16(i+1), cli6, 1), true},
				filterCase{"last NAT reply, other port", l4(t, layers.IPProtocolUDP, a6, uint16(i+2), cli6, 1), false}))
		}
	}
	t.Logf("filter sizes: %v instructions", sizes)
	if _, err := Filter(s); !errors.Is(err, ErrFilterTooLong) {
		t.Fatalf("1000 services: %v, want ErrFilterTooLong", err)
	}
	raw, exact, err := FilterFor(s)
	if err != nil || exact || len(raw) < 1000 {
		t.Fatalf("FilterFor: %d instructions, exact %v, %v; want the address filter", len(raw), exact, err)
	}
	v := vm(t, raw)
	for _, c := range frames {
		if c.want && !accepts(t, v, c.frame) {
			t.Errorf("address fallback rejects %s", c.name)
		}
	}
	if accepts(t, v, l4(t, layers.IPProtocolUDP, cli4, 1, netip.MustParseAddr("203.0.113.9"), 1)) {
		t.Error("address fallback accepts a frame of no owned address")
	}
	// Too many addresses even for the address filter: accept everything.
	for i := range 4000 {
		s.VIPs = append(s.VIPs, netip.AddrFrom4([4]byte{10, 2, byte(i >> 8), byte(i)}))
	}
	raw, exact, err = FilterFor(s)
	if err != nil || exact {
		t.Fatalf("FilterFor: exact %v, %v", exact, err)
	}
	if len(raw) != 1 || !accepts(t, vm(t, raw), []byte{1}) {
		t.Fatalf("last fallback %v is not accept-all", raw)
	}
}

// TestAssembleTrampolines checks far conditional jumps, to a return and
// to another instruction, in both directions of the test.
func TestAssembleTrampolines(t *testing.T) {
	for _, far := range []int{10, 254, 255, 256, 600} {
		var a asm
		ret7, mid, ok := a.label(), a.label(), a.label()
		a.op(bpf.LoadExtension{Num: bpf.ExtLen})
		a.jmp(bpf.JumpEqual, 1, ret7, next)
		a.jmp(bpf.JumpEqual, 2, mid, next)
		a.jmp(bpf.JumpGreaterThan, 3, next, ret7)
		for range far {
			a.op(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 0})
		}
		a.ja(ok)
		a.place(mid)
		a.op(bpf.RetConstant{Val: 5})
		a.place(ret7)
		a.op(bpf.RetConstant{Val: 7})
		a.place(ok)
		a.op(bpf.RetConstant{Val: 9})
		insns, err := a.assemble()
		if err != nil {
			t.Fatal(err)
		}
		v, err := bpf.NewVM(insns)
		if err != nil {
			t.Fatalf("far %d: %v", far, err)
		}
		for n, want := range map[int]int{1: 7, 2: 5, 3: 7, 4: 9} {
			if got, _ := v.Run(make([]byte, n)); got != want {
				t.Errorf("far %d: length %d returns %d, want %d", far, n, got, want)
			}
		}
	}
	// Backward: to a return (copied), and to anything else (an error).
	var a asm
	ret, ld := a.label(), a.label()
	a.place(ld)
	a.op(bpf.LoadExtension{Num: bpf.ExtLen})
	a.place(ret)
	a.op(bpf.RetConstant{Val: 3})
	a.jmp(bpf.JumpEqual, 0, ret, next)
	a.ja(ret)
	if insns, err := a.assemble(); err != nil || len(insns) != 5 {
		t.Errorf("backward jumps to a return: %v, %v", insns, err)
	}
	a.ja(ld)
	if _, err := a.assemble(); err == nil {
		t.Error("backward jump assembled")
	}
}

// FuzzFilter checks the exact filter against ownership's Classify on
// arbitrary frames.
func FuzzFilter(f *testing.F) {
	for _, c := range filterCases(f) {
		f.Add(c.frame)
	}
	s := exactSet()
	raw, err := Filter(s)
	if err != nil {
		f.Fatal(err)
	}
	v := vm(f, raw)
	f.Fuzz(func(t *testing.T, frame []byte) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("%d bytes %.200q", len(frame), frame) })()
		if got, want := accepts(t, v, frame), s.Classify(frame) != ownership.Kernel; got != want {
			t.Fatalf("filter %v, Classify %v for % x", got, want, frame)
		}
	})
}

// TestAddressSpecSuperset mutates the table's frames at random and checks
// that the address filter of a Set accepts whatever the exact one does.
func TestAddressSpecSuperset(t *testing.T) {
	s, _ := exactSet().Normalize()
	exactRaw, err := Filter(s)
	if err != nil {
		t.Fatal(err)
	}
	addrRaw, err := AddressFilter(AddressSpec(s))
	if err != nil {
		t.Fatal(err)
	}
	exact, coarse := vm(t, exactRaw), vm(t, addrRaw)
	rnd := rand.New(rand.NewPCG(1, 2))
	var owned int
	for range 20000 {
		cs := filterCases(t)
		fr := slices.Clone(cs[rnd.IntN(len(cs))].frame)
		for range rnd.IntN(3) {
			if len(fr) > 0 {
				fr[rnd.IntN(len(fr))] = byte(rnd.Uint32())
			}
		}
		if accepts(t, exact, fr) {
			owned++
			if !accepts(t, coarse, fr) {
				t.Fatalf("the address filter rejects an owned frame % x", fr)
			}
		}
	}
	if owned < 1000 {
		t.Fatalf("only %d owned frames: the test proves little", owned)
	}
}

// The address filter's own tests.

func testSpec() FilterSpec {
	return FilterSpec{
		VIPs:        []netip.Addr{vip4, vip6, netip.MustParseAddr("198.18.0.20")},
		RealServers: []netip.Addr{rs4, rs6, netip.MustParseAddr("::ffff:198.19.0.3")},
		LocalAddrs:  []netip.Addr{local4, local6},
		ARP:         true,
		NDP:         true,
	}
}

func TestAddressFilter(t *testing.T) {
	raw, err := AddressFilter(testSpec())
	if err != nil {
		t.Fatal(err)
	}
	noARP := testSpec()
	noARP.ARP, noARP.NDP = false, false
	rawNo, err := AddressFilter(noARP)
	if err != nil {
		t.Fatal(err)
	}
	full, bare := vm(t, raw), vm(t, rawNo)
	ext6 := tcp6(t, cli6, other6)
	ext6[header.EthernetMinSize+header.IPv6NextHeaderOff] = header.ProtoHopByHop

	tests := []struct {
		name       string
		frame      []byte
		want, bare bool // verdict with the full spec, and without ARP/NDP
	}{
		{"udp4 to VIP", udp4(t, cli4, vip4), true, true},
		{"udp4 to second VIP", udp4(t, cli4, netip.MustParseAddr("198.18.0.20")), true, true},
		{"udp4 to other", udp4(t, cli4, other4), false, false},
		{"udp4 from VIP to client", udp4(t, vip4, cli4), false, false},
		{"udp4 from real server", udp4(t, rs4, cli4), true, true},
		{"udp4 from mapped real server", udp4(t, netip.MustParseAddr("198.19.0.3"), cli4), true, true},
		{"udp4 to real server", udp4(t, cli4, rs4), false, false},
		{"udp4 to local", udp4(t, rs4, local4), true, true},
		{"udp4 from local", udp4(t, local4, other4), false, false},
		{"tcp6 to VIP", tcp6(t, cli6, vip6), true, true},
		{"tcp6 to other", tcp6(t, cli6, other6), false, false},
		{"tcp6 differs in last word", tcp6(t, cli6, netip.MustParseAddr("2001:db8::10:0")), false, false},
		{"tcp6 from real server", tcp6(t, rs6, cli6), true, true},
		{"tcp6 to local", tcp6(t, rs6, local6), true, true},
		{"tcp6 v4 VIP bytes in v6 dst", tcp6(t, cli6, netip.MustParseAddr("::ffff:198.18.0.10")), false, false},
		{"tcp6 to other behind an extension header", ext6, true, true},
		{"icmp4 unreachable", icmp4(t, other4, cli4, 3, false, 0), true, true},
		{"icmp4 source quench", icmp4(t, other4, cli4, 4, false, 0), true, true},
		{"icmp4 time exceeded with options", icmp4(t, other4, cli4, 11, true, 0), true, true},
		{"icmp4 parameter problem", icmp4(t, other4, cli4, 12, false, 0), true, true},
		{"icmp4 echo", icmp4(t, other4, cli4, 8, false, 0), false, false},
		{"icmp4 echo with options", icmp4(t, other4, cli4, 8, true, 0), false, false},
		{"icmp4 redirect", icmp4(t, other4, cli4, 5, false, 0), false, false},
		{"icmp4 later fragment", icmp4(t, other4, cli4, 3, false, 100), false, false},
		{"icmp4 echo to VIP", icmp4(t, cli4, vip4, 8, false, 0), true, true},
		{"icmp6 packet too big", icmp6(t, other6, cli6, 2), true, true},
		{"icmp6 unreachable", icmp6(t, other6, cli6, 1), true, true},
		{"icmp6 echo", icmp6(t, other6, cli6, 128), false, false},
		{"icmp6 neighbour solicitation", icmp6(t, other6, netip.MustParseAddr("ff02::1:ff00:10"), 135), true, false},
		{"icmp6 neighbour advertisement", icmp6(t, other6, cli6, 136), true, false},
		{"icmp6 router solicitation", icmp6(t, other6, netip.MustParseAddr("ff02::2"), 133), false, false},
		{"arp", arp(t), true, false},
		{"802.1Q udp4 to VIP", vlanUDP4(t, vip4), true, true},
		{"short frame", []byte{1, 2, 3}, false, false},
		{"truncated ipv4", udp4(t, cli4, vip4)[:20], false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, c := range []struct {
				v    *tagVM
				spec FilterSpec
				want bool
			}{{full, testSpec(), tt.want}, {bare, noARP, tt.bare}} {
				if got := accepts(t, c.v, tt.frame); got != c.want {
					t.Errorf("accepted = %v, want %v", got, c.want)
				}
				if ref := refAddress(c.spec, tt.frame); ref != c.want {
					t.Errorf("reference says %v, want %v", ref, c.want)
				}
			}
		})
	}
}

func TestAddressFilterEmptyAndErrors(t *testing.T) {
	raw, err := AddressFilter(FilterSpec{})
	if err != nil {
		t.Fatal(err)
	}
	v := vm(t, raw)
	for _, f := range [][]byte{udp4(t, cli4, vip4), tcp6(t, cli6, vip6), arp(t)} {
		if accepts(t, v, f) {
			t.Errorf("empty spec accepted a frame")
		}
	}
	if !accepts(t, v, icmp4(t, other4, cli4, 3, false, 0)) {
		t.Errorf("empty spec dropped an ICMP error")
	}

	if _, err := AddressFilter(FilterSpec{VIPs: []netip.Addr{{}}}); err == nil {
		t.Errorf("invalid address accepted")
	}
	many := make([]netip.Addr, 500)
	for i := range many {
		many[i] = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)})
	}
	if _, err := AddressFilter(FilterSpec{VIPs: many}); !errors.Is(err, ErrFilterTooLong) {
		t.Errorf("500 IPv6 VIPs: err = %v, want ErrFilterTooLong", err)
	}
	raw, err = AddressFilter(FilterSpec{VIPs: many[:400]})
	if err != nil {
		t.Fatalf("400 IPv6 VIPs: %v", err)
	}
	v = vm(t, raw)
	if !accepts(t, v, tcp6(t, cli6, many[399])) {
		t.Errorf("last of 400 VIPs not matched")
	}
	if accepts(t, v, tcp6(t, cli6, netip.MustParseAddr("2001:db8::ffff"))) {
		t.Errorf("non-VIP matched among 400")
	}
}

// refAddress is the reference the address filter is checked against: the
// same rules written plainly in Go.
func refAddress(spec FilterSpec, f []byte) bool {
	_, f = kernelView(f) // the kernel's: see tagVM
	if len(f) < 14 {
		return false
	}
	has := func(list []netip.Addr, a netip.Addr) bool {
		return slices.ContainsFunc(list, func(x netip.Addr) bool { return x.Unmap() == a })
	}
	switch binary.BigEndian.Uint16(f[12:]) {
	case header.EtherTypeARP:
		return spec.ARP
	case header.EtherTypeIPv4:
		if len(f) < 14+20 {
			// The kernel's filter aborts (drops) on loads past the end;
			// a frame this short matches nothing.
			return false
		}
		src := netip.AddrFrom4([4]byte(f[26:30]))
		dst := netip.AddrFrom4([4]byte(f[30:34]))
		if has(spec.VIPs, dst) || has(spec.LocalAddrs, dst) || has(spec.RealServers, src) {
			return true
		}
		if f[23] != header.ProtoICMPv4 || binary.BigEndian.Uint16(f[20:])&0x1fff != 0 {
			return false
		}
		l4 := 14 + int(f[14]&0xf)*4
		if l4 >= len(f) {
			return false
		}
		switch f[l4] {
		case 3, 4, 11, 12:
			return true
		}
		return false
	case header.EtherTypeIPv6:
		if len(f) < 14+40 {
			return false
		}
		src := netip.AddrFrom16([16]byte(f[22:38]))
		dst := netip.AddrFrom16([16]byte(f[38:54]))
		if has(spec.VIPs, dst) || has(spec.LocalAddrs, dst) || has(spec.RealServers, src) {
			return true
		}
		switch f[20] {
		case header.ProtoHopByHop, header.ProtoRouting, header.ProtoFragment, header.ProtoDstOpts:
			return true
		}
		if f[20] != header.ProtoICMPv6 || len(f) <= 54 {
			return false
		}
		typ := f[54]
		return typ < 128 || spec.NDP && (typ == 135 || typ == 136)
	}
	return false
}

// FuzzAddressFilter checks the address filter against refAddress on
// arbitrary frames.
func FuzzAddressFilter(f *testing.F) {
	for _, fr := range [][]byte{
		udp4(f, cli4, vip4), udp4(f, rs4, cli4), udp4(f, cli4, other4),
		tcp6(f, cli6, vip6), tcp6(f, rs6, cli6), tcp6(f, cli6, other6),
		icmp4(f, other4, cli4, 3, true, 0), icmp4(f, other4, cli4, 8, false, 0),
		icmp6(f, other6, cli6, 2), icmp6(f, other6, cli6, 135), arp(f), vlanUDP4(f, vip4),
		udp4(f, cli4, vip4)[:33], tcp6(f, cli6, vip6)[:54], {},
	} {
		f.Add(fr, true)
		f.Add(fr, false)
	}
	specFor := func(full bool) FilterSpec {
		s := testSpec()
		s.ARP, s.NDP = full, full
		return s
	}
	progs := map[bool]*tagVM{}
	for _, full := range []bool{true, false} {
		raw, err := AddressFilter(specFor(full))
		if err != nil {
			f.Fatal(err)
		}
		progs[full] = vm(f, raw)
	}
	f.Fuzz(func(t *testing.T, frame []byte, full bool) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("full %t, %d bytes %.200q", full, len(frame), frame) })()
		if got, want := accepts(t, progs[full], frame), refAddress(specFor(full), frame); got != want {
			t.Fatalf("filter %v, reference %v for % x", got, want, frame)
		}
	})
}
