package fwmark

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// What the translator reads of a ruleset: the tables with a base chain
// hooked at prerouting, their chains (base and regular) and sets. ReadNft
// fills it from the kernel; tests build it by hand.
type nftRuleset struct{ Tables []nftTable }

type nftTable struct {
	Family nftables.TableFamily
	Name   string
	Chains []nftChain
	Sets   map[string]nftSet
}

type nftChain struct {
	Name     string
	Hook     *nftables.ChainHook // nil for a regular chain
	Priority int32
	Type     nftables.ChainType
	Rules    []nftRule
}

type nftRule struct {
	Handle uint64
	Exprs  []expr.Any
}

type nftSet struct {
	KeyLen                         int
	Interval, Dynamic, Map, Concat bool
	Elems                          []nftables.SetElement
}

// Limits of the translation. The kernel allows 16 nested jumps
// (NFT_JUMP_STACK_SIZE); maxNftRules bounds what inlining jumps and
// expanding sets may produce per base chain, maxNftAlts the expansion of
// one rule's sets.
const (
	maxNftDepth = 16
	maxNftRules = 20000
	maxNftAlts  = 4096
)

// ReadNft reads the ip, ip6 and inet tables of the namespace of c (a new
// connection in the current namespace when nil) and translates their
// filter-type base chains hooked at prerouting. Interface indexes of "iif"
// matches are named with the namespace's current interfaces.
func ReadNft(c *nftables.Conn) (*NftRules, error) {
	if c == nil {
		var err error
		if c, err = nftables.New(); err != nil {
			return nil, fmt.Errorf("nftables: %w", err)
		}
	}
	rs, err := readNftRuleset(c)
	if err != nil {
		return nil, err
	}
	return translateNft(rs, func(idx int) (string, bool) {
		ifi, err := net.InterfaceByIndex(idx)
		if err != nil {
			return "", false
		}
		return ifi.Name, true
	}), nil
}

func readNftRuleset(c *nftables.Conn) (*nftRuleset, error) {
	chains, err := c.ListChains()
	if err != nil {
		return nil, fmt.Errorf("nftables: listing chains: %w", err)
	}
	// Group by table in listing (creation) order.
	type key struct {
		fam  nftables.TableFamily
		name string
	}
	idx := map[key]int{}
	var tables []*nftables.Table
	var byTable [][]*nftables.Chain
	hooked := map[key]bool{}
	for _, ch := range chains {
		switch ch.Table.Family {
		case nftables.TableFamilyIPv4, nftables.TableFamilyIPv6, nftables.TableFamilyINet:
		default:
			continue
		}
		k := key{ch.Table.Family, ch.Table.Name}
		i, ok := idx[k]
		if !ok {
			i = len(tables)
			idx[k] = i
			tables = append(tables, ch.Table)
			byTable = append(byTable, nil)
		}
		byTable[i] = append(byTable[i], ch)
		if ch.Hooknum != nil && *ch.Hooknum == *nftables.ChainHookPrerouting {
			hooked[k] = true
		}
	}
	rs := &nftRuleset{}
	for i, t := range tables {
		if !hooked[key{t.Family, t.Name}] {
			continue
		}
		nt := nftTable{Family: t.Family, Name: t.Name, Sets: map[string]nftSet{}}
		for _, ch := range byTable[i] {
			nc := nftChain{Name: ch.Name, Hook: ch.Hooknum, Type: ch.Type}
			if ch.Priority != nil {
				nc.Priority = int32(*ch.Priority)
			}
			rules, err := c.GetRules(t, ch)
			if err != nil {
				return nil, fmt.Errorf("nftables: rules of %s: %w", chainName(t.Family, t.Name, ch.Name), err)
			}
			for _, r := range rules {
				nc.Rules = append(nc.Rules, nftRule{Handle: r.Handle, Exprs: r.Exprs})
			}
			nt.Chains = append(nt.Chains, nc)
		}
		sets, err := c.GetSets(t)
		if err != nil {
			return nil, fmt.Errorf("nftables: sets of table %s %s: %w", familyName(t.Family), t.Name, err)
		}
		for _, s := range sets {
			ns := nftSet{KeyLen: int(s.KeyType.Bytes), Interval: s.Interval, Dynamic: s.Dynamic || s.HasTimeout,
				Map: s.IsMap, Concat: s.Concatenation}
			if ns.Elems, err = c.GetSetElements(s); err != nil {
				return nil, fmt.Errorf("nftables: elements of set %s in table %s %s: %w", s.Name, familyName(t.Family), t.Name, err)
			}
			nt.Sets[s.Name] = ns
		}
		rs.Tables = append(rs.Tables, nt)
	}
	return rs, nil
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyINet:
		return "inet"
	}
	return "family" + strconv.Itoa(int(f))
}

func chainName(f nftables.TableFamily, table, chain string) string {
	return familyName(f) + " " + table + " " + chain
}

