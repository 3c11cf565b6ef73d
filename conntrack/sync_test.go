package conntrack

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/sched"
	"github.com/uvs-lb/uvs/spec"
)

// syncDR is the DR connection of ha-reference §8.1: client 10.1.0.2:40000
// → VIP 10.10.10.10:80 → RS 10.2.0.10:80, ESTABLISHED, 900 s, wire flags
// 0x83 (DR | NOOUTPUT).
func syncDR(d *sched.Dest) SyncConn {
	return SyncConn{
		Proto: ProtoTCP, Flags: 0x83, State: StateEstablished,
		Client: EndpointFrom(ap("10.1.0.2:40000")), Virtual: EndpointFrom(ap("10.10.10.10:80")),
		Real: EndpointFrom(ap("10.2.0.10:80")), Timeout: 900 * time.Second,
		Dest: d, Fwd: spec.FwdRoute, Service: 7, InPkts: 3,
	}
}

// one returns the only live entry of tb.
func one(t *testing.T, tb *Table, now int64) Listing {
	t.Helper()
	ls := tb.Snapshot(now, nil)
	if len(ls) != 1 {
		t.Fatalf("table holds %d entries, want 1: %+v", len(ls), ls)
	}
	return ls[0]
}

func applyOK(t *testing.T, tb *Table, s *SyncConn, now int64, want SyncAction) SyncResult {
	t.Helper()
	res, err := tb.ApplySync(s, now)
	if err != nil {
		t.Fatalf("ApplySync: %v", err)
	}
	if res.Action != want {
		t.Fatalf("ApplySync: %v, want %v", res.Action, want)
	}
	return res
}

// A new synced connection is bound to the backup's destination, takes its
// method, the message's state, timeout and INACTIVE bit, FlagSync, and the
// sync threshold as its packet count; it has no client MAC.
func TestApplySyncCreates(t *testing.T) {
	tb := newTable(t, 16)
	d := newDest("10.2.0.10", 80, spec.FwdRoute)
	s := syncDR(d)
	res := applyOK(t, tb, &s, 10*sec, SyncCreated)
	if res.Unbound {
		t.Fatal("bound connection reported unbound")
	}
	l := one(t, tb, 10*sec)
	if l.Template || l.State != StateEstablished || l.Fwd != spec.FwdRoute || l.Dest != d ||
		l.Flags != FlagHashed|FlagSync|FlagNoOutput || l.Timeout != 900*time.Second || l.Remaining != 900*time.Second ||
		l.Client != ap("10.1.0.2:40000") || l.Virtual != ap("10.10.10.10:80") || l.Real != ap("10.2.0.10:80") || l.Service != 7 {
		t.Fatalf("synced connection %+v", l)
	}
	if counters(d) != [3]int32{1, 0, 0} {
		t.Fatalf("dest counters %v, want 1 active", counters(d))
	}
	// The data plane finds it in both directions; the inbound packet count
	// goes on from the threshold; no MAC is known.
	var c Conn
	if !tb.Track(tcpKey("10.1.0.2:40000", "10.10.10.10:80"), TCPAck, 11*sec, &c) {
		t.Fatal("synced connection not found inbound")
	}
	if c.InPkts != 4 || c.MAC != ([6]byte{}) || c.Ifindex != 0 || c.State != StateEstablished {
		t.Fatalf("tracked synced conn: in_pkts %d mac %v ifindex %d state %v", c.InPkts, c.MAC, c.Ifindex, c.State)
	}
	if !tb.Lookup(outKeyOf(&c), 11*sec, &c) || c.Dir != DirOut {
		t.Fatal("synced connection not found by its reply key")
	}
	recount(t, tb, d)
}

// The method comes from the backup's destination, not from the message;
// NOOUTPUT follows it (ip_vs_bind_dest).
func TestApplySyncMethodFromDest(t *testing.T) {
	tb := newTable(t, 16)
	d := newDest("10.2.0.10", 80, spec.FwdMasq)
	s := syncDR(d)
	s.Fwd = spec.FwdMasq
	applyOK(t, tb, &s, 0, SyncCreated)
	if l := one(t, tb, 0); l.Fwd != spec.FwdMasq || l.Flags&FlagNoOutput != 0 {
		t.Fatalf("NAT dest: fwd %v flags %#x", l.Fwd, l.Flags)
	}
}

