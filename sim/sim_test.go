package sim

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// simRun runs a simulation over in-memory inputs.
type simRun struct {
	rules, events, trace string
	w                    Workload
	seed                 uint64
	why                  bool
	svg                  bool
}

func defaultWorkload() Workload {
	return Workload{Conns: 200, Clients: 50, Ports: 1000, Rate: 100, Hold: Dist{kind: distConst, a: 10 * time.Millisecond}}
}

func (r simRun) run(t *testing.T, traceOut bool) (string, string, error) {
	t.Helper()
	cfg := Config{
		RulesName: "test.rules", Rules: strings.NewReader(r.rules),
		Workload: r.w, Seed: r.seed, Trace: traceOut, Why: r.why,
	}
	if r.events != "" {
		cfg.EventsName, cfg.Events = "test.events", strings.NewReader(r.events)
	}
	if r.trace != "" {
		cfg.TraceInName, cfg.TraceIn = "test.csv", strings.NewReader(r.trace)
	}
	var svg bytes.Buffer
	if r.svg {
		cfg.SVG = &svg
	}
	var out bytes.Buffer
	err := Run(cfg, &out)
	return out.String(), svg.String(), err
}

// traceLine is one connection line of --trace output.
type traceLine struct {
	t      time.Duration
	client string
	vip    string
	dest   string
}

// parseTraceOut extracts the connection lines (and the event lines' times)
// from --trace output.
func parseTraceOut(t *testing.T, out string) (conns []traceLine, events []time.Duration) {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || f[0] == "time" {
			continue
		}
		if f[0] == "uvs-sim:" {
			break
		}
		sec, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			t.Fatalf("bad trace line %q", l)
		}
		at := time.Duration(math.Round(sec*1e6)) * time.Microsecond
		if f[1] == "event:" {
			events = append(events, at)
			continue
		}
		if len(f) < 5 {
			t.Fatalf("short trace line %q", l)
		}
		conns = append(conns, traceLine{at, f[1], f[3], f[4]})
	}
	return conns, events
}

func dests(ls []traceLine) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.dest
	}
	return out
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The classic LVS case, kernel-faithful: with the destinations added one by
// one (C, B, A) the first pass is a plain round robin over the list A B C,
// then the periods A A B A B C A B C follow (ip_vs_wrr.c:
// ip_vs_wrr_dest_changed keeps cw = 1 when destinations are added one by one).
func TestWRRClassic(t *testing.T) {
	r := simRun{rules: readFile(t, "wrr.rules"), w: defaultWorkload()}
	r.w.Conns = 21
	out, _, err := r.run(t, true)
	if err != nil {
		t.Fatal(err)
	}
	conns, _ := parseTraceOut(t, out)
	name := map[string]string{"10.0.0.1:80": "A", "10.0.0.2:80": "B", "10.0.0.3:80": "C"}
	var got []string
	for _, d := range dests(conns) {
		got = append(got, name[d])
	}
	want := "A B C A A B A B C A B C A A B A B C A B C"
	if g := strings.Join(got, " "); g != want {
		t.Fatalf("wrr 4,3,2 sequence:\n got %s\nwant %s", g, want)
	}
	// Over whole periods the split is exactly 4:3:2.
	n := map[string]int{}
	for _, d := range got[3:] {
		n[d]++
	}
	if n["A"] != 8 || n["B"] != 6 || n["C"] != 4 {
		t.Fatalf("two periods split %v, want A=8 B=6 C=4", n)
	}
}

func TestRRAlternates(t *testing.T) {
	rules := `-A -u 10.0.0.100:53 -s rr
-a -u 10.0.0.100:53 -r 10.0.0.1:53 -m -w 1
-a -u 10.0.0.100:53 -r 10.0.0.2:53 -m -w 5
-a -u 10.0.0.100:53 -r 10.0.0.3:53 -m -w 1
`
	r := simRun{rules: rules, w: defaultWorkload()}
	r.w.Conns = 30
	out, _, err := r.run(t, true)
	if err != nil {
		t.Fatal(err)
	}
	conns, _ := parseTraceOut(t, out)
	if len(conns) != 30 {
		t.Fatalf("%d connections traced, want 30", len(conns))
	}
	order := []string{"10.0.0.3:53", "10.0.0.2:53", "10.0.0.1:53"} // most recently added first
	for i, c := range conns {
		if c.dest != order[i%3] {
			t.Fatalf("connection %d went to %s, want %s (rr ignores weights, list order)", i, c.dest, order[i%3])
		}
	}
}

