package afpacket

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"golang.org/x/net/bpf"

	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/ownership"
	"github.com/uvs-lb/uvs/spec"
)

const (
	// acceptLen is the snap length an accepting program returns: larger
	// than any frame, so frames are never truncated.
	acceptLen = 0x40000

	// maxFilterLen is the kernel's BPF_MAXINSNS (include/uapi/linux/bpf_common.h).
	maxFilterLen = 4096

	// ethLen is the offset of the network header in an untagged frame.
	ethLen = header.EthernetMinSize
)

// ErrFilterTooLong is returned when a filter needs more than the kernel's
// 4096 classic BPF instructions.
var ErrFilterTooLong = errors.New("afpacket: filter exceeds 4096 instructions")

// Filter returns the classic BPF program, for Config.Filter or
// Socket.SetFilter, that accepts exactly the frames s gives uvsd
// (ownership.Director and ownership.Shared, as ownership.Set.Classify
// defines them) and rejects every other frame. It returns ErrFilterTooLong
// when that takes more than 4096 instructions (FilterFor then falls back
// to a coarser filter).
//
// On receive the kernel moves a frame's outer VLAN tag into skb metadata
// before the packet taps run (skb_vlan_untag in __netif_receive_skb_core,
// net/core/dev.c), so the filter sees every frame untagged: a frame that
// carried one 802.1Q tag is classified by what it carries (ownership
// classifies it so), one whose outer tag was 802.1ad is rejected, through
// the SKF_AD_VLAN_TAG_PRESENT and SKF_AD_VLAN_TPID ancillary loads; a
// second tag stays in the frame, whose EtherType is then 802.1Q and is
// rejected too. Loads past the end of a frame end the program with 0
// (reject), which is what ownership does with a frame too short for what
// it would need next.
func Filter(s *ownership.Set) ([]bpf.RawInstruction, error) {
	n, err := s.Normalize()
	if err != nil {
		return nil, fmt.Errorf("afpacket: filter: %w", err)
	}
	g := &gen{}
	insns, err := g.program(n)
	if err != nil {
		return nil, fmt.Errorf("afpacket: filter: %w", err)
	}
	return assembleFilter(insns)
}

func assembleFilter(insns []bpf.Instruction) ([]bpf.RawInstruction, error) {
	if len(insns) > maxFilterLen {
		return nil, fmt.Errorf("%w (%d)", ErrFilterTooLong, len(insns))
	}
	raw, err := bpf.Assemble(insns)
	if err != nil {
		return nil, fmt.Errorf("afpacket: filter: %w", err)
	}
	return raw, nil
}

// FilterFor returns Filter(s) and exact true; when that is too long, an
// address filter (AddressFilter of s's addresses), which accepts a
// superset of s's frames, or failing that a filter that accepts every
// frame, with exact false. The data plane ignores frames it does not own,
// so a coarser filter costs CPU, not correctness.
func FilterFor(s *ownership.Set) (prog []bpf.RawInstruction, exact bool, err error) {
	prog, err = Filter(s)
	if err == nil || !errors.Is(err, ErrFilterTooLong) {
		return prog, err == nil, err
	}
	n, err := s.Normalize()
	if err != nil {
		return nil, false, fmt.Errorf("afpacket: filter: %w", err)
	}
	if prog, err = AddressFilter(AddressSpec(n)); err == nil {
		return prog, false, nil
	}
	if !errors.Is(err, ErrFilterTooLong) {
		return nil, false, err
	}
	prog, err = bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: acceptLen}})
	return prog, false, err
}

// Group is the sockets of one fanout group; it gives all of them the
// filter of one ownership set.
type Group []*Socket

var _ ownership.Consumer = Group(nil)

