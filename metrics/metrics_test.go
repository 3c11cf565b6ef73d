package metrics_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/control"
	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/ipvsadm"
	"github.com/uvs-lb/uvs/metrics"
	"github.com/uvs-lb/uvs/snapshot"
)

var (
	macCli  = [6]byte{2, 0, 0, 0, 1, 2}
	macDir0 = [6]byte{2, 0, 0, 0, 1, 1}
	macDir1 = [6]byte{2, 0, 0, 0, 2, 1}
	macRS1  = [6]byte{2, 0, 0, 0, 2, 11}
	macRS2  = [6]byte{2, 0, 0, 0, 2, 12}
)

type hops map[netip.Addr]dataplane.Hop

func (h hops) Lookup(a netip.Addr) (dataplane.Hop, bool) { x, ok := h[a]; return x, ok }

// rig is one packet worker of a NAT director (fake I/O) with its control
// plane, as uvsd assembles them.
type rig struct {
	io    *dataplane.FakeIO
	w     *dataplane.Worker
	state *control.State
	conns *conntrack.Table
	ports *dataplane.PortAllocator
	env   *dataplane.Env
	clock time.Time
}

const rules = "-A -t 10.0.1.100:80 -s rr\n" +
	"-a -t 10.0.1.100:80 -r 10.0.2.11:8080 -m -w 3\n" +
	"-a -t 10.0.1.100:80 -r 10.0.2.12:8080 -m\n" +
	"-A -f 268439552 -s rr\n" + // mark 0x10001000, node_exporter's fixture
	"-a -f 268439552 -r 10.0.2.11:3306 -g -w 100\n"

func newRig(t testing.TB, rules string) *rig {
	t.Helper()
	r := &rig{io: dataplane.NewFakeIO(64, 10*time.Millisecond), clock: time.Unix(1000, 0)}
	var snap atomic.Pointer[snapshot.Snapshot]
	var host atomic.Pointer[dataplane.Host]
	host.Store(&dataplane.Host{
		Ifaces: map[int]dataplane.Iface{
			1: {Index: 1, Name: "d0", MAC: macDir0, MTU: 1500},
			2: {Index: 2, Name: "d1", MAC: macDir1, MTU: 1500},
		},
		Local: map[[16]byte]bool{},
	})
	ct, err := conntrack.New(conntrack.Config{Capacity: 1 << 15})
	if err != nil {
		t.Fatal(err)
	}
	r.conns = ct
	r.state = control.New(control.Options{Publish: func(s *snapshot.Snapshot) { snap.Store(s) }})
	cmds, err := ipvsadm.ParseRules(strings.NewReader(rules), "rules")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.state.ApplyAll(cmds); err != nil {
		t.Fatal(err)
	}
	r.ports = dataplane.NewPortAllocator(0, 0)
	env := &dataplane.Env{Snap: &snap, Host: &host, Conns: ct,
		Hops: hops{
			netip.MustParseAddr("10.0.2.11"): {Ifindex: 2, SrcMAC: macDir1, DstMAC: macRS1, Src: netip.MustParseAddr("10.0.2.1"), MTU: 1500},
			netip.MustParseAddr("10.0.2.12"): {Ifindex: 2, SrcMAC: macDir1, DstMAC: macRS2, Src: netip.MustParseAddr("10.0.2.1"), MTU: 1500},
		},
		Now: func() time.Time { return r.clock }, Epoch: time.Unix(0, 0), Ports: r.ports}
	r.env = env
	r.w = dataplane.NewWorker(r.io, env)
	return r
}

// run pushes frames received on interface 1 through one batch.
func (r *rig) run(t testing.TB, frames ...[]byte) {
	t.Helper()
	buf := make([]dataplane.Frame, len(frames))
	for _, f := range frames {
		r.io.Inject(f, 1, false)
	}
	n, err := r.io.ReadBatch(buf)
	if err != nil || n != len(frames) {
		t.Fatalf("fake read %d frames, %v", n, err)
	}
	r.w.ProcessBatch(buf[:n])
	r.io.Sent()
}

