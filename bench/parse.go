package bench

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// WrkResult is what the harness reads from wrk's report (run with --latency).
type WrkResult struct {
	RequestsPerSec float64
	Requests       int64
	P50, P99       time.Duration
	SocketErrors   int64 // connect + read + write + timeout
	Non2xx         int64
}

// ParseWrk parses wrk's text report. Requests/sec and the latency
// distribution must be present.
func ParseWrk(out string) (WrkResult, error) {
	var r WrkResult
	var haveRate, have50, have99 bool
	for line := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "Requests/sec:":
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return r, fmt.Errorf("wrk: Requests/sec %q: %w", f[1], err)
			}
			r.RequestsPerSec, haveRate = v, true
		case len(f) == 2 && (f[0] == "50%" || f[0] == "99%"):
			d, err := parseWrkTime(f[1])
			if err != nil {
				return r, err
			}
			if f[0] == "50%" {
				r.P50, have50 = d, true
			} else {
				r.P99, have99 = d, true
			}
		case len(f) >= 3 && f[1] == "requests" && f[2] == "in":
			v, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return r, fmt.Errorf("wrk: request count %q: %w", f[0], err)
			}
			r.Requests = v
		case len(f) >= 2 && f[0] == "Socket" && f[1] == "errors:":
			// Socket errors: connect 0, read 0, write 0, timeout 0
			for i := 2; i+1 < len(f); i += 2 {
				v, err := strconv.ParseInt(strings.TrimSuffix(f[i+1], ","), 10, 64)
				if err != nil {
					return r, fmt.Errorf("wrk: socket errors %q: %w", line, err)
				}
				r.SocketErrors += v
			}
		case strings.HasPrefix(strings.TrimSpace(line), "Non-2xx or 3xx responses:"):
			v, err := strconv.ParseInt(f[len(f)-1], 10, 64)
			if err != nil {
				return r, fmt.Errorf("wrk: %q: %w", line, err)
			}
			r.Non2xx = v
		}
	}
	if !haveRate || !have50 || !have99 {
		return r, fmt.Errorf("wrk: no Requests/sec or latency distribution in output %q", trunc([]byte(out)))
	}
	return r, nil
}

// parseWrkTime parses wrk's durations: 812.00us, 3.41ms, 1.02s, 1.50m, 2.00h.
func parseWrkTime(s string) (time.Duration, error) {
	units := []struct {
		suffix string
		mult   float64
	}{{"us", 1e3}, {"ms", 1e6}, {"s", 1e9}, {"m", 60e9}, {"h", 3600e9}}
	for _, u := range units {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				continue // "ms" also ends in "s"; try the next unit
			}
			return time.Duration(f * u.mult), nil
		}
	}
	return 0, fmt.Errorf("wrk: bad duration %q", s)
}

// IperfResult is the summary of an iperf3 -J run.
type IperfResult struct {
	BitsPerSec  float64
	Retransmits int64
}

// ParseIperf3 reads iperf3's JSON report. A report with an "error" member
// is returned as an error carrying iperf3's message.
func ParseIperf3(b []byte) (IperfResult, error) {
	var j struct {
		Error string `json:"error"`
		End   struct {
			SumSent struct {
				Retransmits int64 `json:"retransmits"`
			} `json:"sum_sent"`
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(b, &j); err != nil {
		return IperfResult{}, fmt.Errorf("iperf3: JSON report: %w", err)
	}
	if j.Error != "" {
		return IperfResult{}, fmt.Errorf("iperf3: %s", j.Error)
	}
	if j.End.SumReceived.BitsPerSecond <= 0 {
		return IperfResult{}, fmt.Errorf("iperf3: no data received")
	}
	return IperfResult{BitsPerSec: j.End.SumReceived.BitsPerSecond, Retransmits: j.End.SumSent.Retransmits}, nil
}

// ParseListConns sums ActiveConn and InActConn over every real server in an
// `ipvsadm -L -n` (uvsadm -Ln) listing.
func ParseListConns(out string) (active, inactive int64, err error) {
	seen := false
	for line := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 6 || f[0] != "->" || f[1] == "RemoteAddress:Port" {
			continue
		}
		a, err1 := strconv.ParseInt(f[4], 10, 64)
		i, err2 := strconv.ParseInt(f[5], 10, 64)
		if err1 != nil || err2 != nil {
			return 0, 0, fmt.Errorf("listing: bad real-server line %q", line)
		}
		active += a
		inactive += i
		seen = true
	}
	if !seen {
		return 0, 0, fmt.Errorf("listing: no real server in %q", trunc([]byte(out)))
	}
	return active, inactive, nil
}

// MicroResult is one line of `go test -bench -benchmem` output.
type MicroResult struct {
	Pkg         string             `json:"pkg"`
	Name        string             `json:"name"`
	Iterations  int64              `json:"iterations"`
	NsPerOp     Num                `json:"ns_per_op"`
	BytesPerOp  Num                `json:"bytes_per_op"`
	AllocsPerOp Num                `json:"allocs_per_op"`
	Extra       map[string]float64 `json:"extra,omitempty"`
}

// ParseGoBench parses `go test -bench . -benchmem` output ("pkg:" lines
// name the package of the benchmark lines after them). Lines that are not
// benchmark results are ignored; values not reported read as NaN.
func ParseGoBench(out string) []MicroResult {
	var res []MicroResult
	pkg := ""
	for line := range strings.SplitSeq(out, "\n") {
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		m := MicroResult{Pkg: pkg, Name: f[0], Iterations: n, NsPerOp: Num(nan()), BytesPerOp: Num(nan()), AllocsPerOp: Num(nan())}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			switch f[i+1] {
			case "ns/op":
				m.NsPerOp = Num(v)
			case "B/op":
				m.BytesPerOp = Num(v)
			case "allocs/op":
				m.AllocsPerOp = Num(v)
			default:
				if m.Extra == nil {
					m.Extra = map[string]float64{}
				}
				m.Extra[f[i+1]] = v
			}
		}
		res = append(res, m)
	}
	return res
}
