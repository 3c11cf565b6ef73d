package control

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/uvs-lb/uvs/ipvsadm"
)

func u64(v uint64) *uint64 { return &v }

// sampleCounters are two workers (the first stopped), a per-worker
// counter, one a stopped worker cannot give, and a global one.
func sampleCounters() Counters {
	return Counters{
		Workers: []CounterWorker{{ID: 0}, {ID: 1, Running: true}},
		Counters: []Counter{
			{Name: "dataplane.rx", Total: 1234567, Workers: []*uint64{u64(1234000), u64(567)}},
			{Name: "afpacket.ring-drops", Total: 3, Workers: []*uint64{nil, u64(3)}},
			{Name: "conntrack.entries", Total: 12},
		},
	}
}

func TestFormatCounters(t *testing.T) {
	var b strings.Builder
	if err := FormatCounters(&b, sampleCounters()); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"COUNTER               TOTAL     w0-  w1\n" +
		"dataplane.rx        1234567 1234000 567\n" +
		"afpacket.ring-drops       3       -   3\n" +
		"conntrack.entries        12\n"
	if b.String() != want {
		t.Errorf("--counters:\n%s\nwant\n%s", b.String(), want)
	}
	// The layout is what scripts read: fields split on blanks.
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n")[1:] {
		f := strings.Fields(line)
		if f[0] == "dataplane.rx" && (len(f) != 4 || f[1] != "1234567") {
			t.Errorf("fields of %q: %q", line, f)
		}
	}
	b.Reset()
	if err := FormatCounters(&b, Counters{}); err != nil || b.String() != "COUNTER TOTAL\n" {
		t.Errorf("no counters: %q, %v", b.String(), err)
	}
}

func TestFormatCountersJSON(t *testing.T) {
	var b strings.Builder
	cs := sampleCounters()
	if err := FormatCountersJSON(&b, cs); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Errorf("not one line: %q", out)
	}
	if !strings.Contains(out, `{"name":"afpacket.ring-drops","total":3,"workers":[null,3]}`) ||
		!strings.Contains(out, `{"name":"conntrack.entries","total":12}`) ||
		!strings.Contains(out, `"workers":[{"id":0,"running":false},{"id":1,"running":true}]`) {
		t.Errorf("JSON layout changed: %s", out)
	}
	var back Counters
	if err := json.Unmarshal([]byte(out), &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, cs) {
		t.Errorf("round trip: %+v, want %+v", back, cs)
	}
	b.Reset()
	if err := FormatCountersJSON(&b, Counters{}); err != nil || b.String() != `{"workers":[],"counters":[]}`+"\n" {
		t.Errorf("empty: %q, %v", b.String(), err)
	}
}

// TestCountersCommand runs uvsadm --counters through Run: open to a user
// that is not root (as /proc/net/ip_vs_stats is), --json selects JSON,
// and options of other commands are refused.
func TestCountersCommand(t *testing.T) {
	st := newFixture(t)
	calls := 0
	env := Env{Prog: "ipvsadm", Counters: func() Counters { calls++; return sampleCounters() }}
	r := runCLI(st, env, "", "--counters")
	var want strings.Builder
	_ = FormatCounters(&want, sampleCounters())
	if r.code != 0 || r.err != "" || r.out != want.String() {
		t.Errorf("unprivileged --counters: %+v", r)
	}
	r = runCLI(st, env, "", "--counters", "--json")
	want.Reset()
	_ = FormatCountersJSON(&want, sampleCounters())
	if r.code != 0 || r.err != "" || r.out != want.String() {
		t.Errorf("--counters --json: %+v", r)
	}
	if calls != 2 {
		t.Errorf("Counters read %d times, want 2", calls)
	}
	for _, args := range [][]string{{"--counters", "-n"}, {"-L", "--json"}, {"--counters", "-t", "10.0.0.1:80"}} {
		if r := runCLI(st, env, "", args...); r.code != ipvsadm.ExitUsage || r.out != "" {
			t.Errorf("%q: %+v, want a usage error", args, r)
		}
	}
	// Without a reader: the header alone.
	if r := runCLI(st, Env{Prog: "ipvsadm"}, "", "--counters"); r.code != 0 || r.out != "COUNTER TOTAL\n" {
		t.Errorf("no reader: %+v", r)
	}
}

func TestChanges(t *testing.T) {
	for _, c := range []struct {
		prog string
		args string
		want bool
	}{
		{"ipvsadm", "-A -t 10.0.0.1:80", true},
		{"ipvsadm", "-C", true},
		{"ipvsadm", "-Z", true},
		{"ipvsadm", "-R", true},
		{"ipvsadm", "--set 1 2 3", true},
		{"ipvsadm", "--start-daemon master", true},
		{"ipvsadm", "-P -t 10.0.0.1:80 -z 10.0.0.2", true},
		{"uvsadm-restore", "", true},
		{"ipvsadm", "", false}, // no arguments: -L
		{"ipvsadm", "-Ln --stats", false},
		{"ipvsadm", "-S -n", false},
		{"ipvsadm-save", "-n", false},
		{"ipvsadm", "-G -t 10.0.0.1:80", false},
		{"ipvsadm", "--list-checkers", false},
		{"ipvsadm", "--counters --json", false},
		{"ipvsadm", "-h", false},
		{"ipvsadm", "-v", false},
		{"ipvsadm", "-A -t nonsense", false},
	} {
		if got := Changes(c.prog, strings.Fields(c.args)); got != c.want {
			t.Errorf("Changes(%s %s) = %v, want %v", c.prog, c.args, got, c.want)
		}
	}
}
