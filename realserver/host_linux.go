package realserver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// soNetNSCookie is SO_NETNS_COOKIE (asm-generic value; Linux 5.14+): a
// 64-bit namespace identifier that, unlike the inode, is never reused.
const soNetNSCookie = 71

// NetNSID returns the inode of the calling thread's network namespace and
// its cookie (0 when the kernel has no SO_NETNS_COOKIE).
func NetNSID() (inode, cookie uint64, err error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return 0, 0, fmt.Errorf("netns id: %w", err)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return st.Ino, 0, nil
	}
	defer unix.Close(fd)
	c, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, soNetNSCookie)
	if err != nil {
		return st.Ino, 0, nil
	}
	return st.Ino, c, nil
}

// host is one locked namespace state directory.
type host struct {
	dir    string
	lockFD int
	inode  uint64
	cookie uint64
	st     *State
	sys    Sysctls
}

// stateDir returns base/netns-<inode> for the calling thread's namespace.
func stateDir(base string) (dir string, inode, cookie uint64, err error) {
	inode, cookie, err = NetNSID()
	if err != nil {
		return "", 0, 0, err
	}
	return filepath.Join(base, "netns-"+strconv.FormatUint(inode, 10)), inode, cookie, nil
}

// openHost locks the namespace's state directory (creating it) and loads
// the state. A state left by a dead namespace whose inode was recycled is
// discarded. Call close to unlock.
func openHost(env Env, base string) (*host, error) {
	dir, inode, cookie, err := stateDir(base)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	fd, err := unix.Open(filepath.Join(dir, "lock"), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state lock: %w", err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("state lock: %w", err)
	}
	h := &host{dir: dir, lockFD: fd, inode: inode, cookie: cookie, sys: env.sysctls()}
	if err := h.reload(); err != nil {
		h.close()
		return nil, err
	}
	return h, nil
}

// reload reads the state again (after the lock was released and retaken).
func (h *host) reload() error {
	st, err := LoadState(h.dir)
	if err != nil {
		return err
	}
	if st.NetNSCookie != 0 && h.cookie != 0 && st.NetNSCookie != h.cookie {
		st = &State{Saved: map[string]string{}}
	}
	st.NetNSInode, st.NetNSCookie = h.inode, h.cookie
	h.st = st
	return nil
}

func (h *host) save() error { return SaveState(h.dir, h.st) }

func (h *host) close() {
	if h.lockFD >= 0 {
		unix.Close(h.lockFD)
		h.lockFD = -1
	}
}

// lock and unlock retake and release the lock around waits on another
// process that needs it.
func (h *host) unlock() { _ = unix.Flock(h.lockFD, unix.LOCK_UN) }
func (h *host) lock() error {
	if err := unix.Flock(h.lockFD, unix.LOCK_EX); err != nil {
		return fmt.Errorf("state lock: %w", err)
	}
	return h.reload()
}

// restoreIfEmpty restores the saved sysctls once nothing is configured.
func (h *host) restoreIfEmpty() error {
	if !h.st.Empty() {
		return nil
	}
	return RestoreSysctls(h.sys, h.st.Saved)
}

// prefixOf returns the host prefix (/32 or /128) of vip as a netlink
// address.
func prefixOf(vip netip.Addr) *netlink.Addr {
	ip := net.IP(vip.AsSlice())
	a := &netlink.Addr{IPNet: &net.IPNet{IP: ip, Mask: net.CIDRMask(vip.BitLen(), vip.BitLen())}}
	if vip.Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	return a
}

// hasAddr reports whether link carries vip.
func hasAddr(link netlink.Link, vip netip.Addr) (bool, error) {
	fam := netlink.FAMILY_V4
	if vip.Is6() {
		fam = netlink.FAMILY_V6
	}
	addrs, err := netlink.AddrList(link, fam)
	if err != nil {
		return false, fmt.Errorf("list addresses of %s: %w", link.Attrs().Name, err)
	}
	for _, a := range addrs {
		if got, ok := netip.AddrFromSlice(a.IP); ok && got.Unmap() == vip {
			return true, nil
		}
	}
	return false, nil
}

// addVIP puts vip/32 (or /128) on dev. It reports whether the address was
// already there (and so must be left alone on removal).
func addVIP(dev string, vip netip.Addr) (existed bool, err error) {
	link, err := netlink.LinkByName(dev)
	if err != nil {
		return false, fmt.Errorf("device %s: %w", dev, err)
	}
	if ok, err := hasAddr(link, vip); err != nil || ok {
		return ok, err
	}
	if err := netlink.AddrAdd(link, prefixOf(vip)); err != nil && !errors.Is(err, unix.EEXIST) {
		return false, fmt.Errorf("add %s to %s: %w", vip, dev, err)
	}
	return false, nil
}

// delVIP removes vip from dev; a missing device or address is not an error.
func delVIP(dev string, vip netip.Addr) error {
	link, err := netlink.LinkByName(dev)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("device %s: %w", dev, err)
	}
	err = netlink.AddrDel(link, prefixOf(vip))
	if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove %s from %s: %w", vip, dev, err)
	}
	return nil
}

// anyV4 reports whether vips contains an IPv4 address (the ARP sysctls only
// matter then).
func anyV4(vips []netip.Addr) bool {
	for _, v := range vips {
		if v.Is4() {
			return true
		}
	}
	return false
}

// procStart returns the start time (clock ticks after boot, field 22 of
// /proc/PID/stat) of a live, non-zombie process.
func procStart(pid int) (uint64, bool) {
	if pid <= 0 {
		return 0, false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); field 22 is f[19].
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return 0, false
	}
	v, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, false
	}
	return v, true
}

// alive reports whether the recorded decapsulator is still the running
// process it was: same PID and same start time.
func (t *TunState) alive() bool {
	if t == nil || t.Mode != TunUserspace {
		return false
	}
	start, ok := procStart(t.PID)
	return ok && start == t.StartTime
}

// signal sends sig to the recorded decapsulator, only if it is still the
// process uvs-rs started.
func (t *TunState) signal(sig syscall.Signal) error {
	if !t.alive() {
		return nil
	}
	if err := unix.Kill(t.PID, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("signal decapsulator %d: %w", t.PID, err)
	}
	return nil
}
