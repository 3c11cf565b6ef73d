package khook

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/ownership"
	"github.com/uvs-lb/uvs/spec"
)

// Hooks owns the "uvs" netdev table of one network namespace and the sysctls
// set through it. Its methods are safe for concurrent use.
type Hooks struct {
	opts Options

	mu     sync.Mutex
	ifaces []Interface // for SetOwnership
	layout string      // interface layout of the last successful Apply ("" = none)
	sets   []setContent
	// lasting owns the table (nil: no owned table); installed is what the
	// table holds then (nil: nothing yet). fallback says why the table is
	// not owned (a kernel without NFT_TABLE_F_OWNER); it stays for h's life.
	lasting   *lastingConn
	installed *plan
	fallback  error
	// stateChecked: a state file a dead uvsd left has been dealt with.
	stateChecked bool
	saved        []Sysctl // original values, in the order they were first changed
	savedOK      map[string]bool
}

var _ ownership.Consumer = (*Hooks)(nil)

// New returns Hooks acting in opts.NetNS. It installs nothing until Apply.
func New(opts Options) *Hooks {
	if opts.Priority == 0 {
		opts.Priority = DefaultPriority
	}
	return &Hooks{opts: opts, savedOK: map[string]bool{}}
}

// SetInterfaces sets the interfaces SetOwnership hooks: the served
// interfaces. It installs nothing by itself.
func (h *Hooks) SetInterfaces(ifs ...Interface) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ifaces = slices.Clone(ifs)
}

// SetOwnership makes the hooks drop what s owns on every interface of
// SetInterfaces (Apply with Spec.Owned s).
func (h *Hooks) SetOwnership(s *ownership.Set) error {
	h.mu.Lock()
	ifs := h.ifaces
	h.mu.Unlock()
	return h.Apply(Spec{Interfaces: ifs, Owned: s})
}

func (h *Hooks) conn() (*nftables.Conn, error) {
	opts := []nftables.ConnOption{nftables.WithSockOptions(buffers)}
	if h.opts.NetNS > 0 {
		opts = append(opts, nftables.WithNetNSFd(int(h.opts.NetNS)))
	}
	return nftables.New(opts...)
}

// nlBuffer sizes the buffers of the nftables netlink socket. A whole
// transaction is one sendmsg, limited by the send buffer (EMSGSIZE in
// netlink_sendmsg), and the library asks for an echo of every rule it adds
// (NLM_F_ECHO), which the receive buffer must hold (ENOBUFS): with the
// defaults (net.core.wmem_default, rmem_default) the rules of three
// served interfaces already do not fit. 16 MiB is a limit, not an
// allocation, and holds some 150 interfaces' rules.
const nlBuffer = 16 << 20

// buffers is an nftables.SockOption; generic so that the netlink
// connection type is inferred from nftables.SockOption rather than
// imported. As root the socket gets SO_RCVBUFFORCE and SO_SNDBUFFORCE,
// beyond net.core.rmem_max and wmem_max.
func buffers[C interface {
	SetReadBuffer(int) error
	SetWriteBuffer(int) error
}](c C) error {
	return errors.Join(c.SetReadBuffer(nlBuffer), c.SetWriteBuffer(nlBuffer))
}

func table() *nftables.Table {
	return &nftables.Table{Name: TableName, Family: nftables.TableFamilyNetdev}
}

