package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/testbin"
	"github.com/uvs-lb/uvs/internal/wait"
)

// builtBin holds the commands built for this test run.
var builtBin string

func TestMain(m *testing.M) { testbin.Main(m, &builtBin, "uvs-lab-test-bin-", "../cmd/...") }

// syncBuffer is a bytes.Buffer safe for the concurrent writes of progress
// and requests.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	// onWrite, if set, sees every write (tests interrupt on a line).
	onWrite func(string)
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	n, err := b.buf.Write(p)
	f := b.onWrite
	b.mu.Unlock()
	if f != nil {
		f(string(p))
	}
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testLab is a Lab with its own namespace prefix, state directory and
// binary directory (hard links to the built commands), so that whatever it
// leaves behind is recognisable as its own.
type testLab struct {
	*Lab
	out, err *syncBuffer
	prefix   string
	bin      string
	state    string
}

func newTestLab(t *testing.T) *testLab {
	t.Helper()
	netnstest.SkipIfNotRoot(t)
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	tl := &testLab{out: &syncBuffer{}, err: &syncBuffer{}, prefix: "uvs-tlab" + hex.EncodeToString(rnd[:]),
		bin: t.TempDir(), state: t.TempDir()}
	for _, b := range binaries {
		src, dst := filepath.Join(builtBin, b), filepath.Join(tl.bin, b)
		if err := os.Link(src, dst); err != nil {
			if out, err := exec.Command("cp", src, dst).CombinedOutput(); err != nil {
				t.Fatalf("copy %s: %v: %s", b, err, out)
			}
		}
	}
	l, err := New(Options{Prefix: tl.prefix, StateDir: tl.state, BinDir: tl.bin, Out: tl.out, Err: tl.err,
		RequestTimeout: 6 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tl.Lab = l
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := l.Down(ctx, ""); err != nil {
			t.Errorf("down: %v", err)
		}
		tl.assertClean(t)
		if t.Failed() {
			t.Logf("lab output:\n%s\nstderr:\n%s", tl.out.String(), tl.err.String())
		}
	})
	return tl
}

// assertClean checks that nothing of this lab is left: no namespace with
// its prefix, no process running its binaries, no state.
func (tl *testLab) assertClean(t *testing.T) {
	t.Helper()
	if nss, _ := listNamespaces(tl.prefix); len(nss) > 0 {
		t.Errorf("namespaces left: %v", nss)
	}
	// Processes the lab signalled may take a moment to exit.
	if left := tl.processes(); len(left) > 0 && !wait.Until(3*time.Second, func() bool { left = tl.processes(); return len(left) == 0 }) {
		t.Errorf("processes left: %v", left)
	}
	if ents, err := os.ReadDir(tl.state); err != nil || len(ents) > 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("state left in %s: %v %v", tl.state, names, err)
	}
}

// processes lists live processes running one of this lab's binaries.
func (tl *testLab) processes() []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		cl, _, state, err := procStat(pid)
		if err != nil || state == 'Z' || len(cl) == 0 {
			continue
		}
		if strings.HasPrefix(cl[0], tl.bin+"/") {
			out = append(out, fmt.Sprintf("%d %s", pid, strings.Join(cl, " ")))
		}
	}
	return out
}

// namespaces lists this lab's namespaces.
func (tl *testLab) namespaces(t *testing.T) []string {
	t.Helper()
	nss, err := listNamespaces(tl.prefix + "-")
	if err != nil {
		t.Fatal(err)
	}
	return nss
}

var _ io.Writer = (*syncBuffer)(nil)
