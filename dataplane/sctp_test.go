package dataplane_test

import (
	"encoding/binary"
	"hash/crc32"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/dataplane"
)

const sctpRules = `-A --sctp-service 10.0.1.100:3868 -s rr
-a --sctp-service 10.0.1.100:3868 -r 10.0.2.11:3869 -m
-A --sctp-service 10.0.1.100:2905 -s rr
-a --sctp-service 10.0.1.100:2905 -r 10.0.2.12:2905 -g
`

// sctpChunk returns a chunk of the given type with a 4-byte body.
func sctpChunk(typ uint8) []byte {
	return []byte{typ, 0, 0, 8, 1, 2, 3, 4}
}

// sctpFrame builds an Ethernet/IPv4/SCTP frame; gopacket computes its
// CRC32c.
func sctpFrame(t testing.TB, srcMAC, dstMAC [6]byte, src, dst string, sport, dport uint16, chunks ...[]byte) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(srcMAC[:]), DstMAC: net.HardwareAddr(dstMAC[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolSCTP, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst), Flags: layers.IPv4DontFragment}
	var payload []byte
	for _, c := range chunks {
		payload = append(payload, c...)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip,
		&layers.SCTP{SrcPort: layers.SCTPPort(sport), DstPort: layers.SCTPPort(dport), VerificationTag: 0x01020304}, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sctpOut decodes a sent SCTP/IPv4 frame: addresses, ports, and whether
// its CRC32c (computed here with hash/crc32, little-endian in the field)
// and IPv4 header checksum verify.
func sctpOut(t *testing.T, b []byte) (src, dst netip.AddrPort, crcOK bool) {
	t.Helper()
	p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if ip == nil || ip.Protocol != layers.IPProtocolSCTP {
		t.Fatalf("not SCTP/IPv4: %x", b)
	}
	hdr := append([]byte(nil), b[14:14+int(ip.IHL)*4]...)
	got := binary.BigEndian.Uint16(hdr[10:])
	hdr[10], hdr[11] = 0, 0
	var sum uint32
	for i := 0; i < len(hdr); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(hdr[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	if ^uint16(sum) != got {
		t.Errorf("IPv4 header checksum %#04x, want %#04x", got, ^uint16(sum))
	}
	l4 := append([]byte(nil), b[14+int(ip.IHL)*4:14+int(ip.Length)]...)
	stored := binary.LittleEndian.Uint32(l4[8:])
	copy(l4[8:12], []byte{0, 0, 0, 0})
	crcOK = crc32.Checksum(l4, crc32.MakeTable(crc32.Castagnoli)) == stored
	src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip.SrcIP.To4())), binary.BigEndian.Uint16(l4[0:]))
	dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip.DstIP.To4())), binary.BigEndian.Uint16(l4[2:]))
	return src, dst, crcOK
}

func sctpState(t *testing.T, r *rig) string {
	t.Helper()
	ls := r.conns.Snapshot(int64(r.clock.Sub(r.env.Epoch)), nil)
	if len(ls) != 1 {
		t.Fatalf("%d connections, want 1", len(ls))
	}
	if ls[0].ProtoName() != "SCTP" {
		t.Fatalf("connection protocol %s", ls[0].ProtoName())
	}
	return ls[0].StateName()
}

// TestSCTPNAT: an SCTP association through a NAT service, packet in and
// packet out: the INIT is scheduled and DNATed to the real server's
// address and port with a recomputed CRC32c, its INIT ACK SNATed back to
// the VIP, and the connection walks the kernel's states as ipvsadm -Lnc
// prints them, up to ESTABLISHED (active) and, after the shutdown,
// CLOSED.
func TestSCTPNAT(t *testing.T) {
	r := newRig(t, sctpRules)
	cli, vip, rs := netip.MustParseAddrPort("10.0.0.1:40000"), netip.MustParseAddrPort("10.0.1.100:3868"), netip.MustParseAddrPort("10.0.2.11:3869")
	req := func(chunk uint8) []byte {
		return sctpFrame(t, macCli, macDir0, "10.0.0.1", "10.0.1.100", 40000, 3868, sctpChunk(chunk))
	}
	rep := func(chunk uint8) []byte {
		return sctpFrame(t, macRS1, macDir1, "10.0.2.11", "10.0.0.1", 3869, 40000, sctpChunk(chunk))
	}
	steps := []struct {
		frame []byte
		in    bool
		state string
	}{
		{req(1), true, "INIT1"}, {rep(2), false, "C-SENT"}, {req(10), true, "C-REPLIED"}, {rep(11), false, "ESTABLISHED"},
		{req(0), true, "ESTABLISHED"}, {rep(3), false, "ESTABLISHED"},
		{req(7), true, "S-RECEIVED"}, {rep(8), false, "S-ACK-SENT"}, {req(14), true, "CLOSED"},
	}
	for i, s := range steps {
		out := r.run(t, s.frame)
		if len(out) != 1 {
			t.Fatalf("step %d: sent %d frames\n%s", i, len(out), r.dump(t))
		}
		src, dst, ok := sctpOut(t, out[0].Data())
		if !ok {
			t.Fatalf("step %d: CRC32c does not verify", i)
		}
		wantSrc, wantDst := cli, rs
		if !s.in {
			wantSrc, wantDst = vip, cli
		}
		if src != wantSrc || dst != wantDst {
			t.Fatalf("step %d: %v -> %v, want %v -> %v", i, src, dst, wantSrc, wantDst)
		}
		if got := sctpState(t, r); got != s.state {
			t.Fatalf("step %d: state %s, want %s", i, got, s.state)
		}
		d := r.env.Snap.Load().Services()[0].Sched.Dests()[0]
		if active := d.ActiveConns() == 1; active != (s.state == "ESTABLISHED") {
			t.Fatalf("step %d: active %d in %s", i, d.ActiveConns(), s.state)
		}
	}
	// An INIT on the CLOSED association starts a new one.
	if out := r.run(t, req(1)); len(out) != 1 || sctpState(t, r) != "INIT1" {
		t.Fatalf("INIT after CLOSED: %d frames, state %s", len(out), sctpState(t, r))
	}
}

