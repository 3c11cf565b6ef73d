package lportfile

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/internal/fuzzwatch"
)

// testState returns a state over [min, max] with distinct positions (as
// director's testLportState).
func testState(min, max uint16, saved time.Time, clean bool) State {
	s := State{Pos: dataplane.PortPositions{Min: min, Max: max}, Saved: saved.Truncate(time.Second), Clean: clean}
	span := uint32(max-min) + 1
	for i := range s.Pos.Next {
		s.Pos.Next[i] = uint32(i*977+13) % span
		s.Ahead[i] = uint32(i*3) % span
	}
	return s
}

// FuzzLportState: the state file parser never panics, returns nothing
// out of range, and what it accepts marshals back to what parses the
// same.
func FuzzLportState(f *testing.F) {
	good := testState(1024, 32767, time.Unix(1765100000, 0), false)
	f.Add(good.Marshal())
	f.Add(testState(65535, 65535, time.Unix(0, 0), true).Marshal())
	f.Add([]byte(Magic + "\nrange 1 0\n"))
	f.Add([]byte(strings.Repeat("\n", 6)))
	f.Add(bytes.Replace(good.Marshal(), []byte(" 13 "), []byte(" +13 "), 1))
	f.Fuzz(func(t *testing.T, b []byte) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("%d bytes %.300q", len(b), b) })()
		s, err := Parse(b)
		if err != nil {
			if s != (State{}) {
				t.Fatalf("error %v with a partial state", err)
			}
			return
		}
		span := uint32(s.Pos.Max-s.Pos.Min) + 1
		if s.Pos.Min == 0 || s.Pos.Max < s.Pos.Min {
			t.Fatalf("range %d-%d accepted", s.Pos.Min, s.Pos.Max)
		}
		for i := range s.Pos.Next {
			if s.Pos.Next[i] >= span || s.Ahead[i] >= span {
				t.Fatalf("slot %d: next %d ahead %d beyond range %d-%d", i, s.Pos.Next[i], s.Ahead[i], s.Pos.Min, s.Pos.Max)
			}
		}
		if err := dataplane.NewPortAllocator(s.Pos.Min, s.Pos.Max).SetPositions(s.Pos); err != nil {
			t.Fatalf("accepted positions refused by the allocator: %v", err)
		}
		s2, err := Parse(s.Marshal())
		if err != nil || s2 != s {
			t.Fatalf("re-marshalled state parses differently: %v", err)
		}
	})
}
