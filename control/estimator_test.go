package control

import (
	"context"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/ipvsadm"
	"github.com/uvs-lb/uvs/sched"
)

func TestEstimatorKernelArithmetic(t *testing.T) {
	st := New(Options{})
	mustRun(t, st, "-A -t 10.0.0.1:80 -s rr")
	mustRun(t, st, "-a -t 10.0.0.1:80 -r 192.168.1.2 -g")
	svc := findStats(t, st, tcp80)
	d := findDest(t, st, tcp80, "192.168.1.2:80")
	e := NewEstimator(st)

	// Traffic before the first sample is not a rate: the estimator starts
	// from the counters it first sees.
	svc.Add(sched.Counts{Conns: 5000})
	e.Sample()
	if got := e.Rate(svc); got != (ipvsadm.RateView{}) {
		t.Fatalf("first sample: %+v", got)
	}
	// One interval of 1000 conns, 4000/2000 packets, 2e6/1e6 bytes
	// (per second: 500 cps, 2000/1000 pps, 1e6/5e5 Bps).
	step := func() {
		svc.Add(sched.Counts{Conns: 1000, InPkts: 4000, OutPkts: 2000, InBytes: 2000000, OutBytes: 1000000})
		d.Stats.Add(sched.Counts{Conns: 1000})
		e.Sample()
	}
	step()
	// avg = (1000<<9)>>2 = 128000; shown (128000+0x1FF)>>10 = 125.
	// in pps: (4000<<9)>>2 = 512000 → 500; out 250.
	// in bps: (2e6<<4)>>2 = 8e6 → (8e6+0xF)>>5 = 250000; out 125000.
	want := ipvsadm.RateView{CPS: 125, InPPS: 500, OutPPS: 250, InBPS: 250000, OutBPS: 125000}
	if got := e.Rate(svc); got != want {
		t.Errorf("after one interval: %+v, want %+v", got, want)
	}
	if got := e.Rate(&d.Stats); got.CPS != 125 || got.InPPS != 0 {
		t.Errorf("dest after one interval: %+v", got)
	}
	step()
	// avg = 128000 + (512000-128000)>>2 = 224000 → (224000+511)>>10 = 219.
	if got := e.Rate(svc).CPS; got != 219 {
		t.Errorf("after two intervals: cps %d, want 219", got)
	}
	for range 100 {
		step()
	}
	want = ipvsadm.RateView{CPS: 500, InPPS: 2000, OutPPS: 1000, InBPS: 1000000, OutBPS: 500000}
	if got := e.Rate(svc); got != want {
		t.Errorf("steady state: %+v, want %+v", got, want)
	}
	// Idle intervals decay by 3/4 each: avg 511997.. → 383998 → 375.
	e.Sample()
	if got := e.Rate(svc).CPS; got != 375 {
		t.Errorf("one idle interval: cps %d, want 375", got)
	}

	// Counters zeroed without Reset (a -Z racing a sample) restart the
	// estimator instead of producing a wrapped, huge rate.
	svc.Zero()
	e.Sample()
	if got := e.Rate(svc); got.CPS != 0 {
		t.Errorf("after counters went backwards: %+v", got)
	}

	// Removed services and dests are forgotten.
	mustRun(t, st, "-D -t 10.0.0.1:80")
	e.Sample()
	if n := len(e.ests); n != 0 {
		t.Errorf("%d estimators left after -D", n)
	}
	if got := e.Rate(svc); got != (ipvsadm.RateView{}) {
		t.Errorf("rate of a deleted service: %+v", got)
	}
	var nilEst *Estimator
	if nilEst.Rate(svc) != (ipvsadm.RateView{}) {
		t.Error("nil estimator rate")
	}
	nilEst.Reset(svc)
}

func TestEstimatorRun(t *testing.T) {
	st := New(Options{})
	mustRun(t, st, "-A -t 10.0.0.1:80 -s rr")
	svc := findStats(t, st, tcp80)
	e := NewEstimator(st)
	e.Sample() // baseline
	svc.Add(sched.Counts{Conns: 1000})
	tick := make(chan time.Time)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx, tick); close(done) }()
	// Run samples after each receive, before it looks at ctx again, and
	// the counters do not change while it runs: two samples, +1000 then
	// idle.
	tick <- time.Time{}
	tick <- time.Time{}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	// avg 128000 after +1000, 96000 after the idle sample → 94.
	if got := e.Rate(svc).CPS; got != 94 {
		t.Errorf("cps after Run: %d, want 94", got)
	}
}

func BenchmarkEstimatorSample(b *testing.B) {
	st := New(Options{})
	for i := range 100 {
		r := runCLI(st, root, "", "-A", "-t", "10.0.0.1:"+itoa(1000+i), "-s", "rr")
		if r.code != 0 {
			b.Fatal(r.err)
		}
		for j := range 10 {
			runCLI(st, root, "", "-a", "-t", "10.0.0.1:"+itoa(1000+i), "-r", "192.168.0."+itoa(1+j))
		}
	}
	e := NewEstimator(st)
	b.ReportAllocs()
	for b.Loop() {
		e.Sample()
	}
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}
