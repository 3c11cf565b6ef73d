package metrics_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/uvs-lb/uvs/control"
	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/ipvsadm"
	"github.com/uvs-lb/uvs/metrics"
)

// scrapeRig is a director of 100 services with 10 real servers each, two
// workers, and connections in the table.
type scrapeRig struct {
	rigs []*rig
	src  metrics.Sources
	reg  *prometheus.Registry
}

func newScrapeRig(b testing.TB, services, dests, conns int) *scrapeRig {
	var sb strings.Builder
	for s := range services {
		fmt.Fprintf(&sb, "-A -t 10.0.1.100:%d -s rr\n", s+1)
		for d := range dests {
			// Two resolved next hops, a port per real server.
			fmt.Fprintf(&sb, "-a -t 10.0.1.100:%d -r 10.0.2.%d:%d -m\n", s+1, 11+d%2, 8000+d)
		}
	}
	rules := sb.String()
	r0 := newRig(b, rules)
	// A second worker on the same state and table.
	r1 := &rig{io: dataplane.NewFakeIO(64, 0), state: r0.state, conns: r0.conns, ports: r0.ports, clock: r0.clock}
	r1.w = dataplane.NewWorker(r1.io, r0.env)
	sr := &scrapeRig{rigs: []*rig{r0, r1}}
	frames := make([][]byte, 0, 64)
	for i := range conns {
		frames = append(frames, synTo(b, uint16(1024+i%60000), uint16(1+i%services), i/60000))
		if len(frames) == cap(frames) || i == conns-1 {
			sr.rigs[i%2].run(b, frames...)
			frames = frames[:0]
		}
	}
	sr.src = metrics.Sources{
		Services: func() []ipvsadm.ServiceView { return control.Views(r0.state, nil) },
		Workers: func() []*dataplane.Worker {
			return []*dataplane.Worker{r0.w, r1.w}
		},
		Conns:    r0.conns,
		ConnsNow: func() int64 { return 0 },
		Ports:    r0.ports,
	}
	sr.reg = metrics.NewRegistry(sr.src)
	return sr
}

// BenchmarkScrape is one scrape of /metrics (collect, encode, write) of
// 100 services × 10 real servers, two workers and 10000 connections:
// the cost is the scraper's goroutine's, and the ns and allocs per scrape
// are reported.
func BenchmarkScrape(b *testing.B) {
	sr := newScrapeRig(b, 100, 10, 10000)
	if got := sr.rigs[0].conns.Len(); got < 9000 {
		b.Fatalf("connection table holds %d entries, want about 10000", got)
	}
	h := metrics.Handler(sr.reg, sr.src)
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	b.Run("http", func(b *testing.B) {
		b.ReportAllocs()
		var size int
		cpu0 := cpuTime(false)
		for b.Loop() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("/metrics: %d %s", w.Code, w.Body.String())
			}
			size = w.Body.Len()
		}
		b.ReportMetric(float64(size), "bytes/scrape")
		reportCPU(b, cpu0, false, 1)
	})
	b.Run("gather", func(b *testing.B) {
		b.ReportAllocs()
		cpu0 := cpuTime(false)
		for b.Loop() {
			if _, err := sr.reg.Gather(); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, cpu0, false, 1)
	})
}

// scrapeEvery is BenchmarkWorkerWhileScraping's scrape interval: ten
// times the e2e test's 1 s, 150 times Prometheus's default 15 s.
const scrapeEvery = 100 * time.Millisecond

// BenchmarkWorkerWhileScraping is a worker's cost per packet of known
// connections with nobody scraping ("idle") and with a goroutine scraping
// /metrics every scrapeEvery ("scraping": every scrape reads the
// counters, the listing and ranges over the connection table), on a rig
// of 100 services × 10 real servers. The data plane does no work for the
// endpoint; what differs is the readers' cache and CPU contention. (The
// allocations reported are the process's: the fake I/O's copies, and the
// scraper's in "scraping".)
func BenchmarkWorkerWhileScraping(b *testing.B) {
	for _, scraping := range []bool{false, true} {
		name := "idle"
		if scraping {
			name = "scraping"
		}
		b.Run(name, func(b *testing.B) {
			sr := newScrapeRig(b, 100, 10, 1000)
			r := sr.rigs[0]
			// 64 established flows: SYN first, then the same frames
			// (ACK-less SYNs count as packets of their connection).
			frames := make([][]byte, 64)
			for i := range frames {
				frames[i] = synTo(b, uint16(50000+i), uint16(1+i%100), 0)
			}
			r.run(b, frames...)
			batch := make([]dataplane.Frame, len(frames))
			bufs := make([][]byte, len(frames))
			for i := range bufs {
				bufs[i] = make([]byte, 64+2048)
			}
			h := metrics.Handler(sr.reg, sr.src)
			stop := make(chan struct{})
			var scrapes atomic.Int64
			var wg sync.WaitGroup
			if scraping {
				wg.Add(1)
				go func() {
					defer wg.Done()
					req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
					tick := time.NewTicker(scrapeEvery)
					defer tick.Stop()
					for {
						select {
						case <-stop:
							return
						case <-tick.C:
						}
						h.ServeHTTP(httptest.NewRecorder(), req)
						scrapes.Add(1)
					}
				}()
			}
			b.ReportAllocs()
			// The worker's own thread's CPU time: the scraper's runs on
			// another thread.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cpu0 := cpuTime(true)
			for b.Loop() {
				for i, f := range frames {
					// The worker rewrites in place: a fresh copy each round.
					batch[i] = dataplane.Frame{Buf: bufs[i], Off: 64, Len: copy(bufs[i][64:], f), Ifindex: 1}
				}
				r.w.ProcessBatch(batch)
				r.io.Sent()
			}
			reportCPU(b, cpu0, true, len(frames))
			b.StopTimer()
			close(stop)
			wg.Wait()
			if scraping {
				b.ReportMetric(float64(scrapes.Load()), "scrapes")
			}
		})
	}
}

// reportCPU reports the CPU time per op (per element, with per > 1) since
// cpu0: process time, or the benchmark thread's with thread.
func reportCPU(b *testing.B, cpu0 int64, thread bool, per int) {
	cpu1 := cpuTime(thread)
	if cpu0 < 0 || cpu1 < 0 || b.N == 0 {
		return
	}
	unit := "cpu-ns/op"
	if per > 1 {
		unit = "cpu-ns/packet"
	}
	b.ReportMetric(float64(cpu1-cpu0)/float64(b.N*per), unit)
}
