package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/uvs-lb/uvs/connsync"
	"github.com/uvs-lb/uvs/connsync/wire"
	"github.com/uvs-lb/uvs/internal/wait"
)

// The sync link: a veth from the director (ds) to an observer namespace
// (os), the master's mcast interface. The observer runs a backup uvsd and
// the harness's tap, both on the generator's CPU with os's receive steered
// there (RPS), so the director core pays only for sending.
const (
	syncDirDev, syncObsDev = "ds", "os"
	syncID                 = 9
)

var (
	syncDirAddr = netip.MustParseAddr("198.18.9.1")
	syncObsAddr = netip.MustParseAddr("198.18.9.2")
)

// syncScale measures the master sync daemon's cost: uvs-nat with
// sync_threshold "1 0" and a 1 s UDP timeout, offered UDP at SyncRate over
// SyncFlows flows (each back after more than the timeout, so each packet is
// a new connection), with the master daemon running and not, in
// interleaved rounds; and the sync traffic the observer sees.
func (h *harness) syncScale(ctx context.Context) (err error) {
	obs := h.topo.Prefix + "obs"
	s := &SyncScale{Rate: h.cfg.SyncRate, Flows: h.cfg.SyncFlows, Timeout: syncUDPTimeout, Threshold: syncThreshold}
	h.rep.Sync = s
	h.rep.Method["conn-sync"] = fmt.Sprintf("uvs-nat (uvsd --sysctl sync_threshold=%q, uvsadm --set 900 120 %d) offered UDP at %s pps over %d flows "+
		"from 198.18.64.0/18 (each flow back after %.1f s); the master sync daemon (uvsadm --start-daemon master --mcast-interface %s --syncid %d) "+
		"started before and stopped after each sync-on run, alternating with sync-off runs (order swapped every round), %d rounds, "+
		"%v warm-up and %v window. Director cost as in the CPU figure (CPU1 busy wall time ÷ delivered packets); core share = that × delivered pps. "+
		"New connections = growth of uvsd's service Conns counter (uvsadm -Ln --stats --exact). Sync traffic = what an AF_PACKET tap in the observer namespace "+
		"receives on %s (IPv4 UDP to port %d), decoded with connsync/wire (entries = what a backup accepts); the observer's backup uvsd "+
		"(--start-daemon backup) shows the entries arrive. uvsd exposes no sync counters, so ring drops show only as entries per new connection below 1.",
		syncThreshold, syncUDPTimeout, fmtVal(h.cfg.SyncRate), h.cfg.SyncFlows, float64(h.cfg.SyncFlows)/h.cfg.SyncRate, syncDirDev, syncID,
		h.cfg.SyncRounds, h.cfg.SyncWarm, h.cfg.SyncWindow, syncObsDev, wire.DefaultPort)
	h.logf("connection sync: observer %s, %d rounds of sync off/on at %s pps", obs, h.cfg.SyncRounds, fmtVal(h.cfg.SyncRate))
	fail := func(what string, err error) error {
		s.Note = what + ": " + err.Error()
		return fmt.Errorf("connection-sync figure: %s: %w", what, err)
	}
	if err := h.syncLinkUp(obs); err != nil {
		return fail("sync link", err)
	}
	defer func() {
		if _, derr := run(cmdTimeout, "ip", "netns", "del", obs); derr != nil {
			h.logf("removing %s: %v", obs, derr)
		}
	}()
	backup, err := h.startSyncBackup(obs)
	if err != nil {
		return fail("backup uvsd", err)
	}
	defer func() { _ = backup.stop(10 * time.Second) }()
	tap, err := openSyncTap(obs, syncObsDev, wire.DefaultPort)
	if err != nil {
		return fail("tap", err)
	}
	defer tap.close()
	if err := h.startSyncMaster(); err != nil {
		return fail("master uvsd", err)
	}
	defer func() {
		if serr := h.stopUVS("-m"); serr != nil {
			h.logf("connection sync: stopping uvsd: %v", serr)
		}
	}()
	warm, window := h.cfg.UDPWarm, h.cfg.UDPWindow
	h.cfg.UDPWarm, h.cfg.UDPWindow = h.cfg.SyncWarm, h.cfg.SyncWindow
	defer func() { h.cfg.UDPWarm, h.cfg.UDPWindow = warm, window }()
	for round := 0; round < h.cfg.SyncRounds; round++ {
		order := []bool{false, true}
		if round%2 == 1 {
			order = []bool{true, false}
		}
		for _, on := range order {
			if err := ctx.Err(); err != nil {
				return err
			}
			r := h.syncRun(ctx, obs, tap, on)
			r.Candidate, r.Round = SyncCandidate, round
			h.rep.Runs = append(h.rep.Runs, r)
			h.logf("sync round %d %-8s %s", round+1, r.Figure, describeSync(r))
		}
	}
	return nil
}

