package sched

import "slices"

// hashOrder is the order mh and sh build their tables in.
//
// The kernel builds both from the service's destination list
// (ip_vs_mh_populate, ip_vs_sh_reassign walk svc->destinations), which
// holds the destinations newest first (__ip_vs_update_dest adds with
// list_add_rcu). sh gives each destination its weight's run of buckets in
// that order; mh lets the destinations claim slots in turns in that
// order, so where two permutations want the same slot the earlier one in
// the list wins. Two directors whose real servers were added in different
// orders therefore build different tables and may send the same flow to
// different real servers — harmless with one director, fatal when ECMP
// moves a flow between directors.
//
// With Options.SortHashDests the tables are built from the destinations
// sorted by address then port: equal on every director with the same
// destinations and weights. Where the list is already in that order the
// tables are the kernel's.
func hashOrder(o *Options, dests []*Dest) []*Dest {
	if !o.SortHashDests || slices.IsSortedFunc(dests, cmpDest) {
		return dests
	}
	return slices.SortedFunc(slices.Values(dests), cmpDest)
}

func cmpDest(a, b *Dest) int {
	if c := a.addr.Compare(b.addr); c != 0 {
		return c
	}
	return int(a.port) - int(b.port)
}
