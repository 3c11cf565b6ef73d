//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/dataplane/afpacket"
	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/wait"
)

const fragInRules = `-A -u 10.0.1.100:7100 -s rr
-a -u 10.0.1.100:7100 -r 10.0.2.11:7100 -m
-A -u 10.0.1.101:7101 -s rr
-a -u 10.0.1.101:7101 -r 10.0.2.11:7101 -g
-A -u [fd00:1::100]:7100 -s rr
-a -u [fd00:1::100]:7100 -r [fd00:2::11]:7100 -m
`

// TestFragIn: a UDP datagram larger than the client's link MTU (1500),
// sent with fragmentation allowed, reaches a NAT service and a DR service
// in fragments; uvsd reassembles them (as IPVS sees datagrams through
// nf_defrag) and the real server, on a jumbo LAN, receives it whole and
// its answer gets back. Before, every fragment, the first included, was
// dropped as malformed and nothing was delivered.
func TestFragIn(t *testing.T) {
	l := newNATLab(t)
	// The real servers' LAN is a jumbo one. AF_XDP takes frames up to a
	// UMEM page (native XDP on veth an MTU of about 3500): 3500 there.
	jumbo := "9000"
	if os.Getenv("UVS_E2E_IO") == "afxdp" {
		jumbo = "3500"
	}
	l.dir.IP(t, "link", "set", "d1", "mtu", jumbo)
	for _, dev := range []string{"s0", "s1", "s2", "br0"} {
		l.sw.IP(t, "link", "set", dev, "mtu", jumbo)
	}
	for _, rs := range l.rs {
		rs.IP(t, "link", "set", "r0", "mtu", jumbo)
	}
	rs := l.rs[0]
	// DR: the VIP on the real server's lo, not answering ARP for it.
	rs.AddrAdd(t, "lo", "10.0.1.101/32")
	rs.Sysctl(t, "net.ipv4.conf.all.arp_ignore", "1")
	rs.Sysctl(t, "net.ipv4.conf.all.arp_announce", "2")
	nat := fragSizeServer(t, rs, "udp", ":7100")
	dr := fragSizeServer(t, rs, "udp4", ":7101")
	startUVSD(t, l.dir, fragInRules)

	const payload = 3000 // 3028 bytes of IPv4, 3048 of IPv6: in three fragments at 1500
	for _, tc := range []struct {
		name, addr string
		sizes      <-chan int
		reply      bool
	}{
		{"nat ipv4", "10.0.1.100:7100", nat, true},
		{"nat ipv6", "[fd00:1::100]:7100", nat, true},
		// DR: what is checked is the real server's receipt. Its reply
		// (from the VIP, routed back through the director's kernel in
		// this lab, where the client is on the VIP's subnet) is not part
		// of fragment handling.
		{"dr ipv4", "10.0.1.101:7101", dr, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialUDP(t, l.cli, tc.addr)
			defer c.Close()
			if tc.addr[0] != '[' {
				setPMTUDisc(t, c.(*net.UDPConn), unix.IP_PMTUDISC_DONT)
			}
			if mtu := fragLinkMTU(t, l.cli, "c0"); mtu != 1500 {
				t.Fatalf("client link MTU %d, want 1500 (the datagram must leave in fragments)", mtu)
			}
			buf := make([]byte, payload)
			for i := range buf {
				buf[i] = byte(i)
			}
			// UDP on a loaded machine: send again if nothing arrived in
			// a while; every datagram that arrives must be whole.
			got := false
			for try := 0; try < 4 && !got; try++ {
				if _, err := c.Write(buf); err != nil {
					t.Fatalf("write: %v", err)
				}
				select {
				case n := <-tc.sizes:
					if n != payload {
						t.Fatalf("real server received %d bytes, want %d", n, payload)
					}
					got = true
				case <-time.After(udpTimeout / 2):
				}
			}
			if !got {
				t.Fatalf("the real server received nothing of 4 fragmented %d-byte datagrams", payload)
			}
			if !tc.reply {
				return
			}
			_ = c.SetReadDeadline(time.Now().Add(udpTimeout))
			reply := make([]byte, 64)
			n, err := c.Read(reply)
			if err != nil || string(reply[:n]) != strconv.Itoa(payload) {
				t.Fatalf("reply %q, %v; want %q", reply[:n], err, strconv.Itoa(payload))
			}
		})
	}

	// uvsd did the reassembling: its workers count the fragments and the
	// datagrams (uvsadm --counters).
	out, err := l.dir.Run("env", "UVS_NO_AUTOSTART=1", binary("uvsadm"), "--counters", "--json")
	if err != nil {
		t.Fatalf("uvsadm --counters --json: %v\n%s", err, out)
	}
	var cs struct {
		Counters []struct {
			Name  string
			Total uint64
		}
	}
	if err := json.Unmarshal([]byte(out), &cs); err != nil {
		t.Fatalf("--counters --json: %v\n%s", err, out)
	}
	totals := map[string]uint64{}
	for _, c := range cs.Counters {
		totals[c.Name] = c.Total
	}
	if totals["dataplane.reassembled"] < 3 || totals["dataplane.frag-in"] < 9 || totals["dataplane.frag-bad"] != 0 {
		t.Errorf("counters: reassembled %d, frag-in %d, frag-bad %d; want at least 3 datagrams from 9 fragments, none bad",
			totals["dataplane.reassembled"], totals["dataplane.frag-in"], totals["dataplane.frag-bad"])
	}
}

