package keepalived

import (
	"net/netip"
	"time"
)

// VRRPInstance is what uvsd reads of a vrrp_instance block: enough to
// follow keepalived's VRRP (which addresses it moves, on which interface)
// and to tie the sync daemon to it. keepalived itself runs the protocol.
type VRRPInstance struct {
	Pos  Pos
	Name string
	// Interface is `interface`; VRID `virtual_router_id`; Priority
	// `priority` (default 100); State the configured initial `state`
	// ("MASTER" or "BACKUP", "" when absent); AdvertInt `advert_int`
	// (default 1 s); NoPreempt `nopreempt`.
	Interface string
	VRID      int
	Priority  int
	State     string
	AdvertInt time.Duration
	NoPreempt bool
	// VIPs are virtual_ipaddress and virtual_ipaddress_excluded.
	VIPs []VRRPAddress
}

// VRRPAddress is one virtual_ipaddress line: the address with its prefix
// (/32 or /128 when none is given) and `dev` ("" = the instance's
// interface).
type VRRPAddress struct {
	Prefix netip.Prefix
	Dev    string
}

// SyncDaemon is global_defs' `lvs_sync_daemon IFNAME [[inst] VI_NAME] [id
// N] [maxlen L] [port P] [ttl T] [group ADDR]` (or the old positional form
// `IFNAME VI_NAME [SYNCID]`): the IPVS sync daemon keepalived starts as
// backup and switches with the named VRRP instance's role.
type SyncDaemon struct {
	Pos       Pos
	Interface string
	Instance  string
	// SyncID is `id`; -1 when absent (keepalived then uses the
	// instance's virtual_router_id).
	SyncID int
	// MaxLen, Port and TTL are 0 when absent; Group is invalid when
	// absent.
	MaxLen int
	Port   int
	TTL    int
	Group  netip.Addr
}