// INACTIVE in the message: counted inactive; a later message flips it and
// moves the count; only INACTIVE and SEQ bits change on update.
func TestApplySyncInactiveFlip(t *testing.T) {
	tb := newTable(t, 16)
	d := newDest("10.2.0.10", 80, spec.FwdRoute)
	s := syncDR(d)
	s.Flags |= uint32(FlagInactive)
	s.State = StateSynRecv
	applyOK(t, tb, &s, 0, SyncCreated)
	if counters(d) != [3]int32{0, 1, 0} {
		t.Fatalf("inactive message: counters %v", counters(d))
	}
	s.Flags = 0x83 | uint32(FlagNoCPort) // NO_CPORT is not an update bit
	s.State = StateEstablished
	applyOK(t, tb, &s, sec, SyncUpdated)
	if counters(d) != [3]int32{1, 0, 0} {
		t.Fatalf("after flip to active: counters %v", counters(d))
	}
	l := one(t, tb, sec)
	if l.Flags&FlagInactive != 0 || l.Flags&FlagNoCPort != 0 || l.State != StateEstablished {
		t.Fatalf("after update: flags %#x state %v", l.Flags, l.State)
	}
	s.Flags = 0x83 | uint32(FlagInactive)
	s.State = StateFinWait
	s.Timeout = 120 * time.Second
	applyOK(t, tb, &s, 2*sec, SyncUpdated)
	if counters(d) != [3]int32{0, 1, 0} {
		t.Fatalf("after flip to inactive: counters %v", counters(d))
	}
	if l := one(t, tb, 2*sec); l.State != StateFinWait || l.Remaining != 120*time.Second {
		t.Fatalf("after update: state %v remaining %v", l.State, l.Remaining)
	}
	recount(t, tb, d)
}

// An existing connection with another destination: replaced unless the
// message is INACTIVE (the stale expiry of the replaced one).
func TestApplySyncOtherDest(t *testing.T) {
	tb := newTable(t, 16)
	d1 := newDest("10.2.0.10", 80, spec.FwdRoute)
	d2 := newDest("10.2.0.11", 80, spec.FwdRoute)
	s := syncDR(d1)
	applyOK(t, tb, &s, 0, SyncCreated)

	s2 := syncDR(d2)
	s2.Real = EndpointFrom(ap("10.2.0.11:80"))
	applyOK(t, tb, &s2, sec, SyncReplaced)
	if l := one(t, tb, sec); l.Dest != d2 || l.Real != ap("10.2.0.11:80") {
		t.Fatalf("not replaced: %+v", l)
	}
	if counters(d1) != [3]int32{} || counters(d2) != [3]int32{1, 0, 0} {
		t.Fatalf("counters d1 %v d2 %v", counters(d1), counters(d2))
	}

	// The old connection's INACTIVE update arrives late: ignored.
	s.Flags |= uint32(FlagInactive)
	s.State = StateClose
	applyOK(t, tb, &s, 2*sec, SyncIgnored)
	if l := one(t, tb, 2*sec); l.Dest != d2 || l.State != StateEstablished {
		t.Fatalf("stale message changed the connection: %+v", l)
	}
	recount(t, tb, d1)
	recount(t, tb, d2)
}

