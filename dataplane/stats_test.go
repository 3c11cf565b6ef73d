package dataplane_test

import (
	"bytes"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/uvs-lb/uvs/control"
	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/sched"
)

// TestServiceStatsSumDests: a service's packet and byte counters are the
// sum of its destinations' (ip_vs_in_stats and ip_vs_out_stats count in
// the destination and in its service), and so are its connections; the
// listing (-Ln --stats) shows them on the service line.
func TestServiceStatsSumDests(t *testing.T) {
	r := newRig(t, natRules)
	// Two clients: rr puts them on rs2 then rs1. Requests and replies of
	// different sizes.
	r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false))
	r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.3", "10.0.1.100", 40001, 80, true, false))
	r.run(t, tcpFrame(t, macRS2, macDir1, "10.0.2.12", "10.0.1.2", 8080, 40000, true, true))
	r.run(t, tcpFrame(t, macRS1, macDir1, "10.0.2.11", "10.0.1.3", 8080, 40001, true, true))
	r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, false, true),
		tcpFrame(t, macCli, macDir0, "10.0.1.3", "10.0.1.100", 40001, 80, false, true),
		tcpFrame(t, macCli, macDir0, "10.0.1.3", "10.0.1.100", 40001, 80, false, true))
	if tx := r.w.Counters.Load(dataplane.CntTx); tx != 7 {
		t.Fatalf("forwarded %d frames, want 7", tx)
	}
	svc := r.env.Snap.Load().Services()[0]
	var sum sched.Counts
	for _, d := range svc.Sched.Dests() {
		c := d.Stats.Load()
		if c.InPkts == 0 || c.OutPkts != 1 || c.Conns != 1 {
			t.Errorf("%v: %+v, want 1 conn, 1 reply and some requests", d.AddrPort(), c)
		}
		sum.Conns += c.Conns
		sum.InPkts += c.InPkts
		sum.OutPkts += c.OutPkts
		sum.InBytes += c.InBytes
		sum.OutBytes += c.OutBytes
	}
	want := sched.Counts{Conns: 2, InPkts: 5, OutPkts: 2, InBytes: sum.InBytes, OutBytes: sum.OutBytes}
	if sum != want || sum.InBytes == 0 || sum.OutBytes == 0 {
		t.Fatalf("destinations sum to %+v, want %+v", sum, want)
	}
	if got := svc.Stats.Load(); got != sum {
		t.Fatalf("service counters %+v, want the sum of its destinations %+v", got, sum)
	}

	// The listing: the service line carries the same figures.
	var out, errb bytes.Buffer
	env := control.Env{Prog: "ipvsadm", Privileged: true}
	if code := control.Run(r.state, env, []string{"-Ln", "--stats"}, nil, &out, &errb); code != 0 {
		t.Fatalf("-Ln --stats: %d %s", code, errb.String())
	}
	var svcLine string
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "TCP ") {
			svcLine = l
		}
	}
	f := strings.Fields(svcLine)
	if len(f) != 7 || f[2] != "2" || f[3] != "5" || f[4] != "2" || f[5] == "0" || f[6] == "0" {
		t.Fatalf("service line %q, want 2 conns, 5 in, 2 out and bytes\n%s", svcLine, out.String())
	}

	// -Z: the zero point; counting goes on from there.
	if code := control.Run(r.state, env, []string{"-Z"}, nil, &out, &errb); code != 0 {
		t.Fatalf("-Z: %d %s", code, errb.String())
	}
	if got := svc.Stats.Load(); got != (sched.Counts{}) {
		t.Fatalf("after -Z: %+v", got)
	}
	r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, false, true))
	if got := svc.Stats.Load(); got.InPkts != 1 || got.Conns != 0 || got.OutPkts != 0 {
		t.Fatalf("one request after -Z: %+v", got)
	}
}

// TestStatsCountingNoAllocs: counting requests and replies in the
// worker's block, service and destination, allocates nothing.
func TestStatsCountingNoAllocs(t *testing.T) {
	r := newRig(t, natRules)
	r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false))
	req := tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, false, true)
	rep := tcpFrame(t, macRS2, macDir1, "10.0.2.12", "10.0.1.2", 8080, 40000, false, true)
	w := dataplane.NewWorker(discardIO{}, r.env)
	bufs := [2][]byte{make([]byte, 64+len(req)), make([]byte, 64+len(rep))}
	frames := make([]dataplane.Frame, 2)
	svc := r.env.Snap.Load().Services()[0]
	before := svc.Stats.Load()
	const runs = 200
	allocs := testing.AllocsPerRun(runs, func() {
		copy(bufs[0][64:], req)
		copy(bufs[1][64:], rep)
		frames[0] = dataplane.Frame{Buf: bufs[0], Off: 64, Len: len(req), Ifindex: 1}
		frames[1] = dataplane.Frame{Buf: bufs[1], Off: 64, Len: len(rep), Ifindex: 2}
		w.ProcessBatch(frames)
	})
	if allocs != 0 {
		t.Fatalf("counting allocates %.1f times per batch", allocs)
	}
	got := svc.Stats.Load()
	if got.InPkts-before.InPkts != runs+1 || got.OutPkts-before.OutPkts != runs+1 {
		t.Fatalf("service counted %d requests and %d replies over %d batches (+1 warm-up)",
			got.InPkts-before.InPkts, got.OutPkts-before.OutPkts, runs)
	}
}

