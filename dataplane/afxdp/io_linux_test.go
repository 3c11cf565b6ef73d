package afxdp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/pkttest"
	"github.com/uvs-lb/uvs/internal/wait"
	"github.com/uvs-lb/uvs/ownership"
	"github.com/uvs-lb/uvs/spec"
)

const testTimeout = 5 * time.Second

var (
	ownedAddr = netip.MustParseAddr("198.18.0.10")
	addrA     = netip.MustParseAddr("198.18.0.1")
	addrB     = netip.MustParseAddr("198.18.0.2")
)

// pair is two namespaces joined by a veth: a (the director side, va) and b
// (the peer, vb). b reaches ownedAddr through va's MAC.
type pair struct {
	a, b       *netnstest.NS
	va, vb     *net.Interface
	ownedSpecs ownership.Set
}

func newPair(t testing.TB) *pair {
	t.Helper()
	p := &pair{a: netnstest.New(t, "xa"), b: netnstest.New(t, "xb")}
	netnstest.Veth(t, p.a, "va", p.b, "vb")
	p.a.AddrAdd(t, "va", addrA.String()+"/24")
	p.b.AddrAdd(t, "vb", addrB.String()+"/24")
	p.va = p.a.Interface(t, "va")
	p.vb = p.b.Interface(t, "vb")
	p.b.NeighAdd(t, "vb", ownedAddr.String(), p.va.HardwareAddr)
	p.ownedSpecs = ownership.Set{Services: []ownership.Endpoint{{Addr: ownedAddr, Proto: spec.ProtoUDP, Port: 9000}}}
	return p
}

