package sim

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/uvs-lb/uvs/ipvsadm"
	"github.com/uvs-lb/uvs/spec"
)

// Verb is what an event does to a destination.
type Verb uint8

// Event verbs.
const (
	VerbAdd      Verb = iota + 1 // add a destination (ipvsadm -a)
	VerbEdit                     // replace a destination's settings (ipvsadm -e)
	VerbDel                      // delete a destination (ipvsadm -d)
	VerbWeight                   // change only the weight
	VerbOverload                 // set the upper threshold so the destination is OVERLOAD
	VerbClear                    // clear both thresholds (and so OVERLOAD)
)

var verbNames = [...]string{VerbAdd: "add", VerbEdit: "edit", VerbDel: "del", VerbWeight: "weight", VerbOverload: "overload", VerbClear: "clear"}

// String returns the verb as written in an events file.
func (v Verb) String() string {
	if int(v) < len(verbNames) && verbNames[v] != "" {
		return verbNames[v]
	}
	return "verb(" + strconv.Itoa(int(v)) + ")"
}

// Event is one timed change of the configuration.
type Event struct {
	At      time.Duration
	Verb    Verb
	Service spec.ServiceKey
	// Dest is the full destination for add and edit; for the other verbs
	// only its address and port are meaningful.
	Dest   spec.Dest
	Weight uint32 // for weight
	Line   int    // line in the events file
	Text   string // the line as written, for --trace
}

// ParseEvents reads an events file. Each non-blank line that does not start
// with # is
//
//	TIME VERB ARGS...
//
// TIME is seconds ("12.5") or a Go duration ("12.5s", "1m"). VERB and ARGS
// are one of (SERVICE is -t|-u|--sctp-service ADDR:PORT or -f MARK, written
// as for ipvsadm; RIP is ADDR:PORT):
//
//	add SERVICE -r RIP [ipvsadm -a options]   add a destination (ipvsadm -a)
//	edit SERVICE -r RIP [ipvsadm -e options]  replace all its settings (ipvsadm -e)
//	del SERVICE -r RIP                        delete it (ipvsadm -d)
//	weight SERVICE -r RIP W                   change only its weight (0..65535)
//	overload SERVICE -r RIP                   mark it OVERLOAD (see below)
//	clear SERVICE -r RIP                      clear its thresholds and OVERLOAD
//
// overload sets the upper threshold (-x) to the destination's current
// connection count, at least 1, and re-evaluates the flag at once: a
// destination with connections is OVERLOAD from then until its count drops
// below 3/4 of the threshold (the kernel hysteresis); one with none
// becomes OVERLOAD with its next connection. Everything else keeps its value.
//
// Events are returned sorted by time; equal times keep file order. Whether
// the service and destination exist is checked later, against the rules.
func ParseEvents(r io.Reader, name string) ([]Event, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	var out []Event
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		ev, err := parseEvent(text)
		if err != nil {
			var ie *InputError
			if errors.As(err, &ie) {
				ie.File, ie.Line = name, line
				return nil, ie
			}
			return nil, &InputError{File: name, Line: line, Err: err}
		}
		ev.Line = line
		out = append(out, ev)
	}
	if err := sc.Err(); err != nil {
		return nil, &InputError{File: name, Line: line + 1, Err: fmt.Errorf("read: %w", err)}
	}
	slices.SortStableFunc(out, func(a, b Event) int {
		switch {
		case a.At < b.At:
			return -1
		case a.At > b.At:
			return 1
		}
		return 0
	})
	return out, nil
}

func parseEvent(text string) (Event, error) {
	f := strings.Fields(text)
	ev := Event{Text: strings.Join(f, " ")}
	at, err := parseSeconds(f[0])
	if err != nil {
		return ev, &InputError{Token: f[0], Err: fmt.Errorf("time: %w", err)}
	}
	ev.At = at
	if len(f) < 2 {
		return ev, &InputError{Token: f[0], Err: errors.New("missing verb after time (add, edit, del, weight, overload, clear)")}
	}
	args := f[2:]
	var cmd string
	switch f[1] {
	case "add":
		ev.Verb, cmd = VerbAdd, "-a"
	case "edit":
		ev.Verb, cmd = VerbEdit, "-e"
	case "del":
		ev.Verb, cmd = VerbDel, "-d"
	case "weight":
		ev.Verb, cmd = VerbWeight, "-d"
		if len(args) == 0 {
			return ev, &InputError{Token: f[1], Err: errors.New("weight: missing value")}
		}
		w := args[len(args)-1]
		n, err := strconv.ParseUint(w, 10, 32)
		if err != nil || n > 65535 {
			return ev, &InputError{Token: w, Err: errors.New("weight: want an integer 0..65535 as the last argument")}
		}
		ev.Weight = uint32(n)
		args = args[:len(args)-1]
	case "overload":
		ev.Verb, cmd = VerbOverload, "-d"
	case "clear":
		ev.Verb, cmd = VerbClear, "-d"
	default:
		return ev, &InputError{Token: f[1], Err: errors.New("unknown verb (want add, edit, del, weight, overload or clear)")}
	}
	c, err := parseIpvsadm(append([]string{cmd}, args...))
	if err != nil {
		tok := ""
		var ae *ipvsadm.Error
		if errors.As(err, &ae) {
			tok = ae.Token
		}
		if tok == "" {
			tok = f[1]
		}
		return ev, &InputError{Token: tok, Err: fmt.Errorf("%s: %w", f[1], err)}
	}
	if !c.HasService || !c.Dest.Addr.IsValid() {
		return ev, &InputError{Token: f[1], Err: errors.New("want a service (-t/-u/--sctp-service/-f) and a real server (-r)")}
	}
	ev.Service, ev.Dest = c.Service.Key, c.Dest
	return ev, nil
}
