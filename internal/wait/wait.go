// Package wait is the one way tests (and tools) wait for a condition:
// poll it with a short back-off until it holds or a deadline passes,
// instead of sleeping for a guessed time. Timeouts are seconds, generous
// for a loaded 2-core machine; a condition that holds returns at once.
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
		t.Fatalf("timed out after %v waiting for %s", timeout, fmt.Sprintf(what, args...))
	}
}

// ForErr polls f until it returns nil; after timeout it fails the test with
// what it waited for and f's last error.
func ForErr(t TB, timeout time.Duration, f func() error, what string, args ...any) {
	t.Helper()
	var last error
	if !Until(timeout, func() bool { last = f(); return last == nil }) {
		t.Fatalf("timed out after %v waiting for %s: %v", timeout, fmt.Sprintf(what, args...), last)
	}
}
