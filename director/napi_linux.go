package director

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"go.uber.org/zap"

	"github.com/uvs-lb/uvs/dataplane/khook"
	"github.com/uvs-lb/uvs/dataplane/nic"
)

// napiNiceOffset is the nice of the served interfaces' NAPI threads
// relative to uvsd's effective nice (nic.EffectiveNice: its autogroup's
// under autogroup scheduling). Negative: the receive thread weighs about
// three times uvsd's group (sched_prio_to_weight, 5 steps ≈ 3×), so it is
// not starved by unrelated processes on a shared core — softirq receive
// never was — while, unlike softirq, it cannot take the whole core: uvsd
// keeps a quarter of it at least, and the frames the thread has no time
// for stay in the device's ring (veth's ptr_ring, a NIC's descriptors),
// dropped before an skb exists. Measured with uvs-bench --only
// uvs-nat-afpacket on the 2-core VM under other engineers' load
// (saturated / fixed 150 kpps, delivered kpps): offset +5: 56, 79, 33, 146
// / 33, 20, 38, 57; 0: 174, 52, 166 / 88, 31, 98; -5: 203, 196 / 121, 48
// (the 48 with other processes using 242 % of a CPU); softirq (before):
// 42, 2.5, 24, 1.0, 4.8 / 115, 144, 146, 150, 142, 150. A thread below
// uvsd's weight loses the 1x rate to every other busy process.
const napiNiceOffset = -5

// napiStateFile is where the interface settings ThreadRx changed are kept
// until uvsd restores them, one file per network namespace like khook's
// sysctl files, so that `uvsd --cleanup` restores them after a crash.
func napiStateFile() (string, error) {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return "", fmt.Errorf("network namespace: %w", err)
	}
	return filepath.Join(khook.DefaultStateDir, "napi-"+strconv.FormatUint(st.Ino, 10)+".json"), nil
}

// threadRx moves the receive processing of the served interfaces into
// NAPI threads (nic.ThreadRx) on the AF_PACKET backend, so that a flood
// whose receive work shares a worker's core cannot starve it (receive
// livelock). AF_XDP needs none of that (its XDP program takes the frames
// before any skb), but with the fast path the XDP program does the
// forwarding itself, and on a veth it runs wherever the sender runs
// (veth_xmit schedules the receiving NAPI on the sending CPU): threaded,
// it is the director's work, on the CPUs the interface's RPS mask named,
// as a NIC's driver runs it on its interrupt's CPU. The returned function
// restores the interfaces; run it once the sockets are closed.
// Interfaces that appear later keep their settings.
func (d *Director) threadRx() func() {
	if d.backend != IOAFPacket && (d.backend != IOAFXDP || d.fast == nil) || d.cfg.KeepRx {
		return func() {}
	}
	path, err := napiStateFile()
	if err != nil {
		d.log.Warn("threaded NAPI not set up", errField(err))
		return func() {}
	}
	// A crashed uvsd's settings come back first, so that what is
	// recorded below is the administrator's.
	if err := restoreNAPIFile(path); err != nil {
		d.log.Warn("restoring the interface settings a previous uvsd left", errField(err))
	}
	opt := nic.RxOptions{}
	if nice, err := nic.EffectiveNice(); err == nil {
		opt = nic.RxOptions{Nice: max(-20, min(19, nice+napiNiceOffset)), SetNice: true}
	}
	var states []nic.RxState
	for _, name := range d.servedNames() {
		st, err := nic.ThreadRx(name, opt)
		if err != nil {
			d.log.Warn("threaded NAPI: receive processing stays in softirq (a flood sharing a worker's core can starve it)", zap.String("iface", name), errField(err))
			continue
		}
		states = append(states, st)
		if err := writeNAPIFile(path, states); err != nil {
			d.log.Warn("recording the interface settings for uvsd --cleanup", errField(err))
		}
		d.log.Info("threaded NAPI", zap.String("iface", name), zap.Int("nice", opt.Nice), zap.Any("rps-moved", st.RPS), zap.Strings("features-on", st.Features))
	}
	return func() {
		var errs []error
		for _, st := range states {
			errs = append(errs, st.Restore())
		}
		if err := errors.Join(errs...); err != nil {
			d.log.Error("restoring the interfaces' NAPI settings", errField(err))
			return
		}
		if len(states) > 0 {
			_ = os.Remove(path)
		}
	}
}

// napiFile is the content of a NAPI state file.
type napiFile struct {
	// Cookie is the namespace's (khook.NetNSCookie): the file is named by
	// the namespace's inode number, which the kernel gives to the next
	// namespace once this one is gone; a file whose cookie is not the
	// namespace's is a dead namespace's and restores nothing.
	Cookie     uint64        `json:"netns_cookie"`
	Interfaces []nic.RxState `json:"interfaces"`
}

func writeNAPIFile(path string, states []nic.RxState) error {
	cookie, err := khook.NetNSCookie()
	if err != nil {
		return err
	}
	b, err := json.Marshal(napiFile{Cookie: cookie, Interfaces: states})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// restoreNAPIFile restores the settings recorded in path and removes it
// (nothing to do when there is no file; a dead namespace's file is
// removed unrestored). Runs in the namespace the file names.
func restoreNAPIFile(path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var f napiFile
	if len(b) > 0 && b[0] == '[' {
		// Written before files carried the namespace's cookie: restored.
		err = json.Unmarshal(b, &f.Interfaces)
	} else {
		err = json.Unmarshal(b, &f)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if f.Cookie != 0 {
		cookie, err := khook.NetNSCookie()
		if err != nil {
			return err
		}
		if cookie != f.Cookie {
			// A namespace that no longer exists had this inode number.
			return os.Remove(path)
		}
	}
	var errs []error
	for _, st := range f.Interfaces {
		errs = append(errs, st.Restore())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.Remove(path)
}

// CleanupNAPI restores the interface settings a uvsd that did not exit
// cleanly left in the calling thread's network namespace (uvsd --cleanup).
func CleanupNAPI() error {
	path, err := napiStateFile()
	if err != nil {
		return fmt.Errorf("napi cleanup: %w", err)
	}
	if err := restoreNAPIFile(path); err != nil {
		return fmt.Errorf("napi cleanup: %w", err)
	}
	return nil
}
