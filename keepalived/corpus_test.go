package keepalived

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uvs-lb/uvs/control"
	"github.com/uvs-lb/uvs/ipvsadm"
)

var update = flag.Bool("update", false, "write golden files (then check each by hand)")

const corpusDir = "../../shared/corpus/keepalived"

func corpusFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(corpusDir, "*.conf"))
	if err != nil || len(files) == 0 {
		t.Fatalf("corpus missing at %s (the tests read /work/shared/corpus): %v", corpusDir, err)
	}
	return files
}

// TestCorpusLoads loads every corpus file: none may fail fatally (keepalived
// starts with all of them) and every diagnostic names file:line.
func TestCorpusLoads(t *testing.T) {
	files := corpusFiles(t)
	if len(files) != 40 {
		t.Errorf("corpus has %d files, want 40", len(files))
	}
	for _, f := range files {
		cfg, diags, err := Load(f, Options{})
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		for _, d := range diags {
			if d.Pos.File == "" || d.Pos.Line <= 0 || !strings.HasPrefix(d.String(), d.Pos.File+":") {
				t.Errorf("%s: diagnostic without file:line: %q", f, d.String())
			}
		}
		st := control.New(control.Options{})
		if err := st.ApplyAll(cfg.Commands()); err != nil {
			t.Errorf("%s: applying: %v", f, err)
		}
		if testing.Verbose() {
			for _, d := range diags {
				t.Logf("%s", d)
			}
			t.Logf("%s: %d virtual servers, %d ignored sections", filepath.Base(f), len(cfg.VirtualServers), len(cfg.Ignored))
		}
	}
}

// listing applies cmds to a fresh control.State and returns ipvsadm -Ln.
func listing(t *testing.T, cmds []ipvsadm.Command) string {
	t.Helper()
	st := control.New(control.Options{})
	if err := st.ApplyAll(cmds); err != nil {
		t.Fatalf("apply: %v", err)
	}
	var o, e bytes.Buffer
	if code := control.Run(st, control.Env{Prog: "ipvsadm", Privileged: true}, []string{"-Ln"}, nil, &o, &e); code != 0 {
		t.Fatalf("ipvsadm -Ln: %d %s", code, e.String())
	}
	return o.String()
}

// TestGolden compares the start-up IPVS table of chosen corpus files with
// hand-checked listings.
func TestGolden(t *testing.T) {
	corpusFiles(t)
	names := []string{
		"acassen-samples-sample.conf",
		"acassen-samples-fwmark.conf",
		"acassen-samples-quorum.conf",
		"acassen-samples-virtual_server_group.conf",
		"acassen-samples-IPv6.conf",
		"acassen-samples-inhibit.conf",
		"pq-sorry_server.conf",
		"pq-issue1665-misc-dr.conf",
		"angeloyang-magic-lvs.conf",
		"zhdnf-python_script-lvs.conf",
		"pq-issue1502-multiline-seq.conf",
		"pq-issue1386-nested-defs-udp-ops.conf",
		"pq-616c-inheritance.conf",
	}
	for _, n := range names {
		t.Run(n, func(t *testing.T) {
			cfg, _, err := Load(filepath.Join(corpusDir, n), Options{})
			if err != nil {
				t.Fatal(err)
			}
			got := listing(t, cfg.Commands())
			gf := filepath.Join("testdata", "golden", strings.TrimSuffix(n, ".conf")+".txt")
			if *update {
				if err := os.WriteFile(gf, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(gf)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("%s: ipvsadm -Ln differs\n--- got\n%s--- want\n%s", n, got, want)
			}
		})
	}
}
