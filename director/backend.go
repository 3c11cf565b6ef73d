package director

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"

	"go.uber.org/zap"
	"golang.org/x/net/bpf"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/dataplane/afpacket"
	"github.com/uvs-lb/uvs/dataplane/afxdp"
	"github.com/uvs-lb/uvs/dataplane/nic"
)

// Packet-I/O backends (Config.IO, uvsd --io).
const (
	// IOAFPacket reads with AF_PACKET TPACKET_V3 rings in one fanout group
	// and keeps the kernel off owned traffic with nftables hooks.
	IOAFPacket = "afpacket"
	// IOAFXDP reads with AF_XDP sockets fed by an XDP program that
	// redirects only owned frames (one socket per interface and queue;
	// queue q of every interface goes to worker q mod workers, so there
	// are at most as many workers as the busiest interface has queues).
	// When the served interfaces change (one appears, goes away, goes up
	// or down, changes its MTU) the program is attached to a new one and
	// its sockets opened with new workers; the sockets of one that goes
	// away are closed, with those opened together with it, which are
	// opened again (followXDP). The nftables hooks stay installed:
	// redundant while the program is attached, they cover start-up,
	// shut-down and those changes.
	IOAFXDP = "afxdp"
	// IOAuto uses AF_XDP when its program attaches in native (driver)
	// mode to every interface served at start and the sockets open, and
	// AF_PACKET otherwise: no interface at start (the choice is made
	// once, and AF_PACKET serves whatever appears), a driver without
	// native XDP (generic XDP runs after GRO, drops its super-frames and
	// costs more than AF_PACKET), or an MTU a UMEM frame cannot hold.
	// With --xdp-mode native or generic it takes that mode instead of
	// requiring native. Interfaces that appear later are attached as
	// --xdp-mode says (auto: native, else generic).
	IOAuto = "auto"
)

// DefaultIO is the backend of a uvsd started without --io (and without
// $UVS_IO): auto, so native AF_XDP where the drivers have it (veth, most
// NICs) and AF_PACKET elsewhere. Measured on the 2-core VM of the bench
// (uvs-bench --only kernel-forward,nft-dnat,uvs-nat-afpacket,uvs-nat-afxdp
// --runs 3, every run dirty: load above 10 from other work), medians:
//
//	                     UDP kpps  µs/pkt  conn/s  p50 µs  1 stream Gbit/s
//	nft-dnat                  225    7.51    2557      84   1.77
//	kernel-forward            206    7.22    2421     176   3.16
//	--io afpacket (V2 ring)     7    6.56    3541     124   3.51
//	--io afxdp (native)       423    6.89    3084     107   1.60
//
// AF_PACKET collapses when flooded (receive livelock: the kernel's
// receive work runs in uvsd's own syscalls on uvsd's core), AF_XDP does
// not; the rest is within the noise of that run except the single TCP
// stream, where native XDP on veth strips the sender's TSO and AF_XDP
// carried 0.5x kernel forwarding against AF_PACKET's 1.1x. A collapse
// under load is the worse default. AF_XDP now merges a batch's segments
// of one TCP flow into a super-frame and sends it with GSO metadata
// (dataplane/afxdp gro.go). uvs-bench --only kernel-forward,uvs-nat,
// uvs-fullnat,uvs-dr, old and new uvsd interleaved (2 invocations each,
// load 4-19), one stream, Gbit/s: NAT 1.78/3.52/3.54 → 6.05/4.38/7.07,
// FULLNAT 0.47/3.28/3.52/3.35 → 6.78/7.20, DR 3.54/3.43/3.55 →
// 6.68/6.32, kernel forwarding 10.0-13.7 in the clean runs (new: about
// 0.5x). 512 MB uploads in the e2e lab: uvsd CPU per GB NAT 3.0-3.5 →
// 0.76-0.82 s, DR 2.2-2.5 → 0.66-0.76 s.
const DefaultIO = IOAuto

// IOEnv names the environment variable that sets uvsd's default --io (for
// a uvsd that uvsadm autostarts, for example).
const IOEnv = "UVS_IO"

