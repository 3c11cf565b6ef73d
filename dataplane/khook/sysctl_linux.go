package khook

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// sysctlPath maps a sysctl(8) name to its file under /proc/sys.
func sysctlPath(name string) (string, error) {
	if name == "" || strings.Contains(name, "..") || strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("bad sysctl name %q", name)
	}
	if !strings.Contains(name, "/") {
		name = strings.ReplaceAll(name, ".", "/")
	}
	return filepath.Join("/proc/sys", name), nil
}

func readSysctl(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\n"), nil
}

// SetSysctls sets each sysctl in h's namespace, remembering the value it had
// before the first change so that Remove restores it. It stops at the first
// error; settings made before it stay recorded.
//
// The original values are also written to the namespace's state file
// (Options.StateDir) before a sysctl changes, so that they survive a
// killed uvsd: the first SetSysctls of a Hooks finding a file a dead uvsd
// left restores its values first (and fails with ErrTableBusy while a
// uvsd owning the namespace's table lives), and CleanupNetNS restores them.
func (h *Hooks) SetSysctls(settings ...Sysctl) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.saved) == 0 && !h.stateChecked {
		if live, err := h.liveOwner(); err != nil {
			return fmt.Errorf("khook: set sysctl: %w", err)
		} else if live && h.lasting == nil {
			return fmt.Errorf("khook: set sysctl: %w", ErrTableBusy)
		}
	}
	err := inNetNS(h.opts.NetNS, func() error {
		if len(h.saved) == 0 && !h.stateChecked {
			if err := h.restoreStale(); err != nil {
				return err
			}
			h.stateChecked = true
		}
		for _, s := range settings {
			path, err := sysctlPath(s.Name)
			if err != nil {
				return err
			}
			old, err := readSysctl(path)
			if err != nil {
				return err
			}
			if !h.savedOK[path] {
				h.savedOK[path] = true
				h.saved = append(h.saved, Sysctl{Name: path, Value: old})
				if err := h.writeState(); err != nil {
					return err
				}
			}
			if err := os.WriteFile(path, []byte(s.Value), 0); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("khook: set sysctl: %w", err)
	}
	return nil
}

// Sysctl reads one sysctl in h's namespace.
func (h *Hooks) Sysctl(name string) (string, error) {
	var v string
	err := inNetNS(h.opts.NetNS, func() error {
		path, err := sysctlPath(name)
		if err != nil {
			return err
		}
		v, err = readSysctl(path)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("khook: read sysctl: %w", err)
	}
	return v, nil
}

// restoreSysctls writes back the recorded values, newest first. Settings of
// interfaces that have gone away are skipped. h.mu is held.
func (h *Hooks) restoreSysctls() error {
	if len(h.saved) == 0 {
		return nil
	}
	var errs []error
	err := inNetNS(h.opts.NetNS, func() error {
		for i := len(h.saved) - 1; i >= 0; i-- {
			s := h.saved[i]
			if err := os.WriteFile(s.Name, []byte(s.Value), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		return nil
	})
	if len(errs) == 0 && err == nil {
		err = h.removeState()
	}
	h.saved, h.savedOK = nil, map[string]bool{}
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("khook: restore sysctl: %w", err)
	}
	return nil
}
