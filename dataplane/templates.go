package dataplane

import (
	"net/netip"

	"github.com/uvs-lb/uvs/conntrack"
)

func netipAP(e conntrack.Endpoint) netip.AddrPort {
	return netip.AddrPortFrom(addrFrom16(e.Addr), e.Port)
}
