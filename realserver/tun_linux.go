package realserver

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Bounds on waiting for other processes.
const (
	readyTimeout = 15 * time.Second // tun up waits this long for the daemon
	stopTimeout  = 5 * time.Second  // tun down waits this long after SIGTERM
	statsPeriod  = time.Second      // the daemon refreshes stats.json this often
)

// kernelTunDev is the ipip module's fallback tunnel device.
const kernelTunDev = "tunl0"

// KernelHasIPIP reports whether the kernel can decapsulate IPIP itself: the
// ipip module is loaded, or an ipip link can be created (which loads it).
func KernelHasIPIP() bool {
	if _, err := os.Stat("/sys/module/ipip"); err == nil {
		return true
	}
	name := "uvsprobe" + strconv.Itoa(os.Getpid()%1000000)
	if err := netlink.LinkAdd(&netlink.Iptun{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil {
		return false
	}
	if l, err := netlink.LinkByName(name); err == nil {
		_ = netlink.LinkDel(l)
	}
	return true
}

// tunUp starts (or extends) the tunnel side.
func tunUp(ctx context.Context, env Env, o *Options) error {
	if o.Foreground || o.ReadyFD >= 0 {
		return runDecapsulator(ctx, env, o)
	}
	h, err := openHost(env, o.StateBase)
	if err != nil {
		return err
	}
	defer h.close()
	if t := h.st.Tun; t != nil {
		if t.Mode == TunKernel || t.alive() {
			return h.tunAddVIPs(env, o)
		}
		// The decapsulator died without cleaning up: forget it.
		fmt.Fprintf(env.Stdout, "tun: previous decapsulator (pid %d) is gone, restarting\n", t.PID)
		if err := removeLink(t.Dev); err != nil {
			return err
		}
		h.st.Tun = nil
		if err := h.save(); err != nil {
			return err
		}
	}
	if !o.ForceUserspace && o.GUEPort == 0 && KernelHasIPIP() {
		fmt.Fprintln(env.Stdout, "tun: the kernel has the ipip module: configuring tunl0 and stepping aside (--force-userspace to decapsulate in uvs-rs)")
		return h.kernelTunUp(env, o)
	}
	h.unlock() // the daemon takes the lock itself
	return startDaemon(env, o, h.dir)
}

// tunAddVIPs adds VIPs to a running tunnel and tells the decapsulator.
func (h *host) tunAddVIPs(env Env, o *Options) error {
	t := h.st.Tun
	if o.GUEPort != 0 && o.GUEPort != t.GUEPort {
		return fmt.Errorf("tun up: running with GUE port %d, not %d: tun down first", t.GUEPort, o.GUEPort)
	}
	for _, vip := range o.VIPs {
		if slices.Contains(t.VIPs, vip) {
			fmt.Fprintf(env.Stdout, "tun: %s already on %s\n", vip, t.Dev)
			continue
		}
		if t.Mode == TunKernel && vip.Is6() {
			return fmt.Errorf("tun up: %s: IPv6 VIPs need --force-userspace", vip)
		}
		if _, err := addVIP(t.Dev, vip); err != nil {
			return err
		}
		t.VIPs = append(t.VIPs, vip)
		fmt.Fprintf(env.Stdout, "tun: %s added to %s\n", vip, t.Dev)
	}
	if err := h.save(); err != nil {
		return err
	}
	return t.signal(unix.SIGHUP)
}

// kernelTunUp puts the VIPs on tunl0, the ipip module's device.
func (h *host) kernelTunUp(env Env, o *Options) error {
	for _, vip := range o.VIPs {
		if vip.Is6() {
			return fmt.Errorf("tun up: %s: IPv6 VIPs need --force-userspace", vip)
		}
	}
	link, err := netlink.LinkByName(kernelTunDev)
	if err != nil {
		return fmt.Errorf("tun up: %s: %w", kernelTunDev, err)
	}
	t := &TunState{Mode: TunKernel, Dev: kernelTunDev, DevWasUp: link.Attrs().Flags&net.FlagUp != 0}
	h.st.Tun = t
	if !o.NoSysctl {
		s := append(TunSysctls(), Setting{"net/ipv4/conf/" + kernelTunDev + "/rp_filter", "0"})
		if err := ApplySysctls(h.sys, s, h.st.Saved); err != nil {
			_ = h.save()
			return fmt.Errorf("tun up: %w", err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		_ = h.save()
		return fmt.Errorf("tun up: %s up: %w", kernelTunDev, err)
	}
	return h.tunAddVIPs(env, o)
}

// startDaemon re-executes uvs-rs in a new session to run the decapsulator
// and waits until it reports that the TUN device is ready.
func startDaemon(env Env, o *Options, dir string) error {
	exe := env.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return fmt.Errorf("tun up: %w", err)
		}
	}
	logPath := o.Log
	if logPath == "" {
		logPath = filepath.Join(dir, "tun.log")
	}
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("tun up: log: %w", err)
	}
	defer logf.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("tun up: %w", err)
	}
	defer pr.Close()
	args := []string{"tun", "up", "--ready-fd", "3", "--state-dir", o.StateBase,
		"--dev", o.Dev, "--gue-port", strconv.Itoa(int(o.GUEPort)), "--log", logPath}
	for _, v := range o.VIPs {
		args = append(args, "--vip", v.String())
	}
	if o.NoSysctl {
		args = append(args, "--no-sysctl")
	}
	if o.ForceUserspace {
		args = append(args, "--force-userspace")
	}
	if o.NoOffload {
		args = append(args, "--no-offload")
	}
	if o.NoBPF {
		args = append(args, "--no-bpf")
	}
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{pw}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		pw.Close()
		return fmt.Errorf("tun up: start decapsulator: %w", err)
	}
	pw.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	_ = pr.SetReadDeadline(time.Now().Add(readyTimeout))
	line, rerr := bufio.NewReader(pr).ReadString('\n')
	line = strings.TrimSpace(line)
	if rerr == nil && line == "ready" {
		fmt.Fprintf(env.Stdout, "tun: decapsulator running, pid %d, device %s, VIPs %s, log %s\n",
			cmd.Process.Pid, o.Dev, vipList{&o.VIPs}, logPath)
		return nil
	}
	// Not ready: stop the child we started (by its PID) and report why.
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(stopTimeout):
		_ = cmd.Process.Kill()
		<-exited
	}
	if line == "" {
		line = "no readiness report (see " + logPath + ")"
	}
	return fmt.Errorf("tun up: decapsulator failed: %s", strings.TrimPrefix(line, "error: "))
}

