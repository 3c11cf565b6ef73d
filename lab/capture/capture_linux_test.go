//go:build linux

package capture

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/sys/unix"

	"github.com/uvs-lb/uvs/internal/netnstest"
)

// pair is two namespaces joined by a veth pair a0 (198.18.7.1) - b0
// (198.18.7.2).
type pair struct {
	a, b         *netnstest.NS
	aMAC, bMAC   net.HardwareAddr
	aAddr, bAddr netip.Addr
}

func newPair(t *testing.T) *pair {
	t.Helper()
	p := &pair{a: netnstest.New(t, "cap"), b: netnstest.New(t, "cap")}
	netnstest.Veth(t, p.a, "a0", p.b, "b0")
	p.a.AddrAdd(t, "a0", "198.18.7.1/24")
	p.b.AddrAdd(t, "b0", "198.18.7.2/24")
	p.aMAC = p.a.Interface(t, "a0").HardwareAddr
	p.bMAC = p.b.Interface(t, "b0").HardwareAddr
	p.aAddr = netip.MustParseAddr("198.18.7.1")
	p.bAddr = netip.MustParseAddr("198.18.7.2")
	return p
}

// listenUDP opens a UDP socket inside ns.
func listenUDP(t *testing.T, ns *netnstest.NS, addr string) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := ns.Do(func() error {
		a, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return err
		}
		c, err = net.ListenUDP("udp", a)
		return err
	})
	if err != nil {
		t.Fatalf("listen udp %s in %s: %v", addr, ns.Name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// exchangeUDP sends n numbered datagrams from b to a and has a echo each
// one back; it returns once b has read every echo, so a's interface has
// seen all 2n frames.
func exchangeUDP(t *testing.T, from, to *net.UDPConn, dst netip.AddrPort, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	_ = from.SetDeadline(deadline)
	_ = to.SetDeadline(deadline)
	buf := make([]byte, 2048)
	for i := range n {
		msg := fmt.Appendf(nil, "uvs-capture-%d", i)
		if _, err := from.WriteToUDPAddrPort(msg, dst); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		m, src, err := to.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("receive %d: %v", i, err)
		}
		if _, err := to.WriteToUDPAddrPort(buf[:m], src); err != nil {
			t.Fatalf("echo %d: %v", i, err)
		}
		if m, _, err = from.ReadFromUDPAddrPort(buf); err != nil || !bytes.Equal(buf[:m], msg) {
			t.Fatalf("echo %d: %q, %v", i, buf[:m], err)
		}
	}
}

// readPcap returns the frames of a pcap file and checks its header.
func readPcap(t *testing.T, path string) ([]gopacket.Packet, []gopacket.CaptureInfo) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if r.LinkType() != layers.LinkTypeEthernet || r.Snaplen() != Snaplen {
		t.Errorf("%s: link type %v snaplen %d, want Ethernet %d", path, r.LinkType(), r.Snaplen(), Snaplen)
	}
	var pkts []gopacket.Packet
	var cis []gopacket.CaptureInfo
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return pkts, cis
		}
		if err != nil {
			t.Fatalf("%s: frame %d: %v", path, len(pkts), err)
		}
		pkts = append(pkts, gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default))
		cis = append(cis, ci)
	}
}

// stopWithin stops c, failing the test if Stop hangs.
func stopWithin(t *testing.T, c *Capture) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- c.Stop() }()
	select {
	case err := <-errc:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return")
		return nil
	}
}

// udpFrames returns the UDP frames between the two ports, in order, as
// "src>dst payload" with MAC addresses checked against want.
type udpFrame struct {
	srcMAC, dstMAC net.HardwareAddr
	src, dst       netip.AddrPort
	payload        string
}

func udpFrames(pkts []gopacket.Packet, port uint16) []udpFrame {
	var out []udpFrame
	for _, p := range pkts {
		eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if eth == nil || ip == nil || udp == nil || (uint16(udp.SrcPort) != port && uint16(udp.DstPort) != port) {
			continue
		}
		s, _ := netip.AddrFromSlice(ip.SrcIP)
		d, _ := netip.AddrFromSlice(ip.DstIP)
		out = append(out, udpFrame{eth.SrcMAC, eth.DstMAC,
			netip.AddrPortFrom(s, uint16(udp.SrcPort)), netip.AddrPortFrom(d, uint16(udp.DstPort)), string(udp.Payload)})
	}
	return out
}

