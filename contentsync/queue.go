package contentsync

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// QueueFile is the failure queue's file in the state directory: what each
// target still lacks, kept across restarts (sersync keeps its failures in
// rsync_fail_log.sh and replays it).
const QueueFile = "fail-queue.json"

// queueVersion is the format of QueueFile.
const queueVersion = 1

// QueuedTarget is what one target lacks.
type QueuedTarget struct {
	Full     bool      `json:"full,omitempty"`
	Paths    []string  `json:"paths,omitempty"`
	Failures int       `json:"failures"`
	Since    time.Time `json:"since"` // first failure of the run
	LastErr  string    `json:"last_error,omitempty"`
}

type queueDoc struct {
	Version int                      `json:"version"`
	Targets map[string]*QueuedTarget `json:"targets"` // by Target.Dest()
}

// Backoff is the failure queue's retry delay after n consecutive failures:
// base doubled each time, capped at max.
func Backoff(n int, base, max time.Duration) time.Duration {
	if n <= 0 {
		return 0
	}
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d
}

// SaveQueue writes the queue atomically (a temporary file renamed over
// the old one); an empty queue removes the file.
func SaveQueue(dir string, q map[string]*QueuedTarget) error {
	path := filepath.Join(dir, QueueFile)
	if len(q) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("failure queue: %w", err)
		}
		return nil
	}
	for _, t := range q {
		slices.Sort(t.Paths)
	}
	b, err := json.MarshalIndent(queueDoc{Version: queueVersion, Targets: q}, "", "  ")
	if err != nil {
		return fmt.Errorf("failure queue: %w", err)
	}
	tmp, err := os.CreateTemp(dir, QueueFile+".*")
	if err != nil {
		return fmt.Errorf("failure queue: %w", err)
	}
	_, werr := tmp.Write(append(b, '\n'))
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("failure queue %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("failure queue: %w", err)
	}
	return nil
}

// LoadQueue reads the queue; a missing file is an empty queue.
func LoadQueue(dir string) (map[string]*QueuedTarget, error) {
	path := filepath.Join(dir, QueueFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]*QueuedTarget{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failure queue: %w", err)
	}
	var d queueDoc
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("failure queue %s: %w", path, err)
	}
	if d.Version != queueVersion {
		return nil, fmt.Errorf("failure queue %s: version %d, want %d", path, d.Version, queueVersion)
	}
	if d.Targets == nil {
		d.Targets = map[string]*QueuedTarget{}
	}
	for dest, t := range d.Targets {
		if t == nil {
			return nil, fmt.Errorf("failure queue %s: target %s: empty entry", path, dest)
		}
		for _, p := range t.Paths {
			if !validRel(p) {
				return nil, fmt.Errorf("failure queue %s: target %s: path %q is not inside the tree", path, dest, p)
			}
		}
	}
	return d.Targets, nil
}

// validRel reports whether p is a clean relative slash path inside the
// tree.
func validRel(p string) bool {
	if p == "" || p[0] == '/' || p == "." || p == ".." {
		return false
	}
	for _, part := range splitSlash(p) {
		if part == "" || part == "." || part == ".." {
			return false
		}
	}
	return true
}

func splitSlash(p string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(p); i++ {
		if i == len(p) || p[i] == '/' {
			out = append(out, p[start:i])
			start = i + 1
		}
	}
	return out
}
