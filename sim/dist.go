package sim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"
)

// Dist is a connection hold-time distribution.
type Dist struct {
	kind distKind
	a, b time.Duration
}

type distKind uint8

const (
	distConst distKind = iota
	distExp
	distUniform
)

// ParseDist parses a hold-time distribution:
//
//	const:500ms       always 500 ms (a bare duration such as "500ms" means the same)
//	exp:2s            exponential with mean 2 s
//	uniform:1s-5s     uniform between 1 s and 5 s
//
// Durations use Go syntax (300ms, 2s, 1m30s); they must not be negative,
// and an exponential mean must be positive.
func ParseDist(s string) (Dist, error) {
	kind, arg, ok := strings.Cut(s, ":")
	if !ok {
		kind, arg = "const", s
	}
	switch kind {
	case "const":
		d, err := parseNonNeg(arg)
		if err != nil {
			return Dist{}, err
		}
		return Dist{kind: distConst, a: d}, nil
	case "exp":
		d, err := parseNonNeg(arg)
		if err != nil {
			return Dist{}, err
		}
		if d == 0 {
			return Dist{}, errors.New("exponential mean must be positive")
		}
		return Dist{kind: distExp, a: d}, nil
	case "uniform":
		lo, hi, ok := strings.Cut(arg, "-")
		if !ok {
			return Dist{}, fmt.Errorf("uniform wants MIN-MAX, got %q", arg)
		}
		a, err := parseNonNeg(lo)
		if err != nil {
			return Dist{}, err
		}
		b, err := parseNonNeg(hi)
		if err != nil {
			return Dist{}, err
		}
		if b < a {
			return Dist{}, fmt.Errorf("uniform range %s-%s is reversed", lo, hi)
		}
		return Dist{kind: distUniform, a: a, b: b}, nil
	}
	return Dist{}, fmt.Errorf("unknown distribution %q (want const, exp or uniform)", kind)
}

func parseNonNeg(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("negative duration %q", s)
	}
	return d, nil
}

// String returns the distribution in ParseDist syntax.
func (d Dist) String() string {
	switch d.kind {
	case distExp:
		return "exp:" + d.a.String()
	case distUniform:
		return "uniform:" + d.a.String() + "-" + d.b.String()
	}
	return "const:" + d.a.String()
}

// Mean returns the distribution's mean.
func (d Dist) Mean() time.Duration {
	switch d.kind {
	case distUniform:
		return d.a + (d.b-d.a)/2
	}
	return d.a
}

// Sample draws one hold time.
func (d Dist) Sample(r *rand.Rand) time.Duration {
	switch d.kind {
	case distExp:
		return durationOf(r.ExpFloat64() * float64(d.a))
	case distUniform:
		if d.b == d.a {
			return d.a
		}
		return d.a + time.Duration(r.Int64N(int64(d.b-d.a)+1))
	}
	return d.a
}

// durationOf rounds a float nanosecond count, saturating instead of
// overflowing.
func durationOf(ns float64) time.Duration {
	if ns >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(math.Round(ns))
}