// syncLinkUp creates the observer namespace and the sync link.
func (h *harness) syncLinkUp(obs string) error {
	if _, err := run(cmdTimeout, "ip", "netns", "add", obs); err != nil {
		return err
	}
	dir := h.topo.Dir
	cmds := [][]string{
		{"ip", "link", "add", syncDirDev, "netns", dir, "address", macString(mac(9, 1)), "type", "veth",
			"peer", "name", syncObsDev, "netns", obs, "address", macString(mac(9, 2))},
		{"ip", "netns", "exec", obs, "sysctl", "-q", "-w", "net.ipv4.conf.all.rp_filter=0"},
		{"ip", "netns", "exec", obs, "sysctl", "-q", "-w", "net.ipv4.conf.default.rp_filter=0"},
		{"ip", "netns", "exec", obs, "sysctl", "-q", "-w", "net.ipv4.conf." + syncObsDev + ".rp_filter=0"},
		{"ip", "netns", "exec", obs, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"},
		{"ip", "netns", "exec", obs, "sysctl", "-q", "-w", "net.ipv6.conf." + syncObsDev + ".disable_ipv6=1"},
		{"ip", "netns", "exec", dir, "sysctl", "-q", "-w", "net.ipv6.conf." + syncDirDev + ".disable_ipv6=1"},
		{"ip", "-n", obs, "link", "set", "lo", "up"},
		{"ip", "-n", dir, "addr", "add", syncDirAddr.String() + "/24", "dev", syncDirDev},
		{"ip", "-n", obs, "addr", "add", syncObsAddr.String() + "/24", "dev", syncObsDev},
		{"ip", "-n", dir, "link", "set", syncDirDev, "up"},
		{"ip", "-n", obs, "link", "set", syncObsDev, "up"},
	}
	for _, c := range cmds {
		if _, err := run(cmdTimeout, c[0], c[1:]...); err != nil {
			return err
		}
	}
	// The observer's receive work runs on the generator's CPU.
	return setRPS(obs, syncObsDev, strconv.FormatUint(1<<genCPU, 16))
}

// uvsadmIn runs uvsadm in namespace ns, pinned to the generator's CPU.
func (h *harness) uvsadmIn(ns string, args ...string) (string, error) {
	a := append([]string{"env", "UVS_NO_AUTOSTART=1", filepath.Join(h.bin, "uvsadm")}, args...)
	return nsRun(cmdTimeout, ns, genCPU, a...)
}

// startSyncBackup starts a backup uvsd in the observer namespace (on the
// generator's CPU) with the same UDP service, and its backup daemon.
func (h *harness) startSyncBackup(obs string) (*proc, error) {
	rules := filepath.Join(h.tmp, "uvs-sync-backup.rules")
	if err := os.WriteFile(rules, []byte(h.uvsRules("-m", true)), 0o644); err != nil {
		return nil, err
	}
	// --rx-threads=false: the observer's tap reads the sync link's frames
	// as they arrive; threaded receive (on with the fast path) turns GRO
	// on, which would hand it several datagrams merged into one.
	p, err := start("uvsd (sync backup)", obs, genCPU, filepath.Join(h.bin, "uvsd"), "--rules", rules, "--iface", syncObsDev,
		"--workers", "1", "--log-level", "info", "--rx-threads=false")
	if err != nil {
		return nil, err
	}
	if err := p.waitFor(15*time.Second, "answer to uvsadm -Ln", func() bool {
		_, err := h.uvsadmIn(obs, "-Ln")
		return err == nil
	}); err != nil {
		_ = p.stop(2 * time.Second)
		return nil, err
	}
	if _, err := h.uvsadmIn(obs, "--start-daemon", "backup", "--mcast-interface", syncObsDev, "--syncid", strconv.Itoa(syncID)); err != nil {
		_ = p.stop(2 * time.Second)
		return nil, err
	}
	return p, nil
}

// startSyncMaster starts uvs-nat's uvsd (UDP service only) with the sync
// sysctl and the short UDP timeout; the master daemon is started per run.
func (h *harness) startSyncMaster() error {
	rules := filepath.Join(h.tmp, "uvs-sync.rules")
	if err := os.WriteFile(rules, []byte(h.uvsRules("-m", true)), 0o644); err != nil {
		return err
	}
	p, err := start("uvsd", h.topo.Dir, dirCPU, filepath.Join(h.bin, "uvsd"), "--rules", rules, "--iface", h.dirIfaces(),
		"--workers", "1", "--log-level", "info", "--sysctl", "sync_threshold="+syncThreshold)
	if err != nil {
		return err
	}
	h.uvsd = p
	if err := p.waitFor(15*time.Second, "answer to uvsadm -Ln", func() bool {
		_, err := h.uvsadmIn(h.topo.Dir, "-Ln")
		return err == nil
	}); err != nil {
		_ = h.stopUVS("-m")
		return err
	}
	if _, err := h.uvsadmIn(h.topo.Dir, "--set", "900", "120", strconv.Itoa(syncUDPTimeout)); err != nil {
		_ = h.stopUVS("-m")
		return err
	}
	return nil
}

// syncSnapshot reads the window's counters. uvsd's run time is read
// inside the uvsadm requests (after them at the window's start, before
// them at its end), so that uvsd's answers to them are not counted.
func (h *harness) syncSnapshot(obs string, tap *syncTap, end bool) (syncSnap, error) {
	var s syncSnap
	var err error
	sched := func() {
		if err == nil {
			s.atSched = time.Now()
			s.uvsdNS, err = procRunNS(h.uvsd.cmd.Process.Pid)
		}
	}
	if end {
		sched()
	}
	s.atTap = time.Now()
	s.tally, s.tapDrops = tap.snapshot()
	if err == nil {
		s.linkTx, err = linkTxPackets(h.topo.Dir, syncDirDev)
	}
	if err == nil {
		s.atConns = time.Now()
		var out string
		if out, err = h.uvsadmIn(h.topo.Dir, "-L", "-n", "--stats", "--exact"); err == nil {
			s.conns, err = ParseServiceConns(out)
		}
	}
	if err == nil {
		var out string
		if out, err = h.uvsadmIn(obs, "-L", "-n"); err == nil {
			var a, i int64
			a, i, err = ParseListConns(out)
			s.backupLive = a + i
		}
	}
	if !end {
		sched()
	}
	return s, err
}

// procRunNS sums the run time of a process's threads (schedstat).
func procRunNS(pid int) (uint64, error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("uvsd threads: %w", err)
	}
	var sum uint64
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "schedstat"))
		if err != nil {
			continue // the thread ended
		}
		n, err := ParseSchedstat(b)
		if err != nil {
			return 0, err
		}
		sum += n
	}
	return sum, nil
}