// Apply makes the installed hooks match desired, in one netlink transaction:
// either the whole change is visible or none of it. When the served
// interfaces are those of the previous Apply only the set contents are
// replaced; otherwise the table's chains and sets are rebuilt. An empty
// Spec leaves an empty table (use Remove to delete it).
//
// The table is created owned by a netlink socket h keeps open until
// Remove (see Owned): whatever ends the process, the kernel deletes the
// table with the socket, and no other process can change it meanwhile.
func (h *Hooks) Apply(desired Spec) error {
	h.mu.Lock()
	defer h.mu.Unlock()

	p, err := h.compile(desired)
	if err != nil {
		return fmt.Errorf("khook: apply: %w", err)
	}
	if h.lasting == nil && h.installed == nil {
		// First Apply (or after Remove): own the table.
		h.layout = ""
		if err := h.ownTable(); err != nil {
			return fmt.Errorf("khook: apply: %w", err)
		}
	}
	var c *nftables.Conn
	if h.lasting != nil {
		c = h.lasting.c
	} else if c, err = h.conn(); err != nil {
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
			h.installed = p
			return nil
		}
		// Unowned: the table was changed behind our back (or deleted).
		// Rebuild it.
	}
	h.layout = ""
	err = h.rebuild(c, p)
	if err != nil && h.lasting != nil {
		// A failed transaction on the owner socket may leave answers
		// unread on it (the library stops reading at the first EPERM
		// or ENOBUFS): start again on a new socket, and a new table.
		_ = h.lasting.close()
		h.lasting, h.installed = nil, nil
		if err = h.ownTable(); err == nil {
			c = h.conn0()
			err = h.rebuild(c, p)
		}
	}
	if err != nil {
		return fmt.Errorf("khook: apply: %w", err)
	}
	h.layout, h.sets, h.installed = p.layout, p.sets, p
	return nil
}

// conn0 returns the owner connection, or nil in the fallback.
func (h *Hooks) conn0() *nftables.Conn {
	if h.lasting != nil {
		return h.lasting.c
	}
	return nil
}

// rebuild replaces the table's contents by p's in one transaction on c.
func (h *Hooks) rebuild(c *nftables.Conn, p *plan) error {
	if c == nil {
		var err error
		if c, err = h.conn(); err != nil {
			return err
		}
	}
	if h.lasting != nil {
		// Only this socket can have changed the table: it holds what
		// the last successful transaction put there.
		if h.installed != nil {
			h.installed.teardown(c)
		}
	} else {
		t := table()
		c.AddTable(t)
		c.DelTable(t)
		c.AddTable(t)
	}
	if err := p.build(c); err != nil {
		return err
	}
	return c.Flush()
}

// Remove deletes the table and restores every sysctl changed through h to its
// original value. Removing what is not installed is not an error.
func (h *Hooks) Remove() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var errs []error
	var err error
	if l := h.lasting; l != nil {
		// (An "add table" first, as deleteTable does, would be an
		// attempt to drop the owner flag: EOPNOTSUPP.)
		l.c.DelTable(table())
		err = l.c.Flush()
		// Closing the owner socket deletes the table too, should the
		// transaction have failed.
		if cerr := l.close(); err == nil {
			err = cerr
		}
		h.lasting = nil
	} else {
		var c *nftables.Conn
		c, err = h.conn()
		if err == nil {
			err = deleteTable(c)
		}
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("khook: remove: %w", err))
	}
	h.layout, h.sets, h.installed = "", nil, nil
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
	// per family (0 = IPv4, 1 = IPv6), per set kind
	sets [2][numKinds]*nftables.Set
}

// Set kinds.
const (
	kAny = iota // destination . protocol: port-0 services
	kSvc        // destination . protocol . port: services
	kLIP        // destination . protocol . port range: FULLNAT local ranges
	kNAT        // source . protocol . port: NAT replies
	kVIP        // destination: VIPs (ICMP errors)
	kLoc        // destination: director addresses
	kFIC        // destination . quoted source . protocol . port range: ICMP errors about FULLNAT connections
	kNAA        // source . protocol: NAT replies from every port (port-0 NAT services)
	kFDS        // destination . protocol: services and local ranges, for fragments
	kFSR        // source . protocol: NAT replies, for fragments
	kSLF        // destination . quoted source: a director address twice (IPv4 ICMP errors about its tunnelled packets)
	kTUN        // quoted destination . protocol . port: TUN real servers (IPv4; port 0 but for GUE)
	numKinds
)

var kindNames = [numKinds]string{"any", "svc", "lip", "nat", "vip", "loc", "fic", "naa", "fds", "fsr", "slf", "tun"}