// translateNft translates the prerouting base chains of rs for IPv4 and
// IPv6, each family's chains in hook order.
func translateNft(rs *nftRuleset, ifname func(int) (string, bool)) *NftRules {
	out := &NftRules{}
	for _, fam := range []int{4, 6} {
		var list []NftChain
		for ti := range rs.Tables {
			t := &rs.Tables[ti]
			switch {
			case t.Family == nftables.TableFamilyINet:
			case t.Family == nftables.TableFamilyIPv4 && fam == 4:
			case t.Family == nftables.TableFamilyIPv6 && fam == 6:
			default:
				continue
			}
			for ci := range t.Chains {
				ch := &t.Chains[ci]
				if ch.Hook == nil || *ch.Hook != *nftables.ChainHookPrerouting {
					continue
				}
				list = append(list, translateChain(t, ch, fam, ifname))
			}
		}
		sort.SliceStable(list, func(i, j int) bool { return list[i].Priority < list[j].Priority })
		if fam == 4 {
			out.V4 = list
		} else {
			out.V6 = list
		}
	}
	return out
}

func translateChain(t *nftTable, ch *nftChain, fam int, ifname func(int) (string, bool)) NftChain {
	nc := NftChain{
		Name:     chainName(t.Family, t.Name, ch.Name),
		Priority: ch.Priority,
		Iptables: t.Family != nftables.TableFamilyINet && t.Name == "mangle" && ch.Name == "PREROUTING",
	}
	e := &emitter{t: t, fam: fam, ifname: ifname, seen: map[string]bool{}}
	if ch.Type == nftables.ChainTypeNAT {
		// A nat chain sees the first packet of each connection only and
		// its dnat/redirect change the addresses later chains match.
		for ri := range ch.Rules {
			e.unsupported(ch, ri, "rule of a nat-type chain")
		}
		nc.Unsupported = e.unsup
		return nc
	}
	end := e.newLabel()
	e.chain(ch, end, end, []Rule{{}}, 0)
	e.place(end)
	for _, f := range e.fixups {
		e.out[f.rule].Next = e.labels[f.label]
	}
	nc.Rules, nc.Marks, nc.Unsupported = e.out, e.marks, e.unsup
	return nc
}

// emitter flattens one base chain (and the chains it jumps to, inlined)
// into Rules. Labels are forward positions patched at the end.
type emitter struct {
	t      *nftTable
	fam    int
	ifname func(int) (string, bool)
	out    []Rule
	marks  []Rule
	unsup  []Unsupported
	seen   map[string]bool
	// reported holds the (chain, rule, reason) triples already
	// described: a rule reached again through another inlined jump gives
	// the same Unsupported, so it is not formatted again.
	reported map[unsupKey]bool
	// stack is the chains being inlined, the base chain first.
	stack  []*nftChain
	labels []int
	fixups []struct{ rule, label int }
}

func (e *emitter) newLabel() int { e.labels = append(e.labels, -1); return len(e.labels) - 1 }
func (e *emitter) place(l int)   { e.labels[l] = len(e.out) }

func (e *emitter) emitGoto(match Rule, label int) {
	match.Verdict = VerdictGoto
	e.fixups = append(e.fixups, struct{ rule, label int }{len(e.out), label})
	e.out = append(e.out, match)
}

// unsupKey names one rule's reason independently of the path that
// reached it.
type unsupKey struct {
	ch     *nftChain
	rule   int
	reason string
}

func (e *emitter) unsupported(ch *nftChain, ri int, reason string) {
	k := unsupKey{ch, ri, reason}
	if e.reported[k] {
		return
	}
	if e.reported == nil {
		e.reported = map[unsupKey]bool{}
	}
	e.reported[k] = true
	r := ch.Rules[ri]
	u := Unsupported{Nft: chainName(e.t.Family, e.t.Name, ch.Name), IPv6: e.fam == 6, Line: int(r.Handle),
		Rule: describeExprs(r.Exprs), Reason: reason}
	if k := u.String(); !e.seen[k] {
		e.seen[k] = true
		e.unsup = append(e.unsup, u)
	}
}

func (e *emitter) findChain(name string) *nftChain {
	for i := range e.t.Chains {
		if e.t.Chains[i].Name == name {
			return &e.t.Chains[i]
		}
	}
	return nil
}

// chain emits the rules of ch. ret is where "return" (and the end of ch)
// continues, end is the end of the base chain (accept), path the
// conditions that led here (for Marks).
func (e *emitter) chain(ch *nftChain, ret, end int, path []Rule, depth int) {
	e.stack = append(e.stack, ch)
	defer func() { e.stack = e.stack[:len(e.stack)-1] }()
	for ri := range ch.Rules {
		r := &ch.Rules[ri]
		out, marks := len(e.out), len(e.marks)
		segs, reason := e.parseRule(r.Exprs)
		if reason == "" {
			reason = e.rule(segs, ret, end, path, depth)
		}
		if reason != "" {
			e.unsupported(ch, ri, reason)
		}
		// Name the rules made from r (those of inlined chains have theirs).
		text := "nft " + chainName(e.t.Family, e.t.Name, ch.Name) + " handle " + strconv.FormatUint(r.Handle, 10)
		for _, l := range [][]Rule{e.out[out:], e.marks[marks:]} {
			for i := range l {
				if l[i].Text == "" {
					l[i].Line, l[i].Text = int(r.Handle), text
				}
			}
		}
	}
	if depth > 0 {
		e.emitGoto(Rule{}, ret) // the end of a jumped-to chain returns
	}
}

// stmtKind is what a rule does when its conditions hold.
type stmtKind uint8

const (
	stMark stmtKind = iota
	stAccept
	stReturn
	stJump
	stGoto
)

