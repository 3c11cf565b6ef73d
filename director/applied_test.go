package director

import (
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/wait"
	"github.com/uvs-lb/uvs/snapshot"
)

// TestApplyGate: before Run a snapshot reaches the workers at once; while
// housekeeping runs it waits until applied, a uvsadm change waits for it,
// and a snapshot offered while the ownership is being published is left
// for the next round instead of being applied with the older ownership.
func TestApplyGate(t *testing.T) {
	d := &Director{}
	s0, s1, s2 := &snapshot.Snapshot{}, &snapshot.Snapshot{}, &snapshot.Snapshot{}
	d.offerSnapshot(s0)
	if d.snap.Load() != s0 || !d.waitApplied() {
		t.Fatal("before Run, a snapshot is not applied at once")
	}

	d.gateStart()
	d.offerSnapshot(s1)
	if d.snap.Load() != s0 {
		t.Fatal("while housekeeping runs, an offered snapshot reached the workers before its ownership")
	}
	waited := make(chan bool)
	go func() { waited <- d.waitApplied() }()
	// The change waits (its done channel made) before the next offer.
	wait.For(t, 5*time.Second, func() bool {
		d.gate.mu.Lock()
		defer d.gate.mu.Unlock()
		return d.gate.done != nil
	}, "the uvsadm change to wait")
	p := d.takeSnapshot() // housekeeping: take, then publish the ownership
	d.offerSnapshot(s2)   // a change during the publish
	select {
	case <-waited:
		t.Fatal("a uvsadm change was answered before its snapshot was applied")
	case <-time.After(50 * time.Millisecond):
	}
	d.applySnapshot(p)
	if d.snap.Load() != s1 {
		t.Fatal("the snapshot taken was not applied")
	}
	if !<-waited {
		t.Fatal("waitApplied gave up after its snapshot was applied")
	}
	// s2 came after the ownership was computed: it waits for the next
	// round, and a change made now waits for it.
	if d.waitAppliedWithin(50 * time.Millisecond) {
		t.Fatal("the snapshot offered during the publish counts as applied")
	}
	d.applySnapshot(d.takeSnapshot())
	if d.snap.Load() != s2 || !d.waitApplied() {
		t.Fatal("the next round did not apply the newer snapshot")
	}

	// Run's end applies what is pending and goes back to at once.
	d.offerSnapshot(s0)
	d.gateStop()
	if d.snap.Load() != s0 {
		t.Fatal("gateStop left a snapshot pending")
	}
	d.offerSnapshot(s1)
	if d.snap.Load() != s1 {
		t.Fatal("after Run, a snapshot is not applied at once")
	}
}
