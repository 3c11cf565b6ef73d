package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/sched"
	"github.com/uvs-lb/uvs/spec"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// checkAnswered asserts that every request was answered, and answered by
// the real server the director's trace says it chose.
func checkAnswered(t *testing.T, tl *testLab, sc string, rs []Result) {
	t.Helper()
	if len(rs) == 0 {
		t.Fatal("no request sent")
	}
	pl := mustScenario(t, sc).plan(Params{}, nil)
	for _, r := range rs {
		if !r.OK() {
			t.Fatalf("request %d (%s from %s) failed: %v", r.N, r.URL, r.Client, r.Err)
		}
		if !r.Decided || !r.Real.IsValid() {
			t.Fatalf("request %d from %s: no scheduling decision in the director's trace", r.N, r.Client)
		}
		name := ""
		for _, s := range pl.servers {
			if s.Addr == r.Real.Addr() {
				name = s.Name
			}
		}
		if name != r.Answer {
			t.Fatalf("request %d: the director chose %s (%s) but %s answered", r.N, r.Real, name, r.Answer)
		}
		if r.Why == "" {
			t.Fatalf("request %d: no reason", r.N)
		}
	}
}

func mustScenario(t *testing.T, name string) *Scenario {
	t.Helper()
	sc, ok := LookupScenario(name)
	if !ok {
		t.Fatalf("no scenario %s", name)
	}
	return sc
}

// TestScenarios runs every scenario end to end with its default scheduler
// and checks the answers table.
func TestScenarios(t *testing.T) {
	for _, sc := range Scenarios() {
		if sc.Name == "persistence" || sc.Name == "health-check" || sc.Name == "sync" || sc.Name == "ecmp" || sc.Name == "ecmp-fullnat" || slices.Contains(haScenarios, sc) {
			continue // TestPersistence, TestHealthCheck, TestSync, TestECMP(FullNAT), TestHA*
		}
		t.Run(sc.Name, func(t *testing.T) {
			tl := newTestLab(t)
			rep, err := tl.Run(testCtx(t), sc.Name, RunOptions{Requests: 8})
			if err != nil {
				t.Fatal(err)
			}
			checkAnswered(t, tl, sc.Name, rep.Results)
			if len(rep.Results) != 8 {
				t.Fatalf("%d results, want 8", len(rep.Results))
			}
			switch rep.Sched {
			case "rr", "wrr": // equal weights: strict alternation
				for i := 1; i < len(rep.Results); i++ {
					if rep.Results[i].Answer == rep.Results[i-1].Answer {
						t.Fatalf("%s with equal weights: requests %d and %d both went to %s", rep.Sched, i, i+1, rep.Results[i].Answer)
					}
				}
				if a := rep.Answers(); a["rs1"] != 4 || a["rs2"] != 4 {
					t.Fatalf("answers %v, want rs1=4 rs2=4", a)
				}
			case "sh": // fwmark-http-https: one server per client, http and https alike
				per := map[netip.Addr]string{}
				for _, r := range rep.Results {
					if prev, ok := per[r.Client.Addr()]; ok && prev != r.Answer {
						t.Fatalf("client %s went to %s and to %s: http and https not scheduled together", r.Client.Addr(), prev, r.Answer)
					}
					per[r.Client.Addr()] = r.Answer
				}
				if len(per) != 2 {
					t.Fatalf("requests came from %d clients, want 2", len(per))
				}
			default:
				t.Fatalf("untested default scheduler %s", rep.Sched)
			}
			if sc.Name == "fwmark-http-https" {
				https := 0
				for _, r := range rep.Results {
					if strings.HasPrefix(r.URL, "https://") {
						https++
					}
				}
				if https != 4 {
					t.Fatalf("%d https requests, want 4", https)
				}
			}
			if out := tl.out.String(); !strings.Contains(out, "[director]# ipvsadm -A ") || !strings.Contains(out, "[director]# ipvsadm -Ln") {
				t.Fatalf("the ipvsadm commands were not printed:\n%s", out)
			}
			if nss := tl.namespaces(t); len(nss) != 0 {
				t.Fatalf("run left namespaces %v", nss)
			}
		})
	}
}