// segment is a statement with the conditions evaluated before it,
// expanded into alternatives (one empty Rule: no condition).
type segment struct {
	alts        []Rule
	kind        stmtKind
	value, mask uint32
	chain       string
}

func unconditional(alts []Rule) bool {
	return len(alts) == 1 && isEmptyMatch(&alts[0])
}

func isEmptyMatch(r *Rule) bool {
	return !r.Src.IsValid() && !r.Dst.IsValid() && !r.HasProto && r.InIface == "" && !r.HasMark && len(r.Ports) == 0
}

// rule emits one parsed rule; it returns a reason, before emitting
// anything, when a jump cannot be inlined.
func (e *emitter) rule(segs []segment, ret, end int, path []Rule, depth int) string {
	if len(segs) == 0 {
		return ""
	}
	last := segs[len(segs)-1]
	if last.kind == stJump || last.kind == stGoto {
		target := e.findChain(last.chain)
		switch {
		case target == nil:
			return "jump to unknown chain " + strconv.Quote(last.chain)
		case slices.Contains(e.stack, target):
			// The kernel refuses a ruleset whose jumps and gotos form a
			// loop (nf_tables_check_loops, net/netfilter/nf_tables_api.c),
			// so no real ruleset gets here; inlining one would unroll the
			// loop to the depth limit, doubling the work at each level.
			return "jump loop through chain " + strconv.Quote(last.chain)
		case depth+1 > maxNftDepth:
			return "more than 16 nested jumps"
		case len(e.out) > maxNftRules:
			return "more than " + strconv.Itoa(maxNftRules) + " rules after inlining jumps"
		}
	} else if len(segs) == 1 {
		// The common case: conditions and one statement. The alternatives
		// are disjoint (distinct elements of sets), so at most one holds.
		for _, a := range last.alts {
			e.stmt(a, last, ret, end, path)
		}
		return ""
	}
	skip := e.newLabel()
	for _, s := range segs {
		if !unconditional(s.alts) {
			body := e.newLabel()
			for _, a := range s.alts {
				e.emitGoto(a, body)
			}
			e.emitGoto(Rule{}, skip)
			e.place(body)
		}
		path = cross(path, s.alts)
		switch s.kind {
		case stJump:
			e.chain(e.findChain(s.chain), skip, end, path, depth+1)
		case stGoto:
			e.chain(e.findChain(s.chain), ret, end, path, depth+1)
		default:
			e.stmt(Rule{}, s, ret, end, path)
		}
	}
	e.place(skip)
	return ""
}

func (e *emitter) stmt(match Rule, s segment, ret, end int, path []Rule) {
	switch s.kind {
	case stMark:
		match.Verdict, match.Value, match.Mask = VerdictMark, s.value, s.mask
		e.out = append(e.out, match)
		for _, p := range path {
			m := looseMerge(p, match)
			m.Verdict, m.Value, m.Mask = VerdictMark, s.value, s.mask
			e.marks = append(e.marks, m)
		}
	case stAccept:
		e.emitGoto(match, end)
	case stReturn:
		e.emitGoto(match, ret)
	}
}

// cross returns the conjunctions of path and alts, for Marks only (so a
// conflict keeps path's condition, and the count is capped).
func cross(path, alts []Rule) []Rule {
	if unconditional(alts) {
		return path
	}
	var out []Rule
	for _, p := range path {
		for _, a := range alts {
			if len(out) == maxNftAlts {
				return out
			}
			out = append(out, looseMerge(p, a))
		}
	}
	return out
}

func looseMerge(p, a Rule) Rule {
	if !p.Src.IsValid() {
		p.Src, p.SrcMask, p.SrcNeg = a.Src, a.SrcMask, a.SrcNeg
	}
	if !p.Dst.IsValid() {
		p.Dst, p.DstMask, p.DstNeg = a.Dst, a.DstMask, a.DstNeg
	}
	if !p.HasProto {
		p.Proto, p.HasProto, p.ProtoNeg = a.Proto, a.HasProto, a.ProtoNeg
	}
	if p.InIface == "" {
		p.InIface, p.InIfaceNeg = a.InIface, a.InIfaceNeg
	}
	if !p.HasMark {
		p.HasMark, p.MarkValue, p.MarkMask, p.MarkNeg = a.HasMark, a.MarkValue, a.MarkMask, a.MarkNeg
	}
	p.Ports = append(p.Ports[:len(p.Ports):len(p.Ports)], a.Ports...)
	return p
}

// mergeResult of adding one condition to a conjunction.
type mergeResult uint8

const (
	mergeOK mergeResult = iota
	mergeNever
	mergeConflict
)