// TestSCTPNATKeepsBadCRC: a request whose CRC32c does not verify leaves
// with one that does not either (the NAT rewrite does not launder it).
func TestSCTPNATKeepsBadCRC(t *testing.T) {
	r := newRig(t, sctpRules)
	f := sctpFrame(t, macCli, macDir0, "10.0.0.1", "10.0.1.100", 40000, 3868, sctpChunk(1))
	f[14+20+12+7] ^= 0x40 // corrupt the chunk body (the frame ends in Ethernet padding)
	out := r.run(t, f)
	if len(out) != 1 {
		t.Fatalf("sent %d frames", len(out))
	}
	if _, dst, ok := sctpOut(t, out[0].Data()); ok || dst.Port() != 3869 {
		t.Fatalf("corrupted INIT left with a valid CRC32c (%v)", dst)
	}
}

// TestSCTPScheduleOnlyINIT: a packet that matches no association is
// scheduled only when it is an INIT (sctp_conn_schedule), unless
// sloppy_sctp is on; a packet without a chunk is malformed.
func TestSCTPScheduleOnlyINIT(t *testing.T) {
	r := newRig(t, sctpRules)
	if out := r.run(t, sctpFrame(t, macCli, macDir0, "10.0.0.1", "10.0.1.100", 40000, 3868, sctpChunk(0))); len(out) != 0 || r.conns.Len() != 0 {
		t.Fatalf("DATA without association: %d frames, %d connections", len(out), r.conns.Len())
	}
	if out := r.run(t, sctpFrame(t, macCli, macDir0, "10.0.0.1", "10.0.1.100", 40000, 3868)); len(out) != 0 ||
		r.w.Counters.Load(dataplane.CntMalformed) != 1 {
		t.Fatalf("chunkless packet: %d frames, malformed %d", len(out), r.w.Counters.Load(dataplane.CntMalformed))
	}
	r.env.SloppySCTP = true
	if out := r.run(t, sctpFrame(t, macCli, macDir0, "10.0.0.1", "10.0.1.100", 40000, 3868, sctpChunk(0))); len(out) != 1 ||
		sctpState(t, r) != "ESTABLISHED" || r.w.Counters.Load(dataplane.CntSloppy) != 1 {
		t.Fatalf("sloppy DATA: %d frames\n%s", len(out), r.dump(t))
	}
}

// TestSCTPDR: direct routing forwards the SCTP packet unchanged but for
// the MAC addresses and the TTL; the INPUT_ONLY table takes the
// association to ESTABLISHED on the client's COOKIE ECHO.
func TestSCTPDR(t *testing.T) {
	r := newRig(t, sctpRules)
	in := sctpFrame(t, macCli, macDir0, "10.0.0.1", "10.0.1.100", 40000, 2905, sctpChunk(1))
	out := r.run(t, in)
	if len(out) != 1 {
		t.Fatalf("sent %d frames\n%s", len(out), r.dump(t))
	}
	b := out[0].Data()
	if [6]byte(b[:6]) != macRS2 {
		t.Fatalf("DR frame to %x, want the real server's MAC", b[:6])
	}
	if string(b[14+20:]) != string(in[14+20:]) || b[14+8] != in[14+8]-1 {
		t.Fatalf("DR changed the SCTP packet\n in  %x\n out %x", in, b)
	}
	if sctpState(t, r) != "INIT1" {
		t.Fatalf("state %s", sctpState(t, r))
	}
	r.run(t, sctpFrame(t, macCli, macDir0, "10.0.0.1", "10.0.1.100", 40000, 2905, sctpChunk(10)))
	if sctpState(t, r) != "ESTABLISHED" {
		t.Fatalf("after COOKIE ECHO: %s", sctpState(t, r))
	}
}