// expectedSequence runs the scheduling core on the plan's servers to get
// the order the director must follow.
func expectedSequence(t *testing.T, pl *plan, schedName string, weights map[string]int, n int) []string {
	t.Helper()
	svc, err := sched.NewService(spec.Service{Key: spec.ServiceKey{Proto: spec.ProtoTCP, Addr: pl.vip, Port: 80},
		Scheduler: schedName}, sched.Options{})
	if err != nil {
		t.Fatal(err)
	}
	names := map[netip.Addr]string{}
	for _, rs := range pl.servers {
		w := 1
		if x, ok := weights[rs.Name]; ok {
			w = x
		}
		if _, err := svc.AddDest(spec.Dest{Addr: rs.Addr, Port: 80, Weight: uint32(w)}); err != nil {
			t.Fatal(err)
		}
		names[rs.Addr] = rs.Name
	}
	var out []string
	for i := 0; i < n; i++ {
		d := svc.Schedule(&sched.Flow{Proto: spec.ProtoTCP})
		out = append(out, names[d.Addr()])
	}
	return out
}

// TestSchedulers: weights are honoured, and every scheduler can be chosen
// (one instance, reconfigured by up).
func TestSchedulers(t *testing.T) {
	tl := newTestLab(t)
	ctx := testCtx(t)
	weights := map[string]int{"rs1": 3, "rs2": 1}
	rep, err := tl.Run(ctx, "nat", RunOptions{Params: Params{Sched: "wrr", Weights: weights}, Requests: 8, Keep: true})
	if err != nil {
		t.Fatal(err)
	}
	checkAnswered(t, tl, "nat", rep.Results)
	var got []string
	for _, r := range rep.Results {
		got = append(got, r.Answer)
	}
	want := expectedSequence(t, mustScenario(t, "nat").plan(Params{}, nil), "wrr", weights, 8)
	if !slices.Equal(got, want) {
		t.Fatalf("wrr 3:1 answers %v, want %v", got, want)
	}
	if a := rep.Answers(); a["rs1"] != 6 || a["rs2"] != 2 {
		t.Fatalf("wrr 3:1 answers %v, want rs1=6 rs2=2", a)
	}
	if !strings.Contains(tl.out.String(), "-r 10.0.0.7:80 -m -w 3") {
		t.Fatalf("weight 3 not in the printed commands:\n%s", tl.out.String())
	}
	nss := tl.namespaces(t)
	for _, name := range sched.Names() {
		rep, err := tl.Run(ctx, "nat", RunOptions{Params: Params{Sched: name}, Requests: 2})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkAnswered(t, tl, "nat", rep.Results)
		for _, r := range rep.Results {
			if !strings.Contains(r.Why, name+" chose") {
				t.Fatalf("-s %s: reason %q", name, r.Why)
			}
		}
		if rep.Sched != name {
			t.Fatalf("report says -s %s, want %s", rep.Sched, name)
		}
	}
	if now := tl.namespaces(t); !slices.Equal(now, nss) {
		t.Fatalf("reconfiguring changed the namespaces: %v, then %v", nss, now)
	}
	if err := tl.Down(ctx, "nat"); err != nil {
		t.Fatal(err)
	}
	tl.assertClean(t)
}

// TestPersistence: PPC sticks per port, PCC and PFWMC per client, and the
// template expires (polled, not slept) so the client is scheduled afresh.
func TestPersistence(t *testing.T) {
	tl := newTestLab(t)
	rep, err := tl.Run(testCtx(t), "persistence", RunOptions{Params: Params{Persist: 3}, Requests: 8})
	if err != nil {
		t.Fatal(err)
	}
	checkAnswered(t, tl, "persistence", rep.Results)
	phases := map[string][]Result{}
	for _, r := range rep.Results {
		phases[r.Phase] = append(phases[r.Phase], r)
	}
	for _, ph := range []string{"PPC", "PCC", "PFWMC", "PFWMC expired"} {
		if len(phases[ph]) == 0 {
			t.Fatalf("no request in phase %s", ph)
		}
	}
	sticky := func(ph string, key func(Result) string) map[string]string {
		t.Helper()
		m := map[string]string{}
		for _, r := range phases[ph] {
			k := key(r)
			if prev, ok := m[k]; ok && prev != r.Answer {
				t.Fatalf("%s: %s went to %s and to %s", ph, k, prev, r.Answer)
			}
			m[k] = r.Answer
		}
		return m
	}
	port := func(r Result) string {
		ap, err := requestTarget(r.URL)
		if err != nil {
			t.Fatal(err)
		}
		return r.Client.Addr().String() + " port " + ap.String()
	}
	client := func(r Result) string { return r.Client.Addr().String() }
	ppc := sticky("PPC", port)
	// rs2 is listed first on :443, so with rr a client's two ports differ.
	c1 := httpsCli1
	if ppc[c1+" port "+httpsVIP+":80"] == ppc[c1+" port "+httpsVIP+":443"] {
		t.Fatalf("PPC: both ports of %s on one server (%v): the ports were not scheduled apart", c1, ppc)
	}
	pcc := sticky("PCC", client)
	if len(pcc) != 2 || pcc[httpsCli1] == pcc[httpsCli2] {
		t.Fatalf("PCC: %v, want the two clients on the two servers", pcc)
	}
	for _, r := range phases["PCC"] {
		if !strings.Contains(r.Why, "persistence:") {
			t.Fatalf("PCC reason %q", r.Why)
		}
	}
	sticky("PFWMC", client)
	// The last PFWMC phase requests are client 2's before the expiry.
	var before []Result
	for _, r := range phases["PFWMC"] {
		if r.Client.Addr().String() == httpsCli2 {
			before = append(before, r)
		}
	}
	after := phases["PFWMC expired"]
	if len(before) == 0 || before[0].Answer == after[0].Answer {
		t.Fatalf("after the template expired %s went to %s again (before: %v): rr should move on", httpsCli2, after[0].Answer, before)
	}
	if !strings.Contains(after[0].Why, "new template") || !strings.Contains(after[1].Why, "persistence: template") {
		t.Fatalf("after expiry reasons %q, %q", after[0].Why, after[1].Why)
	}
	if !strings.Contains(tl.out.String(), "(no template for "+httpsCli2+")") {
		t.Fatalf("the expiry was not shown:\n%s", tl.out.String())
	}
}

