package khook

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/internal/wait"
	"github.com/uvs-lb/uvs/ownership"
	"github.com/uvs-lb/uvs/spec"
)

// The tests below look at what the director's kernel receives with the
// hooks of a computed Set installed on d0: frames uvsd owns must never
// reach its IP stack (its Ip InReceives and Ip6InReceives counters stay
// put while khook's rules count them as dropped), and frames that are the
// kernel's must (the counters grow by as many). The frames come from a
// peer namespace with no IP of its own (an AF_PACKET socket), so nothing
// else moves the counters.

var (
	kvCli4   = netip.MustParseAddr("203.0.113.7")
	kvCli6   = netip.MustParseAddr("2001:db8:7::7")
	kvRS     = netip.MustParseAddr("198.18.8.2") // NAT real server of vip4:53 and vip4:9000
	kvRS0    = netip.MustParseAddr("198.18.8.3") // NAT real server of the port-0 service
	kvRS6    = netip.MustParseAddr("fd75:8::2")
	kvVIP4p0 = netip.MustParseAddr("198.18.7.101") // UDP port 0, persistent, NAT
)

// kernelViewSet is the Set of the tests: NAT services of every kind that
// the items of issue #16 touch, computed as the director computes it.
func kernelViewSet(t *testing.T) *ownership.Set {
	t.Helper()
	svc := func(p spec.Proto, vip netip.Addr, port uint16, rs netip.Addr, rport uint16) ownership.Service {
		return ownership.Service{
			Config: spec.Service{Key: spec.ServiceKey{Proto: p, Addr: vip, Port: port}},
			Dests:  []spec.Dest{{Addr: rs, Port: rport, Fwd: spec.FwdMasq, Weight: 1}},
		}
	}
	s, err := ownership.Compute(ownership.Input{
		Services: []ownership.Service{
			svc(spec.ProtoUDP, vip4, 53, kvRS, 5353),
			svc(spec.ProtoSCTP, vip4, 9000, kvRS, 9000),
			svc(spec.ProtoUDP, vip6, 53, kvRS6, 5353),
			svc(spec.ProtoUDP, kvVIP4p0, 0, kvRS0, 0),
		},
		Host: []netip.Addr{dirIP4, vip4, dirIP6, vip6},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// kview is the director namespace with the hooks, and an AF_PACKET socket
// in the peer namespace.
type kview struct {
	tp      *topo
	conn    *nftables.Conn
	tx      int
	ifindex int
	dstMAC  [6]byte
}

func newKView(t *testing.T, s *ownership.Set) *kview {
	t.Helper()
	requireRoot(t)
	k := &kview{tp: &topo{dir: newNS(t), peer: newNS(t)}}
	// The peer sends nothing of its own: no IPv6 (no router or neighbour
	// solicitations), no address.
	k.tp.peer.Sysctl(t, "net.ipv6.conf.all.disable_ipv6", "1")
	k.tp.peer.Sysctl(t, "net.ipv6.conf.default.disable_ipv6", "1")
	// Nor does the director send anything that comes back to it (no
	// duplicate address detection).
	k.tp.dir.Sysctl(t, "net.ipv6.conf.all.accept_dad", "0")
	k.tp.dir.Sysctl(t, "net.ipv6.conf.default.accept_dad", "0")
	link(t, k.tp.dir, "d0", k.tp.peer, "p0")
	for _, a := range []string{dirIP4.String() + "/24", vip4.String() + "/32"} {
		k.tp.dir.ip(t, "addr", "add", a, "dev", "d0")
	}
	for _, a := range []string{dirIP6.String() + "/64", vip6.String() + "/128"} {
		k.tp.dir.ip(t, "addr", "add", a, "dev", "d0", "nodad")
	}
	k.dstMAC = [6]byte(k.tp.dir.Interface(t, "d0").HardwareAddr)
	k.ifindex = k.tp.peer.Interface(t, "p0").Index
	h := New(Options{NetNS: k.tp.dir.h})
	if err := h.Apply(Spec{Interfaces: []Interface{{Name: "d0"}}, Owned: s}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Remove() })
	k.conn = k.tp.conn(t)
	k.tp.peer.do(t, func() error {
		var err error
		k.tx, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		return err
	})
	t.Cleanup(func() { unix.Close(k.tx) })
	return k
}

// dropped is the packets khook's rules dropped on d0.
func (k *kview) dropped(t *testing.T) uint64 {
	t.Helper()
	var n uint64
	for _, ch := range []string{"in_d0", "icmp4_d0", "icmp6_d0"} {
		rules, err := k.conn.GetRules(table(), &nftables.Chain{Name: ch, Table: table()})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rules {
			for _, e := range r.Exprs {
				if c, ok := e.(*expr.Counter); ok {
					n += c.Packets
				}
			}
		}
	}
	return n
}

// received is the director's Ip InReceives plus Ip6InReceives: the IP
// packets its stack took in (ip_rcv_core and ip6_rcv_core count them
// first thing).
func (k *kview) received(t *testing.T) uint64 {
	t.Helper()
	var n uint64
	k.tp.dir.do(t, func() error {
		snmp, err := os.ReadFile("/proc/thread-self/net/snmp")
		if err != nil {
			return err
		}
		var names []string
		for line := range strings.Lines(string(snmp)) {
			f := strings.Fields(line)
			if len(f) == 0 || f[0] != "Ip:" {
				continue
			}
			if names == nil {
				names = f
				continue
			}
			for i, name := range names {
				if name == "InReceives" && i < len(f) {
					v, err := strconv.ParseUint(f[i], 10, 64)
					if err != nil {
						return err
					}
					n += v
				}
			}
		}
		snmp6, err := os.ReadFile("/proc/thread-self/net/snmp6")
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(bytes.NewReader(snmp6))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 2 && f[0] == "Ip6InReceives" {
				v, err := strconv.ParseUint(f[1], 10, 64)
				if err != nil {
					return err
				}
				n += v
			}
		}
		return nil
	})
	return n
}

// send sends frames (Ethernet, with d0's MAC filled in) from the peer.
func (k *kview) send(t *testing.T, frames [][]byte) {
	t.Helper()
	for _, f := range frames {
		copy(f, k.dstMAC[:])
		if err := unix.Sendto(k.tx, f, 0, &unix.SockaddrLinklayer{Ifindex: k.ifindex}); err != nil {
			t.Fatalf("send % x: %v", f, err)
		}
	}
}

// kvFrame is a named test frame.
type kvFrame struct {
	name  string
	frame []byte
}

// check sends the owned frames, which khook must drop, every one, before
// the director's stack sees any; then the kernel's frames, which its
// stack must take in, every one, with none dropped.
func (k *kview) check(t *testing.T, owned, kernel []kvFrame) {
	t.Helper()
	for _, f := range owned {
		d0, r0 := k.dropped(t), k.received(t)
		k.send(t, [][]byte{f.frame})
		var d, r uint64
		if !wait.Until(5*time.Second, func() bool {
			d, r = k.dropped(t), k.received(t)
			return d > d0 || r > r0
		}) {
			t.Errorf("%s: neither dropped by the hooks nor received by the kernel within 5s (the kernel dropped it before its IP stack)", f.name)
			continue
		}
		if r != r0 || d != d0+1 {
			t.Errorf("%s: uvsd's, but the director's stack received %d packet(s) and the hooks dropped %d", f.name, r-r0, d-d0)
		}
	}
	for _, f := range kernel {
		d0, r0 := k.dropped(t), k.received(t)
		k.send(t, [][]byte{f.frame})
		var d, r uint64
		if !wait.Until(5*time.Second, func() bool {
			d, r = k.dropped(t), k.received(t)
			return d > d0 || r > r0
		}) {
			t.Errorf("%s: the kernel's, but its stack did not receive it within 5s", f.name)
			continue
		}
		if d != d0 || r != r0+1 {
			t.Errorf("%s: the kernel's, but the hooks dropped %d and its stack received %d", f.name, d-d0, r-r0)
		}
	}
}

// Frame builders: Ethernet (destination filled in by send), IPv4 with its
// flags and fragment offset field, IPv6 with a fragment header.

func kvEth(et uint16, tags ...uint32) []byte {
	f := make([]byte, 12, 64)
	copy(f[6:], []byte{0x02, 0x75, 0x76, 0x73, 0, 9})
	for _, tag := range tags {
		f = binary.BigEndian.AppendUint32(f, tag)
	}
	return binary.BigEndian.AppendUint16(f, et)
}

// kvIPv4 returns an IPv4 packet; ff is the flags and fragment offset field.
func kvIPv4(src, dst netip.Addr, proto uint8, ff uint16, payload []byte) []byte {
	b := make([]byte, header.IPv4MinSize, header.IPv4MinSize+len(payload))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[header.IPv4TotalLenOff:], uint16(header.IPv4MinSize+len(payload)))
	binary.BigEndian.PutUint16(b[4:], 0x7531) // ID
	binary.BigEndian.PutUint16(b[header.IPv4FlagsFragOff:], ff)
	b[header.IPv4TTLOff], b[header.IPv4ProtoOff] = 64, proto
	s, d := src.As4(), dst.As4()
	copy(b[header.IPv4SrcOff:], s[:])
	copy(b[header.IPv4DstOff:], d[:])
	b = append(b, payload...)
	header.IPv4(b).UpdateChecksum()
	return b
}

