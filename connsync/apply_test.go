package connsync_test

import (
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/connsync"
	"github.com/uvs-lb/uvs/connsync/wire"
	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/control"
	"github.com/uvs-lb/uvs/internal/fuzzwatch"
	"github.com/uvs-lb/uvs/ipvsadm"
	"github.com/uvs-lb/uvs/sched"
	"github.com/uvs-lb/uvs/snapshot"
	"github.com/uvs-lb/uvs/spec"
)

// backup is a backup director's table and configuration, built as uvsd
// builds them (control.State publishing snapshots).
type backup struct {
	snap  atomic.Pointer[snapshot.Snapshot]
	table *conntrack.Table
	app   *connsync.TableApplier
	clock int64
}

func newBackup(t *testing.T, rules string) *backup {
	t.Helper()
	return newBackupCmds(t, parseRules(t, rules))
}

func parseRules(t testing.TB, rules string) []ipvsadm.Command {
	t.Helper()
	cmds, err := ipvsadm.ParseRules(strings.NewReader(rules), "rules")
	if err != nil {
		t.Fatal(err)
	}
	return cmds
}

// newBackupCmds is newBackup with the rules parsed (applying leaves cmds
// as they were, so one parse serves every fuzz input).
func newBackupCmds(t *testing.T, cmds []ipvsadm.Command) *backup {
	t.Helper()
	b := &backup{}
	st := control.New(control.Options{Publish: func(s *snapshot.Snapshot) { b.snap.Store(s) }})
	if err := st.ApplyAll(cmds); err != nil {
		t.Fatal(err)
	}
	var err error
	// An entry holds one destination and the rules name a few: the
	// registry never fills before the table, and is not the default
	// 16384 slots (zeroed per fuzz input).
	b.table, err = conntrack.New(conntrack.Config{Capacity: 64, MaxDests: 64 + 64})
	if err != nil {
		t.Fatal(err)
	}
	b.clock = int64(100 * time.Second)
	b.app = connsync.NewTableApplier(b.table, &b.snap, func() int64 { return b.clock }, 0)
	return b
}

// dest returns the backup's destination at rs of the service at vip.
func (b *backup) dest(t *testing.T, proto spec.Proto, vip netip.Addr, vport uint16, mark uint32, rs string) *sched.Dest {
	t.Helper()
	svc := b.snap.Load().Lookup(proto, vip.As16(), vport, mark, false)
	if svc == nil {
		t.Fatalf("no service %v:%d mark %d", vip, vport, mark)
	}
	d := svc.Sched.Dest(netip.MustParseAddrPort(rs))
	if d == nil {
		t.Fatalf("no dest %s", rs)
	}
	return d
}

func (b *backup) list() []conntrack.Listing { return b.table.Snapshot(b.clock, nil) }

func (b *backup) only(t *testing.T) conntrack.Listing {
	t.Helper()
	ls := b.list()
	if len(ls) != 1 {
		t.Fatalf("table holds %d entries, want 1: %+v", len(ls), ls)
	}
	return ls[0]
}

func (b *backup) wantStats(t *testing.T, want connsync.ApplierStats) {
	t.Helper()
	if got := b.app.Stats(); got != want {
		t.Fatalf("stats %+v, want %+v", got, want)
	}
}

func a16(s string) [16]byte { return netip.MustParseAddr(s).As16() }

// drEntry is ha-reference §8.1's connection: DR, TCP ESTABLISHED, client
// 10.1.0.2:40000 → VIP 10.10.10.10:80 → RS 10.2.0.10:80, 900 s.
func drEntry() wire.Entry {
	return wire.Entry{
		Proto: 6, Flags: 0x83, State: 1, CPort: 40000, VPort: 80, DPort: 80, Timeout: 900,
		CAddr: a16("10.1.0.2"), VAddr: a16("10.10.10.10"), DAddr: a16("10.2.0.10"),
	}
}

const drRules = `-A -t 10.10.10.10:80 -s rr
-a -t 10.10.10.10:80 -r 10.2.0.10:80 -g
-a -t 10.10.10.10:80 -r 10.2.0.11:80 -g
`

var vip = netip.MustParseAddr("10.10.10.10")