// family describes where IPv4 and IPv6 keep what the rules load.
type family struct {
	suffix    string
	ethertype uint16
	saddrOff  uint32
	daddrOff  uint32
	addrLen   uint32
	addrType  nftables.SetDatatype
	// 32-bit registers (NFT_REG32_*) of the concatenations after the
	// address in register 1: protocol and port; those of the FULLNAT
	// ICMP key: quoted source, protocol and port; a scratch one.
	protoReg, portReg                   uint32
	ficSrcReg, ficProtoReg, ficPortReg  uint32
	scratchReg                          uint32
	icmpProto                           byte
	icmpErrMask, icmpErrFrom, icmpErrTo byte // type & mask in from-to
	quotedVersion                       byte
}

// The first 32-bit register, NFT_REG32_00, is register 8; register 1 (16
// bytes) is NFT_REG32_00 to 03, register 2 is 04 to 07
// (include/uapi/linux/netfilter/nf_tables.h).
var families = [2]family{
	{
		suffix: "4", ethertype: header.EtherTypeIPv4, saddrOff: header.IPv4SrcOff, daddrOff: header.IPv4DstOff, addrLen: 4,
		addrType: nftables.TypeIPAddr, protoReg: 9, portReg: 10, ficSrcReg: 9, ficProtoReg: 10, ficPortReg: 11, scratchReg: 12,
		icmpProto: header.ProtoICMPv4,
		// destination unreachable, source quench, time exceeded, parameter
		// problem: 3, 4, 11, 12 are the types whose bit 3 cleared is 3 or 4
		icmpErrMask: 0xf7, icmpErrFrom: 3, icmpErrTo: 4, quotedVersion: 4,
	},
	{
		suffix: "6", ethertype: header.EtherTypeIPv6, saddrOff: header.IPv6SrcOff, daddrOff: header.IPv6DstOff, addrLen: 16,
		addrType: nftables.TypeIP6Addr, protoReg: 12, portReg: 13, ficSrcReg: 2, ficProtoReg: 16, ficPortReg: 17, scratchReg: 18,
		icmpProto: header.ProtoICMPv6,
		// unreachable, packet too big, time exceeded, parameter problem
		icmpErrMask: 0xff, icmpErrFrom: 1, icmpErrTo: 4, quotedVersion: 6,
	},
}

func famOf(a netip.Addr) int {
	if a.Is4() {
		return 0
	}
	return 1
}

// addrProto is an address and a protocol: a fragment set's key.
type addrProto struct {
	Addr  netip.Addr
	Proto spec.Proto
}

// Key fields as nftables lays concatenations out: each field padded to a
// 4-byte register.
func protoField(p spec.Proto) []byte { return []byte{byte(p), 0, 0, 0} }
func portField(p uint16) []byte      { return []byte{byte(p >> 8), byte(p), 0, 0} }

