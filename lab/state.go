package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// State is what the lab remembers about a running instance, in
// <state dir>/<prefix>/<instance>/state.json: enough for down to remove
// exactly what up created.
type State struct {
	Scenario   string    `json:"scenario"`
	Instance   string    `json:"instance"`
	Prefix     string    `json:"prefix"`
	Namespaces []string  `json:"namespaces"`
	Procs      []Proc    `json:"procs"`
	Params     Params    `json:"params"`
	NextPort   uint16    `json:"next_port"` // next client source port
	Ready      bool      `json:"ready"`     // up completed
	Created    time.Time `json:"created"`
}

const stateFile = "state.json"

// instanceDir is the state directory of one instance.
func (l *Lab) instanceDir(instance string) string {
	return filepath.Join(l.opt.StateDir, l.opt.Prefix, instance)
}

// loadState reads an instance's state; a missing state is (nil, nil).
func (l *Lab) loadState(instance string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(l.instanceDir(instance), stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(l.instanceDir(instance), stateFile), err)
	}
	return &s, nil
}

// saveState writes the state atomically.
func (l *Lab) saveState(s *State) error {
	dir := l.instanceDir(s.Instance)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, stateFile))
}

// lockInstance takes an exclusive lock on an instance so two uvs-lab
// commands do not build or tear down the same one at once.
func (l *Lab) lockInstance(instance string) (unlock func(), err error) {
	dir := filepath.Join(l.opt.StateDir, l.opt.Prefix)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "."+instance+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w (is another uvs-lab working on it?)", instance, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return func() {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}, nil
}

// instances lists the instances that have a state directory.
func (l *Lab) instances() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(l.opt.StateDir, l.opt.Prefix))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}