// strictMerge adds the one-field condition o to a. Two conditions on one
// field must be equal (or, for protocols, decidable) to be evaluated.
func strictMerge(a, o Rule) (Rule, mergeResult, string) {
	if o.Src.IsValid() {
		if a.Src.IsValid() && (a.Src != o.Src || a.SrcMask != o.SrcMask || a.SrcNeg != o.SrcNeg) {
			return a, mergeConflict, "two source address matches"
		}
		a.Src, a.SrcMask, a.SrcNeg = o.Src, o.SrcMask, o.SrcNeg
	}
	if o.Dst.IsValid() {
		if a.Dst.IsValid() && (a.Dst != o.Dst || a.DstMask != o.DstMask || a.DstNeg != o.DstNeg) {
			return a, mergeConflict, "two destination address matches"
		}
		a.Dst, a.DstMask, a.DstNeg = o.Dst, o.DstMask, o.DstNeg
	}
	if o.HasProto {
		switch {
		case !a.HasProto:
			a.Proto, a.HasProto, a.ProtoNeg = o.Proto, true, o.ProtoNeg
		case a.ProtoNeg == o.ProtoNeg && a.Proto == o.Proto:
		case !a.ProtoNeg && !o.ProtoNeg:
			return a, mergeNever, ""
		case !a.ProtoNeg && o.ProtoNeg: // == p and != q
			if a.Proto == o.Proto {
				return a, mergeNever, ""
			}
		case a.ProtoNeg && !o.ProtoNeg: // != p and == q
			if a.Proto == o.Proto {
				return a, mergeNever, ""
			}
			a.Proto, a.ProtoNeg = o.Proto, false
		default:
			return a, mergeConflict, "two protocol exclusions"
		}
	}
	if o.InIface != "" {
		if a.InIface != "" && (a.InIface != o.InIface || a.InIfaceNeg != o.InIfaceNeg) {
			return a, mergeConflict, "two interface matches"
		}
		a.InIface, a.InIfaceNeg = o.InIface, o.InIfaceNeg
	}
	if o.HasMark {
		if a.HasMark && (a.MarkValue != o.MarkValue || a.MarkMask != o.MarkMask || a.MarkNeg != o.MarkNeg) {
			return a, mergeConflict, "two mark matches"
		}
		a.HasMark, a.MarkValue, a.MarkMask, a.MarkNeg = true, o.MarkValue, o.MarkMask, o.MarkNeg
	}
	if len(o.Ports) > 0 {
		a.Ports = append(a.Ports[:len(a.Ports):len(a.Ports)], o.Ports...)
	}
	return a, mergeOK, ""
}

// and adds a condition with alternatives opts to the conjunctions alts.
// An empty result means the rule cannot match from here on.
func and(alts, opts []Rule) ([]Rule, string) {
	var out []Rule
	for _, a := range alts {
		for _, o := range opts {
			m, res, reason := strictMerge(a, o)
			switch res {
			case mergeConflict:
				return nil, reason
			case mergeOK:
				if len(out) == maxNftAlts {
					return nil, "more than " + strconv.Itoa(maxNftAlts) + " set elements combined in one rule"
				}
				out = append(out, m)
			}
		}
	}
	return out, ""
}

// regKind is what a register holds.
type regKind uint8

const (
	rkNone regKind = iota
	rkImm
	rkSrc
	rkDst
	rkL4
	rkNfproto
	rkEther
	rkIifname
	rkIif
	rkMark
	rkSport
	rkDport
	rkOther
)

type regVal struct {
	kind      regKind
	off, n    int    // rkSrc/rkDst: the address bytes [off, off+n) were loaded
	mask, xor []byte // from a bitwise expression
	data      []byte // rkImm
	what      string // rkOther
}

// regRange returns the bytes of the register file a register number
// covers: NFT_REG_1..4 are 16 bytes, NFT_REG32_00..15 4 bytes of them.
func regRange(r uint32) (int, int) {
	switch {
	case r >= 1 && r <= 4:
		return int(r-1) * 16, int(r) * 16
	case r >= 8 && r <= 23:
		return int(r-8) * 4, int(r-7) * 4
	}
	return -1, -1
}

type regs map[uint32]regVal

func (rg regs) set(r uint32, v regVal) {
	lo, hi := regRange(r)
	for k := range rg {
		if l, h := regRange(k); l < hi && lo < h {
			delete(rg, k)
		}
	}
	rg[r] = v
}

var portProtos = map[uint8]bool{6: true, 17: true, 132: true} // the data plane fills ports for these

