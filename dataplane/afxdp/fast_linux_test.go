package afxdp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/internal/fuzzwatch"
	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/pkttest"
	"github.com/uvs-lb/uvs/modes"
	"github.com/uvs-lb/uvs/ownership"
)

// fastProgram loads the program with a fast path and nothing owned, so a
// frame the fast path does not take is passed (XDP_PASS).
func fastProgram(t testing.TB) (*ebpf.Program, *FastMap) {
	t.Helper()
	netnstest.SkipIfNotRoot(t)
	p, err := NewProgram(ProgramConfig{MaxFlows: 64})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	if err := p.AddInterface(1, 1); err != nil {
		t.Fatal(err)
	}
	if err := p.Update(ownership.Set{}); err != nil {
		t.Fatal(err)
	}
	return p.ifs[1].prog, p.FastMap()
}

// runFast runs the program on a copy of frame and returns its action and the
// frame it leaves.
func runFast(t *testing.T, prog *ebpf.Program, frame []byte) (uint32, []byte) {
	t.Helper()
	out := make([]byte, len(frame)+256)
	opts := &ebpf.RunOptions{Data: append([]byte(nil), frame...), DataOut: out}
	ret, err := prog.Run(opts)
	if err != nil {
		t.Fatal(err)
	}
	return ret, opts.DataOut
}

// fastCase is one direction of a connection and a frame of it.
type fastCase struct {
	flow  dataplane.FastFlow
	frame []byte
}

func (c fastCase) String() string {
	k := c.flow.Key
	return fmt.Sprintf("proto %d %v:%d > %v:%d, source %v %v:%d, destination %v %v:%d, encap %v %v > %v, MTU %d, %d bytes", k.Proto,
		netip.AddrFrom4(k.Src), k.SrcPort, netip.AddrFrom4(k.Dst), k.DstPort,
		c.flow.SetSrc, netip.AddrFrom4(c.flow.Src), c.flow.SrcPort, c.flow.SetDst, netip.AddrFrom4(c.flow.Dst), c.flow.DstPort,
		c.flow.Encap, netip.AddrFrom4(c.flow.TunSrc), netip.AddrFrom4(c.flow.NextHop), c.flow.MTU, len(c.frame))
}

func randAddr(r *rand.Rand) string {
	return netip.AddrFrom4([4]byte{byte(1 + r.IntN(223)), byte(r.IntN(256)), byte(r.IntN(256)), byte(1 + r.IntN(254))}).String()
}

// randomCase builds a TCP segment (ACK, maybe PSH) or UDP datagram of a
// random flow with valid checksums, and a random rewrite of it. The
// frame is at least 60 bytes long: Ethernet padding is the worker's.
func randomCase(t testing.TB, r *rand.Rand) fastCase {
	f := pkttest.Flow{Proto: layers.IPProtocolUDP, Src: randAddr(r), Dst: randAddr(r),
		Sport: uint16(1 + r.IntN(65535)), Dport: uint16(1 + r.IntN(65535)),
		TTL: uint8(2 + r.IntN(254)), TOS: uint8(r.IntN(256)), DF: r.IntN(2) == 0, Payload: 18 + r.IntN(1400)}
	if r.IntN(2) == 0 {
		f.Proto, f.Flags = layers.IPProtocolTCP, "A"
		if r.IntN(2) == 0 {
			f.Flags = "AP"
		}
	}
	mode := r.IntN(5) // NAT request, NAT reply, FULLNAT, DR, TUN
	if mode == 4 {
		f.DF = true // TUN: the fast path takes inner packets with DF
	}
	frame := f.Frame(t)
	src, dst := netip.MustParseAddr(f.Src).As4(), netip.MustParseAddr(f.Dst).As4()
	fl := dataplane.FastFlow{
		Key:     dataplane.FastKey{Src: src, Dst: dst, SrcPort: f.Sport, DstPort: f.Dport, Proto: uint8(f.Proto)},
		SetDst:  mode == 0 || mode == 2,
		SetSrc:  mode == 1 || mode == 2,
		Src:     netip.MustParseAddr(randAddr(r)).As4(),
		Dst:     netip.MustParseAddr(randAddr(r)).As4(),
		SrcPort: uint16(1 + r.IntN(65535)),
		DstPort: uint16(1 + r.IntN(65535)),
		DstMAC:  [6]byte{0x02, 1, 2, 3, 4, byte(r.IntN(256))},
		SrcMAC:  [6]byte{0x02, 9, 8, 7, 6, byte(r.IntN(256))},
		Ifindex: 1 + r.IntN(100),
	}
	if mode == 4 {
		fl.Encap, fl.TunSrc = true, netip.MustParseAddr(randAddr(r)).As4()
		fl.NextHop = netip.MustParseAddr(randAddr(r)).As4()
	}
	return fastCase{flow: fl, frame: frame}
}

