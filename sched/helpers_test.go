package sched

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/spec"
)

// fakeClock is an injected clock tests advance by hand.
type fakeClock struct{ t time.Time }

func newClock() *fakeClock { return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time          { return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.t = c.t.Add(d) }

func tcpService(vip string, port uint16, sched string) spec.Service {
	return spec.Service{
		Key:       spec.ServiceKey{Proto: spec.ProtoTCP, Addr: netip.MustParseAddr(vip), Port: port},
		Scheduler: sched,
		Netmask:   spec.DefaultNetmask(false),
	}
}

func newSvc(t testing.TB, sched string, o Options) *Service {
	t.Helper()
	s, err := NewService(tcpService("10.0.0.100", 80, sched), o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func dcfg(addrPort string, w uint32) spec.Dest {
	ap := netip.MustParseAddrPort(addrPort)
	return spec.Dest{Addr: ap.Addr(), Port: ap.Port(), Weight: w, Fwd: spec.FwdMasq}
}

func addDest(t testing.TB, s *Service, addrPort string, w uint32) *Dest {
	t.Helper()
	d, err := s.AddDest(dcfg(addrPort, w))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func tcpFlow(src string, sport uint16) *Flow {
	return &Flow{Proto: spec.ProtoTCP, Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr("10.0.0.100"), SrcPort: sport, DstPort: 80}
}

// setConns sets a destination's counters to (active, inactive) by binding
// and moving connections as the connection table would.
func setConns(d *Dest, active, inactive int32) {
	for d.ActiveConns() > 0 {
		d.UnbindConn(false, true)
	}
	for d.InactConns() > 0 {
		d.UnbindConn(false, false)
	}
	for i := int32(0); i < active+inactive; i++ {
		d.BindConn(false)
	}
	for i := int32(0); i < active; i++ {
		d.SetActive(true)
	}
}

// seq schedules n times and returns the chosen destinations' last address
// octets joined ("3 2 1"), "-" for nil.
func seq(s *Service, f *Flow, n int, name map[*Dest]string) string {
	var out []string
	for range n {
		d := s.Schedule(f)
		if d == nil {
			out = append(out, "-")
			continue
		}
		out = append(out, name[d])
	}
	return strings.Join(out, " ")
}