// kvIPv6Frag returns an IPv6 packet with a fragment header (offset in
// 8-byte units, the M flag).
func kvIPv6Frag(src, dst netip.Addr, proto uint8, off uint16, more bool, payload []byte) []byte {
	b := make([]byte, header.IPv6Size+header.IPv6FragSize, header.IPv6Size+header.IPv6FragSize+len(payload))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[header.IPv6PayloadLenOff:], uint16(header.IPv6FragSize+len(payload)))
	b[header.IPv6NextHeaderOff], b[7] = header.ProtoFragment, 64
	s, d := src.As16(), dst.As16()
	copy(b[header.IPv6SrcOff:], s[:])
	copy(b[header.IPv6DstOff:], d[:])
	fh := b[header.IPv6Size:]
	fh[0] = proto
	m := uint16(0)
	if more {
		m = 1
	}
	binary.BigEndian.PutUint16(fh[header.IPv6FragOffOff:], off<<3|m)
	binary.BigEndian.PutUint32(fh[4:], 0x75760001)
	return append(b, payload...)
}

// kvPorts is a transport header's first eight bytes (a UDP header with a
// length covering 64 bytes of payload, or the start of an SCTP one) and
// payload.
func kvPorts(sport, dport uint16, payload int) []byte {
	b := make([]byte, 8+payload)
	binary.BigEndian.PutUint16(b, sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(8+payload))
	return b
}