// workerRewrite is what the worker sends for c's frame: the rewrite of
// modes (NATRequest on a NAT connection's way in, NATReply on its way out,
// FullNATRequest for both ends, DR for neither, Encap for TUN) and the
// flow's Ethernet addresses.
func workerRewrite(t testing.TB, c fastCase) []byte {
	t.Helper()
	frame := append([]byte(nil), c.frame...)
	var p header.Parsed
	p.Parse(frame)
	if c.flow.Encap {
		buf := append(make([]byte, modes.IPIPOverhead), frame...)
		tun := modes.Tunnel{Src: netip.AddrFrom4(c.flow.TunSrc), Dst: netip.AddrFrom4(c.flow.NextHop), MTU: c.flow.MTU}
		off, n, res := modes.Encap(buf, modes.IPIPOverhead, len(frame), &p, &tun, modes.CsumComplete)
		if !res.OK() {
			t.Fatalf("%v: the worker's encapsulation: verdict %v", c, res.Verdict)
		}
		frame = buf[off : off+n]
		copy(frame[0:6], c.flow.DstMAC[:])
		copy(frame[6:12], c.flow.SrcMAC[:])
		return frame
	}
	src := netip.AddrPortFrom(netip.AddrFrom4(c.flow.Src), c.flow.SrcPort)
	dst := netip.AddrPortFrom(netip.AddrFrom4(c.flow.Dst), c.flow.DstPort)
	var res modes.Result
	switch {
	case c.flow.SetSrc && c.flow.SetDst:
		res = modes.FullNATRequest(frame, &p, src, dst, modes.CsumComplete)
	case c.flow.SetSrc:
		res = modes.NATReply(frame, &p, src, modes.CsumComplete)
	case c.flow.SetDst:
		res = modes.NATRequest(frame, &p, dst, modes.CsumComplete)
	default:
		res = modes.DR(frame, &p, c.flow.DstMAC, c.flow.SrcMAC)
	}
	if !res.OK() {
		t.Fatalf("%v: the worker's rewrite: verdict %v", c, res.Verdict)
	}
	copy(frame[0:6], c.flow.DstMAC[:])
	copy(frame[6:12], c.flow.SrcMAC[:])
	return frame
}

// TestFastPathRewritesAsWorker: for 2 000 random TCP segments and UDP
// datagrams of NAT (either way), FULLNAT, DR and TUN flows the fast path sends
// (XDP_REDIRECT) exactly the frame the worker's rewrite makes, and counts
// each packet and its bytes.
func TestFastPathRewritesAsWorker(t *testing.T) {
	prog, fm := fastProgram(t)
	r := rand.New(rand.NewPCG(17, 4))
	for i := range 2000 {
		c := randomCase(t, r)
		if err := fm.Put(&c.flow); err != nil {
			t.Fatal(err)
		}
		ret, out := runFast(t, prog, c.frame)
		if ret != xdpRedirect {
			t.Fatalf("case %d (%v): action %d, want XDP_REDIRECT", i, c, ret)
		}
		if want := workerRewrite(t, c); !bytes.Equal(out, want) {
			t.Fatalf("case %d (%v):\nfast path % x\nworker    % x", i, c, out, want)
		}
		cnt, ok, err := fm.Delete(c.flow.Key)
		if err != nil || !ok {
			t.Fatalf("case %d: Delete: %v %v", i, ok, err)
		}
		if cnt.Packets != 1 || cnt.Bytes != uint64(len(c.frame)-ethLen) || cnt.Last == 0 || cnt.Installed == 0 {
			t.Fatalf("case %d: counts %+v, want 1 packet of %d bytes", i, cnt, len(c.frame)-ethLen)
		}
	}
}