// ParseIO checks a --io value ("" selects DefaultIO).
func ParseIO(s string) (string, error) {
	switch s {
	case "":
		return DefaultIO, nil
	case IOAFPacket, IOAFXDP, IOAuto:
		return s, nil
	}
	return "", fmt.Errorf("unknown packet I/O backend %q (want afpacket, afxdp or auto)", s)
}

// openIO opens the workers' packet I/O with the configured backend and
// sets d.backend.
func (d *Director) openIO() ([]dataplane.PacketIO, error) {
	io := d.cfg.IO
	if io == "" {
		io = DefaultIO
	}
	switch io {
	case IOAFXDP:
		return d.openAFXDP(d.cfg.XDPMode)
	case IOAFPacket:
		return d.openAFPacket()
	}
	if len(d.host.Load().Ifaces) == 0 {
		d.log.Info("io auto: no interface to serve yet, using AF_PACKET (it serves the interfaces that appear whatever their driver)")
		return d.openAFPacket()
	}
	mode := d.cfg.XDPMode
	if mode == afxdp.ModeAuto {
		mode = afxdp.ModeNative
	}
	ios, err := d.openAFXDP(mode)
	if err == nil {
		return ios, nil
	}
	d.log.Info("io auto: AF_XDP cannot be set up "+mode.String()+", using AF_PACKET", errField(err))
	return d.openAFPacket()
}

// openAFPacket opens one AF_PACKET socket per worker, all in one fanout
// group receiving from every interface: an interface that appears later is
// read by the same sockets (the workers serve it once refreshHost lists
// it). With no interface at start there is one socket; growAFPacket adds
// sockets when interfaces with more queues appear.
func (d *Director) openAFPacket() ([]dataplane.PacketIO, error) {
	filter, exact, err := afpacket.FilterFor(d.owned)
	if err != nil {
		return nil, err
	}
	if !exact {
		d.log.Warn("packet filter: the exact filter exceeds 4096 instructions, the sockets use an address filter")
	}
	ios, err := d.addPacketSockets(d.packetWorkers(), filter)
	if err != nil {
		d.closeIO()
		d.sockets = nil
		return nil, err
	}
	d.backend = IOAFPacket
	d.log.Info("io backend", zap.String("backend", IOAFPacket), zap.Int("sockets", len(ios)))
	return ios, nil
}

// packetWorkers is the number of AF_PACKET workers for the served
// interfaces: --workers, else one per RX queue, at most one per CPU, at
// least one.
func (d *Director) packetWorkers() int {
	if d.cfg.Workers > 0 {
		return d.cfg.Workers
	}
	n := 0
	for _, ifc := range d.host.Load().Ifaces {
		q, err := nic.NumRXQueues(ifc.Name)
		if err != nil || q < 1 {
			q = 1
		}
		n += q
	}
	return max(1, min(n, runtime.NumCPU()))
}

// addPacketSockets opens n more AF_PACKET sockets in uvsd's fanout group
// and returns them.
func (d *Director) addPacketSockets(n int, filter []bpf.RawInstruction) ([]dataplane.PacketIO, error) {
	group := uint16(os.Getpid()&0x7fff) + 1
	var ios []dataplane.PacketIO
	for i := 0; i < n; i++ {
		s, err := afpacket.Open(afpacket.Config{
			FanoutGroup: group,
			FanoutMode:  afpacket.FanoutHash,
			Filter:      filter,
		})
		if err != nil {
			return ios, fmt.Errorf("packet socket: %w", err)
		}
		d.sockets = append(d.sockets, s)
		ios = append(ios, s)
	}
	return ios, nil
}

// growAFPacket follows interfaces that appeared on the AF_PACKET backend:
// when they call for more workers than run (a director started with no
// interface has one), it adds sockets to the fanout group and starts
// their workers. It never closes sockets: fewer interfaces leave the
// workers idle. Runs on Run's goroutine.
func (d *Director) growAFPacket() {
	if d.backend != IOAFPacket {
		return
	}
	more := d.packetWorkers() - len(d.sockets)
	if more <= 0 {
		return
	}
	filter, _, err := afpacket.FilterFor(d.owned)
	if err == nil {
		var ios []dataplane.PacketIO
		ios, err = d.addPacketSockets(more, filter)
		d.startWorkers(ios)
	}
	if err != nil {
		d.log.Warn("adding packet sockets for the new interfaces", errField(err))
	}
	d.log.Info("io backend", zap.String("backend", IOAFPacket), zap.Int("sockets", len(d.sockets)))
}

