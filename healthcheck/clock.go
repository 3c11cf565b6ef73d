package healthcheck

import (
	"slices"
	"sync"
	"time"
)

// Clock is the time source of the checkers: the real clock in uvsd, a
// FakeClock in tests, so that keepalived's timelines (delay_loop,
// delay_before_retry, warmup) run without sleeping.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine (real clock) or from
	// FakeClock.Advance (fake clock) once d has passed.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc call.
type Timer interface {
	// Stop prevents the call if it has not started and reports whether
	// it did so.
	Stop() bool
}

// RealClock is the system clock.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// AfterFunc is time.AfterFunc.
func (RealClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// FakeClock is a manual Clock: time moves only in Advance, which runs the
// timers that fall due, in order of their time (then of their creation),
// on the caller's goroutine (a timer may itself call Advance, to model a
// probe that takes time). A timer armed by a running timer for a time
// not after Advance's target runs in the same Advance, so a chain of
// probes plays out completely. The zero value starts at the Unix epoch;
// it is safe for concurrent use.
type FakeClock struct {
	mu     sync.Mutex
	now    time.Time
	seq    uint64
	timers []*fakeTimer
}

type fakeTimer struct {
	c    *FakeClock
	when time.Time
	seq  uint64
	f    func()
}

// NewFakeClock returns a FakeClock reading start.
func NewFakeClock(start time.Time) *FakeClock { return &FakeClock{now: start} }

// Now returns the fake time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc arms a timer that Advance runs once d has passed.
func (c *FakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &fakeTimer{c: c, when: c.now.Add(max(d, 0)), seq: c.seq, f: f}
	c.timers = append(c.timers, t)
	return t
}

// Stop removes the timer if it is still pending.
func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	i := slices.Index(t.c.timers, t)
	if i < 0 {
		return false
	}
	t.c.timers = slices.Delete(t.c.timers, i, i+1)
	return true
}

// Pending returns how many timers are armed.
func (c *FakeClock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// Advance moves the clock forward by d, running every timer that falls
// due on the way at its own time.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	target := c.now.Add(d)
	for {
		i := -1
		for j, t := range c.timers {
			if t.when.After(target) {
				continue
			}
			if i < 0 || t.when.Before(c.timers[i].when) ||
				(t.when.Equal(c.timers[i].when) && t.seq < c.timers[i].seq) {
				i = j
			}
		}
		if i < 0 {
			break
		}
		t := c.timers[i]
		c.timers = slices.Delete(c.timers, i, i+1)
		if t.when.After(c.now) {
			c.now = t.when
		}
		c.mu.Unlock()
		t.f()
		c.mu.Lock()
	}
	if target.After(c.now) {
		c.now = target // a timer may have advanced the clock further
	}
	c.mu.Unlock()
}
