package control

import (
	"context"
	"sync"
	"time"

	"github.com/uvs-lb/uvs/ipvsadm"
	"github.com/uvs-lb/uvs/sched"
)

// EstimatorInterval is the kernel rate estimator's sampling period
// (ip_vs_est.c: every 2 seconds).
const EstimatorInterval = 2 * time.Second

// Indexes into estimate.last / estimate.avg, in ipvsadm's column order.
const (
	estConns = iota
	estInPkts
	estOutPkts
	estInBytes
	estOutBytes
	numEst
)

// estimate is struct ip_vs_estimator: the counters at the previous sample
// and the smoothed rates, scaled by 2^10 (conns, packets) or 2^5 (bytes).
type estimate struct {
	last [numEst]uint64
	avg  [numEst]int64
	gen  uint64 // Sample generation that last saw these stats
}

// Estimator computes connection, packet and byte rates for every service
// and destination of a State with the semantics of the kernel's estimator
// (net/netfilter/ipvs/ip_vs_est.c): a sample every EstimatorInterval, an exponentially
// weighted moving average with W = 1/4, rates kept scaled by 2^10 (conns
// and packets) and 2^5 (bytes) and rounded when read.
//
// Call Sample every EstimatorInterval (Run does that), Rate to read, and
// Reset when counters are zeroed (Run in cli.go does it after -Z). It is
// safe for concurrent use.
type Estimator struct {
	st   *State
	mu   sync.Mutex
	ests map[*sched.Stats]*estimate
	gen  uint64
}

// NewEstimator returns an estimator over st's services and destinations.
// Stats first seen by a Sample start from their current counters with
// zero rates, as the kernel starts an estimator.
func NewEstimator(st *State) *Estimator {
	return &Estimator{st: st, ests: make(map[*sched.Stats]*estimate)}
}

// load reads s: the sum of the workers' counter blocks less the zero point
// (sched.Stats.Load), as ip_vs_chain_estimation sums the per-CPU counters.
func load(s *sched.Stats) [numEst]uint64 {
	c := s.Load()
	return [numEst]uint64{c.Conns, c.InPkts, c.OutPkts, c.InBytes, c.OutBytes}
}

// Sample takes one estimator sample of every service and destination
// (ip_vs_chain_estimation): for conns and packets
//
//	rate = (n - last) << 9; avg += (rate - avg) >> 2
//
// and for bytes the same with << 4. Statistics no longer in the State are
// forgotten. A counter that went backwards (zeroed by -Z before Reset ran)
// restarts its estimator.
func (e *Estimator) Sample() {
	infos := e.st.Services()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.gen++
	for i := range infos {
		e.sampleLocked(infos[i].Stats)
		for _, d := range infos[i].Dests {
			e.sampleLocked(&d.Stats)
		}
	}
	for s, x := range e.ests {
		if x.gen != e.gen {
			delete(e.ests, s)
		}
	}
}

func (e *Estimator) sampleLocked(s *sched.Stats) {
	if s == nil {
		return
	}
	cur := load(s)
	x := e.ests[s]
	if x == nil {
		e.ests[s] = &estimate{last: cur, gen: e.gen}
		return
	}
	x.gen = e.gen
	for i := range cur {
		if cur[i] < x.last[i] {
			*x = estimate{last: cur, gen: e.gen}
			return
		}
	}
	for i := range cur {
		shift := uint(9)
		if i >= estInBytes {
			shift = 4
		}
		rate := int64((cur[i] - x.last[i]) << shift)
		x.last[i] = cur[i]
		x.avg[i] += (rate - x.avg[i]) >> 2
	}
}

// Rate returns the current rates of one service's or destination's
// statistics (ip_vs_read_estimator): cps/pps = (avg + 0x1FF) >> 10,
// bps = (avg + 0xF) >> 5. Unknown statistics and a nil Estimator give zero.
func (e *Estimator) Rate(s *sched.Stats) ipvsadm.RateView {
	if e == nil || s == nil {
		return ipvsadm.RateView{}
	}
	e.mu.Lock()
	x := e.ests[s]
	var avg [numEst]int64
	if x != nil {
		avg = x.avg
	}
	e.mu.Unlock()
	pps := func(v int64) uint64 { return uint64(v+0x1FF) >> 10 }
	bps := func(v int64) uint64 { return uint64(v+0xF) >> 5 }
	return ipvsadm.RateView{
		CPS:    pps(avg[estConns]),
		InPPS:  pps(avg[estInPkts]),
		OutPPS: pps(avg[estOutPkts]),
		InBPS:  bps(avg[estInBytes]),
		OutBPS: bps(avg[estOutBytes]),
	}
}

// Reset restarts the estimators of the given statistics from their current
// counters with zero rates (ip_vs_zero_estimator), as -Z does. A nil
// Estimator ignores it.
func (e *Estimator) Reset(stats ...*sched.Stats) {
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range stats {
		if s == nil {
			continue
		}
		if x := e.ests[s]; x != nil {
			*x = estimate{last: load(s), gen: x.gen}
		}
	}
}

// Run samples every EstimatorInterval until ctx is done. If tick is not
// nil it samples on each value received from it instead (tests, or a
// caller-owned ticker).
func (e *Estimator) Run(ctx context.Context, tick <-chan time.Time) {
	if tick == nil {
		t := time.NewTicker(EstimatorInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-tick:
			if !ok {
				return
			}
			e.Sample()
		}
	}
}
