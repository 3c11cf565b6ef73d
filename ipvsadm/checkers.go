package ipvsadm

import (
	"io"
	"strconv"
	"strings"
	"time"
)

// CheckerView is one health checker of uvsd --keepalived as
// --list-checkers shows it (a uvs extension, in the tradition of DPVS's
// ipvsadm additions; keepalived itself dumps its checkers to
// /tmp/keepalived.data on SIGUSR1).
type CheckerView struct {
	VS     string // keepalived's name of the virtual server: "[10.0.1.100]:tcp:80", "FWM 5"
	RS     string // the real server: "[10.0.2.11]:tcp:80"
	Type   string // the checker block: TCP_CHECK, HTTP_GET, ...
	Target string // what it probes: "10.0.2.11:80"
	Up     bool
	// LastMsg is the last probe's result (or verdict) message, LastAt its
	// time; a zero LastAt means the checker has not probed yet.
	LastMsg string
	LastAt  time.Time
	// RetriesLeft is how many more failures the checker takes before it
	// decides down (0 while down).
	RetriesLeft uint
	// Next is the time to the next probe; negative when none is scheduled
	// (the checker is stopped).
	Next time.Duration
}

// checkerCols are the --list-checkers column widths; LAST is the last,
// free-width column.
var checkerCols = [...]struct {
	name  string
	width int
}{{"VS", 24}, {"RS", 24}, {"TYPE", 10}, {"TARGET", 22}, {"STATE", 5}, {"RETRY", 5}, {"NEXT", 5}}

// FormatCheckers writes the --list-checkers table: a header line, then
// one fixed-width line per checker, in the order given:
//
//	VS                       RS                       TYPE       TARGET                 STATE RETRY NEXT  LAST
//	[10.0.1.100]:tcp:80      [10.0.2.11]:tcp:80       TCP_CHECK  10.0.2.11:80           UP    1     3     2026-12-07T03:01:10Z TCP connection to [10.0.2.11]:tcp:80 success.
//
// RETRY is the retries left before a failure takes the checker down,
// NEXT the whole seconds (rounded up) to the next probe ("-" when none is
// scheduled), LAST the time (RFC 3339, UTC) and message of the last
// result ("never" before the first probe). A value wider than its column
// pushes the rest of the line right, as printf does.
func FormatCheckers(w io.Writer, checkers []CheckerView) error {
	var b strings.Builder
	for i, c := range checkerCols {
		b.WriteString(padRight(c.name, c.width))
		if i < len(checkerCols)-1 {
			b.WriteByte(' ')
		}
	}
	b.WriteString(" LAST\n")
	for _, c := range checkers {
		state := "DOWN"
		if c.Up {
			state = "UP"
		}
		next := "-"
		if c.Next >= 0 {
			next = strconv.FormatInt(int64((c.Next+time.Second-1)/time.Second), 10)
		}
		last := "never"
		if !c.LastAt.IsZero() {
			last = c.LastAt.UTC().Format(time.RFC3339)
			if c.LastMsg != "" {
				last += " " + c.LastMsg
			}
		}
		vals := [...]string{c.VS, c.RS, c.Type, c.Target, state, strconv.FormatUint(uint64(c.RetriesLeft), 10), next}
		for i, v := range vals {
			b.WriteString(padRight(v, checkerCols[i].width))
			b.WriteByte(' ')
		}
		b.WriteString(last + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
