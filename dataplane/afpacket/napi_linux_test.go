package afpacket

import (
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/dataplane/nic"
	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/wait"
)

// napiNiceOffset mirrors the director's: the NAPI thread runs 5 nice steps
// above the forwarder's effective nice.
const napiNiceOffset = -5

// withSysfs runs fn on a thread in ns's network namespace with /sys
// remounted from inside it (as `ip netns exec` does), so that
// /sys/class/net shows ns. The thread exits with the goroutine.
func withSysfs(t testing.TB, ns *netnstest.NS, fn func() error) error {
	t.Helper()
	h := ns.Handle(t)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with us
		steps := []struct {
			what string
			do   func() error
		}{
			{"unshare mount namespace", func() error { return unix.Unshare(unix.CLONE_NEWNS) }},
			{"make / a slave mount", func() error { return unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, "") }},
			{"setns " + ns.Name, func() error { return unix.Setns(int(h), unix.CLONE_NEWNET) }},
			{"unmount /sys", func() error { return unix.Unmount("/sys", unix.MNT_DETACH) }},
			{"mount sysfs", func() error { return unix.Mount(ns.Name, "/sys", "sysfs", 0, "") }},
		}
		for _, s := range steps {
			if err := s.do(); err != nil {
				done <- fmt.Errorf("%s: %w", s.what, err)
				return
			}
		}
		done <- fn()
	}()
	return <-done
}

// threadRx puts ifname's receive processing in ns into NAPI threads
// (nic.ThreadRx, nice napiNiceOffset from the calling process's) and restores
// it at cleanup.
func threadRx(t testing.TB, ns *netnstest.NS, ifname string) nic.RxState {
	t.Helper()
	nice, err := nic.EffectiveNice()
	if err != nil {
		t.Fatal(err)
	}
	var st nic.RxState
	if err := withSysfs(t, ns, func() error {
		var err error
		st, err = nic.ThreadRx(ifname, nic.RxOptions{Nice: max(-20, min(19, nice+napiNiceOffset)), SetNice: true})
		return err
	}); err != nil {
		t.Fatalf("ThreadRx(%s): %v", ifname, err)
	}
	t.Cleanup(func() {
		if err := withSysfs(t, ns, st.Restore); err != nil {
			t.Errorf("restoring %s: %v", ifname, err)
		}
	})
	return st
}

