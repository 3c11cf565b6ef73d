// Package fuzzwatch is a per-input watchdog for fuzz targets. Go's fuzzer
// has no per-input time limit: a target stuck in a loop shows 0 execs/s
// until -fuzztime runs out and then reports PASS. Guard turns such a hang
// into a crash that names the input and shows every goroutine's stack, so
// the fuzzer records the input as a failure.
package fuzzwatch

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

// DefaultLimit is the per-input limit the module's fuzz targets use: far
// above any input's normal run time (milliseconds), even on a loaded
// machine running the race detector.
const DefaultLimit = 10 * time.Second

// Guard starts a watchdog for one fuzz input and returns the function that
// stops it, to be deferred at the top of the fuzz function:
//
//	defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("%q", in) })()
//
// If the input is not done within limit, the watchdog writes the test's
// name, the input's description (desc, which may be nil) and all
// goroutines' stacks to stderr and panics, which ends the process: under
// -fuzz the fuzzer reports the crash and saves the input in testdata/fuzz.
// With FUZZWATCH_DIR set in the environment the report is also written to
// a file there (fuzzwatch-PID.txt): while the fuzzer minimises an input it
// discards the worker's output.
func Guard(t interface{ Name() string }, limit time.Duration, desc func() string) (stop func()) {
	name, start := t.Name(), time.Now()
	timer := time.AfterFunc(limit, func() { fire(name, start, limit, desc) })
	return func() { timer.Stop() }
}

// fire reports a hung input and ends the process.
func fire(name string, start time.Time, limit time.Duration, desc func() string) {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	in := "(no description)"
	if desc != nil {
		in = desc()
	}
	msg := fmt.Sprintf("fuzzwatch: %s: one input ran %v (limit %v): %s", name, time.Since(start).Round(time.Millisecond), limit, in)
	report := fmt.Sprintf("%s\n\ngoroutines:\n%s\n", msg, buf)
	fmt.Fprint(os.Stderr, report)
	if dir := os.Getenv("FUZZWATCH_DIR"); dir != "" {
		// The fuzzer drops a worker's output while it minimises an
		// input; keep the report where it can be read.
		name := filepath.Join(dir, fmt.Sprintf("fuzzwatch-%d.txt", os.Getpid()))
		_ = os.WriteFile(name, []byte(report), 0o644)
	}
	panic(msg)
}