func TestCaptureBothDirections(t *testing.T) {
	p := newPair(t)
	path := filepath.Join(t.TempDir(), "a0.pcap")
	before := time.Now()
	c, err := Start(p.a.Name, "a0", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })

	const n = 5
	srv := listenUDP(t, p.a, "198.18.7.1:7007")
	cli := listenUDP(t, p.b, "198.18.7.2:7008")
	exchangeUDP(t, cli, srv, netip.MustParseAddrPort("198.18.7.1:7007"), n)
	if err := stopWithin(t, c); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	after := time.Now()

	pkts, cis := readPcap(t, path)
	if c.Count() != len(pkts) {
		t.Errorf("Count() = %d, file has %d frames", c.Count(), len(pkts))
	}
	for i, ci := range cis {
		// Kernel receive times: within the capture's lifetime.
		if ci.CaptureLength != ci.Length || ci.Timestamp.Before(before) || ci.Timestamp.After(after) {
			t.Errorf("frame %d: capture info %+v, captured between %v and %v", i, ci, before, after)
		}
	}
	got := udpFrames(pkts, 7007)
	if len(got) != 2*n {
		t.Fatalf("captured %d UDP frames of the exchange, want %d (%d in, %d out): %+v", len(got), 2*n, n, n, got)
	}
	a := netip.MustParseAddrPort("198.18.7.1:7007")
	b := netip.MustParseAddrPort("198.18.7.2:7008")
	for i, f := range got {
		wantPayload := fmt.Sprintf("uvs-capture-%d", i/2)
		in := i%2 == 0 // request b->a (incoming), then the echo a->b (outgoing)
		src, dst, smac, dmac := b, a, p.bMAC, p.aMAC
		if !in {
			src, dst, smac, dmac = a, b, p.aMAC, p.bMAC
		}
		if f.src != src || f.dst != dst || f.payload != wantPayload ||
			f.srcMAC.String() != smac.String() || f.dstMAC.String() != dmac.String() {
			t.Errorf("frame %d: %s %s>%s %s>%s %q, want %s %s>%s %s>%s %q", i,
				map[bool]string{true: "in", false: "out"}[in], f.srcMAC, f.dstMAC, f.src, f.dst, f.payload,
				map[bool]string{true: "in", false: "out"}[in], smac, dmac, src, dst, wantPayload)
		}
	}
	if err := c.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// TestCaptureCurrentNamespace starts a capture with netnsName "" from a