// ifaceRP returns the rp_filter key of dev.
func ifaceRP(dev string) string { return "net/ipv4/conf/" + dev + "/rp_filter" }

// decapState is what a running decapsulator owns.
type decapState struct {
	tun     *tunDev
	mtu     int // the TUN device's MTU
	sources []*source
	d       *Decapsulator
}

// source is one receiving socket: a raw socket read by a blockingReader
// of its own (raw), or the GUE socket read through the runtime's poller
// (r).
type source struct {
	kind Encap
	r    rawSocket
	raw  *blockingReader
	bufs *Batch
}

// Close closes the source's socket (a raw socket's reader closes its
// descriptor once woken).
func (s *source) Close() error {
	if s.raw != nil {
		return s.raw.Close()
	}
	return s.r.Close()
}

// rawSocket is a receiving socket read through the runtime's poller: the
// GUE socket, a *net.UDPConn.
type rawSocket interface {
	io.ReadCloser
	SyscallConn() (syscall.RawConn, error)
}

// batchSize is the number of packets one recvmmsg may return per source:
// at the usual 1448-byte TCP payload, 45 segments fill a 64 KB super-frame.
const batchSize = 64

// openRaw opens a raw socket of family (AF_INET or AF_INET6) for proto,
// read in batches by a blockingReader over a new batch of buffers.
func openRaw(family, proto int, kind Encap) (*source, error) {
	fd, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		if family == unix.AF_INET6 {
			return nil, fmt.Errorf("raw IPv6 socket for protocol %d: %w", proto, err)
		}
		return nil, fmt.Errorf("raw socket for protocol %d: %w", proto, err)
	}
	// A large receive buffer absorbs bursts while the TUN write runs.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	b := NewBatch(batchSize)
	r, err := newBlockingReader(fd, b.Bufs)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("raw socket for protocol %d: %w", proto, err)
	}
	return &source{kind: kind, raw: r, bufs: b}, nil
}

