// Package fwmark classifies packets with the firewall marks that the
// namespace's iptables mangle PREROUTING rules would give them.
//
// uvsd reads frames with AF_PACKET before netfilter runs, so it never sees
// the skb mark set by a rule such as
//
//	iptables -t mangle -A PREROUTING -d 10.0.0.100 -p tcp -m multiport --dports 80,443 -j MARK --set-mark 10
//
// which LVS scripts pair with "ipvsadm -A -f 10". This package reads the
// output of "iptables-save -t mangle" and "ip6tables-save -t mangle"
// (legacy or nf_tables backend alike), compiles the PREROUTING chain of the
// *mangle table into a Classifier, and evaluates it per packet without
// allocating. Native nftables rules ("meta mark set" in base chains hooked
// at prerouting) are read over netlink by ReadNft and merged with the
// iptables rules in hook order by Merge; see nft.go.
//
// Only rules this package can evaluate exactly are compiled. Every other
// PREROUTING rule is returned as an Unsupported entry and skipped: it is
// treated as if it were not in the chain. The caller should report them,
// since skipping a RETURN/ACCEPT can let a later MARK rule mark more packets
// than netfilter would, and skipping a MARK rule leaves packets unmarked.
//
// Supported matches: -s/-d ADDR[/PREFIX|/MASK] (with !), -p NAME|NUMBER
// (with !), -i NAME[+] (with !), -m tcp/udp/sctp --sport/--dport N[:M]
// (with !), -m multiport --sports/--dports/--ports list (with !),
// -m mark --mark V[/M] (with !), -m comment (ignored). Supported targets:
// MARK (--set-xmark, --set-mark, --and-mark, --or-mark, --xor-mark),
// ACCEPT and RETURN (stop evaluating the chain), and no target at all.
// Jumps to user chains, other targets and other matches are Unsupported.
//
// Netfilter reassembles IP fragments before mangle PREROUTING; this package
// does not, so callers should pass the ports of the first fragment or zero.
package fwmark

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Verdict is what a rule does when it matches.
type Verdict uint8

// Rule verdicts.
const (
	VerdictNone   Verdict = iota // no target: counters only, evaluation continues
	VerdictMark                  // MARK: mark = (mark &^ Mask) ^ Value, evaluation continues
	VerdictAccept                // ACCEPT: stop evaluating the chain
	VerdictReturn                // RETURN from PREROUTING: stop evaluating the chain
	// VerdictGoto continues at rule Next of the same list when the rule
	// matches. Next is always after the rule (a forward branch), so
	// evaluation ends; the nftables reader uses it for accept, return,
	// jump and goto, and to chain several base chains into one list.
	VerdictGoto
)

// PortRange is an inclusive range of L4 ports.
type PortRange struct{ Lo, Hi uint16 }

// PortDir says which ports of a packet a PortMatch looks at.
type PortDir uint8

// Port match directions.
const (
	PortSrc    PortDir = iota // source port (--sport, --sports)
	PortDst                   // destination port (--dport, --dports)
	PortEither                // either port (multiport --ports)
)

// PortMatch is one port condition of a rule.
type PortMatch struct {
	Dir    PortDir
	Ranges []PortRange
	Neg    bool
	// Proto, when non-zero, is the protocol the match requires (the tcp,
	// udp and sctp modules only match packets of their own protocol).
	Proto uint8
}

// Rule is one supported mangle PREROUTING rule.
type Rule struct {
	Line int    // 1-based line in the save text
	Text string // the rule as it appeared

	Src, Dst       netip.Prefix // invalid when absent
	SrcMask        netip.Addr   // non-contiguous source mask, when given as an address
	DstMask        netip.Addr   // non-contiguous destination mask
	SrcNeg, DstNeg bool

	Proto    uint8 // valid when HasProto
	HasProto bool
	ProtoNeg bool

	InIface    string // "" when absent; a trailing '+' is a wildcard
	InIfaceNeg bool

	Ports []PortMatch

	HasMark             bool // -m mark --mark MarkValue/MarkMask
	MarkValue, MarkMask uint32
	MarkNeg             bool

	Verdict     Verdict
	Value, Mask uint32 // VerdictMark: mark = (mark &^ Mask) ^ Value
	Next        int    // VerdictGoto: index of the next rule to evaluate
}

// Unsupported is a PREROUTING rule that was skipped.
type Unsupported struct {
	Nft    string // nftables "family table chain" of the rule ("" for iptables)
	IPv6   bool   // from the ip6tables text
	Line   int    // 1-based line in that text
	Rule   string // the rule as it appeared
	Reason string
}

