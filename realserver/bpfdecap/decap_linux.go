package bpfdecap

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// MaxAddrs bounds the addresses map (the host's IPv4 addresses and VIPs).
const MaxAddrs = 4096

// Stats are the program's counters, summed over the CPUs.
type Stats struct {
	Packets uint64 // inner packets passed on to the stack
	Bytes   uint64 // their length (inner IP headers included)
}

// Decap is the loaded program with its maps, attached to any number of
// interfaces. Its methods are safe for concurrent use.
type Decap struct {
	mu    sync.Mutex
	prog  *ebpf.Program
	addrs *ebpf.Map
	stats *ebpf.Map
	links map[int]link.Link
	cur   map[[4]byte]uint32
}

// New loads the program (CAP_BPF, CAP_NET_ADMIN); it accepts nothing until
// SetAddrs names the host's addresses and the VIPs.
func New() (*Decap, error) {
	addrs, err := ebpf.NewMap(&ebpf.MapSpec{Name: mapAddrs, Type: ebpf.Hash,
		KeySize: 4, ValueSize: 4, MaxEntries: MaxAddrs})
	if err != nil {
		return nil, fmt.Errorf("bpf decap: creating map %s: %w", mapAddrs, err)
	}
	stats, err := ebpf.NewMap(&ebpf.MapSpec{Name: mapStats, Type: ebpf.PerCPUArray,
		KeySize: 4, ValueSize: 16, MaxEntries: 1})
	if err != nil {
		addrs.Close()
		return nil, fmt.Errorf("bpf decap: creating map %s: %w", mapStats, err)
	}
	insns := instructions()
	for name, m := range map[string]*ebpf.Map{mapAddrs: addrs, mapStats: stats} {
		if err := insns.AssociateMap(name, m); err != nil {
			addrs.Close()
			stats.Close()
			return nil, fmt.Errorf("bpf decap: program: %w", err)
		}
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: ProgramName, Type: ebpf.SchedCLS,
		Instructions: insns, License: "Dual MIT/GPL"})
	if err != nil {
		addrs.Close()
		stats.Close()
		return nil, fmt.Errorf("bpf decap: loading the tc program: %w", err)
	}
	return &Decap{prog: prog, addrs: addrs, stats: stats, links: map[int]link.Link{},
		cur: map[[4]byte]uint32{}}, nil
}

// SetAddrs makes the map hold exactly these outer destinations (the
// host's addresses) and inner destinations (VIPs); IPv6 addresses are
// ignored (the program takes IPv4 in IPv4 only).
func (d *Decap) SetAddrs(local, vips []netip.Addr) error {
	want := map[[4]byte]uint32{}
	for _, a := range local {
		if a = a.Unmap(); a.Is4() {
			want[a.As4()] |= FlagLocal
		}
	}
	for _, a := range vips {
		if a = a.Unmap(); a.Is4() {
			want[a.As4()] |= FlagVIP
		}
	}
	if len(want) > MaxAddrs {
		return fmt.Errorf("bpf decap: %d addresses, at most %d", len(want), MaxAddrs)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if maps.Equal(want, d.cur) {
		return nil
	}
	for k := range d.cur {
		if _, ok := want[k]; !ok {
			if err := d.addrs.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("bpf decap: map %s: %w", mapAddrs, err)
			}
			delete(d.cur, k)
		}
	}
	for k, v := range want {
		if d.cur[k] == v {
			continue
		}
		if err := d.addrs.Put(k, v); err != nil {
			return fmt.Errorf("bpf decap: map %s: %w", mapAddrs, err)
		}
		d.cur[k] = v
	}
	return nil
}

// Attach attaches the program to the interface's tc ingress (a tcx link,
// Linux 6.6 or later), after any program already there.
func (d *Decap) Attach(ifindex int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.links[ifindex]; ok {
		return nil
	}
	l, err := link.AttachTCX(link.TCXOptions{Program: d.prog, Interface: ifindex, Attach: ebpf.AttachTCXIngress, Anchor: link.Tail()})
	if err != nil {
		return fmt.Errorf("bpf decap: attaching to the tc ingress of interface %d: %w", ifindex, err)
	}
	d.links[ifindex] = l
	return nil
}

// Attached returns the interfaces the program is attached to.
func (d *Decap) Attached() []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Sorted(maps.Keys(d.links))
}

// Stats reads the counters.
func (d *Decap) Stats() (Stats, error) {
	var vals [][2]uint64
	if err := d.stats.Lookup(uint32(0), &vals); err != nil {
		return Stats{}, fmt.Errorf("bpf decap: reading map %s: %w", mapStats, err)
	}
	var s Stats
	for _, v := range vals {
		s.Packets += v[0]
		s.Bytes += v[1]
	}
	return s, nil
}

// Run runs the program once on frame (BPF_PROG_TEST_RUN) and returns the
// frame it leaves, and whether it decapsulated it (false: the frame passed
// unchanged).
func (d *Decap) Run(frame []byte) ([]byte, bool, error) {
	before, err := d.Stats()
	if err != nil {
		return nil, false, err
	}
	opts := &ebpf.RunOptions{Data: frame, DataOut: make([]byte, len(frame)+256)}
	ret, err := d.prog.Run(opts)
	if err != nil {
		return nil, false, fmt.Errorf("bpf decap: test run: %w", err)
	}
	if int32(ret) != tcxNext {
		return nil, false, fmt.Errorf("bpf decap: test run: the program returned %d", ret)
	}
	after, err := d.Stats()
	if err != nil {
		return nil, false, err
	}
	return opts.DataOut, after.Packets != before.Packets, nil
}

// Close detaches the program from every interface and releases it.
func (d *Decap) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for ifindex, l := range d.links {
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("bpf decap: detaching from interface %d: %w", ifindex, err))
		}
		delete(d.links, ifindex)
	}
	errs = append(errs, d.prog.Close(), d.addrs.Close(), d.stats.Close())
	return errors.Join(errs...)
}