// thread already inside the namespace.
func TestCaptureCurrentNamespace(t *testing.T) {
	p := newPair(t)
	path := filepath.Join(t.TempDir(), "b0.pcap")
	var c *Capture
	if err := p.b.Do(func() error {
		var err error
		c, err = Start("", "b0", path)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	srv := listenUDP(t, p.a, "198.18.7.1:7007")
	cli := listenUDP(t, p.b, "198.18.7.2:7008")
	exchangeUDP(t, cli, srv, netip.MustParseAddrPort("198.18.7.1:7007"), 2)
	if err := stopWithin(t, c); err != nil {
		t.Fatal(err)
	}
	pkts, _ := readPcap(t, path)
	if got := udpFrames(pkts, 7007); len(got) != 4 {
		t.Errorf("captured %d UDP frames, want 4: %+v", len(got), got)
	}
}

// TestCaptureVLAN checks that a VLAN tag, which the receive path moves out
// of the frame before capture taps see it, is put back: tagged frames sent
// from b0 appear in a0's capture byte for byte as sent.
func TestCaptureVLAN(t *testing.T) {
	p := newPair(t)
	path := filepath.Join(t.TempDir(), "a0.pcap")
	c, err := Start(p.a.Name, "a0", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	// A second socket on a0 tells when the frames have passed the taps.
	sync := openPacket(t, p.a, "a0")
	tx := openPacket(t, p.b, "b0")
	bIdx := p.b.Interface(t, "b0").Index

	var sent [][]byte
	for i := range 3 {
		buf := gopacket.NewSerializeBuffer()
		eth := &layers.Ethernet{SrcMAC: p.bMAC, DstMAC: p.aMAC, EthernetType: layers.EthernetTypeDot1Q}
		q := &layers.Dot1Q{VLANIdentifier: 5, Priority: 3, Type: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{198, 18, 8, 2}, DstIP: net.IP{198, 18, 8, 1}}
		udp := &layers.UDP{SrcPort: 7008, DstPort: 7007}
		_ = udp.SetNetworkLayerForChecksum(ip)
		err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
			eth, q, ip, udp, gopacket.Payload(fmt.Appendf(nil, "tagged-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		frame := buf.Bytes()
		sent = append(sent, frame)
		sa := &unix.SockaddrLinklayer{Ifindex: bIdx, Protocol: htons(unix.ETH_P_ALL)}
		if err := rc(t, tx, func(fd int) error { return unix.Sendto(fd, frame, 0, sa) }); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	_ = sync.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	for seen := 0; seen < len(sent); {
		n, err := sync.Read(buf)
		if err != nil {
			t.Fatalf("a0 saw %d of %d tagged frames: %v", seen, len(sent), err)
		}
		if bytes.Contains(buf[:n], []byte("tagged-")) {
			seen++
		}
	}
	if err := stopWithin(t, c); err != nil {
		t.Fatal(err)
	}
	pkts, cis := readPcap(t, path)
	var got [][]byte
	for i, pk := range pkts {
		if bytes.Contains(pk.Data(), []byte("tagged-")) {
			got = append(got, pk.Data())
			if cis[i].Length != len(pk.Data()) {
				t.Errorf("frame %d: length %d, data %d", i, cis[i].Length, len(pk.Data()))
			}
		}
	}
	if len(got) != len(sent) {
		t.Fatalf("captured %d tagged frames, want %d", len(got), len(sent))
	}
	for i := range sent {
		if !bytes.Equal(got[i], sent[i]) {
			t.Errorf("frame %d:\n got %x\nwant %x", i, got[i], sent[i])
		}
	}
}

// openPacket opens a packet socket bound to dev inside ns.
func openPacket(t *testing.T, ns *netnstest.NS, dev string) *os.File {
	t.Helper()
	var fd int
	if err := inNetNS(ns.Name, func() (err error) { fd, err = openSocket(dev); return }); err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "packet:"+dev)
	t.Cleanup(func() { f.Close() })
	return f
}

// rc runs fn on f's descriptor.
func rc(t *testing.T, f *os.File, fn func(fd int) error) error {
	t.Helper()
	c, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ferr error
	if err := c.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// TestCaptureLargeFrames sends a TCP stream over the veth pair: segments
// the stack hands over with segmentation offload are captured whole.
func TestCaptureLargeFrames(t *testing.T) {
	p := newPair(t)
	path := filepath.Join(t.TempDir(), "a0.pcap")
	c, err := Start(p.a.Name, "a0", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	var ln net.Listener
	if err := p.b.Do(func() (err error) { ln, err = net.Listen("tcp", "198.18.7.2:7009"); return }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const size = 1 << 20
	got := make(chan int64, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		n, _ := io.Copy(io.Discard, conn)
		got <- n
	}()
	var conn net.Conn
	if err := p.a.Do(func() (err error) {
		conn, err = net.DialTimeout("tcp", "198.18.7.2:7009", 5*time.Second)
		return
	}); err != nil {
		t.Fatal(err)
	}
	// Count is read while frames are being written (for -race).
	polled := make(chan int)
	go func() {
		last := 0
		for range 1000 {
			last = max(last, c.Count())
		}
		polled <- last
	}()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	<-polled
	if n := <-got; n != size {
		t.Fatalf("server read %d bytes, want %d", n, size)
	}
	if err := stopWithin(t, c); err != nil {
		t.Fatal(err)
	}
	pkts, cis := readPcap(t, path)
	var payload, largest int
	for i, pk := range pkts {
		if cis[i].CaptureLength != cis[i].Length {
			t.Errorf("frame %d truncated: %d of %d bytes", i, cis[i].CaptureLength, cis[i].Length)
		}
		if tcp, _ := pk.Layer(layers.LayerTypeTCP).(*layers.TCP); tcp != nil && tcp.DstPort == 7009 {
			payload += len(tcp.Payload)
			largest = max(largest, len(pk.Data()))
		}
	}
	// Every byte sent left through a0, so the capture holds all of it
	// (retransmissions may add more).
	if payload < size {
		t.Errorf("captured %d payload bytes of %d sent", payload, size)
	}
	t.Logf("%d frames, largest TCP frame %d bytes", len(pkts), largest)
}

// TestStopInterfaceGone stops a capture whose interface was deleted (a
// lab torn down first): Stop still returns and the file is readable.
func TestStopInterfaceGone(t *testing.T) {
	p := newPair(t)
	path := filepath.Join(t.TempDir(), "a0.pcap")
	c, err := Start(p.a.Name, "a0", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := listenUDP(t, p.a, "198.18.7.1:7007")
	cli := listenUDP(t, p.b, "198.18.7.2:7008")
	exchangeUDP(t, cli, srv, netip.MustParseAddrPort("198.18.7.1:7007"), 1)
	p.a.IP(t, "link", "del", "a0")
	if err := stopWithin(t, c); err != nil {
		t.Fatal(err)
	}
	pkts, _ := readPcap(t, path)
	if got := udpFrames(pkts, 7007); len(got) != 2 {
		t.Errorf("captured %d UDP frames, want 2", len(got))
	}
}

func TestStopIdle(t *testing.T) {
	ns := netnstest.New(t, "cap")
	path := filepath.Join(t.TempDir(), "lo.pcap")
	c, err := Start(ns.Name, "lo", path)
	if err != nil {
		t.Fatal(err)
	}
	if err := stopWithin(t, c); err != nil {
		t.Fatal(err)
	}
	pkts, _ := readPcap(t, path)
	if len(pkts) != c.Count() {
		t.Errorf("file has %d frames, Count %d", len(pkts), c.Count())
	}
}

func TestStartErrors(t *testing.T) {
	ns := netnstest.New(t, "cap")
	dir := t.TempDir()
	for _, tc := range []struct {
		name, netns, iface, path, want string
	}{
		{"no iface", ns.Name, "", filepath.Join(dir, "x.pcap"), "no interface"},
		{"no path", ns.Name, "lo", "", `interface "lo": no output file`},
		{"missing iface", ns.Name, "nope0", filepath.Join(dir, "x.pcap"), `netns "` + ns.Name + `" interface "nope0"`},
		{"missing netns", "uvs-tcap-does-not-exist", "lo", filepath.Join(dir, "x.pcap"), `netns "uvs-tcap-does-not-exist"`},
		{"bad path", ns.Name, "lo", filepath.Join(dir, "missing", "x.pcap"), filepath.Join(dir, "missing", "x.pcap")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Start(tc.netns, tc.iface, tc.path)
			if err == nil {
				_ = c.Stop()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

// TestReaderAllocs measures the per-frame path (receive, restore tag,
// write) on frames queued on a real socket: it allocates nothing.
func TestReaderAllocs(t *testing.T) {
	p := newPair(t)
	var fd int
	if err := inNetNS(p.a.Name, func() (err error) { fd, err = openSocket("a0"); return }); err != nil {
		t.Fatal(err)
	}
	sock := os.NewFile(uintptr(fd), "packet")
	defer sock.Close()
	rc, err := sock.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	const runs = 50
	srv := listenUDP(t, p.a, "198.18.7.1:7007")
	cli := listenUDP(t, p.b, "198.18.7.2:7008")
	exchangeUDP(t, cli, srv, netip.MustParseAddrPort("198.18.7.1:7007"), runs+10)

	w := pcapgo.NewWriterNanos(io.Discard)
	var count atomic.Int64
	r := newReader(rc, w, &count)
	recv := func(fd uintptr) { r.recvFn(fd) }
	recvOne := func() {
		if err := rc.Control(recv); err != nil || r.errno != 0 {
			t.Fatalf("recv: %v %v", err, r.errno)
		}
		if done, err := r.handle(); done {
			t.Fatal(err)
		}
	}
	recvOne() // warm up
	if _, _, _, ts := r.control(); ts.IsZero() {
		t.Error("no SO_TIMESTAMPNS receive time in the control messages")
	}
	if a := testing.AllocsPerRun(runs, recvOne); a != 0 {
		t.Errorf("%v allocations per frame, want 0", a)
	}
}