// TestStatsTwoWorkers: two workers counting the same destination at once,
// while the counters are read (run with -race): the sums are exact once
// both are done, and a configuration change in the middle (a new
// destination: the blocks grow) loses nothing.
func TestStatsTwoWorkers(t *testing.T) {
	r := newRig(t, oneDestRules)
	const perWorker = 64 * 50
	var wg sync.WaitGroup
	stop := make(chan struct{})
	svc := r.env.Snap.Load().Services()[0]
	go func() { // a reader, as the estimator and the listing
		for {
			select {
			case <-stop:
				return
			default:
				_ = svc.Stats.Load()
			}
		}
	}()
	for i := range 2 {
		port := uint16(41000 + i)
		syn := tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", port, 80, true, false)
		data := tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", port, 80, false, true)
		w := dataplane.NewWorker(discardIO{}, r.env)
		buf := make([]byte, 64+len(syn))
		copy(buf[64:], syn)
		w.ProcessBatch([]dataplane.Frame{{Buf: buf, Off: 64, Len: len(syn), Ifindex: 1}})
		wg.Add(1)
		go func() {
			defer wg.Done()
			bufs := make([][]byte, 64)
			frames := make([]dataplane.Frame, 64)
			for j := range bufs {
				bufs[j] = make([]byte, 64+len(data))
			}
			for range perWorker / 64 {
				for j := range frames {
					copy(bufs[j][64:], data)
					frames[j] = dataplane.Frame{Buf: bufs[j], Off: 64, Len: len(data), Ifindex: 1}
				}
				w.ProcessBatch(frames)
			}
		}()
	}
	// A destination added while they run: new slots, new snapshot.
	if code := control.Run(r.state, control.Env{Prog: "ipvsadm", Privileged: true},
		[]string{"-a", "-t", "10.0.1.100:80", "-r", "10.0.2.12:8080", "-m"}, nil, &bytes.Buffer{}, &bytes.Buffer{}); code != 0 {
		t.Fatal("adding a destination failed")
	}
	wg.Wait()
	close(stop)
	var d *sched.Dest
	for _, x := range svc.Sched.Dests() {
		if x.Addr().String() == "10.0.2.11" {
			d = x
		}
	}
	want := sched.Counts{Conns: 2, InPkts: 2 + 2*perWorker}
	got := d.Stats.Load()
	got.InBytes = 0
	if got != want {
		t.Fatalf("destination counted %+v, want %+v", got, want)
	}
	if s := svc.Stats.Load(); s.Conns != 2 || s.InPkts != want.InPkts {
		t.Fatalf("service counted %+v, want %+v", s, want)
	}
}

// oneDestRules is a service with one real server, so that every worker's
// packets count on the same destination and service.
const oneDestRules = `-A -t 10.0.1.100:80 -s rr
-a -t 10.0.1.100:80 -r 10.0.2.11:8080 -m
`

// BenchmarkWorkersOneDest runs one worker per goroutine (-cpu 1,2: one or
// two workers on the fake I/O), each forwarding the packets of its own
// established NAT connection to the same real server: nothing is shared
// between them but the destination's and the service's counters (and the
// read-only snapshot). ns/op is wall time per packet over all workers, so
// with no shared cache line it halves from -cpu 1 to -cpu 2 on two idle
// cores.
func BenchmarkWorkersOneDest(b *testing.B) {
	r := newRig(b, oneDestRules)
	var next atomic.Uint32
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		port := uint16(40000 + next.Add(1))
		syn := tcpFrame(b, macCli, macDir0, "10.0.1.2", "10.0.1.100", port, 80, true, false)
		data := tcpFrame(b, macCli, macDir0, "10.0.1.2", "10.0.1.100", port, 80, false, true)
		w := dataplane.NewWorker(discardIO{}, r.env)
		const batch = 64
		bufs := make([][]byte, batch)
		frames := make([]dataplane.Frame, batch)
		for i := range bufs {
			bufs[i] = make([]byte, 64+len(data))
		}
		copy(bufs[0][64:], syn)
		w.ProcessBatch([]dataplane.Frame{{Buf: bufs[0], Off: 64, Len: len(syn), Ifindex: 1}})
		for {
			for j := range frames {
				if !pb.Next() {
					w.ProcessBatch(frames[:j])
					return
				}
				copy(bufs[j][64:], data)
				frames[j] = dataplane.Frame{Buf: bufs[j], Off: 64, Len: len(data), Ifindex: 1}
			}
			w.ProcessBatch(frames)
		}
	})
}
