package fwmark

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Native nftables rules.
//
// Netfilter runs every base chain hooked at prerouting (iptables' mangle
// PREROUTING is one of them, at priority -150) in priority order, each
// starting where the previous one left the mark: accept or the end of a
// chain moves on to the next base chain, drop ends everything. ReadNft
// (Linux) translates the filter-type base chains hooked at prerouting in
// the ip, ip6 and inet families into NftChains of Rules, and Merge
// concatenates them with the iptables rules into one list per family,
// VerdictGoto jumping to the start of the next chain, for Compile.
//
// iptables-nft stores "iptables -t mangle" rules as nft rules: table
// "mangle" of family ip (ip6 for ip6tables), base chain "PREROUTING", with
// xt compat expressions for matches it cannot express natively. Those rules
// are read once, by the iptables-save reader: when iptables-save says it
// uses the nf_tables backend ("(nf_tables)" in its header, Tables.IPv4NFT
// and IPv6NFT), Merge puts the iptables rules in the place of that chain
// (NftChain.Iptables) and drops the chain's native translation. With
// iptables-legacy, a chain of that name is an ordinary nft chain and is
// read natively, and the legacy rules are placed at priority -150 before
// the nft chains of equal priority.
//
// Chains of equal priority run in the order their hooks were registered;
// ReadNft approximates it with the kernel's listing order (tables and
// chains in creation order).

// NftChain is one base chain hooked at prerouting, translated for one
// family (an inet chain gives one NftChain per family).
type NftChain struct {
	Name     string // "inet t pre"
	Priority int32
	// Iptables marks table "mangle" chain "PREROUTING" of family ip or
	// ip6, which iptables-nft owns when iptables-save uses nf_tables.
	Iptables bool
	// Rules in evaluation order. The VerdictGoto rules' Next indexes
	// Rules; len(Rules) is the end of the chain.
	Rules []Rule
	// Marks has one Rule per MARK statement (and per set element of its
	// conditions): the statement's mark with the conditions on its path,
	// including those of the rules that jumped to its chain. The daemon
	// takes the VIPs, protocols and ports of its packet filter from them.
	Marks []Rule
	// Unsupported are the rules of this chain (and the chains it jumps
	// to) that were skipped.
	Unsupported []Unsupported
}

// NftRules is the translated nftables prerouting ruleset of a namespace.
type NftRules struct {
	V4, V6 []NftChain // in hook order
}

// Key returns a text that changes when the translated rules do: the
// daemon polls ReadNft and recompiles only when the Key differs.
func (n *NftRules) Key() string {
	if n == nil {
		return ""
	}
	var b strings.Builder
	for i, fam := range [][]NftChain{n.V4, n.V6} {
		for _, c := range fam {
			fmt.Fprintf(&b, "%d %s %d %v\n", i, c.Name, c.Priority, c.Iptables)
			for _, r := range c.Rules {
				fmt.Fprintf(&b, " %+v\n", r)
			}
			for _, u := range c.Unsupported {
				fmt.Fprintf(&b, " ! %s\n", u)
			}
		}
	}
	return b.String()
}

// ErrNftUnsupported is returned by ReadNft where nftables does not exist.
var ErrNftUnsupported = errors.New("nftables: not supported on this system")

// iptablesPriority is NF_IP_PRI_MANGLE, where iptables' mangle table hooks.
const iptablesPriority = -150

// Merged is what Merge returns for one compile.
type Merged struct {
	V4, V6         []Rule        // for Compile
	Marks4, Marks6 []Rule        // MARK rules and summaries: the daemon's targets
	Unsupported    []Unsupported // skipped nft rules, each once
}

// Merge concatenates the iptables mangle PREROUTING rules of each family
// (ParseFamily's) and the nft chains n into one rule list per family in
// hook order. iptables ACCEPT and RETURN end the iptables block only;
// the nft chains' gotos are rebased. See the package notes above for
// how iptables-nft's own chain is told apart.
func Merge(ipt4, ipt6 []Rule, t Tables, n *NftRules) Merged {
	var m Merged
	var c4, c6 []NftChain
	if n != nil {
		c4, c6 = n.V4, n.V6
	}
	seen := map[string]bool{}
	m.V4, m.Marks4 = mergeFamily(ipt4, t.IPv4NFT, c4, &m.Unsupported, seen)
	m.V6, m.Marks6 = mergeFamily(ipt6, t.IPv6NFT, c6, &m.Unsupported, seen)
	return m
}

func mergeFamily(ipt []Rule, iptNFT bool, chains []NftChain, unsup *[]Unsupported, seen map[string]bool) ([]Rule, []Rule) {
	block := NftChain{Name: "iptables mangle PREROUTING", Priority: iptablesPriority, Iptables: true}
	for _, r := range ipt {
		if r.Verdict == VerdictAccept || r.Verdict == VerdictReturn {
			r.Verdict, r.Next = VerdictGoto, len(ipt)
		}
		block.Rules = append(block.Rules, r)
		if r.Verdict == VerdictMark {
			block.Marks = append(block.Marks, r)
		}
	}
	var order []NftChain
	placed := false
	for _, c := range chains {
		if c.Iptables && iptNFT {
			if !placed {
				order = append(order, block)
				placed = true
			}
			continue
		}
		if !placed && c.Priority >= iptablesPriority {
			order = append(order, block)
			placed = true
		}
		order = append(order, c)
	}
	if !placed {
		order = append(order, block)
	}
	sort.SliceStable(order, func(i, j int) bool { return order[i].Priority < order[j].Priority })
	var rules, marks []Rule
	for _, c := range order {
		base := len(rules)
		for _, r := range c.Rules {
			if r.Verdict == VerdictGoto {
				r.Next += base
			}
			rules = append(rules, r)
		}
		marks = append(marks, c.Marks...)
		for _, u := range c.Unsupported {
			k := u.String()
			if !seen[k] {
				seen[k] = true
				*unsup = append(*unsup, u)
			}
		}
	}
	return rules, marks
}
