package director

import "github.com/uvs-lb/uvs/dataplane"

// The workers keep the adapter's answers (dataplane's next-hop cache)
// while its generation stays.
var _ dataplane.GenHops = hopAdapter{}

// Generation is the resolver's table generation and the host facts the
// MTUs are read from: Lookup answers the same while both are unchanged.
// (A lookup made after Generation may see a newer table or Host than the
// generation names; the entry it fills is then dropped a batch early,
// never kept too long.)
func (h hopAdapter) Generation() dataplane.HopGen {
	return dataplane.HopGen{Table: h.r.Generation(), Host: h.host.Load()}
}
