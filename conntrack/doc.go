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
//     for FULLNAT {Proto, daddr:dport → laddr:lport} (not in mainline Linux: the FULLNAT of Alibaba's LVS kernel patch and of DPVS, src/ipvs/ip_vs_xmit.c dp_vs_xmit_fnat).
//
// DR, TUN and the other non-NAT methods are indexed under the same outbound
// tuple as NAT even though the director normally never sees their replies:
// a reply that does come through (asymmetric routing) is then recognised and
// clears NOOUTPUT as in the kernel. Both keys of a live connection are
// unique in the table: Create refuses a connection whose inbound or
// outbound key is already in use (ErrExists), so a FULLNAT local port
// allocator can use Lookup to test a candidate port.
//
// Persistence templates (net/netfilter/ipvs/ip_vs_core.c, ip_vs_sched_persist) live in the same table and count
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
// All storage is allocated by New and holds no pointers (the garbage
// collector never scans it):
//
//   - an arena of Capacity entries of 128 bytes, two cache lines; the first
//     line holds the entry lock, the state, the timer and the inbound key,
//     so that the common packet reads and writes one line and Track copies
//     the second out;
//   - the index (index.go): one 64-byte bucket per 8 keys at full capacity
//     (2×Capacity keys at most, 10 slots per bucket, 80 % full), each
//     bucket a cache line of ten (16-bit tag, entry link) slots. A key
//     lives in its home bucket, or when that is full in the next bucket
//     with room, each bucket counting the keys that passed it, so a lookup
//     reads one bucket in the common case and never walks a chain.
//
// That is 144 bytes per connection at full capacity. Destinations are
// referred to by a small index into a registry of *sched.Dest kept by the
// table, so that entries hold no pointers.
//
// A lookup costs two dependent cache misses at large sizes (the bucket,
// then the entry). TrackBatch overlaps those of the packets of a batch.
//
// # Table pressure
//
// The table never grows (see Memory), so a flood of new flows, spoofed
// SYNs from random sources or new UDP flows, fills it; before issue #15 a
// full table refused every new flow until SYN_RECV entries timed out
// (60 s). Four mechanisms, in the order they act (pressure.go):
//
//   - Reclaim on allocation: Create finding no free entry frees one it
//     finds timed out, instead of waiting for the reaper.
//   - Eviction that prefers half-open connections: otherwise Create evicts,
//     among the 8 to 32 entries after a clock hand, the half-open TCP
//     connection (NONE, SYN_SENT, SYN_RECV or SYNACK) or UDP flow whose
//     last packet is the oldest. A legitimate handshake completes in one
//     round trip, and a spoofed one never, so evicting the oldest costs a
//     flood its entries and no legitimate client its connection unless a
//     whole table of new flows arrives within one round trip. UDP flows
//     are evictable replied or not: a UDP server answers spoofed requests
//     too, so a flood's flows look like a client's, and a datagram flow
//     has no handshake to break (its next packet is scheduled afresh).
//     Established and closing TCP connections and templates are never
//     evicted: a table full of them still refuses new flows (ErrFull).
//     The work is bounded (32 entry locks at most, each taken alone) and
//     allocates nothing.
//   - The kernel's defence levels (drop_entry, drop_packet, secure_tcp,
//     with amemthresh and am_droprate; Defense, SetDefense), driven by
//     the table's occupancy instead of free memory and re-evaluated once
//     a second by Reap. drop_entry removes half-open connections idle for
//     DropEntryIdle as the reaper passes, which drains the table after a
//     flood; drop_packet refuses a share of new flows (ErrDropped); the
//     secure_tcp state table keeps a connection half-open until the real
//     server answers the client's ACK. All are off by default, as in the
//     kernel: eviction alone keeps legitimate clients served.
//   - Counters per reason (Stats): reclaimed, evicted, full, drop_entry,
//     drop_packet.
//
// A SYN proxy (DPVS's syncookies, answering the handshake at the
// director) is not built: it would keep spoofed SYNs out of the table
// altogether, but it costs a sequence-number translation on every packet
// of every connection and a TCP stack's worth of option handling, and
// only helps TCP; eviction handles TCP and UDP floods within the table's
// bounded memory with no per-packet cost on established flows.
//
// # Concurrency and lock order
//
// All methods are safe for concurrent use by any number of goroutines.
// Lookups (Track, TrackBatch, Lookup, Contains) read the index without a
// lock and take one lock, that of the entry they find (plus the template's
// on the packet that makes a controlled connection ESTABLISHED). The
// index's words are read and written atomically and keys never move, so
// a lookup finds every key present throughout it; a stale candidate is
// rejected by the full key comparison made under the entry lock.
//
// There are four kinds of locks, always taken in this order:
//
//  1. the destination registry's RWMutex, held only briefly and never while
//     any other lock is taken;
//  2. shard mutexes, taken only by writers of the index (Create, expiry,
//     templates), by hash of the key added or removed, so that checking
//     that a key is absent and adding it are atomic; when two are needed
//     (the inbound and outbound key of one connection) they are taken in
//     ascending shard index;
//  3. entry locks, a spin lock in each entry's first word (which also holds
//     the entry's generation), guarding its mutable fields (state, flags,
//     timeout, expiry, n_control); at most two at once: a connection's,
//     then its template's;
//  4. the free-list mutex, a leaf taken with nothing else held.
//
// Create reclaiming an entry (pressure.go) examines entries one lock at a
// time and then expires its victim as the reaper does, holding nothing
// else. The pressure counters and the clock hand are atomics written only
// on a full table or by an active defence, never on an ordinary packet.
//
// The immutable fields of an entry (addresses, ports, protocol, method,
// destination, template link, MAC, ifindex, mark, service) are written
// under its lock before the entry is live and indexed, and read under its
// lock after checking that it is live.
package conntrack
