package sim

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// hashRSOrders are the same six real servers (one with weight 2, one on
// another port) added in three orders, as three directors configured by
// hand might (the orders of sched's TestHashOrderAgreement).
var hashRSOrders = [][]string{
	{"10.0.2.11:80", "10.0.2.12:80", "10.0.2.13:80", "10.0.2.14:80", "10.0.2.15:80", "10.0.2.16:8080"},
	{"10.0.2.16:8080", "10.0.2.15:80", "10.0.2.14:80", "10.0.2.13:80", "10.0.2.12:80", "10.0.2.11:80"},
	{"10.0.2.13:80", "10.0.2.11:80", "10.0.2.16:8080", "10.0.2.12:80", "10.0.2.15:80", "10.0.2.14:80"},
}

// hashRules is a rules file for scheduler sched (with -b flags, if any)
// over the real servers added in order.
func hashRules(sched string, order []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "-A -t 10.0.0.100:80 -s %s\n", sched)
	for _, rs := range order {
		w := 1
		if rs == "10.0.2.13:80" {
			w = 2
		}
		fmt.Fprintf(&b, "-a -t 10.0.0.100:80 -r %s -g -w %d\n", rs, w)
	}
	return b.String()
}

// hashChoices runs the same generated workload (same seed: the same
// clients arrive in the same order) over rules and returns the real server
// of each connection.
func hashChoices(t *testing.T, rules string, list bool) []string {
	t.Helper()
	cfg := Config{
		RulesName: "test.rules", Rules: strings.NewReader(rules),
		Workload: Workload{Conns: 4000, Clients: 3000, Ports: 1000, Rate: 1000,
			Hold: Dist{kind: distConst, a: 10 * time.Millisecond}},
		Seed: 5, Trace: true, ListHashOrder: list,
	}
	var out bytes.Buffer
	if err := Run(cfg, &out); err != nil {
		t.Fatal(err)
	}
	conns, _ := parseTraceOut(t, out.String())
	if len(conns) != cfg.Workload.Conns {
		t.Fatalf("%d connections traced, want %d", len(conns), cfg.Workload.Conns)
	}
	return dests(conns)
}

func countDiff(a, b []string) int {
	n := 0
	for i := range a {
		if a[i] != b[i] {
			n++
		}
	}
	return n
}

// TestHashOrderAgreement: in the default order (sorted, uvsd's default)
// mh and sh send every connection to the same real server whatever order
// the real servers were added in, as every director behind ECMP must. In
// list order (the kernel's, --hash-order list) the choice depends on the
// order of addition.
func TestHashOrderAgreement(t *testing.T) {
	for _, sched := range []string{"mh", "mh -b mh-port", "sh", "sh -b sh-port"} {
		t.Run(sched, func(t *testing.T) {
			ref := hashChoices(t, hashRules(sched, hashRSOrders[0]), false)
			for _, order := range hashRSOrders[1:] {
				if d := countDiff(ref, hashChoices(t, hashRules(sched, order), false)); d > 0 {
					t.Errorf("sorted: added as %v, %d of %d connections go elsewhere than added as %v", order, d, len(ref), hashRSOrders[0])
				}
			}
			a := hashChoices(t, hashRules(sched, hashRSOrders[0]), true)
			b := hashChoices(t, hashRules(sched, hashRSOrders[2]), true)
			d := countDiff(a, b)
			t.Logf("list order: %d of %d connections differ between two orders of addition", d, len(a))
			if d == 0 {
				t.Error("list order: no connection differs between orders of addition; the test no longer shows the kernel's order dependence")
			}
		})
	}
}

// TestHashOrderListIsKernel: where the kernel's list is already sorted
// (real servers added in descending order: the list is newest first) both
// orders give the same choices; otherwise they differ, and
// --hash-order list is the kernel's.
func TestHashOrderListIsKernel(t *testing.T) {
	desc := slices.Clone(hashRSOrders[0])
	slices.Reverse(desc)
	for _, sched := range []string{"mh", "sh"} {
		if d := countDiff(hashChoices(t, hashRules(sched, desc), true), hashChoices(t, hashRules(sched, desc), false)); d > 0 {
			t.Errorf("%s added in descending order: %d connections differ between list and sorted order", sched, d)
		}
		if d := countDiff(hashChoices(t, hashRules(sched, hashRSOrders[0]), true), hashChoices(t, hashRules(sched, hashRSOrders[0]), false)); d == 0 {
			t.Errorf("%s added in ascending order: list and sorted order agree on every connection", sched)
		}
	}
}

