package healthcheck

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/fuzzwatch"
	"github.com/uvs-lb/uvs/internal/wait"
)

func TestParseTrackFileValue(t *testing.T) {
	tests := []struct {
		in string
		v  int64
		ok bool
	}{
		{"0", 0, true},
		{"5\n", 5, true},
		{"  \t-12 trailing", -12, true},
		{"+7", 7, true},
		{"0x1f", 31, true},
		{"0X1F", 31, true},
		{"010", 8, true},
		{"09", 0, true}, // octal stops at 9
		{"0x", 0, true},
		{"0xg", 0, true},
		{"", 0, true},
		{"abc", 0, true},
		{"-", 0, true},
		{"2147483648", 1 << 31, true},
		{"-2147483648", -1 << 31, true},
		{"2147483649", 0, false},
		{"-2147483649", 0, false},
		{"99999999999999999999999", 0, false},
	}
	for _, tt := range tests {
		v, ok := ParseTrackFileValue([]byte(tt.in))
		if v != tt.v || ok != tt.ok {
			t.Errorf("ParseTrackFileValue(%q) = %d, %v; want %d, %v", tt.in, v, ok, tt.v, tt.ok)
		}
	}
}

func TestFileCheckResult(t *testing.T) {
	tests := []struct {
		v         int64
		weight    int32
		reverse   bool
		ok        bool
		hasWeight bool
		w         int
	}{
		{0, 0, false, true, false, 0},
		{1, 0, false, false, false, 0},
		{-3, 0, false, false, false, 0},
		{0, 0, true, false, false, 0},
		{4, 0, true, true, false, 0},
		{0, 10, false, true, true, 0},
		{3, 10, false, true, true, 30},
		{3, 10, true, true, true, -30},
		{-3, 10, false, true, true, -30},
		{1 << 31, 1, false, true, true, math.MaxInt32},
		{-1 << 31, 1, false, false, false, 0},
		{1 << 31, 1, true, false, false, 0},
		{1 << 20, -(1 << 20), false, false, false, 0},
		{-2147483647, 1, false, true, true, -2147483647},
	}
	for _, tt := range tests {
		r := FileCheckResult(tt.v, tt.weight, tt.reverse)
		if r.OK != tt.ok || r.HasWeight != tt.hasWeight || r.Weight != tt.w {
			t.Errorf("FileCheckResult(%d, %d, %v) = %+v; want ok=%v hasWeight=%v weight=%d", tt.v, tt.weight, tt.reverse, r, tt.ok, tt.hasWeight, tt.w)
		}
	}
}

func TestFileCheckProbe(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state")
	f := &FileCheck{Path: p, Weight: 2}
	probe := func() Result { return f.Probe(context.Background(), Target{}) }
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if r := probe(); !r.OK || !r.HasWeight || r.Weight != 0 {
		t.Errorf("missing file: %+v, want up with weight 0", r)
	}
	write("7\n")
	if r := probe(); !r.OK || r.Weight != 14 {
		t.Errorf("7: %+v, want weight 14", r)
	}
	write("99999999999") // out of range: ignored, 7 stays
	if r := probe(); !r.OK || r.Weight != 14 || !strings.Contains(r.Msg, "ignored") {
		t.Errorf("invalid: %+v, want the previous weight 14", r)
	}
	write("-2147483648")
	if r := probe(); r.OK {
		t.Errorf("−2^31 × 2: %+v, want down", r)
	}
	write("")
	if r := probe(); !r.OK || r.Weight != 0 {
		t.Errorf("empty: %+v, want weight 0", r)
	}

	z := &FileCheck{Path: p}
	write("0")
	if r := z.Probe(context.Background(), Target{}); !r.OK || r.HasWeight {
		t.Errorf("weight 0, value 0: %+v, want up without weight", r)
	}
	write("1")
	if r := z.Probe(context.Background(), Target{}); r.OK {
		t.Errorf("weight 0, value 1: %+v, want down", r)
	}
}

func TestWatchFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state")
	var calls atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		WatchFile(ctx, p, 5*time.Millisecond, func() { calls.Add(1) })
	}()
	t.Cleanup(func() { cancel(); <-done })
	wait.For(t, 10*time.Second, func() bool { return calls.Load() >= 1 }, "the initial call")
	for i := 1; i <= 3; i++ {
		// Each write changes the size, so no mtime granularity matters.
		if err := os.WriteFile(p, []byte(strconv.Itoa(int(math.Pow10(i)))), 0o644); err != nil {
			t.Fatal(err)
		}
		want := int32(i + 1)
		wait.For(t, 10*time.Second, func() bool { return calls.Load() >= want }, "call %d after write %d, got %v", want, i, wait.Lazy(func() any { return calls.Load() }))
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, func() bool { return calls.Load() >= 5 }, "a call after removal")
}

func FuzzParseTrackFileValue(f *testing.F) {
	for _, s := range []string{"0", " -12x", "0x1F", "010", "2147483648", "-2147483649", "", "+", "0x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("%d bytes %.200q", len(s), s) })()
		v, ok := ParseTrackFileValue([]byte(s))
		if !ok {
			return
		}
		if v < math.MinInt32 || v > math.MaxInt32+1 {
			t.Fatalf("%q: %d out of range but ok", s, v)
		}
		// Plain decimal numbers agree with strconv.
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && (len(s) < 2 || s[0] != '0' && !strings.HasPrefix(s, "-0") && !strings.HasPrefix(s, "+0")) && n != v {
			t.Fatalf("%q: %d, strconv says %d", s, v, n)
		}
	})
}