func v4Frame(p []byte, tags ...uint32) []byte {
	return append(kvEth(header.EtherTypeIPv4, tags...), p...)
}

func v6Frame(p []byte, tags ...uint32) []byte {
	return append(kvEth(header.EtherTypeIPv6, tags...), p...)
}

const (
	mf     = header.IPv4FlagMF
	udp    = header.ProtoUDP
	sctpP  = header.ProtoSCTP
	tag100 = 0x8100_0064 // 802.1Q, VLAN 100
	tag0   = 0x8100_0000 // 802.1Q priority tag: VLAN 0
)

// TestKernelSeesNoOwnedFragment: every fragment, first or not, IPv4 and
// IPv6, of a datagram to a service's address or from a NAT real server
// stays away from the director's stack (before: the first fragment was
// dropped, later ones went to a kernel that could not reassemble them);
// fragments addressed to the director itself still reach it.
func TestKernelSeesNoOwnedFragment(t *testing.T) {
	k := newKView(t, kernelViewSet(t))
	owned := []kvFrame{
		{"udp4 first fragment to VIP:53", v4Frame(kvIPv4(kvCli4, vip4, udp, mf, kvPorts(4000, 53, 64)))},
		{"udp4 last fragment to VIP", v4Frame(kvIPv4(kvCli4, vip4, udp, 9, make([]byte, 40)))},
		{"udp4 middle fragment to VIP", v4Frame(kvIPv4(kvCli4, vip4, udp, mf|3, make([]byte, 40)))},
		{"udp4 first fragment to VIP:54", v4Frame(kvIPv4(kvCli4, vip4, udp, mf, kvPorts(4000, 54, 64)))},
		{"sctp4 later fragment to VIP", v4Frame(kvIPv4(kvCli4, vip4, sctpP, 20, make([]byte, 40)))},
		{"udp4 later fragment from the NAT real server", v4Frame(kvIPv4(kvRS, kvCli4, udp, 20, make([]byte, 40)))},
		{"udp6 first fragment to VIP:53", v6Frame(kvIPv6Frag(kvCli6, vip6, udp, 0, true, kvPorts(4000, 53, 64)))},
		{"udp6 last fragment to VIP", v6Frame(kvIPv6Frag(kvCli6, vip6, udp, 9, false, make([]byte, 40)))},
	}
	kernel := []kvFrame{
		{"udp4 first fragment to the director", v4Frame(kvIPv4(kvCli4, dirIP4, udp, mf, kvPorts(4000, 53, 64)))},
		{"udp4 last fragment to the director", v4Frame(kvIPv4(kvCli4, dirIP4, udp, 9, make([]byte, 40)))},
		{"udp4 fragment from the NAT real server to the director", v4Frame(kvIPv4(kvRS, dirIP4, udp, mf, kvPorts(5353, 4000, 64)))},
		{"tcp4 fragment to VIP (no TCP service)", v4Frame(kvIPv4(kvCli4, vip4, header.ProtoTCP, mf, kvPorts(4000, 80, 64)))},
		{"udp6 first fragment to the director", v6Frame(kvIPv6Frag(kvCli6, dirIP6, udp, 0, true, kvPorts(4000, 53, 64)))},
		{"udp6 atomic fragment to VIP:54", v6Frame(kvIPv6Frag(kvCli6, vip6, udp, 0, false, kvPorts(4000, 54, 0)))},
	}
	k.check(t, owned, kernel)
}

