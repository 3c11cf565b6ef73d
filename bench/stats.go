package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// Summary is a figure over several runs: the median with min and max of the
// runs used, how many were used and how many were made in all.
type Summary struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	// N is the number of runs the median is taken over.
	N int `json:"n"`
	// Runs is the number of runs made, including dirty ones.
	Runs int `json:"runs"`
	// Dirty is set when no clean run was available and the summary is
	// taken over dirty runs (foreign load or steal above the gate).
	Dirty bool `json:"dirty,omitempty"`
}

// Valid reports whether the summary holds at least one run.
func (s Summary) Valid() bool { return s.N > 0 }

// Median returns the median of xs (the mean of the two middle values for an
// even count) and NaN for none. xs is not modified.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// MinClean is how many clean runs a summary needs to leave the dirty ones
// out: a median of one or two lucky runs among noisy ones says less than
// the median of all.
const MinClean = 3

// Summarize summarises the clean runs when there are at least MinClean of
// them (or every run is clean), otherwise all runs, marked Dirty. NaN
// values (failed runs) are left out of both.
func Summarize(clean, all []float64) Summary {
	clean, all = finite(clean), finite(all)
	use, dirty := clean, false
	if len(use) < min(MinClean, len(all)) {
		use, dirty = all, true
	}
	s := Summary{N: len(use), Runs: len(all), Dirty: dirty}
	if len(use) == 0 {
		s.Median, s.Min, s.Max = math.NaN(), math.NaN(), math.NaN()
		return s
	}
	s.Median = Median(use)
	s.Min, s.Max = slices.Min(use), slices.Max(use)
	return s
}

func finite(xs []float64) []float64 {
	out := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			out = append(out, x)
		}
	}
	return out
}

// Ratio returns a/b, or NaN when either is missing or b is zero.
func Ratio(a, b float64) float64 {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return math.NaN()
	}
	return a / b
}

// Num is a float64 that is written to JSON as null when it is NaN or
// infinite (encoding/json refuses those), and read back as NaN from null.
type Num float64

// MarshalJSON implements json.Marshaler.
func (n Num) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', 6, 64), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (n *Num) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Num(math.NaN())
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("number %q: %w", b, err)
	}
	*n = Num(f)
	return nil
}

type summaryJSON struct {
	Median Num  `json:"median"`
	Min    Num  `json:"min"`
	Max    Num  `json:"max"`
	N      int  `json:"n"`
	Runs   int  `json:"runs"`
	Dirty  bool `json:"dirty,omitempty"`
}

// MarshalJSON writes missing values as null.
func (s Summary) MarshalJSON() ([]byte, error) {
	return json.Marshal(summaryJSON{Num(s.Median), Num(s.Min), Num(s.Max), s.N, s.Runs, s.Dirty})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *Summary) UnmarshalJSON(b []byte) error {
	var j summaryJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*s = Summary{float64(j.Median), float64(j.Min), float64(j.Max), j.N, j.Runs, j.Dirty}
	return nil
}

func nan() float64 { return math.NaN() }
