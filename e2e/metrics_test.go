package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/wait"
)

// The director namespace is the test's own: fixed ports cannot clash.
const (
	metricsAddr    = "127.0.0.1:9100"
	prometheusAddr = "127.0.0.1:9090"
)

const metricsRules = "-A -t 10.0.1.100:80 -s rr\n" +
	"-a -t 10.0.1.100:80 -r 10.0.2.11:80 -m -w 1\n" +
	"-a -t 10.0.1.100:80 -r 10.0.2.12:80 -m -w 1\n"

// TestMetricsPrometheus: a real Prometheus server (Debian's) scrapes uvsd's
// --metrics every second in the director's namespace while N TCP
// connections pass through a NAT service; its HTTP API then gives
// node_ipvs_connections_total = N, the five node_ipvs totals equal to what
// uvsadm -Ln --stats --exact shows for the service, and uvs's own series.
func TestMetricsPrometheus(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	netnstest.RequireTool(t, "prometheus")
	l := newNATLab(t)
	l.dir.LinkUp(t, "lo")
	u := startUVSD(t, l.dir, metricsRules, "--metrics", metricsAddr)
	dirHTTP := httpIn(l.dir)

	// /healthz and /readyz: uvsd answers -Ln once its workers run, so
	// both are ready now.
	for _, p := range []string{"/healthz", "/readyz"} {
		if body, code := fetch(t, dirHTTP, "http://"+metricsAddr+p); code != http.StatusOK || strings.TrimSpace(body) != "ok" {
			t.Fatalf("%s: %d %q, want 200 ok", p, code, body)
		}
	}

	dir := t.TempDir()
	conf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: uvsd
    static_configs:
      - targets: ['%s']
`, metricsAddr)), 0o644); err != nil {
		t.Fatal(err)
	}
	prom := l.dir.Start(t, "prometheus", "--config.file="+conf, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+prometheusAddr, "--log.level=warn")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("prometheus output:\n%s", prom.Output())
		}
	})
	// Prometheus scrapes uvsd: up{job="uvsd"} is 1.
	var last string
	wait.For(t, 60*time.Second, func() bool {
		select {
		case <-prom.Done():
			t.Fatalf("prometheus exited: %v\n%s", prom.Err(), prom.Output())
		default:
		}
		v, err := promQuery(dirHTTP, `up{job="uvsd"}`)
		last = fmt.Sprint(v, err)
		return err == nil && len(v) == 1 && v[0] == 1
	}, "Prometheus to scrape uvsd (last: %v)", wait.Lazy(func() any { return last }))

	const n = 12
	cli := httpIn(l.cli) // a new connection per request
	for i := range n {
		if body, code := fetch(t, cli, "http://10.0.1.100/"); code != http.StatusOK || !strings.HasPrefix(body, "rs") {
			t.Fatalf("request %d through the NAT service: %d %q", i, code, body)
		}
	}

	names := []string{"node_ipvs_connections_total", "node_ipvs_incoming_packets_total", "node_ipvs_outgoing_packets_total",
		"node_ipvs_incoming_bytes_total", "node_ipvs_outgoing_bytes_total"}
	// The last packets of a connection (the client's final ACK) may
	// follow its answer: poll until Prometheus's latest sample and the
	// listing agree, and the connections are n.
	wait.For(t, 30*time.Second, func() bool {
		list := serviceStats(t, l.dir, "10.0.1.100:80")
		var got []float64
		for _, name := range names {
			v, err := promQuery(dirHTTP, name)
			if err != nil || len(v) != 1 {
				last = fmt.Sprintf("%s: %v %v", name, v, err)
				return false
			}
			got = append(got, v[0])
		}
		last = fmt.Sprintf("Prometheus %v, uvsadm -Ln --stats --exact %v", got, list)
		if got[0] != n {
			return false
		}
		for i := range got {
			if got[i] != list[i] {
				return false
			}
		}
		return true
	}, "node_ipvs totals = %d connections and = uvsadm -Ln --stats (last: %v)", n, wait.Lazy(func() any { return last }))
	t.Log(last)

	// uvs's own series: the workers scheduled the n connections; the
	// real servers' gauges are there with node_exporter's labels.
	for q, want := range map[string]func(float64) bool{
		`uvs_dataplane_events_total{event="new-conn"}`:  func(v float64) bool { return v == n },
		`sum(uvs_worker_packets_total{direction="rx"})`: func(v float64) bool { return v >= 3*n },
		`uvs_conntrack_capacity`:                        func(v float64) bool { return v > 0 },
		`uvs_build_info`:                                func(v float64) bool { return v == 1 },
		`sum(node_ipvs_backend_weight{local_address="10.0.1.100",local_port="80",proto="TCP",local_mark=""})`: func(v float64) bool { return v == 2 },
		`count(uvs_dataplane_malformed_total)`: func(v float64) bool { return v > 0 },
		`count(uvs_packet_io_total)`:           func(v float64) bool { return v > 0 },
	} {
		wait.For(t, 10*time.Second, func() bool {
			v, err := promQuery(dirHTTP, q)
			last = fmt.Sprint(v, err)
			return err == nil && len(v) == 1 && want(v[0])
		}, "Prometheus: %s (last: %v)", q, wait.Lazy(func() any { return last }))
	}
	u.stop(t)
}

// TestMetricsBadAddress: a bad --metrics address stops uvsd at once with
// an error naming it, exit status 2, before it installs anything.
func TestMetricsBadAddress(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	ns := netnstest.New(t, "mbad")
	path := filepath.Join(t.TempDir(), "rules")
	if err := os.WriteFile(path, []byte(metricsRules), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"9100", "256.0.0.1:9100", "127.0.0.1:99999"} {
		out, err := ns.Run(binary("uvsd"), "--rules", path, "--control", "", "--metrics", addr)
		code := -1
		if ee, ok := err.(interface{ ExitCode() int }); ok {
			code = ee.ExitCode()
		}
		if code != 2 || !strings.Contains(out, `--metrics "`+addr+`"`) {
			t.Errorf("--metrics %s: exit %d (%v), output %q; want exit 2 naming the address", addr, code, err, out)
		}
		if uvsTable(t, ns) {
			t.Fatalf("--metrics %s: uvsd left its nftables table", addr)
		}
	}
}

// fetch GETs url with c and returns the body and status code.
func fetch(t *testing.T, c *http.Client, u string) (string, int) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return string(b), resp.StatusCode
}

// promQuery runs an instant query on the Prometheus server and returns
// the values of the resulting vector.
func promQuery(c *http.Client, q string) ([]float64, error) {
	resp, err := c.Get("http://" + prometheusAddr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	if r.Status != "success" || r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: %s %s (%s)", q, r.Status, r.Error, r.Data.ResultType)
	}
	var out []float64
	for _, s := range r.Data.Result {
		str, ok := s.Value[1].(string)
		if !ok {
			return nil, fmt.Errorf("query %s: value %v", q, s.Value)
		}
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// serviceStats returns the Conns, InPkts, OutPkts, InBytes, OutBytes of a
// service line of uvsadm -Ln --stats --exact.
func serviceStats(t *testing.T, ns *netnstest.NS, svc string) []float64 {
	t.Helper()
	out := mustUVSADM(t, ns, "-Ln", "--stats", "--exact")
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 7 && f[1] == svc {
			var v []float64
			for _, s := range f[2:] {
				x, err := strconv.ParseFloat(s, 64)
				if err != nil {
					t.Fatalf("-Ln --stats --exact: %q: %v\n%s", line, err, out)
				}
				v = append(v, x)
			}
			return v
		}
	}
	t.Fatalf("-Ln --stats --exact lists no %s:\n%s", svc, out)
	return nil
}
