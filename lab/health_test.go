package lab

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHealthCheck runs seed 004's story end to end: rs1's web server
// stops, keepalived's TCP_CHECK in uvsd takes rs1 out of the pool (its log
// line, ipvsadm -Ln without it), every request after that is answered by
// rs2, and rs1 is added back when it serves again. It asserts what
// happened, never how long it took.
func TestHealthCheck(t *testing.T) {
	tl := newTestLab(t)
	rep, err := tl.Run(testCtx(t), "health-check", RunOptions{Requests: 4})
	if err != nil {
		t.Fatal(err)
	}
	h := rep.Health
	if h == nil {
		t.Fatal("no health-check report")
	}
	if want := "Removing service [10.0.0.7]:tcp:80 from VS [10.0.0.100]:tcp:80"; h.RemovedLine != want {
		t.Fatalf("removal line %q, want %q", h.RemovedLine, want)
	}
	if listed(h.ListingAfter, "10.0.0.7:80") || !listed(h.ListingAfter, "10.0.0.17:80") {
		t.Fatalf("-Ln after the removal should list rs2 only:\n%s", h.ListingAfter)
	}
	if len(h.During) == 0 {
		t.Fatal("no request sent while rs1 was down")
	}
	if len(h.After) != 4 {
		t.Fatalf("%d requests after the removal, want 4", len(h.After))
	}
	for _, r := range h.After {
		if !r.OK() || r.Answer != "rs2" {
			t.Fatalf("request %d after rs1 was removed: answer %q, error %v; want rs2", r.N, r.Answer, r.Err)
		}
	}
	if want := "Adding service [10.0.0.7]:tcp:80 to VS [10.0.0.100]:tcp:80"; h.AddedLine != want {
		t.Fatalf("re-add line %q, want %q", h.AddedLine, want)
	}
	if h.Removed.Before(h.Stopped) || h.Added.Before(h.Removed) {
		t.Fatalf("out of order: stopped %v, removed %v, added %v", h.Stopped, h.Removed, h.Added)
	}
	seen := map[string]int{}
	for _, r := range h.Back {
		if !r.OK() {
			t.Fatalf("request %d after rs1 came back failed: %v", r.N, r.Err)
		}
		seen[r.Answer]++
	}
	if seen["rs1"] != 2 || seen["rs2"] != 2 {
		t.Fatalf("after rs1 came back: %v, want rs1=2 rs2=2 (rr)", seen)
	}
	out := tl.out.String()
	for _, want := range []string{"[director]# cat > ", "TCP_CHECK {", "[director]# uvsd --keepalived ", "[rs1]# kill ",
		"TCP connection to [10.0.0.7]:tcp:80 success.", "keepalived's worst case", "[rs1]# uvs-lab httpd --name rs1"} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	if nss := tl.namespaces(t); len(nss) != 0 {
		t.Fatalf("run left namespaces %v", nss)
	}
}

// TestKeepalivedConf: uvsd accepts the keepalived.conf the scenario writes
// (uvsd --check --keepalived), with the lab's timers.
func TestKeepalivedConf(t *testing.T) {
	conf := mustScenario(t, "health-check").plan(Params{Sched: "wrr", Weights: map[string]int{"rs1": 3}}, nil).steps
	var text string
	for _, st := range conf {
		if st.kind == stepFile {
			text = st.argv[1]
		}
	}
	for _, want := range []string{"delay_loop 2\n", "lb_algo wrr\n", "lb_kind DR\n", "real_server 10.0.0.7 80 {\n        weight 3\n",
		"connect_timeout 1\n", "retry 1\n", "delay_before_retry 1\n"} {
		if !strings.Contains(text, want) {
			t.Fatalf("keepalived.conf lacks %q:\n%s", want, text)
		}
	}
	if kaWorstCase() != 5*time.Second {
		t.Fatalf("worst case %v, want 2 + 1 + 1 × (1 + 1) = 5s", kaWorstCase())
	}
	path := filepath.Join(t.TempDir(), "keepalived.conf")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(filepath.Join(builtBin, "uvsd"), "--check", "--keepalived", path).CombinedOutput(); err != nil {
		t.Fatalf("uvsd --check --keepalived: %v\n%s\n%s", err, out, text)
	}
}

func TestParseLogLine(t *testing.T) {
	l, ok := parseLogLine("2026-12-07T03:03:43.069Z\tinfo\thealthcheck/checker.go:395\tTCP connection to [10.0.0.7]:tcp:80 success.\t{\"checker\": \"TCP_CHECK\"}")
	if !ok || l.Msg != "TCP connection to [10.0.0.7]:tcp:80 success." || l.TS.UnixMilli()%1000 != 69 {
		t.Fatalf("parsed %+v %v", l, ok)
	}
	for _, bad := range []string{"", "not a log line", "x\ty\tz\tw"} {
		if _, ok := parseLogLine(bad); ok {
			t.Errorf("parsed %q", bad)
		}
	}
}