// parseRule turns a rule's expressions into segments. It stops at a
// condition that cannot hold in this family. A non-empty reason means
// the rule cannot be evaluated.
func (e *emitter) parseRule(exprs []expr.Any) ([]segment, string) {
	var segs []segment
	alts := []Rule{{}}
	rg := regs{}
	addSeg := func(s segment) string {
		for i := range alts {
			if len(alts[i].Ports) > 0 && (!alts[i].HasProto || alts[i].ProtoNeg || !portProtos[alts[i].Proto]) {
				return "port match without a tcp, udp or sctp protocol match"
			}
		}
		s.alts = alts
		segs = append(segs, s)
		alts = []Rule{{}}
		return ""
	}
	cond := func(opts []Rule, reason string) (stop bool, why string) {
		if reason != "" {
			return true, reason
		}
		if opts == nil { // always true
			return false, ""
		}
		var r string
		alts, r = and(alts, opts)
		if r != "" {
			return true, r
		}
		return len(alts) == 0, ""
	}
	for _, x := range exprs {
		switch x := x.(type) {
		case *expr.Meta:
			if x.SourceRegister {
				switch x.Key {
				case expr.MetaKeyMARK:
					v, ok := rg[x.Register]
					val, mask, reason := markSet(v, ok)
					if reason != "" {
						return nil, reason
					}
					if r := addSeg(segment{kind: stMark, value: val, mask: mask}); r != "" {
						return nil, r
					}
				case expr.MetaKeyNFTRACE:
				default:
					return nil, "meta " + metaName(x.Key) + " set"
				}
				continue
			}
			v := regVal{kind: rkOther, what: "meta " + metaName(x.Key)}
			switch x.Key {
			case expr.MetaKeyMARK:
				v = regVal{kind: rkMark}
			case expr.MetaKeyL4PROTO:
				v = regVal{kind: rkL4}
			case expr.MetaKeyNFPROTO:
				v = regVal{kind: rkNfproto}
			case expr.MetaKeyPROTOCOL:
				v = regVal{kind: rkEther}
			case expr.MetaKeyIIFNAME:
				v = regVal{kind: rkIifname}
			case expr.MetaKeyIIF:
				v = regVal{kind: rkIif}
			}
			rg.set(x.Register, v)
		case *expr.Payload:
			if x.OperationType != expr.PayloadLoad {
				return nil, "payload write"
			}
			rg.set(x.DestRegister, e.payload(x))
		case *expr.Bitwise:
			v := rg[x.SourceRegister]
			if v.mask != nil || v.kind == rkNone || len(x.Mask) != len(x.Xor) {
				v = regVal{kind: rkOther, what: "bitwise expression"}
			} else {
				v.mask, v.xor = x.Mask, x.Xor
			}
			rg.set(x.DestRegister, v)
		case *expr.Immediate:
			rg.set(x.Register, regVal{kind: rkImm, data: x.Data})
		case *expr.Cmp:
			if stop, why := cond(e.cmp(rg[x.Register], x.Op, x.Data)); stop {
				return segs, why
			}
		case *expr.Range:
			if stop, why := cond(e.rangeCond(rg[x.Register], x)); stop {
				return segs, why
			}
		case *expr.Lookup:
			if x.IsDestRegSet {
				return nil, "map lookup @" + x.SetName
			}
			if stop, why := cond(e.lookup(rg[x.SourceRegister], x)); stop {
				return segs, why
			}
		case *expr.Verdict:
			var s segment
			switch x.Kind {
			case expr.VerdictAccept:
				s.kind = stAccept
			case expr.VerdictReturn:
				s.kind = stReturn
			case expr.VerdictJump:
				s.kind, s.chain = stJump, x.Chain
			case expr.VerdictGoto:
				s.kind, s.chain = stGoto, x.Chain
			case expr.VerdictContinue, expr.VerdictBreak:
				return segs, ""
			case expr.VerdictDrop:
				return nil, "drop"
			default:
				return nil, "verdict " + strconv.Itoa(int(x.Kind))
			}
			if r := addSeg(s); r != "" {
				return nil, r
			}
			return segs, ""
		case *expr.Counter, *expr.Log, *expr.Notrack:
			// No effect on the mark or on later matches.
		case *expr.Ct:
			if x.SourceRegister || x.Register == 0 {
				// ct set (google/nftables reads the sreg of "ct mark
				// set ..." as register 0): conntrack state, not the
				// packet's mark.
				continue
			}
			rg.set(x.Register, regVal{kind: rkOther, what: "ct key " + strconv.Itoa(int(x.Key))})
		case *expr.Match:
			return nil, "xt match " + strconv.Quote(x.Name) + " (iptables-nft compat)"
		case *expr.Target:
			return nil, "xt target " + strconv.Quote(x.Name) + " (iptables-nft compat)"
		default:
			return nil, "expression " + strings.TrimPrefix(fmt.Sprintf("%T", x), "*expr.")
		}
	}
	return segs, ""
}

func metaName(k expr.MetaKey) string {
	switch k {
	case expr.MetaKeyMARK:
		return "mark"
	case expr.MetaKeyIIF:
		return "iif"
	case expr.MetaKeyIIFNAME:
		return "iifname"
	case expr.MetaKeyOIF:
		return "oif"
	case expr.MetaKeyOIFNAME:
		return "oifname"
	case expr.MetaKeyL4PROTO:
		return "l4proto"
	case expr.MetaKeyNFPROTO:
		return "nfproto"
	case expr.MetaKeyPROTOCOL:
		return "protocol"
	case expr.MetaKeyPRIORITY:
		return "priority"
	case expr.MetaKeyPKTTYPE:
		return "pkttype"
	}
	return "key " + strconv.Itoa(int(k))
}

// markSet returns the MARK statement of "meta mark set" from register v:
// a constant, or the mark through a bitwise (mark & m) ^ x, which is
// mark = (mark &^ ^m) ^ x.
func markSet(v regVal, ok bool) (value, mask uint32, reason string) {
	switch {
	case ok && v.kind == rkImm && len(v.data) == 4:
		return binary.NativeEndian.Uint32(v.data), 0xffffffff, ""
	case ok && v.kind == rkMark && v.mask == nil:
		return 0, 0, ""
	case ok && v.kind == rkMark && len(v.mask) == 4:
		return binary.NativeEndian.Uint32(v.xor), ^binary.NativeEndian.Uint32(v.mask), ""
	case ok && v.kind == rkOther:
		return 0, 0, "meta mark set from " + v.what
	}
	return 0, 0, "meta mark set from an expression uvsd cannot evaluate"
}