func (h *Hooks) compile(s Spec) (*plan, error) {
	var nl *netlink.Handle
	defer func() {
		if nl != nil {
			nl.Close()
		}
	}()
	p := &plan{}
	seen := map[string]bool{}
	norm := map[*ownership.Set]*ownership.Set{}
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

		owned := ifc.Owned
		if owned == nil {
			owned = s.Owned
		}
		o, ok := norm[owned]
		if !ok {
			var err error
			if o, err = owned.Normalize(); err != nil {
				return nil, fmt.Errorf("interface %s: %w", name, err)
			}
			norm[owned] = o
		}
		var elems [2][numKinds][]nftables.SetElement
		add := func(a netip.Addr, kind int, key ...[]byte) {
			f := famOf(a)
			elems[f][kind] = append(elems[f][kind], nftables.SetElement{Key: slices.Concat(append([][]byte{a.AsSlice()}, key...)...)})
		}
		addRange := func(a netip.Addr, kind int, first, last []byte) {
			f := famOf(a)
			elems[f][kind] = append(elems[f][kind], nftables.SetElement{Key: first, KeyEnd: last})
		}
		// What every fragment of a datagram carries: addresses and
		// protocol (nftables' concatenations do not deduplicate: the
		// keys are collected first).
		fragKeys := [numKinds]map[addrProto]bool{kFDS: {}, kFSR: {}}
		for _, e := range o.Services {
			fragKeys[kFDS][addrProto{e.Addr, e.Proto}] = true
		}
		for _, r := range o.LocalRanges {
			fragKeys[kFDS][addrProto{r.Addr, r.Proto}] = true
		}
		for _, e := range o.NATReplies {
			fragKeys[kFSR][addrProto{e.Addr, e.Proto}] = true
		}
		for _, kind := range []int{kFDS, kFSR} {
			for k := range fragKeys[kind] {
				add(k.Addr, kind, protoField(k.Proto))
			}
		}
		for _, e := range o.Services {
			if e.Port == 0 {
				add(e.Addr, kAny, protoField(e.Proto))
			} else {
				add(e.Addr, kSvc, protoField(e.Proto), portField(e.Port))
			}
		}
		for _, e := range o.NATReplies {
			if e.Port == 0 {
				add(e.Addr, kNAA, protoField(e.Proto))
			} else {
				add(e.Addr, kNAT, protoField(e.Proto), portField(e.Port))
			}
		}
		for _, r := range o.LocalRanges {
			a := r.Addr.AsSlice()
			addRange(r.Addr, kLIP, slices.Concat(a, protoField(r.Proto), portField(r.First)),
				slices.Concat(a, protoField(r.Proto), portField(r.Last)))
			addRange(r.Addr, kFIC, slices.Concat(a, a, protoField(r.Proto), portField(r.First)),
				slices.Concat(a, a, protoField(r.Proto), portField(r.Last)))
		}
		for _, a := range o.VIPs {
			add(a, kVIP)
		}
		for _, a := range o.Local {
			add(a, kLoc)
			if a.Is4() {
				add(a, kSLF, a.AsSlice())
			}
		}
		for _, t := range o.Tunnels {
			add(t.Addr, kTUN, protoField(spec.Proto(t.Proto)), portField(t.Port))
		}

		ip := ifPlan{name: name}
		for f, fam := range families {
			for kind := range numKinds {
				var kt nftables.SetDatatype
				switch kind {
				case kSvc, kNAT, kLIP, kTUN:
					kt = nftables.MustConcatSetType(fam.addrType, nftables.TypeInetProto, nftables.TypeInetService)
				case kAny, kNAA, kFDS, kFSR:
					kt = nftables.MustConcatSetType(fam.addrType, nftables.TypeInetProto)
				case kFIC:
					kt = nftables.MustConcatSetType(fam.addrType, fam.addrType, nftables.TypeInetProto, nftables.TypeInetService)
				case kVIP, kLoc:
					kt = fam.addrType
				case kSLF:
					kt = nftables.MustConcatSetType(fam.addrType, fam.addrType)
				}
				set := &nftables.Set{
					Table:         table(),
					Name:          kindNames[kind] + fam.suffix + "_" + name,
					KeyType:       kt,
					Concatenation: kind != kVIP && kind != kLoc,
					Interval:      kind == kLIP || kind == kFIC,
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

// build queues the contents of the table (which exists, or whose creation
// is queued before): the sets with their elements and the chains with their
// rules.
func (p *plan) build(c *nftables.Conn) error {
	t := table()
	for _, s := range p.sets {
		s.set.ID = 0 // a fresh ID for this batch
		if err := c.AddSet(s.set, s.elems); err != nil {
			return err
		}
	}
	for _, ifc := range p.ifs {
		in := c.AddChain(&nftables.Chain{
			Name:     "in_" + ifc.name,
			Table:    t,
			Type:     nftables.ChainTypeFilter,
			Hooknum:  nftables.ChainHookIngress,
			Priority: nftables.ChainPriorityRef(nftables.ChainPriority(p.priority)),
			Device:   ifc.name,
		})
		for f := range families {
			icmp := c.AddChain(&nftables.Chain{Name: "icmp" + families[f].suffix + "_" + ifc.name, Table: t})
			r := ruler{f: &families[f], sets: &ifc.sets[f]}
			for _, es := range r.base(icmp.Name) {
				c.AddRule(&nftables.Rule{Table: t, Chain: in, Exprs: es})
			}
			for _, es := range r.icmp() {
				c.AddRule(&nftables.Rule{Table: t, Chain: icmp, Exprs: es})
			}
		}
	}
	return nil
}

// ruler writes the rules of one family on one interface.
type ruler struct {
	f    *family
	sets *[numKinds]*nftables.Set
}

func cat(parts ...[]expr.Any) []expr.Any { return slices.Concat(parts...) }

var drop = []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}}

// is matches the family's frames, untagged or with one 802.1Q tag. The
// kernel has moved the outer tag of a tagged frame to skb metadata before
// the hook (skb_vlan_untag in __netif_receive_skb_core) and set
// skb->protocol to the EtherType after it: meta protocol is the family's
// for an untagged frame and for a frame whose one tag was removed. The
// EtherType at offset 12 of the link-layer header, read with the removed
// tag put back (nft_payload_copy_vlan in net/netfilter/nft_payload.c), is
// then the family's, 802.1Q or 802.1ad: the last is the kernel's (QinQ
// stays so too: its skb->protocol is the inner tag's).
func (r *ruler) is() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, r.f.ethertype)},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: header.EthernetTypeOff, Len: 2},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, header.EtherTypeQinQ)},
	}
}

