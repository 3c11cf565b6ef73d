package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/uvs-lb/uvs/sched"
	"github.com/uvs-lb/uvs/spec"
)

const natRules = `# the seeds' NAT lab: rr on :80, wrr with port mapping on :8080, UDP, IPv6
-A -t 10.0.1.100:80 -s rr
-a -t 10.0.1.100:80 -r 10.0.2.11:80 -m -w 1
-a -t 10.0.1.100:80 -r 10.0.2.12:80 -m -w 1
-A -t 10.0.1.100:8080 -s wrr
-a -t 10.0.1.100:8080 -r 10.0.2.11:80 -m -w 3
-a -t 10.0.1.100:8080 -r 10.0.2.12:80 -m -w 1
-A -u 10.0.1.100:53 -s rr
-a -u 10.0.1.100:53 -r 10.0.2.11:5353 -m
-a -u 10.0.1.100:53 -r 10.0.2.12:5353 -m
-A -t [fd00:1::100]:80 -s rr
-a -t [fd00:1::100]:80 -r [fd00:2::11]:80 -m
-a -t [fd00:1::100]:80 -r [fd00:2::12]:80 -m
`

// expectedSequence runs the scheduling core on the same destinations to get
// the order the director must follow (the core itself is checked against
// the kernel's sequences in sched/).
func expectedSequence(t *testing.T, name string, dests []spec.Dest, n int) []string {
	t.Helper()
	svc, err := sched.NewService(spec.Service{Key: spec.ServiceKey{Proto: spec.ProtoTCP,
		Addr: netip.MustParseAddr("10.0.1.100"), Port: 80}, Scheduler: name}, sched.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dests {
		if _, err := svc.AddDest(d); err != nil {
			t.Fatal(err)
		}
	}
	names := map[netip.Addr]string{netip.MustParseAddr("10.0.2.11"): "rs1", netip.MustParseAddr("10.0.2.12"): "rs2"}
	var out []string
	for i := 0; i < n; i++ {
		d := svc.Schedule(&sched.Flow{Proto: spec.ProtoTCP})
		out = append(out, names[d.Addr()])
	}
	return out
}

func TestNAT(t *testing.T) {
	l := newNATLab(t)
	u := startUVSD(t, l.dir, natRules)

	t.Run("rr alternates", func(t *testing.T) {
		want := expectedSequence(t, "rr", []spec.Dest{
			{Addr: netip.MustParseAddr("10.0.2.11"), Port: 80, Weight: 1},
			{Addr: netip.MustParseAddr("10.0.2.12"), Port: 80, Weight: 1}}, 4)
		var got []string
		for i := 0; i < 4; i++ {
			got = append(got, curl(t, l.cli, "http://10.0.1.100/"))
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("rr answers %v, want %v", got, want)
		}
		if got[0] == got[1] {
			t.Fatalf("rr did not alternate: %v", got)
		}
	})

	t.Run("wrr follows weights with port mapping", func(t *testing.T) {
		want := expectedSequence(t, "wrr", []spec.Dest{
			{Addr: netip.MustParseAddr("10.0.2.11"), Port: 80, Weight: 3},
			{Addr: netip.MustParseAddr("10.0.2.12"), Port: 80, Weight: 1}}, 8)
		var got []string
		count := map[string]int{}
		for i := 0; i < 8; i++ {
			b := curl(t, l.cli, "http://10.0.1.100:8080/")
			got = append(got, b)
			count[b]++
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("wrr answers %v, want %v", got, want)
		}
		if count["rs1"] <= count["rs2"] {
			t.Fatalf("weight 3 server answered %d times, weight 1 server %d", count["rs1"], count["rs2"])
		}
	})

	t.Run("20MB download intact", func(t *testing.T) {
		if got := curlSum(t, l.cli, "http://10.0.1.100/big"); got != bigSum {
			t.Fatalf("download sha256 %s, want %s", got, bigSum)
		}
	})

	t.Run("UDP", func(t *testing.T) {
		seen := map[string]bool{}
		for i := 0; i < 4; i++ {
			r := udpExchange(t, l.cli, "10.0.1.100:53", fmt.Sprintf("ping%d", i))
			name, payload, ok := strings.Cut(r, ":")
			if !ok || payload != fmt.Sprintf("ping%d", i) {
				t.Fatalf("UDP reply %q", r)
			}
			seen[name] = true
		}
		if !seen["rs1"] || !seen["rs2"] {
			t.Fatalf("UDP rr reached only %v", seen)
		}
	})

	t.Run("IPv6", func(t *testing.T) {
		a := curl(t, l.cli, "http://[fd00:1::100]/")
		b := curl(t, l.cli, "http://[fd00:1::100]/")
		if a == b || !strings.HasPrefix(a, "rs") || !strings.HasPrefix(b, "rs") {
			t.Fatalf("IPv6 rr answers %q, %q", a, b)
		}
		if got := curlSum(t, l.cli, "http://[fd00:1::100]/big"); got != bigSum {
			t.Fatalf("IPv6 download sha256 %s, want %s", got, bigSum)
		}
	})

	t.Run("clean exit leaves no rule", func(t *testing.T) {
		if out := l.dir.Exec(t, "nft", "list", "tables"); !strings.Contains(out, "uvs") {
			t.Fatalf("while running, expected the uvs table, got:\n%s", out)
		}
		u.stop(t)
		if out := l.dir.Exec(t, "nft", "list", "tables"); strings.Contains(out, "uvs") {
			t.Fatalf("after SIGTERM the director still has:\n%s", out)
		}
	})
}
