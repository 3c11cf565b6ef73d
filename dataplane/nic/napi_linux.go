package nic

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// ThreadRx moves the receive processing of ifname out of softirq context
// into schedulable kernel threads (threaded NAPI, napi/IFNAME-ID), which the
// scheduler shares with the packet workers by weight instead of running
// ahead of them.
//
// Without it, an AF_PACKET reader collapses under overload: the receive
// softirq (net_rx_action) runs on every interrupt exit and inside every
// local_bh_enable of the reader's own send calls on that CPU, builds the
// skb, runs tpacket_rcv, finds the ring full and frees the frame — until
// nothing is left for the reader (receive livelock). A NAPI thread that
// gets less CPU than the flood wants leaves the excess in the device's
// receive ring, where the device drops it before any skb exists (veth:
// its ptr_ring, veth_xmit counting the drop on the sending side).
//
// Steps, each recorded in the returned state before it is made:
//   - GRO on ("rx-gro"): veth has NAPI only with GRO or XDP on
//     (veth_set_features → veth_napi_enable); on a veth also
//     "rx-udp-gro-forwarding", without which veth_xmit hands a socket's
//     frames from a TSO-capable peer to netif_rx instead of NAPI
//     (veth_skb_is_eligible_for_gro).
//   - RPS off on every receive queue: RPS would hand the frames from the
//     NAPI thread back to a CPU's backlog softirq (get_rps_cpu in
//     netif_receive_skb_list_internal). The CPUs RPS named become the NAPI
//     threads' affinity, so receive work stays where it was placed.
//   - threaded = 1 (dev_set_threaded creates one kthread per NAPI).
//   - the threads' affinity and, with opt.SetNice, their nice value.
//
// On error everything done is undone and the state is empty. The caller
// must Restore the state (at exit, and after a crash from a saved copy).
// sysfs shows the network namespace it was mounted in: call it where
// /sys belongs to the calling thread's namespace (uvsd under `ip netns
// exec` does).
func ThreadRx(ifname string, opt RxOptions) (st RxState, err error) {
	dir, err := ifaceDir(ifname)
	if err != nil {
		return RxState{}, fmt.Errorf("nic: threaded napi: %w", err)
	}
	st.Ifname = ifname
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("nic: threaded napi on %s: %w", ifname, err), st.Restore())
			st = RxState{}
		}
	}()
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return st, err
	}
	old, err := readTrim(filepath.Join(dir, "threaded"))
	if err != nil {
		return st, err // kernels before 5.12 have no threaded NAPI
	}
	st.Threaded = old
	want := []string{"rx-gro"}
	if link.Type() == "veth" {
		want = append(want, "rx-udp-gro-forwarding")
	}
	for _, f := range want {
		changed, err := setFeature(ifname, f, true)
		if err != nil {
			return st, err
		}
		if changed {
			st.Features = append(st.Features, f)
		}
	}
	var cpus unix.CPUSet
	queues, err := filepath.Glob(filepath.Join(dir, "queues", "rx-*", "rps_cpus"))
	if err != nil {
		return st, err
	}
	for _, q := range queues {
		mask, err := readTrim(q)
		if err != nil {
			return st, err
		}
		set, err := parseCPUMask(mask)
		if err != nil {
			return st, fmt.Errorf("%s: %w", q, err)
		}
		if set.Count() == 0 {
			continue
		}
		for c := range 1024 {
			if set.IsSet(c) {
				cpus.Set(c)
			}
		}
		if st.RPS == nil {
			st.RPS = map[string]string{}
		}
		st.RPS[filepath.Base(filepath.Dir(q))] = mask
		if err := os.WriteFile(q, []byte("0"), 0); err != nil {
			return st, err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "threaded"), []byte("1"), 0); err != nil {
		return st, err
	}
	napis, err := NAPIs(link.Attrs().Index)
	if err != nil {
		return st, err
	}
	n := 0
	for _, x := range napis {
		if x.PID == 0 {
			continue
		}
		n++
		if cpus.Count() > 0 {
			if err := unix.SchedSetaffinity(x.PID, &cpus); err != nil {
				return st, fmt.Errorf("affinity of napi thread %d: %w", x.PID, err)
			}
		}
		if opt.SetNice {
			if err := unix.Setpriority(unix.PRIO_PROCESS, x.PID, opt.Nice); err != nil {
				return st, fmt.Errorf("nice of napi thread %d: %w", x.PID, err)
			}
		}
	}
	if n == 0 {
		return st, ErrNoNAPI
	}
	return st, nil
}

