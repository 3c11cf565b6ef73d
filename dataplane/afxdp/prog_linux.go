package afxdp

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/uvs-lb/uvs/ownership"
)

// Default map sizes.
const (
	DefaultMaxAddrs = 16384
	DefaultMaxPorts = 65536
)

// ProgramConfig sizes the ownership maps; zero fields select the defaults.
type ProgramConfig struct {
	// MaxAddrs bounds the addresses with flags (VIPs, ARP/NDP targets,
	// director addresses); MaxPorts the service, NAT reply and local range
	// entries (one per address, protocol and port).
	MaxAddrs int
	MaxPorts int
	// MaxFlows bounds the fast path's flows (one per direction of a
	// connection); negative: no fast path.
	MaxFlows int
}

// Program is the XDP program of one director: shared ownership maps and, per
// served interface, a loaded program instance with its XSKMAP and, once
// attached, its bpf_link. Its methods are safe for concurrent use.
type Program struct {
	mu     sync.Mutex
	addrs  *ebpf.Map
	ports  *ebpf.Map
	fast   *FastMap // nil: no fast path
	ifs    map[int]*attachment
	cur    tables
	closed bool
}

type attachment struct {
	xsks *ebpf.Map
	prog *ebpf.Program
	link link.Link
	mode Mode
}

// NewProgram creates the ownership maps. Nothing is loaded or attached
// until AddInterface and Attach.
func NewProgram(cfg ProgramConfig) (*Program, error) {
	if cfg.MaxAddrs == 0 {
		cfg.MaxAddrs = DefaultMaxAddrs
	}
	if cfg.MaxPorts == 0 {
		cfg.MaxPorts = DefaultMaxPorts
	}
	if cfg.MaxAddrs < 0 || cfg.MaxPorts < 0 {
		return nil, errors.New("afxdp: negative map size")
	}
	addrs, err := ebpf.NewMap(&ebpf.MapSpec{Name: mapAddrs, Type: ebpf.Hash,
		KeySize: uint32(addrKeySize), ValueSize: 4, MaxEntries: uint32(cfg.MaxAddrs)})
	if err != nil {
		return nil, fmt.Errorf("afxdp: creating map %s: %w", mapAddrs, err)
	}
	ports, err := ebpf.NewMap(&ebpf.MapSpec{Name: mapPorts, Type: ebpf.Hash,
		KeySize: uint32(portKeySize), ValueSize: 4, MaxEntries: uint32(cfg.MaxPorts)})
	if err != nil {
		addrs.Close()
		return nil, fmt.Errorf("afxdp: creating map %s: %w", mapPorts, err)
	}
	var fast *FastMap
	if cfg.MaxFlows >= 0 {
		if cfg.MaxFlows == 0 {
			cfg.MaxFlows = DefaultMaxFlows
		}
		if fast, err = newFastMap(cfg.MaxFlows); err != nil {
			addrs.Close()
			ports.Close()
			return nil, err
		}
	}
	return &Program{addrs: addrs, ports: ports, fast: fast, ifs: map[int]*attachment{},
		cur: tables{addrs: map[addrKey]uint32{}, ports: map[portKey]uint32{}}}, nil
}

// AddInterface loads a program instance for the interface with an XSKMAP of
// queues entries (one per RX queue). It does not attach it.
func (p *Program) AddInterface(ifindex, queues int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("afxdp: program closed")
	}
	if _, ok := p.ifs[ifindex]; ok {
		return fmt.Errorf("afxdp: interface %d added twice", ifindex)
	}
	if queues < 1 {
		return fmt.Errorf("afxdp: interface %d: %d queues", ifindex, queues)
	}
	xsks, err := ebpf.NewMap(&ebpf.MapSpec{Name: mapXSKs, Type: ebpf.XSKMap,
		KeySize: 4, ValueSize: 4, MaxEntries: uint32(queues)})
	if err != nil {
		return fmt.Errorf("afxdp: creating map %s: %w", mapXSKs, err)
	}
	prog, err := p.load(xsks)
	if err != nil {
		xsks.Close()
		return err
	}
	p.ifs[ifindex] = &attachment{xsks: xsks, prog: prog}
	return nil
}

// load loads one program instance using xsks and the shared maps.
func (p *Program) load(xsks *ebpf.Map) (*ebpf.Program, error) {
	insns := programInstructions(p.fast != nil)
	maps := map[string]*ebpf.Map{mapXSKs: xsks, mapAddrs: p.addrs, mapPorts: p.ports}
	if p.fast != nil {
		maps[mapFast] = p.fast.m
	}
	for name, m := range maps {
		if err := insns.AssociateMap(name, m); err != nil {
			return nil, fmt.Errorf("afxdp: program: %w", err)
		}
	}
	prog, err := ebpf.NewProgramWithOptions(&ebpf.ProgramSpec{
		Name:         ProgramName,
		Type:         ebpf.XDP,
		Instructions: insns,
		License:      "Dual MIT/GPL",
	}, ebpf.ProgramOptions{LogDisabled: false})
	if err != nil {
		return nil, fmt.Errorf("afxdp: loading the XDP program: %w", err)
	}
	return prog, nil
}