// SetOwnership attaches FilterFor(s) to every socket of g. When the exact
// filter is too long it attaches the coarser one and, if that went well,
// returns an error wrapping ErrFilterTooLong that says so.
func (g Group) SetOwnership(s *ownership.Set) error {
	prog, exact, err := FilterFor(s)
	if err != nil {
		return err
	}
	var errs []error
	for _, sk := range g {
		if err := sk.SetFilter(prog); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if !exact {
		return fmt.Errorf("%w: the sockets use a coarser filter of %d instructions", ErrFilterTooLong, len(prog))
	}
	return nil
}

// Scratch memory slots of the exact filter. Ports are compared as keys
// proto<<16 | port, so that one comparison checks both.
const (
	mProto   = iota // transport protocol (of the quoted packet in an ICMP error)
	mFrag           // IPv6: 1 for a non-first fragment
	mFragd          // IPv6: 1 for a fragment, 2 for an atomic fragment (the first fragment header decides)
	mL4             // IPv6: offset of the transport header
	mNext           // IPv6: next header during the extension-header walk
	mSKey           // protocol and source port
	mDKey           // protocol and destination port
	mKey            // protocol and port for the NAT reply check
	mAddr           // four slots: the address for the NAT reply check
	numSlots = mAddr + 4
)

// rule is what one (address, protocol) of a group accepts: every port, or
// the listed ports and ranges.
type rule struct {
	proto  spec.Proto
	all    bool
	ports  []uint16
	ranges [][2]uint16
}

func (r *rule) key(port uint16) uint32 { return uint32(r.proto)<<16 | uint32(port) }

// fragKey is the key of a fragment of protocol p, which carries no port
// (or, the first, one that other fragments do not): every rule of the
// protocol matches it. It is above every port's key.
func fragKey(p spec.Proto) uint32 { return fragBit | uint32(p) }

const fragBit = 1 << 24

// group is the rules of one address.
type group struct {
	addr  netip.Addr
	rules []rule
}

// grouper collects rules by address and protocol.
type grouper map[netip.Addr]map[spec.Proto]*rule

func (g grouper) rule(a netip.Addr, p spec.Proto) *rule {
	if g[a] == nil {
		g[a] = map[spec.Proto]*rule{}
	}
	if g[a][p] == nil {
		g[a][p] = &rule{proto: p}
	}
	return g[a][p]
}

// groups returns the rules of one IP version, sorted.
func (g grouper) groups(v6 bool) []group {
	var out []group
	for a, byProto := range g {
		if a.Is6() != v6 {
			continue
		}
		gr := group{addr: a}
		for _, r := range byProto {
			gr.rules = append(gr.rules, *r)
		}
		slices.SortFunc(gr.rules, func(x, y rule) int { return int(x.proto) - int(y.proto) })
		out = append(out, gr)
	}
	slices.SortFunc(out, func(x, y group) int { return x.addr.Compare(y.addr) })
	return out
}

// family is a normalized Set's content for one IP version.
type family struct {
	anyPort []group      // port-0 services, by destination
	dstPort []group      // services with a port and local ranges, by destination
	nat     []group      // NAT replies, by source
	ranges  []group      // local ranges, by local address
	ipip    []netip.Addr // TUN real servers of IPIP
	gre     []netip.Addr // TUN real servers of GRE
	gue     []group      // TUN real servers of GUE, with their ports
	vips    []netip.Addr
	neigh   []netip.Addr
	local   []netip.Addr
}

func families(s *ownership.Set) [2]family {
	anyPort, dstPort, nat, ranges, gue := grouper{}, grouper{}, grouper{}, grouper{}, grouper{}
	var ipip, gre []netip.Addr
	for _, e := range s.Services {
		if e.Port == 0 {
			anyPort.rule(e.Addr, e.Proto).all = true
		} else {
			r := dstPort.rule(e.Addr, e.Proto)
			r.ports = append(r.ports, e.Port)
		}
	}
	for _, r := range s.LocalRanges {
		d := dstPort.rule(r.Addr, r.Proto)
		d.ranges = append(d.ranges, [2]uint16{r.First, r.Last})
		l := ranges.rule(r.Addr, r.Proto)
		l.ranges = append(l.ranges, [2]uint16{r.First, r.Last})
	}
	for _, e := range s.NATReplies {
		r := nat.rule(e.Addr, e.Proto)
		if e.Port == 0 {
			// Every source port: the keys of the protocol.
			r.ranges = append(r.ranges, [2]uint16{0, 0xffff})
		} else {
			r.ports = append(r.ports, e.Port)
		}
	}
	for _, t := range s.Tunnels { // sorted by address
		switch t.Proto {
		case header.ProtoIPIP:
			ipip = append(ipip, t.Addr)
		case header.ProtoGRE:
			gre = append(gre, t.Addr)
		default:
			r := gue.rule(t.Addr, spec.ProtoUDP)
			r.ports = append(r.ports, t.Port)
		}
	}
	var out [2]family
	for i, v6 := range []bool{false, true} {
		of := func(as []netip.Addr) []netip.Addr {
			return slices.DeleteFunc(slices.Clone(as), func(a netip.Addr) bool { return a.Is6() != v6 })
		}
		out[i] = family{
			anyPort: anyPort.groups(v6), dstPort: dstPort.groups(v6), nat: nat.groups(v6), ranges: ranges.groups(v6),
			ipip: of(ipip), gre: of(gre), gue: gue.groups(v6),
			vips: of(s.VIPs), neigh: of(s.Neighbours), local: of(s.Local),
		}
	}
	return out
}

// ip reports whether the family owns any IP frame (neighbours of IPv4
// are ARP targets, those of IPv6 neighbour solicitation targets).
func (f *family) ip(v6 bool) bool {
	return len(f.anyPort)+len(f.dstPort)+len(f.nat)+len(f.vips) > 0 || v6 && len(f.neigh) > 0 || f.tunnel()
}

// icmp reports whether the family owns any ICMP error beyond those to a
// VIP.
func (f *family) icmp() bool { return len(f.ranges)+len(f.nat) > 0 || f.tunnel() }

// tunnel reports whether the family owns ICMP errors about the director's
// tunnelled packets (IPv4 only: ownership.Set.Normalize refuses others).
func (f *family) tunnel() bool { return len(f.ipip)+len(f.gre)+len(f.gue) > 0 && len(f.local) > 0 }

// gen generates the exact filter.
type gen struct {
	a              asm
	reject, accept label
}

// program returns the exact filter of a normalized Set.
func (g *gen) program(s *ownership.Set) ([]bpf.Instruction, error) {
	fs := families(s)
	a := &g.a
	g.reject, g.accept = a.label(), a.label()
	arp, ip4, ip6 := a.label(), a.label(), a.label()
	untagged := a.label()
	a.op(bpf.LoadExtension{Num: bpf.ExtVLANTagPresent})
	a.jmp(bpf.JumpEqual, 0, untagged, next)
	a.op(bpf.LoadExtension{Num: bpf.ExtVLANProto})
	a.jmp(bpf.JumpNotEqual, header.EtherTypeVLAN, g.reject, next)
	a.place(untagged)
	// The kernel refuses a program that may read a slot before writing
	// it (check_load_and_stores in net/core/filter.c).
	a.op(bpf.LoadConstant{Dst: bpf.RegA, Val: 0})
	for m := range numSlots {
		a.op(bpf.StoreScratch{Src: bpf.RegA, N: m})
	}
	a.op(bpf.LoadAbsolute{Off: header.EthernetTypeOff, Size: 2})
	if len(fs[0].neigh) > 0 {
		a.jmp(bpf.JumpEqual, header.EtherTypeARP, arp, next)
	}
	if fs[0].ip(false) {
		a.jmp(bpf.JumpEqual, header.EtherTypeIPv4, ip4, next)
	}
	if fs[1].ip(true) {
		a.jmp(bpf.JumpEqual, header.EtherTypeIPv6, ip6, next)
	}
	a.ja(g.reject)
	if len(fs[0].neigh) > 0 {
		a.place(arp)
		g.arp(&fs[0])
	}
	if fs[0].ip(false) {
		a.place(ip4)
		g.ipv4(&fs[0])
	}
	if fs[1].ip(true) {
		a.place(ip6)
		g.ipv6(&fs[1])
	}
	a.place(g.reject)
	a.op(bpf.RetConstant{Val: 0})
	a.place(g.accept)
	a.op(bpf.RetConstant{Val: acceptLen})
	return a.assemble()
}

// loader returns the instruction loading word w (of 4 bytes) of an
// address.
type loader func(w int) bpf.Instruction

func abs(off int) loader {
	return func(w int) bpf.Instruction { return bpf.LoadAbsolute{Off: uint32(off + 4*w), Size: 4} }
}

func ind(off int) loader {
	return func(w int) bpf.Instruction { return bpf.LoadIndirect{Off: uint32(off + 4*w), Size: 4} }
}

func scratch(w int) bpf.Instruction { return bpf.LoadScratch{Dst: bpf.RegA, N: mAddr + w} }

func words(a netip.Addr) []uint32 {
	b := a.AsSlice()
	out := make([]uint32, len(b)/4)
	for i := range out {
		out[i] = uint32(b[4*i])<<24 | uint32(b[4*i+1])<<16 | uint32(b[4*i+2])<<8 | uint32(b[4*i+3])
	}
	return out
}

// match jumps to targets[i] when the address ld loads is addrs[i], and to
// miss otherwise (next: after the comparisons). addrs are sorted and of
// one IP version; IPv6 addresses are matched as a trie of their words, so
// that addresses sharing a prefix share its comparisons.
func (g *gen) match(ld loader, addrs []netip.Addr, targets []label, miss label) {
	ws := make([][]uint32, len(addrs))
	for i, x := range addrs {
		ws[i] = words(x)
	}
	if miss != next {
		g.trie(ld, ws, targets, miss, 0)
		return
	}
	end := g.a.label()
	g.trie(ld, ws, targets, end, 0)
	g.a.place(end)
}

func (g *gen) trie(ld loader, ws [][]uint32, targets []label, miss label, w int) {
	a := &g.a
	if len(ws) == 0 {
		a.ja(miss)
		return
	}
	a.op(ld(w))
	last := w == len(ws[0])-1
	type run struct{ from, to int }
	var runs []run
	for i := range ws {
		if i == 0 || ws[i][w] != ws[i-1][w] {
			runs = append(runs, run{i, i + 1})
		} else {
			runs[len(runs)-1].to = i + 1
		}
	}
	subs := make([]label, len(runs))
	for i, r := range runs {
		if last {
			subs[i] = targets[r.from]
		} else {
			subs[i] = a.label()
		}
		a.jmp(bpf.JumpEqual, ws[r.from][w], subs[i], next)
	}
	a.ja(miss)
	if last {
		return
	}
	for i, r := range runs {
		a.place(subs[i])
		g.trie(ld, ws[r.from:r.to], targets[r.from:r.to], miss, w+1)
	}
}

// member jumps to hit when the address ld loads is one of addrs, and to
// miss otherwise.
func (g *gen) member(ld loader, addrs []netip.Addr, hit, miss label) {
	ts := make([]label, len(addrs))
	for i := range ts {
		ts[i] = hit
	}
	g.match(ld, addrs, ts, miss)
}

// dispatch matches the address ld loads against the groups and checks the
// matching group's rules against the key in slot (mProto for port-0
// groups): a match jumps to ok, or accepts when ok is accept; anything
// else jumps to fail. check, if set, is emitted at the start of every
// group (with the group's address) and may jump to fail.
func (g *gen) dispatch(ld loader, gs []group, slot int, ok, fail label, check func(netip.Addr)) {
	a := &g.a
	targets := make([]label, len(gs))
	addrs := make([]netip.Addr, len(gs))
	for i, gr := range gs {
		targets[i], addrs[i] = a.label(), gr.addr
	}
	g.match(ld, addrs, targets, fail)
	for i, gr := range gs {
		a.place(targets[i])
		if check != nil {
			check(gr.addr)
		}
		to := ok
		if ok == g.accept {
			to = a.label() // a return of its own, within reach of short jumps
		}
		a.op(bpf.LoadScratch{Dst: bpf.RegA, N: slot})
		for _, r := range gr.rules {
			if r.all {
				a.jmp(bpf.JumpEqual, uint32(r.proto), to, next)
				continue
			}
			if slot != mSKey {
				// A fragment's key (see fragKey); never in mSKey when
				// this dispatch runs.
				a.jmp(bpf.JumpEqual, fragKey(r.proto), to, next)
			}
			for _, p := range r.ports {
				a.jmp(bpf.JumpEqual, r.key(p), to, next)
			}
			for _, rg := range r.ranges {
				skip := a.label()
				a.jmp(bpf.JumpLessThan, r.key(rg[0]), skip, next)
				a.jmp(bpf.JumpLessOrEqual, r.key(rg[1]), to, next)
				a.place(skip)
			}
		}
		a.ja(fail)
		if to != ok {
			a.place(to)
			a.op(bpf.RetConstant{Val: acceptLen})
		}
	}
}

// l4Proto stores A in mProto and goes on if it is TCP, UDP or SCTP, to
// fail otherwise.
func (g *gen) l4Proto(fail label) {
	a := &g.a
	ok := a.label()
	a.op(bpf.StoreScratch{Src: bpf.RegA, N: mProto})
	a.jmp(bpf.JumpEqual, header.ProtoTCP, ok, next)
	a.jmp(bpf.JumpEqual, header.ProtoUDP, ok, next)
	a.jmp(bpf.JumpNotEqual, header.ProtoSCTP, fail, next)
	a.place(ok)
}

// keys loads the ports at X+off and stores them with mProto in mSKey and
// mDKey. X holds mProto<<16 afterwards.
func (g *gen) keys(off uint32) {
	g.a.op(
		bpf.LoadIndirect{Off: off + header.L4SrcPortOff, Size: 2},
		bpf.StoreScratch{Src: bpf.RegA, N: mSKey},
		bpf.LoadIndirect{Off: off + header.L4DstPortOff, Size: 2},
		bpf.StoreScratch{Src: bpf.RegA, N: mDKey},
		bpf.LoadScratch{Dst: bpf.RegA, N: mProto},
		bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 16},
		bpf.TAX{},
		bpf.LoadScratch{Dst: bpf.RegA, N: mSKey},
		bpf.ALUOpX{Op: bpf.ALUOpOr},
		bpf.StoreScratch{Src: bpf.RegA, N: mSKey},
		bpf.LoadScratch{Dst: bpf.RegA, N: mDKey},
		bpf.ALUOpX{Op: bpf.ALUOpOr},
		bpf.StoreScratch{Src: bpf.RegA, N: mDKey},
	)
}

