package bench

import (
	"encoding/json"
	"encoding/xml"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeReport builds a report from synthetic runs: three clean runs per
// figure with values v-1, v, v+1, plus one dirty run that must not count.
func fakeReport() *Report {
	r := &Report{Timestamp: "20260101T000000Z", CPURate: 150000, Machine: map[string]string{"cpu": "test | cpu"},
		Method: map[string]string{"layout": "split"}}
	add := func(cand, fig string, v float64, extra map[string]float64) {
		for i, d := range []float64{-1, 0, 1} {
			e := map[string]float64{}
			for k, x := range extra {
				e[k] = x + d
			}
			r.Runs = append(r.Runs, Run{Candidate: cand, Figure: fig, Round: i, Value: Num(v + d), Extra: e, Clean: true, Gate: true})
		}
		r.Runs = append(r.Runs, Run{Candidate: cand, Figure: fig, Round: 3, Value: Num(v * 100), Extra: extra, Clean: false, Steal: 0.2})
	}
	r.Rows = []Row{
		{Name: "generator-ceiling", Kind: KindCeiling, Available: true},
		{Name: "kernel-forward", Kind: KindKernel, Available: true},
		{Name: "nft-dnat", Kind: KindKernel, Available: true},
		{Name: "haproxy-tcp", Kind: KindProxy, Available: true},
		{Name: "uvs-nat", Kind: KindUVS, Available: true},
		{Name: "uvs-nat-afxdp", Kind: KindUVS, Available: false, Note: "n/a: uvsd has no --io"},
	}
	add("generator-ceiling", FigUDPSat, 1000e3, nil)
	add("kernel-forward", FigUDPSat, 600e3, map[string]float64{"offered_pps": 900e3})
	add("nft-dnat", FigUDPSat, 400e3, map[string]float64{"offered_pps": 800e3})
	add("uvs-nat", FigUDPSat, 950e3, map[string]float64{"offered_pps": 960e3}) // delivered what was offered
	add("kernel-forward", FigUDPRate, 1.0, map[string]float64{"gen_us_per_pkt": 2})
	add("nft-dnat", FigUDPRate, 2.0, nil)
	add("uvs-nat", FigUDPRate, 1.5, nil)
	add("kernel-forward", FigCPS, 20000, map[string]float64{"p50_us": 500, "p99_us": 900})
	add("nft-dnat", FigCPS, 16000, map[string]float64{"p50_us": 600, "p99_us": 1000})
	add("haproxy-tcp", FigCPS, 7000, nil)
	add("uvs-nat", FigCPS, 22000, nil)
	add("nft-dnat", FigLat, 100, map[string]float64{"p50_us": 40})
	add("uvs-nat", FigLat, 160, map[string]float64{"p50_us": 50})
	add("uvs-nat", FigIperf, 2, nil)
	r.Table = &TableScale{Capacity: 1 << 21, InProcess: 150, InProcCap: 1 << 20}
	add("uvs-nat", FigTable1k, 500e3, map[string]float64{"live": 1000, "cpu_us_per_pkt": 1.2})
	add("uvs-nat", FigTable1M, 460e3, map[string]float64{"live": 1e6, "cpu_us_per_pkt": 1.3, "bytes_per_conn": 170})
	r.Runs = append(r.Runs, Run{Candidate: "uvs-nat", Figure: FigIperf, Round: 5, Value: Num(math.NaN()), Err: "iperf3: boom"})
	r.Summarise("generator-ceiling")
	return r
}

func TestSummarise(t *testing.T) {
	r := fakeReport()
	u := r.row("uvs-nat")
	if u.PPS.Median != 950e3 || u.PPS.N != 3 || u.PPS.Runs != 4 {
		t.Fatalf("dirty run counted: %+v", u.PPS)
	}
	if !u.AtCeiling || r.row("kernel-forward").AtCeiling {
		t.Fatal("ceiling marks wrong")
	}
	if got := float64(u.Ratios["pps/nft-dnat"]); got != 950.0/400 {
		t.Fatalf("pps/nft ratio %v", got)
	}
	if got := float64(u.Ratios["cpu/nft-dnat"]); got != 0.75 {
		t.Fatalf("cpu/nft ratio %v", got)
	}
	if r.row("kernel-forward").Ratios != nil {
		t.Fatal("ratios on a non-uvs row")
	}
	if r.row("uvs-nat-afxdp") != nil {
		t.Fatal("unavailable row returned")
	}
	if len(u.Errors) != 1 || !strings.Contains(u.Errors[0], "boom") {
		t.Fatalf("errors %v", u.Errors)
	}
	if r.Noise["dirty_runs"] != 17 {
		t.Fatalf("noise %v", r.Noise)
	}
	met := map[string]string{}
	for _, tg := range r.Targets {
		met[tg.Name+" / "+tg.Want] = tg.Met
	}
	want := map[string]string{
		"uvs-nat UDP pps / >= 1.30x nft-dnat":                               "met",
		"uvs-nat UDP pps / >= 0.90x kernel-forward":                         "met",
		"uvs-nat CPU per packet / <= 0.80x nft-dnat":                        "met",
		"uvs-nat TCP conn/s / >= 1.00x nft-dnat":                            "met",
		"uvs-nat TCP conn/s / >= 3.00x haproxy-tcp":                         "met",
		"uvs-nat TCP conn/s / >= 0.95x kernel-forward":                      "met",
		"uvs-nat one TCP stream / >= 0.50x kernel-forward":                  "n/a",
		"uvs-nat p99 latency / <= nft-dnat + 50 µs":                         "not met",
		"uvs-nat throughput at 1 M live connections / >= 0.90x that at 1 k": "met",
		"bytes per live connection / <= 160 B":                              "not met",
	}
	for k, v := range want {
		if met[k] != v {
			t.Errorf("target %q: %q, want %q (all: %v)", k, met[k], v, met)
		}
	}
}

func TestRender(t *testing.T) {
	r := fakeReport()
	md := r.Markdown("x.svg")
	for _, s := range []string{"| uvs-nat ⁽ᶜ⁾ | 950 [950–950] n=3/4", "test \\| cpu", "n/a: uvsd has no --io", "2.38x", "![bar chart](x.svg)",
		"| 1000 [999–1001] n=3/4 | 500 [500–500] n=3/4 |", "not met"} {
		if !strings.Contains(md, s) {
			t.Errorf("Markdown lacks %q:\n%s", s, md)
		}
	}
	svg := r.SVG()
	if err := xml.Unmarshal([]byte(svg), new(struct{})); err != nil {
		t.Fatalf("SVG is not well-formed XML: %v\n%s", err, svg)
	}
	if !strings.Contains(svg, ">uvs-nat<") || !strings.Contains(svg, ">950<") {
		t.Errorf("SVG lacks the uvs bar:\n%s", svg)
	}
	dir := t.TempDir()
	paths, err := r.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 4 {
		t.Fatalf("wrote %v", paths)
	}
	b, err := os.ReadFile(filepath.Join(dir, r.Timestamp+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.row("uvs-nat").PPS != r.row("uvs-nat").PPS || len(back.Runs) != len(r.Runs) {
		t.Fatal("JSON round trip lost data")
	}
	latest, _ := os.ReadFile(filepath.Join(dir, "latest.md"))
	if string(latest) != r.Markdown(r.Timestamp+".svg") {
		t.Fatal("latest.md differs from the timestamped Markdown")
	}
}

// uvs-bench render re-summarises a saved report.
func TestRenderCommand(t *testing.T) {
	r := fakeReport()
	dir := t.TempDir()
	if _, err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "latest.md")); err != nil {
		t.Fatal(err)
	}
	var out, errb strings.Builder
	if code := Main([]string{"render", filepath.Join(dir, r.Timestamp+".json")}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	md, err := os.ReadFile(filepath.Join(dir, "latest.md"))
	if err != nil || string(md) != r.Markdown(r.Timestamp+".svg") {
		t.Fatalf("re-rendered Markdown differs (%v)", err)
	}
	if code := Main([]string{"render", filepath.Join(dir, "missing.json")}, &out, &errb); code != 1 {
		t.Fatalf("missing file: exit %d", code)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, q := range []bool{false, true} {
		if err := DefaultConfig(q).Validate(); err != nil {
			t.Fatalf("default config (quick %v): %v", q, err)
		}
	}
	c := DefaultConfig(false)
	c.Runs = 0
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "runs") {
		t.Fatalf("runs 0: %v", err)
	}
}

func TestConntrackBytesPerConn(t *testing.T) {
	b, err := ConntrackBytesPerConn(1<<16, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	// The table preallocates its entries and index: a full table holds at
	// least one entry per connection, and far less than a kilobyte.
	if b < 64 || b > 1024 {
		t.Fatalf("%.0f bytes per connection", b)
	}
	if _, err := ConntrackBytesPerConn(10, 11); err == nil {
		t.Fatal("accepted more connections than capacity")
	}
}

func BenchmarkConntrackBytesPerConn(b *testing.B) {
	var per float64
	for b.Loop() {
		var err error
		if per, err = ConntrackBytesPerConn(1<<20, 1<<20); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(per, "bytes/conn")
}