// TestBreaks runs every break-it exercise: the symptom must appear and the
// fix must remove it.
func TestBreaks(t *testing.T) {
	for _, ex := range Exercises() {
		if ex.run != nil {
			continue // the HA exercises: TestHABreak*
		}
		t.Run(ex.Name, func(t *testing.T) {
			tl := newTestLab(t)
			res, err := tl.Break(testCtx(t), ex.Name, false)
			if err != nil {
				t.Fatal(err)
			}
			if !res.Symptom {
				t.Fatalf("no symptom: %s", res.SymptomText)
			}
			if !res.Fixed {
				t.Fatalf("not fixed; after the fix: %+v", res.After)
			}
			if ex.arp {
				if !slices.ContainsFunc(res.ARPBroken, func(w string) bool { return strings.HasPrefix(w, "rs") }) {
					t.Fatalf("broken: ARP answered by %v, want a real server among them", res.ARPBroken)
				}
				if !slices.Equal(res.ARPFixed, []string{"director eth0"}) {
					t.Fatalf("fixed: ARP answered by %v, want the director alone", res.ARPFixed)
				}
			} else {
				for _, r := range res.Broken {
					if r.OK() {
						t.Fatalf("broken, yet request %d was answered by %s", r.N, r.Answer)
					}
				}
				if !strings.Contains(res.SymptomText, ex.counter) {
					t.Fatalf("symptom %q does not show the %s counter growing", res.SymptomText, ex.counter)
				}
			}
			checkAnswered(t, tl, ex.Scenario, res.After)
		})
	}
}

