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
