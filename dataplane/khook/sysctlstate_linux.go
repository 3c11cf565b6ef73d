package khook

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The values sysctls had before uvsd changed them are kept in a state file
// per network namespace, written before each change, so that what a
// killed uvsd changed is put back: by uvsd --cleanup (CleanupNetNS), and by
// the next uvsd before it changes anything (SetSysctls).

// stateFile is the content of a state file.
type stateFile struct {
	// NetNS is the namespace's inode number (as in the file name).
	NetNS uint64 `json:"netns"`
	// Cookie is the namespace's cookie (NetNSCookie). The kernel gives a
	// dead namespace's inode number to the next namespace it creates, so
	// a file whose cookie is not the namespace's is a dead namespace's:
	// deleted, never restored into the newcomer. Zero (a file written
	// before cookies were recorded): restored, as before.
	Cookie uint64 `json:"cookie,omitempty"`
	// PID is the process that wrote it (for people; not checked).
	PID int `json:"pid"`
	// Sysctls are the original values, by /proc/sys path, in the order
	// they were first changed.
	Sysctls []Sysctl `json:"sysctls"`
}

// stateDir returns the directory of the state files.
func (h *Hooks) stateDir() string {
	if h.opts.StateDir != "" {
		return h.opts.StateDir
	}
	return DefaultStateDir
}

// nsInode returns the inode number of h's network namespace: the handle's,
// or the process's.
func (h *Hooks) nsInode() (uint64, error) {
	var st unix.Stat_t
	if h.opts.NetNS > 0 {
		if err := unix.Fstat(int(h.opts.NetNS), &st); err != nil {
			return 0, fmt.Errorf("network namespace: %w", err)
		}
		return st.Ino, nil
	}
	if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
		return 0, fmt.Errorf("network namespace: %w", err)
	}
	return st.Ino, nil
}

// NetNSCookie returns the cookie of the calling thread's network
// namespace (SO_NETNS_COOKIE, Linux 5.14; sock_gen_cookie's counter, net_cookie):
// unlike the namespace's inode number, which proc_free_inum hands to the next
// namespace once the old one is gone, a cookie is never given twice while
// the system runs. Files that outlive a uvsd and are named by the inode
// number carry it, so that a successor tells its namespace's files from a
// dead namespace's.
func NetNSCookie() (uint64, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("network namespace cookie: %w", err)
	}
	defer unix.Close(fd)
	c, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	if err != nil {
		return 0, fmt.Errorf("network namespace cookie: %w", err)
	}
	return c, nil
}

// statePath returns the state file of h's namespace.
func (h *Hooks) statePath() (string, uint64, error) {
	ino, err := h.nsInode()
	if err != nil {
		return "", 0, err
	}
	return filepath.Join(h.stateDir(), fmt.Sprintf("sysctl-%d.json", ino)), ino, nil
}

// writeState replaces the state file with h.saved, atomically (a
// temporary file renamed over it), synced before the rename.
func (h *Hooks) writeState() error {
	path, ino, err := h.statePath()
	if err != nil {
		return err
	}
	cookie, err := NetNSCookie()
	if err != nil {
		return err
	}
	b, err := json.Marshal(stateFile{NetNS: ino, Cookie: cookie, PID: os.Getpid(), Sysctls: h.saved})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".sysctl-*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("state file %s: %w", path, err)
	}
	return nil
}

// removeState deletes h's namespace's state file (absent: fine).
func (h *Hooks) removeState() error {
	path, _, err := h.statePath()
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// readState reads h's namespace's state file; a missing file is no
// state (nil, nil).
func (h *Hooks) readState() (*stateFile, string, error) {
	path, _, err := h.statePath()
	if err != nil {
		return nil, "", err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, path, nil
	}
	if err != nil {
		return nil, path, err
	}
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, path, fmt.Errorf("state file %s: %w", path, err)
	}
	for _, s := range st.Sysctls {
		// Only files under /proc/sys/net are ever written back.
		if !strings.HasPrefix(s.Name, "/proc/sys/net/") || strings.Contains(s.Name, "..") || strings.ContainsAny(s.Value, "\n") {
			return nil, path, fmt.Errorf("state file %s: bad entry %q = %q", path, s.Name, s.Value)
		}
	}
	return &st, path, nil
}

// restoreStale writes back the values of a state file a dead uvsd left,
// newest first (settings of interfaces that are gone are skipped), and
// deletes it. The caller has made sure no live uvsd owns the namespace.
// Runs inside h's namespace.
func (h *Hooks) restoreStale() error {
	st, path, err := h.readState()
	if err != nil || st == nil {
		return err
	}
	if st.Cookie != 0 {
		cookie, err := NetNSCookie()
		if err != nil {
			return err
		}
		if cookie != st.Cookie {
			// A namespace that no longer exists had this inode number.
			return os.Remove(path)
		}
	}
	var errs []error
	for i := len(st.Sysctls) - 1; i >= 0; i-- {
		s := st.Sysctls[i]
		if err := os.WriteFile(s.Name, []byte(s.Value), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("restoring %s: %w", path, err)
	}
	return os.Remove(path)
}

// liveOwner reports whether the namespace holds a "uvs" table owned by a
// socket — a live uvsd, since the kernel deletes an owned table with its
// owner.
func (h *Hooks) liveOwner() (bool, error) {
	c, err := h.conn()
	if err != nil {
		return false, err
	}
	tabs, err := c.ListTablesOfFamily(nftables.TableFamilyNetdev)
	if err != nil {
		return false, err
	}
	for _, t := range tabs {
		if t.Name == TableName && ownerBit(t.Flags) {
			return true, nil
		}
	}
	return false, nil
}

// ownerBit reports whether flags, as google/nftables decodes
// NFTA_TABLE_FLAGS, hold NFT_TABLE_F_OWNER. (v0.3.0 reads the big-endian
// attribute in host byte order; either order is accepted, the flags being
// small numbers.)
func ownerBit(f uint32) bool {
	return f&tableFlagOwner != 0 || bits.ReverseBytes32(f)&tableFlagOwner != 0
}

// RestoreSysctls puts back the sysctls a dead uvsd changed in the
// namespace ns (zero or negative: the caller's), from the state file in
// dir ("": DefaultStateDir), and deletes the file. It refuses, with
// ErrTableBusy, while a uvsd owning the namespace's table lives.
func RestoreSysctls(ns netns.NsHandle, dir string) error {
	h := New(Options{NetNS: ns, StateDir: dir})
	live, err := h.liveOwner()
	if err != nil {
		return fmt.Errorf("khook: restore sysctl: %w", err)
	}
	if live {
		return fmt.Errorf("khook: restore sysctl: %w", ErrTableBusy)
	}
	if err := inNetNS(h.opts.NetNS, h.restoreStale); err != nil {
		return fmt.Errorf("khook: restore sysctl: %w", err)
	}
	return nil
}