// summaryRow returns the fields of the summary row of a destination.
func summaryRow(t *testing.T, out, dest string) []string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 8 && f[0] == dest {
			return f
		}
	}
	t.Fatalf("no summary row for %s in:\n%s", dest, out)
	return nil
}

func pctField(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if err != nil {
		t.Fatalf("bad percentage %q", s)
	}
	return v
}

// wlc with long holds keeps open connections in proportion to weight.
func TestWLCBalancesByWeight(t *testing.T) {
	rules := `-A -t 10.0.0.100:80 -s wlc
-a -t 10.0.0.100:80 -r 10.0.0.1:80 -m -w 1
-a -t 10.0.0.100:80 -r 10.0.0.2:80 -m -w 3
`
	w := Workload{Conns: 4000, Clients: 500, Ports: 1000, Rate: 200, Hold: Dist{kind: distExp, a: 2 * time.Second}}
	out, _, err := simRun{rules: rules, w: w, seed: 7}.run(t, false)
	if err != nil {
		t.Fatal(err)
	}
	r1, r2 := summaryRow(t, out, "10.0.0.1:80"), summaryRow(t, out, "10.0.0.2:80")
	s1, s2 := pctField(t, r1[3]), pctField(t, r2[3])
	if math.Abs(s1-25) > 3 || math.Abs(s2-75) > 3 {
		t.Fatalf("wlc shares %.2f%% / %.2f%%, want about 25/75:\n%s", s1, s2, out)
	}
	if e := pctField(t, r2[4]); e != 75 {
		t.Fatalf("expected share %v, want 75", e)
	}
	m1, _ := strconv.ParseFloat(r1[6], 64)
	m2, _ := strconv.ParseFloat(r2[6], 64)
	if m1 <= 0 || math.Abs(m2/m1-3) > 0.4 {
		t.Fatalf("mean open %v / %v, want ratio about 3", m1, m2)
	}
}

// UDP connections never become active, so nq sends every one of them to
// the first eligible destination in list order, while TCP spreads.
func TestNQUDPNeverActive(t *testing.T) {
	for _, proto := range []string{"u", "t"} {
		rules := "-A -" + proto + " 10.0.0.100:53 -s nq\n" +
			"-a -" + proto + " 10.0.0.100:53 -r 10.0.0.1:53 -m -w 1\n" +
			"-a -" + proto + " 10.0.0.100:53 -r 10.0.0.2:53 -m -w 1\n"
		w := defaultWorkload()
		w.Hold = Dist{kind: distConst, a: 5 * time.Second}
		out, _, err := simRun{rules: rules, w: w}.run(t, false)
		if err != nil {
			t.Fatal(err)
		}
		first := summaryRow(t, out, "10.0.0.2:53")[2]
		if proto == "u" && first != "200" {
			t.Fatalf("UDP nq: first dest got %s of 200:\n%s", first, out)
		}
		if proto == "t" && first == "200" {
			t.Fatalf("TCP nq: everything on one destination:\n%s", out)
		}
	}
}

// sh maps a client address to the same destination every time.
func TestSHSticky(t *testing.T) {
	rules := `-A -t 10.0.0.100:80 -s sh
-a -t 10.0.0.100:80 -r 10.0.0.1:80 -m -w 1
-a -t 10.0.0.100:80 -r 10.0.0.2:80 -m -w 1
-a -t 10.0.0.100:80 -r 10.0.0.3:80 -m -w 1
`
	w := defaultWorkload()
	w.Conns, w.Clients = 1000, 40
	out, _, err := simRun{rules: rules, w: w}.run(t, true)
	if err != nil {
		t.Fatal(err)
	}
	conns, _ := parseTraceOut(t, out)
	where := map[string]string{}
	used := map[string]bool{}
	for _, c := range conns {
		addr := c.client[:strings.LastIndexByte(c.client, ':')]
		if d, ok := where[addr]; ok && d != c.dest {
			t.Fatalf("client %s went to %s and %s", addr, d, c.dest)
		}
		where[addr] = c.dest
		used[c.dest] = true
	}
	if len(where) != 40 || len(used) != 3 {
		t.Fatalf("%d clients on %d destinations, want 40 on 3", len(where), len(used))
	}
}

