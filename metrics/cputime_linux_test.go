package metrics_test

import "golang.org/x/sys/unix"

// cpuTime returns the CPU time (user and system, ns) of the calling
// thread (thread) or of the process: what a benchmark reports on a loaded
// machine, where wall time measures the other tenants.
func cpuTime(thread bool) int64 {
	who := unix.RUSAGE_SELF
	if thread {
		who = unix.RUSAGE_THREAD
	}
	var ru unix.Rusage
	if err := unix.Getrusage(who, &ru); err != nil {
		return -1
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