// ha-reference §8.1, backup side: the connection is created with flags
// 0x83 | SYNC, the method re-taken from the local dest, state ESTABLISHED,
// expiring in 900 s, ActiveConn +1; a second message with INACTIVE moves
// it to InActConn.
func TestApplyDRConnection(t *testing.T) {
	b := newBackup(t, drRules)
	d := b.dest(t, spec.ProtoTCP, vip, 80, 0, "10.2.0.10:80")
	e := drEntry()
	b.app.Apply(&e, 1)
	l := b.only(t)
	if l.Dest != d || l.Fwd != spec.FwdRoute || l.State != conntrack.StateEstablished ||
		l.Flags != conntrack.FlagHashed|conntrack.FlagSync|conntrack.FlagNoOutput || l.Remaining != 900*time.Second ||
		l.Client != netip.MustParseAddrPort("10.1.0.2:40000") || l.Service == 0 {
		t.Fatalf("synced connection %+v", l)
	}
	if d.ActiveConns() != 1 || d.InactConns() != 0 {
		t.Fatalf("dest active %d inactive %d", d.ActiveConns(), d.InactConns())
	}
	e.Flags |= wire.FlagInactive
	e.State = 4 // FIN_WAIT
	e.Timeout = 120
	b.clock += int64(time.Second)
	b.app.Apply(&e, 1)
	if l := b.only(t); l.State != conntrack.StateFinWait || l.Remaining != 120*time.Second || l.Flags&conntrack.FlagInactive == 0 {
		t.Fatalf("updated connection %+v", l)
	}
	if d.ActiveConns() != 0 || d.InactConns() != 1 {
		t.Fatalf("after INACTIVE: dest active %d inactive %d", d.ActiveConns(), d.InactConns())
	}
	b.wantStats(t, connsync.ApplierStats{Applied: 2, Created: 1, Updated: 1})
}

// The backup's destination decides the method, not the message.
func TestApplyMethodFromBackupDest(t *testing.T) {
	b := newBackup(t, "-A -t 10.10.10.10:80 -s rr\n-a -t 10.10.10.10:80 -r 10.2.0.10:80 -m\n")
	e := drEntry() // DR on the master
	b.app.Apply(&e, 1)
	if l := b.only(t); l.Fwd != spec.FwdMasq || l.Flags&conntrack.FlagNoOutput != 0 {
		t.Fatalf("connection %+v: want NAT from the backup's dest", l)
	}
}

// No such destination, or no such service, on the backup: created
// unbound; bound once a later message finds the destination.
func TestApplyUnbound(t *testing.T) {
	b := newBackup(t, "-A -t 10.10.10.10:80 -s rr\n-a -t 10.10.10.10:80 -r 10.2.0.11:80 -g\n")
	e := drEntry()
	b.app.Apply(&e, 1)
	if l := b.only(t); l.Dest != nil || l.Fwd != spec.FwdRoute || l.Service == 0 {
		t.Fatalf("connection %+v: want unbound, DR from the message, in the service", l)
	}
	other := drEntry()
	other.VAddr = a16("10.10.10.99")
	other.CPort = 40001
	b.app.Apply(&other, 1)
	b.wantStats(t, connsync.ApplierStats{Applied: 2, Created: 2, Unbound: 2})

	// The destination is added on the backup; the next message binds.
	b2 := newBackup(t, drRules)
	b2.table = b.table
	b2.app = connsync.NewTableApplier(b.table, &b2.snap, func() int64 { return b2.clock }, 0)
	b2.app.Apply(&e, 1)
	d := b2.dest(t, spec.ProtoTCP, vip, 80, 0, "10.2.0.10:80")
	if d.ActiveConns() != 1 {
		t.Fatalf("bound dest active %d", d.ActiveConns())
	}
	b2.wantStats(t, connsync.ApplierStats{Applied: 1, Updated: 1})
}

// A replaced connection: a new dest is taken over; the old one's late
// INACTIVE message is ignored.
func TestApplyReplacedAndIgnored(t *testing.T) {
	b := newBackup(t, drRules)
	d10 := b.dest(t, spec.ProtoTCP, vip, 80, 0, "10.2.0.10:80")
	d11 := b.dest(t, spec.ProtoTCP, vip, 80, 0, "10.2.0.11:80")
	e := drEntry()
	b.app.Apply(&e, 1)
	e2 := drEntry()
	e2.DAddr = a16("10.2.0.11")
	b.app.Apply(&e2, 1)
	e.Flags |= wire.FlagInactive
	b.app.Apply(&e, 1)
	if l := b.only(t); l.Dest != d11 {
		t.Fatalf("connection %+v, want on 10.2.0.11", l)
	}
	if d10.ActiveConns()+d10.InactConns() != 0 || d11.ActiveConns() != 1 {
		t.Fatalf("counters: d10 %d/%d d11 %d", d10.ActiveConns(), d10.InactConns(), d11.ActiveConns())
	}
	b.wantStats(t, connsync.ApplierStats{Applied: 3, Created: 1, Replaced: 1, Ignored: 1})
}

// Version 0: no timeout on the wire, the protocol's for the state.
func TestApplyV0(t *testing.T) {
	b := newBackup(t, drRules)
	e := drEntry()
	e.Timeout = 0
	b.app.Apply(&e, 0)
	if l := b.only(t); l.Timeout != conntrack.DefaultTCPTimeout(conntrack.StateEstablished) {
		t.Fatalf("v0 timeout %v", l.Timeout)
	}
}