// String formats u as "ipv4 line N: reason: rule".
func (u Unsupported) String() string {
	if u.Nft != "" {
		return fmt.Sprintf("nft %s handle %d: %s: %s", u.Nft, u.Line, u.Reason, u.Rule)
	}
	fam := "ipv4"
	if u.IPv6 {
		fam = "ipv6"
	}
	return fmt.Sprintf("%s line %d: %s: %s", fam, u.Line, u.Reason, u.Rule)
}

// ErrSyntax is returned (wrapped) for text that is not iptables-save output.
var ErrSyntax = errors.New("not iptables-save output")

// ParseFamily parses the output of iptables-save (ipv6 false) or
// ip6tables-save (ipv6 true). Only the "-A PREROUTING" rules of the *mangle
// table are returned, in order; rules of other chains and tables are
// ignored. Rules it cannot evaluate are returned as Unsupported. An error
// (wrapping ErrSyntax) means the text is not save output at all.
func ParseFamily(text string, ipv6 bool) ([]Rule, []Unsupported, error) {
	var rules []Rule
	var unsup []Unsupported
	table := ""
	for n, line := range strings.Split(text, "\n") {
		lineNo := n + 1
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#':
			continue
		case line[0] == '*':
			if table != "" {
				return nil, nil, fmt.Errorf("parse line %d: table %q inside table %q: %w", lineNo, line[1:], table, ErrSyntax)
			}
			table = line[1:]
			if table == "" {
				return nil, nil, fmt.Errorf("parse line %d: empty table name: %w", lineNo, ErrSyntax)
			}
			continue
		case line == "COMMIT":
			if table == "" {
				return nil, nil, fmt.Errorf("parse line %d: COMMIT outside a table: %w", lineNo, ErrSyntax)
			}
			table = ""
			continue
		case line[0] == ':':
			if table == "" {
				return nil, nil, fmt.Errorf("parse line %d: chain outside a table: %w", lineNo, ErrSyntax)
			}
			continue
		}
		if table == "" {
			return nil, nil, fmt.Errorf("parse line %d: rule outside a table: %w", lineNo, ErrSyntax)
		}
		toks, err := split(line)
		if err != nil {
			return nil, nil, fmt.Errorf("parse line %d: %w", lineNo, err)
		}
		if len(toks) > 0 && strings.HasPrefix(toks[0], "[") && strings.HasSuffix(toks[0], "]") {
			toks = toks[1:] // iptables-save -c counters
		}
		if len(toks) < 2 || (toks[0] != "-A" && toks[0] != "--append") {
			return nil, nil, fmt.Errorf("parse line %d: expected -A CHAIN: %w", lineNo, ErrSyntax)
		}
		if table != "mangle" || toks[1] != "PREROUTING" {
			continue
		}
		r, reason := parseRule(toks[2:], ipv6)
		if reason != "" {
			unsup = append(unsup, Unsupported{IPv6: ipv6, Line: lineNo, Rule: line, Reason: reason})
			continue
		}
		r.Line, r.Text = lineNo, line
		rules = append(rules, r)
	}
	if table != "" {
		return nil, nil, fmt.Errorf("parse: table %q without COMMIT: %w", table, ErrSyntax)
	}
	return rules, unsup, nil
}

// split splits a save line into words the way iptables-restore does:
// double quotes group, backslash escapes the next character inside quotes.
func split(line string) ([]string, error) {
	var toks []string
	var b strings.Builder
	in, have := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case in && c == '\\' && i+1 < len(line):
			i++
			b.WriteByte(line[i])
		case c == '"':
			in = !in
			have = true
		case !in && (c == ' ' || c == '\t'):
			if have {
				toks = append(toks, b.String())
				b.Reset()
				have = false
			}
		default:
			b.WriteByte(c)
			have = true
		}
	}
	if in {
		return nil, fmt.Errorf("unterminated quote: %w", ErrSyntax)
	}
	if have {
		toks = append(toks, b.String())
	}
	return toks, nil
}

var protoNames = map[string]uint8{
	"icmp": 1, "igmp": 2, "ipencap": 4, "ipip": 4, "tcp": 6, "egp": 8, "udp": 17,
	"ipv6": 41, "gre": 47, "esp": 50, "ah": 51, "ipv6-icmp": 58, "icmpv6": 58,
	"ospf": 89, "vrrp": 112, "sctp": 132, "udplite": 136, "dccp": 33, "mh": 135,
}

