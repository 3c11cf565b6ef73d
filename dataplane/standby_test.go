package dataplane_test

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/dataplane"
)

// setHost changes the rig's host facts as the daemon does (a new value).
func (r *rig) setHost(fn func(h *dataplane.Host)) {
	h := *r.env.Host.Load()
	fn(&h)
	r.env.Host.Store(&h)
}

func standbySet(addrs ...string) map[[16]byte]bool {
	m := map[[16]byte]bool{}
	for _, a := range addrs {
		m[netip.MustParseAddr(a).As16()] = true
	}
	return m
}

// arpRequest asks who has target.
func arpRequest(t *testing.T, target string) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(macCli[:]), DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP}
	arp := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: layers.ARPRequest, SourceHwAddress: macCli[:], SourceProtAddress: net.ParseIP("10.0.1.2").To4(),
		DstHwAddress: make([]byte, 6), DstProtAddress: net.ParseIP(target).To4()}
	return serialize(t, eth, arp)
}

// neighborSolicit asks for target's link-layer address (multicast to its
// solicited-node group).
func neighborSolicit(t *testing.T, src, target string) []byte {
	t.Helper()
	tg := netip.MustParseAddr(target)
	a := tg.As16()
	group := netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 11: 1, 12: 0xff, 13: a[13], 14: a[14], 15: a[15]})
	gm := group.As16()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(macCli[:]), DstMAC: net.HardwareAddr{0x33, 0x33, 0xff, gm[13], gm[14], gm[15]}, EthernetType: layers.EthernetTypeIPv6}
	ip := &layers.IPv6{Version: 6, HopLimit: 255, NextHeader: layers.IPProtocolICMPv6, SrcIP: net.ParseIP(src), DstIP: group.AsSlice()}
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)}
	if err := ic.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	ns := &layers.ICMPv6NeighborSolicitation{TargetAddress: tg.AsSlice(),
		Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: macCli[:]}}}
	return serialize(t, eth, ip, ic, ns)
}

const dualRules = natRules + `-A -t 10.0.1.101:80 -s rr
-a -t 10.0.1.101:80 -r 10.0.2.11:8080 -m
-A -t [2001:db8:1::100]:80 -s rr
-a -t [2001:db8:1::100]:80 -r [2001:db8:2::11]:8080 -m
-A -t [2001:db8:1::101]:80 -s rr
-a -t [2001:db8:1::101]:80 -r [2001:db8:2::11]:8080 -m
`

// A VIP in Host.Standby (VRRP backup for it) is left to the kernel: no new
// flow is scheduled, a request of an existing connection is not forwarded
// (and its connection is not touched), no ARP or NDP is answered; other
// VIPs are served; replies of existing connections still go out.
func TestStandbyVIP(t *testing.T) {
	r := newRig(t, dualRules)
	// A connection made while this node was master.
	if out := r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false)); len(out) != 1 {
		t.Fatalf("master: SYN sent %d frames", len(out))
	}
	r.setHost(func(h *dataplane.Host) { h.Standby = standbySet("10.0.1.100", "2001:db8:1::100") })

	c := &r.w.Counters
	key := conntrack.KeyFrom(6, netip.MustParseAddrPort("10.0.1.2:40000"), netip.MustParseAddrPort("10.0.1.100:80"))
	var before, after conntrack.Conn
	r.conns.Lookup(key, 0, &before)
	out := r.run(t,
		tcpFrame(t, macCli, macDir0, "10.0.1.3", "10.0.1.100", 40001, 80, true, false), // new flow
		tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, false, true), // request of the existing connection
		arpRequest(t, "10.0.1.100"),
		neighborSolicit(t, "2001:db8:1::2", "2001:db8:1::100"),
	)
	if len(out) != 0 {
		t.Fatalf("standby VIP: sent %d frames", len(out))
	}
	if got := c.Load(dataplane.CntStandby); got != 4 {
		t.Fatalf("standby counter %d, want 4", got)
	}
	r.conns.Lookup(key, 0, &after)
	if r.conns.Len() != 1 || after.State != before.State || after.InPkts != before.InPkts || after.Expires != before.Expires {
		t.Fatalf("standby frames changed the table: %d conns, state %v→%v, in_pkts %d→%d",
			r.conns.Len(), before.State, after.State, before.InPkts, after.InPkts)
	}
	// The reply of the existing connection is still translated.
	if out := r.run(t, tcpFrame(t, macRS2, macDir1, "10.0.2.12", "10.0.1.2", 8080, 40000, true, true)); len(out) != 1 {
		t.Fatalf("reply of a standby VIP's connection: sent %d frames", len(out))
	}
	// The other VIPs are served.
	out = r.run(t,
		tcpFrame(t, macCli, macDir0, "10.0.1.3", "10.0.1.101", 40001, 80, true, false),
		arpRequest(t, "10.0.1.101"),
		neighborSolicit(t, "2001:db8:1::2", "2001:db8:1::101"),
	)
	if len(out) != 3 {
		t.Fatalf("served VIP: sent %d frames, want SYN, ARP and NA", len(out))
	}
	if got := c.Load(dataplane.CntStandby); got != 4 {
		t.Fatalf("standby counter %d after served traffic", got)
	}
	// Back to master: served again.
	r.setHost(func(h *dataplane.Host) { h.Standby = nil })
	if out := r.run(t, arpRequest(t, "10.0.1.100")); len(out) != 1 {
		t.Fatalf("master again: ARP sent %d frames", len(out))
	}
}