// toNAT stores the address ld loads (n words) and the key in slot for the
// family's NAT reply check, and jumps to it.
func (g *gen) toNAT(ld loader, n int, slot int, nat label) {
	a := &g.a
	for w := range n {
		a.op(ld(w), bpf.StoreScratch{Src: bpf.RegA, N: mAddr + w})
	}
	a.op(bpf.LoadScratch{Dst: bpf.RegA, N: slot}, bpf.StoreScratch{Src: bpf.RegA, N: mKey})
	a.ja(nat)
}

// nat is the NAT reply check shared by TCP, UDP, SCTP and ICMP errors: the
// address in mAddr and the key in mKey are a NAT reply, and the frame's
// destination is not a director address.
func (g *gen) nat(f *family, dst loader) {
	a := &g.a
	ok := a.label()
	g.dispatch(scratch, f.nat, mKey, ok, g.reject, nil)
	a.place(ok)
	g.member(dst, f.local, g.reject, g.accept)
}

// arp accepts Ethernet/IPv4 ARP requests for a neighbour.
func (g *gen) arp(f *family) {
	a := &g.a
	for _, c := range []struct{ off, val uint32 }{
		{header.ARPHTypeOff, header.ARPHTypeEthernet},
		{header.ARPPTypeOff, header.EtherTypeIPv4},
		{header.ARPHLenOff, 6<<8 | 4}, // hardware and protocol address lengths
		{header.ARPOpOff, header.ARPRequest},
	} {
		a.op(bpf.LoadAbsolute{Off: ethLen + c.off, Size: 2})
		a.jmp(bpf.JumpNotEqual, c.val, g.reject, next)
	}
	g.member(abs(ethLen+header.ARPTargetIPOff), f.neigh, g.accept, g.reject)
}

