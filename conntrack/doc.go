// Package conntrack is the director's connection table (IPVS ip_vs_conn.c):
// a sharded, bounded, seeded hash table of connections and persistence
// templates, with the IPVS TCP state machine, active/inactive accounting
// that feeds the schedulers' destination counters, and incremental expiry
// driven by an injected clock.
//
// # Keys
//
// A Key is a packed, pointer-free, comparable 5-tuple built straight from
// packet bytes. Addresses are [16]byte; IPv4 addresses are stored
// IPv4-mapped (::ffff:a.b.c.d), so IPv4 and IPv6 keys never collide and no
// family bit is needed. Ports are in host byte order.
//
// Every connection is indexed under two keys:
//
//   - inbound (DirIn): client → VIP, {Proto, caddr:cport → vaddr:vport};
//   - outbound (DirOut), the reply: {Proto, daddr:dport → caddr:cport}, or
//     for FULLNAT {Proto, daddr:dport → laddr:lport} (reference §3.6).
//
// DR, TUN and the other non-NAT methods are indexed under the same outbound
// tuple as NAT even though the director normally never sees their replies:
// a reply that does come through (asymmetric routing) is then recognised and
// clears NOOUTPUT as in the kernel. Both keys of a live connection are
// unique in the table: Create refuses a connection whose inbound or
// outbound key is already in use (ErrExists), so a FULLNAT local port
// allocator can use Lookup to test a candidate port.
//
// Persistence templates (reference §2.7) live in the same table and count
// against its capacity, indexed only under their template key (see
// NewTemplateKey); they never match connection lookups and vice versa.
//
// # Time
//
// Every "now" argument is a monotonic clock reading in nanoseconds (an
// int64, e.g. int64(time.Since(start)) for a process-wide start time). The
// table never reads the clock itself, so tests drive it by hand.
//
// # Memory
//
// All storage is allocated by New: an arena of Capacity fixed-size,
// pointer-free entries (the garbage collector never scans it) and one
// uint32 chain head per bucket, 2×Capacity buckets rounded up to a power of
// two. Destinations are referred to by a small index into a registry of
// *sched.Dest kept by the table, so that entries hold no pointers.
//
// # Concurrency and lock order
//
// All methods are safe for concurrent use by any number of goroutines.
// There are four kinds of locks, always taken in this order:
//
//  1. the destination registry's RWMutex, held only briefly and never while
//     any other lock is taken;
//  2. shard mutexes, each guarding the hash chains of its buckets; when two
//     are needed (the inbound and outbound key of one connection) they are
//     taken in ascending shard index;
//  3. one entry-stripe mutex (a fixed array of mutexes indexed by entry
//     number), guarding the mutable fields of the entries of that stripe
//     (state, flags, timeout, expiry, n_control); never two at once;
//  4. the free-list mutex, a leaf taken with nothing else held.
//
// The immutable fields of an entry (addresses, ports, protocol, method,
// destination, template link, MAC, ifindex, mark, service) are written
// before the entry is linked and only read by holders of a shard lock whose
// chain contains it, or of its stripe lock after checking that it is live.
package conntrack
