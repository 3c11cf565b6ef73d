package nic

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestPinToCPU(t *testing.T) {
	var cur unix.CPUSet
	if err := unix.SchedGetaffinity(0, &cur); err != nil {
		t.Fatal(err)
	}
	cpu := -1
	for i := range 1024 {
		if cur.IsSet(i) {
			cpu = i
		}
	}
	type result struct {
		set unix.CPUSet
		err error
	}
	done := make(chan result, 1)
	go func() {
		// The goroutine exits locked: its thread is discarded with it.
		if err := PinToCPU(cpu); err != nil {
			done <- result{err: err}
			return
		}
		var r result
		r.err = unix.SchedGetaffinity(0, &r.set)
		done <- r
	}()
	r := <-done
	if r.err != nil {
		t.Fatalf("PinToCPU(%d): %v", cpu, r.err)
	}
	if r.set.Count() != 1 || !r.set.IsSet(cpu) {
		t.Errorf("affinity after PinToCPU(%d): %d CPUs, cpu set %v", cpu, r.set.Count(), r.set.IsSet(cpu))
	}
	if err := PinToCPU(-1); err == nil {
		t.Errorf("PinToCPU(-1) succeeded")
	}
}

func TestNumRXQueues(t *testing.T) {
	if _, err := os.Stat("/sys/class/net/lo/queues"); err != nil {
		t.Fatalf("no sysfs queues for lo: %v", err)
	}
	n, err := NumRXQueues("lo")
	if err != nil || n < 1 {
		t.Errorf("NumRXQueues(lo) = %d, %v; want >= 1", n, err)
	}
	for _, bad := range []string{"", "..", "a/b", "nonexistent0"} {
		if _, err := NumRXQueues(bad); err == nil {
			t.Errorf("NumRXQueues(%q) succeeded", bad)
		}
	}
}
