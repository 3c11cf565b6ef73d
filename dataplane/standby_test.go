package dataplane_test

import (
	"net"
	"net/netip"
	"testing"

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