// Host.BackupOnly: the director function is off. Requests to any VIP, new
// or of an existing connection, are left to the kernel and no ARP/NDP is
// answered; replies of existing NAT connections are still translated.
func TestBackupOnly(t *testing.T) {
	r := newRig(t, dualRules)
	if out := r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false)); len(out) != 1 {
		t.Fatalf("SYN sent %d frames", len(out))
	}
	r.setHost(func(h *dataplane.Host) { h.BackupOnly = true })
	out := r.run(t,
		tcpFrame(t, macCli, macDir0, "10.0.1.3", "10.0.1.101", 40001, 80, true, false),
		tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, false, true),
		arpRequest(t, "10.0.1.100"),
		neighborSolicit(t, "2001:db8:1::2", "2001:db8:1::101"),
	)
	if len(out) != 0 {
		t.Fatalf("backup-only: sent %d frames", len(out))
	}
	c := &r.w.Counters
	if got := c.Load(dataplane.CntBackupOnly); got != 4 {
		t.Fatalf("backup-only counter %d, want 4", got)
	}
	if r.conns.Len() != 1 || c.Load(dataplane.CntNewConn) != 1 {
		t.Fatalf("backup-only scheduled: %d conns", r.conns.Len())
	}
	out = r.run(t, tcpFrame(t, macRS2, macDir1, "10.0.2.12", "10.0.1.2", 8080, 40000, true, true))
	if len(out) != 1 {
		t.Fatalf("backup-only: NAT reply sent %d frames, want 1", len(out))
	}
	if _, ip, _ := decode(t, out[0].Data()); ip.SrcIP.String() != "10.0.1.100" {
		t.Fatalf("reply not translated: from %s", ip.SrcIP)
	}
	// Traffic for no VIP is not the director's either way.
	r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.1", 40000, 22, true, false))
	if got := c.Load(dataplane.CntBackupOnly); got != 4 {
		t.Fatalf("backup-only counted traffic for no VIP: %d", got)
	}
}

// The standby check on the per-packet path does not allocate.
func TestStandbyNoAllocs(t *testing.T) {
	r := newRig(t, dualRules)
	r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false))
	r.setHost(func(h *dataplane.Host) { h.Standby = standbySet("10.0.1.101") })
	data := tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, false, true)
	standby := tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.101", 40000, 80, false, true)
	w := dataplane.NewWorker(discardIO{}, r.env)
	bufs := [2][]byte{make([]byte, 64+len(data)), make([]byte, 64+len(standby))}
	frames := make([]dataplane.Frame, 2)
	allocs := testing.AllocsPerRun(200, func() {
		copy(bufs[0][64:], data)
		copy(bufs[1][64:], standby)
		frames[0] = dataplane.Frame{Buf: bufs[0], Off: 64, Len: len(data), Ifindex: 1}
		frames[1] = dataplane.Frame{Buf: bufs[1], Off: 64, Len: len(standby), Ifindex: 1}
		w.ProcessBatch(frames)
	})
	if w.Counters.Load(dataplane.CntTx) == 0 || w.Counters.Load(dataplane.CntStandby) == 0 {
		t.Fatal("the measured path sent nothing or left nothing to the kernel")
	}
	if allocs != 0 {
		t.Fatalf("per-packet path with standby VIPs allocates %.1f times", allocs)
	}
}

// icmpFrame4 is an IPv4 ICMP message (typ, code; an error quotes a TCP
// packet from dst to src) from src to dst.
func icmpFrame4(t *testing.T, src, dst string, typ, code uint8) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(macCli[:]), DstMAC: net.HardwareAddr(macDir0[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst)}
	ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, code), Id: 1, Seq: 1}
	var payload []byte
	if typ == layers.ICMPv4TypeDestinationUnreachable {
		quoted := tcpFrame(t, macDir0, macCli, dst, src, 80, 40000, true, true)
		payload = quoted[14 : 14+20+8]
	}
	return serialize(t, eth, ip, ic, gopacket.Payload(payload))
}