// syncRun is one paced run (FigSyncOn with the master daemon running,
// FigSyncOff without). The window's ends are marked by udpRun's two calls
// of its delivered counter, which take the snapshots too.
func (h *harness) syncRun(ctx context.Context, obs string, tap *syncTap, on bool) Run {
	fig := FigSyncOff
	if on {
		fig = FigSyncOn
	}
	failed := func(err error) Run {
		return Run{Figure: fig, Value: Num(math.NaN()), Err: err.Error()}
	}
	// Start from an empty table: the previous run's connections have
	// expired (the flows would otherwise hit them).
	if !wait.Until(5*time.Second, func() bool {
		n, err := h.liveConns()
		return err == nil && n == 0
	}) {
		n, err := h.liveConns()
		return failed(fmt.Errorf("director table not empty 5 s after the previous run: %d live connections (%v)", n, err))
	}
	var total0 syncTotals
	if on {
		started := strings.Count(h.uvsd.out.String(), masterStartedLog)
		if _, err := h.uvsadmIn(h.topo.Dir, "--start-daemon", "master", "--mcast-interface", syncDirDev, "--syncid", strconv.Itoa(syncID)); err != nil {
			return failed(err)
		}
		defer func() {
			if _, err := h.uvsadmIn(h.topo.Dir, "--stop-daemon", "master"); err != nil {
				h.logf("connection sync: --stop-daemon master: %v", err)
			}
		}()
		// The master's thread logs its start once it sends: from then
		// on every new connection is queued for sync.
		if !wait.Until(5*time.Second, func() bool { return strings.Count(h.uvsd.out.String(), masterStartedLog) > started }) {
			return failed(fmt.Errorf("uvsd did not log %q within 5 s of --start-daemon", masterStartedLog))
		}
		var err error
		if total0, err = h.syncTotals(tap); err != nil {
			return failed(err)
		}
	}
	var snaps []syncSnap
	var snapErr error
	delivered := func() (uint64, error) {
		s, err := h.syncSnapshot(obs, tap, len(snaps) > 0)
		if err != nil && snapErr == nil {
			snapErr = err
		}
		snaps = append(snaps, s)
		return h.topo.Delivered()
	}
	spec := h.udpSpec([]netip.Addr{VIP}, h.cfg.SyncFlows, FillBase, 1024, 64)
	r := h.udpRun(ctx, spec, h.cfg.SyncRate, delivered)
	r.Figure = fig
	if r.Err != "" {
		return r
	}
	if snapErr != nil {
		r.Err = snapErr.Error()
		return r
	}
	if len(snaps) != 2 {
		r.Err = fmt.Sprintf("internal: %d window snapshots, want 2", len(snaps))
		return r
	}
	addSyncExtras(r.Extra, snaps[0], snaps[1], float64(r.Value))
	if on {
		// Every connection made while the master ran must arrive: wait
		// until the entries caught up with the connections, or the
		// master's flush time (a partly filled message is sent when
		// FlushTime old) has certainly passed.
		var total1 syncTotals
		var err error
		wait.Until(connsync.FlushTime+time.Second, func() bool {
			total1, err = h.syncTotals(tap)
			return err == nil && total1.entries-total0.entries >= total1.conns-total0.conns
		})
		if err != nil {
			r.Err = err.Error()
			return r
		}
		r.Extra["total_conns"] = float64(total1.conns - total0.conns)
		r.Extra["total_entries"] = float64(total1.entries - total0.entries)
		r.Extra["missing_entries"] = float64(int64(total1.conns-total0.conns) - int64(total1.entries-total0.entries))
	}
	return r
}

