package healthcheck

import (
	"context"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// cpuTime returns the process's user+system CPU time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkTCPCheck is one TCP_CHECK probe (connect + close) against a
// loopback listener in the same process; cpu-ns/probe counts both ends.
func BenchmarkTCPCheck(b *testing.B) {
	_, a := listen(b, "tcp", "127.0.0.1:0", nil)
	tgt := Target{Addr: a, Timeout: 5 * time.Second}
	ctx := context.Background()
	if r := (TCPCheck{}).Probe(ctx, tgt); !r.OK {
		b.Fatalf("probe: %+v", r)
	}
	failed := 0
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for b.Loop() {
		if !(TCPCheck{}).Probe(ctx, tgt).OK {
			failed++
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/probe")
	b.ReportMetric(float64(failed), "failed")
}

// BenchmarkTCPCheck1000 is a round of 1000 probes, 64 at a time, as 1000
// real servers whose delay_loop falls due together would cost.
func BenchmarkTCPCheck1000(b *testing.B) {
	_, a := listen(b, "tcp", "127.0.0.1:0", nil)
	tgt := Target{Addr: a, Timeout: 5 * time.Second}
	ctx := context.Background()
	var failed atomic.Int64
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for b.Loop() {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range 64 {
			wg.Go(func() {
				for next.Add(1) <= 1000 {
					if !(TCPCheck{}).Probe(ctx, tgt).OK {
						failed.Add(1)
					}
				}
			})
		}
		wg.Wait()
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N)/1000, "cpu-ns/probe")
	b.ReportMetric(float64(failed.Load()), "failed")
}

// BenchmarkEpilog is the state machine alone: one probe result applied.
func BenchmarkEpilog(b *testing.B) {
	c := NewChecker(tcpConfig(), TCPCheck{}, Options{Clock: NewFakeClock(t0)})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		c.mu.Lock()
		c.epilog(i%4 != 0, 0)
		c.mu.Unlock()
	}
}

// The state machine allocates nothing for a probe that decides nothing.
func TestEpilogNoAllocs(t *testing.T) {
	c := NewChecker(tcpConfig(), TCPCheck{}, Options{Clock: NewFakeClock(t0)})
	c.epilog(true, 0) // first verdict
	i := 0
	if n := testing.AllocsPerRun(1000, func() {
		i++
		c.epilog(i%2 == 0, 0) // ok, retry, ok, retry…
	}); n != 0 {
		t.Errorf("epilog: %v allocs per result", n)
	}
}