// setupDecap creates the TUN device with the VIPs and opens the sockets.
func setupDecap(sys Sysctls, o *Options) (*decapState, error) {
	tun, err := openTUN(o.Dev, !o.NoOffload)
	if err != nil {
		return nil, fmt.Errorf("create TUN %s: %w", o.Dev, err)
	}
	ds := &decapState{tun: tun, d: NewDecapsulator(o.VIPs)}
	fail := func(err error) (*decapState, error) {
		ds.close()
		return nil, err
	}
	link, err := netlink.LinkByName(tun.Name())
	if err != nil {
		return fail(fmt.Errorf("TUN %s: %w", tun.Name(), err))
	}
	ds.mtu = link.Attrs().MTU
	if !o.NoSysctl {
		// The device is ours and goes away with us: no need to save.
		if err := sys.Set(ifaceRP(tun.Name()), "0"); err != nil {
			return fail(err)
		}
	}
	for _, vip := range o.VIPs {
		if _, err := addVIP(tun.Name(), vip); err != nil {
			return fail(err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fail(fmt.Errorf("TUN %s up: %w", tun.Name(), err))
	}
	// IPIP, IPv6-in-IPv4 and GRE under an outer IPv4 header; the
	// same three under an outer IPv6 header (ip_vs_tunnel_xmit_v6). The
	// kernel reassembles fragmented outer packets before it hands them
	// to a raw socket (ip_local_deliver → ip_defrag; ipv6_frag_rcv runs
	// before rawv6_rcv), so each read is a whole tunnelled packet.
	for _, p := range []int{ProtoIPIP, ProtoIPv6, ProtoGRE} {
		src, err := openRaw(unix.AF_INET, p, EncapIPIP)
		if err != nil {
			return fail(err)
		}
		ds.sources = append(ds.sources, src)
	}
	for _, s := range []struct {
		proto int
		kind  Encap
	}{{ProtoIPIP, EncapIPv6IPIP}, {ProtoIPv6, EncapIPv6IPv6}, {ProtoGRE, EncapIPv6GRE}} {
		src, err := openRaw(unix.AF_INET6, s.proto, s.kind)
		if errors.Is(err, unix.EAFNOSUPPORT) {
			break // IPv6 disabled: IPv4 outer headers only
		}
		if err != nil {
			return fail(err)
		}
		ds.sources = append(ds.sources, src)
	}
	if o.GUEPort != 0 {
		// A dual-stack socket: GUE over IPv4 and IPv6. The director
		// sends a zero UDP checksum over IPv6 without --tun-csum (RFC
		// 6935, udp6_set_csum), which an IPv6 UDP socket drops unless
		// told otherwise.
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			return c.Control(func(fd uintptr) {
				_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_NO_CHECK6_RX, 1)
			})
		}}
		pc, err := lc.ListenPacket(context.Background(), "udp", ":"+strconv.Itoa(int(o.GUEPort)))
		if err != nil {
			return fail(fmt.Errorf("GUE port %d: %w", o.GUEPort, err))
		}
		ds.sources = append(ds.sources, &source{kind: EncapGUE, r: pc.(*net.UDPConn)})
	}
	return ds, nil
}