// fragment matches a fragment, first or not: for IPv4 the MF flag or a
// fragment offset; for IPv6 the first fragment header (ipv6_find_hdr
// finds it for the exthdr expression) with an offset or the M flag, an
// atomic fragment being a whole packet (ipv6_frag_rcv).
func (r *ruler) fragment() []expr.Any {
	reg := r.f.scratchReg
	if r.f.quotedVersion == 4 {
		return []expr.Any{
			&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: header.IPv4FlagsFragOff, Len: 2},
			&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 2,
				Mask: binary.BigEndian.AppendUint16(nil, header.IPv4FlagMF|header.IPv4FragOffMask), Xor: []byte{0, 0}},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: reg, Data: []byte{0, 0}},
		}
	}
	return []expr.Any{
		&expr.Exthdr{Op: expr.ExthdrOpIpv6, Type: header.ProtoFragment, Offset: header.IPv6FragOffOff, Len: 2, DestRegister: reg},
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 2,
			Mask: binary.BigEndian.AppendUint16(nil, header.IPv6FragOffMask|ipv6FragMore), Xor: []byte{0, 0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg, Data: []byte{0, 0}},
	}
}

// ipv6FragMore is the M flag of the IPv6 fragment header's offset field.
const ipv6FragMore = 0x0001

func (r *ruler) addr(reg, off uint32) expr.Any {
	return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: r.f.addrLen}
}

func th(reg, off, n uint32) expr.Any {
	return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: n}
}

func (r *ruler) lookup(kind int, invert bool) expr.Any {
	s := r.sets[kind]
	return &expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID, Invert: invert}
}

func (r *ruler) l4() expr.Any { return &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: r.f.protoReg} }

// ports is a load of bytes 1 to 3 of the transport header that only
// checks: both ports are there and the packet is not a non-first
// fragment. A load of 1, 2 or 4 aligned bytes takes the fast path
// (nft_payload_fast_eval in net/netfilter/nf_tables_core.c), which checks
// neither (for an IPv6 non-first fragment it reads the IPv6 header, the
// transport header offset being 0); three bytes take nft_payload_eval,
// which breaks on a fragment (pkt->fragoff) or a short packet.
func (r *ruler) ports() expr.Any { return th(r.f.scratchReg, 1, 3) }

