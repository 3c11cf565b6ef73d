package contentsync

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/fsnotify/fsnotify"
)

// fullTree is what the watcher reports when it lost events (the kernel's
// queue overflowed): only a full sync is right then.
const fullTree = ""

// watcher watches a tree recursively: inotify watches one directory, so
// each directory gets its own, added as directories appear.
type watcher struct {
	root string
	cfg  *Config
	w    *fsnotify.Watcher
	// warn reports a problem that does not stop watching.
	warn func(msg string, err error)
}

func newWatcher(root string, cfg *Config, warn func(string, error)) (*watcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	return &watcher{root: root, cfg: cfg, w: w, warn: warn}, nil
}

func (w *watcher) Close() error { return w.w.Close() }

// rel is p relative to the root, slash-separated ("" for the root).
func (w *watcher) rel(p string) (string, bool) {
	r, err := filepath.Rel(w.root, p)
	if err != nil || r == ".." || len(r) > 2 && r[:3] == ".."+string(filepath.Separator) {
		return "", false
	}
	if r == "." {
		return "", true
	}
	return filepath.ToSlash(r), true
}

// addTree watches dir and every directory below it, skipping filtered
// ones.
func (w *watcher) addTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p != dir && errors.Is(err, fs.ErrNotExist) {
				return nil // gone meanwhile: its Remove event follows
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if r, ok := w.rel(p); ok && r != "" && w.cfg.Filtered(r) {
			return filepath.SkipDir
		}
		if err := w.w.Add(p); err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != dir {
				return filepath.SkipDir
			}
			return fmt.Errorf("inotify watch %s: %w", p, err)
		}
		return nil
	})
}

// run turns inotify events into changed paths until ctx is done or the
// watcher is closed.
func (w *watcher) run(ctx context.Context, out chan<- string) {
	ev := w.cfg.Events
	emit := func(r string) {
		select {
		case out <- r:
		case <-ctx.Done():
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case err, ok := <-w.w.Errors:
			if !ok {
				return
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				w.warn("inotify queue overflowed: events lost, a full sync follows", err)
				emit(fullTree)
			} else {
				w.warn("inotify", err)
			}
		case e, ok := <-w.w.Events:
			if !ok {
				return
			}
			r, inside := w.rel(e.Name)
			if !inside || r == "" || w.cfg.Filtered(r) {
				continue
			}
			switch {
			case e.Has(fsnotify.Create):
				st, err := os.Lstat(e.Name)
				if err == nil && st.IsDir() {
					// Watch it before reporting it: what is created in it
					// from now on has its own events, and what was
					// already inside is covered by the directory's entry
					// (a path stands for everything below it).
					if err := w.addTree(e.Name); err != nil {
						w.warn("watching a new directory", err)
					}
					if ev.CreateFolder || ev.CreateFile || ev.MoveTo {
						emit(r)
					}
				} else if ev.CreateFile || ev.MoveTo || err != nil {
					// err: gone already; its deletion must reach the
					// targets if its creation might have.
					emit(r)
				}
			case e.Has(fsnotify.Write):
				if ev.CloseWrite || ev.Modify {
					emit(r)
				}
			case e.Has(fsnotify.Remove):
				if ev.Delete {
					emit(r)
				}
			case e.Has(fsnotify.Rename):
				// A directory moved away keeps its inotify watch under the
				// old name; drop it (an error means it was not one).
				_ = w.w.Remove(e.Name)
				if ev.MoveFrom {
					emit(r)
				}
			case e.Has(fsnotify.Chmod):
				if ev.Attrib {
					emit(r)
				}
			}
		}
	}
}