// Restore puts back what ThreadRx changed, in reverse order: threaded
// first (the NAPI threads go away), then the RPS masks, then the features.
// It tries every step and returns the errors joined. A zero state restores
// nothing. Restoring twice is harmless.
func (s RxState) Restore() error {
	if s.Ifname == "" {
		return nil
	}
	dir, err := ifaceDir(s.Ifname)
	if err != nil {
		return fmt.Errorf("nic: restore napi: %w", err)
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil // the interface is gone, and its settings with it
	}
	var errs []error
	// Writing threaded fails (EOPNOTSUPP) on a device with no NAPI
	// instance, so write only a value that differs.
	if cur, err := readTrim(filepath.Join(dir, "threaded")); s.Threaded != "" && (err != nil || cur != s.Threaded) {
		if err := os.WriteFile(filepath.Join(dir, "threaded"), []byte(s.Threaded), 0); err != nil {
			errs = append(errs, err)
		}
	}
	for q, mask := range s.RPS {
		if !strings.HasPrefix(q, "rx-") || strings.ContainsAny(q, "/.") {
			errs = append(errs, fmt.Errorf("bad receive queue %q", q))
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, "queues", q, "rps_cpus"), []byte(mask), 0); err != nil {
			errs = append(errs, err)
		}
	}
	for _, f := range slices.Backward(s.Features) {
		if _, err := setFeature(s.Ifname, f, false); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("nic: restore napi on %s: %w", s.Ifname, err)
	}
	return nil
}

// ifaceDir validates ifname and returns its sysfs directory.
func ifaceDir(ifname string) (string, error) {
	if ifname == "" || len(ifname) >= unix.IFNAMSIZ || strings.ContainsAny(ifname, "/ ") || ifname == "." || ifname == ".." {
		return "", fmt.Errorf("invalid interface name %q", ifname)
	}
	return filepath.Join("/sys/class/net", ifname), nil
}