// fragSizeServer (used by the MTU tests too) answers every datagram to addr in ns with its length
// and reports the length on the returned channel.
func fragSizeServer(t *testing.T, ns *netnstest.NS, network, addr string) <-chan int {
	t.Helper()
	var pc net.PacketConn
	if err := ns.Do(func() error {
		var err error
		pc, err = net.ListenPacket(network, addr)
		return err
	}); err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	sizes := make(chan int, 16)
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			select {
			case sizes <- n:
			default:
			}
			_, _ = pc.WriteTo([]byte(strconv.Itoa(n)), from)
		}
	}()
	return sizes
}

// fragLinkMTU returns the MTU of dev in ns.
func fragLinkMTU(t *testing.T, ns *netnstest.NS, dev string) int {
	t.Helper()
	var mtu int
	if err := ns.Do(func() error {
		ifc, err := net.InterfaceByName(dev)
		if err == nil {
			mtu = ifc.MTU
		}
		return err
	}); err != nil {
		t.Fatalf("interface %s: %v", dev, err)
	}
	return mtu
}

// TestFragFanout: the fragments of one datagram reach one worker. The
// AF_PACKET hash fanout uvsd uses (PACKET_FANOUT_HASH) picks a socket by
// __skb_get_hash_symmetric, whose flow dissector stops at the IP header of
// any fragment, the first included (no FLOW_DISSECTOR_F_PARSE_1ST_FRAG),
// so the first fragment, which has the ports, hashes like the others.
// Sixteen fragmented datagrams to as many addresses: each one's three
// fragments on one socket, and both sockets used.
func TestFragFanout(t *testing.T) {
	a, b := netnstest.New(t, "ffa"), netnstest.New(t, "ffb")
	netnstest.Veth(t, a, "va", b, "vb")
	a.AddrAdd(t, "va", "10.9.0.1/24")
	b.AddrAdd(t, "vb", "10.9.0.2/24")
	va := a.Interface(t, "va")
	const datagrams, port = 16, 9100
	for i := range datagrams {
		b.NeighAdd(t, "vb", fmt.Sprintf("10.9.0.%d", 100+i), va.HardwareAddr)
	}
	cfg := afpacket.Config{Interface: "va", FanoutGroup: 0x7f16, FanoutMode: afpacket.FanoutHash, PollTimeout: 10 * time.Millisecond}
	var socks []*afpacket.Socket
	for range 2 {
		if err := a.Do(func() error {
			s, err := afpacket.Open(cfg)
			if err == nil {
				socks = append(socks, s)
			}
			return err
		}); err != nil {
			t.Fatalf("open: %v", err)
		}
	}
	t.Cleanup(func() {
		for _, s := range socks {
			_ = s.Close()
		}
	})
	var c *net.UDPConn
	if err := b.Do(func() error {
		var err error
		c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 9, 0, 2)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	setPMTUDisc(t, c, unix.IP_PMTUDISC_DONT)
	buf := make([]byte, 3000)
	for i := range datagrams {
		dst := &net.UDPAddr{IP: net.IPv4(10, 9, 0, byte(100+i)), Port: port}
		if _, err := c.WriteTo(buf, dst); err != nil {
			t.Fatalf("send to %v: %v", dst, err)
		}
	}
	type dgram struct {
		dst netip.Addr
		id  uint16
	}
	owner := map[dgram]int{}
	count := map[dgram]int{}
	perSock := make([]int, len(socks))
	total := 0
	frames := make([]dataplane.Frame, 64)
	var p header.Parsed
	wait.ForBlocking(t, 10*time.Second, func() bool {
		for si, s := range socks {
			n, err := s.ReadBatch(frames)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range frames[:n] {
				data := f.Data()
				p.Parse(data)
				if p.Kind != header.KindIPv4 || p.Reason != header.ReasonFragment {
					continue
				}
				d := dgram{p.DstAddr(), header.IPv4(data[p.L3Off:]).ID()}
				if o, ok := owner[d]; ok && o != si {
					t.Errorf("datagram %v id %d: fragments on sockets %d and %d (this one at offset %d)", d.dst, d.id, o, si, p.FragOffset)
				}
				owner[d] = si
				count[d]++
				perSock[si]++
				total++
			}
		}
		return total == 3*datagrams
	}, "%d fragments, read %v", 3*datagrams, wait.Lazy(func() any { return total }))
	for d, n := range count {
		if n != 3 {
			t.Errorf("datagram %v id %d: %d fragments, want 3", d.dst, d.id, n)
		}
	}
	if perSock[0] == 0 || perSock[1] == 0 {
		t.Errorf("fragments per socket %v: the hash fanout did not spread %d datagrams", perSock, datagrams)
	}
}