// Malformed entries change nothing and are counted.
func TestApplyRejects(t *testing.T) {
	b := newBackup(t, drRules)
	for _, mod := range []func(*wire.Entry){
		func(e *wire.Entry) { e.State = 11 },                                          // beyond TCP's states
		func(e *wire.Entry) { e.State = 0x100 },                                       // beyond 8 bits
		func(e *wire.Entry) { e.Proto, e.State = 132, 0x20 },                          // SCTP, beyond its states
		func(e *wire.Entry) { e.Proto = 47 },                                          // GRE: no state machine
		func(e *wire.Entry) { e.Flags = e.Flags&^wire.FlagFwdMask | wire.FwdFullNAT }, // FULLNAT without local address (unbound)
	} {
		e := drEntry()
		e.DAddr = a16("10.2.0.99") // unbound: the message's method counts
		mod(&e)
		b.app.Apply(&e, 1)
	}
	if n := len(b.list()); n != 0 {
		t.Fatalf("rejected entries left %d connections", n)
	}
	b.wantStats(t, connsync.ApplierStats{Failed: 5})
}

// A persistence template reaches the backup's table under the key its
// scheduler uses: once promoted, the backup keeps the client on the
// master's server.
func TestApplyTemplateKeepsClient(t *testing.T) {
	b := newBackup(t, "-A -t 10.10.10.10:80 -s rr -p 50\n-a -t 10.10.10.10:80 -r 10.2.0.10:80 -g\n-a -t 10.10.10.10:80 -r 10.2.0.11:80 -g\n")
	tm := wire.Entry{
		Proto: 6, Flags: wire.FlagTemplate | 0x3, State: 0, VPort: 80, DPort: 80, Timeout: 50,
		CAddr: a16("10.1.0.2"), VAddr: a16("10.10.10.10"), DAddr: a16("10.2.0.11"),
	}
	b.app.Apply(&tm, 1)
	d11 := b.dest(t, spec.ProtoTCP, vip, 80, 0, "10.2.0.11:80")
	if l := b.only(t); !l.Template || l.Dest != d11 || l.Timeout != 50*time.Second {
		t.Fatalf("template %+v", l)
	}
	if d11.PersistConns() != 1 {
		t.Fatalf("persistconns %d", d11.PersistConns())
	}
	svc := b.snap.Load().Lookup(spec.ProtoTCP, vip.As16(), 80, 0, false)
	epoch := time.Unix(0, 0)
	tmpls := conntrack.NewSchedTemplates(b.table, epoch)
	for i := range 3 {
		f := &sched.Flow{Proto: spec.ProtoTCP, Src: netip.MustParseAddr("10.1.0.2"), Dst: vip, SrcPort: uint16(50000 + i), DstPort: 80}
		dec := svc.Sched.SchedulePersistent(f, tmpls, epoch.Add(time.Duration(b.clock)), nil)
		if dec.Dest != d11 || dec.NewTemplate {
			t.Fatalf("connection %d scheduled to %v (new template %v), want the synced template's 10.2.0.11", i, dec.Dest.AddrPort(), dec.NewTemplate)
		}
	}
	b.wantStats(t, connsync.ApplierStats{Applied: 1, Created: 1})
}

// A firewall-mark service's template: protocol 0, the mark as the address;
// the destination is found at daddr:0 (ip_vs_find_dest, not NAT).
func TestApplyFWMarkTemplate(t *testing.T) {
	b := newBackup(t, "-A -f 7 -s rr -p 60\n-a -f 7 -r 10.2.0.10 -g\n")
	tm := wire.Entry{
		Proto: 0, Flags: wire.FlagTemplate | 0x3, FWMark: 7, Timeout: 60,
		CAddr: a16("10.1.0.2"), VAddr: a16("0.0.0.7"), DAddr: a16("10.2.0.10"),
	}
	b.app.Apply(&tm, 1)
	l := b.only(t)
	if l.Dest == nil || l.Dest.Addr() != netip.MustParseAddr("10.2.0.10") || l.FWMark != 7 {
		t.Fatalf("fwmark template %+v", l)
	}
	k := conntrack.NewFWMarkTemplateKey(netip.MustParseAddr("10.1.0.2"), 7)
	if _, d, ok := b.table.LookupTemplate(k, b.clock); !ok || d != l.Dest {
		t.Fatal("the scheduler's fwmark template key does not find it")
	}
}