// TestFastPathLeavesToWorker: the frames the worker must see pass the
// fast path by even though their flow is installed.
func TestFastPathLeavesToWorker(t *testing.T) {
	prog, fm := fastProgram(t)
	base := pkttest.Flow{Proto: layers.IPProtocolTCP, Src: "192.0.2.7", Dst: "10.0.0.100", Sport: 40000, Dport: 80, TTL: 64, Flags: "A", Payload: 100}
	key := dataplane.FastKey{Src: [4]byte{192, 0, 2, 7}, Dst: [4]byte{10, 0, 0, 100}, SrcPort: 40000, DstPort: 80, Proto: 6}
	ukey := key
	ukey.Proto = 17
	for _, k := range []dataplane.FastKey{key, ukey} {
		if err := fm.Put(&dataplane.FastFlow{Key: k, SetDst: true, Dst: [4]byte{10, 0, 2, 11}, DstPort: 8080, Ifindex: 2, MTU: 1500}); err != nil {
			t.Fatal(err)
		}
	}
	if ret, _ := runFast(t, prog, base.Frame(t)); ret != xdpRedirect {
		t.Fatalf("the flow's ACK: action %d, want XDP_REDIRECT", ret)
	}
	with := func(mod func(*pkttest.Flow)) []byte {
		f := base
		mod(&f)
		return f.Frame(t)
	}
	partial := base.Frame(t)
	{
		// The checksum field holding just the pseudo-header sum, as a
		// local sender leaves it for offload.
		var p header.Parsed
		p.Parse(partial)
		ip := partial[ethLen:]
		sum := header.PseudoHeaderChecksum(6, ip[12:16], ip[16:20], uint32(len(ip)-20))
		binary.BigEndian.PutUint16(partial[p.L4Off+16:], sum)
	}
	padded := append(base.Frame(t), 0, 0, 0, 0)
	fragment := base.Frame(t)
	fragment[ethLen+6] |= 0x20 // MF
	binary.BigEndian.PutUint16(fragment[ethLen+10:], 0)
	binary.BigEndian.PutUint16(fragment[ethLen+10:], ^header.Checksum(fragment[ethLen:ethLen+20], 0))
	badIPCsum := base.Frame(t)
	badIPCsum[ethLen+10] ^= 0x01
	var bp header.Parsed
	bp.Parse(base.Frame(t))
	badDoff := base.Frame(t)
	badDoff[bp.L4Off+12] = 0xf0 // a 60-byte header in a 40-byte segment
	badDoff = badDoff[:bp.L4Off+40]
	binary.BigEndian.PutUint16(badDoff[ethLen+2:], uint16(len(badDoff)-ethLen))
	binary.BigEndian.PutUint16(badDoff[ethLen+10:], 0)
	binary.BigEndian.PutUint16(badDoff[ethLen+10:], ^header.Checksum(badDoff[ethLen:ethLen+20], 0))
	udpLong := with(func(f *pkttest.Flow) { f.Proto = layers.IPProtocolUDP; f.Flags = "" })
	var up header.Parsed
	up.Parse(udpLong)
	binary.BigEndian.PutUint16(udpLong[up.L4Off+4:], uint16(len(udpLong)-up.L4Off+1))
	cases := []struct {
		name  string
		frame []byte
	}{
		{"IPv4 header checksum wrong", badIPCsum},
		{"TCP data offset beyond the packet", badDoff},
		{"UDP length beyond the packet", udpLong},
		{"SYN", with(func(f *pkttest.Flow) { f.Flags = "S" })},
		{"FIN", with(func(f *pkttest.Flow) { f.Flags = "FA" })},
		{"RST", with(func(f *pkttest.Flow) { f.Flags = "R" })},
		{"TTL 1", with(func(f *pkttest.Flow) { f.TTL = 1 })},
		{"larger than the MTU", with(func(f *pkttest.Flow) { f.Payload = 1500 })},
		{"802.1Q tag", with(func(f *pkttest.Flow) { f.Vlan = true })},
		{"IP options", with(func(f *pkttest.Flow) { f.IPOpts = true })},
		{"another flow", with(func(f *pkttest.Flow) { f.Sport++ })},
		{"partial checksum", partial},
		{"Ethernet padding", padded},
		{"fragment", fragment},
	}
	for _, c := range cases {
		if ret, _ := runFast(t, prog, c.frame); ret != xdpPass {
			t.Errorf("%s: action %d, want XDP_PASS (to the worker's path)", c.name, ret)
		}
	}
	// A UDP datagram without a checksum keeps none.
	u := with(func(f *pkttest.Flow) { f.Proto = layers.IPProtocolUDP; f.Flags = "" })
	var p header.Parsed
	p.Parse(u)
	binary.BigEndian.PutUint16(u[p.L4Off+6:], 0)
	ret, out := runFast(t, prog, u)
	if ret != xdpRedirect {
		t.Fatalf("UDP without checksum: action %d", ret)
	}
	if got := binary.BigEndian.Uint16(out[p.L4Off+6:]); got != 0 {
		t.Errorf("UDP without checksum: checksum %#04x after the rewrite, want 0", got)
	}
	if got := netip.AddrFrom4([4]byte(out[ethLen+16 : ethLen+20])); got != netip.MustParseAddr("10.0.2.11") {
		t.Errorf("UDP without checksum: destination %v", got)
	}
}