// ipv4 classifies IPv4 frames; X holds the IPv4 header length unless said
// otherwise.
func (g *gen) ipv4(f *family) {
	a := &g.a
	const ip = ethLen
	dst, src := abs(ip+header.IPv4DstOff), abs(ip+header.IPv4SrcOff)
	reloadX := bpf.LoadMemShift{Off: ip + header.IPv4VerIHLOff}
	nat := a.label()
	// Version 4, IHL at least 5, a total length covering the header
	// and within the frame (__nft_set_pktinfo_ipv4_validate).
	a.op(
		bpf.LoadAbsolute{Off: ip + header.IPv4VerIHLOff, Size: 1},
		bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf0},
	)
	a.jmp(bpf.JumpNotEqual, 0x40, g.reject, next)
	a.op(reloadX, bpf.TXA{})
	a.jmp(bpf.JumpLessThan, header.IPv4MinSize, g.reject, next)
	a.op(bpf.LoadAbsolute{Off: ip + header.IPv4TotalLenOff, Size: 2})
	a.jmpX(bpf.JumpLessThan, g.reject, next)
	a.op(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: ip}, bpf.TAX{}, bpf.LoadExtension{Num: bpf.ExtLen})
	a.jmpX(bpf.JumpLessThan, g.reject, next)
	a.op(reloadX, bpf.LoadAbsolute{Off: ip + header.IPv4ProtoOff, Size: 1})
	icmp := a.label()
	if len(f.vips) > 0 || f.icmp() {
		a.jmp(bpf.JumpEqual, header.ProtoICMPv4, icmp, next)
	}
	g.l4Proto(g.reject)

	// TCP, UDP, SCTP: a port-0 service (fragment or not, ports or not).
	zeroDone := a.label()
	g.dispatch(dst, f.anyPort, mProto, g.accept, zeroDone, nil)
	a.place(zeroDone)
	// A fragment, first or not, by its addresses and protocol: fragment
	// keys; otherwise the ports.
	whole, keyed := a.label(), a.label()
	a.op(bpf.LoadAbsolute{Off: ip + header.IPv4FlagsFragOff, Size: 2})
	a.jmp(bpf.JumpBitsSet, ipv4Fragment, next, whole)
	g.fragKeys()
	a.ja(keyed)
	a.place(whole)
	g.keys(ip)
	a.place(keyed)
	toNAT := a.label()
	g.dispatch(dst, f.dstPort, mDKey, g.accept, toNAT, nil)
	a.place(toNAT)
	g.toNAT(src, 1, mSKey, nat)

	if len(f.vips) > 0 || f.icmp() {
		// ICMP: a fragment addressed to a VIP; an error, with the
		// whole 8-byte header, types 3, 4, 11 and 12 (with bit 3
		// cleared: 3 and 4), addressed to a VIP or about a connection.
		// Both test the VIPs once.
		a.place(icmp)
		vip := a.label()
		a.op(bpf.LoadAbsolute{Off: ip + header.IPv4FlagsFragOff, Size: 2})
		a.jmp(bpf.JumpBitsSet, ipv4Fragment, vip, next)
		a.op(
			bpf.LoadIndirect{Off: ip + header.ICMPv4MinSize - 1, Size: 1},
			bpf.LoadIndirect{Off: ip, Size: 1},
			bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf7},
		)
		a.jmp(bpf.JumpLessThan, header.ICMPv4DestUnreachable, g.reject, next)
		a.jmp(bpf.JumpGreaterThan, header.ICMPv4SourceQuench, g.reject, next)
		a.place(vip)
		g.member(dst, f.vips, g.accept, next)
		a.op(bpf.LoadAbsolute{Off: ip + header.IPv4FlagsFragOff, Size: 2})
		a.jmp(bpf.JumpBitsSet, ipv4Fragment, g.reject, next)
		if f.icmp() {
			// The quoted IPv4 header and the four bytes after it.
			const q = ip + header.ICMPv4MinSize
			a.op(bpf.LoadIndirect{Off: q + header.IPv4VerIHLOff, Size: 1}, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf0})
			a.jmp(bpf.JumpNotEqual, 0x40, g.reject, next)
			a.op(bpf.LoadIndirect{Off: q + header.IPv4VerIHLOff, Size: 1}, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x0f})
			a.jmp(bpf.JumpLessThan, header.IPv4MinSize/4, g.reject, next)
			if f.tunnel() {
				g.tunnelQuoted(f, dst, reloadX)
			}
			a.op(bpf.LoadIndirect{Off: q + header.IPv4ProtoOff, Size: 1})
			g.l4Proto(g.reject)
			// X = outer + quoted header lengths, for the quoted ports.
			a.op(
				bpf.LoadIndirect{Off: q + header.IPv4VerIHLOff, Size: 1},
				bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x0f},
				bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 2},
				bpf.ALUOpX{Op: bpf.ALUOpAdd},
				bpf.TAX{},
			)
			g.keys(q)
			a.op(reloadX)
			g.icmpQuoted(f, dst, ind(q+header.IPv4SrcOff), ind(q+header.IPv4DstOff), 1, nat)
		} else {
			a.ja(g.reject)
		}
	}
	a.place(nat)
	g.nat(f, dst)
}