// xdpMaxFrameSize is the largest UMEM frame: a page (frames larger than a
// page need XDP multi-buffer, which uvsd does not use).
const xdpMaxFrameSize = 4096

// openAFXDP loads the XDP program and opens the sockets of the interfaces
// served at start as one group (openXDPGroup), attaching in mode. With no
// interface it loads the program and opens nothing (followXDP opens the
// sockets once one appears). On error nothing stays open or attached.
func (d *Director) openAFXDP(mode afxdp.Mode) ([]dataplane.PacketIO, error) {
	prog, err := afxdp.NewProgram(afxdp.ProgramConfig{})
	if err != nil {
		return nil, err
	}
	d.xdp = prog
	d.startFastPath(prog)
	if err := prog.SetOwnership(d.owned); err != nil {
		d.releaseIO()
		return nil, err
	}
	host := d.host.Load()
	g, err := d.openXDPGroup(host, sortedIfindexes(host, nil), mode)
	if err != nil {
		d.releaseIO()
		return nil, err
	}
	var ios []dataplane.PacketIO
	if g != nil {
		d.xgroups = append(d.xgroups, g)
		d.xios = append(d.xios, g.ios...)
		for _, x := range g.ios {
			ios = append(ios, x)
		}
	}
	d.backend = IOAFXDP
	return ios, nil
}

// xdpGroup is a set of interfaces whose AF_XDP sockets were opened
// together: each of its workers reads queue q of every interface of the
// group (q mod workers) and transmits on them through their sockets (on
// other interfaces through its AF_PACKET fallback). The interfaces served
// at start form one group; each change adds a group for the interfaces it
// brings, and closes only the groups whose interfaces went away or
// changed, so the others' traffic is not disturbed.
type xdpGroup struct {
	ifs map[int]string // ifindex → ifaceKey when opened
	ios []*afxdp.IO
}

// ifaceKey is what a group's sockets depend on besides the ifindex.
func ifaceKey(ifc dataplane.Iface) string { return fmt.Sprintf("%s mtu %d", ifc.Name, ifc.MTU) }

// sortedIfindexes returns the served interfaces not in skip, sorted.
func sortedIfindexes(h *dataplane.Host, skip map[int]bool) []int {
	idx := make([]int, 0, len(h.Ifaces))
	for i := range h.Ifaces {
		if !skip[i] {
			idx = append(idx, i)
		}
	}
	slices.Sort(idx)
	return idx
}