// TestFastPathTUNLeavesToWorker: a TUN flow's packets without DF (the
// outer header would need an IP ID) and those too large once encapsulated
// go to the worker; the others leave in IPIP.
func TestFastPathTUNLeavesToWorker(t *testing.T) {
	prog, fm := fastProgram(t)
	base := pkttest.Flow{Proto: layers.IPProtocolTCP, Src: "192.0.2.7", Dst: "10.0.0.100", Sport: 40000, Dport: 80, TTL: 64, Flags: "A", DF: true, Payload: 1000}
	key := dataplane.FastKey{Src: [4]byte{192, 0, 2, 7}, Dst: [4]byte{10, 0, 0, 100}, SrcPort: 40000, DstPort: 80, Proto: 6}
	fl := dataplane.FastFlow{Key: key, Encap: true, TunSrc: [4]byte{10, 0, 3, 1}, NextHop: [4]byte{10, 0, 4, 11}, Ifindex: 2, MTU: 1500}
	if err := fm.Put(&fl); err != nil {
		t.Fatal(err)
	}
	ret, out := runFast(t, prog, base.Frame(t))
	if ret != xdpRedirect {
		t.Fatalf("the flow's segment: action %d, want XDP_REDIRECT", ret)
	}
	if want := workerRewrite(t, fastCase{flow: fl, frame: base.Frame(t)}); !bytes.Equal(out, want) {
		t.Fatalf("fast path % x\nworker    % x", out, want)
	}
	hdrs := len(base.Frame(t)) - ethLen - base.Payload // IP and TCP headers
	for name, f := range map[string]pkttest.Flow{
		"without DF":               func() pkttest.Flow { f := base; f.DF = false; return f }(),
		"1481 bytes, 1501 in IPIP": func() pkttest.Flow { f := base; f.Payload = 1481 - hdrs; return f }(),
		"SYN":                      func() pkttest.Flow { f := base; f.Flags = "S"; return f }(),
		"TTL 1":                    func() pkttest.Flow { f := base; f.TTL = 1; return f }(),
	} {
		if ret, out := runFast(t, prog, f.Frame(t)); ret != xdpPass || !bytes.Equal(out, f.Frame(t)) {
			t.Errorf("%s: action %d, frame changed %v; want XDP_PASS, unchanged", name, ret, !bytes.Equal(out, f.Frame(t)))
		}
	}
	at := base
	at.Payload = 1480 - hdrs
	if ret, _ := runFast(t, prog, at.Frame(t)); ret != xdpRedirect {
		t.Errorf("1480 bytes, 1500 in IPIP: action %d, want XDP_REDIRECT", ret)
	}
}

