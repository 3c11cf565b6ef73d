package bench

import (
	"strings"
	"testing"
)

func TestParseConnStates(t *testing.T) {
	out := `IPVS connection entries
pro expire state       source             virtual            destination
TCP 00:59  SYN_RECV    1.2.3.4:1000       10.0.0.1:80        198.18.2.2:80
TCP 00:58  SYN_RECV    1.2.3.5:1000       10.0.0.1:80        198.18.2.2:80
TCP 01:58  TIME_WAIT   1.2.3.6:1000       10.0.0.1:80        198.18.3.2:80
UDP 04:59  UDP         1.2.3.7:1000       10.0.0.1:53        198.18.3.2:53
`
	n, states := ParseConnStates(out)
	if n != 4 || states["SYN_RECV"] != 2 || states["TIME_WAIT"] != 1 || states["UDP"] != 1 || len(states) != 3 {
		t.Fatalf("ParseConnStates = %d, %v", n, states)
	}
	if n, states := ParseConnStates("IPVS connection entries\n"); n != 0 || len(states) != 0 {
		t.Fatalf("empty listing: %d, %v", n, states)
	}
}

// The flood section lists every flood run, errors included, and nothing
// when there is none.
func TestFloodMarkdown(t *testing.T) {
	var b strings.Builder
	floodMarkdown(&Report{}, &b)
	if b.Len() != 0 {
		t.Fatalf("no flood runs rendered %q", b.String())
	}
	r := &Report{Method: map[string]string{"flood": "how"}, Runs: []Run{
		{Candidate: FloodCandidate, Figure: FigFloodUDP, Value: 99, Extra: map[string]float64{"requests": 110, "during": 100, "after": 10,
			"peak_conns": 131072, "capacity": 131072, "drained": 1, "drain_s": 42, "rss_before_mib": 46, "rss_peak_mib": 65, "new_conns_per_s": 90000}},
		{Candidate: FloodCandidate, Figure: FigFloodSYN, Err: "hping3: exited"},
		{Candidate: "uvs-nat", Figure: FigUDPSat, Value: 1},
	}}
	floodMarkdown(r, &b)
	got := b.String()
	for _, want := range []string{"how", "| flood-syn | 1 | error: hping3: exited |", "| flood-udp | 1 | 99.0 % | 110 (100 + 10) | 131072 / 131072 | 42 s | 46 → 65 MiB | 90000 |"} {
		if !strings.Contains(got, want) {
			t.Errorf("flood section lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "uvs-nat |") {
		t.Errorf("flood section shows another candidate's run:\n%s", got)
	}
}