// Register puts the socket into its interface's XSKMAP at its queue, so the
// program redirects that queue's owned frames to it.
func (p *Program) Register(s *Socket) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.ifs[s.Ifindex()]
	if !ok {
		return fmt.Errorf("afxdp: register: interface %d not added", s.Ifindex())
	}
	if err := a.xsks.Put(uint32(s.Queue()), uint32(s.FD())); err != nil {
		return fmt.Errorf("afxdp: register socket of interface %d queue %d: %w", s.Ifindex(), s.Queue(), err)
	}
	return nil
}

// Attach attaches the interface's program instance with a bpf_link: in
// native mode, generic mode, or (ModeAuto) native mode if the driver
// supports it and generic mode otherwise. It returns the mode used.
func (p *Program) Attach(ifindex int, mode Mode) (Mode, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.ifs[ifindex]
	if !ok {
		return 0, fmt.Errorf("afxdp: attach: interface %d not added", ifindex)
	}
	if a.link != nil {
		return a.mode, nil
	}
	try := []Mode{mode}
	if mode == ModeAuto {
		try = []Mode{ModeNative, ModeGeneric}
	}
	var errs []error
	for _, m := range try {
		flags := link.XDPDriverMode
		if m == ModeGeneric {
			flags = link.XDPGenericMode
		}
		l, err := link.AttachXDP(link.XDPOptions{Program: a.prog, Interface: ifindex, Flags: flags})
		if err == nil {
			a.link, a.mode = l, m
			return m, nil
		}
		errs = append(errs, fmt.Errorf("%s mode: %w", m, err))
	}
	return 0, fmt.Errorf("afxdp: attaching to interface %d: %w", ifindex, errors.Join(errs...))
}

// Mode returns the mode the interface's program is attached in, and
// whether it is attached.
func (p *Program) Mode(ifindex int) (Mode, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.ifs[ifindex]
	if !ok || a.link == nil {
		return 0, false
	}
	return a.mode, true
}

// Detach detaches every attached program instance (frames then reach the
// kernel again); the program stays loaded and can be attached again.
func (p *Program) Detach() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.detachLocked()
}

func (p *Program) detachLocked() error {
	var errs []error
	for ifindex, a := range p.ifs {
		if a.link == nil {
			continue
		}
		if err := a.link.Close(); err != nil {
			errs = append(errs, fmt.Errorf("afxdp: detaching from interface %d: %w", ifindex, err))
		}
		a.link = nil
	}
	return errors.Join(errs...)
}

// RemoveInterface detaches the interface's program instance (if attached)
// and frees it and its XSKMAP: the interface went away, or its sockets are
// to be opened again (AddInterface then loads a new instance). The link of
// an interface the kernel deleted is already detached; closing it only
// releases it. Removing an interface not added is a no-op.
func (p *Program) RemoveInterface(ifindex int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.ifs[ifindex]
	if !ok {
		return nil
	}
	delete(p.ifs, ifindex)
	var err error
	if a.link != nil {
		if cerr := a.link.Close(); cerr != nil {
			err = fmt.Errorf("afxdp: detaching from interface %d: %w", ifindex, cerr)
		}
	}
	a.prog.Close()
	a.xsks.Close()
	return err
}

// Update makes the ownership maps hold s. New and changed entries are
// written before stale ones are deleted, so an entry present before and
// after never disappears in between. The program is not reloaded.
func (p *Program) Update(s ownership.Set) error {
	t, err := compile(&s)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("afxdp: program closed")
	}
	if err := syncMap(p.addrs, mapAddrs, p.cur.addrs, t.addrs); err != nil {
		return err
	}
	if err := syncMap(p.ports, mapPorts, p.cur.ports, t.ports); err != nil {
		return err
	}
	p.cur = t
	return nil
}

// syncMap changes m from holding cur to holding want; on error cur is
// updated to what the map may hold, so a later call completes the change.
func syncMap[K comparable](m *ebpf.Map, name string, cur, want map[K]uint32) error {
	for k, v := range want {
		if old, ok := cur[k]; ok && old == v {
			continue
		}
		if err := m.Put(k, v); err != nil {
			if errors.Is(err, unix.E2BIG) {
				return fmt.Errorf("afxdp: map %s is full (%d entries): %w", name, m.MaxEntries(), err)
			}
			return fmt.Errorf("afxdp: updating map %s: %w", name, err)
		}
		cur[k] = v
	}
	for k := range cur {
		if _, ok := want[k]; ok {
			continue
		}
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("afxdp: updating map %s: %w", name, err)
		}
		delete(cur, k)
	}
	return nil
}

