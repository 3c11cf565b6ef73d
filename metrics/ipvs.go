package metrics

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/uvs-lb/uvs/ipvsadm"
	"github.com/uvs-lb/uvs/spec"
)

// node_exporter's ipvs collector (collector/ipvs_linux.go): the totals
// of /proc/net/ip_vs_stats and, per real server, three columns of
// /proc/net/ip_vs, with its names, types, help and labels.
var (
	ipvsBackendLabels = []string{"local_address", "local_port", "remote_address", "remote_port", "proto", "local_mark"}

	descConns    = prometheus.NewDesc("node_ipvs_connections_total", "The total number of connections made.", nil, nil)
	descInPkts   = prometheus.NewDesc("node_ipvs_incoming_packets_total", "The total number of incoming packets.", nil, nil)
	descOutPkts  = prometheus.NewDesc("node_ipvs_outgoing_packets_total", "The total number of outgoing packets.", nil, nil)
	descInBytes  = prometheus.NewDesc("node_ipvs_incoming_bytes_total", "The total amount of incoming data.", nil, nil)
	descOutBytes = prometheus.NewDesc("node_ipvs_outgoing_bytes_total", "The total amount of outgoing data.", nil, nil)
	descActive   = prometheus.NewDesc("node_ipvs_backend_connections_active", "The current active connections by local and remote address.", ipvsBackendLabels, nil)
	descInactive = prometheus.NewDesc("node_ipvs_backend_connections_inactive", "The current inactive connections by local and remote address.", ipvsBackendLabels, nil)
	descWeight   = prometheus.NewDesc("node_ipvs_backend_weight", "The current backend weight by local and remote address.", ipvsBackendLabels, nil)
)

// ipvsCollector serves the node_ipvs_* series from the -Ln --stats
// listing.
type ipvsCollector struct {
	list func() []ipvsadm.ServiceView
}

func (c *ipvsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConns, descInPkts, descOutPkts, descInBytes, descOutBytes, descActive, descInactive, descWeight} {
		ch <- d
	}
}

// backendKey is one real server's label values, in ipvsBackendLabels
// order.
type backendKey [6]string

// backendValues are the three per-real-server gauges.
type backendValues struct{ active, inactive, weight float64 }

func (c *ipvsCollector) Collect(ch chan<- prometheus.Metric) {
	svcs := c.list()
	// The totals are /proc/net/ip_vs_stats's: the kernel counts each
	// packet in its destination, its service and ipvs->tot_stats
	// (ip_vs_in_stats, ip_vs_out_stats), so the total is the sum of the
	// services' counters. Unlike tot_stats it forgets a deleted
	// service's traffic (a counter reset to Prometheus).
	var tot ipvsadm.StatsView
	for i := range svcs {
		s := &svcs[i].Stats
		tot.Conns += s.Conns
		tot.InPkts += s.InPkts
		tot.OutPkts += s.OutPkts
		tot.InBytes += s.InBytes
		tot.OutBytes += s.OutBytes
	}
	ch <- prometheus.MustNewConstMetric(descConns, prometheus.CounterValue, float64(tot.Conns))
	ch <- prometheus.MustNewConstMetric(descInPkts, prometheus.CounterValue, float64(tot.InPkts))
	ch <- prometheus.MustNewConstMetric(descOutPkts, prometheus.CounterValue, float64(tot.OutPkts))
	ch <- prometheus.MustNewConstMetric(descInBytes, prometheus.CounterValue, float64(tot.InBytes))
	ch <- prometheus.MustNewConstMetric(descOutBytes, prometheus.CounterValue, float64(tot.OutBytes))

	// node_exporter sums the series whose labels coincide (two fwmark
	// services of one mark, IPv4 and IPv6, sending to one address); so
	// does this, which also keeps every series unique.
	order := make([]backendKey, 0, len(svcs)*4)
	vals := make(map[backendKey]*backendValues, len(svcs)*4)
	for i := range svcs {
		local, lport, mark, proto := serviceLabels(svcs[i].Service.Key)
		for j := range svcs[i].Dests {
			d := &svcs[i].Dests[j]
			k := backendKey{local, lport, d.Dest.Addr.String(), strconv.Itoa(int(d.Dest.Port)), proto, mark}
			v := vals[k]
			if v == nil {
				v = &backendValues{}
				vals[k] = v
				order = append(order, k)
			}
			v.active += float64(d.ActiveConns)
			v.inactive += float64(d.InactConns)
			v.weight += float64(d.Dest.Weight)
		}
	}
	for _, k := range order {
		v := vals[k]
		ch <- prometheus.MustNewConstMetric(descActive, prometheus.GaugeValue, v.active, k[:]...)
		ch <- prometheus.MustNewConstMetric(descInactive, prometheus.GaugeValue, v.inactive, k[:]...)
		ch <- prometheus.MustNewConstMetric(descWeight, prometheus.GaugeValue, v.weight, k[:]...)
	}
}

// serviceLabels returns a service's local_address, local_port, local_mark
// and proto as node_exporter's procfs parser reads them from
// /proc/net/ip_vs (ip_vs_info_seq_show): an address service is "TCP" (or
// "UDP", "SCTP") with its address and decimal port and an empty mark; a
// fwmark service is "FWM" with an empty address, port "0" and the mark as
// the file prints it, eight upper-case hex digits ("FWM  %08X").
func serviceLabels(k spec.ServiceKey) (local, port, mark, proto string) {
	if k.IsFWMark() {
		return "", "0", fmt.Sprintf("%08X", k.FWMark), "FWM"
	}
	return k.Addr.String(), strconv.Itoa(int(k.Port)), "", k.Proto.String()
}