// openXDPGroup opens one AF_XDP socket per interface of idx and RX queue,
// spreads the queues over the workers (queue q of every interface to
// worker q mod n), registers them with the program and attaches it to
// each interface in mode. It returns nil for no interface. On error
// nothing of the group stays open or attached.
func (d *Director) openXDPGroup(host *dataplane.Host, idx []int, mode afxdp.Mode) (_ *xdpGroup, err error) {
	if len(idx) == 0 {
		return nil, nil
	}
	queues := map[int]int{}
	maxQ, maxMTU := 1, 0
	for _, i := range idx {
		q, err := afxdp.NumQueues(host.Ifaces[i].Name)
		if err != nil {
			// No ethtool channels: sysfs, else one queue.
			if q, err = nic.NumRXQueues(host.Ifaces[i].Name); err != nil || q < 1 {
				q = 1
			}
		}
		queues[i] = q
		maxQ = max(maxQ, q)
		maxMTU = max(maxMTU, host.Ifaces[i].MTU)
	}
	cfg := afxdp.Config{}
	for cfg.FrameSize = afxdp.DefaultFrameSize; cfg.MaxFrameLen() < maxMTU+18; cfg.FrameSize *= 2 {
		if cfg.FrameSize >= xdpMaxFrameSize || cfg.FrameSize >= os.Getpagesize() {
			return nil, fmt.Errorf("afxdp: an MTU of %d does not fit a UMEM frame (at most %d bytes of frame)", maxMTU, cfg.MaxFrameLen())
		}
	}
	n := maxQ
	if d.cfg.Workers > 0 {
		n = min(d.cfg.Workers, maxQ)
	} else {
		n = min(n, runtime.NumCPU())
	}
	prog := d.xdp
	g := &xdpGroup{ifs: map[int]string{}}
	defer func() {
		if err != nil {
			d.closeXDPGroup(g)
		}
	}()
	for _, i := range idx {
		if err := prog.AddInterface(i, queues[i]); err != nil {
			return nil, err
		}
		g.ifs[i] = ifaceKey(host.Ifaces[i])
	}
	for w := 0; w < n; w++ {
		var binds []afxdp.Bind
		for _, i := range idx {
			for q := w; q < queues[i]; q += n {
				binds = append(binds, afxdp.Bind{Ifindex: i, Queue: q})
			}
		}
		x, err := afxdp.Open(cfg, binds)
		if err != nil {
			return nil, err
		}
		g.ios = append(g.ios, x)
		for _, s := range x.Sockets() {
			if err := prog.Register(s); err != nil {
				return nil, err
			}
		}
	}
	var modes []string
	for _, i := range idx {
		m, err := prog.Attach(i, mode)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", host.Ifaces[i].Name, err)
		}
		modes = append(modes, host.Ifaces[i].Name+":"+m.String())
		if m == afxdp.ModeGeneric {
			// Generic XDP runs after GRO and sees a sender's GSO
			// super-frames whole; they do not fit a UMEM frame.
			d.log.Warn("XDP in generic mode: GRO/GSO super-frames are dropped (turn GRO off on the interface and TSO/GSO off on senders in this host)",
				zap.String("interface", host.Ifaces[i].Name), zap.Int("max frame", cfg.MaxFrameLen()))
		}
	}
	d.log.Info("io backend", zap.String("backend", IOAFXDP), zap.Strings("xdp", modes),
		zap.Int("frame size", cfg.FrameSize))
	return g, nil
}

// closeXDPGroup detaches the program from the group's interfaces (their
// frames go back to the kernel, whose hooks drop owned traffic), closes its
// sockets and waits for their workers.
func (d *Director) closeXDPGroup(g *xdpGroup) {
	for i := range g.ifs {
		if err := d.xdp.RemoveInterface(i); err != nil {
			d.log.Warn("detaching the XDP program", errField(err))
		}
	}
	ios := make([]dataplane.PacketIO, 0, len(g.ios))
	for _, x := range g.ios {
		if st, err := x.Stats(); err == nil {
			d.xstatsClosed = d.xstatsClosed.Add(st)
		}
		_ = x.Close()
		ios = append(ios, x)
	}
	d.retireWorkers(ios)
}

// followXDP follows a change of the served interfaces on the AF_XDP
// backend: the groups with an interface gone or changed (name, MTU) are
// closed, and the served interfaces in no group (new ones, and the
// remaining ones of closed groups) are opened as a new group with new
// workers. An interface set that failed to open is not tried again until
// it changes. Runs on Run's goroutine.
func (d *Director) followXDP() {
	if d.backend != IOAFXDP || d.xdp == nil {
		return
	}
	host := d.host.Load()
	var keep []*xdpGroup
	for _, g := range d.xgroups {
		ok := true
		for i, k := range g.ifs {
			if ifc, there := host.Ifaces[i]; !there || ifaceKey(ifc) != k {
				ok = false
			}
		}
		if ok {
			keep = append(keep, g)
			continue
		}
		d.closeXDPGroup(g)
	}
	changed := len(keep) != len(d.xgroups)
	d.xgroups = keep
	grouped := map[int]bool{}
	for _, g := range keep {
		for i := range g.ifs {
			grouped[i] = true
		}
	}
	idx := sortedIfindexes(host, grouped)
	var want strings.Builder
	for _, i := range idx {
		fmt.Fprintf(&want, "%d %s,", i, ifaceKey(host.Ifaces[i]))
	}
	if len(idx) > 0 && (changed || want.String() != d.xdpFailed) {
		g, err := d.openXDPGroup(host, idx, d.cfg.XDPMode)
		if err != nil {
			d.xdpFailed = want.String()
			d.log.Error("AF_XDP cannot serve the interfaces: their owned traffic is dropped until they change", errField(err))
		} else {
			d.xdpFailed = ""
			d.xgroups = append(d.xgroups, g)
			ios := make([]dataplane.PacketIO, 0, len(g.ios))
			for _, x := range g.ios {
				ios = append(ios, x)
			}
			d.startWorkers(ios)
			changed = true
		}
	}
	if changed {
		d.xios = nil
		for _, g := range d.xgroups {
			d.xios = append(d.xios, g.ios...)
		}
		d.log.Info("serving", zap.Strings("interfaces", d.servedNames()), zap.Int("workers", len(d.xios)), zap.String("io", d.backend))
	}
}

