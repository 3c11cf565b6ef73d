package sim

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/uvs-lb/uvs/spec"
)

// Arrival is one connection of a workload: when it starts, its protocol,
// client and virtual address, and how long it is held.
type Arrival struct {
	At     time.Duration // offset from the start of the simulation
	Proto  spec.Proto
	Client netip.AddrPort
	VIP    netip.AddrPort
	Hold   time.Duration
	Line   int // line in the trace file (0 for generated arrivals)
}

// traceHeader is the header line a trace CSV starts with.
var traceHeader = [...]string{"time", "proto", "client", "vip", "duration"}

// ParseTrace reads a trace CSV: a header line
//
//	time,proto,client,vip,duration
//
// then one connection per line, e.g. "0.25,tcp,172.16.0.1:40000,10.0.0.100:80,2s".
// time and duration are seconds ("0.25") or Go durations ("250ms"); proto is
// tcp, udp or sctp; client and vip are addr:port ([v6]:port for IPv6). Blank
// lines and lines starting with # are skipped. Rows may come in any order;
// they are sorted by time (stably, so equal times keep file order).
func ParseTrace(r io.Reader, name string) ([]Arrival, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	var out []Arrival
	header := false
	line := 0
	var fields [5]string
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		n := splitCSV(text, fields[:])
		if n != len(fields) {
			return nil, inputErr(name, line, "", "want %d comma-separated fields (time,proto,client,vip,duration), got %d", len(fields), n)
		}
		if !header {
			for i, want := range traceHeader {
				if !strings.EqualFold(fields[i], want) {
					return nil, inputErr(name, line, fields[i], "header must be time,proto,client,vip,duration")
				}
			}
			header = true
			continue
		}
		a := Arrival{Line: line}
		var err error
		if a.At, err = parseSeconds(fields[0]); err != nil {
			return nil, &InputError{File: name, Line: line, Token: fields[0], Err: fmt.Errorf("time: %w", err)}
		}
		if a.Proto, err = parseProto(fields[1]); err != nil {
			return nil, &InputError{File: name, Line: line, Token: fields[1], Err: err}
		}
		if a.Client, err = netip.ParseAddrPort(fields[2]); err != nil {
			return nil, inputErr(name, line, fields[2], "client: want addr:port")
		}
		if a.VIP, err = netip.ParseAddrPort(fields[3]); err != nil {
			return nil, inputErr(name, line, fields[3], "vip: want addr:port")
		}
		if a.Hold, err = parseSeconds(fields[4]); err != nil {
			return nil, &InputError{File: name, Line: line, Token: fields[4], Err: fmt.Errorf("duration: %w", err)}
		}
		out = append(out, a)
	}
	if err := sc.Err(); err != nil {
		return nil, &InputError{File: name, Line: line + 1, Err: fmt.Errorf("read: %w", err)}
	}
	if !header {
		return nil, inputErr(name, 0, "", "empty trace: missing header time,proto,client,vip,duration")
	}
	slices.SortStableFunc(out, func(x, y Arrival) int {
		switch {
		case x.At < y.At:
			return -1
		case x.At > y.At:
			return 1
		}
		return 0
	})
	return out, nil
}

// splitCSV splits s on commas into dst, trimming spaces, and returns the
// number of fields found (which may exceed len(dst)).
func splitCSV(s string, dst []string) int {
	n := 0
	for {
		f, rest, more := strings.Cut(s, ",")
		if n < len(dst) {
			dst[n] = strings.TrimSpace(f)
		}
		n++
		if !more {
			return n
		}
		s = rest
	}
}

// maxSimTime bounds every time in the inputs (about 292 years would overflow
// time.Duration; a year is plenty).
const maxSimTime = 365 * 24 * time.Hour

// parseSeconds parses "1.5" (seconds) or a Go duration ("1500ms").
func parseSeconds(s string) (time.Duration, error) {
	var d time.Duration
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, errors.New("not a finite number")
		}
		if f < 0 || f > maxSimTime.Seconds() {
			return 0, fmt.Errorf("out of range 0..%s", maxSimTime)
		}
		d = durationOf(f * 1e9)
	} else {
		var err error
		d, err = time.ParseDuration(s)
		if err != nil {
			return 0, errors.New("want seconds or a duration like 250ms")
		}
	}
	if d < 0 || d > maxSimTime {
		return 0, fmt.Errorf("out of range 0..%s", maxSimTime)
	}
	return d, nil
}

func parseProto(s string) (spec.Proto, error) {
	switch strings.ToLower(s) {
	case "tcp":
		return spec.ProtoTCP, nil
	case "udp":
		return spec.ProtoUDP, nil
	case "sctp":
		return spec.ProtoSCTP, nil
	}
	return 0, errors.New("proto: want tcp, udp or sctp")
}
