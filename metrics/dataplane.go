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
	descWorkers = prometheus.NewDesc("uvs_workers", "Packet workers, running and stopped ones whose counters are kept.", nil, nil)
)

// workerCollector sums the workers' counters at scrape time: each worker
// counts into its own Counters (no atomic shared with another worker on
// the packet path); the collector only loads them.
type workerCollector struct {
	workers func() []*dataplane.Counters
}

func (c *workerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descEvents
	ch <- descMalformed
	ch <- descWorkerPkts
	ch <- descWorkers
}

func (c *workerCollector) Collect(ch chan<- prometheus.Metric) {
	ws := c.workers()
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
}
