package dataplane

import (
	"sync/atomic"

	"github.com/uvs-lb/uvs/header"
)

// Counter indexes a worker's drop and event counters.
type Counter uint8

// Counters. Drops are typed reasons; the parse reasons are counted apart.
const (
	CntRx Counter = iota
	CntTx
	CntTxErr
	CntNotOurs     // not for a service or connection: left to the kernel
	CntNewConn     // connection scheduled
	CntNoDest      // scheduler found no destination (ICMP unreachable sent)
	CntNotSyn      // TCP without SYN and without connection
	CntNoConnSpace // connection table full
	CntNeighMiss   // reply towards an interface that is gone
	CntTTL         // TTL exceeded (ICMP sent)
	CntTooBig      // larger than the path MTU (ICMP sent)
	CntRewriteFail // rewrite refused the packet
	CntDestGone    // connection whose destination was removed
	CntARPReply    // ARP/NDP answered for a VIP
	CntICMPRelated // ICMP error translated for a connection
	CntMalformed   // parse failure on a frame addressed to a VIP
	CntUnsupported // forwarding method not implemented for this packet
	CntFullNATNoPort
	CntGSO        // GSO super-frame forwarded as one frame
	CntGSOSegment // segment cut from a super-frame in software (TUN)
	CntGSOBad     // super-frame whose offload metadata does not match its headers
	// Neighbour queue: a frame whose next hop is not resolved yet waits in
	// the worker's queue (as on the kernel's arp_queue) and is sent once
	// it resolves; it is dropped when the queue is full or after
	// Env.NeighTimeout.
	CntNeighQueued    // frame queued for an unresolved next hop
	CntNeighQueueFull // dropped: neighbour queue full
	CntNeighTimeout   // dropped: next hop not resolved in time
	// VRRP and connection sync.
	CntStandby    // left to the kernel: to a VIP this node does not serve now (Host.Standby)
	CntBackupOnly // left to the kernel: a request while Host.BackupOnly
	CntSyncSent   // connection or template queued for the sync daemon
	// Issue #15: faults and hostile input.
	CntICMPRateLimited // ICMP error not sent: over the rate limit (icmp_ratelimit)
	CntSloppy          // connection created from a mid-flow packet (sloppy_tcp/sloppy_sctp)
	CntLocalDelivered  // request delivered to the director's own stack (LOCALNODE)
	CntTableEvicted    // a half-open connection evicted to make room (table pressure)
	CntDefenseDrop     // new flow dropped by the table-pressure defence (drop_entry/drop_packet)
	// Issue #16: every packet IPVS would carry.
	CntFragIn       // IP fragment received for the director (queued for reassembly)
	CntReassembled  // datagram reassembled from fragments
	CntFragTimeout  // fragments dropped: datagram not complete in time (ipfrag_time)
	CntFragOverflow // fragments dropped: reassembly memory or queue limit (ipfrag_high_thresh)
	CntFragBad      // fragments dropped: overlapping, oversized or inconsistent
	CntFragmented   // packet fragmented in software for the egress MTU
	CntFragOut      // fragments sent
	CntPMTULearned  // path MTU learnt from an ICMP error about the director's own packet (TUN)
	CntVLAN         // frame received with an 802.1Q tag
	CntOnePacket    // datagram scheduled without a connection (one-packet scheduling, -o)
	CntSCTPBadCsum  // SCTP packet whose CRC32c does not verify
	CntFamilyXlate  // packet translated between IPv4 and IPv6 (FULLNAT across families)
	CntHandedBack   // not uvsd's, kept from the kernel by the hooks: handed to it through Env.LocalNode (handback.go)
	CntHandBackDrop // not uvsd's, kept from the kernel by the hooks, and no Env.LocalNode to hand it to: dropped
	CntIPBadCsum    // IPv4 packet whose header checksum does not verify: dropped, as ip_rcv does (InCsumErrors)
	NumCounters
)

var counterNames = [NumCounters]string{
	"rx", "tx", "tx-error", "not-ours", "new-conn", "no-destination", "tcp-not-syn",
	"conn-table-full", "neighbour-miss", "ttl-exceeded", "too-big", "rewrite-failed",
	"destination-gone", "arp-reply", "icmp-related", "malformed", "unsupported", "fullnat-no-port",
	"gso", "gso-segment", "gso-bad", "neighbour-queued", "neighbour-queue-full", "neighbour-timeout",
	"standby", "backup-only", "sync-sent",
	"icmp-rate-limited", "sloppy", "local-delivered", "table-evicted", "defense-drop",
	"frag-in", "reassembled", "frag-timeout", "frag-overflow", "frag-bad", "fragmented", "frag-out",
	"pmtu-learned", "vlan", "one-packet", "sctp-bad-csum", "family-translated",
	"handed-back", "hand-back-dropped", "ip-bad-csum",
}

// String returns the counter's metric name.
func (c Counter) String() string {
	if c < NumCounters {
		return counterNames[c]
	}
	return "counter?"
}

// Counters are one worker's counters; read them with Load while it runs.
type Counters struct {
	c     [NumCounters]atomic.Uint64
	parse [header.NumReasons]atomic.Uint64
}

func (c *Counters) inc(k Counter) { c.c[k].Add(1) }

// Load returns a counter's value.
func (c *Counters) Load(k Counter) uint64 { return c.c[k].Load() }

// LoadMalformed returns how many frames addressed to the director failed
// parsing with reason r (their sum is the CntMalformed counter).
func (c *Counters) LoadMalformed(r header.Reason) uint64 { return c.parse[r].Load() }