// mhChurnArgs is sim/README.md's churn example.
var mhChurnArgs = []string{"--rules", "testdata/mh.rules", "--events", "testdata/mh.events",
	"--conns", "20000", "--clients", "2000", "--rate", "250", "--hold", "exp:4s", "--seed", "7"}

// The churn example's summary in list order: what uvs-sim printed before
// --hash-order existed (the kernel's order was then the only one), and
// what sim/README.md showed.
const mhChurnList = `  10.0.0.5:80                 2     3443   17.21%    17.12%    423    132.57     190
  10.0.0.3:80                 1     4526   22.63%    23.13%    326    169.29     367
  10.0.0.2:80                 1     4726   23.63%    23.13%    366    180.03     345
  10.0.0.1:80                 3     6075   30.38%    30.40%    463    231.19     247
  10.0.0.4:80               del     1230    6.15%     6.22%    253     47.45     454
  max share/expected: 1.022; clients remapped after events: 1603
`

// The same in sorted order (the default): the tables are built from
// 10.0.0.1..4, then 10.0.0.1,2,3,5, instead of the list 4 3 2 1, then
// 5 3 2 1.
const mhChurnSorted = `  10.0.0.5:80                 2     3434   17.17%    17.12%    423    132.39     191
  10.0.0.3:80                 1     4527   22.64%    23.13%    327    169.53     364
  10.0.0.2:80                 1     4722   23.61%    23.13%    366    179.86     347
  10.0.0.1:80                 3     6093   30.46%    30.40%    465    231.50     247
  10.0.0.4:80               del     1224    6.12%     6.22%    252     47.24     452
  max share/expected: 1.021; clients remapped after events: 1601
`

// TestHashOrderChurnGolden: --hash-order list reproduces the kernel-order
// figures uvs-sim gave before the option existed; the default (and
// --hash-order sorted) gives the sorted figures sim/README.md shows.
func TestHashOrderChurnGolden(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		extra []string
		want  string
	}{
		{nil, mhChurnSorted},
		{[]string{"--hash-order", "sorted"}, mhChurnSorted},
		{[]string{"--hash-order", "list"}, mhChurnList},
	} {
		var stdout, stderr bytes.Buffer
		if code := Main(append(slices.Clone(mhChurnArgs), c.extra...), &stdout, &stderr); code != ExitOK {
			t.Fatalf("%v: exit %d: %s", c.extra, code, stderr.String())
		}
		if !strings.HasSuffix(stdout.String(), c.want) {
			t.Errorf("%v: summary\n%s\nwant it to end with\n%s", c.extra, stdout.String(), c.want)
		}
		if !bytes.Contains(readme, []byte(c.want)) {
			t.Errorf("README.md does not show the churn summary for %v:\n%s", c.extra, c.want)
		}
	}
}

// TestMainHashOrder: a bad --hash-order value is named, exits 2 and
// writes nothing; --help documents the option.
func TestMainHashOrder(t *testing.T) {
	svg := filepath.Join(t.TempDir(), "out.svg")
	var stdout, stderr bytes.Buffer
	code := Main([]string{"--rules", "testdata/mh.rules", "--hash-order", "Sorted-ish", "--svg", svg}, &stdout, &stderr)
	if code != ExitUsage {
		t.Fatalf("exit %d, want %d", code, ExitUsage)
	}
	if msg := stderr.String(); !strings.Contains(msg, `--hash-order "Sorted-ish"`) || !strings.Contains(msg, "sorted or list") {
		t.Fatalf("stderr %q does not name the value and the choices", msg)
	}
	if stdout.Len() != 0 {
		t.Fatalf("stdout %q", stdout.String())
	}
	if _, err := os.Stat(svg); err == nil {
		t.Fatal("svg file created on a bad --hash-order")
	}
	stdout.Reset()
	if code := Main([]string{"--help"}, &stdout, &stderr); code != ExitOK || !strings.Contains(stdout.String(), "--hash-order O") {
		t.Fatalf("--help: exit %d, does not document --hash-order:\n%s", code, stdout.String())
	}
}