// tunnelQuoted accepts an ICMPv4 error about the director's own tunnelled
// packet (ip_vs_in_icmp): addressed to a director address, quoting an IPv4
// header sent from there to a TUN real server with its outer protocol, and
// for GUE its port. X holds the outer header length on entry and on exit
// (reloadX reloads it); the quoted header's version and length are
// checked. An IPIP or GRE real server costs one comparison.
func (g *gen) tunnelQuoted(f *family, dst loader, reloadX bpf.Instruction) {
	a := &g.a
	const q = ethLen + header.ICMPv4MinSize
	isLocal, ipip, gre, gue, doneX, done := a.label(), a.label(), a.label(), a.label(), a.label(), a.label()
	g.member(dst, f.local, isLocal, done)
	a.place(isLocal)
	// The quoted source is the error's destination.
	a.op(
		bpf.LoadAbsolute{Off: ethLen + header.IPv4DstOff, Size: 4},
		bpf.StoreScratch{Src: bpf.RegA, N: mAddr},
		bpf.LoadIndirect{Off: q + header.IPv4SrcOff, Size: 4},
		bpf.LoadScratch{Dst: bpf.RegX, N: mAddr},
	)
	a.jmpX(bpf.JumpNotEqual, doneX, next)
	// The four bytes after the quoted header (a load past the frame
	// rejects it, as every quoted packet needs them): the key of a GUE
	// packet, UDP<<16 | its destination port.
	a.op(
		reloadX,
		bpf.LoadIndirect{Off: q + header.IPv4VerIHLOff, Size: 1},
		bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x0f},
		bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 2},
		bpf.ALUOpX{Op: bpf.ALUOpAdd},
		bpf.TAX{},
		bpf.LoadIndirect{Off: q, Size: 4},
		bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xffff},
		bpf.ALUOpConstant{Op: bpf.ALUOpOr, Val: header.ProtoUDP << 16},
		bpf.StoreScratch{Src: bpf.RegA, N: mKey},
		reloadX,
		bpf.LoadIndirect{Off: q + header.IPv4ProtoOff, Size: 1},
	)
	qdst := ind(q + header.IPv4DstOff)
	for _, c := range []struct {
		proto uint32
		to    label
		n     int
	}{{header.ProtoIPIP, ipip, len(f.ipip)}, {header.ProtoGRE, gre, len(f.gre)}, {header.ProtoUDP, gue, len(f.gue)}} {
		if c.n > 0 {
			a.jmp(bpf.JumpEqual, c.proto, c.to, next)
		}
	}
	a.ja(done)
	if len(f.ipip) > 0 {
		a.place(ipip)
		g.member(qdst, f.ipip, g.accept, done)
	}
	if len(f.gre) > 0 {
		a.place(gre)
		g.member(qdst, f.gre, g.accept, done)
	}
	if len(f.gue) > 0 {
		a.place(gue)
		g.dispatch(qdst, f.gue, mKey, g.accept, done, nil)
	}
	a.place(doneX)
	a.op(reloadX)
	a.place(done)
}

// ipv4Fragment are the bits of the IPv4 flags and fragment offset field
// set in a fragment: MF and the offset.
const ipv4Fragment = header.IPv4FlagMF | header.IPv4FragOffMask

// ipv6FragMore is the M flag of the IPv6 fragment header's offset field.
const ipv6FragMore = 0x0001

// fragKeys stores the fragment key of the protocol in mProto in mSKey and
// mDKey: a TCP, UDP or SCTP fragment, first or not, is owned by what every
// fragment carries, its addresses and protocol (to a service's or a local
// range's address, from a NAT reply's), whatever the ports.
func (g *gen) fragKeys() {
	g.a.op(
		bpf.LoadScratch{Dst: bpf.RegA, N: mProto},
		bpf.ALUOpConstant{Op: bpf.ALUOpOr, Val: fragBit},
		bpf.StoreScratch{Src: bpf.RegA, N: mSKey},
		bpf.StoreScratch{Src: bpf.RegA, N: mDKey},
	)
}

// icmpQuoted checks an ICMP error by its quoted packet (protocol in
// mProto, keys in mSKey and mDKey, addresses of n words): about a FULLNAT
// connection of the error's destination, or about a NAT connection.
func (g *gen) icmpQuoted(f *family, dst, qsrc, qdst loader, n int, nat label) {
	a := &g.a
	fullnatDone := a.label()
	g.dispatch(dst, f.ranges, mSKey, g.accept, fullnatDone, func(local netip.Addr) {
		same := a.label()
		g.member(qsrc, []netip.Addr{local}, same, fullnatDone)
		a.place(same)
	})
	a.place(fullnatDone)
	g.toNAT(qdst, n, mDKey, nat)
}

