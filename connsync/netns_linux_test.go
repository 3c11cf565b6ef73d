package connsync

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/uvs-lb/uvs/connsync/wire"
	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/wait"
)

// syncPair is a master namespace and a backup namespace joined by a veth
// pair (sync0 — sync1), with a running Backup (syncid 51) in the second.
type syncPair struct {
	a, b   *netnstest.NS
	backup *Backup
	rec    *recorder
	group  netip.Addr
	ttl    uint8 // the masters' TTL (0: default)
}

func newSyncPair(t *testing.T, group netip.Addr) *syncPair {
	t.Helper()
	p := &syncPair{a: netnstest.New(t, "syncm"), b: netnstest.New(t, "syncb"), rec: &recorder{}, group: group}
	netnstest.Veth(t, p.a, "sync0", p.b, "sync1")
	p.a.AddrAdd(t, "sync0", "198.18.5.1/24")
	p.b.AddrAdd(t, "sync1", "198.18.5.2/24")
	err := p.b.Do(func() error {
		var err error
		p.backup, err = NewBackup(Config{State: "backup", Interface: "sync1", SyncID: 51, Group: group}, p.rec, zap.NewNop())
		return err
	})
	if err != nil {
		t.Fatalf("NewBackup: %v", err)
	}
	run(t, p.backup.Run, p.backup.Close)
	return p
}

// run starts a daemon's Run and stops it (Close, then Run must return nil)
// when the test ends.
func run(t *testing.T, fn func(context.Context) error, closeFn func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- fn(context.Background()) }()
	t.Cleanup(func() {
		if err := closeFn(); err != nil {
			t.Errorf("Close: %v", err)
		}
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after Close")
		}
	})
}

// master starts a master in the first namespace.
func (p *syncPair) master(t *testing.T, syncID uint8, log *zap.Logger) (*Master, *Ring) {
	t.Helper()
	tap := NewTap()
	ring := tap.NewRing()
	if p.group.Is6() {
		// An IPv6 master connects its socket to the group, which needs a
		// source address on sync0: its link-local one, which the kernel
		// adds only once the veth's carrier is seen up (asynchronously,
		// through linkwatch) and which stays tentative until duplicate
		// address detection ends. Without it the connect fails with
		// EADDRNOTAVAIL (CI saw it 20 ms into the test), as the kernel's
		// sync daemon's does (make_send_sock), so wait as an operator
		// would.
		wait.For(t, 10*time.Second, func() bool {
			out, err := p.a.Run("ip", "-6", "addr", "show", "dev", "sync0", "scope", "link")
			return err == nil && strings.Contains(out, "inet6 fe80::") && !strings.Contains(out, "tentative")
		}, "sync0's link-local address to leave duplicate address detection")
	}
	var m *Master
	err := p.a.Do(func() error {
		var err error
		m, err = NewMaster(Config{State: "master", Interface: "sync0", SyncID: syncID, Group: p.group, TTL: p.ttl}, tap, log)
		return err
	})
	if err != nil {
		t.Fatalf("NewMaster: %v", err)
	}
	run(t, m.Run, m.Close)
	wait.For(t, 5*time.Second, tap.Sending, "the master's tap to report Sending")
	return m, ring
}

// sampleEntries are 45 entries of every kind: more than one message's
// worth (40 IPv4 entries) so one message leaves full, the rest when 2 s
// old.
func sampleEntries() []wire.Entry {
	es := make([]wire.Entry, 0, 45)
	for i := range 40 {
		es = append(es, conn(1000+i))
	}
	tmpl := conn(0)
	tmpl.Flags = wire.FlagTemplate | wire.FlagNoCPort | wire.FwdDRoute | wire.FlagNoOutput
	tmpl.State, tmpl.Timeout = wire.TemplateNone, 50
	fwm := tmpl
	fwm.Proto, fwm.FWMark, fwm.VAddr, fwm.VPort, fwm.DPort = 0, 7, netip.AddrFrom4([4]byte{0, 0, 0, 7}).As16(), 0, 0
	full := conn(2000)
	full.Flags = wire.FwdFullNAT
	full.HasLocal, full.LAddr, full.LPort = true, netip.MustParseAddr("10.2.0.1").As16(), 40123
	seq := conn(2001)
	seq.Flags = wire.FwdMasq | wire.FlagInSeq | wire.FlagOutSeq
	seq.HasSeq, seq.InSeq, seq.OutSeq = true, wire.Seq{Init: 1, Delta: 2, PrevDelta: 3}, wire.Seq{Init: 4, Delta: 5, PrevDelta: 6}
	v6 := conn(2002)
	v6.IPv6 = true
	v6.CAddr, v6.VAddr, v6.DAddr = netip.MustParseAddr("2001:db8::2").As16(), netip.MustParseAddr("2001:db8::10").As16(), netip.MustParseAddr("2001:db8:1::10").As16()
	return append(es, tmpl, fwm, full, seq, v6)
}

