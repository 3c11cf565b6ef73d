package sched

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/fuzzwatch"
	"github.com/uvs-lb/uvs/spec"
)

// FuzzServiceOps drives a service through a random sequence of dest
// add/delete/edit, threshold and counter changes, service edits, clock
// advances with Tick, plain and persistent decisions, for every scheduler.
// It must never panic and every decision must respect the contract.
func FuzzServiceOps(f *testing.F) {
	f.Add(uint8(1), []byte{0, 1, 5, 0, 2, 3, 9, 9, 9, 1, 2, 0, 3, 1, 4})
	f.Add(uint8(7), []byte{0, 0, 1, 0, 1, 2, 0, 2, 3, 8, 8, 8, 2, 1, 0, 9, 9})
	f.Add(uint8(13), []byte{0, 5, 0, 6, 0, 7, 5, 5, 5, 4, 0, 9, 9, 7, 7})
	f.Add(uint8(5), []byte{0, 1, 1, 6, 1, 200, 9, 9, 1, 1, 9, 9})
	f.Fuzz(func(t *testing.T, sel uint8, ops []byte) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("sel %d, %d ops %.200q", sel, len(ops), ops) })()
		names := allNames()
		name := names[int(sel)%len(names)]
		clk := newClock()
		var r uint32
		rng := func(n uint32) uint32 { r = r*1664525 + 1013904223; return r % n }
		cfg := tcpService("10.0.0.100", 80, name)
		cfg.Persistent = sel&0x80 != 0
		cfg.Flags = spec.SchedFlags(sel>>4&3) << 3 // sh/mh fallback and port
		s, err := NewService(cfg, Options{Now: clk.Now, Rand: rng, MHTableSize: 251})
		if err != nil {
			t.Fatal(err)
		}
		tt := NewMapTemplates()
		next := func() byte {
			if len(ops) == 0 {
				return 0
			}
			b := ops[0]
			ops = ops[1:]
			return b
		}
		ap := func(b byte) netip.AddrPort {
			return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, b%8 + 1}), 80)
		}
		for steps := 0; len(ops) > 0 && steps < 500; steps++ {
			switch op := next(); op % 10 {
			case 0: // add
				a, w := ap(next()), uint32(next()%5)
				_, _ = s.AddDest(spec.Dest{Addr: a.Addr(), Port: a.Port(), Weight: w})
			case 1: // delete
				_ = s.DelDest(ap(next()))
			case 2: // edit with thresholds
				a, w, u := ap(next()), uint32(next()%5), uint32(next()%4)
				_ = s.EditDest(spec.Dest{Addr: a.Addr(), Port: a.Port(), Weight: w, UThreshold: u, LThreshold: u / 2})
			case 3: // bind a connection
				if d := s.Dest(ap(next())); d != nil {
					d.BindConn(false)
					d.SetActive(true)
				}
			case 4: // unbind
				if d := s.Dest(ap(next())); d != nil && d.ActiveConns() > 0 {
					d.UnbindConn(false, true)
				}
			case 5: // service edit (maybe another scheduler)
				c := s.Config()
				c.Scheduler = names[int(next())%len(names)]
				if err := s.Update(c); err != nil {
					t.Fatal(err)
				}
			case 6: // time passes
				clk.Advance(time.Duration(next()) * 30 * time.Second)
				s.Tick(clk.Now())
				tt.Expire(clk.Now())
			case 7: // persistent decision
				fl := tcpFlow(netip.AddrFrom4([4]byte{192, 0, 2, next()}).String(), 1)
				dec := s.SchedulePersistent(fl, tt, clk.Now(), nil)
				if dec.Dest != nil && dec.Port == 0 {
					t.Fatal("decision without a port")
				}
			default: // schedule with and without explanation
				fl := tcpFlow(netip.AddrFrom4([4]byte{192, 0, 2, next()}).String(), uint16(op))
				fl.Dst = netip.AddrFrom4([4]byte{10, 0, 0, 100 + next()%4})
				d := s.Schedule(fl)
				var why Reason
				d2 := s.ScheduleWhy(fl, &why)
				_ = why.String()
				for _, x := range []*Dest{d, d2} {
					if x == nil {
						continue
					}
					n := s.Scheduler().String()
					if x.Weight() <= 0 {
						t.Fatalf("%s returned weight-0 dest", n)
					}
					if x.Overloaded() && n != "lblc" && n != "lblcr" {
						t.Fatalf("%s returned OVERLOAD dest", n)
					}
					if !x.Available() {
						t.Fatalf("%s returned an unlinked dest", n)
					}
				}
			}
		}
		// Counters never go negative.
		for _, d := range s.Dests() {
			if d.ActiveConns() < 0 || d.InactConns() < 0 || d.PersistConns() < 0 {
				t.Fatal("negative counter")
			}
		}
	})
}
