package khook

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/uvs-lb/uvs/spec"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Hooks owns the "uvs" netdev table of one network namespace and the sysctls
// set through it. Its methods are safe for concurrent use.
type Hooks struct {
	opts Options

	mu      sync.Mutex
	layout  string // interface layout of the last successful Apply ("" = none)
	sets    []setContent
	saved   []Sysctl // original values, in the order they were first changed
	savedOK map[string]bool
}

// New returns Hooks acting in opts.NetNS. It installs nothing until Apply.
func New(opts Options) *Hooks {
	if opts.Priority == 0 {
		opts.Priority = DefaultPriority
	}
	return &Hooks{opts: opts, savedOK: map[string]bool{}}
}

func (h *Hooks) conn() (*nftables.Conn, error) {
	if h.opts.NetNS > 0 {
		return nftables.New(nftables.WithNetNSFd(int(h.opts.NetNS)))
	}
	return nftables.New()
}

func table() *nftables.Table {
	return &nftables.Table{Name: TableName, Family: nftables.TableFamilyNetdev}
}

// Apply makes the installed hooks match desired, in one netlink transaction:
// either the whole change is visible or none of it. When the served
// interfaces are those of the previous Apply only the set contents are
// replaced; otherwise the table is rebuilt. An empty Spec leaves an empty
// table (use Remove to delete it).
func (h *Hooks) Apply(desired Spec) error {
	h.mu.Lock()
	defer h.mu.Unlock()

	p, err := h.compile(desired)
	if err != nil {
		return fmt.Errorf("khook: apply: %w", err)
	}
	c, err := h.conn()
	if err != nil {
		return fmt.Errorf("khook: apply: %w", err)
	}
	if h.layout != "" && p.layout == h.layout {
		for _, s := range p.sets {
			c.FlushSet(s.set)
			if len(s.elems) > 0 {
				if err := c.SetAddElements(s.set, s.elems); err != nil {
					return fmt.Errorf("khook: apply: %w", err)
				}
			}
		}
		if err := c.Flush(); err == nil {
			h.sets = p.sets
			return nil
		}
		// The table was changed behind our back (or deleted): rebuild it.
	}
	h.layout = ""
	if err := p.build(c); err != nil {
		return fmt.Errorf("khook: apply: %w", err)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("khook: apply: %w", err)
	}
	h.layout, h.sets = p.layout, p.sets
	return nil
}

