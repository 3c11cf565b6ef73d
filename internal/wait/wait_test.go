package wait

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

type fakeTB struct{ msg string }

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
}

func TestUntil(t *testing.T) {
	n := 0
	if !Until(5*time.Second, func() bool { n++; return n == 3 }) {
		t.Fatal("condition that holds on the third call reported false")
	}
	if n != 3 {
		t.Errorf("called %d times, want 3", n)
	}
	if Until(20*time.Millisecond, func() bool { return false }) {
		t.Error("condition that never holds reported true")
	}
}

func TestFor(t *testing.T) {
	var f fakeTB
	For(&f, 10*time.Millisecond, func() bool { return false }, "the %s", "thing")
	if f.msg == "" || f.msg[:9] != "timed out" || !contains(f.msg, "the thing") {
		t.Errorf("message %q", f.msg)
	}
	f = fakeTB{}
	ForErr(&f, 10*time.Millisecond, func() error { return errors.New("boom") }, "x")
	if !contains(f.msg, "boom") {
		t.Errorf("message %q lacks the last error", f.msg)
	}
	f = fakeTB{}
	For(&f, time.Second, func() bool { return true }, "y")
	if f.msg != "" {
		t.Errorf("held condition failed: %q", f.msg)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestForBlocking(t *testing.T) {
	n := 0
	var f fakeTB
	ForBlocking(&f, 5*time.Second, func() bool { n++; return n == 100 }, "x")
	if f.msg != "" || n != 100 {
		t.Errorf("step that holds on call 100: %d calls, message %q", n, f.msg)
	}
	// No back-off: a step that takes 1 ms runs about timeout/1ms times.
	n = 0
	ForBlocking(&f, 50*time.Millisecond, func() bool { n++; time.Sleep(time.Millisecond); return false }, "the %s", "read")
	if !contains(f.msg, "timed out") || !contains(f.msg, "the read") {
		t.Errorf("message %q", f.msg)
	}
	if n < 10 {
		t.Errorf("a 1 ms step ran %d times in 50 ms: backing off", n)
	}
}

func TestLazy(t *testing.T) {
	evaluated := 0
	state := Lazy(func() any { evaluated++; return 42 })
	var f fakeTB
	For(&f, time.Second, func() bool { return true }, "state %v", state)
	if evaluated != 0 {
		t.Errorf("Lazy evaluated %d times for a wait that succeeded", evaluated)
	}
	For(&f, 10*time.Millisecond, func() bool { return false }, "state %v", state)
	if evaluated != 1 || !contains(f.msg, "state 42") {
		t.Errorf("failed wait: Lazy evaluated %d times, message %q", evaluated, f.msg)
	}
}
