package sched

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/spec"
)

// allNames is every registered scheduler, "none" included.
func allNames() []string { return append(Names(), "none") }

func TestNamesOrder(t *testing.T) {
	want := "rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos"
	got := ""
	for i, n := range Names() {
		if i > 0 {
			got += " "
		}
		got += n
		if id, ok := LookupScheduler(n); !ok || id.String() != n {
			t.Errorf("LookupScheduler(%q) = %v %v", n, id, ok)
		}
	}
	if got != want {
		t.Errorf("Names() = %s, want %s", got, want)
	}
	if _, err := NewService(tcpService("10.0.0.1", 80, "bogus"), Options{}); !errors.Is(err, ErrNoScheduler) {
		t.Errorf("unknown scheduler: %v", err)
	}
}

func TestContractEmptyAndQuiesced(t *testing.T) {
	for _, name := range allNames() {
		t.Run(name, func(t *testing.T) {
			s := newSvc(t, name, Options{Now: newClock().Now})
			f := tcpFlow("1.2.3.4", 1000)
			if d := s.Schedule(f); d != nil {
				t.Fatal("empty service returned a destination")
			}
			var why Reason
			if d := s.ScheduleWhy(f, &why); d != nil || why.Found || why.String() == "" {
				t.Fatal("empty service explanation inconsistent")
			}
			for i := range 5 {
				addDest(t, s, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 80).String(), 0)
			}
			for i := range 50 {
				f := tcpFlow(netip.AddrFrom4([4]byte{1, 2, 3, byte(i)}).String(), uint16(i))
				if d := s.Schedule(f); d != nil {
					t.Fatalf("all-quiesced service returned %s", d.AddrPort())
				}
			}
		})
	}
}

func TestContractAllOverloaded(t *testing.T) {
	for _, name := range allNames() {
		t.Run(name, func(t *testing.T) {
			s := newSvc(t, name, Options{Now: newClock().Now})
			for i := range 4 {
				d := addDest(t, s, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 80).String(), uint32(i+1))
				d.setFlag(FlagOverload)
			}
			for i := range 50 {
				f := tcpFlow(netip.AddrFrom4([4]byte{1, 2, 3, byte(i)}).String(), uint16(i))
				if d := s.Schedule(f); d != nil {
					t.Fatalf("all-OVERLOAD service returned %s", d.AddrPort())
				}
			}
		})
	}
}

// checkPick asserts the invariant every scheduler keeps on a fresh
// decision: the destination is linked, has weight > 0 and is not OVERLOAD
// — except the lblc/lblcr cached path, which ignores OVERLOAD (the kernel
// rule), so for those only weight and membership are checked.
func checkPick(t testing.TB, name string, s *Service, d *Dest) {
	t.Helper()
	if d == nil {
		return
	}
	if d.Weight() <= 0 {
		t.Fatalf("%s returned weight-%d dest %s", name, d.Weight(), d.AddrPort())
	}
	if d.Overloaded() && name != "lblc" && name != "lblcr" {
		t.Fatalf("%s returned OVERLOAD dest %s", name, d.AddrPort())
	}
	if indexOf(s.Dests(), d.AddrPort()) < 0 {
		t.Fatalf("%s returned unlinked dest %s", name, d.AddrPort())
	}
}

func TestContractMixedEligibility(t *testing.T) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			s := newSvc(t, name, Options{Now: newClock().Now, Rand: rand.New(rand.NewPCG(1, 2)).Uint32N})
			var good int
			for i := range 12 {
				w := uint32(i % 4) // 0,1,2,3
				d := addDest(t, s, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 80).String(), w)
				if i%3 == 0 {
					d.setFlag(FlagOverload)
				} else if w > 0 {
					good++
				}
			}
			// Every edit reaches the table schedulers via the hooks.
			_ = s.EditDest(dcfg("10.0.0.2:80", 5))
			got := 0
			for i := range 400 {
				f := tcpFlow(netip.AddrFrom4([4]byte{1, 2, byte(i >> 8), byte(i)}).String(), uint16(i))
				f.Dst = netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i)})
				d := s.Schedule(f)
				checkPick(t, name, s, d)
				if d != nil {
					got++
				}
			}
			// Non-hashing schedulers always find one of the eligible dests.
			switch name {
			case "sh", "dh", "mh":
			default:
				if got != 400 {
					t.Fatalf("%d of 400 decisions found no destination although %d are eligible", 400-got, good)
				}
			}
		})
	}
}