// Events change the distribution at their time: a weight-0 destination and
// a deleted one get nothing afterwards; an added one starts receiving.
func TestEventsChangeDistribution(t *testing.T) {
	rules := `-A -t 10.0.0.100:80 -s wrr
-a -t 10.0.0.100:80 -r 10.0.0.1:80 -m -w 1
-a -t 10.0.0.100:80 -r 10.0.0.2:80 -m -w 1
-a -t 10.0.0.100:80 -r 10.0.0.3:80 -m -w 1
`
	events := `# quiesce .1 at 0.5 s, delete .2 at 1 s, add .9 at 1.5 s
0.5 weight -t 10.0.0.100:80 -r 10.0.0.1:80 0
1s del -t 10.0.0.100:80 -r 10.0.0.2:80
1500ms add -t 10.0.0.100:80 -r 10.0.0.9:80 -m -w 2
`
	w := defaultWorkload()
	w.Conns = 400 // 4 s at 100/s
	out, _, err := simRun{rules: rules, events: events, w: w}.run(t, true)
	if err != nil {
		t.Fatal(err)
	}
	conns, evs := parseTraceOut(t, out)
	if len(evs) != 3 || evs[0] != 500*time.Millisecond || evs[2] != 1500*time.Millisecond {
		t.Fatalf("event times %v", evs)
	}
	count := func(from, to time.Duration) map[string]int {
		m := map[string]int{}
		for _, c := range conns {
			if c.t >= from && c.t < to {
				m[c.dest]++
			}
		}
		return m
	}
	before := count(0, 500*time.Millisecond)
	if before["10.0.0.1:80"] == 0 || before["10.0.0.2:80"] == 0 || before["10.0.0.9:80"] != 0 {
		t.Fatalf("before events: %v", before)
	}
	mid := count(500*time.Millisecond, time.Second)
	if mid["10.0.0.1:80"] != 0 || mid["10.0.0.2:80"] == 0 {
		t.Fatalf("after quiescing .1: %v", mid)
	}
	late := count(1500*time.Millisecond, time.Hour)
	if late["10.0.0.1:80"] != 0 || late["10.0.0.2:80"] != 0 {
		t.Fatalf("after delete: %v", late)
	}
	// wrr weights .3=1, .9=2: .9 gets two thirds.
	if n9, n3 := late["10.0.0.9:80"], late["10.0.0.3:80"]; n9 == 0 || math.Abs(float64(n9)/float64(n9+n3)-2.0/3) > 0.02 {
		t.Fatalf("after add: %v", late)
	}
	if row := summaryRow(t, out, "10.0.0.2:80"); row[1] != "del" {
		t.Fatalf("deleted dest row %v", row)
	}
}

// overload marks a busy destination OVERLOAD at once; clear lifts it.
func TestOverloadEvent(t *testing.T) {
	rules := `-A -t 10.0.0.100:80 -s wlc
-a -t 10.0.0.100:80 -r 10.0.0.1:80 -m -w 1
-a -t 10.0.0.100:80 -r 10.0.0.2:80 -m -w 1
`
	events := `1s overload -t 10.0.0.100:80 -r 10.0.0.1:80
2s clear -t 10.0.0.100:80 -r 10.0.0.1:80
`
	w := defaultWorkload()
	w.Conns, w.Hold = 300, Dist{kind: distConst, a: 10 * time.Second}
	out, _, err := simRun{rules: rules, events: events, w: w}.run(t, true)
	if err != nil {
		t.Fatal(err)
	}
	conns, _ := parseTraceOut(t, out)
	var during, after int
	for _, c := range conns {
		if c.dest != "10.0.0.1:80" {
			continue
		}
		switch {
		case c.t >= time.Second && c.t < 2*time.Second:
			during++
		case c.t >= 2*time.Second:
			after++
		}
	}
	if during != 0 || after == 0 {
		t.Fatalf("overloaded dest got %d conns while overloaded, %d after clear", during, after)
	}
}