func (r *rig) sources() metrics.Sources {
	return metrics.Sources{
		Services: func() []ipvsadm.ServiceView { return control.Views(r.state, nil) },
		Workers:  func() []*dataplane.Worker { return []*dataplane.Worker{r.w} },
		Conns:    r.conns,
		ConnsNow: func() int64 { return int64(r.clock.Sub(time.Unix(0, 0))) },
		Ports:    r.ports,
	}
}

func syn(t testing.TB, sport uint16) []byte {
	t.Helper()
	return synTo(t, sport, 80, 0)
}

// synTo is a TCP SYN from client 10.0.1.2+client:sport to the VIP's port
// dport.
func synTo(t testing.TB, sport, dport uint16, client int) []byte {
	t.Helper()
	src := net.IPv4(10, 0, 1, byte(2+client))
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(macCli[:]), DstMAC: net.HardwareAddr(macDir0[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: src, DstIP: net.ParseIP("10.0.1.100")}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), SYN: true, Seq: 1000, Window: 65535}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp, gopacket.Payload("hello")); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// listStats returns the Conns, InPkts, OutPkts, InBytes and OutBytes
// columns of the service line of uvsadm -Ln --stats, as printed (with K/M
// suffixes: the test keeps figures small).
func listStats(t *testing.T, st *control.State, vip string) []string {
	t.Helper()
	var out, errw bytes.Buffer
	if code := control.Run(st, control.Env{Prog: "ipvsadm", Privileged: true}, []string{"-Ln", "--stats"}, nil, &out, &errw); code != 0 {
		t.Fatalf("-Ln --stats: exit %d: %s", code, errw.String())
	}
	for _, line := range strings.Split(out.String(), "\n") {
		f := strings.Fields(line)
		if len(f) == 7 && f[1] == vip {
			return f[2:]
		}
	}
	t.Fatalf("-Ln --stats lists no %s:\n%s", vip, out.String())
	return nil
}

// listConns returns the ActiveConn and InActConn columns of uvsadm -Ln
// by real server ("ADDR:PORT", "FWM ADDR:PORT" under a fwmark service).
func listConns(t *testing.T, st *control.State) map[string][2]string {
	t.Helper()
	var out, errw bytes.Buffer
	if code := control.Run(st, control.Env{Prog: "ipvsadm", Privileged: true}, []string{"-Ln"}, nil, &out, &errw); code != 0 {
		t.Fatalf("-Ln: exit %d: %s", code, errw.String())
	}
	m := map[string][2]string{}
	prefix := ""
	for _, line := range strings.Split(out.String(), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && f[0] == "FWM":
			prefix = "FWM "
		case len(f) >= 2 && (f[0] == "TCP" || f[0] == "UDP"):
			prefix = ""
		case len(f) == 6 && f[0] == "->" && f[1] != "RemoteAddress:Port":
			m[prefix+f[1]] = [2]string{f[4], f[5]}
		}
	}
	if len(m) != 3 {
		t.Fatalf("-Ln: %d real servers, want 3:\n%s", len(m), out.String())
	}
	return m
}