// ipv6 classifies IPv6 frames.
func (g *gen) ipv6(f *family) {
	a := &g.a
	const ip = ethLen
	dst, src := abs(ip+header.IPv6DstOff), abs(ip+header.IPv6SrcOff)
	nat := a.label()
	// Version 6 and a payload length within the frame
	// (__nft_set_pktinfo_ipv6_validate).
	a.op(bpf.LoadAbsolute{Off: ip, Size: 1}, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf0})
	a.jmp(bpf.JumpNotEqual, 0x60, g.reject, next)
	a.op(
		bpf.LoadAbsolute{Off: ip + header.IPv6PayloadLenOff, Size: 2},
		bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: ip + header.IPv6Size},
		bpf.TAX{},
		bpf.LoadExtension{Num: bpf.ExtLen},
	)
	a.jmpX(bpf.JumpLessThan, g.reject, next)
	// The extension headers, as ipv6_find_hdr walks them: X is the
	// offset of the next header, mNext its type.
	a.op(
		bpf.LoadAbsolute{Off: ip + header.IPv6NextHeaderOff, Size: 1},
		bpf.StoreScratch{Src: bpf.RegA, N: mNext},
		bpf.LoadConstant{Dst: bpf.RegX, Val: ip + header.IPv6Size},
	)
	walked := a.label()
	for range ownership.MaxExtHeaders {
		opt, rt, frag, first, nx := a.label(), a.label(), a.label(), a.label(), a.label()
		a.op(bpf.LoadScratch{Dst: bpf.RegA, N: mNext})
		a.jmp(bpf.JumpEqual, header.ProtoHopByHop, opt, next)
		a.jmp(bpf.JumpEqual, header.ProtoDstOpts, opt, next)
		a.jmp(bpf.JumpEqual, header.ProtoRouting, rt, next)
		a.jmp(bpf.JumpEqual, header.ProtoFragment, frag, next)
		a.ja(walked)
		a.place(rt)
		a.op(bpf.LoadIndirect{Off: 3, Size: 1}) // struct ipv6_rt_hdr is there
		a.place(opt)
		a.op(
			bpf.LoadIndirect{Off: 0, Size: 1},
			bpf.StoreScratch{Src: bpf.RegA, N: mNext},
			bpf.LoadIndirect{Off: 1, Size: 1},
			bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 1},
			bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 3},
			bpf.ALUOpX{Op: bpf.ALUOpAdd},
			bpf.TAX{},
		)
		a.ja(nx)
		a.place(frag)
		// The first fragment header says whether this is a fragment
		// (mFragd 1) or a whole packet (2: an atomic fragment).
		decided, isFrag, atomic := a.label(), a.label(), a.label()
		a.op(bpf.LoadScratch{Dst: bpf.RegA, N: mFragd})
		a.jmp(bpf.JumpNotEqual, 0, decided, next)
		a.op(bpf.LoadIndirect{Off: header.IPv6FragOffOff, Size: 2})
		a.jmp(bpf.JumpBitsSet, header.IPv6FragOffMask|ipv6FragMore, isFrag, atomic)
		a.place(isFrag)
		a.op(bpf.LoadConstant{Dst: bpf.RegA, Val: 1}, bpf.StoreScratch{Src: bpf.RegA, N: mFragd})
		a.ja(decided)
		a.place(atomic)
		a.op(bpf.LoadConstant{Dst: bpf.RegA, Val: 2}, bpf.StoreScratch{Src: bpf.RegA, N: mFragd})
		a.place(decided)
		a.op(
			bpf.LoadIndirect{Off: header.IPv6FragOffOff, Size: 2},
			bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: header.IPv6FragOffMask},
		)
		a.jmp(bpf.JumpEqual, 0, first, next)
		// A non-first fragment: its next header is the protocol.
		a.op(
			bpf.LoadIndirect{Off: 0, Size: 1},
			bpf.StoreScratch{Src: bpf.RegA, N: mNext},
			bpf.LoadConstant{Dst: bpf.RegA, Val: 1},
			bpf.StoreScratch{Src: bpf.RegA, N: mFrag},
		)
		a.ja(walked)
		a.place(first)
		a.op(
			bpf.LoadIndirect{Off: 0, Size: 1},
			bpf.StoreScratch{Src: bpf.RegA, N: mNext},
			bpf.TXA{},
			bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: header.IPv6FragSize},
			bpf.TAX{},
		)
		a.place(nx)
	}
	// More extension headers than the walk follows.
	a.op(bpf.LoadScratch{Dst: bpf.RegA, N: mNext})
	for _, e := range []uint32{header.ProtoHopByHop, header.ProtoDstOpts, header.ProtoRouting, header.ProtoFragment} {
		a.jmp(bpf.JumpEqual, e, g.reject, next)
	}
	a.place(walked)
	a.op(bpf.StoreScratch{Src: bpf.RegX, N: mL4}, bpf.LoadScratch{Dst: bpf.RegA, N: mNext})
	icmp := a.label()
	if len(f.vips) > 0 || len(f.neigh) > 0 || f.icmp() {
		a.jmp(bpf.JumpEqual, header.ProtoICMPv6, icmp, next)
	}
	g.l4Proto(g.reject)

	zeroDone := a.label()
	g.dispatch(dst, f.anyPort, mProto, g.accept, zeroDone, nil)
	a.place(zeroDone)
	whole, keyed := a.label(), a.label()
	a.op(bpf.LoadScratch{Dst: bpf.RegA, N: mFragd})
	a.jmp(bpf.JumpEqual, 1, next, whole)
	g.fragKeys()
	a.ja(keyed)
	a.place(whole)
	a.op(bpf.LoadScratch{Dst: bpf.RegA, N: mFrag})
	a.jmp(bpf.JumpNotEqual, 0, g.reject, next)
	a.op(bpf.LoadScratch{Dst: bpf.RegX, N: mL4})
	g.keys(0)
	a.place(keyed)
	toNAT := a.label()
	g.dispatch(dst, f.dstPort, mDKey, g.accept, toNAT, nil)
	a.place(toNAT)
	g.toNAT(src, 4, mSKey, nat)

	if len(f.vips) > 0 || len(f.neigh) > 0 || f.icmp() {
		// ICMPv6: a fragment addressed to a VIP; otherwise the whole
		// 8-byte header.
		ns, vip := a.label(), a.label()
		a.place(icmp)
		a.op(bpf.LoadScratch{Dst: bpf.RegA, N: mFragd})
		a.jmp(bpf.JumpEqual, 1, vip, next)
		a.op(bpf.LoadScratch{Dst: bpf.RegA, N: mFrag})
		a.jmp(bpf.JumpNotEqual, 0, g.reject, next)
		a.op(bpf.LoadIndirect{Off: header.ICMPv6MinSize - 1, Size: 1}, bpf.LoadIndirect{Off: 0, Size: 1})
		if len(f.neigh) > 0 {
			a.jmp(bpf.JumpEqual, header.ICMPv6NeighborSolicit, ns, next)
		}
		a.jmp(bpf.JumpLessThan, header.ICMPv6DestUnreachable, g.reject, next)
		a.jmp(bpf.JumpGreaterThan, header.ICMPv6ParamProblem, g.reject, next)
		a.place(vip)
		g.member(dst, f.vips, g.accept, next)
		a.op(bpf.LoadScratch{Dst: bpf.RegA, N: mFragd})
		a.jmp(bpf.JumpEqual, 1, g.reject, next)
		if f.icmp() {
			// The quoted IPv6 header and the four bytes after it.
			const q = header.ICMPv6MinSize
			a.op(bpf.LoadIndirect{Off: q, Size: 1}, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf0})
			a.jmp(bpf.JumpNotEqual, 0x60, g.reject, next)
			a.op(bpf.LoadIndirect{Off: q + header.IPv6NextHeaderOff, Size: 1})
			g.l4Proto(g.reject)
			g.keys(q + header.IPv6Size)
			a.op(bpf.LoadScratch{Dst: bpf.RegX, N: mL4})
			g.icmpQuoted(f, dst, ind(q+header.IPv6SrcOff), ind(q+header.IPv6DstOff), 4, nat)
		} else {
			a.ja(g.reject)
		}
		if len(f.neigh) > 0 {
			// Neighbour solicitation: the target follows the 8-byte
			// header.
			a.place(ns)
			a.op(bpf.LoadIndirect{Off: header.ICMPv6MinSize + 15, Size: 1})
			g.member(ind(header.ICMPv6MinSize), f.neigh, g.accept, g.reject)
		}
	}
	a.place(nat)
	g.nat(f, dst)
}

// AddressSpec returns the address-level description of s for
// AddressFilter: its accepted frames are a superset of s's.
func AddressSpec(s *ownership.Set) FilterSpec {
	var fs FilterSpec
	for _, e := range s.Services {
		fs.VIPs = append(fs.VIPs, e.Addr)
	}
	fs.VIPs = append(fs.VIPs, s.VIPs...)
	for _, r := range s.LocalRanges {
		fs.LocalAddrs = append(fs.LocalAddrs, r.Addr)
	}
	for _, e := range s.NATReplies {
		fs.RealServers = append(fs.RealServers, e.Addr)
	}
	for _, a := range s.Neighbours {
		if a.Unmap().Is4() {
			fs.ARP = true
		} else {
			fs.NDP = true
		}
	}
	for _, l := range []*[]netip.Addr{&fs.VIPs, &fs.LocalAddrs, &fs.RealServers} {
		slices.SortFunc(*l, netip.Addr.Compare)
		*l = slices.Compact(*l)
	}
	return fs
}

