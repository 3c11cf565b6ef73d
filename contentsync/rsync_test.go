package contentsync

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/netnstest"
)

// TestBatchSendsSameSecondRewrite runs the real rsync with a batch's
// command line (its destination a local directory instead of a daemon):
// a file rewritten with the same size within the second of its last sync
// must reach the target. rsync's quick check (size and whole-second
// mtime) skipped it, reporting success, before batches were sent with
// --ignore-times (e2e TestContentSync's restored-queue step caught it).
func TestBatchSendsSameSecondRewrite(t *testing.T) {
	netnstest.RequireTool(t, "rsync")
	src, dst, state := t.TempDir(), t.TempDir(), t.TempDir()
	x := &Exec{Config: DefaultConfig()}
	file := filepath.Join(src, "index.html")
	sec := time.Now().Truncate(time.Second).Add(-time.Minute)
	sync := func(content string, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(file, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		var ch Changes
		ch.Add("index.html", 0)
		filter := filepath.Join(state, "b.rules")
		argv, rules, err := x.Argv(Job{Target: Target{Host: "127.0.0.1", Module: "www"}, Changes: ch}, filter)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filter, []byte(rules), 0o600); err != nil {
			t.Fatal(err)
		}
		argv[len(argv)-1] = dst + "/"
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = src
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%q: %v\n%s", argv, err, out)
		}
	}
	sync("<h1>v2</h1>\n", sec.Add(100*time.Millisecond))
	sync("<h1>v3</h1>\n", sec.Add(400*time.Millisecond)) // same size, same second
	got, err := os.ReadFile(filepath.Join(dst, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, []byte("<h1>v3</h1>\n")) {
		t.Fatalf("the target holds %q after the batch sent v3 (rsync's quick check skipped it)", got)
	}
}