// close closes the sockets and the TUN device (which removes it).
func (ds *decapState) close() {
	for _, s := range ds.sources {
		_ = s.Close()
	}
	if ds.tun != nil {
		_ = ds.tun.Close()
	}
}

// runDecapsulator is the decapsulator process: set up, report readiness,
// serve until SIGTERM/SIGINT (or ctx), then clean up its part of the state.
func runDecapsulator(ctx context.Context, env Env, o *Options) (err error) {
	var ready *os.File
	if o.ReadyFD >= 0 {
		ready = os.NewFile(uintptr(o.ReadyFD), "ready")
		defer func() {
			if err != nil {
				fmt.Fprintf(ready, "error: %v\n", err)
			}
			ready.Close()
		}()
	}
	h, err := openHost(env, o.StateBase)
	if err != nil {
		return err
	}
	defer h.close()
	if t := h.st.Tun; t != nil && (t.Mode == TunKernel || t.alive()) {
		return fmt.Errorf("tun up: already configured (%s, pid %d): use tun up without --foreground to add VIPs", t.Mode, t.PID)
	} else if t != nil {
		_ = removeLink(t.Dev)
		h.st.Tun = nil
	}
	if !o.NoSysctl {
		err := ApplySysctls(h.sys, TunSysctls(), h.st.Saved)
		if serr := h.save(); err == nil {
			err = serr
		}
		if err != nil {
			return fmt.Errorf("tun up: %w", err)
		}
	}
	ds, err := setupDecap(h.sys, o)
	if err != nil {
		err = fmt.Errorf("tun up: %w", err)
		if rerr := h.restoreIfEmpty(); rerr != nil {
			err = errors.Join(err, rerr)
		}
		_ = h.save()
		return err
	}
	logf := func(format string, a ...any) {
		fmt.Fprintf(env.Stderr, "%s uvs-rs: %s\n", time.Now().Format(time.RFC3339), fmt.Sprintf(format, a...))
	}
	kdecap := startBPF(logf, h.sys, o, ds.tun.Name(), h.st.Saved)
	if kdecap != nil {
		defer kdecap.close()
	}
	start, _ := procStart(os.Getpid())
	h.st.Tun = &TunState{Mode: TunUserspace, Dev: ds.tun.Name(), VIPs: slices.Clone(o.VIPs),
		GUEPort: o.GUEPort, PID: os.Getpid(), StartTime: start, Log: o.Log}
	if kdecap != nil {
		h.st.Tun.BPF = slices.Clone(kdecap.ifaces)
	}
	if err := h.save(); err != nil {
		ds.close()
		return err
	}
	pidFile := filepath.Join(h.dir, "tun.pid")
	_ = os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
	h.unlock()

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
	defer signal.Stop(sigs)

	var wg sync.WaitGroup
	errs := make(chan error, len(ds.sources))
	for _, s := range ds.sources {
		var src BatchReader = s.raw
		b := s.bufs
		if s.raw == nil {
			rc, err := s.r.SyscallConn()
			if err != nil {
				ds.close()
				return fmt.Errorf("%s source: %w", s.kind, err)
			}
			b = NewBatch(batchSize)
			src = newMmsgReader(rc, b.Bufs)
		}
		b.SetMTU(ds.mtu)
		wg.Go(func() {
			if err := ds.d.ServeBatch(s.kind, src, ds.tun, ds.tun.vnet, b); err != nil {
				errs <- fmt.Errorf("%s source: %w", s.kind, err)
			}
		})
	}
	offload := "virtio_net_hdr, TCP coalescing"
	if !ds.tun.vnet {
		offload = "no offload, one write per packet"
	}
	fmt.Fprintf(env.Stderr, "%s uvs-rs: decapsulating into %s (%s) for %s (pid %d, gue port %d)\n",
		time.Now().Format(time.RFC3339), ds.tun.Name(), offload, vipList{&o.VIPs}, os.Getpid(), o.GUEPort)
	if ready != nil {
		fmt.Fprintln(ready, "ready")
		ready.Close()
		ready = nil
	} else {
		fmt.Fprintf(env.Stdout, "tun: decapsulating into %s (foreground, pid %d)\n", ds.tun.Name(), os.Getpid())
	}

	statsPath := filepath.Join(h.dir, "stats.json")
	tick := time.NewTicker(statsPeriod)
	defer tick.Stop()
	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-errs:
			runErr = err
			break loop
		case sig := <-sigs:
			if sig != unix.SIGHUP {
				break loop
			}
			if err := h.lock(); err == nil {
				if h.st.Tun != nil && h.st.Tun.PID == os.Getpid() {
					ds.d.SetVIPs(h.st.Tun.VIPs)
				}
				if kdecap != nil {
					if err := kdecap.refresh(ds.d.VIPs()); err != nil {
						logf("in-kernel decapsulation: %v", err)
					}
				}
				h.unlock()
			}
			fmt.Fprintf(env.Stderr, "%s uvs-rs: VIPs now %v\n", time.Now().Format(time.RFC3339), ds.d.VIPs())
		case <-tick.C:
			if kdecap != nil {
				// Addresses come and go; a VIP the map lacks only sends
				// its packets the user-space way.
				_ = kdecap.refresh(ds.d.VIPs())
				kdecap.count(ds.d.Counters())
			}
			writeStats(statsPath, ds.d.Counters())
		}
	}
	if kdecap != nil {
		kdecap.count(ds.d.Counters())
		kdecap.close()
	}
	ds.close()
	wg.Wait()
	writeStats(statsPath, ds.d.Counters())
	fmt.Fprintf(env.Stderr, "%s uvs-rs: stopping, counters %v\n", time.Now().Format(time.RFC3339), ds.d.Counters().Snapshot())

	// Undo our part of the state (tun down may already have).
	if err := h.lock(); err != nil {
		return errors.Join(runErr, err)
	}
	if t := h.st.Tun; t != nil && t.PID == os.Getpid() {
		h.st.Tun = nil
	}
	_ = os.Remove(pidFile)
	_ = os.Remove(statsPath)
	err = h.restoreIfEmpty()
	if serr := h.save(); err == nil {
		err = serr
	}
	return errors.Join(runErr, err)
}