// masterStartedLog is what uvsd logs when its master sync thread runs.
const masterStartedLog = "sync thread started: state = MASTER"

// syncTotals are the connections uvsd made and the entries the tap saw.
type syncTotals struct{ conns, entries uint64 }

func (h *harness) syncTotals(tap *syncTap) (syncTotals, error) {
	var t syncTotals
	tally, _ := tap.snapshot()
	t.entries = tally.Entries
	out, err := h.uvsadmIn(h.topo.Dir, "-L", "-n", "--stats", "--exact")
	if err != nil {
		return t, err
	}
	t.conns, err = ParseServiceConns(out)
	return t, err
}

// linkTxPackets returns dev's transmitted packets in namespace ns.
func linkTxPackets(ns, dev string) (uint64, error) {
	h, err := netns.GetFromName(ns)
	if err != nil {
		return 0, fmt.Errorf("namespace %s: %w", ns, err)
	}
	defer h.Close()
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		return 0, fmt.Errorf("netlink in %s: %w", ns, err)
	}
	defer nh.Close()
	l, err := nh.LinkByName(dev)
	if err != nil {
		return 0, fmt.Errorf("%s in %s: %w", dev, ns, err)
	}
	if s := l.Attrs().Statistics; s != nil {
		return s.TxPackets, nil
	}
	return 0, fmt.Errorf("%s in %s: no statistics", dev, ns)
}

// syncTap is an AF_PACKET socket on the observer's end of the sync link
// counting sync datagrams in a SyncTally.
type syncTap struct {
	fd     int
	port   uint16
	closed atomic.Bool
	done   chan struct{}

	mu    sync.Mutex
	tally SyncTally
	drops uint64 // PACKET_STATISTICS drops, summed (the kernel resets them on read)
}

// htons converts a host-order 16-bit value to network order.
func htons(v uint16) uint16 {
	return binary.NativeEndian.Uint16(binary.BigEndian.AppendUint16(nil, v))
}

func openSyncTap(ns, iface string, port uint16) (*syncTap, error) {
	t := &syncTap{fd: -1, port: port, done: make(chan struct{})}
	err := inNetNS(ns, func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return fmt.Errorf("tap: interface %s: %w", iface, err)
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_IP)))
		if err != nil {
			return fmt.Errorf("tap: AF_PACKET socket: %w", err)
		}
		t.fd = fd
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
		tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return fmt.Errorf("tap: SO_RCVTIMEO: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifi.Index}); err != nil {
			return fmt.Errorf("tap: bind %s: %w", iface, err)
		}
		return nil
	})
	if err != nil {
		if t.fd >= 0 {
			_ = unix.Close(t.fd)
		}
		return nil, err
	}
	go t.run()
	return t, nil
}

func (t *syncTap) run() {
	defer close(t.done)
	buf := make([]byte, 1<<16)
	for !t.closed.Load() {
		n, _, err := unix.Recvfrom(t.fd, buf, unix.MSG_TRUNC)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		t.mu.Lock()
		t.tally.Add(buf[:min(n, len(buf))], t.port)
		t.mu.Unlock()
	}
}

// snapshot returns the tally and the socket's drops so far.
func (t *syncTap) snapshot() (SyncTally, uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if st, err := unix.GetsockoptTpacketStats(t.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
		t.drops += uint64(st.Drops)
	}
	return t.tally, t.drops
}

func (t *syncTap) close() {
	t.closed.Store(true)
	<-t.done
	_ = unix.Close(t.fd)
}
