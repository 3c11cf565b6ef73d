package afpacket

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/ownership"
	"github.com/uvs-lb/uvs/spec"
)

// TestFilterInKernel runs the exact filter where the VM cannot: attached
// to a packet socket, with the kernel's own SKF_AD_VLAN_TAG_PRESENT and
// SKF_AD_VLAN_TPID loads and its removal of the outer tag. Frames sent
// from b to a's MAC, each marked by its source port, must arrive exactly
// when ownership classifies them as uvsd's: one 802.1Q tag carrying an
// owned packet (whatever the VLAN), fragments (first and not), a reply
// from any port of a port-0 NAT real server; not 802.1ad, not two tags.
func TestFilterInKernel(t *testing.T) {
	tp := newTopo(t, false)
	vip := netip.MustParseAddr("198.18.5.80")
	rs0 := netip.MustParseAddr("198.18.5.90")
	cli := netip.MustParseAddr("203.0.113.7")
	s := &ownership.Set{
		Services:   []ownership.Endpoint{{Addr: vip, Proto: spec.ProtoTCP, Port: 80}},
		NATReplies: []ownership.Endpoint{{Addr: rs0, Proto: spec.ProtoUDP}},
		VIPs:       []netip.Addr{vip},
	}
	raw, err := Filter(s)
	if err != nil {
		t.Fatal(err)
	}
	prog := make([]unix.SockFilter, len(raw))
	for i, in := range raw {
		prog[i] = unix.SockFilter{Code: in.Op, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	var rx int
	if err := tp.a.Do(func() error {
		var err error
		// Protocol 0 until bound: a socket opened with ETH_P_ALL queues
		// every frame of the namespace (the MLD reports of an interface
		// coming up, say) from socket() on, before the filter is attached.
		rx, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		fp := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
		if err := unix.SetsockoptSockFprog(rx, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fp); err != nil {
			return err
		}
		if err := unix.SetsockoptTimeval(rx, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 5}); err != nil {
			return err
		}
		return unix.Bind(rx, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: tp.aIf.Index})
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(rx) })
	var tx int
	if err := tp.b.Do(func() error {
		var err error
		tx, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(tx) })

	const (
		tcp, udp = header.ProtoTCP, header.ProtoUDP
		mf       = header.IPv4FlagMF
	)
	frames := []struct {
		name  string
		tags  []uint32
		src   netip.Addr
		dst   netip.Addr
		proto uint8
		ff    uint16
		dport uint16
		want  bool
	}{
		{"untagged tcp to VIP:80", nil, cli, vip, tcp, 0, 80, true},
		{"untagged tcp to VIP:81", nil, cli, vip, tcp, 0, 81, false},
		{"802.1Q VLAN 100 tcp to VIP:80", []uint32{0x8100_0064}, cli, vip, tcp, 0, 80, true},
		{"802.1Q VLAN 0 tcp to VIP:80", []uint32{0x8100_0000}, cli, vip, tcp, 0, 80, true},
		{"802.1Q VLAN 100 tcp to VIP:81", []uint32{0x8100_0064}, cli, vip, tcp, 0, 81, false},
		{"802.1ad VLAN 100 tcp to VIP:80", []uint32{0x88a8_0064}, cli, vip, tcp, 0, 80, false},
		{"802.1Q in 802.1Q tcp to VIP:80", []uint32{0x8100_0064, 0x8100_0007}, cli, vip, tcp, 0, 80, false},
		{"802.1Q in 802.1ad tcp to VIP:80", []uint32{0x88a8_0064, 0x8100_0007}, cli, vip, tcp, 0, 80, false},
		{"tcp first fragment to VIP:81", nil, cli, vip, tcp, mf, 81, true},
		{"802.1Q tcp later fragment to VIP", []uint32{0x8100_0064}, cli, vip, tcp, 100, 0, true},
		{"udp first fragment to VIP (a TCP VIP)", nil, cli, vip, udp, mf, 80, false},
		{"udp from the port-0 NAT real server, port 7777", nil, rs0, cli, udp, 0, 4000, true},
		{"802.1Q udp from the port-0 NAT real server, port 40000", []uint32{0x8100_0064}, rs0, cli, udp, 0, 4000, true},
		{"tcp from the port-0 NAT real server", nil, rs0, cli, tcp, 0, 4000, false},
		{"the last frame: untagged tcp to VIP:80", nil, cli, vip, tcp, 0, 80, true},
	}
	var want []uint16
	for i, f := range frames {
		sport := uint16(10000 + i) // the frame's mark
		l4 := make([]byte, 20)
		binary.BigEndian.PutUint16(l4, sport)
		binary.BigEndian.PutUint16(l4[2:], f.dport)
		binary.BigEndian.PutUint16(l4[4:], 20)
		ip := make([]byte, header.IPv4MinSize, 40)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[header.IPv4TotalLenOff:], 40)
		binary.BigEndian.PutUint16(ip[header.IPv4FlagsFragOff:], f.ff)
		ip[header.IPv4TTLOff], ip[header.IPv4ProtoOff] = 64, f.proto
		sa, da := f.src.As4(), f.dst.As4()
		copy(ip[header.IPv4SrcOff:], sa[:])
		copy(ip[header.IPv4DstOff:], da[:])
		ip = append(ip, l4...)
		header.IPv4(ip).UpdateChecksum()
		eth := slices.Concat(tp.aIf.HardwareAddr, tp.bIf.HardwareAddr)
		for _, tag := range f.tags {
			eth = binary.BigEndian.AppendUint32(eth, tag)
		}
		eth = binary.BigEndian.AppendUint16(eth, header.EtherTypeIPv4)
		frame := append(eth, ip...)
		if got := s.Classify(frame) != ownership.Kernel; got != f.want {
			t.Fatalf("%s: ownership owns = %v, want %v", f.name, got, f.want)
		}
		if f.want {
			want = append(want, sport)
		}
		if err := unix.Sendto(tx, frame, 0, &unix.SockaddrLinklayer{Ifindex: tp.bIf.Index}); err != nil {
			t.Fatalf("%s: send: %v", f.name, err)
		}
	}
	// What the filter let through, up to the last frame: every owned
	// frame and nothing else (sorted: the sender may have moved between
	// CPUs, whose backlogs veth feeds).
	buf := make([]byte, 2048)
	var got []uint16
	for !slices.Contains(got, want[len(want)-1]) || len(got) < len(want) {
		n, _, err := unix.Recvfrom(rx, buf, 0)
		if err != nil {
			t.Fatalf("received %v of %v, then: %v", got, want, err)
		}
		f := buf[:n]
		if n < header.EthernetMinSize+header.IPv4MinSize+2 || binary.BigEndian.Uint16(f[header.EthernetTypeOff:]) != header.EtherTypeIPv4 {
			t.Fatalf("the filter let a frame through that is not IPv4 (the tag is the kernel's to remove): % x", f)
		}
		got = append(got, binary.BigEndian.Uint16(f[header.EthernetMinSize+header.IPv4MinSize:]))
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("frames through the filter (by source port) %v, want %v", got, want)
	}
}