// writeStats replaces path with the counters as JSON.
func writeStats(path string, c *Counters) {
	b, err := json.Marshal(c.Snapshot())
	if err != nil {
		return
	}
	tmp := path + ".tmp"
	if os.WriteFile(tmp, b, 0o600) == nil {
		_ = os.Rename(tmp, path)
	}
}

// removeLink deletes dev if it exists.
func removeLink(dev string) error {
	link, err := netlink.LinkByName(dev)
	if err != nil {
		return nil
	}
	if err := netlink.LinkDel(link); err != nil {
		return fmt.Errorf("remove %s: %w", dev, err)
	}
	return nil
}

// tunDown removes VIPs from the tunnel; when none is left it stops the
// decapsulator (or unconfigures tunl0) and restores the sysctls.
func tunDown(env Env, o *Options) error {
	h, err := openHost(env, o.StateBase)
	if err != nil {
		return err
	}
	defer h.close()
	t := h.st.Tun
	if t == nil {
		fmt.Fprintln(env.Stdout, "tun: not configured")
		err := h.restoreIfEmpty()
		if serr := h.save(); err == nil {
			err = serr
		}
		return err
	}
	want := o.VIPs
	if len(want) == 0 {
		want = slices.Clone(t.VIPs)
	}
	for _, vip := range want {
		i := slices.Index(t.VIPs, vip)
		if i < 0 {
			fmt.Fprintf(env.Stdout, "tun: %s not configured\n", vip)
			continue
		}
		if err := delVIP(t.Dev, vip); err != nil {
			return err
		}
		t.VIPs = slices.Delete(t.VIPs, i, i+1)
		fmt.Fprintf(env.Stdout, "tun: %s removed from %s\n", vip, t.Dev)
	}
	if len(t.VIPs) > 0 {
		if err := h.save(); err != nil {
			return err
		}
		return t.signal(unix.SIGHUP)
	}
	switch t.Mode {
	case TunKernel:
		if !t.DevWasUp {
			if link, err := netlink.LinkByName(t.Dev); err == nil {
				_ = netlink.LinkSetDown(link)
			}
		}
	default:
		if t.alive() {
			if err := h.save(); err != nil {
				return err
			}
			pid := t.PID
			if err := t.signal(unix.SIGTERM); err != nil {
				return err
			}
			h.unlock() // the decapsulator cleans up under the lock
			stopped := waitGone(t, stopTimeout)
			if !stopped {
				_ = t.signal(unix.SIGKILL)
				stopped = waitGone(t, stopTimeout)
			}
			if err := h.lock(); err != nil {
				return err
			}
			if !stopped {
				return fmt.Errorf("tun down: decapsulator %d did not stop", pid)
			}
			fmt.Fprintf(env.Stdout, "tun: decapsulator %d stopped\n", pid)
		}
		if err := removeLink(t.Dev); err != nil {
			return err
		}
	}
	if h.st.Tun != nil && h.st.Tun.PID == t.PID {
		h.st.Tun = nil
	}
	err = h.restoreIfEmpty()
	if serr := h.save(); err == nil {
		err = serr
	}
	return err
}

