package director

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/director/lportfile"
)

// testLportState returns a state over [min, max] with distinct positions.
func testLportState(min, max uint16, saved time.Time, clean bool) lportState {
	s := lportState{Pos: dataplane.PortPositions{Min: min, Max: max}, Saved: saved.Truncate(time.Second), Clean: clean}
	span := uint32(max-min) + 1
	for i := range s.Pos.Next {
		s.Pos.Next[i] = uint32(i*977+13) % span
		s.Ahead[i] = uint32(i*3) % span
	}
	return s
}

// TestLportStateFile: what writeLportState writes (mode 0600, atomically
// replacing the old file) readLportState reads back unchanged.
func TestLportStateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "uvs", "lports-1")
	for _, clean := range []bool{false, true} {
		want := testLportState(1024, 32767, time.Now(), clean)
		if err := writeLportState(path, &want); err != nil {
			t.Fatal(err)
		}
		got, err := readLportState(path)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Saved.Equal(want.Saved) || got.Pos != want.Pos || got.Ahead != want.Ahead || got.Clean != want.Clean {
			t.Fatalf("read back %+v, wrote %+v", got, want)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600", fi.Mode().Perm())
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "*"))
	if len(left) != 1 {
		t.Errorf("files beside the state file: %v", left)
	}
}

