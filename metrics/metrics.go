// Package metrics is uvsd's Prometheus endpoint: /metrics, /healthz and
// /readyz.
//
// Every figure is read at scrape time from where the daemon already keeps
// it — the listing uvsadm -Ln --stats prints, the workers' counters, the
// connection table, the packet sockets, the checkers, the VRRP follower and
// the sync daemons — by custom collectors: nothing is counted for the
// endpoint on the packet path.
//
// The node_ipvs_* series are node_exporter's ipvs collector's names, types
// and labels (collector/ipvs_linux.go), so that a dashboard built on it
// works unchanged; uvs's own series are under uvs_.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/ipvsadm"
)

// Sources are the readers the collectors call at scrape time. A nil
// reader leaves its series out; every reader must be safe to call from the
// HTTP server's goroutines while the daemon runs.
type Sources struct {
	// Services is the listing uvsadm -Ln --stats prints (control.Views).
	Services func() []ipvsadm.ServiceView
	// Workers returns the packet workers, running and stopped ones alike
	// (a stopped worker's counts still happened), each at a stable
	// position while it runs; their Counters and BatchStats are read.
	Workers func() []*dataplane.Worker
	// Conns is the connection table; ConnsNow its clock (nanoseconds
	// since the data plane's epoch).
	Conns    *conntrack.Table
	ConnsNow func() int64
	// Ports is the FULLNAT local-port allocator (its range and the
	// conflicts per local address).
	Ports *dataplane.PortAllocator
	// IO returns the packet-I/O counters summed over the open sockets.
	IO func() []IOCounter
	// Checkers are the health checkers' states (uvsadm --list-checkers).
	Checkers func() []ipvsadm.CheckerView
	// VRRP are the followed VRRP instances.
	VRRP func() []VRRPInstance
	// Sync are the running sync daemons' counters.
	Sync func() []SyncDaemon
	// FastPath returns the XDP fast path's figures; ok false while
	// there is none.
	FastPath func() (s dataplane.FastStats, ok bool)
	// Healthy and Ready answer /healthz and /readyz: nil error is 200,
	// an error 503 with its message. Nil readers answer 200.
	Healthy, Ready func() error
}

// IOCounter is one packet-I/O counter of a backend.
type IOCounter struct {
	Backend string // "afpacket", "afxdp"
	Name    string // "ring-drops", "tx-errors", ...
	Value   uint64
}

// VRRPInstance is a followed vrrp_instance: MASTER while every VIP of it
// is configured on its device (keepalived --vrrp put it there).
type VRRPInstance struct {
	Name   string
	Master bool
	VIPs   []VRRPVIP
}

// VRRPVIP is one followed virtual_ipaddress and whether it is held (on its
// device: served by this node).
type VRRPVIP struct {
	Addr   string
	Device string
	Held   bool
}

// SyncDaemon is one running sync daemon and its counters.
type SyncDaemon struct {
	State    string // "master" or "backup"
	Ifname   string
	SyncID   uint8
	Counters []SyncCounter
}

// SyncCounter is one counter of a sync daemon; Reason is set for the
// backup's rejections by reason.
type SyncCounter struct {
	Name   string
	Reason string
	Value  uint64
}

// NewRegistry returns a registry holding the collectors of src, the
// build information and the Go runtime's and process's collectors.
func NewRegistry(src Sources) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(Collectors(src)...)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Collectors returns the collectors of src: those whose reader is set, and
// the build information.
func Collectors(src Sources) []prometheus.Collector {
	cs := []prometheus.Collector{buildInfo()}
	if src.Services != nil {
		cs = append(cs, &ipvsCollector{list: src.Services})
	}
	if src.Workers != nil {
		cs = append(cs, &workerCollector{workers: src.Workers})
	}
	if src.Conns != nil {
		cs = append(cs, &connCollector{t: src.Conns, now: src.ConnsNow, ports: src.Ports, list: src.Services})
	}
	if src.IO != nil {
		cs = append(cs, &ioCollector{io: src.IO})
	}
	if src.Checkers != nil {
		cs = append(cs, &checkerCollector{list: src.Checkers})
	}
	if src.VRRP != nil {
		cs = append(cs, &vrrpCollector{list: src.VRRP})
	}
	if src.Sync != nil {
		cs = append(cs, &syncCollector{list: src.Sync})
	}
	if src.FastPath != nil {
		cs = append(cs, &fastCollector{stats: src.FastPath})
	}
	return cs
}

// Handler serves /metrics from reg and /healthz and /readyz from src.
func Handler(reg *prometheus.Registry, src Sources) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		// A collector's error fails the scrape, as node_exporter's
		// default; a read error is a bug here, never a partial answer.
		ErrorHandling: promhttp.HTTPErrorOnError,
		Registry:      reg,
	}))
	mux.HandleFunc("/healthz", probe(src.Healthy))
	mux.HandleFunc("/readyz", probe(src.Ready))
	return mux
}

func probe(check func() error) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if check != nil {
			if err := check(); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintln(w, err)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	}
}

// Listen opens the --metrics address: host:port (an empty host is every
// address). The error names the address.
func Listen(addr string) (net.Listener, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("--metrics %q: want HOST:PORT: %w", addr, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics %q: %w", addr, err)
	}
	return ln, nil
}

// Serve serves h on ln until ctx is done, then shuts the server down.
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	err := srv.Serve(ln)
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// buildInfo is uvs_build_info{version, goversion} 1.
func buildInfo() prometheus.Collector {
	version := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		version = bi.Main.Version
	}
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "uvs_build_info",
		Help:        "Always 1; the labels tell which uvs build runs and with which Go.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	}, func() float64 { return 1 })
}