// Remove deletes the table and restores every sysctl changed through h to its
// original value. Removing what is not installed is not an error.
func (h *Hooks) Remove() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var errs []error
	c, err := h.conn()
	if err == nil {
		err = deleteTable(c)
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("khook: remove: %w", err))
	} else {
		h.layout, h.sets = "", nil
	}
	if err := h.restoreSysctls(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Cleanup deletes a leftover "uvs" netdev table from the namespace c talks
// to (uvsd --cleanup after a crash). A missing table is not an error.
func Cleanup(c *nftables.Conn) error {
	if err := deleteTable(c); err != nil {
		return fmt.Errorf("khook: cleanup: %w", err)
	}
	return nil
}

// deleteTable deletes the table in one transaction whether it exists or not
// ("add table" is a no-op on an existing table).
func deleteTable(c *nftables.Conn) error {
	t := table()
	c.AddTable(t)
	c.DelTable(t)
	return c.Flush()
}

// setContent is one named set and the elements it must hold.
type setContent struct {
	set   *nftables.Set
	elems []nftables.SetElement
}

// plan is a compiled Spec.
type plan struct {
	priority int32
	layout   string
	ifs      []ifPlan
	sets     []setContent
}

type ifPlan struct {
	name string
	// per family (0 = IPv4, 1 = IPv6): svc, any, nat, lip, vip
	sets [2][5]*nftables.Set
}

const (
	kSvc = iota
	kAny
	kNAT
	kLIP
	kVIP
)

var kindNames = [5]string{"svc", "any", "nat", "lip", "vip"}

// family describes where IPv4 and IPv6 keep what the rules load.
type family struct {
	suffix     string
	ethertype  []byte
	saddrOff   uint32
	daddrOff   uint32
	addrLen    uint32
	addrType   nftables.SetDatatype
	protoReg   uint32 // 32-bit register after the address
	portReg    uint32
	icmpProto  byte
	icmpErrors [][2]byte // inclusive type ranges of ICMP errors
}

var families = [2]family{
	{
		suffix: "4", ethertype: []byte{0x08, 0x00}, saddrOff: 12, daddrOff: 16, addrLen: 4,
		addrType: nftables.TypeIPAddr, protoReg: 9, portReg: 10, icmpProto: unix.IPPROTO_ICMP,
		icmpErrors: [][2]byte{{3, 4}, {11, 12}}, // unreachable, source quench, time exceeded, parameter problem
	},
	{
		suffix: "6", ethertype: []byte{0x86, 0xdd}, saddrOff: 8, daddrOff: 24, addrLen: 16,
		addrType: nftables.TypeIP6Addr, protoReg: 12, portReg: 13, icmpProto: unix.IPPROTO_ICMPV6,
		icmpErrors: [][2]byte{{1, 4}}, // unreachable, packet too big, time exceeded, parameter problem
	},
}

func famOf(a netip.Addr) int {
	if a.Is4() {
		return 0
	}
	return 1
}

// protos expands spec.ProtoIP to the protocols IPVS serves.
func protos(p spec.Proto) ([]spec.Proto, error) {
	switch p {
	case spec.ProtoIP:
		return []spec.Proto{spec.ProtoTCP, spec.ProtoUDP, spec.ProtoSCTP}, nil
	case spec.ProtoTCP, spec.ProtoUDP, spec.ProtoSCTP:
		return []spec.Proto{p}, nil
	}
	return nil, fmt.Errorf("unsupported protocol %d", p)
}

func checkAddr(a netip.Addr) (netip.Addr, error) {
	if !a.IsValid() {
		return a, errors.New("invalid address")
	}
	return a.Unmap(), nil
}

// key builds a concatenated set key: the address, then each extra field
// padded to a 4-byte register as nftables lays concatenations out.
func key(a netip.Addr, proto spec.Proto, port uint16, withPort bool) []byte {
	b := a.AsSlice()
	b = append(b, byte(proto), 0, 0, 0)
	if withPort {
		b = append(b, byte(port>>8), byte(port), 0, 0)
	}
	return b
}

type rangeKey struct {
	addr  netip.Addr
	proto spec.Proto
	first uint16
	last  uint16
}

func (h *Hooks) compile(s Spec) (*plan, error) {
	var nl *netlink.Handle
	defer func() {
		if nl != nil {
			nl.Close()
		}
	}()
	p := &plan{}
	seen := map[string]bool{}
	var layout []string
	for _, ifc := range s.Interfaces {
		name := ifc.Name
		if ifc.Ifindex > 0 {
			if nl == nil {
				var err error
				if h.opts.NetNS > 0 {
					nl, err = netlink.NewHandleAt(h.opts.NetNS)
				} else {
					nl, err = netlink.NewHandle()
				}
				if err != nil {
					return nil, err
				}
			}
			l, err := nl.LinkByIndex(ifc.Ifindex)
			if err != nil {
				return nil, fmt.Errorf("interface %d: %w", ifc.Ifindex, err)
			}
			name = l.Attrs().Name
		}
		if name == "" || len(name) >= unix.IFNAMSIZ || strings.ContainsAny(name, "/ \t\n") {
			return nil, fmt.Errorf("interface %q: bad name", name)
		}
		if seen[name] {
			return nil, fmt.Errorf("interface %q listed twice", name)
		}
		seen[name] = true
		layout = append(layout, name)

		ip := ifPlan{name: name}
		var elems [2][5][]nftables.SetElement
		dedup := map[string]bool{}
		add := func(f, kind int, e nftables.SetElement) {
			k := string(rune('0'+f)) + string(rune('0'+kind)) + string(e.Key) + "|" + string(e.KeyEnd)
			if !dedup[k] {
				dedup[k] = true
				elems[f][kind] = append(elems[f][kind], e)
			}
		}
		for _, e := range ifc.Services {
			a, err := checkAddr(e.Addr)
			if err != nil {
				return nil, fmt.Errorf("interface %s: service: %w", name, err)
			}
			ps, err := protos(e.Proto)
			if err != nil {
				return nil, fmt.Errorf("interface %s: service %s: %w", name, a, err)
			}
			f := famOf(a)
			for _, pr := range ps {
				if e.Port == 0 {
					add(f, kAny, nftables.SetElement{Key: key(a, pr, 0, false)})
				} else {
					add(f, kSvc, nftables.SetElement{Key: key(a, pr, e.Port, true)})
				}
			}
			add(f, kVIP, nftables.SetElement{Key: a.AsSlice()})
		}
		for _, e := range ifc.NATReplies {
			a, err := checkAddr(e.Addr)
			if err != nil {
				return nil, fmt.Errorf("interface %s: nat reply: %w", name, err)
			}
			ps, err := protos(e.Proto)
			if err != nil {
				return nil, fmt.Errorf("interface %s: nat reply %s: %w", name, a, err)
			}
			if e.Port == 0 {
				return nil, fmt.Errorf("interface %s: nat reply %s: port 0", name, a)
			}
			for _, pr := range ps {
				add(famOf(a), kNAT, nftables.SetElement{Key: key(a, pr, e.Port, true)})
			}
		}
		var ranges []rangeKey
		for _, r := range ifc.LocalRanges {
			a, err := checkAddr(r.Addr)
			if err != nil {
				return nil, fmt.Errorf("interface %s: local range: %w", name, err)
			}
			ps, err := protos(r.Proto)
			if err != nil {
				return nil, fmt.Errorf("interface %s: local range %s: %w", name, a, err)
			}
			if r.First > r.Last {
				return nil, fmt.Errorf("interface %s: local range %s: ports %d-%d", name, a, r.First, r.Last)
			}
			for _, pr := range ps {
				ranges = append(ranges, rangeKey{a, pr, r.First, r.Last})
			}
		}
		for _, r := range mergeRanges(ranges) {
			add(famOf(r.addr), kLIP, nftables.SetElement{
				Key:    key(r.addr, r.proto, r.first, true),
				KeyEnd: key(r.addr, r.proto, r.last, true),
			})
		}

		for f, fam := range families {
			for kind := range kindNames {
				var kt nftables.SetDatatype
				switch kind {
				case kSvc, kNAT, kLIP:
					kt = nftables.MustConcatSetType(fam.addrType, nftables.TypeInetProto, nftables.TypeInetService)
				case kAny:
					kt = nftables.MustConcatSetType(fam.addrType, nftables.TypeInetProto)
				case kVIP:
					kt = fam.addrType
				}
				set := &nftables.Set{
					Table:         table(),
					Name:          kindNames[kind] + fam.suffix + "_" + name,
					KeyType:       kt,
					Concatenation: kind != kVIP,
					Interval:      kind == kLIP,
				}
				ip.sets[f][kind] = set
				es := elems[f][kind]
				slices.SortFunc(es, func(x, y nftables.SetElement) int { return bytes.Compare(x.Key, y.Key) })
				p.sets = append(p.sets, setContent{set: set, elems: es})
			}
		}
		p.ifs = append(p.ifs, ip)
	}
	p.priority = h.opts.Priority
	p.layout = fmt.Sprintf("%d:%s", h.opts.Priority, strings.Join(layout, ","))
	return p, nil
}

// mergeRanges sorts ranges and merges overlapping or adjacent ones of the same
// address and protocol (an interval set rejects overlaps).
func mergeRanges(rs []rangeKey) []rangeKey {
	slices.SortFunc(rs, func(x, y rangeKey) int {
		if c := x.addr.Compare(y.addr); c != 0 {
			return c
		}
		if c := cmp.Compare(x.proto, y.proto); c != 0 {
			return c
		}
		return cmp.Compare(x.first, y.first)
	})
	var out []rangeKey
	for _, r := range rs {
		if n := len(out); n > 0 {
			l := &out[n-1]
			if l.addr == r.addr && l.proto == r.proto && uint32(r.first) <= uint32(l.last)+1 {
				l.last = max(l.last, r.last)
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

// build queues the whole table: delete any old one, then create the table,
// the sets with their elements and the chains with their rules.
func (p *plan) build(c *nftables.Conn) error {
	t := table()
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	for _, s := range p.sets {
		s.set.ID = 0 // a fresh ID for this batch
		if err := c.AddSet(s.set, s.elems); err != nil {
			return err
		}
	}
	for _, ifc := range p.ifs {
		ch := c.AddChain(&nftables.Chain{
			Name:     "in_" + ifc.name,
			Table:    t,
			Type:     nftables.ChainTypeFilter,
			Hooknum:  nftables.ChainHookIngress,
			Priority: nftables.ChainPriorityRef(nftables.ChainPriority(p.priority)),
			Device:   ifc.name,
		})
		for f := range families {
			for _, r := range rules(&families[f], &ifc.sets[f]) {
				c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: r})
			}
		}
	}
	return nil
}

// rules returns the expressions of the drop rules of one family on one
// interface, in the order of the package documentation.
func rules(f *family, sets *[5]*nftables.Set) [][]expr.Any {
	isFam := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: f.ethertype},
	}
	addr := func(off uint32) expr.Any {
		return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: f.addrLen}
	}
	l4 := &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: f.protoReg}
	port := func(off uint32) expr.Any {
		return &expr.Payload{DestRegister: f.portReg, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2}
	}
	lookup := func(s *nftables.Set) expr.Any {
		return &expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID}
	}
	drop := []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}}
	cat := func(parts ...[]expr.Any) []expr.Any { return slices.Concat(parts...) }

	out := [][]expr.Any{
		cat(isFam, []expr.Any{addr(f.daddrOff), l4, port(2), lookup(sets[kSvc])}, drop),
		cat(isFam, []expr.Any{addr(f.daddrOff), l4, lookup(sets[kAny])}, drop),
		cat(isFam, []expr.Any{addr(f.saddrOff), l4, port(0), lookup(sets[kNAT]),
			&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binary.NativeEndian.AppendUint32(nil, unix.RTN_LOCAL)},
		}, drop),
		cat(isFam, []expr.Any{addr(f.daddrOff), l4, port(2), lookup(sets[kLIP])}, drop),
	}
	for _, r := range f.icmpErrors {
		out = append(out, cat(isFam, []expr.Any{
			addr(f.daddrOff), lookup(sets[kVIP]),
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{f.icmpProto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
			&expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: []byte{r[0]}, ToData: []byte{r[1]}},
		}, drop))
	}
	return out
}

// CleanupNetNS is Cleanup on a connection to ns (zero or negative: the
// caller's namespace).
func CleanupNetNS(ns netns.NsHandle) error {
	h := New(Options{NetNS: ns})
	c, err := h.conn()
	if err != nil {
		return fmt.Errorf("khook: cleanup: %w", err)
	}
	return Cleanup(c)
}
