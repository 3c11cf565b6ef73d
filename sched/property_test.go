package sched

import (
	"math"
	"net/netip"
	"testing"
)

func clientFlow(i int) *Flow {
	f := tcpFlow("1.1.1.1", 1)
	f.Src = netip.AddrFrom4([4]byte{byte(100 + i>>24), byte(i >> 16), byte(i >> 8), byte(i)})
	f.SrcPort = uint16(i*7919 + 1)
	return f
}

// TestHashingDeterministic: equal keys map to equal destinations, also
// across two services built the same way (tables are deterministic).
func TestHashingDeterministic(t *testing.T) {
	for _, name := range []string{"sh", "dh", "mh"} {
		s1, s2 := newSvc(t, name, Options{}), newSvc(t, name, Options{})
		for i := range 7 {
			ap := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 80).String()
			addDest(t, s1, ap, uint32(i+1))
			addDest(t, s2, ap, uint32(i+1))
		}
		for i := range 3000 {
			f := clientFlow(i)
			f.Dst = f.Src // dh hashes the destination
			a, b, c := s1.Schedule(f), s1.Schedule(f), s2.Schedule(f)
			if a != b || a == nil || a.AddrPort() != c.AddrPort() {
				t.Fatalf("%s: key %d mapped inconsistently", name, i)
			}
		}
	}
}

// TestHashingSpreadProportional: sh and mh spread keys in proportion to
// weight (dh evenly, weights ignored), within 15 % of the expected share
// for 60000 keys.
func TestHashingSpreadProportional(t *testing.T) {
	weights := []uint32{1, 2, 3, 4}
	const keys = 60000
	for _, name := range []string{"sh", "dh", "mh"} {
		s := newSvc(t, name, Options{})
		var dests []*Dest
		for i, w := range weights {
			dests = append(dests, addDest(t, s, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 80).String(), w))
		}
		count := map[*Dest]int{}
		for i := range keys {
			f := clientFlow(i)
			f.Dst = f.Src
			count[s.Schedule(f)]++
		}
		for i, d := range dests {
			want := float64(keys) * float64(weights[i]) / 10
			if name == "dh" {
				want = keys / 4.0
			}
			if got := float64(count[d]); math.Abs(got-want) > 0.15*want {
				t.Errorf("%s: weight %d got %.0f keys, want %.0f ±15%%", name, weights[i], got, want)
			}
		}
	}
}

// TestMHMinimalDisruption: removing one of N destinations moves about 1/N of
// the keys (those it owned) plus a small Maglev disruption; keys of
// surviving destinations mostly stay.
func TestMHMinimalDisruption(t *testing.T) {
	const n, keys = 10, 40000
	s := newSvc(t, "mh", Options{})
	var dests []*Dest
	for i := range n {
		dests = append(dests, addDest(t, s, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 1, byte(i + 1)}), 80).String(), 1))
	}
	before := make([]*Dest, keys)
	for i := range keys {
		before[i] = s.Schedule(clientFlow(i))
	}
	victim := dests[3]
	if err := s.DelDest(victim.AddrPort()); err != nil {
		t.Fatal(err)
	}
	moved, movedOther := 0, 0
	for i := range keys {
		after := s.Schedule(clientFlow(i))
		if after != before[i] {
			moved++
			if before[i] != victim {
				movedOther++
			}
		}
	}
	frac := float64(moved) / keys
	if frac < 0.5/n || frac > 1.5/n {
		t.Errorf("removal moved %.3f of keys, want about 1/%d", frac, n)
	}
	if other := float64(movedOther) / keys; other > 0.03 {
		t.Errorf("%.3f of keys of surviving dests moved, want < 3%%", other)
	}
}

// TestSHNotConsistent documents that sh reshuffles on any weight change
// (it is not consistent hashing), unlike mh which keeps quiesced slots.
func TestSHNotConsistent(t *testing.T) {
	s := newSvc(t, "sh", Options{})
	for i := range 4 {
		addDest(t, s, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 80).String(), 1)
	}
	before := map[int]*Dest{}
	for i := range 1000 {
		before[i] = s.Schedule(clientFlow(i))
	}
	_ = s.EditDest(dcfg("10.0.0.1:80", 2))
	moved := 0
	for i := range 1000 {
		if s.Schedule(clientFlow(i)) != before[i] {
			moved++
		}
	}
	if moved < 300 {
		t.Errorf("sh moved only %d of 1000 keys after a weight change; expected a reshuffle", moved)
	}
}