// closeIO detaches the XDP program (frames go back to the kernel, whose
// hooks still drop owned traffic) and closes every socket. Workers' blocked
// reads return.
func (d *Director) closeIO() {
	if d.xdp != nil {
		if err := d.xdp.Detach(); err != nil {
			d.log.Error("detaching the XDP program", errField(err))
		}
	}
	for _, s := range d.sockets {
		_ = s.Close()
	}
	for _, x := range d.xios {
		_ = x.Close()
	}
}

// releaseIO frees the XDP program and maps once the workers have stopped.
func (d *Director) releaseIO() {
	if d.fast != nil {
		d.Conns.SetFastGone(nil)
		d.env.Fast, d.fast, d.fastMap = nil, nil, nil
		d.fastRef.Store(nil)
	}
	if d.xdp != nil {
		if err := d.xdp.Close(); err != nil {
			d.log.Error("closing the XDP program", errField(err))
		}
		d.xdp = nil
	}
}

// Backend returns the packet-I/O backend in use (IOAFPacket or IOAFXDP),
// "" before Run has opened it.
func (d *Director) Backend() string { return d.backend }

// startFastPath hands established IPv4 NAT, FULLNAT and DR connections to the XDP
// program's fast path (dataplane.FastPath), unless --fast-path=false or
// the program has none. Called before the workers start.
func (d *Director) startFastPath(prog *afxdp.Program) {
	fm := prog.FastMap()
	if d.cfg.NoFastPath || fm == nil {
		return
	}
	if err := fm.RefreshDevices(sortedIfindexes(d.host.Load(), nil)); err != nil {
		d.log.Warn("fast path off: cannot ask the kernel which interfaces take XDP-redirected frames", errField(err))
		return
	}
	d.fastMap = fm
	d.fast = dataplane.NewFastPath(fm, d.env)
	d.env.Fast = d.fast
	d.fastRef.Store(d.fast)
}

// pollFastPath reads the fast path's counters back into the connection
// table and the statistics and asks again which interfaces it may send
// on. Runs on the housekeeping goroutine.
func (d *Director) pollFastPath() {
	if d.fast == nil {
		return
	}
	if err := d.fastMap.RefreshDevices(sortedIfindexes(d.host.Load(), nil)); err != nil {
		d.log.Debug("fast path: asking which interfaces take XDP-redirected frames", errField(err))
	}
	d.fast.Poll()
}

// flushFastPath hands every fast-path flow back to the workers: the
// configuration, the interfaces or the VRRP roles changed, and the next
// packet of each flow is forwarded, and installed again, by the rules as
// they are now.
func (d *Director) flushFastPath() {
	if d.fast != nil {
		d.fast.Flush()
	}
}

// fastStats returns the fast path's figures (ok false while there is
// none). Safe to call from any goroutine.
func (d *Director) fastStats() (dataplane.FastStats, bool) {
	f := d.fastRef.Load()
	if f == nil {
		return dataplane.FastStats{}, false
	}
	return f.Stats(), true
}