// parseRule parses the words after "-A PREROUTING". It returns a non-empty
// reason when the rule cannot be evaluated.
func parseRule(toks []string, ipv6 bool) (Rule, string) {
	var r Rule
	module := ""
	neg := false
	target := ""
	seenTarget := false
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t == "!" {
			if neg {
				return r, "double negation"
			}
			neg = true
			continue
		}
		arg := func() (string, bool) {
			if i+1 >= len(toks) {
				return "", false
			}
			i++
			return toks[i], true
		}
		if seenTarget {
			// Target options.
			if neg {
				return r, "negated target option " + t
			}
			if target != "MARK" {
				return r, "target option " + t + " of " + target
			}
			v, ok := arg()
			if !ok {
				return r, "missing value for " + t
			}
			val, mask, hasMask, ok := parseValMask(v)
			if !ok {
				return r, "bad mark " + strconv.Quote(v)
			}
			switch t {
			case "--set-xmark":
				if !hasMask {
					mask = 0xffffffff
				}
				r.Value, r.Mask = val, mask
			case "--set-mark":
				if !hasMask {
					mask = 0xffffffff
				}
				r.Value, r.Mask = val, mask|val
			case "--and-mark":
				if hasMask {
					return r, "mask on " + t
				}
				r.Value, r.Mask = 0, ^val
			case "--or-mark":
				if hasMask {
					return r, "mask on " + t
				}
				r.Value, r.Mask = val, val
			case "--xor-mark":
				if hasMask {
					return r, "mask on " + t
				}
				r.Value, r.Mask = val, 0
			default:
				return r, "MARK option " + t
			}
			r.Verdict = VerdictMark
			continue
		}
		wasNeg := neg
		neg = false
		switch t {
		case "-s", "--source", "-d", "--destination":
			v, ok := arg()
			if !ok {
				return r, "missing address for " + t
			}
			p, mask, ok := parsePrefix(v, ipv6)
			if !ok {
				return r, "bad address " + strconv.Quote(v)
			}
			if t == "-s" || t == "--source" {
				if r.Src.IsValid() {
					return r, "two source matches"
				}
				r.Src, r.SrcMask, r.SrcNeg = p, mask, wasNeg
			} else {
				if r.Dst.IsValid() {
					return r, "two destination matches"
				}
				r.Dst, r.DstMask, r.DstNeg = p, mask, wasNeg
			}
		case "-p", "--protocol":
			v, ok := arg()
			if !ok {
				return r, "missing protocol"
			}
			if r.HasProto {
				return r, "two protocol matches"
			}
			v = strings.ToLower(v)
			if v == "all" || v == "0" {
				if wasNeg {
					return r, "negated protocol all" // matches nothing; iptables refuses it
				}
				continue
			}
			n, ok := protoNames[v]
			if !ok {
				u, err := strconv.ParseUint(v, 10, 8)
				if err != nil {
					return r, "unknown protocol " + strconv.Quote(v)
				}
				n = uint8(u)
			}
			r.Proto, r.HasProto, r.ProtoNeg = n, true, wasNeg
		case "-i", "--in-interface":
			v, ok := arg()
			if !ok || v == "" || len(v) > 16 {
				return r, "bad interface"
			}
			if r.InIface != "" {
				return r, "two interface matches"
			}
			r.InIface, r.InIfaceNeg = v, wasNeg
		case "-m", "--match":
			v, ok := arg()
			if !ok {
				return r, "missing match name"
			}
			if wasNeg {
				return r, "negated -m"
			}
			switch v {
			case "tcp", "udp", "sctp":
				if !r.HasProto || r.ProtoNeg || r.Proto != protoNames[v] {
					return r, "-m " + v + " without -p " + v
				}
			case "multiport", "comment", "mark":
			default:
				return r, "match module " + strconv.Quote(v)
			}
			module = v
		case "--sport", "--source-port", "--dport", "--destination-port":
			if module != "tcp" && module != "udp" && module != "sctp" {
				return r, t + " outside -m tcp/udp/sctp"
			}
			v, ok := arg()
			if !ok {
				return r, "missing port for " + t
			}
			pr, ok := parsePortRange(v)
			if !ok {
				return r, "bad port " + strconv.Quote(v)
			}
			dir := PortSrc
			if t == "--dport" || t == "--destination-port" {
				dir = PortDst
			}
			r.Ports = append(r.Ports, PortMatch{Dir: dir, Ranges: []PortRange{pr}, Neg: wasNeg, Proto: protoNames[module]})
		case "--sports", "--source-ports", "--dports", "--destination-ports", "--ports":
			if module != "multiport" {
				return r, t + " outside -m multiport"
			}
			if !r.HasProto || r.ProtoNeg {
				return r, "multiport without -p"
			}
			switch r.Proto {
			case 6, 17, 132, 33, 136:
			default:
				return r, "multiport on a protocol without ports"
			}
			v, ok := arg()
			if !ok {
				return r, "missing ports for " + t
			}
			var prs []PortRange
			for _, s := range strings.Split(v, ",") {
				pr, ok := parsePortRange(s)
				if !ok {
					return r, "bad port " + strconv.Quote(s)
				}
				prs = append(prs, pr)
			}
			dir := PortEither
			switch t {
			case "--sports", "--source-ports":
				dir = PortSrc
			case "--dports", "--destination-ports":
				dir = PortDst
			}
			r.Ports = append(r.Ports, PortMatch{Dir: dir, Ranges: prs, Neg: wasNeg})
		case "--comment":
			if module != "comment" {
				return r, "--comment outside -m comment"
			}
			if _, ok := arg(); !ok {
				return r, "missing comment"
			}
		case "--mark":
			if module != "mark" {
				return r, "--mark outside -m mark"
			}
			v, ok := arg()
			if !ok {
				return r, "missing mark"
			}
			val, mask, hasMask, ok := parseValMask(v)
			if !ok || r.HasMark {
				return r, "bad mark match " + strconv.Quote(v)
			}
			if !hasMask {
				mask = 0xffffffff
			}
			r.HasMark, r.MarkValue, r.MarkMask, r.MarkNeg = true, val&mask, mask, wasNeg
		case "-j", "--jump":
			v, ok := arg()
			if !ok {
				return r, "missing target"
			}
			if wasNeg {
				return r, "negated target"
			}
			switch v {
			case "MARK":
			case "ACCEPT":
				r.Verdict = VerdictAccept
			case "RETURN":
				r.Verdict = VerdictReturn
			default:
				return r, "jump to unsupported target or user chain " + strconv.Quote(v)
			}
			target, seenTarget = v, true
		case "-g", "--goto":
			return r, "goto"
		default:
			return r, "option " + strconv.Quote(t)
		}
	}
	if neg {
		return r, "dangling !"
	}
	if target == "MARK" && r.Verdict != VerdictMark {
		return r, "MARK without a mark option"
	}
	return r, ""
}