// base returns the rules of the interface's base chain for the family, in
// the order of the package documentation.
func (r *ruler) base(icmpChain string) [][]expr.Any {
	f := r.f
	return [][]expr.Any{
		// Fragments, by their addresses and protocol; those not
		// uvsd's go on to the kernel, whatever the rules below say.
		cat(r.is(), r.fragment(), []expr.Any{r.addr(1, f.daddrOff), r.l4(), r.lookup(kFDS, false)}, drop),
		cat(r.is(), r.fragment(), []expr.Any{r.addr(1, f.saddrOff), r.l4(), r.lookup(kFSR, false),
			r.addr(1, f.daddrOff), r.lookup(kLoc, true)}, drop),
		cat(r.is(), r.fragment(), []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{f.icmpProto}},
			r.addr(1, f.daddrOff), r.lookup(kVIP, false),
		}, drop),
		cat(r.is(), r.fragment(), []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}),

		cat(r.is(), []expr.Any{r.addr(1, f.daddrOff), r.l4(), r.lookup(kAny, false)}, drop),
		cat(r.is(), []expr.Any{r.addr(1, f.daddrOff), r.l4(), r.ports(), th(f.portReg, header.L4DstPortOff, 2), r.lookup(kSvc, false)}, drop),
		cat(r.is(), []expr.Any{r.addr(1, f.daddrOff), r.l4(), r.ports(), th(f.portReg, header.L4DstPortOff, 2), r.lookup(kLIP, false)}, drop),
		cat(r.is(), []expr.Any{r.addr(1, f.saddrOff), r.l4(), r.ports(), th(f.portReg, header.L4SrcPortOff, 2), r.lookup(kNAT, false),
			r.addr(1, f.daddrOff), r.lookup(kLoc, true)}, drop),
		cat(r.is(), []expr.Any{r.addr(1, f.saddrOff), r.l4(), r.ports(), r.lookup(kNAA, false),
			r.addr(1, f.daddrOff), r.lookup(kLoc, true)}, drop),
		// An ICMP error with its whole 8-byte header (the load of 8
		// bytes fails on a shorter one) in a first fragment.
		cat(r.is(), []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{f.icmpProto}},
			th(1, 0, header.ICMPv4MinSize),
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{f.icmpErrMask}, Xor: []byte{0}},
			&expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: []byte{f.icmpErrFrom}, ToData: []byte{f.icmpErrTo}},
			&expr.Verdict{Kind: expr.VerdictJump, Chain: icmpChain},
		}),
	}
}

// quoted checks the version (and for IPv4 the header length, in words) of
// the quoted IP header.
func quoted(version, words byte) []expr.Any {
	if version == 6 {
		return []expr.Any{
			th(1, header.ICMPv4MinSize, 1),
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0xf0}, Xor: []byte{0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x60}},
		}
	}
	return []expr.Any{
		th(1, header.ICMPv4MinSize, 1),
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x40 | words}},
	}
}