// A frame to a standby VIP that uvsd owns (its service's traffic, an ICMP
// error to it) is handed to the director's own stack unchanged, as the
// kernel would have received it from the wire: not forwarded, no
// connection made or touched, counted as standby and as delivered. Frames
// to the VIP that the hooks leave to the kernel (another port, an echo
// request) are not delivered a second time.
func TestStandbyToLocalNode(t *testing.T) {
	ln := &fakeLocal{}
	r := localRig(t, dualRules, ln)
	if out := r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false)); len(out) != 1 {
		t.Fatalf("master: SYN sent %d frames", len(out))
	}
	r.setHost(func(h *dataplane.Host) {
		h.Standby = standbySet("10.0.1.100", "2001:db8:1::100")
		h.Loopback = standbySet("10.0.1.100", "2001:db8:1::100") // on lo: a backup that is also a real server
	})
	owned := [][]byte{
		tcpFrame(t, macCli, macDir0, "10.0.1.3", "10.0.1.100", 40001, 80, true, false), // new flow
		tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, false, true), // existing connection
		fuzzTCP6(t, macCli, macDir0, "2001:db8:1::2", "2001:db8:1::100", 40002, 80, true),
		icmpFrame4(t, "10.0.1.2", "10.0.1.100", layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodePort),
	}
	notOwned := [][]byte{
		tcpFrame(t, macCli, macDir0, "10.0.1.3", "10.0.1.100", 40003, 22, true, false),
		fuzzTCP6(t, macCli, macDir0, "2001:db8:1::2", "2001:db8:1::100", 40004, 22, true),
		icmpFrame4(t, "10.0.1.2", "10.0.1.100", layers.ICMPv4TypeEchoRequest, 0),
	}
	out := r.run(t, append(append([][]byte{}, owned...), notOwned...)...)
	if len(out) != 0 {
		t.Fatalf("standby VIP: forwarded %d frames", len(out))
	}
	if len(ln.pkts) != len(owned) {
		t.Fatalf("delivered %d packets to the local stack, want %d", len(ln.pkts), len(owned))
	}
	for i, f := range owned {
		if !bytes.Equal(ln.pkts[i], ipOf(f)) {
			t.Errorf("delivered packet %d changed:\n got %x\nwant %x", i, ln.pkts[i], ipOf(f))
		}
	}
	c := &r.w.Counters
	if got, want := c.Load(dataplane.CntStandby), uint64(len(owned)+len(notOwned)); got != want {
		t.Errorf("standby counter %d, want %d", got, want)
	}
	if got := c.Load(dataplane.CntLocalDelivered); got != uint64(len(owned)) {
		t.Errorf("local-delivered counter %d, want %d", got, len(owned))
	}
	if r.conns.Len() != 1 || c.Load(dataplane.CntNewConn) != 1 {
		t.Errorf("standby frames made connections: %d", r.conns.Len())
	}
	// No answer to ARP for the standby VIP (the master answers).
	if out := r.run(t, arpRequest(t, "10.0.1.100")); len(out) != 0 {
		t.Errorf("ARP for a standby VIP answered")
	}
	// Held again: served at once.
	r.setHost(func(h *dataplane.Host) { h.Standby = nil })
	if out := r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.4", "10.0.1.100", 40005, 80, true, false)); len(out) != 1 {
		t.Fatalf("master again: SYN sent %d frames", len(out))
	}
	if len(ln.pkts) != len(owned) {
		t.Fatalf("a held VIP's frame was delivered locally")
	}
}

// A partial checksum (AF_XDP: unknown, looks partial) is completed before
// a standby VIP's frame is delivered: the local stack verifies it.
func TestStandbyToLocalNodePartial(t *testing.T) {
	ln := &fakeLocal{}
	r := localRig(t, dualRules, ln)
	r.setHost(func(h *dataplane.Host) { h.Standby, h.Loopback = standbySet("10.0.1.100"), standbySet("10.0.1.100") })
	f := partialTCP(t)
	buf := make([]byte, 64+len(f))
	copy(buf[64:], f)
	r.w.ProcessBatch([]dataplane.Frame{{Buf: buf, Off: 64, Len: len(f), Ifindex: 1, CsumUnknown: true}})
	if len(ln.pkts) != 1 {
		t.Fatalf("delivered %d packets", len(ln.pkts))
	}
	want := tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false)
	if !bytes.Equal(ln.pkts[0], ipOf(want)) {
		t.Fatalf("delivered %x\nwant %x (checksum completed)", ln.pkts[0], ipOf(want))
	}
}