// No destination on the backup: the connection is created unbound, keeps
// the message's method and NOOUTPUT, and is bound when a later message
// finds the destination (ip_vs_try_bind_dest).
func TestApplySyncUnboundThenBound(t *testing.T) {
	tb := newTable(t, 16)
	s := syncDR(nil)
	s.Fwd = spec.FwdRoute
	res := applyOK(t, tb, &s, 0, SyncCreated)
	if !res.Unbound {
		t.Fatal("connection without destination not reported unbound")
	}
	if l := one(t, tb, 0); l.Dest != nil || l.Fwd != spec.FwdRoute || l.Flags&FlagNoOutput == 0 {
		t.Fatalf("unbound connection %+v", l)
	}
	d := newDest("10.2.0.10", 80, spec.FwdTunnel)
	s.Dest, s.Fwd = d, spec.FwdTunnel
	res = applyOK(t, tb, &s, sec, SyncUpdated)
	if res.Unbound {
		t.Fatal("bound connection reported unbound")
	}
	if l := one(t, tb, sec); l.Dest != d || l.Fwd != spec.FwdTunnel {
		t.Fatalf("not bound: %+v", l)
	}
	if counters(d) != [3]int32{1, 0, 0} {
		t.Fatalf("counters after binding %v", counters(d))
	}
	recount(t, tb, d)
	// Unbound connections expire and release nothing.
	if n := tb.Reap(2000*sec, 16); n != 1 || tb.Len() != 0 || counters(d) != [3]int32{} {
		t.Fatalf("reaped %d, len %d, counters %v", n, tb.Len(), counters(d))
	}
}

// Version 0 messages carry no timeout: the protocol's timeout for the
// state, 180 s for a template.
func TestApplySyncV0Timeouts(t *testing.T) {
	tb := newTable(t, 16)
	s := syncDR(nil)
	s.Timeout, s.State = 0, StateFinWait
	applyOK(t, tb, &s, 0, SyncCreated)
	if l := one(t, tb, 0); l.Timeout != DefaultTCPTimeout(StateFinWait) {
		t.Fatalf("v0 TCP FIN_WAIT timeout %v", l.Timeout)
	}
	tb2 := newTable(t, 16)
	u := SyncConn{Proto: ProtoUDP, Flags: 0, Client: EndpointFrom(ap("10.1.0.2:5353")),
		Virtual: EndpointFrom(ap("10.10.10.10:53")), Real: EndpointFrom(ap("10.2.0.10:53")), Fwd: spec.FwdMasq}
	applyOK(t, tb2, &u, 0, SyncCreated)
	if l := one(t, tb2, 0); l.Timeout != DefaultUDPTimeout || l.State != StateNormal {
		t.Fatalf("v0 UDP timeout %v", l.Timeout)
	}
	tb3 := newTable(t, 16)
	tm := syncTemplate(nil, 0)
	applyOK(t, tb3, &tm, 0, SyncCreated)
	if l := one(t, tb3, 0); l.Timeout != 180*time.Second {
		t.Fatalf("v0 template timeout %v", l.Timeout)
	}
}

// syncTemplate is the template of a persistent (PPC) service 10.10.10.10:80
// for client network 10.1.0.2, to d = 10.2.0.10:80.
func syncTemplate(d *sched.Dest, timeout time.Duration) SyncConn {
	k := NewTemplateKey(ProtoTCP, netip.MustParseAddr("10.1.0.2"), netip.MustParseAddr("10.10.10.10"), 80)
	return SyncConn{
		Proto: ProtoTCP, Template: true, Flags: uint32(FlagTemplate) | 0x3, State: StateNone,
		Client: Endpoint{k.Src, k.SrcPort}, Virtual: Endpoint{k.Dst, k.DstPort},
		Real: EndpointFrom(ap("10.2.0.10:80")), Timeout: timeout, Dest: d, Fwd: spec.FwdRoute, InPkts: 3,
	}
}

