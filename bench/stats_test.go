package bench

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}, {[]float64{2, 2, 9, 1, 2}, 2}} {
		if got := Median(c.in); got != c.want {
			t.Errorf("Median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	if !math.IsNaN(Median(nil)) {
		t.Error("Median(nil) is not NaN")
	}
	in := []float64{3, 1, 2}
	Median(in)
	if in[0] != 3 {
		t.Error("Median sorted its input")
	}
}

func TestSummarize(t *testing.T) {
	s := Summarize([]float64{10, 30, 20}, []float64{10, 30, 20, 99, math.NaN()})
	if s.Median != 20 || s.Min != 10 || s.Max != 30 || s.N != 3 || s.Runs != 4 || s.Dirty {
		t.Errorf("clean summary %+v", s)
	}
	s = Summarize(nil, []float64{5, 7})
	if !s.Dirty || s.N != 2 || s.Median != 6 {
		t.Errorf("dirty fallback %+v", s)
	}
	// Two clean runs out of five are too few: all five are used.
	s = Summarize([]float64{1, 2}, []float64{1, 2, 30, 40, 50})
	if !s.Dirty || s.N != 5 || s.Median != 30 {
		t.Errorf("too few clean runs %+v", s)
	}
	// Fewer runs than MinClean, all clean: clean.
	s = Summarize([]float64{1, 2}, []float64{1, 2})
	if s.Dirty || s.N != 2 {
		t.Errorf("all clean %+v", s)
	}
	s = Summarize(nil, nil)
	if s.Valid() || !math.IsNaN(s.Median) {
		t.Errorf("empty summary %+v", s)
	}
}

func TestSummaryJSON(t *testing.T) {
	in := []Summary{Summarize([]float64{1.5, 2.5}, []float64{1.5, 2.5}), Summarize(nil, nil)}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"median":null`) {
		t.Errorf("missing values not written as null: %s", b)
	}
	var out []Summary
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out[0] != in[0] || out[1].Valid() || !math.IsNaN(out[1].Median) {
		t.Errorf("round trip: %+v -> %s -> %+v", in, b, out)
	}
}

func TestRatio(t *testing.T) {
	if Ratio(3, 2) != 1.5 || !math.IsNaN(Ratio(1, 0)) || !math.IsNaN(Ratio(math.NaN(), 1)) {
		t.Error("Ratio")
	}
}

func TestPacer(t *testing.T) {
	unlimited := Pacer{Batch: 64}
	if n, w := unlimited.Next(1e9, time.Millisecond); n != 64 || w != 0 {
		t.Fatalf("unlimited: %d, %v", n, w)
	}
	p := Pacer{Rate: 100_000, Batch: 50}
	// At the start nothing is due yet: wait for a whole batch (500 µs).
	if n, w := p.Next(0, 0); n != 0 || w != 500*time.Microsecond {
		t.Fatalf("start: %d, %v", n, w)
	}
	// 1 ms in, 100 frames are due: a batch now.
	if n, w := p.Next(0, time.Millisecond); n != 50 || w != 0 {
		t.Fatalf("due: %d, %v", n, w)
	}
	// Behind by far (descheduled): catch up in full batches only.
	if n, _ := p.Next(0, time.Second); n != 50 {
		t.Fatalf("catch-up batch %d", n)
	}
	// Simulate a sender that sleeps as told: the average rate holds.
	var sent uint64
	el := time.Duration(0)
	for el < time.Second {
		n, w := p.Next(sent, el)
		if n > 0 {
			sent += uint64(n)
			el += 20 * time.Microsecond // the send takes a little time
			continue
		}
		el += w + 30*time.Microsecond // and the sleep overshoots a little
	}
	if sent < 99_000 || sent > 100_050 {
		t.Fatalf("sent %d in 1s at 100k pps", sent)
	}
}
