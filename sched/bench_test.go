package sched

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/spec"
)

// benchService returns a service with n destinations of mixed weight and
// load, so the load-based schedulers do real comparisons.
func benchService(tb testing.TB, name string, n int) *Service {
	tb.Helper()
	s := newSvc(tb, name, Options{Now: time.Now, Rand: rand.New(rand.NewPCG(1, 2)).Uint32N})
	for i := range n {
		d := addDest(tb, s, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i + 1)}), 80).String(), uint32(i%5+1))
		setConns(d, int32(i%7+1), int32(i%3))
	}
	return s
}

func BenchmarkSchedule(b *testing.B) {
	for _, name := range Names() {
		b.Run(name, func(b *testing.B) {
			s := benchService(b, name, 100)
			f := tcpFlow("192.0.2.1", 1234)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				f.SrcPort = uint16(i)
				f.Src = netip.AddrFrom4([4]byte{192, 0, byte(i >> 8), byte(i)})
				s.Schedule(f)
			}
		})
	}
}

func BenchmarkScheduleWhy(b *testing.B) {
	s := benchService(b, "wlc", 100)
	f := tcpFlow("192.0.2.1", 1234)
	var why Reason
	b.ReportAllocs()
	for b.Loop() {
		s.ScheduleWhy(f, &why)
	}
}

func BenchmarkSchedulePersistentHit(b *testing.B) {
	s, _ := NewService(spec.Service{Key: spec.ServiceKey{Proto: spec.ProtoTCP, Addr: netip.MustParseAddr("10.0.0.100"), Port: 80}, Scheduler: "wlc", Persistent: true, Netmask: 0xffffff00}, Options{})
	addDest(b, s, "10.0.0.1:80", 1)
	tt := NewMapTemplates()
	now := time.Now()
	f := tcpFlow("192.0.2.1", 1234)
	s.SchedulePersistent(f, tt, now, nil)
	b.ReportAllocs()
	for b.Loop() {
		s.SchedulePersistent(f, tt, now, nil)
	}
}

func BenchmarkMHBuild(b *testing.B) {
	s := benchService(b, "mh", 100)
	o := s.opts
	dests := s.Dests()
	b.ReportAllocs()
	for b.Loop() {
		newMH(&o, dests)
	}
}

// TestScheduleNoAllocs guards the 0-allocation budget of a decision for
// every scheduler, with and without an explanation (the lblc/lblcr key is
// already cached, as on the steady state).
func TestScheduleNoAllocs(t *testing.T) {
	for _, name := range allNames() {
		s := benchService(t, name, 100)
		f := tcpFlow("192.0.2.1", 1234)
		s.Schedule(f)
		if n := testing.AllocsPerRun(200, func() { s.Schedule(f) }); n != 0 {
			t.Errorf("%s: Schedule allocates %.1f times", name, n)
		}
		var why Reason
		if n := testing.AllocsPerRun(200, func() { s.ScheduleWhy(f, &why) }); n != 0 {
			t.Errorf("%s: ScheduleWhy allocates %.1f times", name, n)
		}
	}
}