// fuzzRules gives the fuzzed entries services and destinations to find:
// NAT, DR, persistent, FULLNAT, firewall mark.
const fuzzRules = `-A -t 10.10.10.10:80 -s rr -p 30
-a -t 10.10.10.10:80 -r 10.2.0.10:80 -m
-a -t 10.10.10.10:80 -r 10.2.0.11:80 -g
-A -u 10.10.10.10:53 -s rr
-a -u 10.10.10.10:53 -r 10.2.0.10:53 -b
-A -f 7 -s rr -p 60
-a -f 7 -r 10.2.0.11 -g
`

// fuzzEntry builds an entry from 11 bytes, choosing addresses and ports
// from small sets so that entries meet each other.
func fuzzEntry(b []byte) wire.Entry {
	protos := [...]uint8{6, 17, 0, 132}
	e := wire.Entry{
		Proto:   protos[b[0]&3],
		Flags:   uint32(b[1])<<8 | uint32(b[2]),
		State:   uint16(b[3] % 13),
		CPort:   40000 + uint16(b[5]&3),
		VPort:   [...]uint16{80, 53, 0, 81}[b[6]>>4&3],
		DPort:   [...]uint16{80, 53, 0, 8080}[b[7]>>4&3],
		Timeout: uint32(b[8]),
		CAddr:   a16("10.1.0." + string(rune('0'+b[4]%8))),
		VAddr:   [...][16]byte{a16("10.10.10.10"), a16("10.10.10.11"), a16("0.0.0.7"), a16("10.2.0.10")}[b[6]&3],
		DAddr:   [...][16]byte{a16("10.2.0.10"), a16("10.2.0.11"), a16("10.2.0.99"), a16("10.1.0.1")}[b[7]&3],
	}
	if b[9]&1 != 0 {
		e.Flags |= wire.FlagTemplate
	}
	if b[9]&2 != 0 {
		e.FWMark = 7
	}
	if b[9]&4 != 0 {
		e.HasLocal, e.LAddr, e.LPort = true, a16("10.2.0.1"), 30000+uint16(b[10])
	}
	return e
}

// FuzzTableApply applies sequences of arbitrary entries, interleaved with
// expiry, and checks that whatever was accepted or refused, every
// destination's active, inactive and persistent counts equal what the
// table holds, and that all of it can be reaped back to zero.
func FuzzTableApply(f *testing.F) {
	f.Add([]byte{0, 0, 0x83, 1, 2, 0, 0, 0, 90, 0, 0})
	f.Add([]byte{0, 0, 0x83, 1, 2, 0, 0, 0, 90, 0, 0, 0, 1, 0x83, 4, 2, 0, 0, 0, 90, 0, 0})
	f.Add([]byte{0, 0x10, 0x03, 0, 2, 0, 0, 0, 30, 1, 0, 0, 0, 0x83, 1, 2, 0, 0, 1, 30, 0, 0})
	f.Add([]byte{2, 0x10, 0x03, 0, 2, 0, 0x22, 0x21, 60, 3, 0})
	f.Add([]byte{1, 0, 0x05, 0, 3, 1, 0x10, 0x10, 200, 4, 7})
	cmds := parseRules(f, fuzzRules)
	f.Fuzz(func(t *testing.T, data []byte) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("%d bytes %.200q", len(data), data) })()
		b := newBackupCmds(t, cmds)
		for i := 0; i+11 <= len(data) && i < 11*64; i += 11 {
			e := fuzzEntry(data[i : i+11])
			b.app.Apply(&e, int(data[i+10]&1))
			b.clock += int64(data[i+8]%8) * int64(time.Second)
			b.table.Reap(b.clock, 8)
		}
		check := func(when string) {
			t.Helper()
			want := map[*sched.Dest][3]int32{}
			for _, l := range b.list() {
				if l.Dest == nil {
					continue
				}
				c := want[l.Dest]
				switch {
				case l.Template:
					c[2]++
				case l.Flags&conntrack.FlagInactive != 0:
					c[1]++
				default:
					c[0]++
				}
				want[l.Dest] = c
			}
			for _, svc := range b.snap.Load().Services() {
				for _, d := range svc.Sched.Dests() {
					got := [3]int32{d.ActiveConns(), d.InactConns(), d.PersistConns()}
					if got != want[d] {
						t.Fatalf("%s: dest %v counts (active, inactive, persistent) %v, table holds %v", when, d.AddrPort(), got, want[d])
					}
				}
			}
		}
		check("after applying")
		st := b.app.Stats()
		if st.Applied != st.Created+st.Replaced+st.Updated+st.Ignored {
			t.Fatalf("stats do not add up: %+v", st)
		}
		b.clock += int64(24 * time.Hour)
		b.table.Reap(b.clock, b.table.Capacity())
		b.clock += int64(24 * time.Hour)
		b.table.Reap(b.clock, b.table.Capacity())
		if n := b.table.Len(); n != 0 {
			t.Fatalf("%d entries left after reaping everything", n)
		}
		check("after reaping")
	})
}
