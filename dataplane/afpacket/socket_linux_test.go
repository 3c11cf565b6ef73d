package afpacket

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/wait"
)

// Addresses of the test topology (RFC 2544 benchmarking block).
var (
	ipA  = netip.MustParseAddr("198.18.5.1")
	ipB  = netip.MustParseAddr("198.18.5.2")
	ipA2 = netip.MustParseAddr("198.18.6.1")
	ipB2 = netip.MustParseAddr("198.18.6.2")
	// Addresses nobody owns; b sends to them at a's MAC.
	ipOwned    = netip.MustParseAddr("198.18.5.100")
	ipNotOwned = netip.MustParseAddr("198.18.5.101")
)

const testTimeout = 5 * time.Second

// ringFor returns cfg with a receive ring that holds n frames sent before
// they are read, however the sender is scheduled. The kernel hands a block
// to userspace when it is full or when its BlockTimeout passes, so on a
// loaded machine the sends spread over many timeouts and a block may close
// with one frame in it: a ring sized by bytes (four 64 KB blocks for 200
// small frames) fills and drops. A block per frame never fills; the spare
// blocks take the namespace's own chatter (IPv6 router solicitations and
// listener reports) and the block a reader still holds.
func ringFor(cfg Config, n int) Config {
	cfg.BlockSize = os.Getpagesize()
	cfg.BlockCount = n + ringSpare
	return cfg
}

const ringSpare = 16

// topo is two namespaces joined by a veth pair va (in a) - vb (in b).
type topo struct {
	a, b       *netnstest.NS
	aIf, bIf   *net.Interface
	aIf2, bIf2 *net.Interface // second pair va2 - vb2, if requested
}

func newTopo(t testing.TB, second bool) *topo {
	t.Helper()
	tp := &topo{a: netnstest.New(t, "afa"), b: netnstest.New(t, "afb")}
	netnstest.Veth(t, tp.a, "va", tp.b, "vb")
	tp.a.AddrAdd(t, "va", ipA.String()+"/24")
	tp.b.AddrAdd(t, "vb", ipB.String()+"/24")
	tp.aIf = tp.a.Interface(t, "va")
	tp.bIf = tp.b.Interface(t, "vb")
	// Static neighbours: no ARP in the way of the test traffic.
	tp.a.NeighAdd(t, "va", ipB.String(), tp.bIf.HardwareAddr)
	tp.b.NeighAdd(t, "vb", ipA.String(), tp.aIf.HardwareAddr)
	tp.b.NeighAdd(t, "vb", ipOwned.String(), tp.aIf.HardwareAddr)
	tp.b.NeighAdd(t, "vb", ipNotOwned.String(), tp.aIf.HardwareAddr)
	if second {
		netnstest.Veth(t, tp.a, "va2", tp.b, "vb2")
		tp.a.AddrAdd(t, "va2", ipA2.String()+"/24")
		tp.b.AddrAdd(t, "vb2", ipB2.String()+"/24")
		tp.aIf2 = tp.a.Interface(t, "va2")
		tp.bIf2 = tp.b.Interface(t, "vb2")
		tp.b.NeighAdd(t, "vb2", ipA2.String(), tp.aIf2.HardwareAddr)
	}
	return tp
}

