package metrics

import (
	"net/netip"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/ipvsadm"
)

var (
	descConnLive    = prometheus.NewDesc("uvs_conntrack_entries", "Entries in the connection table (connections and persistence templates).", nil, nil)
	descConnCap     = prometheus.NewDesc("uvs_conntrack_capacity", "Entries the connection table can hold (--conns).", nil, nil)
	descConnByState = prometheus.NewDesc("uvs_conntrack_connections",
		"Connections by protocol and state as uvsadm -Lnc shows them; persistence templates have template=\"true\" (state NONE or ASSURED).",
		[]string{"proto", "state", "template"}, nil)
	descConnPressure = prometheus.NewDesc("uvs_conntrack_pressure_total",
		"Connection-table pressure events: reclaimed (timed-out entry freed by a create), evicted (half-open or datagram flow removed to make room), "+
			"full (create refused), drop_entry and drop_packet (the table-pressure defences).",
		[]string{"event"}, nil)
	descPortRange = prometheus.NewDesc("uvs_fullnat_local_ports", "FULLNAT local ports available per local address (--lport-min..--lport-max).", nil, nil)
	descPortsUsed = prometheus.NewDesc("uvs_fullnat_local_ports_in_use",
		"FULLNAT connections (so local ports) in use per local address.", []string{"local_address"}, nil)
	descPortConflicts = prometheus.NewDesc("uvs_fullnat_local_port_conflicts_total",
		"FULLNAT connections from a local address that found no free local port (uvsadm -G's CONFLICTS).", []string{"local_address"}, nil)
)

// connCollector reads the connection table: its occupancy and pressure
// counters, and, in one pass over its entries (as uvsadm -Lnc), the
// connections by state and the FULLNAT local ports in use. The pass takes
// each entry's lock as briefly as a listing does.
type connCollector struct {
	t     *conntrack.Table
	now   func() int64
	ports *dataplane.PortAllocator
	list  func() []ipvsadm.ServiceView // the local-address pools, for conflicts
}

func (c *connCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConnLive, descConnCap, descConnByState, descConnPressure, descPortRange, descPortsUsed, descPortConflicts} {
		ch <- d
	}
}

// stateKey is one uvs_conntrack_connections series.
type stateKey struct {
	proto    uint8
	template bool
	state    conntrack.State
}

func (c *connCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descConnLive, prometheus.GaugeValue, float64(c.t.Len()))
	ch <- prometheus.MustNewConstMetric(descConnCap, prometheus.GaugeValue, float64(c.t.Capacity()))
	st := c.t.Stats()
	for _, e := range []struct {
		name string
		v    uint64
	}{{"reclaimed", st.Reclaimed}, {"evicted", st.Evicted}, {"full", st.Full}, {"drop_entry", st.DropEntry}, {"drop_packet", st.DropPacket}} {
		ch <- prometheus.MustNewConstMetric(descConnPressure, prometheus.CounterValue, float64(e.v), e.name)
	}

	var now int64
	if c.now != nil {
		now = c.now()
	}
	states := map[stateKey]int{}
	used := map[netip.Addr]int{}
	c.t.Range(now, func(l *conntrack.Listing) bool {
		states[stateKey{l.Proto, l.Template, l.State}]++
		if l.Local.IsValid() {
			used[l.Local.Addr().Unmap()]++
		}
		return true
	})
	// Several states can print alike (a template is NONE unless
	// ASSURED): one series per label set.
	byName := map[[3]string]int{}
	for k, n := range states {
		tmpl := "false"
		if k.template {
			tmpl = "true"
		}
		byName[[3]string{conntrack.ProtoName(k.proto), conntrack.StateName(k.proto, k.template, k.state), tmpl}] += n
	}
	for k, n := range byName {
		ch <- prometheus.MustNewConstMetric(descConnByState, prometheus.GaugeValue, float64(n), k[:]...)
	}
	if c.ports == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(descPortRange, prometheus.GaugeValue, float64(int(c.ports.Max)-int(c.ports.Min)+1))
	// The local addresses: those of the services' pools and those in use
	// (a pool-less service's route source).
	addrs := make([]netip.Addr, 0, len(used))
	for a := range used {
		addrs = append(addrs, a)
	}
	if c.list != nil {
		for _, s := range c.list() {
			for _, a := range s.Service.LocalAddrs {
				a = a.Unmap()
				if _, ok := used[a]; !ok {
					used[a] = 0
					addrs = append(addrs, a)
				}
			}
		}
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	for _, a := range addrs {
		s := a.String()
		ch <- prometheus.MustNewConstMetric(descPortsUsed, prometheus.GaugeValue, float64(used[a]), s)
		ch <- prometheus.MustNewConstMetric(descPortConflicts, prometheus.CounterValue, float64(c.ports.Conflicts(a)), s)
	}
}