// waitGone polls until the recorded process has exited or d has passed.
func waitGone(t *TunState, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !t.alive() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return !t.alive()
}

// status prints the namespace's configuration. It only reads: no lock,
// no directory is created (the state file is replaced atomically).
func status(env Env, o *Options) error {
	dir, inode, cookie, err := stateDir(o.StateBase)
	if err != nil {
		return err
	}
	st, err := LoadState(dir)
	if err != nil {
		return err
	}
	if st.NetNSCookie != 0 && cookie != 0 && st.NetNSCookie != cookie {
		st = &State{} // left by a namespace that no longer exists
	}
	sys := env.sysctls()
	w := env.Stdout
	fmt.Fprintf(w, "netns inode %d, state %s\n", inode, dir)
	if len(st.DR) == 0 {
		fmt.Fprintln(w, "dr: none")
	}
	for _, d := range st.DR {
		fmt.Fprintf(w, "dr: %s on %s\n", d.VIP, d.Dev)
	}
	if t := st.Tun; t == nil {
		fmt.Fprintln(w, "tun: none")
	} else {
		state := "kernel ipip"
		if t.Mode == TunUserspace {
			state = "decapsulator pid " + strconv.Itoa(t.PID) + " not running"
			if t.alive() {
				state = "decapsulator pid " + strconv.Itoa(t.PID) + " running"
			}
		}
		fmt.Fprintf(w, "tun: %s on %s, VIPs %s, gue port %d, %s\n", t.Mode, t.Dev, vipList{&t.VIPs}, t.GUEPort, state)
		if len(t.BPF) > 0 {
			fmt.Fprintf(w, "tun: IPv4-in-IPv4 decapsulated in the kernel (tc BPF) on %s\n", strings.Join(t.BPF, ", "))
		}
		if b, err := os.ReadFile(filepath.Join(dir, "stats.json")); err == nil && t.Mode == TunUserspace {
			fmt.Fprintf(w, "tun: counters %s\n", strings.TrimSpace(string(b)))
		}
	}
	keys := make([]string, 0, len(st.Saved))
	for k := range st.Saved {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		cur, _ := sys.Get(k)
		fmt.Fprintf(w, "sysctl %s = %s (was %s)\n", strings.ReplaceAll(k, "/", "."), cur, st.Saved[k])
	}
	return nil
}