// TestKernelSeesNoOwnedVLANFrame: what one 802.1Q tag carries is owned as
// if untagged (before: tagged frames were the kernel's, which serves a
// priority-tagged frame, VLAN 0, like an untagged one); 802.1ad and
// frames of the kernel's still reach it.
func TestKernelSeesNoOwnedVLANFrame(t *testing.T) {
	k := newKView(t, kernelViewSet(t))
	owned := []kvFrame{
		{"802.1Q VLAN 0 udp4 to VIP:53", v4Frame(kvIPv4(kvCli4, vip4, udp, 0, kvPorts(4000, 53, 16)), tag0)},
		{"802.1Q VLAN 100 udp4 to VIP:53", v4Frame(kvIPv4(kvCli4, vip4, udp, 0, kvPorts(4000, 53, 16)), tag100)},
		{"802.1Q VLAN 0 sctp4 to VIP:9000", v4Frame(kvIPv4(kvCli4, vip4, sctpP, 0, kvPorts(4000, 9000, 16)), tag0)},
		{"802.1Q VLAN 0 NAT reply", v4Frame(kvIPv4(kvRS, kvCli4, udp, 0, kvPorts(5353, 4000, 16)), tag0)},
		{"802.1Q VLAN 0 udp4 fragment to VIP", v4Frame(kvIPv4(kvCli4, vip4, udp, 9, make([]byte, 40)), tag0)},
		{"802.1Q VLAN 0 udp6 fragment to VIP", v6Frame(kvIPv6Frag(kvCli6, vip6, udp, 0, true, kvPorts(4000, 53, 16)), tag0)},
	}
	kernel := []kvFrame{
		{"802.1Q VLAN 0 udp4 to the director", v4Frame(kvIPv4(kvCli4, dirIP4, udp, 0, kvPorts(4000, 53, 16)), tag0)},
		{"802.1Q VLAN 0 udp4 to VIP:54", v4Frame(kvIPv4(kvCli4, vip4, udp, 0, kvPorts(4000, 54, 16)), tag0)},
		{"802.1ad VLAN 0 udp4 to VIP:53", v4Frame(kvIPv4(kvCli4, vip4, udp, 0, kvPorts(4000, 53, 16)), 0x88a8_0000)},
		{"untagged udp4 to the director", v4Frame(kvIPv4(kvCli4, dirIP4, udp, 0, kvPorts(4000, 53, 16)))},
	}
	k.check(t, owned, kernel)
}

// TestKernelSeesNoPort0NATReply: the replies of a real server of a port-0
// NAT service, from any port, are uvsd's (before: not owned, the kernel
// got them), and so are ICMP errors about its connections; its traffic to
// the director itself is the kernel's.
func TestKernelSeesNoPort0NATReply(t *testing.T) {
	k := newKView(t, kernelViewSet(t))
	quoted := kvIPv4(kvCli4, kvRS0, udp, 0, kvPorts(4000, 7777, 0))
	icmpErr := append([]byte{3, 3, 0, 0, 0, 0, 0, 0}, quoted...)
	owned := []kvFrame{
		{"udp4 from the port-0 real server, port 7777", v4Frame(kvIPv4(kvRS0, kvCli4, udp, 0, kvPorts(7777, 4000, 16)))},
		{"udp4 from the port-0 real server, port 40000", v4Frame(kvIPv4(kvRS0, kvCli4, udp, 0, kvPorts(40000, 4000, 16)))},
		{"icmp4 error about a connection to the port-0 real server", v4Frame(kvIPv4(netip.MustParseAddr("203.0.113.254"), kvCli4, header.ProtoICMPv4, 0, icmpErr))},
	}
	kernel := []kvFrame{
		{"udp4 from the port-0 real server to the director", v4Frame(kvIPv4(kvRS0, dirIP4, udp, 0, kvPorts(7777, 4000, 16)))},
		{"tcp4 from the port-0 real server (a UDP service)", v4Frame(kvIPv4(kvRS0, kvCli4, header.ProtoTCP, 0, kvPorts(7777, 4000, 16)))},
		{"udp4 from another host, port 7777", v4Frame(kvIPv4(kvRS, kvCli4, udp, 0, kvPorts(7777, 4000, 16)))},
	}
	k.check(t, owned, kernel)
}