// payload describes a payload load for this family.
func (e *emitter) payload(x *expr.Payload) regVal {
	off, n := int(x.Offset), int(x.Len)
	other := regVal{kind: rkOther, what: fmt.Sprintf("payload base %d offset %d length %d", x.Base, off, n)}
	switch x.Base {
	case expr.PayloadBaseNetworkHeader:
		src, dst, alen := 12, 16, 4
		if e.fam == 6 {
			src, dst, alen = 8, 24, 16
		}
		switch {
		case e.fam == 4 && off == 9 && n == 1:
			return regVal{kind: rkL4} // IPv4 has no extension headers
		case off >= src && off+n <= src+alen && n > 0:
			return regVal{kind: rkSrc, off: off - src, n: n}
		case off >= dst && off+n <= dst+alen && n > 0:
			return regVal{kind: rkDst, off: off - dst, n: n}
		}
		if e.fam == 6 && off == 6 && n == 1 {
			other.what = "ip6 nexthdr (the L4 protocol is meta l4proto, after extension headers)"
		}
	case expr.PayloadBaseTransportHeader:
		switch {
		case off == 0 && n == 2:
			return regVal{kind: rkSport}
		case off == 2 && n == 2:
			return regVal{kind: rkDport}
		}
	}
	return other
}

// cmp returns the alternatives of a comparison (nil: always true, empty:
// never) or a reason.
func (e *emitter) cmp(v regVal, op expr.CmpOp, data []byte) ([]Rule, string) {
	eqOrNeq := op == expr.CmpOpEq || op == expr.CmpOpNeq
	neg := op == expr.CmpOpNeq
	truth := func(b bool) ([]Rule, string) {
		if b != neg {
			return nil, ""
		}
		return []Rule{}, ""
	}
	if v.kind == rkOther {
		return nil, "match on " + v.what
	}
	if v.mask != nil && v.kind != rkSrc && v.kind != rkDst && v.kind != rkMark {
		return nil, "masked compare"
	}
	switch v.kind {
	case rkNone:
		return nil, "compare of a register nothing was loaded into"
	case rkOther:
		return nil, "match on " + v.what
	case rkImm:
		return nil, "compare of a constant"
	case rkL4:
		if !eqOrNeq || len(data) != 1 {
			return nil, "protocol compare"
		}
		return []Rule{{Proto: data[0], HasProto: true, ProtoNeg: neg}}, ""
	case rkNfproto:
		if !eqOrNeq || len(data) != 1 {
			return nil, "nfproto compare"
		}
		want := byte(2) // NFPROTO_IPV4
		if e.fam == 6 {
			want = 10 // NFPROTO_IPV6
		}
		return truth(data[0] == want)
	case rkEther:
		if !eqOrNeq || len(data) != 2 {
			return nil, "protocol compare"
		}
		want := uint16(0x0800)
		if e.fam == 6 {
			want = 0x86dd
		}
		return truth(binary.BigEndian.Uint16(data) == want)
	case rkIifname:
		if !eqOrNeq || len(data) == 0 || len(data) > 16 {
			return nil, "iifname compare"
		}
		name, _, exact := bytes.Cut(data, []byte{0})
		s := string(name)
		if !exact {
			if s == "" {
				return truth(true)
			}
			s += "+" // nft "eth*" loads the prefix only, as iptables' eth+
		}
		return []Rule{{InIface: s, InIfaceNeg: neg}}, ""
	case rkIif:
		if !eqOrNeq || len(data) != 4 {
			return nil, "iif compare"
		}
		name, ok := e.ifname(int(binary.NativeEndian.Uint32(data)))
		if !ok {
			return truth(false) // no such interface now: no packet has it
		}
		return []Rule{{InIface: name, InIfaceNeg: neg}}, ""
	case rkMark:
		if !eqOrNeq || len(data) != 4 || (v.xor != nil && !allZero(v.xor)) || (v.mask != nil && len(v.mask) != 4) {
			return nil, "mark compare"
		}
		m := uint32(0xffffffff)
		if v.mask != nil {
			m = binary.NativeEndian.Uint32(v.mask)
		}
		return []Rule{{HasMark: true, MarkValue: binary.NativeEndian.Uint32(data) & m, MarkMask: m, MarkNeg: neg}}, ""
	case rkSport, rkDport:
		if len(data) != 2 {
			return nil, "port compare"
		}
		p := binary.BigEndian.Uint16(data)
		pr := PortRange{p, p}
		switch op {
		case expr.CmpOpLt:
			if p == 0 {
				return []Rule{}, ""
			}
			pr = PortRange{0, p - 1}
		case expr.CmpOpLte:
			pr = PortRange{0, p}
		case expr.CmpOpGt:
			if p == 65535 {
				return []Rule{}, ""
			}
			pr = PortRange{p + 1, 65535}
		case expr.CmpOpGte:
			pr = PortRange{p, 65535}
		}
		return []Rule{{Ports: []PortMatch{{Dir: portDir(v.kind), Ranges: []PortRange{pr}, Neg: neg}}}}, ""
	case rkSrc, rkDst:
		if !eqOrNeq || len(data) != v.n || (v.xor != nil && !allZero(v.xor)) || (v.mask != nil && len(v.mask) != v.n) {
			return nil, "address compare"
		}
		alen := 4
		if e.fam == 6 {
			alen = 16
		}
		a := make([]byte, alen)
		m := make([]byte, alen)
		for i := range v.n {
			mb := byte(0xff)
			if v.mask != nil {
				mb = v.mask[i]
			}
			m[v.off+i] = mb
			a[v.off+i] = data[i] & mb
		}
		p, mask := prefixOf(a, m)
		r := Rule{}
		if v.kind == rkSrc {
			r.Src, r.SrcMask, r.SrcNeg = p, mask, neg
		} else {
			r.Dst, r.DstMask, r.DstNeg = p, mask, neg
		}
		return []Rule{r}, ""
	}
	return nil, "compare"
}