// Delivering a standby VIP's frames locally does not allocate.
func TestStandbyToLocalNodeNoAllocs(t *testing.T) {
	ln := &fakeLocal{count: true}
	r := localRig(t, dualRules, ln)
	r.setHost(func(h *dataplane.Host) {
		h.Standby = standbySet("10.0.1.100", "2001:db8:1::100")
		h.Loopback = standbySet("10.0.1.100", "2001:db8:1::100")
	})
	v4 := tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false)
	v6 := fuzzTCP6(t, macCli, macDir0, "2001:db8:1::2", "2001:db8:1::100", 40002, 80, true)
	w := dataplane.NewWorker(discardIO{}, r.env)
	bufs := [2][]byte{make([]byte, 64+len(v4)), make([]byte, 64+len(v6))}
	frames := make([]dataplane.Frame, 2)
	allocs := testing.AllocsPerRun(200, func() {
		copy(bufs[0][64:], v4)
		copy(bufs[1][64:], v6)
		frames[0] = dataplane.Frame{Buf: bufs[0], Off: 64, Len: len(v4), Ifindex: 1}
		frames[1] = dataplane.Frame{Buf: bufs[1], Off: 64, Len: len(v6), Ifindex: 1}
		w.ProcessBatch(frames)
	})
	if ln.n == 0 {
		t.Fatal("the measured path delivered nothing")
	}
	if allocs != 0 {
		t.Fatalf("standby local delivery allocates %.1f times per batch", allocs)
	}
}

// Under backup_only nothing is owned, so the kernel gets a standby VIP's
// frames by itself: they are not delivered a second time.
func TestStandbyBackupOnlyNotDelivered(t *testing.T) {
	ln := &fakeLocal{}
	r := localRig(t, dualRules, ln)
	r.setHost(func(h *dataplane.Host) { h.Standby, h.BackupOnly = standbySet("10.0.1.100"), true })
	if out := r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.3", "10.0.1.100", 40001, 80, true, false)); len(out) != 0 || len(ln.pkts) != 0 {
		t.Fatalf("backup_only: sent %d frames, delivered %d", len(out), len(ln.pkts))
	}
}

// A standby VIP that is not a host address (a pure backup director): its
// owned frames are dropped, not delivered — the kernel could only forward
// them, or, when keepalived has just added the VIP and uvsd has not yet
// learnt it, reset them (a client's connection refused at takeover) —
// and ARP for it is not answered.
func TestStandbyNotLocalDropped(t *testing.T) {
	ln := &fakeLocal{}
	r := localRig(t, dualRules, ln)
	r.setHost(func(h *dataplane.Host) { h.Standby = standbySet("10.0.1.100", "2001:db8:1::100") })
	out := r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.3", "10.0.1.100", 40001, 80, true, false),
		fuzzTCP6(t, macCli, macDir0, "2001:db8:1::2", "2001:db8:1::100", 40002, 80, true))
	if len(out) != 0 || len(ln.pkts) != 0 {
		t.Fatalf("standby VIP, not a host address: forwarded %d, delivered %d", len(out), len(ln.pkts))
	}
	if got := r.w.Counters.Load(dataplane.CntStandby); got != 2 {
		t.Errorf("standby counter %d, want 2", got)
	}
	if r.conns.Len() != 0 {
		t.Errorf("standby frames made %d connections", r.conns.Len())
	}
	if out := r.run(t, arpRequest(t, "10.0.1.100")); len(out) != 0 {
		t.Errorf("ARP for a standby VIP answered")
	}
}

// The takeover window: keepalived has added the VIP to its interface, the
// host facts already list it as a local address, but the VRRP follower has
// not yet moved it out of Standby. Its frames are dropped (the client
// retransmits to the new master), not handed to the kernel, which would
// answer a SYN with a reset.
func TestStandbyJustTakenOverDropped(t *testing.T) {
	ln := &fakeLocal{}
	r := localRig(t, dualRules, ln)
	r.setHost(func(h *dataplane.Host) { h.Standby, h.Local = standbySet("10.0.1.100"), standbySet("10.0.1.100") })
	if out := r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.3", "10.0.1.100", 40001, 80, true, false)); len(out) != 0 || len(ln.pkts) != 0 {
		t.Fatalf("standby VIP just added to an interface: forwarded %d, delivered %d to the kernel", len(out), len(ln.pkts))
	}
}