// FilterSpec describes frames by address only, for AddressFilter: the
// fallback when the exact filter is too long (AddressSpec derives it from
// an ownership.Set).
type FilterSpec struct {
	// VIPs are destinations whose frames are accepted (all protocols,
	// all ports).
	VIPs []netip.Addr
	// RealServers are sources whose frames are accepted.
	RealServers []netip.Addr
	// LocalAddrs are destinations whose frames are accepted (the FULLNAT
	// local addresses).
	LocalAddrs []netip.Addr
	// ARP accepts every ARP frame.
	ARP bool
	// NDP accepts IPv6 neighbour solicitations and advertisements (ICMPv6
	// types 135 and 136) whatever their addresses.
	NDP bool
}

// AddressFilter builds a classic BPF program that accepts:
//
//   - ARP, if spec.ARP;
//   - IPv6 neighbour solicitations/advertisements, if spec.NDP;
//   - IPv4/IPv6 destined to a VIP or to a local address;
//   - IPv4/IPv6 sourced from a real server;
//   - ICMP errors (IPv4 types 3, 4, 11, 12) in unfragmented or
//     first-fragment IPv4, and ICMPv6 errors (types 1-127) directly after
//     the IPv6 header, whatever their addresses;
//   - IPv6 frames with an extension header after the fixed header.
//
// Everything else is dropped, and so are IPv4 and IPv6 frames too short for
// their fixed header. With the description AddressSpec gives it of an
// ownership.Set, it accepts every frame Filter accepts, and more.
// IPv4-mapped IPv6 addresses in the spec are treated as IPv4.
func AddressFilter(spec FilterSpec) ([]bpf.RawInstruction, error) {
	var v4dst, v6dst, v4src, v6src []netip.Addr
	split := func(what string, in []netip.Addr, v4, v6 *[]netip.Addr) error {
		for _, a := range in {
			if !a.IsValid() {
				return fmt.Errorf("afpacket: address filter: invalid %s address", what)
			}
			a = a.Unmap()
			if a.Is4() {
				*v4 = append(*v4, a)
			} else {
				*v6 = append(*v6, a.WithZone(""))
			}
		}
		return nil
	}
	if err := split("VIP", spec.VIPs, &v4dst, &v6dst); err != nil {
		return nil, err
	}
	if err := split("local", spec.LocalAddrs, &v4dst, &v6dst); err != nil {
		return nil, err
	}
	if err := split("real server", spec.RealServers, &v4src, &v6src); err != nil {
		return nil, err
	}

	v4 := addrIPv4Section(v4dst, v4src)
	v6 := addrIPv6Section(v6dst, v6src, spec.NDP)

	// Dispatch on the EtherType. Far jumps use ja (32-bit offset); all
	// conditional jumps in the program are short.
	prog := []bpf.Instruction{bpf.LoadAbsolute{Off: header.EthernetTypeOff, Size: 2}}
	if spec.ARP {
		prog = append(prog,
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: header.EtherTypeARP, SkipTrue: 0, SkipFalse: 1},
			bpf.RetConstant{Val: acceptLen},
		)
	}
	prog = append(prog,
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: header.EtherTypeIPv4, SkipTrue: 0, SkipFalse: 1},
		bpf.Jump{Skip: 3}, // to the IPv4 section
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: header.EtherTypeIPv6, SkipTrue: 0, SkipFalse: 1},
		bpf.Jump{Skip: uint32(1 + len(v4))}, // to the IPv6 section
		bpf.RetConstant{Val: 0},
	)
	prog = append(prog, v4...)
	prog = append(prog, v6...)
	return assembleFilter(prog)
}

// addrIPv4Section matches IPv4 frames; it ends in a return.
func addrIPv4Section(dst, src []netip.Addr) []bpf.Instruction {
	p := minLen(ethLen + header.IPv4MinSize)
	if len(dst) > 0 {
		p = append(p, bpf.LoadAbsolute{Off: ethLen + header.IPv4DstOff, Size: 4})
		for _, a := range dst {
			p = append(p, matchWord(words(a)[0])...)
		}
	}
	if len(src) > 0 {
		p = append(p, bpf.LoadAbsolute{Off: ethLen + header.IPv4SrcOff, Size: 4})
		for _, a := range src {
			p = append(p, matchWord(words(a)[0])...)
		}
	}
	// ICMP errors: protocol 1, fragment offset 0, type 3, 4, 11 or 12.
	return append(p,
		bpf.LoadAbsolute{Off: ethLen + header.IPv4ProtoOff, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: header.ProtoICMPv4, SkipTrue: 8},
		bpf.LoadAbsolute{Off: ethLen + header.IPv4FlagsFragOff, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: header.IPv4FragOffMask, SkipTrue: 6},
		bpf.LoadMemShift{Off: ethLen + header.IPv4VerIHLOff},
		bpf.LoadIndirect{Off: ethLen, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: header.ICMPv4DestUnreachable, SkipTrue: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: header.ICMPv4SourceQuench, SkipTrue: 3},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: header.ICMPv4TimeExceeded, SkipTrue: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: header.ICMPv4ParamProblem, SkipTrue: 1},
		bpf.RetConstant{Val: 0},
		bpf.RetConstant{Val: acceptLen},
	)
}

// minLen drops frames shorter than n bytes, so a truncated header never
// matches on the part that is present.
func minLen(n uint32) []bpf.Instruction {
	return []bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtLen},
		bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: n, SkipTrue: 1},
		bpf.RetConstant{Val: 0},
	}
}

// matchWord returns accept if A equals w.
func matchWord(w uint32) []bpf.Instruction {
	return []bpf.Instruction{
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: w, SkipTrue: 0, SkipFalse: 1},
		bpf.RetConstant{Val: acceptLen},
	}
}

// addrIPv6Section matches IPv6 frames; it ends in a return.
func addrIPv6Section(dst, src []netip.Addr, ndp bool) []bpf.Instruction {
	p := minLen(ethLen + header.IPv6Size)
	for _, a := range dst {
		p = append(p, match16(ethLen+header.IPv6DstOff, words(a))...)
	}
	for _, a := range src {
		p = append(p, match16(ethLen+header.IPv6SrcOff, words(a))...)
	}
	// Any extension header (what follows it is not looked at), ICMPv6
	// directly after the fixed header: errors (type < 128) and, if asked,
	// NS/NA.
	p = append(p,
		bpf.LoadAbsolute{Off: ethLen + header.IPv6NextHeaderOff, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: header.ProtoHopByHop, SkipTrue: 10},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: header.ProtoRouting, SkipTrue: 9},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: header.ProtoFragment, SkipTrue: 8},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: header.ProtoDstOpts, SkipTrue: 7},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: header.ProtoICMPv6, SkipTrue: 5},
		bpf.LoadAbsolute{Off: ethLen + header.IPv6Size, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpLessThan, Val: 128, SkipTrue: 4},
	)
	if ndp {
		p = append(p,
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: header.ICMPv6NeighborSolicit, SkipTrue: 3},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: header.ICMPv6NeighborAdvert, SkipTrue: 2},
		)
	} else {
		// Same layout, so the jump distances above hold.
		p = append(p, bpf.Jump{Skip: 0}, bpf.Jump{Skip: 0})
	}
	return append(p,
		bpf.RetConstant{Val: 0},
		bpf.RetConstant{Val: 0},
		bpf.RetConstant{Val: acceptLen},
	)
}

