// Package wait is the one way tests (and tools) wait for a condition:
// poll it with a short back-off until it holds or a deadline passes,
// instead of sleeping for a guessed time. Timeouts are seconds, generous
// for a loaded 2-core machine; a condition that holds returns at once.
//
// Wait for what the test needs, never for time: a port that answers, a
// counter that moved, a frame that arrived. A timeout is the bound of a
// failure, not a delay: a test that passes never waits for it.
//
//	wait.For(t, 5*time.Second, func() bool { return n.Load() == want },
//		"%d frames, got %v", want, wait.Lazy(func() any { return n.Load() }))
package wait

import (
	"context"
	"fmt"
	"time"
)

// Poll intervals: the first checks are quick, then the interval doubles up
// to maxInterval, so a slow condition costs little CPU on a busy machine.
const (
	firstInterval = time.Millisecond
	maxInterval   = 50 * time.Millisecond
)

// Until polls cond until it returns true or timeout passes, and reports
// whether it held. cond is called at least once.
func Until(timeout time.Duration, cond func() bool) bool {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return UntilContext(ctx, cond)
}

// UntilContext polls cond until it returns true or ctx is done, and reports
// whether it held. cond is called at least once.
func UntilContext(ctx context.Context, cond func() bool) bool {
	iv := firstInterval
	t := time.NewTimer(iv)
	defer t.Stop()
	for {
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return cond()
		case <-t.C:
		}
		iv = min(2*iv, maxInterval)
		t.Reset(iv)
	}
}

// ForBlocking is For for a step that waits by itself, such as a read with
// a poll timeout or a socket deadline: step is called again at once, with
// no back-off, until it returns true; after timeout the test fails, saying
// what it waited for. step must return within a bounded time (the last
// call may end after timeout).
func ForBlocking(t TB, timeout time.Duration, step func() bool, what string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !step() {
		if !time.Now().Before(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, describe(what, args))
			return
		}
	}
}

// Lazy is an argument of what (For, ForErr, ForBlocking) that is
// evaluated only when the wait fails, so the message shows the state at
// that moment: a counter, a listing, a process's output.
type Lazy func() any

// describe formats what with args, evaluating the Lazy ones.
func describe(what string, args []any) string {
	a := make([]any, len(args))
	for i, v := range args {
		if l, ok := v.(Lazy); ok {
			v = l()
		}
		a[i] = v
	}
	return fmt.Sprintf(what, a...)
}

// TB is the part of testing.TB that For needs.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// For polls cond until it returns true; after timeout it fails the test,
// saying what it waited for. what is formatted with args.
func For(t TB, timeout time.Duration, cond func() bool, what string, args ...any) {
	t.Helper()
	if !Until(timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, describe(what, args))
	}
}

// ForErr polls f until it returns nil; after timeout it fails the test with
// what it waited for and f's last error.
func ForErr(t TB, timeout time.Duration, f func() error, what string, args ...any) {
	t.Helper()
	var last error
	if !Until(timeout, func() bool { last = f(); return last == nil }) {
		t.Fatalf("timed out after %v waiting for %s: %v", timeout, describe(what, args), last)
	}
}