// A synced template is found by the scheduler's key (so a promoted backup
// keeps the client on its server), counts in persistconns, and is
// refreshed by later messages.
func TestApplySyncTemplate(t *testing.T) {
	tb := newTable(t, 16)
	d := newDest("10.2.0.10", 80, spec.FwdRoute)
	s := syncTemplate(d, 50*time.Second)
	applyOK(t, tb, &s, 0, SyncCreated)
	if counters(d) != [3]int32{0, 0, 1} {
		t.Fatalf("counters %v, want 1 persistent", counters(d))
	}
	tk := NewTemplateKey(ProtoTCP, netip.MustParseAddr("10.1.0.2"), netip.MustParseAddr("10.10.10.10"), 80)
	ti, ok := tb.GetTemplate(tk, sec)
	if !ok || ti.Dest != d || ti.DPort != 80 || ti.Timeout != 50*time.Second {
		t.Fatalf("scheduler's key does not find the synced template: %+v %v", ti, ok)
	}
	if l := one(t, tb, 0); !l.Template || l.Flags&(FlagSync|FlagTemplate) != FlagSync|FlagTemplate {
		t.Fatalf("synced template %+v", l)
	}
	// A refresh with state ASSURED re-arms it.
	s.State = StateAssured
	applyOK(t, tb, &s, 40*sec, SyncUpdated)
	if l := one(t, tb, 40*sec); l.State != StateAssured || l.Remaining != 50*time.Second {
		t.Fatalf("refreshed template %+v", l)
	}
	// The promoted backup schedules the client through it.
	h, got, ok := tb.LookupTemplate(tk, 41*sec)
	if !ok || got != d {
		t.Fatal("LookupTemplate misses the synced template")
	}
	var c Conn
	if err := tb.Create(&NewConn{In: tcpKey("10.1.0.2:40001", "10.10.10.10:80"), Fwd: spec.FwdRoute, Dest: d, Template: h}, TCPSyn, 41*sec, &c); err != nil || !c.Controlled {
		t.Fatalf("connection under the synced template: %v controlled=%v", err, c.Controlled)
	}
	recount(t, tb, d)
}

// A template whose destination changed on the master is replaced.
func TestApplySyncTemplateReplaced(t *testing.T) {
	tb := newTable(t, 16)
	d1 := newDest("10.2.0.10", 80, spec.FwdRoute)
	d2 := newDest("10.2.0.11", 80, spec.FwdRoute)
	s := syncTemplate(d1, 50*time.Second)
	applyOK(t, tb, &s, 0, SyncCreated)
	s.Dest, s.Real = d2, EndpointFrom(ap("10.2.0.11:80"))
	applyOK(t, tb, &s, sec, SyncReplaced)
	if l := one(t, tb, sec); l.Dest != d2 {
		t.Fatalf("template not replaced: %+v", l)
	}
	if counters(d1) != [3]int32{} || counters(d2) != [3]int32{0, 0, 1} {
		t.Fatalf("counters d1 %v d2 %v", counters(d1), counters(d2))
	}
}

// A firewall-mark template: protocol 0, the mark as the IPv4 address;
// the table records the mark.
func TestApplySyncFWMarkTemplate(t *testing.T) {
	tb := newTable(t, 16)
	d := newDest("10.2.0.10", 0, spec.FwdRoute)
	k := NewFWMarkTemplateKey(netip.MustParseAddr("10.1.0.0"), 7)
	s := SyncConn{Proto: ProtoIP, Template: true, Flags: uint32(FlagTemplate) | 3,
		Client: Endpoint{k.Src, 0}, Virtual: Endpoint{k.Dst, 0}, Real: EndpointFrom(ap("10.2.0.10:0")),
		FWMark: 7, Timeout: 300 * time.Second, Dest: d, Fwd: spec.FwdRoute}
	applyOK(t, tb, &s, 0, SyncCreated)
	if _, got, ok := tb.LookupTemplate(k, sec); !ok || got != d {
		t.Fatal("fwmark template not found by its key")
	}
	if l := one(t, tb, sec); l.FWMark != 7 || l.Virtual.Addr() != netip.MustParseAddr("0.0.0.7") {
		t.Fatalf("fwmark template %+v", l)
	}
}