// TestIPVSSeries: the node_ipvs_* series carry node_exporter's names, types,
// help and labels (fwmark: FWM, empty address, port 0, the mark as 8 hex
// digits), and the values -Ln --stats shows for the same traffic.
func TestIPVSSeries(t *testing.T) {
	r := newRig(t, rules)
	const n = 5
	frames := make([][]byte, n)
	for i := range frames {
		frames[i] = syn(t, uint16(40000+i))
	}
	r.run(t, frames...)

	cols := listStats(t, r.state, "10.0.1.100:80")
	if cols[0] != strconv.Itoa(n) || cols[1] != strconv.Itoa(n) {
		t.Fatalf("-Ln --stats: Conns %s InPkts %s, want %d each (the rig forwarded nothing?)", cols[0], cols[1], n)
	}
	conns := listConns(t, r.state)
	var inBytes int
	for _, f := range frames {
		inBytes += int(binary.BigEndian.Uint16(f[14+2:])) // IP total length, as ip_vs_in_stats counts skb->len
	}
	want := `# HELP node_ipvs_connections_total The total number of connections made.
# TYPE node_ipvs_connections_total counter
node_ipvs_connections_total ` + cols[0] + `
# HELP node_ipvs_incoming_packets_total The total number of incoming packets.
# TYPE node_ipvs_incoming_packets_total counter
node_ipvs_incoming_packets_total ` + cols[1] + `
# HELP node_ipvs_outgoing_packets_total The total number of outgoing packets.
# TYPE node_ipvs_outgoing_packets_total counter
node_ipvs_outgoing_packets_total ` + cols[2] + `
# HELP node_ipvs_incoming_bytes_total The total amount of incoming data.
# TYPE node_ipvs_incoming_bytes_total counter
node_ipvs_incoming_bytes_total ` + cols[3] + `
# HELP node_ipvs_outgoing_bytes_total The total amount of outgoing data.
# TYPE node_ipvs_outgoing_bytes_total counter
node_ipvs_outgoing_bytes_total ` + cols[4] + `
# HELP node_ipvs_backend_connections_active The current active connections by local and remote address.
# TYPE node_ipvs_backend_connections_active gauge
node_ipvs_backend_connections_active{local_address="",local_mark="10001000",local_port="0",proto="FWM",remote_address="10.0.2.11",remote_port="3306"} ` + conns["FWM 10.0.2.11:3306"][0] + `
node_ipvs_backend_connections_active{local_address="10.0.1.100",local_mark="",local_port="80",proto="TCP",remote_address="10.0.2.11",remote_port="8080"} ` + conns["10.0.2.11:8080"][0] + `
node_ipvs_backend_connections_active{local_address="10.0.1.100",local_mark="",local_port="80",proto="TCP",remote_address="10.0.2.12",remote_port="8080"} ` + conns["10.0.2.12:8080"][0] + `
# HELP node_ipvs_backend_connections_inactive The current inactive connections by local and remote address.
# TYPE node_ipvs_backend_connections_inactive gauge
node_ipvs_backend_connections_inactive{local_address="",local_mark="10001000",local_port="0",proto="FWM",remote_address="10.0.2.11",remote_port="3306"} ` + conns["FWM 10.0.2.11:3306"][1] + `
node_ipvs_backend_connections_inactive{local_address="10.0.1.100",local_mark="",local_port="80",proto="TCP",remote_address="10.0.2.11",remote_port="8080"} ` + conns["10.0.2.11:8080"][1] + `
node_ipvs_backend_connections_inactive{local_address="10.0.1.100",local_mark="",local_port="80",proto="TCP",remote_address="10.0.2.12",remote_port="8080"} ` + conns["10.0.2.12:8080"][1] + `
# HELP node_ipvs_backend_weight The current backend weight by local and remote address.
# TYPE node_ipvs_backend_weight gauge
node_ipvs_backend_weight{local_address="",local_mark="10001000",local_port="0",proto="FWM",remote_address="10.0.2.11",remote_port="3306"} 100
node_ipvs_backend_weight{local_address="10.0.1.100",local_mark="",local_port="80",proto="TCP",remote_address="10.0.2.11",remote_port="8080"} 3
node_ipvs_backend_weight{local_address="10.0.1.100",local_mark="",local_port="80",proto="TCP",remote_address="10.0.2.12",remote_port="8080"} 1
`
	if cols[3] != strconv.Itoa(inBytes) {
		t.Errorf("-Ln --stats InBytes %s, want %d", cols[3], inBytes)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(metrics.Collectors(metrics.Sources{Services: r.sources().Services})...)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"node_ipvs_connections_total", "node_ipvs_incoming_packets_total", "node_ipvs_outgoing_packets_total",
		"node_ipvs_incoming_bytes_total", "node_ipvs_outgoing_bytes_total",
		"node_ipvs_backend_connections_active", "node_ipvs_backend_connections_inactive", "node_ipvs_backend_weight"); err != nil {
		t.Error(err)
	}
}