// TestThreadedNAPIUnderFlood floods a forwarder whose interface's receive
// RPS names the forwarder's own CPU (the bench's split layout), after
// nic.ThreadRx: the receive processing must run in va's NAPI thread, on the
// CPU RPS named, and a control flow must
// still get through the flood. Without ThreadRx (the old code) there is no
// NAPI thread to find and the receive work runs in softirq on the
// forwarder's CPU. The control flow's probes are retried until seen, so a
// busy machine slows the test but does not fail it; what fails it is a
// probe that never gets through (a forwarder starved for the whole wait).
func TestThreadedNAPIUnderFlood(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	if runtime.NumCPU() < 2 {
		if os.Getenv("CI") != "" {
			t.Fatal("needs two CPUs, and CI must run this test: CI machines have two")
		}
		t.Skip("needs two CPUs")
	}
	tp := newTopo(t, true)
	tp.a.Exec(t, "sh", "-c", "echo 2 > /sys/class/net/va/queues/rx-0/rps_cpus")
	st := threadRx(t, tp.a, "va")
	if st.RPS["rx-0"] == "" {
		t.Errorf("ThreadRx recorded no RPS mask for va's rx-0: %+v", st)
	}
	if got := strings.TrimSpace(tp.a.Exec(t, "cat", "/sys/class/net/va/threaded")); got != "1" {
		// ns.Exec runs under ip netns exec: its /sys is va's namespace.
		t.Fatalf("va's threaded = %q after ThreadRx, want 1", got)
	}
	var napis []nic.NAPI
	if err := tp.a.Do(func() error {
		var err error
		napis, err = nic.NAPIs(tp.aIf.Index)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	pid := 0
	for _, x := range napis {
		pid = max(pid, x.PID)
	}
	if pid == 0 {
		t.Fatalf("va has no NAPI thread after ThreadRx: %+v", napis)
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(pid, &set); err != nil {
		t.Fatal(err)
	}
	if set.Count() != 1 || !set.IsSet(1) {
		t.Errorf("va's NAPI thread %d may run on %d CPUs (CPU1: %v), want CPU1 only (va's RPS mask)", pid, set.Count(), set.IsSet(1))
	}

	prog, err := AddressFilter(FilterSpec{VIPs: []netip.Addr{ipOwned}})
	if err != nil {
		t.Fatal(err)
	}
	fwd := open(t, tp.a, Config{Interface: "va", Filter: prog, PollTimeout: 20 * time.Millisecond})
	gen := open(t, tp.b, Config{Interface: "vb", DisableOffload: true})
	sink := open(t, tp.b, Config{Interface: "vb2", PollTimeout: 20 * time.Millisecond})
	const probePort = 9099
	var stop atomic.Bool
	var wg sync.WaitGroup
	t.Cleanup(func() { stop.Store(true); wg.Wait() })
	// The forwarder, on CPU1 with va's receive: va → va2, to vb2's MAC.
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := pin(1); err != nil {
			t.Error(err)
			return
		}
		frames := make([]dataplane.Frame, 64)
		for !stop.Load() {
			n, err := fwd.ReadBatch(frames)
			if err != nil {
				return
			}
			for i := range n {
				d := frames[i].Data()
				copy(d[0:6], tp.bIf2.HardwareAddr)
				copy(d[6:12], tp.aIf2.HardwareAddr)
				frames[i].Ifindex = tp.aIf2.Index
			}
			_, _ = fwd.WriteBatch(frames[:n])
		}
	}()
	// The sink: which probes reached vb2.
	var seen [32]atomic.Bool
	wg.Add(1)
	go func() {
		defer wg.Done()
		frames := make([]dataplane.Frame, 64)
		for !stop.Load() {
			n, err := sink.ReadBatch(frames)
			if err != nil {
				return
			}
			for _, f := range frames[:n] {
				d := f.Data()
				if len(d) > 42 && int(d[36])<<8|int(d[37]) == probePort && int(d[42]) < len(seen) {
					seen[d[42]].Store(true)
				}
			}
		}
	}()
	// The flood, on CPU0: 64 flows, flat out, until the probes are done.
	flood := make([]dataplane.Frame, 64)
	for i := range flood {
		buf := udpFrame(t, tp.bIf.HardwareAddr, tp.aIf.HardwareAddr, ipB, ipOwned, 9040, strings.Repeat("z", 64))
		buf[34+1] = byte(i)
		flood[i] = dataplane.Frame{Buf: buf, Len: len(buf)}
	}
	var flooded atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := pin(0); err != nil {
			t.Error(err)
			return
		}
		for !stop.Load() {
			n, _ := gen.WriteBatch(flood)
			flooded.Add(int64(n))
		}
	}()
	wait.For(t, 10*time.Second, func() bool { return flooded.Load() >= 20_000 }, "the flood to start")
	run0 := runNS(pid)
	// The probes, one after the other, each resent every 2 ms until vb2
	// has it.
	for k := range len(seen) {
		probe := udpFrame(t, tp.bIf.HardwareAddr, tp.aIf.HardwareAddr, ipB, ipOwned, probePort, string([]byte{byte(k)})+strings.Repeat("p", 63))
		send := []dataplane.Frame{{Buf: probe, Len: len(probe)}}
		wait.For(t, 20*time.Second, func() bool {
			if seen[k].Load() {
				return true
			}
			_, _ = gen.WriteBatch(send)
			time.Sleep(2 * time.Millisecond)
			return seen[k].Load()
		}, "probe %d of %d through the flood (%d flood frames sent)", k, len(seen), flooded.Load())
	}
	ran := time.Duration(runNS(pid) - run0)
	stop.Store(true)
	if ran <= 0 {
		t.Errorf("va's NAPI thread %d did not run during the flood (%d frames sent): the receive processing is not in it", pid, flooded.Load())
	}
	t.Logf("flood frames sent %d; NAPI thread ran %v while the probes went through", flooded.Load(), ran)
}