// TestSCTPNoAllocs: forwarding an SCTP packet on its association (CRC32c
// recomputed) allocates nothing.
func TestSCTPNoAllocs(t *testing.T) {
	r := newRig(t, sctpRules)
	r.run(t, sctpFrame(t, macCli, macDir0, "10.0.0.1", "10.0.1.100", 40000, 3868, sctpChunk(1)))
	data := sctpFrame(t, macCli, macDir0, "10.0.0.1", "10.0.1.100", 40000, 3868, sctpChunk(0))
	w := dataplane.NewWorker(discardIO{}, r.env)
	buf := make([]byte, 64+len(data))
	frames := []dataplane.Frame{{}}
	allocs := testing.AllocsPerRun(200, func() {
		copy(buf[64:], data)
		frames[0] = dataplane.Frame{Buf: buf, Off: 64, Len: len(data), Ifindex: 1}
		w.ProcessBatch(frames)
	})
	if w.Counters.Load(dataplane.CntTx) == 0 {
		t.Fatal("the measured path forwarded nothing")
	}
	if allocs != 0 {
		t.Fatalf("SCTP path allocates %.1f times", allocs)
	}
}

// TestSCTPICMPRelated: an ICMP error from the real server about a packet
// of an SCTP association (ip_vs_out_icmp relates errors for SCTP as for
// TCP and UDP) reaches the client translated: from the VIP, quoting the
// packet the client sent to VIP:vport.
func TestSCTPICMPRelated(t *testing.T) {
	r := newRig(t, sctpRules)
	fwd := r.run(t, sctpFrame(t, macCli, macDir0, "10.0.0.1", "10.0.1.100", 40000, 3868, sctpChunk(1)))
	if len(fwd) != 1 {
		t.Fatalf("INIT: sent %d frames", len(fwd))
	}
	rsIP := netip.MustParseAddr("10.0.2.11")
	icmp := fullnat4.portUnreach(t, macRS1, macDir1, rsIP, netip.MustParseAddr("10.0.0.1"), 64, fwd[0].Data()[14:])
	out := r.run(t, icmp)
	if len(out) != 1 || r.w.Counters.Load(dataplane.CntICMPRelated) != 1 {
		t.Fatalf("ICMP error: sent %d frames, related %d\n%s", len(out), r.w.Counters.Load(dataplane.CntICMPRelated), r.dump(t))
	}
	p := gopacket.NewPacket(out[0].Data(), layers.LayerTypeEthernet, gopacket.Default)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	ic, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if ip == nil || ic == nil || ip.SrcIP.String() != "10.0.1.100" || ip.DstIP.String() != "10.0.0.1" {
		t.Fatalf("ICMP error out: %v", p)
	}
	q := ic.Payload
	if len(q) < 24 || net.IP(q[16:20]).String() != "10.0.1.100" || binary.BigEndian.Uint16(q[22:]) != 3868 {
		t.Fatalf("quoted packet not the client's to VIP:3868: %x", q)
	}
}

// TestSCTPFullNAT: FULLNAT translates both ends of an SCTP packet, with a
// valid CRC32c, and the real server's reply back to the client.
func TestSCTPFullNAT(t *testing.T) {
	r := newRig(t, "-A --sctp-service 10.0.1.100:3870 -s rr\n-a --sctp-service 10.0.1.100:3870 -r 10.0.2.11:3871 -b\n")
	out := r.run(t, sctpFrame(t, macCli, macDir0, "10.0.0.1", "10.0.1.100", 40000, 3870, sctpChunk(1)))
	if len(out) != 1 {
		t.Fatalf("INIT: sent %d frames\n%s", len(out), r.dump(t))
	}
	src, dst, ok := sctpOut(t, out[0].Data())
	if !ok || src.Addr() != netip.MustParseAddr("10.0.2.1") || dst != netip.MustParseAddrPort("10.0.2.11:3871") {
		t.Fatalf("INIT out %v -> %v (crc ok %v)", src, dst, ok)
	}
	back := r.run(t, sctpFrame(t, macRS1, macDir1, "10.0.2.11", "10.0.2.1", 3871, src.Port(), sctpChunk(2)))
	if len(back) != 1 {
		t.Fatalf("INIT ACK: sent %d frames\n%s", len(back), r.dump(t))
	}
	src, dst, ok = sctpOut(t, back[0].Data())
	if !ok || src != netip.MustParseAddrPort("10.0.1.100:3870") || dst != netip.MustParseAddrPort("10.0.0.1:40000") {
		t.Fatalf("INIT ACK out %v -> %v (crc ok %v)", src, dst, ok)
	}
	if got := sctpState(t, r); got != "C-SENT" {
		t.Fatalf("state %s", got)
	}
}
