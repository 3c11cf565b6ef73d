package realserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
)

// DefaultStateBase is where uvs-rs keeps one state directory per network
// namespace.
const DefaultStateBase = "/run/uvs-rs"

// Tunnel modes recorded in TunState.Mode.
const (
	TunUserspace = "userspace" // uvs-rs decapsulates into a TUN device
	TunKernel    = "kernel"    // the kernel's ipip module does it on tunl0
)

// DRVIP is one VIP configured for direct routing.
type DRVIP struct {
	VIP netip.Addr `json:"vip"`
	Dev string     `json:"dev"`
	// Existed: the address was on Dev before uvs-rs; down leaves it.
	Existed bool `json:"existed,omitempty"`
}

// TunState is the tunnel side of a namespace's configuration.
type TunState struct {
	Mode    string       `json:"mode"`
	Dev     string       `json:"dev"`
	VIPs    []netip.Addr `json:"vips"`
	GUEPort uint16       `json:"gue_port,omitempty"`
	// PID and StartTime (clock ticks since boot, /proc/PID/stat field 22)
	// identify the decapsulator process, so a recycled PID is never
	// signalled.
	PID       int    `json:"pid,omitempty"`
	StartTime uint64 `json:"start_time,omitempty"`
	Log       string `json:"log,omitempty"`
	// BPF names the interfaces whose IPv4-in-IPv4 packets the
	// decapsulator's tc BPF program decapsulates in the kernel.
	BPF []string `json:"bpf,omitempty"`
	// DevWasUp records whether tunl0 was up before (kernel mode).
	DevWasUp bool `json:"dev_was_up,omitempty"`
}

// State is what uvs-rs has configured in one network namespace and what it
// must undo: the kernel parameters' original values are restored once the
// last VIP is gone.
type State struct {
	// NetNSInode and NetNSCookie identify the namespace; a state whose
	// cookie differs belongs to a namespace that no longer exists and
	// whose inode was recycled.
	NetNSInode  uint64            `json:"netns_inode"`
	NetNSCookie uint64            `json:"netns_cookie,omitempty"`
	DR          []DRVIP           `json:"dr,omitempty"`
	Tun         *TunState         `json:"tun,omitempty"`
	Saved       map[string]string `json:"saved_sysctls,omitempty"`
}

// Empty reports whether nothing remains configured.
func (s *State) Empty() bool {
	return len(s.DR) == 0 && (s.Tun == nil || len(s.Tun.VIPs) == 0)
}

// HasDR reports whether vip is configured for DR.
func (s *State) HasDR(vip netip.Addr) bool {
	return slices.ContainsFunc(s.DR, func(d DRVIP) bool { return d.VIP == vip })
}

// stateFile is the file name inside a namespace's state directory.
const stateFile = "state.json"

// LoadState reads dir/state.json; a missing file is an empty State.
func LoadState(dir string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return &State{Saved: map[string]string{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("load state %s: %w", dir, err)
	}
	if s.Saved == nil {
		s.Saved = map[string]string{}
	}
	return &s, nil
}

// SaveState writes s to dir/state.json atomically (temporary file and
// rename), or removes the file when s is empty and has nothing to restore.
func SaveState(dir string, s *State) error {
	path := filepath.Join(dir, stateFile)
	if s.Empty() && len(s.Saved) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("save state: %w", err)
		}
		return nil
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}