func (f kvFrame) String() string { return fmt.Sprintf("%s (% x)", f.name, f.frame) }

// TestKernelSeesNoTunnelICMP: an ICMPv4 error about the director's own
// IPIP, GRE or GUE packet to a TUN real server (a router's
// fragmentation-needed, addressed to the director's own address) is uvsd's,
// which learns the path MTU from it as ip_vs_in_icmp does (before: the
// kernel's, and uvsd never saw it); errors about other packets the
// director sent stay the kernel's.
func TestKernelSeesNoTunnelICMP(t *testing.T) {
	ipip, gre, gue := netip.MustParseAddr("198.18.9.1"), netip.MustParseAddr("198.18.9.2"), netip.MustParseAddr("198.18.9.3")
	tun := func(a netip.Addr, typ spec.TunType, port uint16) spec.Dest {
		return spec.Dest{Addr: a, Fwd: spec.FwdTunnel, Weight: 1, TunType: typ, TunPort: port}
	}
	s, err := ownership.Compute(ownership.Input{
		Services: []ownership.Service{{
			Config: spec.Service{Key: spec.ServiceKey{Proto: spec.ProtoTCP, Addr: vip4, Port: 80}},
			Dests:  []spec.Dest{tun(ipip, spec.TunIPIP, 0), tun(gre, spec.TunGRE, 0), tun(gue, spec.TunGUE, 6080)},
		}},
		Host: []netip.Addr{dirIP4, vip4, dirIP6, vip6},
	})
	if err != nil {
		t.Fatal(err)
	}
	k := newKView(t, s)
	router := netip.MustParseAddr("198.18.7.254")
	// The client's request as the director tunnels it.
	inner := kvIPv4(kvCli4, vip4, header.ProtoTCP, 0, kvPorts(40000, 80, 12))
	fragNeeded := func(src, dst netip.Addr, proto uint8, encap []byte) kvFrame {
		q := kvIPv4(src, dst, proto, 0, append(encap, inner...))
		icmp := append([]byte{header.ICMPv4DestUnreachable, header.ICMPv4CodeFragNeeded, 0, 0, 0, 0, 0x05, 0x78}, q[:min(len(q), 28+20)]...)
		return kvFrame{fmt.Sprintf("frag-needed about %s→%s protocol %d", src, dst, proto), v4Frame(kvIPv4(router, dirIP4, header.ProtoICMPv4, 0, icmp))}
	}
	gueHdr := func(dport uint16) []byte {
		return append(kvPorts(50000, dport, 0)[:8], 0, header.ProtoIPIP, 0, 0)
	}
	greHdr := []byte{0, 0, 0x08, 0}
	owned := []kvFrame{
		fragNeeded(dirIP4, ipip, header.ProtoIPIP, nil),
		fragNeeded(dirIP4, gre, header.ProtoGRE, greHdr),
		fragNeeded(dirIP4, gue, header.ProtoUDP, gueHdr(6080)),
	}
	kernel := []kvFrame{
		fragNeeded(dirIP4, gre, header.ProtoIPIP, nil),                               // not the real server's tunnel type
		fragNeeded(dirIP4, gue, header.ProtoUDP, gueHdr(6081)),                       // not its tunnel port
		fragNeeded(dirIP4, netip.MustParseAddr("198.18.9.9"), header.ProtoIPIP, nil), // not a real server
		fragNeeded(netip.MustParseAddr("198.18.7.9"), ipip, header.ProtoIPIP, nil),   // not sent by the director
	}
	k.check(t, owned, kernel)
}