// fastEligible is the reference of what the fast path forwards: the
// frames of an installed flow the worker would forward with the NAT
// rewrite alone (no fragmenting, no ICMP error, no checksum to complete).
func fastEligible(frame []byte, mtu int, encap bool) bool {
	var p header.Parsed
	p.Parse(frame)
	if p.Reason != header.ReasonNone || p.IPVersion != 4 || p.L3Off != ethLen || p.L4Off != ethLen+ipv4Min {
		return false
	}
	ip := frame[ethLen:]
	totLen := int(binary.BigEndian.Uint16(ip[2:]))
	if encap {
		// TUN: the outer header must fit, and the inner packet have DF.
		totLen += ipv4Min
		if !p.DF {
			return false
		}
	}
	if len(frame) != ethLen+int(binary.BigEndian.Uint16(ip[2:])) || ^header.Checksum(ip[:ipv4Min], 0) != 0 || ip[8] <= 1 || totLen > mtu {
		return false
	}
	totLen = int(binary.BigEndian.Uint16(ip[2:]))
	cso := p.L4Off + 6
	switch p.Proto {
	case header.ProtoTCP:
		if p.TCPFlags&(header.TCPFlagSYN|header.TCPFlagFIN|header.TCPFlagRST) != 0 {
			return false
		}
		cso = p.L4Off + 16
	case header.ProtoUDP:
		if binary.BigEndian.Uint16(frame[cso:]) == 0 {
			return true
		}
	default:
		return false
	}
	pseudo := header.PseudoHeaderChecksum(p.Proto, ip[12:16], ip[16:20], uint32(totLen-ipv4Min))
	return binary.BigEndian.Uint16(frame[cso:]) != pseudo
}

// FuzzFastPath installs a flow for whatever 5-tuple a frame carries, with
// a rewrite and an MTU from the input, and runs the program on it: a
// frame fastEligible takes must leave (XDP_REDIRECT) exactly as the
// worker's NAT rewrite makes it, counted once; any other must reach the
// usual classification unchanged (nothing owned here: XDP_PASS).
func FuzzFastPath(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 9))
	for range 16 {
		c := randomCase(f, r)
		mode := uint8(0)
		if c.flow.SetDst {
			mode |= 1
		}
		if c.flow.SetSrc {
			mode |= 2
		}
		if c.flow.Encap {
			mode = 4
		}
		f.Add(c.frame, mode, binary.BigEndian.Uint32(c.flow.Dst[:]), c.flow.DstPort, uint16(1500))
	}
	prog, fm := fastProgram(f)
	f.Fuzz(func(t *testing.T, frame []byte, mode uint8, addr uint32, port, mtu uint16) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("%d bytes %.200q", len(frame), frame) })()
		if len(frame) < ethLen+ipv4Min+4 || len(frame) > 1600 {
			return
		}
		fl := dataplane.FastFlow{
			Key: dataplane.FastKey{Src: [4]byte(frame[26:30]), Dst: [4]byte(frame[30:34]),
				SrcPort: binary.BigEndian.Uint16(frame[34:]), DstPort: binary.BigEndian.Uint16(frame[36:]), Proto: frame[ethLen+9]},
			SetDst: mode&1 != 0, SetSrc: mode&2 != 0, DstPort: port, SrcPort: ^port, MTU: int(mtu),
			DstMAC: [6]byte{2, 0, 0, 0, 0, 1}, SrcMAC: [6]byte{2, 0, 0, 0, 0, 2}, Ifindex: 7,
		}
		binary.BigEndian.PutUint32(fl.Dst[:], addr)
		binary.BigEndian.PutUint32(fl.Src[:], ^addr)
		if mode&4 != 0 { // TUN: no address rewrite
			fl.SetDst, fl.SetSrc, fl.Encap = false, false, true
			fl.TunSrc, fl.NextHop = fl.Src, fl.Dst
			if mtu != 0 && int(mtu)-ipv4Min < 68 {
				return // the worker refuses such a tunnel (modes.Encap): never installed
			}
		}
		if err := fm.Put(&fl); err != nil {
			t.Fatal(err)
		}
		ret, out := runFast(t, prog, frame)
		cnt, _, err := fm.Delete(fl.Key)
		if err != nil {
			t.Fatal(err)
		}
		limit := int(mtu)
		if mtu == 0 {
			limit = 0xffff
		}
		c := fastCase{flow: fl, frame: frame}
		if fastEligible(frame, limit, fl.Encap) {
			if ret != xdpRedirect || cnt.Packets != 1 {
				t.Fatalf("%v: action %d, %d packets counted; want XDP_REDIRECT, 1\n% x", c, ret, cnt.Packets, frame)
			}
			if want := workerRewrite(t, c); !bytes.Equal(out, want) {
				t.Fatalf("%v:\nfast path % x\nworker    % x", c, out, want)
			}
			return
		}
		if ret != xdpPass || cnt.Packets != 0 || !bytes.Equal(out, frame) {
			t.Fatalf("%v: action %d, %d packets counted, frame changed %v; want XDP_PASS, 0, unchanged\n% x", c, ret, cnt.Packets, !bytes.Equal(out, frame), frame)
		}
	})
}