func TestContractConcurrentEdits(t *testing.T) {
	for _, name := range allNames() {
		t.Run(name, func(t *testing.T) {
			s := newSvc(t, name, Options{})
			for i := range 8 {
				addDest(t, s, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 80).String(), uint32(i%3+1))
			}
			var wg sync.WaitGroup
			stop := make(chan struct{})
			for w := range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					f := tcpFlow("1.1.1.1", 1)
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						f.Src = netip.AddrFrom4([4]byte{1, byte(w), byte(i >> 8), byte(i)})
						f.SrcPort = uint16(i)
						if d := s.Schedule(f); d != nil && d.Weight() < 0 {
							panic("negative weight")
						}
						if i%64 == 0 {
							var why Reason
							if d := s.ScheduleWhy(f, &why); (d != nil) != why.Found || why.String() == "" {
								panic("reason disagrees with the decision")
							}
						}
					}
				}()
			}
			r := rand.New(rand.NewPCG(3, 4))
			deadline := time.Now().Add(150 * time.Millisecond)
			for i := 0; i < 2000 && time.Now().Before(deadline); i++ {
				ap := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(r.IntN(12) + 1)}), 80)
				switch r.IntN(3) {
				case 0:
					_, _ = s.AddDest(dcfg(ap.String(), uint32(r.IntN(4))))
				case 1:
					_ = s.DelDest(ap)
				case 2:
					_ = s.EditDest(dcfg(ap.String(), uint32(r.IntN(4))))
				}
				s.Tick(time.Now())
			}
			close(stop)
			wg.Wait()
			// After the churn the service still obeys the contract.
			for i := range 100 {
				checkPick(t, name, s, s.Schedule(tcpFlow(netip.AddrFrom4([4]byte{2, 2, 2, byte(i)}).String(), 1)))
			}
		})
	}
}

func TestDestErrors(t *testing.T) {
	s := newSvc(t, "wlc", Options{})
	addDest(t, s, "10.0.0.1:80", 1)
	if _, err := s.AddDest(dcfg("10.0.0.1:80", 3)); !errors.Is(err, ErrDestExists) {
		t.Errorf("duplicate add: %v", err)
	}
	if err := s.EditDest(dcfg("10.0.0.9:80", 3)); !errors.Is(err, ErrNoDest) {
		t.Errorf("edit missing: %v", err)
	}
	if err := s.DelDest(netip.MustParseAddrPort("10.0.0.9:80")); !errors.Is(err, ErrNoDest) {
		t.Errorf("delete missing: %v", err)
	}
	bad := dcfg("10.0.0.2:80", 1)
	bad.LThreshold = 5
	if _, err := s.AddDest(bad); !errors.Is(err, ErrRange) {
		t.Errorf("l-threshold without u: %v", err)
	}
	cfg := s.Config()
	cfg.Key.Port = 81
	if err := s.Update(cfg); !errors.Is(err, ErrInvalid) {
		t.Errorf("key change: %v", err)
	}
	cfg = s.Config()
	cfg.Scheduler = "nope"
	if err := s.Update(cfg); !errors.Is(err, ErrNoScheduler) {
		t.Errorf("bad scheduler: %v", err)
	}
}

func TestListOrderAndResurrect(t *testing.T) {
	s := newSvc(t, "wlc", Options{})
	a := addDest(t, s, "10.0.0.1:80", 1)
	b := addDest(t, s, "10.0.0.2:80", 1)
	if ds := s.Dests(); ds[0] != b || ds[1] != a {
		t.Fatal("list is not most recently added first")
	}
	setConns(a, 2, 1)
	if err := s.DelDest(a.AddrPort()); err != nil {
		t.Fatal(err)
	}
	if a.Available() {
		t.Fatal("deleted dest still AVAILABLE")
	}
	a2 := addDest(t, s, "10.0.0.1:80", 7)
	if a2 != a || a.ActiveConns() != 2 || a.Weight() != 7 || !a.Available() || s.Dests()[0] != a {
		t.Fatal("re-added dest with connections was not resurrected at the head")
	}
	_ = s.DelDest(a.AddrPort())
	setConns(a, 0, 0)
	s.Tick(time.Now())
	if a3 := addDest(t, s, "10.0.0.1:80", 1); a3 == a {
		t.Fatal("dest without connections resurrected after Tick released it")
	}
}

func TestUpdateKeepsOrResetsState(t *testing.T) {
	s := newSvc(t, "rr", Options{})
	n := map[*Dest]string{}
	n[addDest(t, s, "10.0.0.1:80", 1)] = "A"
	n[addDest(t, s, "10.0.0.2:80", 1)] = "B"
	n[addDest(t, s, "10.0.0.3:80", 1)] = "C"
	f := tcpFlow("1.1.1.1", 1)
	if seq(s, f, 1, n) != "C" {
		t.Fatal()
	}
	cfg := s.Config()
	cfg.Flags = spec.SchedFlag3
	_ = s.Update(cfg) // same scheduler: cursor kept
	if got := seq(s, f, 1, n); got != "B" {
		t.Fatalf("edit with the same scheduler reset rr: %s", got)
	}
	cfg.Scheduler = "wlc"
	_ = s.Update(cfg)
	cfg.Scheduler = "rr"
	_ = s.Update(cfg) // rebound: cursor reset
	if got := seq(s, f, 1, n); got != "C" {
		t.Fatalf("rebinding rr kept the cursor: %s", got)
	}
	if s.Config().Flags != spec.SchedFlag3 {
		t.Fatal("flags not replaced")
	}
}