// backend loads the program in ns, opens an IO on binds and attaches the
// program to every bound interface in mode.
func backend(t testing.TB, ns *netnstest.NS, s ownership.Set, cfg Config, mode Mode, binds ...Bind) (*Program, *IO) {
	t.Helper()
	var prog *Program
	var x *IO
	err := ns.Do(func() error {
		var err error
		if prog, err = NewProgram(ProgramConfig{}); err != nil {
			return err
		}
		if err := prog.Update(s); err != nil {
			return err
		}
		if x, err = Open(cfg, binds); err != nil {
			return err
		}
		seen := map[int]bool{}
		for _, b := range binds {
			if !seen[b.Ifindex] {
				seen[b.Ifindex] = true
				if err := prog.AddInterface(b.Ifindex, 1); err != nil {
					return err
				}
			}
		}
		for _, s := range x.Sockets() {
			if err := prog.Register(s); err != nil {
				return err
			}
		}
		for ifindex := range seen {
			if _, err := prog.Attach(ifindex, mode); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if x != nil {
			_ = x.Close()
		}
		if prog != nil {
			_ = prog.Close()
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = prog.Close()
		_ = x.Close()
	})
	return prog, x
}

func udpConn(t testing.TB, ns *netnstest.NS, port int) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	if err := ns.Do(func() error {
		var err error
		c, err = net.ListenUDP("udp4", &net.UDPAddr{Port: port})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

type udp4 struct {
	src, dst     netip.Addr
	sport, dport uint16
	csum         uint16
	payload      string
}

func parseUDP4(f []byte) (udp4, bool) {
	if len(f) < 42 || binary.BigEndian.Uint16(f[12:]) != 0x0800 || f[23] != 17 {
		return udp4{}, false
	}
	ihl := int(f[14]&15) * 4
	l4 := 14 + ihl
	tl := int(binary.BigEndian.Uint16(f[16:]))
	if len(f) < 14+tl || l4+8 > 14+tl {
		return udp4{}, false
	}
	return udp4{
		src: netip.AddrFrom4([4]byte(f[26:30])), dst: netip.AddrFrom4([4]byte(f[30:34])),
		sport: binary.BigEndian.Uint16(f[l4:]), dport: binary.BigEndian.Uint16(f[l4+2:]),
		csum:    binary.BigEndian.Uint16(f[l4+6:]),
		payload: string(f[l4+8 : 14+tl]),
	}, true
}

// udpFrame builds a complete UDP frame.
func udpFrame(t testing.TB, srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr, sport, dport uint16, payload string) []byte {
	f := pkttest.Flow{Proto: layers.IPProtocolUDP, Src: src.String(), Dst: dst.String(), Sport: sport, Dport: dport, TTL: 64}
	ls := f.Layers(t)
	eth := ls[0].(*layers.Ethernet)
	eth.SrcMAC, eth.DstMAC = srcMAC, dstMAC
	ls[len(ls)-1] = gopacket.Payload(payload)
	return pkttest.Serialize(t, ls...)
}

// readOwned reads until want frames to dport arrived and returns them as
// parsed, failing after testTimeout.
func readOwned(t *testing.T, x *IO, want int, dport uint16, check func(f *dataplane.Frame)) []udp4 {
	t.Helper()
	frames := make([]dataplane.Frame, 8)
	var got []udp4
	wait.ForBlocking(t, testTimeout, func() bool {
		n, err := x.ReadBatch(frames)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			u, ok := parseUDP4(frames[i].Data())
			if !ok || u.dport != dport {
				t.Fatalf("unexpected frame %x", frames[i].Data())
			}
			if check != nil {
				check(&frames[i])
			}
			got = append(got, u)
		}
		return len(got) >= want
	}, "%d frames, got %v; stats %+v", want, wait.Lazy(func() any { return len(got) }),
		wait.Lazy(func() any { st, _ := x.Stats(); return st }))
	return got
}

// TestIOReceiveTransmit sends owned and non-owned traffic from b: owned
// frames arrive in ReadBatch with the right interface and headroom, with
// the sender's partial checksum (veth tx offload), and a reflected copy
// written with WriteBatch reaches b; everything else still reaches a's
// kernel (ARP and ping).
func TestIOReceiveTransmit(t *testing.T) {
	p := newPair(t)
	prog, x := backend(t, p.a, p.ownedSpecs, Config{PollTimeout: 50 * time.Millisecond}, ModeAuto, Bind{p.va.Index, 0})
	if m, ok := prog.Mode(p.va.Index); !ok || m != ModeNative {
		t.Fatalf("veth attached in %v (attached %v), want native", m, ok)
	}
	if out := p.a.IP(t, "link", "show", "va"); !strings.Contains(out, "xdp") {
		t.Fatalf("no XDP program on va:\n%s", out)
	}
	c := udpConn(t, p.b, 0)
	const count = 20
	for i := range count {
		if _, err := c.WriteToUDPAddrPort([]byte(fmt.Sprintf("m%02d", i)), netip.AddrPortFrom(ownedAddr, 9000)); err != nil {
			t.Fatal(err)
		}
	}
	var refl []dataplane.Frame
	got := readOwned(t, x, count, 9000, func(f *dataplane.Frame) {
		if f.Ifindex != p.va.Index || !f.CsumUnknown || f.CsumPartial || f.Off < PacketHeadroom {
			t.Fatalf("frame Ifindex %d (va %d) CsumUnknown %v CsumPartial %v Off %d",
				f.Ifindex, p.va.Index, f.CsumUnknown, f.CsumPartial, f.Off)
		}
		var pp header.Parsed
		pp.Parse(f.Data())
		if !header.LooksPartial(f.Data(), &pp) {
			t.Errorf("UDP from b's stack over veth (tx checksum offload on) is not partial: %x", f.Data())
		}
		// Reflect it: swap addresses and ports, complete the checksum.
		d := f.Data()
		var mac [6]byte
		copy(mac[:], d[0:6])
		copy(d[0:6], d[6:12])
		copy(d[6:12], mac[:])
		var ip [4]byte
		copy(ip[:], d[26:30])
		copy(d[26:30], d[30:34])
		copy(d[30:34], ip[:])
		var port [2]byte
		copy(port[:], d[34:36])
		copy(d[34:36], d[36:38])
		copy(d[36:38], port[:])
		pp.Parse(d)
		header.SetL4Checksum(d, &pp)
		refl = append(refl, *f)
	})
	for i, u := range got {
		if want := fmt.Sprintf("m%02d", i); u.payload != want || u.src != addrB {
			t.Fatalf("frame %d: %+v, want payload %q from %v", i, u, want, addrB)
		}
	}
	// The frames are still valid: no ReadBatch since.
	if n, err := x.WriteBatch(refl[len(refl)-1:]); n != 1 || err != nil {
		t.Fatalf("WriteBatch = %d, %v", n, err)
	}
	buf := make([]byte, 64)
	_ = c.SetReadDeadline(time.Now().Add(testTimeout))
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil || from != netip.AddrPortFrom(ownedAddr, 9000) || string(buf[:n]) != fmt.Sprintf("m%02d", count-1) {
		t.Fatalf("reflected datagram: %q from %v, %v", buf[:n], from, err)
	}
	// Not owned: ARP for a's own address and ping reach a's kernel.
	p.b.Exec(t, "ping", "-c1", "-W2", addrA.String())
	// Not owned: another UDP port of the owned address is passed too (a's
	// kernel drops it: not its address); nothing arrives in ReadBatch.
	if _, err := c.WriteToUDPAddrPort([]byte("x"), netip.AddrPortFrom(ownedAddr, 9001)); err != nil {
		t.Fatal(err)
	}
	frames := make([]dataplane.Frame, 8)
	if n, err := x.ReadBatch(frames); n != 0 || err != nil {
		t.Fatalf("ReadBatch after a non-owned frame = %d, %v", n, err)
	}
	st, err := x.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.RxFrames != count || st.TxFrames != 1 || st.KernelRxDropped != 0 {
		t.Errorf("stats %+v: want %d received, 1 sent, no kernel drops", st, count)
	}
}

// TestIOTwoInterfaces forwards a frame received on one interface out of a
// second one (the worker's NAT case), and one out of an interface without
// an AF_XDP socket (the AF_PACKET fallback).
func TestIOTwoInterfaces(t *testing.T) {
	p := newPair(t)
	c := netnstest.New(t, "xc")
	d := netnstest.New(t, "xd")
	netnstest.Veth(t, p.a, "vc", c, "vd")
	netnstest.Veth(t, p.a, "ve", d, "vg")
	c.AddrAdd(t, "vd", "198.18.1.2/24")
	d.AddrAdd(t, "vg", "198.18.2.2/24")
	vc, vd := p.a.Interface(t, "vc"), c.Interface(t, "vd")
	ve, vg := p.a.Interface(t, "ve"), d.Interface(t, "vg")
	_, x := backend(t, p.a, p.ownedSpecs, Config{}, ModeAuto, Bind{p.va.Index, 0}, Bind{vc.Index, 0})
	cc := udpConn(t, c, 9100)
	dc := udpConn(t, d, 9200)
	bc := udpConn(t, p.b, 0)
	if _, err := bc.WriteToUDPAddrPort([]byte("fwd"), netip.AddrPortFrom(ownedAddr, 9000)); err != nil {
		t.Fatal(err)
	}
	frames := make([]dataplane.Frame, 4)
	n := 0
	wait.ForBlocking(t, testTimeout, func() bool {
		var err error
		if n, err = x.ReadBatch(frames); err != nil {
			t.Fatal(err)
		}
		return n > 0
	}, "the frame from b")
	if n != 1 {
		t.Fatalf("ReadBatch = %d", n)
	}
	// Rewrite in place into a frame for c, leaving by vc; and a frame for
	// d built elsewhere, leaving by ve (no socket: fallback).
	f := frames[0]
	out := udpFrame(t, vc.HardwareAddr, vd.HardwareAddr, netip.MustParseAddr("198.18.1.1"), netip.MustParseAddr("198.18.1.2"), 7, 9100, "via-vc")
	f.Len = copy(f.Buf[f.Off:], out)
	f.Ifindex = vc.Index
	other := udpFrame(t, ve.HardwareAddr, vg.HardwareAddr, netip.MustParseAddr("198.18.2.1"), netip.MustParseAddr("198.18.2.2"), 7, 9200, "via-ve")
	batch := []dataplane.Frame{f, {Buf: other, Len: len(other), Ifindex: ve.Index}}
	if n, err := x.WriteBatch(batch); n != 2 || err != nil {
		t.Fatalf("WriteBatch = %d, %v", n, err)
	}
	for _, r := range []struct {
		c    *net.UDPConn
		want string
	}{{cc, "via-vc"}, {dc, "via-ve"}} {
		buf := make([]byte, 64)
		_ = r.c.SetReadDeadline(time.Now().Add(testTimeout))
		n, _, err := r.c.ReadFromUDPAddrPort(buf)
		if err != nil || string(buf[:n]) != r.want {
			t.Fatalf("want %q: got %q, %v", r.want, buf[:n], err)
		}
	}
	st, err := x.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.TxFrames != 1 || st.TxFallback != 1 {
		t.Errorf("stats %+v: want 1 AF_XDP and 1 fallback frame", st)
	}
}

// TestIOClose checks that Close unblocks a ReadBatch that waits without a
// timeout, and that the interface has no program after the Program is
// closed.
func TestIOClose(t *testing.T) {
	p := newPair(t)
	prog, x := backend(t, p.a, p.ownedSpecs, Config{PollTimeout: -1}, ModeAuto, Bind{p.va.Index, 0})
	done := make(chan error, 1)
	go func() {
		_, err := x.ReadBatch(make([]dataplane.Frame, 4))
		done <- err
	}()
	// Wait until ReadBatch found the ring empty and is about to poll.
	wait.For(t, testTimeout, func() bool { return x.rxPolls.Load() > 0 }, "ReadBatch to start waiting")
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, dataplane.ErrClosed) {
			t.Fatalf("ReadBatch after Close: %v", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("ReadBatch still blocked after Close")
	}
	if _, err := x.WriteBatch(nil); !errors.Is(err, dataplane.ErrClosed) {
		t.Fatalf("WriteBatch after Close: %v", err)
	}
	if err := prog.Close(); err != nil {
		t.Fatal(err)
	}
	if out := p.a.IP(t, "link", "show", "va"); strings.Contains(out, "xdp") {
		t.Fatalf("XDP program still attached after Close:\n%s", out)
	}
}

// TestAttachModes attaches in generic mode, then native mode, and checks
// what ip(8) reports and the veth peer's segmentation offloads: a native
// XDP program without multi-buffer support makes the kernel drop TSO and
// UDP segmentation from the peer (veth_fix_features), so the peer's stack
// segments before the veth and AF_XDP never sees a super-frame; generic
// mode leaves them on.
func TestAttachModes(t *testing.T) {
	p := newPair(t)
	netnstest.RequireTool(t, "ethtool")
	feature := func(name string) string {
		for _, l := range strings.Split(p.b.Exec(t, "ethtool", "-k", "vb"), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), name+":"); ok {
				return strings.Fields(v)[0]
			}
		}
		t.Fatalf("ethtool -k: no %s line", name)
		return ""
	}
	offloads := func() string {
		return feature("tx-tcp-segmentation") + "/" + feature("tx-udp-segmentation")
	}
	if o := offloads(); o != "on/on" {
		t.Fatalf("vb TSO/USO before attaching: %s", o)
	}
	prog, _ := backend(t, p.a, p.ownedSpecs, Config{}, ModeGeneric, Bind{p.va.Index, 0})
	if m, _ := prog.Mode(p.va.Index); m != ModeGeneric {
		t.Fatalf("mode %v", m)
	}
	if out := p.a.IP(t, "-d", "link", "show", "va"); !strings.Contains(out, "xdpgeneric") {
		t.Fatalf("generic mode not shown:\n%s", out)
	}
	if o := offloads(); o != "on/on" {
		t.Errorf("vb TSO/USO with a generic-mode program on va: %s, want on/on", o)
	}
	if err := prog.Detach(); err != nil {
		t.Fatal(err)
	}
	if out := p.a.IP(t, "link", "show", "va"); strings.Contains(out, "xdp") {
		t.Fatalf("still attached after Detach:\n%s", out)
	}
	if err := p.a.Do(func() error { _, err := prog.Attach(p.va.Index, ModeNative); return err }); err != nil {
		t.Fatal(err)
	}
	out := p.a.IP(t, "-d", "link", "show", "va")
	if !strings.Contains(out, "xdp") || strings.Contains(out, "xdpgeneric") {
		t.Fatalf("native mode not shown:\n%s", out)
	}
	if o := offloads(); o != "off/off" {
		t.Errorf("vb TSO/USO with a native program on va: %s, want off/off", o)
	}
	_ = prog.Detach()
	if o := offloads(); o != "on/on" {
		t.Errorf("vb TSO/USO after detaching: %s, want on/on", o)
	}
}

// TestNativeSegments sends a UDP GSO super-frame (UDP_SEGMENT) from b:
// with a native program on va it arrives as separate MTU-sized datagrams.
func TestNativeSegments(t *testing.T) {
	p := newPair(t)
	_, x := backend(t, p.a, p.ownedSpecs, Config{}, ModeNative, Bind{p.va.Index, 0})
	c := udpConn(t, p.b, 0)
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	const seg, segs = 1000, 5
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_SEGMENT, seg)
	}); err != nil || serr != nil {
		t.Fatalf("UDP_SEGMENT: %v %v", err, serr)
	}
	msg := make([]byte, seg*segs)
	for i := range msg {
		msg[i] = byte('a' + i/seg)
	}
	if _, err := c.WriteToUDPAddrPort(msg, netip.AddrPortFrom(ownedAddr, 9000)); err != nil {
		t.Fatal(err)
	}
	got := readOwned(t, x, segs, 9000, func(f *dataplane.Frame) {
		if f.Len > 14+20+8+seg {
			t.Errorf("frame of %d bytes: not segmented", f.Len)
		}
	})
	for i, u := range got {
		if len(u.payload) != seg || u.payload[0] != byte('a'+i) {
			t.Errorf("segment %d: %d bytes starting %q", i, len(u.payload), u.payload[:1])
		}
	}
}