// Persistence: every client sticks to one destination while its template
// lives, even with a load-based scheduler.
func TestPersistence(t *testing.T) {
	rules := `-A -t 10.0.0.100:443 -s rr -p 300
-a -t 10.0.0.100:443 -r 10.0.0.1:443 -m -w 1
-a -t 10.0.0.100:443 -r 10.0.0.2:443 -m -w 1
`
	w := defaultWorkload()
	w.Clients = 9
	out, _, err := simRun{rules: rules, w: w}.run(t, true)
	if err != nil {
		t.Fatal(err)
	}
	conns, _ := parseTraceOut(t, out)
	where := map[string]string{}
	for _, c := range conns {
		addr := c.client[:strings.LastIndexByte(c.client, ':')]
		if d, ok := where[addr]; ok && d != c.dest {
			t.Fatalf("persistent client %s moved from %s to %s", addr, d, c.dest)
		}
		where[addr] = c.dest
	}
	if !strings.Contains(out, "9 templates created") {
		t.Fatalf("want 9 templates:\n%s", out)
	}
}

func TestDeterministic(t *testing.T) {
	rules := `-A -t 10.0.0.100:80 -s twos
-a -t 10.0.0.100:80 -r 10.0.0.1:80 -m -w 1
-a -t 10.0.0.100:80 -r 10.0.0.2:80 -m -w 2
-a -t 10.0.0.100:80 -r 10.0.0.3:80 -m -w 3
-A -t 10.0.0.100:81 -s mh
-a -t 10.0.0.100:81 -r 10.0.0.1:81 -m -w 1
-a -t 10.0.0.100:81 -r 10.0.0.2:81 -m -w 1
`
	events := "3s del -t 10.0.0.100:81 -r 10.0.0.2:81\n"
	w := Workload{Conns: 2000, Clients: 300, Ports: 100, Rate: 300, Hold: Dist{kind: distExp, a: time.Second}}
	r := simRun{rules: rules, events: events, w: w, seed: 42, why: true, svg: true}
	out1, svg1, err := r.run(t, true)
	if err != nil {
		t.Fatal(err)
	}
	out2, svg2, err := r.run(t, true)
	if err != nil {
		t.Fatal(err)
	}
	if out1 != out2 || svg1 != svg2 {
		t.Fatal("same inputs and seed gave different output")
	}
	r.seed = 43
	out3, _, err := r.run(t, true)
	if err != nil {
		t.Fatal(err)
	}
	if out3 == out1 {
		t.Fatal("a different seed gave the same output")
	}
}

func TestTraceInput(t *testing.T) {
	rules := `-A -t 10.0.0.100:80 -s rr
-a -t 10.0.0.100:80 -r 10.0.0.1:80 -m -w 1
-a -t 10.0.0.100:80 -r 10.0.0.2:80 -m -w 1
-A -u 10.0.0.100:0 -s wlc -p
-a -u 10.0.0.100:0 -r 10.0.0.3:0 -m -w 1
`
	trace := `time,proto,client,vip,duration
# out of order on purpose: rows are sorted by time
2,tcp,172.16.0.2:40000,10.0.0.100:80,1s
0.5,tcp,172.16.0.1:40000,10.0.0.100:80,10s
1.5s,udp,172.16.0.1:40001,10.0.0.100:5353,250ms
`
	out, _, err := simRun{rules: rules, trace: trace}.run(t, true)
	if err != nil {
		t.Fatal(err)
	}
	conns, _ := parseTraceOut(t, out)
	want := []traceLine{
		{500 * time.Millisecond, "172.16.0.1:40000", "10.0.0.100:80", "10.0.0.2:80"},
		{1500 * time.Millisecond, "172.16.0.1:40001", "10.0.0.100:0", "10.0.0.3:0"},
		{2 * time.Second, "172.16.0.2:40000", "10.0.0.100:80", "10.0.0.1:80"},
	}
	if len(conns) != len(want) {
		t.Fatalf("got %v, want %v", conns, want)
	}
	for i := range want {
		if conns[i] != want[i] {
			t.Fatalf("connection %d: got %+v, want %+v", i, conns[i], want[i])
		}
	}
	// The simulation lasts until the 10 s connection ends.
	if !strings.Contains(out, "10.500000s simulated") {
		t.Fatalf("want 10.5 s simulated:\n%s", out)
	}
}