// match16 returns accept if the 16 bytes at off equal the address words;
// otherwise it falls through to the next instruction after it.
func match16(off uint32, ws []uint32) []bpf.Instruction {
	p := make([]bpf.Instruction, 0, 9)
	for i := range 4 {
		p = append(p,
			bpf.LoadAbsolute{Off: off + uint32(4*i), Size: 4},
			// On mismatch skip the rest of this block: the remaining
			// load/compare pairs and the return.
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: ws[i], SkipTrue: uint8(2*(3-i) + 1)},
		)
	}
	return append(p, bpf.RetConstant{Val: acceptLen})
}

// asm assembles classic BPF with labels. Classic BPF only jumps forward,
// and conditional jumps reach at most 255 instructions ahead: assemble
// turns a farther one into a short jump to a trampoline right after it, an
// unconditional ja (32-bit offset) or a copy of the target when that is a
// return. A jump to a return may also go back: it becomes a copy of the
// return.
type asm struct {
	ins  []asmIns
	at   []int // label -> index in ins (-1: not placed yet)
	pend []label
}

// label names an instruction; next is the instruction after a jump.
type label int

const next label = -1

type asmIns struct {
	op     bpf.Instruction // a plain instruction; nil for a jump
	always bool            // ja jt
	cond   bpf.JumpTest
	val    uint32
	x      bool // compare A with X instead of val
	jt, jf label
}

func (a *asm) label() label {
	a.at = append(a.at, -1)
	return label(len(a.at) - 1)
}

// place puts l on the next instruction emitted.
func (a *asm) place(l label) { a.pend = append(a.pend, l) }

func (a *asm) add(in asmIns) {
	for _, l := range a.pend {
		a.at[l] = len(a.ins)
	}
	a.pend = a.pend[:0]
	a.ins = append(a.ins, in)
}

func (a *asm) op(ops ...bpf.Instruction) {
	for _, o := range ops {
		a.add(asmIns{op: o})
	}
}

// jmp jumps to jt if A cond val, to jf otherwise.
func (a *asm) jmp(cond bpf.JumpTest, val uint32, jt, jf label) {
	a.add(asmIns{cond: cond, val: val, jt: jt, jf: jf})
}

// jmpX jumps to jt if A cond X, to jf otherwise.
func (a *asm) jmpX(cond bpf.JumpTest, jt, jf label) {
	a.add(asmIns{cond: cond, x: true, jt: jt, jf: jf})
}

// ja jumps to l (nothing when l is next).
func (a *asm) ja(l label) {
	if l != next {
		a.add(asmIns{always: true, jt: l})
	}
}

func isJump(in asmIns) bool { return in.op == nil }

// assemble resolves the labels.
func (a *asm) assemble() ([]bpf.Instruction, error) {
	if len(a.pend) > 0 {
		return nil, errors.New("label after the last instruction")
	}
	for l, i := range a.at {
		if i < 0 && a.used(label(l)) {
			return nil, fmt.Errorf("label %d used but not placed", l)
		}
	}
	// far[i] says which targets of conditional jump i need a
	// trampoline; widening one can push others out of reach, so repeat
	// until nothing changes.
	isRet := func(l label) bool {
		if l == next {
			return false
		}
		_, ok := a.ins[a.at[l]].op.(bpf.RetConstant)
		return ok
	}
	far := make([][2]bool, len(a.ins))
	pos := make([]int, len(a.ins)+1)
	for i, in := range a.ins {
		if isJump(in) && !in.always {
			for k, l := range [2]label{in.jt, in.jf} {
				far[i][k] = l != next && a.at[l] <= i
			}
		}
	}
	for {
		for i, in := range a.ins {
			n := 1
			if isJump(in) && !in.always {
				n += btoi(far[i][0]) + btoi(far[i][1])
			}
			pos[i+1] = pos[i] + n
		}
		changed := false
		for i, in := range a.ins {
			if !isJump(in) || in.always {
				continue
			}
			for k, l := range [2]label{in.jt, in.jf} {
				if l != next && !far[i][k] && pos[a.at[l]]-(pos[i]+1) > 255 {
					far[i][k], changed = true, true
				}
			}
		}
		if !changed {
			break
		}
	}
	target := func(i int, l label) (int, error) {
		if l == next {
			return pos[i+1], nil
		}
		if a.at[l] <= i && !isRet(l) {
			return 0, fmt.Errorf("jump back from instruction %d to %d", i, a.at[l])
		}
		return pos[a.at[l]], nil
	}
	byPos := make(map[int]int, len(a.ins))
	for i := range a.ins {
		byPos[pos[i]] = i
	}
	out := make([]bpf.Instruction, 0, pos[len(a.ins)])
	for i, in := range a.ins {
		p := pos[i]
		if !isJump(in) {
			out = append(out, in.op)
			continue
		}
		t, err := target(i, in.jt)
		if err != nil {
			return nil, err
		}
		if in.always {
			if isRet(in.jt) {
				out = append(out, a.ins[a.at[in.jt]].op)
			} else {
				out = append(out, bpf.Jump{Skip: uint32(t - (p + 1))})
			}
			continue
		}
		f, err := target(i, in.jf)
		if err != nil {
			return nil, err
		}
		skipT, skipF := t-(p+1), f-(p+1)
		var tramps []int
		if far[i][0] {
			skipT = len(tramps)
			tramps = append(tramps, t)
		}
		if far[i][1] {
			skipF = len(tramps)
			tramps = append(tramps, f)
		}
		if in.x {
			out = append(out, bpf.JumpIfX{Cond: in.cond, SkipTrue: uint8(skipT), SkipFalse: uint8(skipF)})
		} else {
			out = append(out, bpf.JumpIf{Cond: in.cond, Val: in.val, SkipTrue: uint8(skipT), SkipFalse: uint8(skipF)})
		}
		for k, t := range tramps {
			at := p + 1 + k
			if r, ok := a.ins[byPos[t]].op.(bpf.RetConstant); ok {
				out = append(out, r)
			} else {
				out = append(out, bpf.Jump{Skip: uint32(t - (at + 1))})
			}
		}
	}
	return out, nil
}

func (a *asm) used(l label) bool {
	return slices.ContainsFunc(a.ins, func(in asmIns) bool { return isJump(in) && (in.jt == l || in.jf == l) })
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
