// Package nic tells the data plane what the host offers its workers: how many
// receive queues an interface has (one worker per queue) and pinning a
// worker to a CPU. Every packet-I/O backend uses it. ThreadRx moves an
// interface's receive processing into NAPI threads, which the AF_PACKET
// backend needs so that a flood cannot starve its workers.
package nic

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// PinToCPU locks the calling goroutine to its OS thread and restricts that
// thread to cpu. The goroutine stays locked: call it at the top of a worker
// goroutine that runs until its socket is closed. On error the goroutine is
// unlocked again.
func PinToCPU(cpu int) error {
	if cpu < 0 {
		return fmt.Errorf("nic: pin to cpu %d: negative", cpu)
	}
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("nic: pin to cpu %d: %w", cpu, err)
	}
	return nil
}

// NumRXQueues returns how many receive queues the interface has, from
// /sys/class/net/IFNAME/queues/rx-*. sysfs shows the network namespace it was
// mounted in (`ip netns exec` mounts the target's), not necessarily the
// calling thread's.
func NumRXQueues(ifname string) (int, error) {
	if ifname == "" || strings.ContainsAny(ifname, "/") || ifname == "." || ifname == ".." {
		return 0, fmt.Errorf("nic: rx queues: invalid interface name %q", ifname)
	}
	ents, err := os.ReadDir(filepath.Join("/sys/class/net", ifname, "queues"))
	if err != nil {
		return 0, fmt.Errorf("nic: rx queues: %w", err)
	}
	n := 0
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "rx-") {
			n++
		}
	}
	if n == 0 {
		return 0, fmt.Errorf("nic: rx queues: %s has none", ifname)
	}
	return n, nil
}
