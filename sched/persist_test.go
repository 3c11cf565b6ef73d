package sched

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/spec"
)

func persistSvc(t *testing.T, key spec.ServiceKey, sched string, mask uint32, o Options) *Service {
	t.Helper()
	s, err := NewService(spec.Service{Key: key, Scheduler: sched, Persistent: true, Timeout: 360, Netmask: mask}, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPersistencePPC(t *testing.T) {
	clk := newClock()
	s := persistSvc(t, spec.ServiceKey{Proto: spec.ProtoTCP, Addr: netip.MustParseAddr("10.0.0.100"), Port: 80}, "rr", 0xffffff00, Options{Now: clk.Now})
	a := addDest(t, s, "10.0.0.1:8080", 1)
	b := addDest(t, s, "10.0.0.2:8080", 1)
	tt := NewMapTemplates()
	f := tcpFlow("192.0.2.10", 40000)
	var why Reason
	dec := s.SchedulePersistent(f, tt, clk.Now(), &why)
	if dec.Dest != b || dec.Port != 8080 || !dec.NewTemplate || b.PersistConns() != 1 {
		t.Fatalf("first decision %+v persist=%d", dec, b.PersistConns())
	}
	if !strings.HasPrefix(why.String(), "persistence: new template 192.0.2.0/24 port 80; rr chose 10.0.0.2:8080") {
		t.Errorf("reason %q", why.String())
	}
	// Same /24, other port: same template, same dest, although rr would
	// move on.
	clk.Advance(2 * time.Second)
	f2 := tcpFlow("192.0.2.77", 50000)
	dec2 := s.SchedulePersistent(f2, tt, clk.Now(), &why)
	if dec2.Dest != b || dec2.NewTemplate || dec2.Template != dec.Template {
		t.Fatalf("second decision %+v", dec2)
	}
	if got, want := why.String(), "persistence: template 192.0.2.0/24 port 80 -> 10.0.0.2:8080 (expires in 5m58s)"; got != want {
		t.Errorf("reason %q, want %q", got, want)
	}
	// Other /24 → new template via the scheduler (rr → a).
	if d := s.SchedulePersistent(tcpFlow("192.0.3.1", 1), tt, clk.Now(), nil).Dest; d != a {
		t.Fatal("other network did not get a new decision")
	}
	// Quiesced dest keeps its persistent clients by default.
	_ = s.EditDest(spec.Dest{Addr: b.Addr(), Port: b.Port(), Weight: 0})
	if d := s.SchedulePersistent(f, tt, clk.Now(), nil).Dest; d != b {
		t.Fatal("quiesced dest lost its template")
	}
	// Expiry: 360 s after the last use the template is gone.
	clk.Advance(361 * time.Second)
	if n := tt.Expire(clk.Now()); n != 2 || b.PersistConns() != 0 {
		t.Fatalf("expired %d, persistconns %d", n, b.PersistConns())
	}
	if d := s.SchedulePersistent(f, tt, clk.Now(), nil).Dest; d != a {
		t.Fatal("expired template still used (b is quiesced, a must be chosen)")
	}
}

func TestPersistenceExpireQuiescentAndDeleted(t *testing.T) {
	clk := newClock()
	key := spec.ServiceKey{Proto: spec.ProtoTCP, Addr: netip.MustParseAddr("10.0.0.100"), Port: 80}
	s := persistSvc(t, key, "wlc", 0xffffffff, Options{Now: clk.Now, ExpireQuiescentTemplate: true})
	a := addDest(t, s, "10.0.0.1:80", 1)
	b := addDest(t, s, "10.0.0.2:80", 1)
	tt := NewMapTemplates()
	f := tcpFlow("192.0.2.10", 1)
	if s.SchedulePersistent(f, tt, clk.Now(), nil).Dest != b {
		t.Fatal()
	}
	_ = s.EditDest(spec.Dest{Addr: b.Addr(), Port: 80, Weight: 0})
	if d := s.SchedulePersistent(f, tt, clk.Now(), nil).Dest; d != a {
		t.Fatal("expire_quiescent_template: quiesced template still valid")
	}
	// The neutralised template keeps counting until it expires.
	if b.PersistConns() != 1 || a.PersistConns() != 1 {
		t.Fatalf("persistconns a=%d b=%d", a.PersistConns(), b.PersistConns())
	}
	// Deleted dest: template invalid.
	_ = s.EditDest(spec.Dest{Addr: b.Addr(), Port: 80, Weight: 1})
	_ = s.DelDest(a.AddrPort())
	if d := s.SchedulePersistent(f, tt, clk.Now(), nil).Dest; d != b {
		t.Fatal("template to a deleted dest still used")
	}
	clk.Advance(time.Hour)
	tt.Expire(clk.Now())
	if a.PersistConns()+b.PersistConns() != 0 {
		t.Fatal("templates not uncounted at expiry")
	}
}

func TestPersistencePCCAndFWM(t *testing.T) {
	clk := newClock()
	// PCC: port-0 service, every port sticks; RS sees the original port.
	pcc := persistSvc(t, spec.ServiceKey{Proto: spec.ProtoTCP, Addr: netip.MustParseAddr("10.0.0.100")}, "rr", 0xffffffff, Options{Now: clk.Now})
	addDest(t, pcc, "10.0.0.1:8080", 1)
	addDest(t, pcc, "10.0.0.2:8080", 1)
	tt := NewMapTemplates()
	f := tcpFlow("192.0.2.1", 1000)
	f.DstPort = 443
	d1 := pcc.SchedulePersistent(f, tt, clk.Now(), nil)
	f.DstPort = 22
	d2 := pcc.SchedulePersistent(f, tt, clk.Now(), nil)
	if d1.Dest == nil || d1.Dest != d2.Dest || d1.Port != 443 || d2.Port != 22 || d1.Template.VPort != 0 {
		t.Fatalf("PCC: %+v %+v", d1, d2)
	}
	// Non-persistent port-0 service: no destination.
	np, _ := NewService(spec.Service{Key: spec.ServiceKey{Proto: spec.ProtoTCP, Addr: netip.MustParseAddr("10.0.0.100")}, Scheduler: "rr"}, Options{})
	addDest(t, np, "10.0.0.1:80", 1)
	if dec := np.SchedulePersistent(f, tt, clk.Now(), nil); dec.Dest != nil {
		t.Fatal("non-persistent port-0 service scheduled")
	}

	// PFWMC: one template covers TCP and UDP of every VIP/port in the mark.
	fw := persistSvc(t, spec.ServiceKey{FWMark: 7, Proto: spec.ProtoTCP}, "rr", 0xffffffff, Options{Now: clk.Now})
	addDest(t, fw, "10.0.0.1:0", 1)
	addDest(t, fw, "10.0.0.2:0", 1)
	addDest(t, fw, "10.0.0.3:0", 1)
	g := &Flow{Proto: spec.ProtoTCP, Src: netip.MustParseAddr("192.0.2.9"), Dst: netip.MustParseAddr("10.9.9.9"), SrcPort: 5, DstPort: 80, Mark: 7}
	var why Reason
	e1 := fw.SchedulePersistent(g, tt, clk.Now(), &why)
	g2 := *g
	g2.Proto, g2.Dst, g2.DstPort = spec.ProtoUDP, netip.MustParseAddr("10.9.9.10"), 53
	e2 := fw.SchedulePersistent(&g2, tt, clk.Now(), nil)
	if e1.Dest == nil || e1.Dest != e2.Dest || e1.Template.Proto != spec.ProtoIP || e2.Port != 53 || e1.Port != 80 {
		t.Fatalf("PFWMC: %+v %+v", e1, e2)
	}
	if !strings.Contains(why.String(), "fwmark 7 192.0.2.9/32") {
		t.Errorf("reason %q", why.String())
	}
}

func TestPersistenceFTPAndIPv6Netmask(t *testing.T) {
	clk := newClock()
	ftp := persistSvc(t, spec.ServiceKey{Proto: spec.ProtoTCP, Addr: netip.MustParseAddr("10.0.0.100"), Port: 21}, "rr", 0xffffffff, Options{Now: clk.Now})
	addDest(t, ftp, "10.0.0.1:21", 1)
	addDest(t, ftp, "10.0.0.2:21", 1)
	tt := NewMapTemplates()
	ctl := tcpFlow("192.0.2.1", 3000)
	ctl.DstPort = 21
	c := ftp.SchedulePersistent(ctl, tt, clk.Now(), nil)
	data := *ctl
	data.DstPort = 40000 // passive data connection via the FTP fallback
	dd := ftp.SchedulePersistent(&data, tt, clk.Now(), nil)
	if c.Template.VPort != 0 || c.Dest != dd.Dest || dd.Template != c.Template || c.Port != 21 || dd.Port != 40000 {
		t.Fatalf("FTP: %+v %+v", c, dd)
	}

	v6 := persistSvc(t, spec.ServiceKey{Proto: spec.ProtoTCP, Addr: netip.MustParseAddr("2001:db8::100"), Port: 80}, "rr", 64, Options{Now: clk.Now})
	addDest(t, v6, "[2001:db8::1]:80", 1)
	addDest(t, v6, "[2001:db8::2]:80", 1)
	f1 := &Flow{Proto: spec.ProtoTCP, Src: netip.MustParseAddr("2001:db8:1:2::5"), Dst: netip.MustParseAddr("2001:db8::100"), SrcPort: 1, DstPort: 80}
	f2 := *f1
	f2.Src = netip.MustParseAddr("2001:db8:1:2:ffff::9")
	f3 := *f1
	f3.Src = netip.MustParseAddr("2001:db8:1:3::5")
	a, b, c3 := v6.SchedulePersistent(f1, tt, clk.Now(), nil), v6.SchedulePersistent(&f2, tt, clk.Now(), nil), v6.SchedulePersistent(&f3, tt, clk.Now(), nil)
	if a.Dest != b.Dest || a.Template != b.Template || c3.Dest == a.Dest {
		t.Fatalf("IPv6 /64 persistence: %v %v %v", a.Dest.AddrPort(), b.Dest.AddrPort(), c3.Dest.AddrPort())
	}
}

func TestSnetNonContiguousMask(t *testing.T) {
	a, n := snet(netip.MustParseAddr("192.168.17.33"), 0xffff00ff, false)
	if a != netip.MustParseAddr("192.168.0.33") || n != 32 {
		t.Errorf("non-contiguous mask: %v/%d", a, n)
	}
	a, n = snet(netip.MustParseAddr("192.168.17.33"), 0xfffff000, false)
	if a != netip.MustParseAddr("192.168.16.0") || n != 20 {
		t.Errorf("/20 mask: %v/%d", a, n)
	}
}
