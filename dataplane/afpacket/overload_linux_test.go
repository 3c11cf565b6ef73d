package afpacket

import (
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/dataplane/nic"
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
		if os.Getenv("CI") != "" {
			b.Fatal("needs two CPUs, and CI must run this benchmark: CI machines have two")
		}
		b.Skip("needs two CPUs")
	}
	for _, ring := range []RingMode{RingFrame, RingBlock} {
		b.Run(ring.String(), func(b *testing.B) { benchOverload(b, ring, false) })
	}
	// va's receive in a NAPI thread on CPU1 (what uvsd does on the
	// AF_PACKET backend, director/napi_linux.go).
	b.Run("frame-threaded", func(b *testing.B) { benchOverload(b, RingFrame, true) })
}

// overload is the forwarder of BenchmarkOverload and its generator.
type overload struct {
	tp         *topo
	fwd        *Socket
	reads, got *atomic.Int64
	window     func(pps int) (sent, delivered float64)
	fwdTID     *atomic.Int64 // the forwarder's thread
}

// runNS returns a task's CPU time in ns (the first field of its schedstat),
// 0 if it cannot be read.
func runNS(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/schedstat")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseInt(f[0], 10, 64)
	return v
}

func benchOverload(b *testing.B, ring RingMode, threaded bool) {
	ov := newOverload(b, ring)
	if threaded {
		threadRx(b, ov.tp.a, "va")
	}
	fwd, reads, got, window := ov.fwd, ov.reads, ov.got, ov.window
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

// newOverload builds BenchmarkOverload's topology and starts its forwarder.
func newOverload(b *testing.B, ring RingMode) *overload {
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
	var fwdTID atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := pin(1); err != nil {
			b.Error(err)
			return
		}
		fwdTID.Store(int64(unix.Gettid()))
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
	// rx reads vb2's rx_packets over netlink (no process to start on a
	// busy machine).
	rx := func() uint64 {
		var v uint64
		if err := tp.b.Do(func() error {
			l, err := netlink.LinkByName("vb2")
			if err != nil {
				return err
			}
			v = l.Attrs().Statistics.RxPackets
			return nil
		}); err != nil {
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
	return &overload{tp: tp, fwd: fwd, reads: &reads, got: &got, window: window, fwdTID: &fwdTID}
}

func ptr(v int) *int { return &v }

// BenchmarkOverloadNAPI compares, in interleaved rounds so that the
// machine's other load hits both alike, BenchmarkOverload's forwarder with
// va's receive in softirq (RPS to CPU1) and in a NAPI thread on CPU1
// (nic.ThreadRx, as uvsd sets it up on the AF_PACKET backend): the pps
// delivered at a few offered rates and flat out, medians over the rounds.
// UVS_NAPI_NICE_OFFSETS=softirq,-5,0,5 chooses the modes (softirq, or the
// NAPI thread's nice relative to the forwarder's effective nice). It
// reports, never asserts. Needs two CPUs.
func BenchmarkOverloadNAPI(b *testing.B) {
	if runtime.NumCPU() < 2 {
		if os.Getenv("CI") != "" {
			b.Fatal("needs two CPUs, and CI must run this benchmark: CI machines have two")
		}
		b.Skip("needs two CPUs")
	}
	ov := newOverload(b, RingFrame)
	rates := []int{60_000, 120_000, 180_000, 240_000, 360_000, 0}
	// A mode is softirq (nil) or threaded with the NAPI thread's nice
	// that many steps from the forwarder's effective nice.
	offsets := []*int{nil, ptr(napiNiceOffset), ptr(0)}
	if v := os.Getenv("UVS_NAPI_NICE_OFFSETS"); v != "" {
		offsets = offsets[:0]
		for _, f := range strings.Split(v, ",") {
			if f == "softirq" {
				offsets = append(offsets, nil)
				continue
			}
			n, err := strconv.Atoi(f)
			if err != nil {
				b.Fatalf("UVS_NAPI_NICE_OFFSETS (softirq or nice offsets, comma-separated): %v", err)
			}
			offsets = append(offsets, ptr(n))
		}
	}
	modes := make([]string, len(offsets))
	for i, o := range offsets {
		modes[i] = "softirq"
		if o != nil {
			modes[i] = fmt.Sprintf("threaded%+d", *o)
		}
	}
	got := map[string][][]float64{} // mode → rate index → delivered per round
	for _, m := range modes {
		got[m] = make([][]float64, len(rates))
	}
	b.ResetTimer()
	for round := range 3 * b.N {
		for k := range modes {
			mi := (k + round) % len(modes)
			m := modes[mi]
			var st nic.RxState
			if off := offsets[mi]; off != nil {
				if err := withSysfs(b, ov.tp.a, func() error {
					nice, err := nic.EffectiveNice()
					if err != nil {
						return err
					}
					st, err = nic.ThreadRx("va", nic.RxOptions{Nice: max(-20, min(19, nice+*off)), SetNice: true})
					return err
				}); err != nil {
					b.Fatal(err)
				}
			}
			napiPID := 0
			if offsets[mi] != nil {
				_ = ov.tp.a.Do(func() error {
					ns, err := nic.NAPIs(ov.tp.aIf.Index)
					for _, x := range ns {
						napiPID = max(napiPID, x.PID)
					}
					return err
				})
			}
			for i, pps := range rates {
				s0, _ := ov.fwd.Stats()
				f0, n0, t0 := runNS(int(ov.fwdTID.Load())), runNS(napiPID), time.Now()
				sent, d := ov.window(pps)
				f1, n1, el := runNS(int(ov.fwdTID.Load())), runNS(napiPID), float64(time.Since(t0).Nanoseconds())
				s1, _ := ov.fwd.Stats()
				got[m][i] = append(got[m][i], d)
				if pps == 0 || pps == 360_000 {
					b.Logf("%s %d: offered %.0f pps, delivered %.0f, ring drops %d, forwarder %.0f%% of a CPU, napi thread %.0f%%", m, pps, sent, d, s1.Drops-s0.Drops, float64(f1-f0)*100/el, float64(n1-n0)*100/el)
				}
			}
			if err := withSysfs(b, ov.tp.a, st.Restore); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, m := range modes {
		line := m + ":"
		for i, pps := range rates {
			v := slices.Clone(got[m][i])
			slices.Sort(v)
			med := v[len(v)/2]
			name := "flat"
			if pps > 0 {
				name = strconv.Itoa(pps/1000) + "k"
			}
			b.ReportMetric(med, m+"-"+name+"-pps")
			line += fmt.Sprintf(" %s→%.0f %v", name, med, v)
		}
		b.Log(line)
	}
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
