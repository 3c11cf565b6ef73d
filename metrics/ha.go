package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/uvs-lb/uvs/ipvsadm"
)

var (
	descIO = prometheus.NewDesc("uvs_packet_io_total",
		"Packet-I/O counters summed over the open sockets, by backend and counter: for afpacket the kernel's packets and ring-drops "+
			"(PACKET_STATISTICS), ring-frozen, read, sent, truncated, tx-busy, tx-dropped, tx-errors; for afxdp read, sent, tx-busy, tx-ring-full, "+
			"tx-fallback, tx-errors and the kernel's rx-dropped, rx-ring-full, fill-ring-empty (XDP_STATISTICS).",
		[]string{"backend", "counter"}, nil)

	checkerLabels     = []string{"virtual_server", "real_server", "type", "target"}
	descCheckerUp     = prometheus.NewDesc("uvs_checker_up", "1 while the health checker finds its real server up, else 0.", checkerLabels, nil)
	descCheckerRetry  = prometheus.NewDesc("uvs_checker_retries_left", "Failures the checker still takes before it decides down (0 while down).", checkerLabels, nil)
	descCheckerLastAt = prometheus.NewDesc("uvs_checker_last_check_timestamp_seconds", "When the checker last probed (Unix time); absent before its first probe.", checkerLabels, nil)
	descCheckerResult = prometheus.NewDesc("uvs_checker_last_result", "Always 1; result is the checker's last probe result (or verdict) message, as uvsadm --list-checkers's LAST.",
		append(append([]string{}, checkerLabels...), "result"), nil)

	descVRRPMaster = prometheus.NewDesc("uvs_vrrp_instance_master", "1 while the followed VRRP instance is MASTER (all its VIPs on their devices), else 0 (BACKUP).", []string{"instance"}, nil)
	descVRRPVIP    = prometheus.NewDesc("uvs_vrrp_vip_held", "1 while the followed VIP is configured on its device, so served by this node, else 0.", []string{"instance", "vip", "device"}, nil)

	descSyncRunning = prometheus.NewDesc("uvs_sync_daemon_running", "1 for each running connection-sync daemon (state master or backup).", []string{"state", "interface", "syncid"}, nil)
	descSyncMsgs    = prometheus.NewDesc("uvs_sync_daemon_events_total",
		"Connection-sync daemon counters by state and counter: the master's messages, entries, bytes sent, send-errors, skipped, discarded, "+
			"ring-drops; the backup's messages received, applied, wrong-syncid, read-errors and rejected (by reason).",
		[]string{"state", "counter", "reason"}, nil)
)

type ioCollector struct{ io func() []IOCounter }

func (c *ioCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descIO }

func (c *ioCollector) Collect(ch chan<- prometheus.Metric) {
	for _, x := range c.io() {
		ch <- prometheus.MustNewConstMetric(descIO, prometheus.CounterValue, float64(x.Value), x.Backend, x.Name)
	}
}

type checkerCollector struct {
	list func() []ipvsadm.CheckerView
}

func (c *checkerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descCheckerUp
	ch <- descCheckerRetry
	ch <- descCheckerLastAt
	ch <- descCheckerResult
}

func (c *checkerCollector) Collect(ch chan<- prometheus.Metric) {
	// Two checkers of a real server can be alike (two TCP_CHECKs of one
	// target); the first is reported.
	seen := map[[4]string]bool{}
	for _, v := range c.list() {
		k := [4]string{v.VS, v.RS, v.Type, v.Target}
		if seen[k] {
			continue
		}
		seen[k] = true
		up := 0.0
		if v.Up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descCheckerUp, prometheus.GaugeValue, up, k[:]...)
		ch <- prometheus.MustNewConstMetric(descCheckerRetry, prometheus.GaugeValue, float64(v.RetriesLeft), k[:]...)
		if !v.LastAt.IsZero() {
			ch <- prometheus.MustNewConstMetric(descCheckerLastAt, prometheus.GaugeValue, float64(v.LastAt.UnixNano())/1e9, k[:]...)
			ch <- prometheus.MustNewConstMetric(descCheckerResult, prometheus.GaugeValue, 1, v.VS, v.RS, v.Type, v.Target, v.LastMsg)
		}
	}
}

type vrrpCollector struct{ list func() []VRRPInstance }

func (c *vrrpCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descVRRPMaster
	ch <- descVRRPVIP
}

func (c *vrrpCollector) Collect(ch chan<- prometheus.Metric) {
	for _, in := range c.list() {
		ch <- prometheus.MustNewConstMetric(descVRRPMaster, prometheus.GaugeValue, b2f(in.Master), in.Name)
		for _, v := range in.VIPs {
			ch <- prometheus.MustNewConstMetric(descVRRPVIP, prometheus.GaugeValue, b2f(v.Held), in.Name, v.Addr, v.Device)
		}
	}
}

type syncCollector struct{ list func() []SyncDaemon }

func (c *syncCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descSyncRunning
	ch <- descSyncMsgs
}

func (c *syncCollector) Collect(ch chan<- prometheus.Metric) {
	for _, d := range c.list() {
		ch <- prometheus.MustNewConstMetric(descSyncRunning, prometheus.GaugeValue, 1, d.State, d.Ifname, strconv.Itoa(int(d.SyncID)))
		for _, x := range d.Counters {
			ch <- prometheus.MustNewConstMetric(descSyncMsgs, prometheus.CounterValue, float64(x.Value), d.State, x.Name, x.Reason)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