// TestUpIdempotentDownClean: a second up changes nothing, down leaves
// nothing, and leftovers of a crashed run are removed.
func TestUpIdempotentDownClean(t *testing.T) {
	tl := newTestLab(t)
	ctx := testCtx(t)
	if err := tl.Up(ctx, "dr-tun-mixed", Params{}); err != nil {
		t.Fatal(err)
	}
	st, err := tl.loadState("dr-tun-mixed")
	if err != nil || st == nil {
		t.Fatalf("no state after up: %v", err)
	}
	nss := tl.namespaces(t)
	procs := tl.processes()
	if len(nss) != 6 || len(procs) != 4 { // uvsd, 2 httpd, rs2's uvs-rs decapsulator
		t.Fatalf("after up: namespaces %v, processes %v", nss, procs)
	}
	if err := tl.Up(ctx, "dr-tun-mixed", Params{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tl.out.String(), "dr-tun-mixed is already up") {
		t.Fatalf("second up did not notice:\n%s", tl.out.String())
	}
	if now := tl.namespaces(t); !slices.Equal(now, nss) {
		t.Fatalf("second up changed the namespaces: %v, then %v", nss, now)
	}
	if now := tl.processes(); !slices.Equal(now, procs) {
		t.Fatalf("second up changed the processes:\n%v\nthen\n%v", procs, now)
	}
	out, err := (&session{l: tl.Lab, st: st, pl: mustScenario(t, "dr-tun-mixed").plan(st.Params, nil)}).ipvsadm(ctx, false, "-Ln")
	if err != nil || !strings.Contains(out, "Route") || !strings.Contains(out, "Tunnel") || strings.Count(out, "->") != 3 {
		t.Fatalf("after two ups the director has:\n%s (%v)", out, err)
	}
	if err := tl.Down(ctx, "dr-tun-mixed"); err != nil {
		t.Fatal(err)
	}
	tl.assertClean(t)
	if err := tl.Down(ctx, "dr-tun-mixed"); err != nil {
		t.Fatalf("down of what is down: %v", err)
	}

	// A crash left a namespace of the instance and no state: up removes
	// it first, and down without a name finds and removes it too.
	name := nsName(tl.prefix, "nat", "client")
	if out, err := runCmd(ctx, "ip", "netns", "add", name); err != nil {
		t.Fatal(out, err)
	}
	if err := tl.Up(ctx, "nat", Params{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tl.err.String(), "removing namespaces a previous run left: "+name) {
		t.Fatalf("leftover not reported:\n%s", tl.err.String())
	}
	if err := tl.Down(ctx, ""); err != nil {
		t.Fatal(err)
	}
	tl.assertClean(t)
	if _, err := runCmd(ctx, "ip", "netns", "add", name); err != nil {
		t.Fatal(err)
	}
	if err := tl.Down(ctx, ""); err != nil {
		t.Fatal(err)
	}
	tl.assertClean(t)
}

// TestInterruptedUp: Ctrl-C (the context cancelled) in the middle of up
// removes what was built. The interruption comes when uvsd is being
// started, deterministically, from the output.
func TestInterruptedUp(t *testing.T) {
	for _, when := range []string{"[rs2]# uvs-rs tun up", "[director]# uvsd ", "[director]# ipvsadm -a "} {
		t.Run(strings.Fields(when)[1], func(t *testing.T) {
			tl := newTestLab(t)
			ctx, cancel := context.WithCancel(testCtx(t))
			defer cancel()
			tl.out.onWrite = func(s string) {
				if strings.Contains(s, when) {
					cancel()
				}
			}
			err := tl.Up(ctx, "tun", Params{})
			if err == nil || !strings.Contains(err.Error(), "interrupted") {
				t.Fatalf("interrupted up returned %v", err)
			}
			tl.assertClean(t)
		})
	}
}

// TestInterruptedRun: Ctrl-C between two phases of a run removes the lab.
func TestInterruptedRun(t *testing.T) {
	tl := newTestLab(t)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	tl.out.onWrite = func(s string) {
		if strings.Contains(s, "== PCC") {
			cancel()
		}
	}
	_, err := tl.Run(ctx, "persistence", RunOptions{Requests: 4})
	if err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("interrupted run returned %v", err)
	}
	if !strings.Contains(tl.err.String(), "interrupted: removing persistence") {
		t.Fatalf("no word of the cleanup:\n%s", tl.err.String())
	}
	tl.assertClean(t)
}

// TestExplainAndPcap: explain shows NAT's rewrite hop by hop, and --pcap
// keeps one capture per hop.
func TestExplainAndPcap(t *testing.T) {
	tl := newTestLab(t)
	dir := t.TempDir()
	if err := tl.Explain(testCtx(t), "nat", RunOptions{Pcap: dir}); err != nil {
		t.Fatal(err)
	}
	out := tl.out.String()
	for _, want := range []string{"hop 1  client eth0", "director eth1 (in)", "switch p-director", "dst IP 192.168.10.100 > 10.0.0."} {
		if !strings.Contains(out, want) {
			t.Fatalf("explain output lacks %q:\n%s", want, out)
		}
	}
	pl := mustScenario(t, "nat").plan(Params{}, nil)
	for i, h := range pl.hops {
		p := filepath.Join(dir, fmt.Sprintf("%d-%s-%s.pcap", i+1, h.Role, h.Dev))
		st, err := os.Stat(p)
		if err != nil {
			t.Fatalf("pcap of %s: %v", h.Label, err)
		}
		// 24 bytes is the pcap file header alone.
		if (h.Role == "client" || h.Role == "director") && st.Size() <= 24 {
			t.Fatalf("pcap %s has no frame", p)
		}
	}
}

// TestDemo is make demo's run: four modes, real traffic, one table.
func TestDemo(t *testing.T) {
	tl := newTestLab(t)
	rows, err := tl.Demo(testCtx(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(DemoScenarios) {
		t.Fatalf("%d rows", len(rows))
	}
	for _, r := range rows {
		if r.Err != nil || r.Report.Errors() != 0 {
			t.Fatalf("%s: %v, %d errors", r.Report.Scenario, r.Err, r.Report.Errors())
		}
		if a := r.Report.Answers(); a["rs1"] != 2 || a["rs2"] != 2 {
			t.Fatalf("%s: answers %v", r.Report.Scenario, a)
		}
	}
	out := tl.out.String()
	if !strings.Contains(out, "answers per real server") || !strings.Contains(out, "FULLNAT (-b)  fullnat") {
		t.Fatalf("demo table:\n%s", out)
	}
}