func TestSVGWellFormed(t *testing.T) {
	rules := readFile(t, "wrr.rules")
	w := defaultWorkload()
	w.Conns, w.Hold = 3000, Dist{kind: distExp, a: time.Second} // more points than buckets
	_, svg, err := simRun{rules: rules, w: w, svg: true}.run(t, false)
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(strings.NewReader(svg))
	lines, texts := 0, 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("svg not well-formed: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			switch se.Name.Local {
			case "polyline":
				lines++
			case "text":
				texts++
			}
			if se.Name.Local == "svg" && se.Name.Space != "http://www.w3.org/2000/svg" {
				t.Fatalf("svg namespace %q", se.Name.Space)
			}
		}
	}
	if lines != 3 || texts == 0 {
		t.Fatalf("%d polylines (want one per destination), %d texts", lines, texts)
	}
}

func TestBadInput(t *testing.T) {
	good := readFile(t, "wrr.rules")
	cases := []struct {
		name                 string
		rules, events, trace string
		file                 string
		line                 int
		token                string
	}{
		{"rules bad weight", "-A -t 10.0.0.100:80 -s wrr\n-a -t 10.0.0.100:80 -r 10.0.0.1:80 -w 70000\n", "", "", "test.rules", 2, "70000"},
		{"rules unknown scheduler", "-A -t 10.0.0.100:80 -s bogus\n", "", "", "test.rules", 1, "bogus"},
		{"rules dest without service", "-a -t 10.0.0.100:80 -r 10.0.0.1:80\n", "", "", "test.rules", 1, "10.0.0.1:80"},
		{"rules empty", "# nothing\n", "", "", "test.rules", 0, ""},
		{"events bad time", good, "soon add -t 10.0.0.100:80 -r 10.0.0.9:80\n", "", "test.events", 1, "soon"},
		{"events bad verb", good, "\n1s explode -t 10.0.0.100:80 -r 10.0.0.9:80\n", "", "test.events", 2, "explode"},
		{"events bad weight", good, "1s weight -t 10.0.0.100:80 -r 10.0.0.1:80 heavy\n", "", "test.events", 1, "heavy"},
		{"events unknown dest", good, "1s del -t 10.0.0.100:80 -r 10.0.0.9:80\n", "", "test.events", 1, "10.0.0.9:80"},
		{"events unknown service", good, "1s del -t 10.0.0.100:81 -r 10.0.0.1:81\n", "", "test.events", 1, "-t 10.0.0.100:81"},
		{"events double add", good, "1s add -t 10.0.0.100:80 -r 10.0.0.1:80\n", "", "test.events", 1, "10.0.0.1:80"},
		{"events del twice", good, "1s del -t 10.0.0.100:80 -r 10.0.0.1:80\n2s del -t 10.0.0.100:80 -r 10.0.0.1:80\n", "", "test.events", 2, "10.0.0.1:80"},
		{"trace no header", good, "", "0,tcp,172.16.0.1:1,10.0.0.100:80,1\n", "test.csv", 1, "0"},
		{"trace bad proto", good, "", "time,proto,client,vip,duration\n0,icmp,172.16.0.1:1,10.0.0.100:80,1\n", "test.csv", 2, "icmp"},
		{"trace bad client", good, "", "time,proto,client,vip,duration\n0,tcp,172.16.0.1,10.0.0.100:80,1\n", "test.csv", 2, "172.16.0.1"},
		{"trace unknown vip", good, "", "time,proto,client,vip,duration\n0,tcp,172.16.0.1:1,10.0.0.200:80,1\n", "test.csv", 2, "10.0.0.200:80"},
		{"trace negative duration", good, "", "time,proto,client,vip,duration\n0,tcp,172.16.0.1:1,10.0.0.100:80,-1\n", "test.csv", 2, "-1"},
		{"trace field count", good, "", "time,proto,client,vip,duration\n0,tcp,172.16.0.1:1\n", "test.csv", 2, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, _, err := simRun{rules: c.rules, events: c.events, trace: c.trace, w: defaultWorkload()}.run(t, true)
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("got %v, want an *InputError", err)
			}
			if ie.File != c.file || ie.Line != c.line || !strings.Contains(ie.Token, c.token) {
				t.Fatalf("error %q: got file %q line %d token %q, want %q %d %q", err, ie.File, ie.Line, ie.Token, c.file, c.line, c.token)
			}
			if out != "" {
				t.Fatalf("output written despite the error: %q", out)
			}
		})
	}
}