func readTrim(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// parseCPUMask parses a sysfs CPU mask: hex words of 32 bits separated by
// commas, most significant first ("00000000,00000002").
func parseCPUMask(s string) (unix.CPUSet, error) {
	var set unix.CPUSet
	words := strings.Split(strings.TrimSpace(s), ",")
	for i, w := range slices.Backward(words) {
		v, err := strconv.ParseUint(w, 16, 32)
		if err != nil {
			return set, fmt.Errorf("bad cpu mask %q", s)
		}
		base := (len(words) - 1 - i) * 32
		for b := range 32 {
			if v&(1<<b) != 0 && base+b < 1024 {
				set.Set(base + b)
			}
		}
	}
	return set, nil
}

// The kernel's netdev generic-netlink family (include/uapi/linux/netdev.h).
const (
	netdevCmdDevGet       = 1      // NETDEV_CMD_DEV_GET
	netdevADevIfindex     = 1      // NETDEV_A_DEV_IFINDEX
	netdevADevXDPFeatures = 3      // NETDEV_A_DEV_XDP_FEATURES
	netdevXDPActNDOXmit   = 1 << 2 // NETDEV_XDP_ACT_NDO_XMIT
	netdevCmdNAPIGet      = 11     // NETDEV_CMD_NAPI_GET
	netdevANAPIIfindex    = 1      // NETDEV_A_NAPI_IFINDEX
	netdevANAPIID         = 2      // NETDEV_A_NAPI_ID
	netdevANAPIPID        = 4      // NETDEV_A_NAPI_PID
)

// NAPIs lists the NAPI instances of the interface with index ifindex in the
// calling thread's network namespace (netdev_nl_napi_get_dumpit).
func NAPIs(ifindex int) ([]NAPI, error) {
	fam, err := netlink.GenlFamilyGet("netdev")
	if err != nil {
		return nil, fmt.Errorf("nic: napi list: netdev netlink family: %w", err)
	}
	req := nl.NewNetlinkRequest(int(fam.ID), unix.NLM_F_DUMP)
	req.AddData(genlHdr{cmd: netdevCmdNAPIGet, version: 1})
	// The whole namespace's list, filtered here: this kernel (6.18)
	// answered a dump filtered by NETDEV_A_NAPI_IFINDEX with EINVAL.
	msgs, err := req.Execute(unix.NETLINK_GENERIC, 0)
	if err != nil {
		return nil, fmt.Errorf("nic: napi list of ifindex %d: %w", ifindex, err)
	}
	var out []NAPI
	for _, m := range msgs {
		if len(m) < nl.SizeofGenlmsg {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[nl.SizeofGenlmsg:])
		if err != nil {
			return nil, fmt.Errorf("nic: napi list of ifindex %d: %w", ifindex, err)
		}
		var x NAPI
		idx := -1
		for _, a := range attrs {
			if len(a.Value) < 4 {
				continue
			}
			v := nl.NativeEndian().Uint32(a.Value)
			switch a.Attr.Type {
			case netdevANAPIIfindex:
				idx = int(v)
			case netdevANAPIID:
				x.ID = v
			case netdevANAPIPID:
				x.PID = int(v)
			}
		}
		if idx == ifindex {
			out = append(out, x)
		}
	}
	return out, nil
}

// XDPNDOXmit reports whether the interface with index ifindex takes
// frames an XDP program redirects to it: NETDEV_XDP_ACT_NDO_XMIT among
// its xdp-features (netdev_nl_dev_get_doit). A veth has it only while its
// peer can receive them, an XDP program attached to the peer or GRO on
// (veth_xdp_set_features), so the answer changes with the peer.
func XDPNDOXmit(ifindex int) (bool, error) {
	fam, err := netlink.GenlFamilyGet("netdev")
	if err != nil {
		return false, fmt.Errorf("nic: xdp-features: netdev netlink family: %w", err)
	}
	req := nl.NewNetlinkRequest(int(fam.ID), 0)
	req.AddData(genlHdr{cmd: netdevCmdDevGet, version: 1})
	req.AddData(nl.NewRtAttr(netdevADevIfindex, nl.Uint32Attr(uint32(ifindex))))
	msgs, err := req.Execute(unix.NETLINK_GENERIC, 0)
	if err != nil {
		return false, fmt.Errorf("nic: xdp-features of ifindex %d: %w", ifindex, err)
	}
	for _, m := range msgs {
		if len(m) < nl.SizeofGenlmsg {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[nl.SizeofGenlmsg:])
		if err != nil {
			return false, fmt.Errorf("nic: xdp-features of ifindex %d: %w", ifindex, err)
		}
		for _, a := range attrs {
			if a.Attr.Type == netdevADevXDPFeatures && len(a.Value) >= 8 {
				return nl.NativeEndian().Uint64(a.Value)&netdevXDPActNDOXmit != 0, nil
			}
		}
	}
	return false, nil
}

// genlHdr is a struct genlmsghdr: command, version and two reserved bytes
// that must be zero. (nl.Genlmsg serialises two bytes of memory past its
// two fields as the reserved ones, and the kernel's strict validation of
// the request then fails it with EINVAL at random.)
type genlHdr struct{ cmd, version uint8 }

func (h genlHdr) Len() int          { return 4 }
func (h genlHdr) Serialize() []byte { return []byte{h.cmd, h.version, 0, 0} }

// EffectiveNice returns the nice value that the calling thread competes
// with against kernel threads such as the NAPI threads. With autogroup
// scheduling on (kernel.sched_autogroup_enabled = 1) a process of a session
// competes at the root as its session's group, whose weight is the
// group's nice (/proc/self/autogroup), whatever the nice of its threads:
// `nice -n -20 uvsd` started from a shell still weighs nice 0 against a
// kernel thread (sched_autogroup_create_attach, kernel/sched/autogroup.c).
// Otherwise it is the thread's own nice. A process in a cpu cgroup other
// than the root weighs what the cgroup's cpu.weight says; that is not
// looked at.
func EffectiveNice() (int, error) {
	if on, err := readTrim("/proc/sys/kernel/sched_autogroup_enabled"); err == nil && on == "1" {
		if ag, err := readTrim("/proc/self/autogroup"); err == nil {
			// "/autogroup-5435 nice 0"
			if f := strings.Fields(ag); len(f) == 3 && f[1] == "nice" {
				if n, err := strconv.Atoi(f[2]); err == nil {
					return n, nil
				}
			}
		}
	}
	raw, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	if err != nil {
		return 0, fmt.Errorf("nic: nice: %w", err)
	}
	// The raw syscall returns 20 - nice (getpriority(2), NOTES).
	return 20 - raw, nil
}