// TestIPVSSumsAlikeSeries: two fwmark services of one mark (IPv4 and
// IPv6) sending to one real server give node_exporter one series, summed.
func TestIPVSSumsAlikeSeries(t *testing.T) {
	svcs := []ipvsadm.ServiceView{}
	for _, six := range []bool{false, true} {
		r := newRig(t, "-A -f 7 -s rr\n-a -f 7 -r 10.0.2.11:0 -g -w 2\n")
		v := control.Views(r.state, nil)
		v[0].Service.Key.IPv6 = six
		v[0].Dests[0].InactConns = 4
		svcs = append(svcs, v...)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(metrics.Collectors(metrics.Sources{Services: func() []ipvsadm.ServiceView { return svcs }})...)
	want := `# HELP node_ipvs_backend_weight The current backend weight by local and remote address.
# TYPE node_ipvs_backend_weight gauge
node_ipvs_backend_weight{local_address="",local_mark="00000007",local_port="0",proto="FWM",remote_address="10.0.2.11",remote_port="0"} 4
# HELP node_ipvs_backend_connections_inactive The current inactive connections by local and remote address.
# TYPE node_ipvs_backend_connections_inactive gauge
node_ipvs_backend_connections_inactive{local_address="",local_mark="00000007",local_port="0",proto="FWM",remote_address="10.0.2.11",remote_port="0"} 8
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "node_ipvs_backend_weight", "node_ipvs_backend_connections_inactive"); err != nil {
		t.Error(err)
	}
}

// TestWorkerSeries: uvs_dataplane_events_total has every counter of
// dataplane.Counters with the worker's value, uvs_dataplane_malformed_total
// every parse reason, and the connection table's figures are its own.
func TestWorkerSeries(t *testing.T) {
	r := newRig(t, rules)
	bad := syn(t, 40000)
	bad[14+9] = 99 // an IP protocol uvs does not carry: unsupported-protocol
	header.IPv4(bad[14:]).UpdateChecksum()
	r.run(t, syn(t, 40001), syn(t, 40002), bad)
	c := &r.w.Counters
	if c.Load(dataplane.CntRx) != 3 || c.Load(dataplane.CntNewConn) != 2 {
		t.Fatalf("worker counted rx %d new-conn %d, want 3 and 2", c.Load(dataplane.CntRx), c.Load(dataplane.CntNewConn))
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(metrics.Collectors(r.sources())...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			k := mf.GetName()
			for _, l := range m.Label {
				k += "," + l.GetName() + "=" + l.GetValue()
			}
			if m.Counter != nil {
				got[k] = m.Counter.GetValue()
			} else if m.Gauge != nil {
				got[k] = m.Gauge.GetValue()
			}
		}
	}
	for k := dataplane.Counter(0); k < dataplane.NumCounters; k++ {
		key := "uvs_dataplane_events_total,event=" + k.String()
		v, ok := got[key]
		if !ok || v != float64(c.Load(k)) {
			t.Errorf("%s = %v (present %v), want %d", key, v, ok, c.Load(k))
		}
	}
	var malformed float64
	for rsn := header.Reason(1); rsn < header.NumReasons; rsn++ {
		key := "uvs_dataplane_malformed_total,reason=" + rsn.String()
		v, ok := got[key]
		if !ok || v != float64(c.LoadMalformed(rsn)) {
			t.Errorf("%s = %v (present %v), want %d", key, v, ok, c.LoadMalformed(rsn))
		}
		malformed += v
	}
	if malformed == 0 || malformed != got["uvs_dataplane_events_total,event=malformed"] {
		t.Errorf("malformed by reason sums to %v, events{malformed} %v; want equal and the cut frame counted", malformed, got["uvs_dataplane_events_total,event=malformed"])
	}
	for key, want := range map[string]float64{
		"uvs_worker_packets_total,direction=rx,worker=0": 3,
		"uvs_worker_packets_total,direction=tx,worker=0": float64(c.Load(dataplane.CntTx)),
		"uvs_workers":            1,
		"uvs_conntrack_entries":  2,
		"uvs_conntrack_capacity": float64(r.conns.Capacity()),
		"uvs_conntrack_connections,proto=TCP,state=SYN_RECV,template=false":      2,
		"uvs_conntrack_pressure_total,event=evicted":                             0,
		"uvs_fullnat_local_ports":                                                float64(int(r.ports.Max) - int(r.ports.Min) + 1),
		`uvs_build_info,goversion=` + runtimeVersion() + `,version=` + version(): 1,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
		}
	}
}

// TestBatchSeries: uvs_neighbour_queue_depth is each worker's count of
// frames waiting for a next hop, uvs_worker_batches_total its batches and
// uvs_worker_batch_frames their sizes (cumulative buckets, the frames
// received as sum).
func TestBatchSeries(t *testing.T) {
	r := newRig(t, rules)
	// Worker 1: the same director, no next hop resolved.
	env := *r.env
	env.Hops = hops{}
	r1 := &rig{io: dataplane.NewFakeIO(64, 0), state: r.state, conns: r.conns, ports: r.ports, env: &env, clock: r.clock}
	r1.w = dataplane.NewWorker(r1.io, &env)
	r.run(t, syn(t, 40001))
	r.run(t, syn(t, 40002), syn(t, 40003), syn(t, 40004), syn(t, 40005), syn(t, 40006))
	r1.run(t, syn(t, 41001), syn(t, 41002), syn(t, 41003))
	if q := r1.w.Counters.Load(dataplane.CntNeighQueued); q != 3 {
		t.Fatalf("worker 1 queued %d frames, want 3", q)
	}
	src := r.sources()
	src.Workers = func() []*dataplane.Worker { return []*dataplane.Worker{r.w, r1.w} }
	got, hist := gather(t, src)
	for key, want := range map[string]float64{
		"uvs_neighbour_queue_depth,worker=0": 0,
		"uvs_neighbour_queue_depth,worker=1": 3,
		"uvs_worker_batches_total,worker=0":  2,
		"uvs_worker_batches_total,worker=1":  1,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
		}
	}
	for key, want := range map[string]histogram{
		// Worker 0: a batch of 1 and one of 5.
		"uvs_worker_batch_frames,worker=0": {2, 6, map[float64]uint64{1: 1, 4: 1, 16: 2, 64: 2}},
		// Worker 1: a batch of 3.
		"uvs_worker_batch_frames,worker=1": {1, 3, map[float64]uint64{1: 0, 4: 1, 16: 1, 64: 1}},
	} {
		h, ok := hist[key]
		if !ok {
			t.Errorf("%s missing", key)
			continue
		}
		if h.count != want.count || h.sum != want.sum || !maps.Equal(h.cum, want.cum) {
			t.Errorf("%s = %+v, want %+v", key, h, want)
		}
	}
	// Once the next hops resolve, the queue empties and the gauge says so.
	env.Hops = r.env.Hops
	r1.w.ProcessBatch(nil)
	if sent := len(r1.io.Sent()); sent != 3 {
		t.Fatalf("worker 1 sent %d queued frames after resolution, want 3", sent)
	}
	got, _ = gather(t, src)
	if v, ok := got["uvs_neighbour_queue_depth,worker=1"]; !ok || v != 0 {
		t.Errorf("uvs_neighbour_queue_depth{worker=1} = %v (present %v) after the queue emptied, want 0", v, ok)
	}
}

// histogram is a gathered histogram: count, sum and cumulative counts by
// upper bound.
type histogram struct {
	count uint64
	sum   float64
	cum   map[float64]uint64
}

// gather collects src's series (pedantic registry) as "name,label=value,..."
// → value, histograms apart.
func gather(t *testing.T, src metrics.Sources) (map[string]float64, map[string]histogram) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(metrics.Collectors(src)...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got, hist := map[string]float64{}, map[string]histogram{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			k := mf.GetName()
			for _, l := range m.Label {
				k += "," + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case m.Counter != nil:
				got[k] = m.Counter.GetValue()
			case m.Gauge != nil:
				got[k] = m.Gauge.GetValue()
			case m.Histogram != nil:
				h := histogram{count: m.Histogram.GetSampleCount(), sum: m.Histogram.GetSampleSum(), cum: map[float64]uint64{}}
				for _, b := range m.Histogram.Bucket {
					h.cum[b.GetUpperBound()] = b.GetCumulativeCount()
				}
				hist[k] = h
			}
		}
	}
	return got, hist
}

// TestPromtool: what /metrics serves passes promtool check metrics (the
// Prometheus package's linter).
func TestPromtool(t *testing.T) {
	promtool := lookPromtool(t)
	r := newRig(t, rules)
	r.run(t, syn(t, 40001))
	src := r.sources()
	src.Checkers = func() []ipvsadm.CheckerView {
		return []ipvsadm.CheckerView{{VS: "[10.0.1.100]:tcp:80", RS: "[10.0.2.11]:tcp:8080", Type: "TCP_CHECK", Target: "10.0.2.11:8080",
			Up: true, LastMsg: "connected", LastAt: time.Unix(1000, 0), RetriesLeft: 1}}
	}
	src.VRRP = func() []metrics.VRRPInstance {
		return []metrics.VRRPInstance{{Name: "VI_1", Master: true, VIPs: []metrics.VRRPVIP{{Addr: "10.0.1.100", Device: "d0", Held: true}}}}
	}
	src.Sync = func() []metrics.SyncDaemon {
		return []metrics.SyncDaemon{{State: "backup", Ifname: "d1", SyncID: 51, Counters: []metrics.SyncCounter{{Name: "messages", Value: 3}, {Name: "rejected", Reason: "short", Value: 1}}}}
	}
	src.IO = func() []metrics.IOCounter {
		return []metrics.IOCounter{{Backend: "afpacket", Name: "ring-drops", Value: 2}}
	}
	srv := httptest.NewServer(metrics.Handler(metrics.NewRegistry(src), src))
	defer srv.Close()
	body := get(t, srv.URL+"/metrics", http.StatusOK)
	for _, name := range []string{"uvs_checker_up", "uvs_vrrp_vip_held", "uvs_neighbour_queue_depth", "uvs_worker_batches_total", "uvs_worker_batch_frames_bucket", "uvs_sync_daemon_events_total", "uvs_packet_io_total", "node_ipvs_backend_weight", "go_goroutines"} {
		if !strings.Contains(body, "\n"+name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	out, err := runWithStdin(promtool, body, "check", "metrics")
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestProbes: /healthz and /readyz answer 200 "ok" or 503 with the reason.
func TestProbes(t *testing.T) {
	var healthErr, readyErr error
	src := metrics.Sources{Healthy: func() error { return healthErr }, Ready: func() error { return readyErr }}
	srv := httptest.NewServer(metrics.Handler(metrics.NewRegistry(src), src))
	defer srv.Close()
	readyErr = io.ErrUnexpectedEOF
	if body := get(t, srv.URL+"/readyz", http.StatusServiceUnavailable); !strings.Contains(body, "unexpected EOF") {
		t.Errorf("/readyz body %q does not say why", body)
	}
	get(t, srv.URL+"/healthz", http.StatusOK)
	readyErr = nil
	get(t, srv.URL+"/readyz", http.StatusOK)
}

// TestListen: a bad --metrics address is an error naming it.
func TestListen(t *testing.T) {
	for _, addr := range []string{"nonsense", "127.0.0.1:99999", "256.0.0.1:9100"} {
		ln, err := metrics.Listen(addr)
		if err == nil {
			ln.Close()
			t.Errorf("Listen(%q) succeeded", addr)
			continue
		}
		if !strings.Contains(err.Error(), `"`+addr+`"`) {
			t.Errorf("Listen(%q): %v does not name the address", addr, err)
		}
	}
	ln, err := metrics.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := metrics.Listen(ln.Addr().String()); err == nil || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Errorf("Listen on a taken address: %v", err)
	}
}

func get(t *testing.T, url string, code int) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != code {
		t.Fatalf("GET %s: %d, want %d: %s", url, resp.StatusCode, code, b)
	}
	return string(b)
}

// lookPromtool returns promtool's path; without it the test skips, or
// fails under CI (netnstest.RequireTool).
func lookPromtool(t *testing.T) string {
	t.Helper()
	netnstest.RequireTool(t, "promtool")
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func runWithStdin(name, stdin string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func runtimeVersion() string { return runtime.Version() }

// version is what uvs_build_info reports for the test binary.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// TestREADMENamesEveryEvent: the package's README lists every value of
// uvs_dataplane_events_total's event label.
func TestREADMENamesEveryEvent(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for k := dataplane.Counter(0); k < dataplane.NumCounters; k++ {
		if !bytes.Contains(b, []byte("`"+k.String()+"`")) {
			t.Errorf("README.md does not name the event %q", k.String())
		}
	}
}