// parseValMask parses V or V/M (decimal, 0x hex or 0 octal, as iptables).
func parseValMask(s string) (val, mask uint32, hasMask, ok bool) {
	vs, ms, hasMask := strings.Cut(s, "/")
	v, err := strconv.ParseUint(vs, 0, 32)
	if err != nil {
		return 0, 0, false, false
	}
	if hasMask {
		m, err := strconv.ParseUint(ms, 0, 32)
		if err != nil {
			return 0, 0, false, false
		}
		mask = uint32(m)
	}
	return uint32(v), mask, hasMask, true
}

// parsePrefix parses ADDR, ADDR/LEN or ADDR/MASKADDR of the given family.
// A non-contiguous mask is returned as an address (and the prefix carries
// the full-length address); otherwise the mask is the zero Addr.
func parsePrefix(s string, ipv6 bool) (netip.Prefix, netip.Addr, bool) {
	as, ms, hasMask := strings.Cut(s, "/")
	a, err := netip.ParseAddr(as)
	if err != nil || a.Zone() != "" || a.Is4In6() || a.Is6() != ipv6 {
		return netip.Prefix{}, netip.Addr{}, false
	}
	if !hasMask {
		return netip.PrefixFrom(a, a.BitLen()), netip.Addr{}, true
	}
	if n, err := strconv.Atoi(ms); err == nil && strings.TrimLeft(ms, "0123456789") == "" {
		p, err := a.Prefix(n)
		if err != nil {
			return netip.Prefix{}, netip.Addr{}, false
		}
		return p, netip.Addr{}, true
	}
	m, err := netip.ParseAddr(ms)
	if err != nil || m.Zone() != "" || m.Is6() != ipv6 {
		return netip.Prefix{}, netip.Addr{}, false
	}
	return netip.PrefixFrom(a, a.BitLen()), m, true
}

// parsePortRange parses N, N:M, :M or N: (iptables fills 0 and 65535).
func parsePortRange(s string) (PortRange, bool) {
	lo, hi, isRange := strings.Cut(s, ":")
	p := func(v string, def uint16) (uint16, bool) {
		if v == "" {
			return def, true
		}
		n, err := strconv.ParseUint(v, 10, 16)
		return uint16(n), err == nil
	}
	if !isRange {
		n, err := strconv.ParseUint(s, 10, 16)
		return PortRange{Lo: uint16(n), Hi: uint16(n)}, err == nil
	}
	l, ok1 := p(lo, 0)
	h, ok2 := p(hi, 65535)
	if !ok1 || !ok2 || l > h {
		return PortRange{}, false
	}
	return PortRange{Lo: l, Hi: h}, true
}