func portDir(k regKind) PortDir {
	if k == rkSport {
		return PortSrc
	}
	return PortDst
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// prefixOf returns address a with mask m as a prefix when m is
// contiguous, else as the full-length address and a mask address.
func prefixOf(a, m []byte) (netip.Prefix, netip.Addr) {
	addr, _ := netip.AddrFromSlice(a)
	bits, contiguous := 0, true
	for _, b := range m {
		for i := 7; i >= 0; i-- {
			if b&(1<<i) != 0 {
				if !contiguous {
					mk, _ := netip.AddrFromSlice(m)
					return netip.PrefixFrom(addr, addr.BitLen()), mk
				}
				bits++
			} else {
				contiguous = false
			}
		}
	}
	return netip.PrefixFrom(addr, bits), netip.Addr{}
}

func (e *emitter) rangeCond(v regVal, x *expr.Range) ([]Rule, string) {
	if (v.kind != rkSport && v.kind != rkDport) || v.mask != nil || len(x.FromData) != 2 || len(x.ToData) != 2 ||
		(x.Op != expr.CmpOpEq && x.Op != expr.CmpOpNeq) {
		return nil, "range match"
	}
	lo, hi := binary.BigEndian.Uint16(x.FromData), binary.BigEndian.Uint16(x.ToData)
	if lo > hi {
		return nil, "empty range"
	}
	return []Rule{{Ports: []PortMatch{{Dir: portDir(v.kind), Ranges: []PortRange{{lo, hi}}, Neg: x.Op == expr.CmpOpNeq}}}}, ""
}

// lookup returns the alternatives of a set lookup: one per element for
// addresses, protocols and interface names, one port match for ports.
func (e *emitter) lookup(v regVal, x *expr.Lookup) ([]Rule, string) {
	s, ok := e.t.Sets[x.SetName]
	name := "@" + x.SetName
	switch {
	case !ok:
		return nil, "lookup in unknown set " + name
	case s.Map:
		return nil, "map lookup " + name
	case s.Dynamic:
		return nil, "lookup in dynamic set " + name + " (its elements change from the packet path)"
	case s.Concat:
		return nil, "lookup in concatenated set " + name
	case v.mask != nil:
		return nil, "lookup of a masked value in " + name
	}
	ranges, reason := setRanges(s)
	if reason != "" {
		return nil, reason + " in " + name
	}
	neg := x.Invert
	var opts []Rule
	switch v.kind {
	case rkSport, rkDport:
		if s.KeyLen != 2 {
			return nil, "port lookup in " + name + " of another key type"
		}
		pm := PortMatch{Dir: portDir(v.kind), Neg: neg}
		for _, r := range ranges {
			pm.Ranges = append(pm.Ranges, PortRange{binary.BigEndian.Uint16(r[0]), binary.BigEndian.Uint16(r[1])})
		}
		if len(pm.Ranges) == 0 {
			if neg {
				return nil, ""
			}
			return []Rule{}, ""
		}
		return []Rule{{Ports: []PortMatch{pm}}}, ""
	case rkSrc, rkDst:
		alen := 4
		if e.fam == 6 {
			alen = 16
		}
		if v.off != 0 || v.n != alen || s.KeyLen != alen {
			return nil, "address lookup in " + name + " of another length"
		}
		for _, r := range ranges {
			lo, _ := netip.AddrFromSlice(r[0])
			hi, _ := netip.AddrFromSlice(r[1])
			for _, p := range setPrefixes(lo, hi, maxNftAlts+1-len(opts)) {
				o := Rule{}
				if v.kind == rkSrc {
					o.Src, o.SrcNeg = p, neg
				} else {
					o.Dst, o.DstNeg = p, neg
				}
				opts = append(opts, o)
			}
		}
	case rkL4:
		if s.KeyLen != 1 {
			return nil, "protocol lookup in " + name + " of another key type"
		}
		for _, r := range ranges {
			for p := int(r[0][0]); p <= int(r[1][0]); p++ {
				opts = append(opts, Rule{Proto: uint8(p), HasProto: true, ProtoNeg: neg})
			}
		}
	case rkIifname:
		if s.KeyLen != 16 || s.Interval {
			return nil, "interface lookup in " + name + " of another key type"
		}
		for _, r := range ranges {
			n, _, _ := bytes.Cut(r[0], []byte{0})
			opts = append(opts, Rule{InIface: string(n), InIfaceNeg: neg})
		}
	case rkOther:
		return nil, "lookup of " + v.what + " in " + name
	default:
		return nil, "lookup in " + name
	}
	switch {
	case len(opts) > maxNftAlts:
		return nil, "more than " + strconv.Itoa(maxNftAlts) + " elements in " + name
	case !neg && len(opts) == 0:
		return []Rule{}, "" // an empty set: never
	case !neg:
		return opts, ""
	case len(opts) == 0:
		return nil, ""
	case len(opts) == 1:
		return opts, ""
	}
	return nil, "negated lookup in " + name + " of more than one element"
}

// setRanges returns the elements of s as inclusive [lo, hi] key ranges in
// ascending order. An interval set holds the start of each interval and,
// flagged interval-end, the key after its last; a key belongs to the set
// when the greatest element at or below it is a start (nft_rbtree_lookup).
func setRanges(s nftSet) ([][2][]byte, string) {
	els := make([]nftables.SetElement, 0, len(s.Elems))
	for _, el := range s.Elems {
		if len(el.Key) != s.KeyLen {
			return nil, "element of another length"
		}
		els = append(els, el)
	}
	sort.SliceStable(els, func(i, j int) bool { return bytes.Compare(els[i].Key, els[j].Key) < 0 })
	var out [][2][]byte
	for i, el := range els {
		switch {
		case len(el.KeyEnd) > 0:
			if len(el.KeyEnd) != s.KeyLen {
				return nil, "element range of another length"
			}
			out = append(out, [2][]byte{el.Key, el.KeyEnd})
		case !s.Interval:
			out = append(out, [2][]byte{el.Key, el.Key})
		case el.IntervalEnd:
		default:
			hi := bytes.Repeat([]byte{0xff}, s.KeyLen)
			if i+1 < len(els) {
				hi = decrement(els[i+1].Key)
			}
			if bytes.Compare(el.Key, hi) <= 0 {
				out = append(out, [2][]byte{el.Key, hi})
			}
		}
	}
	return out, ""
}

// decrement returns the big-endian number b-1 (b > 0).
func decrement(b []byte) []byte {
	out := bytes.Clone(b)
	for i := len(out) - 1; i >= 0; i-- {
		out[i]--
		if out[i] != 0xff {
			break
		}
	}
	return out
}

// smallRange is the size up to which an address range of a set is taken
// address by address: the daemon claims (answers ARP for) the single
// destination addresses of MARK rules only, and nft merges adjacent
// elements of an interval set ({ VIP1, VIP2 }) into one range.
const smallRange = 16

// setPrefixes returns the addresses of [lo, hi] as host prefixes when
// there are at most smallRange of them, else rangePrefixes.
func setPrefixes(lo, hi netip.Addr, limit int) []netip.Prefix {
	var out []netip.Prefix
	for a := lo; a.IsValid() && a.Compare(hi) <= 0; a = a.Next() {
		if len(out) == smallRange || len(out) == limit {
			return rangePrefixes(lo, hi, limit)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out
}

// rangePrefixes covers [lo, hi] with the fewest prefixes, at most limit.
func rangePrefixes(lo, hi netip.Addr, limit int) []netip.Prefix {
	var out []netip.Prefix
	for lo.IsValid() && lo.Compare(hi) <= 0 && len(out) < limit {
		bits := lo.BitLen()
		for bits > 0 {
			p := netip.PrefixFrom(lo, bits-1).Masked()
			if p.Addr() != lo || lastAddr(p).Compare(hi) > 0 {
				break
			}
			bits--
		}
		p := netip.PrefixFrom(lo, bits)
		out = append(out, p)
		last := lastAddr(p)
		if last.Compare(hi) >= 0 {
			break
		}
		lo = last.Next()
	}
	return out
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr().AsSlice()
	for i := p.Bits(); i < len(a)*8; i++ {
		a[i/8] |= 0x80 >> (i % 8)
	}
	r, _ := netip.AddrFromSlice(a)
	return r
}

// describeExprs renders a rule's expressions for log messages, in the
// shape of "nft --debug=netlink".
func describeExprs(exprs []expr.Any) string {
	var parts []string
	for _, x := range exprs {
		var s string
		switch x := x.(type) {
		case *expr.Meta:
			if x.SourceRegister {
				s = fmt.Sprintf("meta set %s with reg %d", metaName(x.Key), x.Register)
			} else {
				s = fmt.Sprintf("meta load %s => reg %d", metaName(x.Key), x.Register)
			}
		case *expr.Payload:
			s = fmt.Sprintf("payload load %db @ base %d + %d => reg %d", x.Len, x.Base, x.Offset, x.DestRegister)
		case *expr.Cmp:
			s = fmt.Sprintf("cmp op %d reg %d 0x%x", x.Op, x.Register, x.Data)
		case *expr.Lookup:
			s = fmt.Sprintf("lookup reg %d set %s", x.SourceRegister, x.SetName)
			if x.Invert {
				s += " inverted"
			}
		case *expr.Immediate:
			s = fmt.Sprintf("immediate reg %d 0x%x", x.Register, x.Data)
		case *expr.Bitwise:
			s = fmt.Sprintf("bitwise reg %d = (reg %d & 0x%x) ^ 0x%x", x.DestRegister, x.SourceRegister, x.Mask, x.Xor)
		case *expr.Verdict:
			s = fmt.Sprintf("verdict %d %s", x.Kind, x.Chain)
		case *expr.Ct:
			s = fmt.Sprintf("ct key %d reg %d", x.Key, x.Register)
		case *expr.Match:
			s = "match " + x.Name
		case *expr.Target:
			s = "target " + x.Name
		default:
			s = strings.ToLower(strings.TrimPrefix(fmt.Sprintf("%T", x), "*expr."))
		}
		parts = append(parts, "["+strings.TrimSpace(s)+"]")
	}
	return strings.Join(parts, " ")
}
