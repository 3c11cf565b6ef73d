package layout

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/uvs-lb/uvs"

// pkg is one package of the module with its direct imports and its whole
// dependency closure, both restricted to the module and relative to it.
type pkg struct {
	imports []string
	deps    []string
}

// load lists every package of the module for the running GOOS.
func load(t *testing.T) map[string]pkg {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the dependency rules need the go command on PATH: %v", err)
	}
	cmd := exec.Command(gobin, "list", "-f", "{{.ImportPath}}|{{join .Imports \" \"}}|{{join .Deps \" \"}}", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	own := func(list string) []string {
		var r []string
		for _, p := range strings.Fields(list) {
			if p == module || strings.HasPrefix(p, module+"/") {
				r = append(r, rel(p))
			}
		}
		return r
	}
	pkgs := map[string]pkg{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), "|", 3)
		if len(f) != 3 {
			t.Fatalf("go list: unexpected line %q", sc.Text())
		}
		pkgs[rel(f[0])] = pkg{imports: own(f[1]), deps: own(f[2])}
	}
	if len(pkgs) < 20 {
		t.Fatalf("go list found %d packages of the module; the rules need the whole module", len(pkgs))
	}
	return pkgs
}

func rel(p string) string { return strings.TrimPrefix(strings.TrimPrefix(p, module), "/") }

// under reports whether p is dir or inside it.
func under(p string, dirs ...string) bool {
	for _, d := range dirs {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

// The data plane: what moves, tracks and rewrites packets.
var dataPlane = []string{"dataplane", "modes", "conntrack"}

// A rule: the packages selected by from may not reach the packages selected
// by to, directly (direct) or through any dependency.
type rule struct {
	name   string
	from   func(string) bool
	to     func(string) bool
	direct bool
	// must lists packages from has to select, so a rule can never pass
	// because a package was renamed away.
	must []string
}

func is(names ...string) func(string) bool {
	return func(p string) bool { return slices.Contains(names, p) }
}

func in(dirs ...string) func(string) bool {
	return func(p string) bool { return under(p, dirs...) }
}

func or(f, g func(string) bool) func(string) bool { return func(p string) bool { return f(p) || g(p) } }

func not(f func(string) bool) func(string) bool { return func(p string) bool { return !f(p) } }

var rules = []rule{
	{
		name: "uvsadm links no data plane, control plane state or daemon",
		from: is("cmd/uvsadm", "control/client"),
		to:   or(is("control"), in(append(dataPlane, "snapshot", "sched", "director", "lab", "trace")...)),
		must: []string{"cmd/uvsadm", "control/client"},
	},
	{
		name: "uvsadm links only the wire formats and ipvsadm's language",
		from: is("cmd/uvsadm"),
		to:   not(is("control/client", "control/wire", "ipvsadm", "spec")),
		must: []string{"cmd/uvsadm"},
	},
	{
		name: "nothing in uvsd links the lab",
		from: in("cmd/uvsd", "director"),
		to:   in("lab"),
		must: []string{"cmd/uvsd", "director"},
	},
	{
		name: "the lab links no data-plane package",
		from: in("lab", "cmd/uvs-lab"),
		to:   in(dataPlane...),
		must: []string{"lab", "cmd/uvs-lab", "lab/capture", "lab/explain"},
	},
	{
		name: "wire formats import nothing of the module above them",
		from: is("header", "spec", "control/wire", "connsync/wire"),
		to:   func(string) bool { return true },
		must: []string{"header", "spec", "control/wire", "connsync/wire"},
	},
	{
		name: "ipfrag imports only wire formats",
		from: is("ipfrag"),
		to:   not(is("header")),
		must: []string{"ipfrag"},
	},
	{
		name: "the compiled configuration links neither the control plane nor the data plane",
		from: is("snapshot"),
		to:   not(is("sched", "spec")),
		must: []string{"snapshot"},
	},
	{
		name: "the control plane links no data-plane package but the connection table it lists",
		from: in("control"),
		to:   in("dataplane", "modes", "director", "lab"),
		must: []string{"control"},
	},
	{
		name: "the data plane links no control plane, daemon, lab or trace writer",
		from: in(dataPlane...),
		to:   in("control", "director", "lab", "trace", "cmd"),
		must: []string{"dataplane", "modes", "conntrack", "dataplane/afpacket", "dataplane/afxdp"},
	},
	{
		name: "rewrites (modes) work on wire formats only",
		from: is("modes"),
		to:   not(is("header", "spec")),
		must: []string{"modes"},
	},
	{
		name: "the decision trace links no data plane",
		from: is("trace"),
		to:   in(dataPlane...),
		must: []string{"trace"},
	},
	{
		name: "keepalived.conf's reader and the checkers link no data plane, control plane state or daemon",
		from: in("keepalived", "healthcheck"),
		to:   or(is("control", "snapshot"), in(append(dataPlane, "director", "lab", "trace", "ownership")...)),
		must: []string{"keepalived", "healthcheck"},
	},
	{
		name: "the connection-sync daemon links the connection table, not the workers, the control plane or the daemon",
		from: in("connsync"),
		to:   in("dataplane", "modes", "control", "director", "lab", "trace", "ownership"),
		must: []string{"connsync", "connsync/wire"},
	},
	{
		name: "the data plane (and the models and control plane it is built on) links no metrics endpoint: scrapes read, they are never called",
		from: or(in(dataPlane...), in("control", "sched", "snapshot", "connsync", "healthcheck")),
		to:   in("metrics"),
		must: []string{"dataplane", "conntrack", "dataplane/afpacket", "dataplane/afxdp", "control", "sched"},
	},
	{
		name: "the metrics endpoint links no daemon: uvsd hands it its readers",
		from: in("metrics"),
		to:   in("director", "lab", "cmd"),
		must: []string{"metrics"},
	},
	{
		name: "the data plane (and the models and control plane it is built on) links no BGP speaker",
		from: or(in(dataPlane...), in("control", "sched", "snapshot", "connsync", "healthcheck", "keepalived")),
		to:   in("bgp"),
		must: []string{"dataplane", "conntrack", "modes", "dataplane/afpacket", "dataplane/afxdp", "control", "sched"},
	},
	{
		name: "the BGP announcer links nothing of the module outside bgp/: the daemon hands it the VIPs",
		from: in("bgp"),
		to:   not(in("bgp")),
		must: []string{"bgp"},
	},
	{
		name: "the content syncer (uvs-sync) links no data plane, control plane or daemon: it only runs rsync",
		from: in("contentsync", "cmd/uvs-sync"),
		to:   or(is("control", "snapshot", "sched", "spec"), in(append(dataPlane, "director", "lab", "trace", "ownership", "control", "connsync", "healthcheck", "keepalived", "metrics")...)),
		must: []string{"contentsync", "cmd/uvs-sync"},
	},
	{
		name:   "nothing imports a command",
		from:   func(string) bool { return true },
		to:     in("cmd"),
		direct: true,
	},
}

func TestDependencyRules(t *testing.T) {
	pkgs := load(t)
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			for _, m := range r.must {
				if _, ok := pkgs[m]; !ok {
					t.Errorf("package %s is gone: update the rule", m)
				} else if !r.from(m) {
					t.Errorf("the rule does not select %s", m)
				}
			}
			names := make([]string, 0, len(pkgs))
			for p := range pkgs {
				names = append(names, p)
			}
			slices.Sort(names)
			for _, p := range names {
				if !r.from(p) {
					continue
				}
				list := pkgs[p].deps
				if r.direct {
					list = pkgs[p].imports
				}
				for _, d := range list {
					if d != p && r.to(d) {
						t.Errorf("%s links %s%s", p, d, via(pkgs, p, d))
					}
				}
			}
		})
	}
}