// Malformed or unsupported entries change nothing.
func TestApplySyncRejects(t *testing.T) {
	tb := newTable(t, 16)
	d := newDest("10.2.0.10", 80, spec.FwdRoute)
	for _, tc := range []struct {
		name string
		mod  func(*SyncConn)
		want error
	}{
		{"tcp state", func(s *SyncConn) { s.State = NumTCPStates }, ErrSyncState},
		{"udp state", func(s *SyncConn) { s.Proto, s.State = ProtoUDP, 1 }, ErrSyncState},
		{"sctp state", func(s *SyncConn) { s.Proto, s.State = ProtoSCTP, NumSCTPStates }, ErrSyncState},
		{"other protocol", func(s *SyncConn) { s.Proto = 33 }, ErrSyncProto},
		{"fullnat without local", func(s *SyncConn) { s.Fwd = spec.FwdFullNAT }, ErrSyncLocal},
	} {
		s := syncDR(d)
		tc.mod(&s)
		if _, err := tb.ApplySync(&s, 0); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if tb.Len() != 0 || counters(d) != [3]int32{} {
		t.Fatalf("rejected messages left %d entries, counters %v", tb.Len(), counters(d))
	}
	// The inbound key of a new connection is another's reply key.
	var c Conn
	if err := tb.Create(&NewConn{In: tcpKey("10.1.0.2:40000", "10.10.10.10:80"), Fwd: spec.FwdMasq, Dest: d}, TCPSyn, 0, &c); err != nil {
		t.Fatal(err)
	}
	s := syncDR(d)
	s.Client, s.Virtual = EndpointFrom(ap("10.2.0.10:80")), EndpointFrom(ap("10.1.0.2:40000"))
	if _, err := tb.ApplySync(&s, 0); !errors.Is(err, ErrExists) {
		t.Fatalf("outbound key clash: %v", err)
	}
	if tb.Len() != 1 {
		t.Fatalf("clash left %d entries", tb.Len())
	}
	recount(t, tb, d)
}

// FULLNAT: the local endpoint is kept and the connection is found by its
// reply key RIP:rport → LIP:lport.
func TestApplySyncFullNAT(t *testing.T) {
	tb := newTable(t, 16)
	d := newDest("10.2.0.10", 80, spec.FwdFullNAT)
	s := syncDR(d)
	s.Fwd, s.Flags = spec.FwdFullNAT, 5
	s.Local = EndpointFrom(ap("10.2.0.1:30001"))
	applyOK(t, tb, &s, 0, SyncCreated)
	var c Conn
	if !tb.Lookup(Key{Proto: ProtoTCP, Src: s.Real.Addr, SrcPort: 80, Dst: s.Local.Addr, DstPort: 30001}, 0, &c) ||
		c.Dir != DirOut || c.Local != s.Local || c.Flags&FlagNoOutput != 0 {
		t.Fatalf("FULLNAT synced connection by reply key: %+v", c)
	}
}

// The inbound packet counter: 1 after Create, +1 per inbound packet,
// unchanged by replies.
func TestInPkts(t *testing.T) {
	tb := newTable(t, 16)
	d := newDest("10.2.0.10", 80, spec.FwdMasq)
	in := tcpKey("10.1.0.2:40000", "10.10.10.10:80")
	var c Conn
	if err := tb.Create(&NewConn{In: in, Fwd: spec.FwdMasq, Dest: d}, TCPSyn, 0, &c); err != nil {
		t.Fatal(err)
	}
	if c.InPkts != 1 {
		t.Fatalf("after Create: in_pkts %d", c.InPkts)
	}
	tb.Track(in, TCPAck, sec, &c)
	tb.Track(outKeyOf(&c), TCPAck|TCPSyn, sec, &c)
	if c.InPkts != 2 {
		t.Fatalf("reply changed in_pkts: %d", c.InPkts)
	}
	keys := []Key{in, in, outKeyOf(&c)}
	out := make([]Conn, 3)
	found := make([]bool, 3)
	tb.TrackBatch(keys, []uint8{TCPAck, TCPAck, TCPAck}, 2*sec, out, found)
	if out[0].InPkts != 3 || out[1].InPkts != 4 || out[2].InPkts != 4 {
		t.Fatalf("TrackBatch in_pkts %d %d %d", out[0].InPkts, out[1].InPkts, out[2].InPkts)
	}
}

// TemplateOf returns a connection's controlling template and counts the
// template's own syncs; a connection without template has none.
func TestTemplateOf(t *testing.T) {
	tb := newTable(t, 16)
	d := newDest("10.2.0.10", 80, spec.FwdRoute)
	tk := NewTemplateKey(ProtoTCP, netip.MustParseAddr("10.1.0.0"), netip.MustParseAddr("10.10.10.10"), 80)
	th, err := tb.InsertTemplate(tk, d, 50*time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	var c, tc Conn
	if err := tb.Create(&NewConn{In: tcpKey("10.1.0.2:40000", "10.10.10.10:80"), Fwd: spec.FwdRoute, Dest: d, Template: th}, TCPSyn, 0, &c); err != nil {
		t.Fatal(err)
	}
	if !tb.TemplateOf(c.Handle, 0, &tc) {
		t.Fatal("no template for a controlled connection")
	}
	if tc.Handle != th || tc.Flags&FlagTemplate == 0 || tc.Client.AddrPort() != ap("10.1.0.0:0") ||
		tc.Virtual.AddrPort() != ap("10.10.10.10:80") || tc.Real.AddrPort() != ap("10.2.0.10:80") ||
		tc.Timeout != 50*time.Second || tc.InPkts != 1 || tc.Fwd != spec.FwdRoute {
		t.Fatalf("template %+v", tc)
	}
	tb.TemplateOf(c.Handle, 0, &tc)
	if tc.InPkts != 2 {
		t.Fatalf("template in_pkts %d after two syncs", tc.InPkts)
	}
	var c2 Conn
	if err := tb.Create(&NewConn{In: tcpKey("10.1.0.3:40000", "10.10.10.10:80"), Fwd: spec.FwdRoute, Dest: d}, TCPSyn, 0, &c2); err != nil {
		t.Fatal(err)
	}
	if tb.TemplateOf(c2.Handle, 0, &tc) || tb.TemplateOf(th, 0, &tc) || tb.TemplateOf(0, 0, &tc) {
		t.Fatal("template reported for an uncontrolled connection, a template or no handle")
	}
	tb.ExpireNow(c.Handle, 0)
	if tb.TemplateOf(c.Handle, 0, &tc) {
		t.Fatal("template reported for an expired connection")
	}
	// Firewall-mark templates record their mark.
	fk := NewFWMarkTemplateKey(netip.MustParseAddr("10.1.0.0"), 9)
	if _, err := tb.InsertTemplate(fk, d, time.Minute, 0); err != nil {
		t.Fatal(err)
	}
	for _, l := range tb.Snapshot(0, nil) {
		if l.Template && l.Proto == ProtoIP && l.FWMark != 9 {
			t.Fatalf("fwmark template records mark %d", l.FWMark)
		}
	}
}

// ApplySync, TemplateOf and the in_pkts update do not allocate (the
// backup applies messages on its receive path).
func TestSyncNoAllocs(t *testing.T) {
	tb := newTable(t, 64)
	d := newDest("10.2.0.10", 80, spec.FwdRoute)
	s := syncDR(d)
	tm := syncTemplate(d, 50*time.Second)
	if _, err := tb.ApplySync(&s, 0); err != nil {
		t.Fatal(err)
	}
	tk := NewTemplateKey(ProtoTCP, netip.MustParseAddr("10.1.0.9"), netip.MustParseAddr("10.10.10.10"), 80)
	th, _ := tb.InsertTemplate(tk, d, time.Minute, 0)
	var c Conn
	if err := tb.Create(&NewConn{In: tcpKey("10.1.0.9:1", "10.10.10.10:80"), Fwd: spec.FwdRoute, Dest: d, Template: th}, TCPSyn, 0, &c); err != nil {
		t.Fatal(err)
	}
	var tc Conn
	n := testing.AllocsPerRun(100, func() {
		if _, err := tb.ApplySync(&s, sec); err != nil {
			t.Fatal(err)
		}
		if _, err := tb.ApplySync(&tm, sec); err != nil {
			t.Fatal(err)
		}
		if !tb.TemplateOf(c.Handle, sec, &tc) {
			t.Fatal("no template")
		}
	})
	if n != 0 {
		t.Fatalf("%.1f allocations", n)
	}
}

// Workers create and track connections, some under a template, and ask for
// their templates, while a backup applies sync messages for the same
// connections and templates (other destinations, INACTIVE flips, unbound
// entries binding) and a reaper expires them; run with -race. At the end
// the destination counters must match the table, and be zero once all is
// reaped.
func TestConcurrentApplySync(t *testing.T) {
	tb, err := New(Config{Capacity: 4096, Shards: 8, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	d1 := newDest("10.1.0.1", 80, spec.FwdMasq)
	d2 := newDest("10.1.0.2", 80, spec.FwdMasq)
	dests := []*sched.Dest{d1, d2}
	vip := netip.MustParseAddr("192.0.2.1")
	client := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), uint16(1000+i%50))
	}
	tkey := func(i int) Key { return NewTemplateKey(ProtoTCP, client(i).Addr(), vip, 80) }
	var clock atomic.Int64
	var wg, busy sync.WaitGroup
	stop := make(chan struct{})
	for w := range 2 {
		busy.Add(1)
		go func() {
			defer busy.Done()
			var c, tc Conn
			for i := range 3000 {
				now := clock.Add(int64(time.Millisecond))
				n := (i*7 + w*13) % 400
				in := KeyFrom(ProtoTCP, client(n), netip.AddrPortFrom(vip, 80))
				if tb.Track(in, TCPAck, now, &c) {
					tb.TemplateOf(c.Handle, now, &tc)
					continue
				}
				d := dests[n&1]
				th, _, ok := tb.LookupTemplate(tkey(n), now)
				if !ok {
					th, _ = tb.InsertTemplate(tkey(n), d, 5*time.Second, now)
				}
				_ = tb.Create(&NewConn{In: in, Dest: d, Fwd: spec.FwdMasq, Template: th}, TCPSyn, now, &c)
			}
		}()
	}
	busy.Add(1)
	go func() {
		defer busy.Done()
		for i := range 6000 {
			now := clock.Add(int64(time.Millisecond))
			n := (i * 11) % 400
			d := dests[(i/3)&1]
			s := SyncConn{Proto: ProtoTCP, State: StateEstablished, Client: EndpointFrom(client(n)),
				Virtual: EndpointFrom(netip.AddrPortFrom(vip, 80)), Real: EndpointFrom(d.AddrPort()),
				Timeout: 2 * time.Second, Dest: d, Fwd: spec.FwdMasq, InPkts: 3}
			switch i % 4 {
			case 1:
				s.Flags, s.State = uint32(FlagInactive), StateFinWait
			case 2:
				s.Dest = nil // the backup lacks it
			case 3:
				k := tkey(n)
				s = SyncConn{Proto: ProtoTCP, Template: true, Client: Endpoint{k.Src, 0}, Virtual: Endpoint{k.Dst, 80},
					Real: EndpointFrom(d.AddrPort()), Timeout: 5 * time.Second, Dest: d, Fwd: spec.FwdMasq}
			}
			if _, err := tb.ApplySync(&s, now); err != nil && !errors.Is(err, ErrExists) {
				t.Errorf("ApplySync: %v", err)
				return
			}
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			tb.Reap(clock.Load(), 256)
		}
	}()
	busy.Wait()
	close(stop)
	wg.Wait()
	recount(t, tb, d1)
	recount(t, tb, d2)
	tb.Reap(int64(time.Hour), tb.Capacity())
	tb.Reap(int64(2*time.Hour), tb.Capacity()) // templates postponed while their conns lived
	if tb.Len() != 0 || counters(d1) != [3]int32{} || counters(d2) != [3]int32{} {
		t.Fatalf("after full reap: len %d d1 %v d2 %v", tb.Len(), counters(d1), counters(d2))
	}
}