func testSyncOverVeth(t *testing.T, group netip.Addr) {
	p := newSyncPair(t, group)
	p.ttl = 3
	var watch *ipv4.PacketConn
	if !group.Is6() {
		watch = watchGroup(t, p.b, "sync1")
	}
	core, logs := observer.New(zap.InfoLevel)
	m, ring := p.master(t, 51, zap.New(core))
	want := sampleEntries()
	for i := range want {
		if !ring.Push(&want[i]) {
			t.Fatalf("push %d failed", i)
		}
	}
	wait.For(t, 10*time.Second, func() bool {
		return len(p.rec.got()) >= len(want) && m.Stats().Messages >= 2 && p.backup.Stats().Messages >= 2
	},
		"%d entries at the backup, got %v", len(want), wait.Lazy(func() any { return len(p.rec.got()) }))
	got := p.rec.got()
	if len(got) != len(want) {
		t.Fatalf("backup applied %d entries, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] || p.rec.versions[i] != 1 {
			t.Errorf("entry %d arrived as\n%+v (version %d)\nwant\n%+v", i, got[i], p.rec.versions[i], want[i])
		}
	}
	if st := m.Stats(); st.Messages != 2 || st.Entries != uint64(len(want)) || st.SendErrors != 0 || st.RingDrops != 0 {
		t.Errorf("master stats %+v", st)
	}
	if st := p.backup.Stats(); st.Messages != 2 || st.Applied != uint64(len(want)) || st.RejectedTotal() != 0 || st.WrongSyncID != 0 {
		t.Errorf("backup stats %+v", st)
	}
	if watch != nil {
		// §4.5: sent from the interface's address (an ephemeral port) to
		// 224.0.0.81:8848 with the configured TTL.
		buf := make([]byte, 2000)
		watch.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, cm, src, err := watch.ReadFrom(buf)
		if err != nil {
			t.Fatalf("watching the group: %v", err)
		}
		from := src.(*net.UDPAddr)
		if cm == nil || cm.TTL != 3 || cm.Dst.String() != "224.0.0.81" || from.IP.String() != "198.18.5.1" || from.Port == 0 || from.Port == 8848 {
			t.Errorf("master's datagram: %d bytes from %v, control %v; want TTL 3 from 198.18.5.1 to 224.0.0.81", n, from, cm)
		}
		if h, why := wire.ParseHeader(buf[:n]); why != wire.ReasonNone || h.SyncID != 51 || h.Version != 1 {
			t.Errorf("master's datagram: header %+v %v", h, why)
		}
	}
	if logs.FilterMessage("sync thread started: state = MASTER, mcast_ifn = sync0, syncid = 51, id = 0").Len() != 1 {
		t.Errorf("master start not logged as the kernel does: %v", logs.All())
	}

	// A master of syncid 52 is ignored.
	other, oring := p.master(t, 52, zap.NewNop())
	e := conn(3000)
	oring.Push(&e)
	wait.For(t, 10*time.Second, func() bool { return p.backup.Stats().WrongSyncID == 1 && other.Stats().Messages == 1 },
		"the syncid 52 message to be ignored, stats %v", wait.Lazy(func() any { return p.backup.Stats() }))
	if n := len(p.rec.got()); n != len(want) || other.Stats().Messages != 1 {
		t.Fatalf("after the syncid 52 message: %d entries applied, want %d", n, len(want))
	}

	// Malformed datagrams sent straight to the group change nothing.
	var raw io.WriteCloser
	err := p.a.Do(func() error {
		ifi, err := interfaceByName("sync0")
		if err != nil {
			return err
		}
		raw, err = openMaster(m.Config(), ifi)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	good, _ := wire.EncodeV1(nil, 51, 1472, []wire.Entry{conn(4000)})
	mutate := func(off int, v byte) []byte {
		b := append([]byte(nil), good...)
		b[off] = v
		return b
	}
	bad := [][]byte{
		{0, 51, 0},                  // short
		good[:len(good)-1],          // size ≠ length
		mutate(10, 0x10),            // entry version 1
		mutate(8, 0x04),             // entry type 4
		mutate(17, 99),              // TCP state 99
		mutate(9, 47),               // protocol GRE
		append(good[:8:8], good...), // header twice: entry type/size garbage
	}
	// Multicast over veth is UDP: a datagram can be lost (the host's
	// per-CPU backlog is shared with every namespace's traffic), so each
	// is sent until the backup has read it; a late duplicate is read and
	// rejected like the first.
	before := p.backup.Stats()
	for i, b := range bad {
		read := p.backup.Stats().Messages
		deadline := time.Now().Add(10 * time.Second)
		for p.backup.Stats().Messages == read {
			if time.Now().After(deadline) {
				t.Fatalf("malformed datagram %d never read", i)
			}
			if _, err := raw.Write(b); err != nil {
				t.Fatalf("send malformed datagram: %v", err)
			}
			wait.Until(time.Second, func() bool { return p.backup.Stats().Messages != read })
		}
	}
	after := p.backup.Stats()
	if n := len(p.rec.got()); n != len(want) || after.Applied != before.Applied {
		t.Fatalf("malformed datagrams applied entries: %d, stats %+v", n, after)
	}
	read := after.Messages - before.Messages
	if read < uint64(len(bad)) || after.RejectedTotal()-before.RejectedTotal() != read {
		t.Fatalf("%d malformed datagrams read, rejections: before %+v after %+v", read, before.Rejected, after.Rejected)
	}
}

func TestSyncOverVethIPv4(t *testing.T) { testSyncOverVeth(t, netip.Addr{}) }

func TestSyncOverVethIPv6(t *testing.T) { testSyncOverVeth(t, netip.MustParseAddr("ff02::1:81")) }

func TestBackupTruncatesLongDatagrams(t *testing.T) {
	// A master sending 9000-byte messages to a backup reading 1472:
	// the datagrams are truncated and fail the size check.
	p := newSyncPair(t, netip.Addr{})
	p.a.IP(t, "link", "set", "sync0", "mtu", "9000")
	p.b.IP(t, "link", "set", "sync1", "mtu", "9000")
	tap := NewTap()
	ring := tap.NewRing()
	var m *Master
	if err := p.a.Do(func() error {
		var err error
		m, err = NewMaster(Config{State: "master", Interface: "sync0", SyncID: 51, MaxLen: 9000}, tap, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	run(t, m.Run, m.Close)
	for i := range 240 {
		e := conn(i)
		ring.Push(&e)
	}
	wait.For(t, 10*time.Second, func() bool { return p.backup.Stats().Messages >= 1 }, "a message at the backup")
	if st := p.backup.Stats(); st.Applied != 0 || st.Rejected[wire.ReasonBogusSize] == 0 {
		t.Fatalf("backup with maxlen %d took a longer message: %+v", p.backup.Config().MaxLen, st)
	}
}

// watchGroup opens a second socket on 224.0.0.81:8848 in ns (the backup's
// is SO_REUSEADDR, so both get every datagram) reporting each datagram's
// TTL and destination.
func watchGroup(t *testing.T, ns *netnstest.NS, dev string) *ipv4.PacketConn {
	t.Helper()
	var pc *ipv4.PacketConn
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1) })
			return errors.Join(err, serr)
		}}
		c, err := lc.ListenPacket(context.Background(), "udp4", "224.0.0.81:8848")
		if err != nil {
			return err
		}
		pc = ipv4.NewPacketConn(c)
		return errors.Join(pc.JoinGroup(ifi, &net.UDPAddr{IP: net.IPv4(224, 0, 0, 81)}),
			pc.SetControlMessage(ipv4.FlagTTL|ipv4.FlagDst, true))
	})
	if err != nil {
		t.Fatalf("watch socket: %v", err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}