// via names the path of imports from p to d when d is not imported directly.
func via(pkgs map[string]pkg, p, d string) string {
	if slices.Contains(pkgs[p].imports, d) {
		return ""
	}
	prev := map[string]string{p: ""}
	queue := []string{p}
	for len(queue) > 0 {
		x := queue[0]
		queue = queue[1:]
		for _, y := range pkgs[x].imports {
			if _, seen := prev[y]; seen {
				continue
			}
			prev[y] = x
			if y == d {
				var path []string
				for z := prev[d]; z != p; z = prev[z] {
					path = append(path, z)
				}
				slices.Reverse(path)
				return " (through " + strings.Join(path, " → ") + ")"
			}
			queue = append(queue, y)
		}
	}
	return ""
}

// TestRulesCatchViolations checks the checker on a made-up module, so the
// rules above cannot pass by construction.
func TestRulesCatchViolations(t *testing.T) {
	fake := map[string]pkg{
		"cmd/uvsadm":     {imports: []string{"control/client"}, deps: []string{"control/client", "control/wire", "dataplane", "header"}},
		"control/client": {imports: []string{"control/wire", "dataplane"}, deps: []string{"control/wire", "dataplane", "header"}},
		"dataplane":      {imports: []string{"header"}, deps: []string{"header"}},
	}
	r := rules[0]
	var found []string
	for p, x := range fake {
		if !r.from(p) {
			continue
		}
		for _, d := range x.deps {
			if r.to(d) {
				found = append(found, p+"→"+d+via(fake, p, d))
			}
		}
	}
	slices.Sort(found)
	want := []string{"cmd/uvsadm→dataplane (through control/client)", "control/client→dataplane"}
	if !slices.Equal(found, want) {
		t.Errorf("violations found %q, want %q", found, want)
	}
	if _, err := os.Stat(filepath.Join("..", "..", "go.mod")); err != nil {
		t.Errorf("the test is not at internal/layout of the module: %v", err)
	}
}