// Close detaches every program instance and releases the programs and
// maps. Closing twice is a no-op.
func (p *Program) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	err := p.detachLocked()
	for _, a := range p.ifs {
		a.prog.Close()
		a.xsks.Close()
	}
	p.ifs = nil
	p.addrs.Close()
	p.ports.Close()
	if p.fast != nil {
		p.fast.close()
	}
	return err
}

// FastMap returns the fast path's flow table, or nil when the program has
// none (ProgramConfig.MaxFlows negative).
func (p *Program) FastMap() *FastMap { return p.fast }

// Cleanup detaches XDP programs named ProgramName that are attached through
// netlink to interfaces of the caller's network namespace: leftovers of a
// uvsd that attached without a bpf_link. A program attached through a
// bpf_link belongs to a live process (the kernel detaches it when the
// process exits) and is reported, not removed. It returns the names of the
// interfaces it cleaned.
func Cleanup() ([]string, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("afxdp: cleanup: listing interfaces: %w", err)
	}
	var cleaned []string
	var errs []error
	for _, l := range links {
		x := l.Attrs().Xdp
		if x == nil || !x.Attached || x.ProgId == 0 {
			continue
		}
		prog, err := ebpf.NewProgramFromID(ebpf.ProgramID(x.ProgId))
		if err != nil {
			continue // gone meanwhile, or not visible
		}
		info, err := prog.Info()
		prog.Close()
		if err != nil || info.Name != ProgramName {
			continue
		}
		flags := unix.XDP_FLAGS_DRV_MODE
		if x.AttachMode == 2 { // XDP_ATTACHED_SKB
			flags = unix.XDP_FLAGS_SKB_MODE
		}
		name := l.Attrs().Name
		if err := netlink.LinkSetXdpFdWithFlags(l, -1, flags); err != nil {
			if errors.Is(err, unix.EBUSY) {
				err = errors.New("attached through a bpf_link of a running process (is uvsd running?)")
			}
			errs = append(errs, fmt.Errorf("afxdp: cleanup: %s: %w", name, err))
			continue
		}
		cleaned = append(cleaned, name)
	}
	return cleaned, errors.Join(errs...)
}

// TestRunner runs frames through the XDP program with BPF_PROG_TEST_RUN:
// the kernel executes the program as uvsd loads it, with the maps of an
// ownership Set, without attaching it anywhere. An AF_XDP socket (never
// bound) sits in its XSKMAP, so that a redirected frame returns
// XDP_REDIRECT. The differential tests of package ownership compare it
// with ownership.Set.Classify.
type TestRunner struct {
	p  *Program
	fd int
}

// NewTestRunner loads the program; it needs CAP_BPF (root).
func NewTestRunner() (*TestRunner, error) {
	p, err := NewProgram(ProgramConfig{})
	if err != nil {
		return nil, err
	}
	const ifindex = 1 // a key only: nothing is attached
	if err := p.AddInterface(ifindex, 1); err != nil {
		p.Close()
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("afxdp: test runner socket: %w", err)
	}
	if err := p.ifs[ifindex].xsks.Put(uint32(0), uint32(fd)); err != nil {
		unix.Close(fd)
		p.Close()
		return nil, fmt.Errorf("afxdp: test runner socket: %w", err)
	}
	return &TestRunner{p: p, fd: fd}, nil
}

// SetOwnership loads s into the program's maps.
func (r *TestRunner) SetOwnership(s *ownership.Set) error { return r.p.SetOwnership(s) }

// Redirects reports whether the program redirects frame to uvsd
// (XDP_REDIRECT) rather than passing it to the kernel (XDP_PASS). A frame
// shorter than an Ethernet header, which no driver hands to XDP and
// bpf_prog_test_run_xdp refuses, is reported passed: the program's first
// check passes it.
func (r *TestRunner) Redirects(frame []byte) (bool, error) {
	if len(frame) < ethLen {
		return false, nil
	}
	ret, err := r.p.ifs[1].prog.Run(&ebpf.RunOptions{Data: frame})
	if err != nil {
		return false, fmt.Errorf("afxdp: test run: %w", err)
	}
	switch ret {
	case xdpRedirect:
		return true, nil
	case xdpPass:
		return false, nil
	}
	return false, fmt.Errorf("afxdp: test run: the program returned %d", ret)
}

// Close releases the program, its maps and the socket.
func (r *TestRunner) Close() error {
	err := r.p.Close()
	return errors.Join(err, unix.Close(r.fd))
}
