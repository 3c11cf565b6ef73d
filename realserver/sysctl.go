package realserver

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Sysctls reads and writes kernel parameters. Keys are paths relative to
// /proc/sys with slashes ("net/ipv4/conf/all/arp_ignore"), so interface
// names containing dots need no escaping.
type Sysctls interface {
	Get(key string) (string, error)
	Set(key, value string) error
}

// ProcSys is Sysctls over a procfs tree. Root is "/proc/sys" when empty;
// tests point it at a temporary directory. The values seen are those of the
// network namespace of the calling thread.
type ProcSys struct {
	Root string
}

// errBadKey is returned for keys that are not clean relative paths.
var errBadKey = errors.New("invalid sysctl key")

func (p ProcSys) path(key string) (string, error) {
	if key == "" || !filepath.IsLocal(key) || filepath.Clean(key) != key {
		return "", fmt.Errorf("sysctl %q: %w", key, errBadKey)
	}
	root := p.Root
	if root == "" {
		root = "/proc/sys"
	}
	return filepath.Join(root, key), nil
}

// Get returns the parameter's value without the trailing newline.
func (p ProcSys) Get(key string) (string, error) {
	path, err := p.path(key)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("sysctl get: %w", err)
	}
	return strings.TrimRight(string(b), "\n"), nil
}

// Set writes value to the parameter, which must exist.
func (p ProcSys) Set(key, value string) error {
	path, err := p.path(key)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("sysctl set: %w", err)
	}
	_, werr := f.WriteString(value + "\n")
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("sysctl set %s=%s: %w", key, value, werr)
	}
	return nil
}

// Setting is one kernel parameter and the value a mode needs.
type Setting struct {
	Key   string
	Value string
}

// DRSysctls returns what a DR real server sets (the seeds' realserver.sh):
// arp_ignore=1 so the VIP on dev is never answered for on other
// interfaces, arp_announce=2 so ARP requests never carry the VIP as source,
// on "all" and on dev.
func DRSysctls(dev string) []Setting {
	return []Setting{
		{"net/ipv4/conf/all/arp_ignore", "1"},
		{"net/ipv4/conf/" + dev + "/arp_ignore", "1"},
		{"net/ipv4/conf/all/arp_announce", "2"},
		{"net/ipv4/conf/" + dev + "/arp_announce", "2"},
	}
}

// TunSysctls returns what a TUN real server sets before its device exists:
// the ARP settings of DR on "all", and rp_filter=0 on "all" and "default"
// (so the device created afterwards inherits 0): the inner source, the
// client, is not reachable through the tunnel device, so a strict
// reverse-path check would drop every decapsulated packet.
func TunSysctls() []Setting {
	return []Setting{
		{"net/ipv4/conf/all/arp_ignore", "1"},
		{"net/ipv4/conf/all/arp_announce", "2"},
		{"net/ipv4/conf/all/rp_filter", "0"},
		{"net/ipv4/conf/default/rp_filter", "0"},
	}
}

// ApplySysctls sets every parameter, first recording in saved the value it
// had, unless saved already holds a value for that key (so applying twice
// keeps the original, not our own). saved is updated even when an error
// stops the loop half-way, so a caller can still restore.
func ApplySysctls(s Sysctls, settings []Setting, saved map[string]string) error {
	for _, st := range settings {
		old, err := s.Get(st.Key)
		if err != nil {
			return err
		}
		if _, ok := saved[st.Key]; !ok {
			saved[st.Key] = old
		}
		if old == st.Value {
			continue
		}
		if err := s.Set(st.Key, st.Value); err != nil {
			return err
		}
	}
	return nil
}

// RestoreSysctls writes every saved value back, in a stable order, and
// deletes restored keys from saved. Parameters that no longer exist (their
// interface went away) are dropped silently. It returns the first error but
// tries every key.
func RestoreSysctls(s Sysctls, saved map[string]string) error {
	keys := make([]string, 0, len(saved))
	for k := range saved {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var first error
	for _, k := range keys {
		err := s.Set(k, saved[k])
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			if first == nil {
				first = err
			}
			continue
		}
		delete(saved, k)
	}
	return first
}
