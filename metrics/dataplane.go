package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/header"
)

var (
	descEvents = prometheus.NewDesc("uvs_dataplane_events_total",
		"Packets and events of the data plane by counter, summed over the packet workers: drops are typed reasons "+
			"(no-destination, conn-table-full, neighbour-queue-full, ...), the rest what happened to packets (rx, tx, new-conn, ...).",
		[]string{"event"}, nil)
	descMalformed = prometheus.NewDesc("uvs_dataplane_malformed_total",
		"Frames addressed to the director that failed parsing, by reason (their sum is uvs_dataplane_events_total{event=\"malformed\"}).",
		[]string{"reason"}, nil)
	descWorkerPkts = prometheus.NewDesc("uvs_worker_packets_total",
		"Frames a packet worker received (direction=\"rx\") and sent (\"tx\"); worker is its position in the daemon's list.",
		[]string{"worker", "direction"}, nil)
	descWorkers    = prometheus.NewDesc("uvs_workers", "Packet workers, running and stopped ones whose counters are kept.", nil, nil)
	descNeighDepth = prometheus.NewDesc("uvs_neighbour_queue_depth",
		"Frames waiting in a packet worker's neighbour queue for their next hop to resolve, at the end of its last batch.",
		[]string{"worker"}, nil)
	descBatches = prometheus.NewDesc("uvs_worker_batches_total",
		"Batches of frames a packet worker read (at most 64 frames each); uvs_worker_packets_total{direction=\"rx\"} / this is frames per batch.",
		[]string{"worker"}, nil)
	descBatchFrames = prometheus.NewDesc("uvs_worker_batch_frames",
		"Frames per batch a packet worker read: batches by size (buckets 1, 4, 16, 64); the sum is the frames received.",
		[]string{"worker"}, nil)
)

// workerCollector sums the workers' counters at scrape time: each worker
// counts into its own Counters and BatchStats (no atomic shared with
// another worker on the packet path); the collector only loads them.
type workerCollector struct {
	workers func() []*dataplane.Worker
}

func (c *workerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descEvents
	ch <- descMalformed
	ch <- descWorkerPkts
	ch <- descWorkers
	ch <- descNeighDepth
	ch <- descBatches
	ch <- descBatchFrames
}

func (c *workerCollector) Collect(ch chan<- prometheus.Metric) {
	wks := c.workers()
	ws := make([]*dataplane.Counters, len(wks))
	for i, w := range wks {
		ws[i] = &w.Counters
	}
	ch <- prometheus.MustNewConstMetric(descWorkers, prometheus.GaugeValue, float64(len(ws)))
	for k := dataplane.Counter(0); k < dataplane.NumCounters; k++ {
		var sum uint64
		for _, w := range ws {
			sum += w.Load(k)
		}
		ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(sum), k.String())
	}
	// Reason 0 is a successful parse.
	for r := header.Reason(1); r < header.NumReasons; r++ {
		var sum uint64
		for _, w := range ws {
			sum += w.LoadMalformed(r)
		}
		ch <- prometheus.MustNewConstMetric(descMalformed, prometheus.CounterValue, float64(sum), r.String())
	}
	for i, w := range ws {
		id := strconv.Itoa(i)
		ch <- prometheus.MustNewConstMetric(descWorkerPkts, prometheus.CounterValue, float64(w.Load(dataplane.CntRx)), id, "rx")
		ch <- prometheus.MustNewConstMetric(descWorkerPkts, prometheus.CounterValue, float64(w.Load(dataplane.CntTx)), id, "tx")
	}
	bounds := dataplane.BatchBucketBounds()
	for i, w := range wks {
		id := strconv.Itoa(i)
		bs := w.BatchStats()
		ch <- prometheus.MustNewConstMetric(descNeighDepth, prometheus.GaugeValue, float64(bs.NeighQueueDepth()), id)
		// The buckets first, then rx: the worker adds to rx before it
		// counts the batch, so the sum covers every batch counted.
		sizes := bs.BatchSizes()
		rx := w.Counters.Load(dataplane.CntRx)
		var n uint64
		cum := make(map[float64]uint64, len(sizes))
		for b, k := range sizes {
			n += k
			cum[float64(bounds[b])] = n
		}
		ch <- prometheus.MustNewConstMetric(descBatches, prometheus.CounterValue, float64(n), id)
		ch <- prometheus.MustNewConstHistogram(descBatchFrames, n, float64(rx), cum, id)
	}
}

var (
	descFastFlows = prometheus.NewDesc("uvs_fastpath_flows",
		"Flows (directions of established IPv4 NAT, FULLNAT and DR connections) the XDP program forwards itself, without a packet worker.", nil, nil)
	descFastPackets = prometheus.NewDesc("uvs_fastpath_packets_total",
		"Packets the XDP fast path forwarded, as read back about once a second (also counted in the services' and real servers' statistics).", nil, nil)
	descFastInstalls = prometheus.NewDesc("uvs_fastpath_installs_total",
		"Flows handed to the XDP fast path (again every few seconds while they last, and after every configuration change).", nil, nil)
	descFastInstallErrors = prometheus.NewDesc("uvs_fastpath_install_errors_total",
		"Flows the XDP fast path could not take (its map full): their packets stay with the packet workers.", nil, nil)
)

// fastCollector reads the fast path's figures at scrape time.
type fastCollector struct {
	stats func() (dataplane.FastStats, bool)
}

func (c *fastCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descFastFlows
	ch <- descFastPackets
	ch <- descFastInstalls
	ch <- descFastInstallErrors
}

func (c *fastCollector) Collect(ch chan<- prometheus.Metric) {
	s, ok := c.stats()
	if !ok {
		return
	}
	ch <- prometheus.MustNewConstMetric(descFastFlows, prometheus.GaugeValue, float64(s.Flows))
	ch <- prometheus.MustNewConstMetric(descFastPackets, prometheus.CounterValue, float64(s.Packets))
	ch <- prometheus.MustNewConstMetric(descFastInstalls, prometheus.CounterValue, float64(s.Installs))
	ch <- prometheus.MustNewConstMetric(descFastInstallErrors, prometheus.CounterValue, float64(s.PutErrors))
}
