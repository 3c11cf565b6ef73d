package afpacket

import (
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uvs-lb/uvs/dataplane"
)

// BenchmarkOverload is a forwarder under a flood whose receive work shares
// its core, as in the bench's split layout: a generator on CPU0 sends
// 106-byte UDP frames (256 flows) from b into va, a forwarder pinned to
// CPU1 reads them from its ring and sends them out of va2 to vb2, and the
// receive processing of va and vb2 (RPS) runs on CPU1 too. For each ring
// mode it measures, over a window of a second, the pps delivered to vb2
// (its rx_packets) when the generator runs flat out, then paced at the
// best delivered rate (1×) and at twice it (2×). It reports, never
// asserts: the figures depend on the machine and its other load. Needs two
// CPUs.
func BenchmarkOverload(b *testing.B) {
	if runtime.NumCPU() < 2 {
		b.Skip("needs two CPUs")
	}
	for _, ring := range []RingMode{RingFrame, RingBlock} {
		b.Run(ring.String(), func(b *testing.B) { benchOverload(b, ring) })
	}
}

func benchOverload(b *testing.B, ring RingMode) {
	tp := newTopo(b, true)
	tp.a.Exec(b, "sh", "-c", "echo 2 > /sys/class/net/va/queues/rx-0/rps_cpus")
	tp.b.Exec(b, "sh", "-c", "echo 2 > /sys/class/net/vb2/queues/rx-0/rps_cpus")
	prog, err := AddressFilter(FilterSpec{VIPs: []netip.Addr{ipOwned}})
	if err != nil {
		b.Fatal(err)
	}
	fwd := open(b, tp.a, Config{Interface: "va", Filter: prog, Ring: ring, PollTimeout: 20 * time.Millisecond})
	gen := open(b, tp.b, Config{Interface: "vb", DisableOffload: true})
	out := make([]dataplane.Frame, 64)
	for i := range out {
		buf := udpFrame(b, tp.bIf.HardwareAddr, tp.aIf.HardwareAddr, ipB, ipOwned, 9040, strings.Repeat("z", 64))
		buf[34+1] = byte(i) // source port: 64 flows per batch position
		out[i] = dataplane.Frame{Buf: buf, Len: len(buf)}
	}
	// The forwarder: va → va2, to vb2's MAC.
	var stop atomic.Bool
	var reads, got atomic.Int64 // forwarder's ReadBatch calls and frames
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := pin(1); err != nil {
			b.Error(err)
			return
		}
		frames := make([]dataplane.Frame, 64)
		for !stop.Load() {
			n, err := fwd.ReadBatch(frames)
			if err != nil {
				return
			}
			reads.Add(1)
			got.Add(int64(n))
			for i := range n {
				d := frames[i].Data()
				copy(d[0:6], tp.bIf2.HardwareAddr)
				copy(d[6:12], tp.aIf2.HardwareAddr)
				frames[i].Ifindex = tp.aIf2.Index
			}
			_, _ = fwd.WriteBatch(frames[:n])
		}
	}()
	b.Cleanup(func() { stop.Store(true); wg.Wait() })
	rx := func() uint64 {
		v, err := strconv.ParseUint(strings.TrimSpace(tp.b.Exec(b, "cat", "/sys/class/net/vb2/statistics/rx_packets")), 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		return v
	}
	// window runs the generator at pps (0: flat out) for a second and
	// returns the pps sent and delivered.
	window := func(pps int) (sent, delivered float64) {
		var done atomic.Bool
		var n atomic.Int64
		var gw sync.WaitGroup
		gw.Add(1)
		go func() {
			defer gw.Done()
			if err := pin(0); err != nil {
				b.Error(err)
				return
			}
			start := time.Now()
			for !done.Load() {
				if pps > 0 && n.Load() >= int64(time.Since(start).Seconds()*float64(pps)) {
					runtime.Gosched()
					continue
				}
				k, _ := gen.WriteBatch(out)
				n.Add(int64(k))
			}
		}()
		time.Sleep(200 * time.Millisecond) // warm-up
		r0, s0, t0 := rx(), n.Load(), time.Now()
		time.Sleep(time.Second)
		r1, s1, el := rx(), n.Load(), time.Since(t0).Seconds()
		done.Store(true)
		gw.Wait()
		time.Sleep(100 * time.Millisecond) // drain
		return float64(s1-s0) / el, float64(r1-r0) / el
	}
	b.ResetTimer()
	for range b.N {
		r0, g0 := reads.Load(), got.Load()
		satSent, satDel := window(0)
		b.ReportMetric(float64(got.Load()-g0)/float64(max(1, reads.Load()-r0)), "sat-frames/read")
		best := satDel
		for _, pps := range []int{50_000, 100_000, 150_000, 200_000, 300_000} {
			if _, d := window(pps); d > best {
				best = d
			}
		}
		_, one := window(int(best))
		_, two := window(int(2 * best))
		b.ReportMetric(satSent, "sat-offered-pps")
		b.ReportMetric(satDel, "sat-delivered-pps")
		b.ReportMetric(best, "best-pps")
		b.ReportMetric(one/best, "1x-delivered/best")
		b.ReportMetric(two/best, "2x-delivered/best")
	}
	st, _ := fwd.Stats()
	b.Logf("%v: forwarder stats %+v", ring, st)
}

// pin locks the goroutine to its thread on cpu (for the test's life).
func pin(cpu int) error {
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return os.NewSyscallError("sched_setaffinity", err)
	}
	return nil
}