// TestIOAllocs checks that ReadBatch and WriteBatch do not allocate.
func TestIOAllocs(t *testing.T) {
	p := newPair(t)
	_, x := backend(t, p.a, p.ownedSpecs, Config{PollTimeout: 200 * time.Millisecond}, ModeAuto, Bind{p.va.Index, 0})
	c := udpConn(t, p.b, 0)
	const runs = 50
	for i := range runs + 10 {
		if _, err := c.WriteToUDPAddrPort([]byte{byte(i)}, netip.AddrPortFrom(ownedAddr, 9000)); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until they are all in the RX ring.
	var queued uint32
	wait.For(t, testTimeout, func() bool {
		_, queued = x.socks[0].rx.peek(runs + 10)
		return queued == runs+10
	}, "%d frames in the RX ring, %v queued", runs+10, wait.Lazy(func() any { return queued }))
	frames := make([]dataplane.Frame, 1)
	got := 0
	allocs := testing.AllocsPerRun(runs, func() {
		n, err := x.ReadBatch(frames)
		if err != nil || n != 1 {
			panic(fmt.Sprintf("ReadBatch = %d, %v", n, err))
		}
		got += n
		d := frames[0].Data()
		copy(d[0:6], p.vb.HardwareAddr) // send it back to b, which drops it
		if m, err := x.WriteBatch(frames[:n]); m != n || err != nil {
			panic(fmt.Sprintf("WriteBatch = %d, %v", m, err))
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per ReadBatch+WriteBatch", allocs)
	}
	if got != runs+1 {
		t.Fatalf("read %d frames", got)
	}
}

// TestProgramDetachesWhenProcessDies starts a helper process that attaches
// the program and kills it: the bpf_link goes with the process, so the
// interface has no program left, and Cleanup finds nothing to do.
func TestProgramDetachesWhenProcessDies(t *testing.T) {
	p := newPair(t)
	cmd := exec.Command("ip", "netns", "exec", p.a.Name, os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=va")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan string, 1)
	go func() {
		buf := make([]byte, 256)
		n, _ := out.Read(buf)
		ready <- string(buf[:n])
	}()
	select {
	case s := <-ready:
		if !strings.Contains(s, "attached") {
			t.Fatalf("helper: %q", s)
		}
	case <-time.After(testTimeout):
		t.Fatal("helper did not attach")
	}
	if l := p.a.IP(t, "link", "show", "va"); !strings.Contains(l, "xdp") {
		t.Fatalf("helper's program not attached:\n%s", l)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	wait.For(t, testTimeout, func() bool { return !strings.Contains(p.a.IP(t, "link", "show", "va"), "xdp") },
		"the program to go with its process")
}

// helperEnv, when set to an interface name, turns the test binary into the
// helper process of TestProgramDetachesWhenProcessDies (see TestMain).
const helperEnv = "UVS_AFXDP_HELPER"

// TestMain runs the tests, or, as a helper process, attaches the program to
// the interface named by helperEnv and waits to be killed.
func TestMain(m *testing.M) {
	if ifname := os.Getenv(helperEnv); ifname != "" {
		if err := helperAttach(ifname); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(1)
		}
		time.Sleep(30 * time.Second) // killed long before
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func helperAttach(ifname string) error {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return err
	}
	prog, err := NewProgram(ProgramConfig{})
	if err != nil {
		return err
	}
	if err := prog.AddInterface(ifi.Index, 1); err != nil {
		return err
	}
	if _, err := prog.Attach(ifi.Index, ModeAuto); err != nil {
		return err
	}
	fmt.Println("attached")
	return nil
}

// TestCleanup attaches a program named ProgramName through netlink (no
// bpf_link, as a crashed older uvsd could leave it) and one with another
// name; Cleanup removes only the first.
func TestCleanup(t *testing.T) {
	p := newPair(t)
	netnstest.Veth(t, p.a, "vx", p.b, "vy")
	vx := p.a.Interface(t, "vx")
	err := p.a.Do(func() error {
		prog, err := NewProgram(ProgramConfig{})
		if err != nil {
			return err
		}
		defer prog.Close()
		if err := prog.AddInterface(p.va.Index, 1); err != nil {
			return err
		}
		if err := netlinkAttach(p.va.Index, prog.ifs[p.va.Index].prog.FD()); err != nil {
			return err
		}
		other, err := loadOtherProgram()
		if err != nil {
			return err
		}
		defer other.Close()
		return netlinkAttach(vx.Index, other.FD())
	})
	if err != nil {
		t.Fatal(err)
	}
	if l := p.a.IP(t, "link", "show", "va"); !strings.Contains(l, "xdp") {
		t.Fatalf("not attached:\n%s", l)
	}
	var cleaned []string
	if err := p.a.Do(func() error {
		var err error
		cleaned, err = Cleanup()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(cleaned) != 1 || cleaned[0] != "va" {
		t.Fatalf("cleaned %v, want [va]", cleaned)
	}
	if l := p.a.IP(t, "link", "show", "va"); strings.Contains(l, "xdp") {
		t.Fatalf("still attached after Cleanup:\n%s", l)
	}
	if l := p.a.IP(t, "link", "show", "vx"); !strings.Contains(l, "xdp") {
		t.Fatalf("Cleanup removed another program:\n%s", l)
	}
}

// netlinkAttach attaches a program in generic mode the legacy way (no
// bpf_link): it stays attached after its loader exits.
func netlinkAttach(ifindex, fd int) error {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return err
	}
	return netlink.LinkSetXdpFdWithFlags(l, fd, unix.XDP_FLAGS_SKB_MODE)
}

// loadOtherProgram loads a pass-everything XDP program named otherwise.
func loadOtherProgram() (*ebpf.Program, error) {
	return ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "not_uvs", Type: ebpf.XDP, License: "MIT",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, xdpPass), asm.Return()},
	})
}

// TestMultiQueue uses a veth with two queues: NumQueues reports them, one
// IO per queue (as two workers) each receives its queue's frames, and
// together they receive every frame of many flows.
func TestMultiQueue(t *testing.T) {
	a, b := netnstest.New(t, "xqa"), netnstest.New(t, "xqb")
	out, err := exec.Command("ip", "link", "add", "va", "netns", a.Name, "numtxqueues", "2", "numrxqueues", "2", "type", "veth",
		"peer", "name", "vb", "netns", b.Name, "numtxqueues", "2", "numrxqueues", "2").CombinedOutput()
	if err != nil {
		t.Fatalf("veth with 2 queues: %v: %s", err, out)
	}
	a.LinkUp(t, "va")
	b.LinkUp(t, "vb")
	a.AddrAdd(t, "va", addrA.String()+"/24")
	b.AddrAdd(t, "vb", addrB.String()+"/24")
	va := a.Interface(t, "va")
	b.NeighAdd(t, "vb", ownedAddr.String(), va.HardwareAddr)
	var q int
	if err := a.Do(func() error { q, err = NumQueues("va"); return err }); err != nil || q != 2 {
		t.Fatalf("NumQueues(va) = %d, %v; want 2", q, err)
	}
	s := ownership.Set{Services: []ownership.Endpoint{{Addr: ownedAddr, Proto: spec.ProtoUDP, Port: 9000}}}
	var prog *Program
	var ios [2]*IO
	err = a.Do(func() error {
		var err error
		if prog, err = NewProgram(ProgramConfig{}); err != nil {
			return err
		}
		if err := prog.Update(s); err != nil {
			return err
		}
		if err := prog.AddInterface(va.Index, 2); err != nil {
			return err
		}
		for i := range ios {
			if ios[i], err = Open(Config{PollTimeout: 20 * time.Millisecond}, []Bind{{va.Index, i}}); err != nil {
				return err
			}
			if err := prog.Register(ios[i].Sockets()[0]); err != nil {
				return err
			}
		}
		_, err = prog.Attach(va.Index, ModeNative)
		return err
	})
	t.Cleanup(func() {
		if prog != nil {
			_ = prog.Close()
		}
		for _, x := range ios {
			if x != nil {
				_ = x.Close()
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	// Many flows: one socket per source port, so the peer spreads them
	// over its transmit queues.
	const flows = 64
	for i := range flows {
		c := udpConn(t, b, 20000+i)
		if _, err := c.WriteToUDPAddrPort([]byte("q"), netip.AddrPortFrom(ownedAddr, 9000)); err != nil {
			t.Fatal(err)
		}
	}
	var got [2]int
	frames := make([]dataplane.Frame, 16)
	wait.ForBlocking(t, testTimeout, func() bool {
		for i, x := range ios {
			n, err := x.ReadBatch(frames)
			if err != nil {
				t.Fatal(err)
			}
			got[i] += n
		}
		return got[0]+got[1] >= flows
	}, "%d frames, received %v per queue", flows, wait.Lazy(func() any { return got }))
	if got[0] == 0 || got[1] == 0 {
		t.Errorf("frames per queue %v: want both queues used", got)
	}
}

// TestRebind closes a socket and binds a new one to the same queue at once,
// as a restarted uvsd does: the kernel frees the old UMEM asynchronously,
// so the queue may still be busy for a moment, and Open waits for it.
func TestRebind(t *testing.T) {
	p := newPair(t)
	for range 5 {
		err := p.a.Do(func() error {
			x, err := Open(Config{}, []Bind{{p.va.Index, 0}})
			if err != nil {
				return err
			}
			return x.Close()
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestIOSetPollTimeout: an IO configured to wait forever returns from an
// empty read once given a finite timeout (the worker does this while frames
// wait for a next hop), and waits again, until Close, once it is restored.
func TestIOSetPollTimeout(t *testing.T) {
	p := newPair(t)
	_, x := backend(t, p.a, p.ownedSpecs, Config{PollTimeout: -1}, ModeAuto, Bind{p.va.Index, 0})
	read := func() chan error {
		done := make(chan error, 1)
		go func() {
			n, err := x.ReadBatch(make([]dataplane.Frame, 4))
			if err == nil && n != 0 {
				err = errors.New("read a frame nobody sent")
			}
			done <- err
		}()
		return done
	}
	x.SetPollTimeout(5 * time.Millisecond)
	select {
	case err := <-read():
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(testTimeout):
		t.Fatal("ReadBatch with a 5 ms poll timeout did not return")
	}
	x.SetPollTimeout(0)
	done := read()
	select {
	case err := <-done:
		t.Fatalf("ReadBatch returned (%v) with the configured timeout (none) restored", err)
	case <-time.After(50 * time.Millisecond):
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, dataplane.ErrClosed) {
			t.Fatalf("ReadBatch after Close: %v", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("ReadBatch still blocked after Close")
	}
}

// TestIOCoalesce sends a train of TCP segments from b (as b's stack does
// when the native program has turned its TSO off): ReadBatch merges them
// into one super-frame with GSO metadata and a partial checksum, and
// WriteBatch sends it with a virtio_net_hdr, so that b receives all the
// payload.
func TestIOCoalesce(t *testing.T) {
	p := newPair(t)
	owned := ownership.Set{Services: []ownership.Endpoint{{Addr: ownedAddr, Proto: spec.ProtoTCP, Port: 80}}}
	_, x := backend(t, p.a, owned, Config{PollTimeout: 50 * time.Millisecond}, ModeNative, Bind{p.va.Index, 0})
	var fd int
	if err := p.b.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: p.vb.Index})
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })

	segs := train(seg{sport: 4000, ack: 1, flags: tcpACK, df: true}, 12, 1000, 500)
	segs[len(segs)-1].flags |= tcpPSH
	var sent []byte
	for _, s := range segs {
		f := s.frame()
		copy(f[0:6], p.va.HardwareAddr)
		copy(f[6:12], p.vb.HardwareAddr)
		ip := f[ethHdrLen:]
		a, o := addrB.As4(), ownedAddr.As4()
		copy(ip[12:16], a[:])
		copy(ip[16:20], o[:])
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:], ^header.Checksum(ip[:20], 0))
		binary.BigEndian.PutUint16(f[ethHdrLen+20+tcpCsumOff:], pseudo(f, false, len(f)-ethHdrLen-20))
		if err := unix.Sendto(fd, f, 0, &unix.SockaddrLinklayer{Ifindex: p.vb.Index}); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, s.payload...)
	}

	frames := make([]dataplane.Frame, 64)
	var got []byte
	var supers []dataplane.Frame
	wait.ForBlocking(t, testTimeout, func() bool {
		n, err := x.ReadBatch(frames)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			f := &frames[i]
			s, ok := parseSeg(f.Data())
			if !ok || binary.BigEndian.Uint16(f.Data()[s.l4+2:]) != 80 {
				continue
			}
			got = append(got, f.Data()[s.pay:]...)
			if f.GSO.IsGSO() {
				checkSuper(t, f, false, 1000)
				supers = append(supers, *f)
			}
		}
		return len(got) >= len(sent) && len(supers) > 0
	}, "the payload in super-frames: %d of %d bytes, %d super-frames", wait.Lazy(func() any { return len(got) }), len(sent), wait.Lazy(func() any { return len(supers) }))
	if string(got) != string(sent) {
		t.Fatalf("payload of %d bytes differs from the %d sent", len(got), len(sent))
	}

	// Out again to b (the frames are valid until the next ReadBatch).
	last := supers[len(supers)-1]
	want := last.Len - ethHdrLen - 20 - 20
	if n, err := x.WriteBatch([]dataplane.Frame{last}); n != 1 || err != nil {
		t.Fatalf("WriteBatch = %d, %v", n, err)
	}
	buf := make([]byte, 70000)
	recv := 0
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 1})
	for deadline := time.Now().Add(testTimeout); recv < want && time.Now().Before(deadline); {
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			continue
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); !ok || ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if s, ok := parseSeg(buf[:n]); ok && binary.BigEndian.Uint16(buf[s.l4:]) == 4000 {
			recv += s.size
		}
	}
	if recv != want {
		t.Errorf("b received %d payload bytes of the %d in the super-frame", recv, want)
	}
	st, err := x.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.RxSuper < 1 || st.RxMerged < 2 || st.TxGSO != 1 || st.TxErrors != 0 {
		t.Errorf("stats %+v: want super-frames read, one sent, no errors", st)
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// TestIOSuperFrameSoftwareSegments sends a super-frame out of an interface
// without checksum offload (and so without TSO): the kernel segments it
// and completes every checksum in software from the partial seed, and b
// receives the segments with checksums that verify.
func TestIOSuperFrameSoftwareSegments(t *testing.T) {
	p := newPair(t)
	netnstest.RequireTool(t, "ethtool")
	p.a.Exec(t, "ethtool", "-K", "va", "tx", "off")
	_, x := backend(t, p.a, p.ownedSpecs, Config{}, ModeNative, Bind{p.va.Index, 0})
	var fd int
	if err := p.b.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: p.vb.Index})
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	const segs, size = 5, 1000
	frames := batchOf(train(seg{sport: 4000, ack: 1, flags: tcpACK, df: true}, segs, size, 0))
	if n := newCoalescer(PacketHeadroom).coalesce(frames); n != 1 {
		t.Fatalf("%d frames, want one super-frame", n)
	}
	f := frames[0]
	copy(f.Data()[0:6], p.vb.HardwareAddr)
	f.Ifindex = p.va.Index
	if n, err := x.WriteBatch([]dataplane.Frame{f}); n != 1 || err != nil {
		st, _ := x.Stats()
		t.Fatalf("WriteBatch = %d, %v; stats %+v", n, err, st)
	}
	buf := make([]byte, 70000)
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 1})
	got := 0
	for deadline := time.Now().Add(testTimeout); got < segs && time.Now().Before(deadline); {
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			continue
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); !ok || ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		var pp header.Parsed
		pp.Parse(buf[:n])
		if pp.Proto != header.ProtoTCP || pp.SrcPort != 4000 {
			continue
		}
		if n != ethHdrLen+20+20+size {
			t.Errorf("segment %d: %d bytes, want %d", got, n, ethHdrLen+20+20+size)
		}
		if !header.L4ChecksumValid(buf[:n], &pp) {
			t.Errorf("segment %d: TCP checksum does not verify", got)
		}
		got++
	}
	if got != segs {
		t.Errorf("b received %d segments, want %d", got, segs)
	}
}
