package lab

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uvs-lb/uvs/internal/netnstest"
)

// TestSync runs seed 000's sersync story: uvs-sync on the director
// copies an edited page to both real servers' rsync daemons and both
// serve it through the VIP; rs2's rsyncd stops, its change waits in the
// failure queue (rs2 serves the old page) and reaches it when rsyncd is
// back; 1000 new files take a handful of rsync runs. It asserts what
// happened, never how long it took.
func TestSync(t *testing.T) {
	netnstest.RequireTool(t, "rsync")
	tl := newTestLab(t)
	rep, err := tl.Run(testCtx(t), "sync", RunOptions{Requests: 2})
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Sync
	if r == nil {
		t.Fatal("no sync report")
	}
	for _, rs := range []string{"rs1", "rs2"} {
		if r.OnDisk[rs] <= 0 || r.Served[rs] <= 0 {
			t.Fatalf("%s: the edited page was not seen (copy %v, served %v)", rs, r.OnDisk[rs], r.Served[rs])
		}
		if n := r.BurstRuns[rs]; n < 1 || n > 50 {
			t.Fatalf("%s: %d rsync runs for 1000 changes", rs, n)
		}
		t.Logf("figure: %s: write -> copy %v, -> served through the VIP %v; 1000 changes -> %d rsync runs", rs, r.OnDisk[rs], r.Served[rs], r.BurstRuns[rs])
	}
	t.Logf("figure: rs2 caught up %v after its rsyncd came back; burst on both after %v", r.CatchUp, r.BurstTook)
	if !strings.Contains(r.Queue, `"rsync://rsyncuser@10.0.0.17/www/"`) || !strings.Contains(r.Queue, `"index.html"`) {
		t.Fatalf("failure queue while rs2 was down:\n%s", r.Queue)
	}
	if len(r.StaleAnswers) == 0 {
		t.Fatal("rs2 answered no request while its rsyncd was down")
	}
	for _, a := range r.StaleAnswers {
		if strings.Contains(a, "rs2 down") {
			t.Fatalf("rs2 served the page written while its rsyncd was down: %q", a)
		}
	}
	out := tl.out.String()
	for _, want := range []string{"[director]# cat > ", "<remote ip=\"10.0.0.7\" name=\"www\"/>", "[director]# uvs-sync -dro ",
		"[rs1]# rsync --daemon --no-detach --config ", "auth users = rsyncuser", "[rs2]# kill ", "caught up"} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	if nss := tl.namespaces(t); len(nss) != 0 {
		t.Fatalf("run left namespaces %v", nss)
	}
}

// TestSyncConf: uvs-sync accepts the confxml.xml the scenario writes
// (uvs-sync --check -o), and the rsyncd.conf has the seed's settings.
func TestSyncConf(t *testing.T) {
	dir := t.TempDir()
	pl := mustScenario(t, "sync").plan(Params{}, &Options{StateDir: dir, Prefix: "uvs-x"})
	var conf, rsyncd string
	for _, st := range pl.steps {
		if st.kind == stepFile && st.argv[0] == "@dir/confxml.xml" {
			conf = st.argv[1]
		}
		if st.kind == stepFile && st.argv[0] == "@dir/rsyncd-rs1.conf" {
			rsyncd = st.argv[1]
		}
	}
	for _, want := range []string{"uid = root\n", "gid = root\n", "read only = no\n", "auth users = rsyncuser\n", "[www]\n",
		"path = " + filepath.Join(dir, "uvs-x", "sync", "rs1-www") + "/\n"} {
		if !strings.Contains(rsyncd, want) {
			t.Fatalf("rsyncd.conf lacks %q:\n%s", want, rsyncd)
		}
	}
	path := filepath.Join(dir, "confxml.xml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(builtBin, "uvs-sync"), "--check", "-o", path).CombinedOutput()
	if err != nil {
		t.Fatalf("uvs-sync --check -o: %v\n%s\n%s", err, out, conf)
	}
	for _, want := range []string{"watch " + filepath.Join(dir, "uvs-x", "sync", "www") + "\n",
		"target rsync://rsyncuser@10.0.0.7/www/ (daemon, --password-file=" + filepath.Join(dir, "uvs-x", "sync", "rsync.pas") + ")",
		"target rsync://rsyncuser@10.0.0.17/www/"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("uvs-sync --check lacks %q:\n%s", want, out)
		}
	}
}
