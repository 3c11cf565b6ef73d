//go:build !linux

package metrics_test

// cpuTime is not measured off Linux.
func cpuTime(bool) int64 { return -1 }