// open opens a socket inside ns and closes it at cleanup.
func open(t testing.TB, ns *netnstest.NS, cfg Config) *Socket {
	t.Helper()
	var s *Socket
	err := ns.Do(func() error {
		var err error
		s, err = Open(cfg)
		return err
	})
	if err != nil {
		t.Fatalf("Open in %s: %v", ns.Name, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// udpConn opens an unbound UDP socket inside ns, or one bound to port.
func udpConn(t testing.TB, ns *netnstest.NS, port int) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := ns.Do(func() error {
		var err error
		c, err = net.ListenUDP("udp4", &net.UDPAddr{Port: port})
		return err
	})
	if err != nil {
		t.Fatalf("udp socket in %s: %v", ns.Name, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func sendUDP(t testing.TB, c *net.UDPConn, dst netip.Addr, port int, payload string) {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort([]byte(payload), netip.AddrPortFrom(dst, uint16(port))); err != nil {
		t.Fatalf("send to %v:%d: %v", dst, port, err)
	}
}

// udpInfo is what the tests need of a received IPv4/UDP frame.
type udpInfo struct {
	src, dst netip.Addr
	dport    int
	payload  string
}

// parseUDP4 decodes an untagged Ethernet/IPv4/UDP frame.
func parseUDP4(b []byte) (udpInfo, bool) {
	if len(b) < 14+20+8 || binary.BigEndian.Uint16(b[12:]) != etherTypeIPv4 || b[23] != 17 {
		return udpInfo{}, false
	}
	ihl := int(b[14]&0xf) * 4
	l4 := 14 + ihl
	if len(b) < l4+8 {
		return udpInfo{}, false
	}
	return udpInfo{
		src:     netip.AddrFrom4([4]byte(b[26:30])),
		dst:     netip.AddrFrom4([4]byte(b[30:34])),
		dport:   int(binary.BigEndian.Uint16(b[l4+2:])),
		payload: string(b[l4+8:]),
	}, true
}

// readUntil reads batches from s and calls fn for every frame until fn
// returns true or the timeout passes (a test failure).
func readUntil(t *testing.T, s *Socket, fn func(f *dataplane.Frame) bool) {
	t.Helper()
	frames := make([]dataplane.Frame, 32)
	wait.ForBlocking(t, testTimeout, func() bool {
		n, err := s.ReadBatch(frames)
		if err != nil {
			t.Fatalf("ReadBatch: %v", err)
		}
		for i := range n {
			if fn(&frames[i]) {
				return true
			}
		}
		return false
	}, "the frames the test expects; socket stats %+v", wait.Lazy(func() any { st, _ := s.Stats(); return st }))
}

func TestReadBatch(t *testing.T) {
	for _, tc := range []struct {
		txOffload bool
		ring      RingMode
	}{{true, RingFrame}, {false, RingFrame}, {true, RingBlock}, {false, RingBlock}} {
		txOffload := tc.txOffload
		t.Run(fmt.Sprintf("tx-checksum-offload=%v/%v", txOffload, tc.ring), func(t *testing.T) {
			tp := newTopo(t, false)
			if !txOffload {
				tp.b.Exec(t, "ethtool", "-K", "vb", "tx", "off")
			}
			const count, port = 200, 9000
			// All 200 are sent before the first read: the ring must
			// hold them whatever the timing (ringFor).
			s := open(t, tp.a, ringFor(Config{Interface: "va", Headroom: 64, Ring: tc.ring}, count))
			if s.Ifindex() != tp.aIf.Index {
				t.Fatalf("Ifindex() = %d, want %d", s.Ifindex(), tp.aIf.Index)
			}
			c := udpConn(t, tp.b, 0)
			for i := range count {
				sendUDP(t, c, ipA, port, fmt.Sprintf("uvs-%03d", i))
			}
			next := 0
			readUntil(t, s, func(f *dataplane.Frame) bool {
				u, ok := parseUDP4(f.Data())
				if !ok || u.dport != port {
					return false
				}
				if want := fmt.Sprintf("uvs-%03d", next); u.payload != want {
					t.Fatalf("frame %d: payload %q, want %q (order or content wrong)", next, u.payload, want)
				}
				if f.Ifindex != tp.aIf.Index {
					t.Errorf("frame %d: Ifindex %d, want %d", next, f.Ifindex, tp.aIf.Index)
				}
				if f.CsumPartial != txOffload {
					t.Errorf("frame %d: CsumPartial %v, want %v", next, f.CsumPartial, txOffload)
				}
				if f.Off < 64 || f.Off+f.Len > len(f.Buf) || cap(f.Buf) != len(f.Buf) {
					t.Errorf("frame %d: Off %d Len %d len(Buf) %d cap %d: headroom or bounds wrong", next, f.Off, f.Len, len(f.Buf), cap(f.Buf))
				}
				if !txOffload && !udpChecksumOK(f.Data()) {
					t.Errorf("frame %d: bad UDP checksum with offload off", next)
				}
				next++
				return next == count
			})
			st, err := s.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if st.FramesRead < count || st.Packets < count || (tc.ring == RingBlock) != (st.BlocksRead > 0) {
				t.Errorf("Stats %+v: want FramesRead, Packets >= %d and BlocksRead > 0 for a block ring only", st, count)
			}
		})
	}
}

// udpChecksumOK verifies the UDP checksum of an IPv4 frame.
func udpChecksumOK(b []byte) bool {
	l4 := 14 + int(b[14]&0xf)*4
	ulen := int(binary.BigEndian.Uint16(b[l4+4:]))
	sum := uint32(17) + uint32(ulen)
	add := func(p []byte) {
		for len(p) >= 2 {
			sum += uint32(binary.BigEndian.Uint16(p))
			p = p[2:]
		}
		if len(p) == 1 {
			sum += uint32(p[0]) << 8
		}
	}
	add(b[26:34])
	add(b[l4 : l4+ulen])
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return sum == 0xffff
}

// TestReadBatchAllInterfaces opens one socket for every interface and checks
// each frame reports the interface it came in on.
func TestReadBatchAllInterfaces(t *testing.T) {
	tp := newTopo(t, true)
	s := open(t, tp.a, Config{})
	if s.Ifindex() != 0 {
		t.Fatalf("Ifindex() = %d, want 0", s.Ifindex())
	}
	c := udpConn(t, tp.b, 0)
	const port = 9001
	for i := range 10 {
		sendUDP(t, c, ipA, port, fmt.Sprint(i))
		sendUDP(t, c, ipA2, port, fmt.Sprint(i))
	}
	seen := map[netip.Addr]int{}
	readUntil(t, s, func(f *dataplane.Frame) bool {
		u, ok := parseUDP4(f.Data())
		if !ok || u.dport != port {
			return false
		}
		want := tp.aIf.Index
		if u.dst == ipA2 {
			want = tp.aIf2.Index
		}
		if f.Ifindex != want {
			t.Errorf("frame to %v: Ifindex %d, want %d", u.dst, f.Ifindex, want)
		}
		seen[u.dst]++
		return seen[ipA] == 10 && seen[ipA2] == 10
	})
}

// TestIgnoreOutgoing checks the socket does not see what its host sends,
// unless asked to.
func TestIgnoreOutgoing(t *testing.T) {
	for _, recvOut := range []bool{false, true} {
		t.Run(fmt.Sprintf("ReceiveOutgoing=%v", recvOut), func(t *testing.T) {
			tp := newTopo(t, false)
			s := open(t, tp.a, Config{Interface: "va", ReceiveOutgoing: recvOut})
			ca := udpConn(t, tp.a, 0)
			cb := udpConn(t, tp.b, 0)
			const port = 9002
			for range 5 {
				sendUDP(t, ca, ipB, port, "out")
			}
			// Frames on one veth reach the ring in order: once the
			// marker from b is read, any outgoing frame would have been.
			sendUDP(t, cb, ipA, port, "marker")
			out := 0
			readUntil(t, s, func(f *dataplane.Frame) bool {
				u, ok := parseUDP4(f.Data())
				if !ok || u.dport != port {
					return false
				}
				if u.payload == "out" {
					out++
				}
				return u.payload == "marker"
			})
			if want := map[bool]int{false: 0, true: 5}[recvOut]; out != want {
				t.Errorf("saw %d outgoing frames, want %d", out, want)
			}
		})
	}
}

// udpFrame builds an Ethernet/IPv4/UDP frame with full checksums.
func udpFrame(t testing.TB, srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr, port int, payload string) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	u := &layers.UDP{SrcPort: 4000, DstPort: layers.UDPPort(port)}
	_ = u.SetNetworkLayerForChecksum(ip)
	return serialize(t, &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4},
		ip, u, gopacket.Payload(payload))
}

func TestWriteBatch(t *testing.T) {
	tp := newTopo(t, true)
	// A socket bound to va sends on va (Ifindex 0) and on va2 (explicit).
	s := open(t, tp.a, Config{Interface: "va", TxBatch: 4})
	const port = 9003
	l := udpConn(t, tp.b, port)
	var frames []dataplane.Frame
	want := map[string]bool{}
	for i := range 10 {
		p := fmt.Sprintf("va-%d", i)
		frames = append(frames, dataplane.Frame{Buf: udpFrame(t, tp.aIf.HardwareAddr, tp.bIf.HardwareAddr, ipA, ipB, port, p)})
		want[p] = true
		p = fmt.Sprintf("va2-%d", i)
		frames = append(frames, dataplane.Frame{Buf: udpFrame(t, tp.aIf2.HardwareAddr, tp.bIf2.HardwareAddr, ipA2, ipB2, port, p), Ifindex: tp.aIf2.Index})
		want[p] = true
	}
	// A frame for an interface that does not exist is refused and skipped.
	frames = append(frames[:7], append([]dataplane.Frame{{Buf: frames[0].Buf, Ifindex: 999999}}, frames[7:]...)...)
	// Headroom in front of the data must be honoured.
	frames[1].Buf = append(make([]byte, 32), frames[1].Buf...)
	frames[1].Off = 32
	for i := range frames {
		frames[i].Len = len(frames[i].Buf) - frames[i].Off
	}
	n, err := s.WriteBatch(frames)
	if err != nil {
		t.Fatalf("WriteBatch: %v", err)
	}
	if n != len(frames)-1 {
		t.Fatalf("WriteBatch sent %d, want %d", n, len(frames)-1)
	}
	if err := l.SetReadDeadline(time.Now().Add(testTimeout)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	for len(want) > 0 {
		m, from, err := l.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("receive (still missing %v): %v", want, err)
		}
		p := string(buf[:m])
		if !want[p] {
			t.Fatalf("unexpected or duplicate datagram %q", p)
		}
		if wantSrc := map[bool]netip.Addr{true: ipA2, false: ipA}[strings.HasPrefix(p, "va2")]; from.Addr() != wantSrc {
			t.Errorf("datagram %q from %v, want %v", p, from.Addr(), wantSrc)
		}
		delete(want, p)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.FramesSent != uint64(n) || st.TxErrors != 1 {
		t.Errorf("Stats: FramesSent %d TxErrors %d, want %d and 1", st.FramesSent, st.TxErrors, n)
	}

	// Nothing sendable at all is an error.
	n, err = s.WriteBatch([]dataplane.Frame{{Buf: frames[0].Buf, Len: frames[0].Len, Ifindex: 999999}})
	if n != 0 || !errors.Is(err, unix.ENXIO) {
		t.Errorf("WriteBatch to a missing interface = %d, %v; want 0, ENXIO", n, err)
	}
}

// TestFilter checks the attached filter keeps foreign frames out of the ring
// and SetFilter replaces it.
func TestFilter(t *testing.T) {
	tp := newTopo(t, false)
	prog, err := AddressFilter(FilterSpec{VIPs: []netip.Addr{ipOwned}})
	if err != nil {
		t.Fatal(err)
	}
	s := open(t, tp.a, Config{Interface: "va", Filter: prog})
	c := udpConn(t, tp.b, 0)
	const port = 9004
	run := func(owned, notOwned netip.Addr) {
		t.Helper()
		for range 20 {
			sendUDP(t, c, notOwned, port, "foreign")
		}
		sendUDP(t, c, owned, port, "marker")
		readUntil(t, s, func(f *dataplane.Frame) bool {
			u, ok := parseUDP4(f.Data())
			if !ok {
				t.Fatalf("filter let a non-UDP frame through: % x", f.Data())
			}
			if u.dst != owned {
				t.Fatalf("filter let a frame to %v through", u.dst)
			}
			return u.payload == "marker"
		})
	}
	run(ipOwned, ipNotOwned)

	prog, err = AddressFilter(FilterSpec{VIPs: []netip.Addr{ipNotOwned}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetFilter(prog); err != nil {
		t.Fatalf("SetFilter: %v", err)
	}
	run(ipNotOwned, ipOwned)

	// Removing the filter lets everything in.
	if err := s.SetFilter(nil); err != nil {
		t.Fatalf("SetFilter(nil): %v", err)
	}
	sendUDP(t, c, ipOwned, port, "a")
	sendUDP(t, c, ipNotOwned, port, "b")
	got := ""
	readUntil(t, s, func(f *dataplane.Frame) bool {
		if u, ok := parseUDP4(f.Data()); ok && u.dport == port {
			got += u.payload
		}
		return len(got) == 2
	})
	if got != "ab" {
		t.Errorf("without filter got %q, want %q", got, "ab")
	}
}

func TestCloseUnblocksReadBatch(t *testing.T) {
	tp := newTopo(t, false)
	// A filter that accepts nothing: the ring stays empty.
	none, err := bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: 0}})
	if err != nil {
		t.Fatal(err)
	}
	s := open(t, tp.a, Config{Interface: "va", Filter: none, PollTimeout: -1})
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		close(started)
		_, err := s.ReadBatch(make([]dataplane.Frame, 8))
		done <- err
	}()
	<-started
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, dataplane.ErrClosed) {
			t.Fatalf("blocked ReadBatch returned %v, want ErrClosed", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Close did not unblock ReadBatch")
	}
	if _, err := s.ReadBatch(make([]dataplane.Frame, 1)); !errors.Is(err, dataplane.ErrClosed) {
		t.Errorf("ReadBatch after Close: %v", err)
	}
	if _, err := s.WriteBatch(nil); !errors.Is(err, dataplane.ErrClosed) {
		t.Errorf("WriteBatch after Close: %v", err)
	}
	if _, err := s.Stats(); !errors.Is(err, dataplane.ErrClosed) {
		t.Errorf("Stats after Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestPollTimeout(t *testing.T) {
	tp := newTopo(t, false)
	none, err := bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: 0}})
	if err != nil {
		t.Fatal(err)
	}
	s := open(t, tp.a, Config{Interface: "va", Filter: none, PollTimeout: 50 * time.Millisecond})
	start := time.Now()
	n, err := s.ReadBatch(make([]dataplane.Frame, 8))
	if el := time.Since(start); n != 0 || err != nil || el < 50*time.Millisecond || el > testTimeout {
		t.Errorf("ReadBatch on an empty ring = %d, %v after %v; want 0, nil after the 50ms poll timeout", n, err, el)
	}
}

// TestFanout checks that two sockets in one hash group split flows between
// them and never split a flow.
func TestFanout(t *testing.T) {
	tp := newTopo(t, false)
	const flows, perFlow, port = 32, 4, 9005
	// Every frame is sent before the first read and the hash may give
	// one socket most of them: each ring holds them all (ringFor).
	cfg := ringFor(Config{Interface: "va", FanoutGroup: 0x7e57, FanoutMode: FanoutHash, PollTimeout: 10 * time.Millisecond}, flows*perFlow)
	socks := []*Socket{open(t, tp.a, cfg), open(t, tp.a, cfg)}
	var conns []*net.UDPConn
	for range flows {
		conns = append(conns, udpConn(t, tp.b, 0))
	}
	for range perFlow {
		for i, c := range conns {
			sendUDP(t, c, ipA, port, fmt.Sprint(i))
		}
	}
	owner := map[string]int{}
	perSock := make([]int, len(socks))
	total := 0
	frames := make([]dataplane.Frame, 32)
	wait.ForBlocking(t, testTimeout, func() bool {
		for si, s := range socks {
			n, err := s.ReadBatch(frames)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range frames[:n] {
				u, ok := parseUDP4(f.Data())
				if !ok || u.dport != port {
					continue
				}
				if o, ok := owner[u.payload]; ok && o != si {
					t.Errorf("flow %s seen on sockets %d and %d", u.payload, o, si)
				}
				owner[u.payload] = si
				perSock[si]++
				total++
			}
		}
		return total == flows*perFlow
	}, "%d frames, read %v", flows*perFlow, wait.Lazy(func() any { return total }))
	if perSock[0] == 0 || perSock[1] == 0 {
		t.Errorf("frames per socket %v: hash fanout did not spread %d flows", perSock, flows)
	}
}

func TestOpenErrors(t *testing.T) {
	tp := newTopo(t, false)
	for _, cfg := range []Config{
		{Interface: "nonexistent0"},
		{BlockSize: 1000},
		{FrameSize: 100},
		{Headroom: 4000, FrameSize: 2048},
		{Promiscuous: true},
	} {
		err := tp.a.Do(func() error {
			s, err := Open(cfg)
			if err == nil {
				_ = s.Close()
			}
			return err
		})
		if err == nil {
			t.Errorf("Open(%+v) succeeded", cfg)
		}
	}
}