// TestRestoreLports: the cursors continue from a usable file (plus the
// movement of the interval before the save when the predecessor did not
// stop cleanly), and stay where they were for anything else.
func TestRestoreLports(t *testing.T) {
	const min, max = 1024, 32767
	now := time.Now()
	good := testLportState(min, max, now.Add(-30*time.Second), true)
	crashed := testLportState(min, max, now.Add(-30*time.Second), false)
	crashed.Ahead[7] = max - min // wraps
	crashed.Pos.Next[7] = 5
	var afterCrash dataplane.PortPositions
	afterCrash.Min, afterCrash.Max = min, max
	for i := range afterCrash.Next {
		afterCrash.Next[i] = (crashed.Pos.Next[i] + crashed.Ahead[i]) % (max - min + 1)
	}
	type result int
	const (
		continued result = iota
		unchanged
		refused // unchanged, with an error
	)
	for _, c := range []struct {
		name string
		file []byte // nil: no file
		want result
		pos  dataplane.PortPositions
	}{
		{"clean", good.Marshal(), continued, good.Pos},
		{"crash", crashed.Marshal(), continued, afterCrash},
		{"missing", nil, unchanged, dataplane.PortPositions{}},
		{"stale", func() []byte { s := good; s.Saved = now.Add(-11 * time.Minute); return s.Marshal() }(), unchanged, dataplane.PortPositions{}},
		{"future", func() []byte { s := good; s.Saved = now.Add(time.Hour); return s.Marshal() }(), unchanged, dataplane.PortPositions{}},
		{"other range", testLportState(min, max+1, now, true).Marshal(), unchanged, dataplane.PortPositions{}},
		{"truncated", good.Marshal()[:2000], refused, dataplane.PortPositions{}},
		{"beyond range", bytes.Replace(good.Marshal(), []byte("next 13 "), []byte("next 31744 "), 1), refused, dataplane.PortPositions{}},
		{"extra line", append(good.Marshal(), "x\n"...), refused, dataplane.PortPositions{}},
		{"empty", []byte{}, refused, dataplane.PortPositions{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "lports-1")
			if c.file != nil {
				if err := os.WriteFile(path, c.file, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			a := dataplane.NewPortAllocator(min, max)
			before := a.Positions()
			how, err := restoreLports(a, path, now)
			got := a.Positions()
			switch c.want {
			case continued:
				if err != nil {
					t.Fatal(err)
				}
				if got != c.pos {
					t.Fatalf("%s: positions not the saved ones", how)
				}
			case unchanged, refused:
				if (err != nil) != (c.want == refused) {
					t.Fatalf("error %v (%q), want one: %v", err, how, c.want == refused)
				}
				if got != before {
					t.Fatalf("positions changed (%q, %v)", how, err)
				}
			}
		})
	}
}

// TestReadLportStateRefuses: a state file that is not a small regular
// file writable only by its owner is not read.
func TestReadLportStateRefuses(t *testing.T) {
	dir := t.TempDir()
	s := testLportState(1024, 32767, time.Now(), true)
	good := filepath.Join(dir, "good")
	if err := os.WriteFile(good, s.Marshal(), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readLportState(good); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	writable := filepath.Join(dir, "writable")
	if err := os.WriteFile(writable, s.Marshal(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(writable, 0o666); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, append(s.Marshal(), bytes.Repeat([]byte{' '}, lportfile.MaxSize)...), 0o600); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{link, writable, big, fifo, dir} {
		if _, err := readLportState(p); err == nil {
			t.Errorf("%s read", filepath.Base(p))
		}
	}
}

// TestLportSaver: a save writes the positions and how far each cursor
// moved since the previous save; with nothing moved it writes nothing.
func TestLportSaver(t *testing.T) {
	const min, max = 1024, 32767
	path := filepath.Join(t.TempDir(), "lports-1")
	a := dataplane.NewPortAllocator(min, max)
	l := &lportSaver{path: path, ports: a, last: a.Positions()}
	now := time.Now()
	if err := l.save(now, true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err == nil {
		t.Fatal("unmoved positions written")
	}
	ct, err := conntrack.New(conntrack.Config{Capacity: 16})
	if err != nil {
		t.Fatal(err)
	}
	var c dataplane.PortCursor
	rs := conntrack.Endpoint{Addr: netip.MustParseAddr("10.0.11.11").As16(), Port: 80}
	lip := conntrack.Endpoint{Addr: netip.MustParseAddr("10.0.11.1").As16()}
	if _, ok := a.Allocate(&c, ct, conntrack.ProtoTCP, rs, lip, 0); !ok {
		t.Fatal("no port")
	}
	before := l.last
	if err := l.save(now, false); err != nil {
		t.Fatal(err)
	}
	s, err := readLportState(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.Clean || s.Pos != a.Positions() {
		t.Fatalf("saved clean=%v, positions equal: %v", s.Clean, s.Pos == a.Positions())
	}
	moved := 0
	for i := range s.Ahead {
		if want := (s.Pos.Next[i] + max - min + 1 - before.Next[i]) % (max - min + 1); s.Ahead[i] != want {
			t.Fatalf("slot %d: ahead %d, moved %d", i, s.Ahead[i], want)
		}
		if s.Ahead[i] != 0 {
			moved++
		}
	}
	if moved != 1 {
		t.Fatalf("%d slots moved after one allocation", moved)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := l.save(now, false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err == nil {
		t.Fatal("a periodic save wrote unmoved positions")
	}
	if err := l.save(now, true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err == nil {
		t.Fatal("a clean save wrote unmoved positions")
	}
	if _, ok := a.Allocate(&c, ct, conntrack.ProtoTCP, conntrack.Endpoint{Addr: netip.MustParseAddr("10.0.11.12").As16(), Port: 80}, lip, 0); !ok {
		t.Fatal("no port")
	}
	if err := l.save(now, true); err != nil {
		t.Fatal(err)
	}
	if s, err := readLportState(path); err != nil || !s.Clean || s.Pos != a.Positions() {
		t.Fatalf("clean save: %v, clean=%v", err, s.Clean)
	}
}

// TestRemoveDeadLportStates: of the state files of an inode number, all
// but the namespace's own go (another cookie's, and the name without a
// cookie that uvsd wrote before cookies); other inode numbers' files,
// names that only start with the same digits and what is not a regular
// file stay.
func TestRemoveDeadLportStates(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"lports-5", "lports-5-77", "lports-5-88", "lports-6-1", "lports-50-1", "lports-5x", "sysctl-5.json"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "lports-5-99"), 0o700); err != nil {
		t.Fatal(err)
	}
	own := lportStatePath(dir, 5, 88)
	if filepath.Base(own) != "lports-5-88" || filepath.Base(lportStatePath(dir, 5, 0)) != "lports-5" {
		t.Fatalf("paths %s, %s", own, lportStatePath(dir, 5, 0))
	}
	removed, err := removeDeadLportStates(own, 5)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{filepath.Join(dir, "lports-5"), filepath.Join(dir, "lports-5-77")}; !slices.Equal(removed, want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*"))
	for i := range left {
		left[i] = filepath.Base(left[i])
	}
	if want := []string{"lports-5-88", "lports-5-99", "lports-50-1", "lports-5x", "lports-6-1", "sysctl-5.json"}; !slices.Equal(left, want) {
		t.Errorf("left %v, want %v", left, want)
	}
	if removed, err := removeDeadLportStates(filepath.Join(dir, "none", "lports-5-88"), 5); err != nil || removed != nil {
		t.Errorf("missing directory: removed %v, %v", removed, err)
	}
}