// Main: bad input exits 2, prints the file:line:token error, writes
// nothing to stdout and creates no SVG file.
func TestMainExitCodes(t *testing.T) {
	dir := t.TempDir()
	ev := filepath.Join(dir, "bad.events")
	if err := os.WriteFile(ev, []byte("1s weight -t 10.0.0.100:80 -r 10.0.0.1:80 -5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	svg := filepath.Join(dir, "out.svg")
	var stdout, stderr bytes.Buffer
	code := Main([]string{"--rules", "testdata/wrr.rules", "--events", ev, "--svg", svg}, &stdout, &stderr)
	if code != ExitUsage {
		t.Fatalf("exit %d, want %d; stderr %s", code, ExitUsage, stderr.String())
	}
	if msg := stderr.String(); !strings.Contains(msg, ev+":1: token \"-5\"") {
		t.Fatalf("stderr %q does not name file, line and token", msg)
	}
	if stdout.Len() != 0 {
		t.Fatalf("stdout %q", stdout.String())
	}
	if _, err := os.Stat(svg); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("svg file created on bad input: %v", err)
	}
	for _, args := range [][]string{
		{},
		{"--rules", "testdata/wrr.rules", "--hold", "gamma:1s"},
		{"--rules", "testdata/wrr.rules", "--proto", "icmp"},
		{"--rules", "testdata/wrr.rules", "--clients", "0"},
		{"--rules", "testdata/wrr.rules", "--proto", "udp"},
		{"--rules", filepath.Join(dir, "missing.rules")},
		{"--rules", "testdata/wrr.rules", "extra"},
	} {
		stdout.Reset()
		stderr.Reset()
		if code := Main(args, &stdout, &stderr); code != ExitUsage || stderr.Len() == 0 || stdout.Len() != 0 {
			t.Errorf("%v: exit %d, stderr %q, stdout %q", args, code, stderr.String(), stdout.String())
		}
	}
	stdout.Reset()
	if code := Main([]string{"--rules", "testdata/wrr.rules", "--conns", "9", "--svg", svg}, &stdout, &stderr); code != ExitOK {
		t.Fatalf("good run: exit %d: %s", code, stderr.String())
	}
	if _, err := os.Stat(svg); err != nil {
		t.Fatalf("svg not written: %v", err)
	}
	if !strings.Contains(stdout.String(), "9 connections") {
		t.Fatalf("summary: %s", stdout.String())
	}
}

func TestParseDist(t *testing.T) {
	for _, c := range []struct {
		in   string
		mean time.Duration
		ok   bool
	}{
		{"exp:2s", 2 * time.Second, true},
		{"const:500ms", 500 * time.Millisecond, true},
		{"750ms", 750 * time.Millisecond, true},
		{"uniform:1s-5s", 3 * time.Second, true},
		{"uniform:5s-1s", 0, false},
		{"exp:0s", 0, false},
		{"exp:-1s", 0, false},
		{"pareto:1s", 0, false},
		{"const:fast", 0, false},
	} {
		d, err := ParseDist(c.in)
		if (err == nil) != c.ok {
			t.Errorf("%q: err %v, want ok=%v", c.in, err, c.ok)
			continue
		}
		if c.ok && d.Mean() != c.mean {
			t.Errorf("%q: mean %v, want %v", c.in, d.Mean(), c.mean)
		}
	}
}

// BenchmarkRun measures the simulator per connection (wlc, 4 destinations,
// one event).
func BenchmarkRun(b *testing.B) {
	rules := `-A -t 10.0.0.100:80 -s wlc
-a -t 10.0.0.100:80 -r 10.0.0.1:80 -m -w 1
-a -t 10.0.0.100:80 -r 10.0.0.2:80 -m -w 2
-a -t 10.0.0.100:80 -r 10.0.0.3:80 -m -w 3
-a -t 10.0.0.100:80 -r 10.0.0.4:80 -m -w 4
`
	const n = 10000
	b.ReportAllocs()
	for b.Loop() {
		cfg := Config{
			RulesName: "b.rules", Rules: strings.NewReader(rules),
			EventsName: "b.events", Events: strings.NewReader("10s weight -t 10.0.0.100:80 -r 10.0.0.1:80 5\n"),
			Workload: Workload{Conns: n, Clients: 1000, Ports: 1000, Rate: 1000, Hold: Dist{kind: distExp, a: time.Second}},
		}
		if err := Run(cfg, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/conn")
}