// icmp returns the rules of the family's ICMP chain, which sees ICMP errors
// only.
func (r *ruler) icmp() [][]expr.Any {
	f := r.f
	const q = header.ICMPv4MinSize // the quoted packet
	var srcOff, dstOff, protoOff uint32 = header.IPv4SrcOff, header.IPv4DstOff, header.IPv4ProtoOff
	if f.quotedVersion == 6 {
		srcOff, dstOff, protoOff = header.IPv6SrcOff, header.IPv6DstOff, header.IPv6NextHeaderOff
	}
	// The quoted header lengths: IPv4 5 to 15 words, IPv6 its fixed header.
	lens := []uint32{header.IPv6Size}
	if f.quotedVersion == 4 {
		lens = nil
		for w := uint32(5); w <= 15; w++ {
			lens = append(lens, 4*w)
		}
	}
	out := [][]expr.Any{cat([]expr.Any{r.addr(1, f.daddrOff), r.lookup(kVIP, false)}, drop)}
	// About a FULLNAT connection: the error's destination . quoted
	// source . protocol . source port in the local ranges (the
	// destination port is loaded too: the quote must hold four bytes).
	for _, l := range lens {
		out = append(out, cat(quoted(f.quotedVersion, byte(l/4)), []expr.Any{
			r.addr(1, f.daddrOff),
			th(f.ficSrcReg, q+srcOff, f.addrLen),
			th(f.ficProtoReg, q+protoOff, 1),
			th(f.ficPortReg, q+l+header.L4SrcPortOff, 2),
			th(f.scratchReg, q+l+header.L4DstPortOff, 2),
			r.lookup(kFIC, false),
		}, drop))
	}
	if f.quotedVersion == 4 {
		out = append(out, r.tunnelRules(lens)...)
	}
	// Errors to a director address are the kernel's, unless about FULLNAT
	// or the director's tunnelled packets.
	out = append(out, []expr.Any{r.addr(1, f.daddrOff), r.lookup(kLoc, false), &expr.Verdict{Kind: expr.VerdictReturn}})
	// About a NAT connection: quoted destination . protocol . destination
	// port is a NAT reply.
	for _, l := range lens {
		out = append(out, cat(quoted(f.quotedVersion, byte(l/4)), []expr.Any{
			th(1, q+dstOff, f.addrLen),
			th(f.protoReg, q+protoOff, 1),
			th(f.portReg, q+l+header.L4DstPortOff, 2),
			r.lookup(kNAT, false),
		}, drop))
	}
	// Or to a real server of a port-0 NAT service, on any port (loaded:
	// the quote must hold it).
	for _, l := range lens {
		out = append(out, cat(quoted(f.quotedVersion, byte(l/4)), []expr.Any{
			th(1, q+dstOff, f.addrLen),
			th(f.protoReg, q+protoOff, 1),
			th(f.scratchReg, q+l+header.L4DstPortOff, 2),
			r.lookup(kNAA, false),
		}, drop))
	}
	return out
}

// tunnelRules returns the IPv4 ICMP chain's rules for errors about the
// director's own tunnelled packets (ip_vs_in_icmp): the error's
// destination . quoted source is a director address twice, and the quoted
// destination . protocol . port a TUN real server's, the port 0 for IPIP
// and GRE (an immediate: the quote's four bytes after its header are
// loaded to check that they are there) and the quoted destination port
// for GUE.
func (r *ruler) tunnelRules(lens []uint32) [][]expr.Any {
	f := r.f
	const q = header.ICMPv4MinSize
	var out [][]expr.Any
	for _, l := range lens {
		self := cat(quoted(4, byte(l/4)), []expr.Any{
			r.addr(1, f.daddrOff),
			th(f.ficSrcReg, q+header.IPv4SrcOff, f.addrLen),
			r.lookup(kSLF, false),
			th(1, q+header.IPv4DstOff, f.addrLen),
			th(f.protoReg, q+header.IPv4ProtoOff, 1),
		})
		out = append(out,
			cat(self, []expr.Any{
				th(f.scratchReg, q+l, 4),
				&expr.Immediate{Register: f.portReg, Data: []byte{0, 0, 0, 0}},
				r.lookup(kTUN, false),
			}, drop),
			cat(self, []expr.Any{
				th(f.portReg, q+l+header.L4DstPortOff, 2),
				r.lookup(kTUN, false),
			}, drop),
		)
	}
	return out
}

// CleanupNetNS is Cleanup on a connection to ns (zero or negative: the
// caller's namespace), followed by RestoreSysctls from DefaultStateDir:
// what a killed uvsd left. While a uvsd owning the table lives it changes
// nothing and fails with ErrTableBusy.
func CleanupNetNS(ns netns.NsHandle) error {
	h := New(Options{NetNS: ns})
	c, err := h.conn()
	if err != nil {
		return fmt.Errorf("khook: cleanup: %w", err)
	}
	if err := Cleanup(c); err != nil {
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("khook: cleanup: %w", ErrTableBusy)
		}
		return err
	}
	return RestoreSysctls(ns, "")
}
