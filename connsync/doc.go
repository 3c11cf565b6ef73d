// Package connsync is uvs's IPVS connection synchronisation daemon: the
// master side collects the connections the data plane reports (per-worker
// rings, the kernel's sync_threshold rules), packs them into messages of
// the kernel's format (connsync/wire) and multicasts them; the backup side
// receives messages, checks them and creates or refreshes the connections
// in its own table, so that established flows survive a failover.
//
// The data plane reaches the daemon only through a Tap: it asks the
// Policy whether a connection is due after a packet and pushes an entry
// into its worker's Ring; the master drains the rings.
//
//	tap := connsync.NewTap()              // shared by the workers and the daemon
//	ring := tap.NewRing()                 // one per worker
//	if tap.Sending() && tap.Policy().Needed(proto, state, old, pkts) {
//		ring.Push(&entry)             // never blocks; counts a drop when full
//	}
//
//	m, err := connsync.NewMaster(connsync.Config{State: "master", Interface: "eth1", SyncID: 51}, tap, log)
//	go m.Run(ctx)                         // tap.Sending() is true while it runs
//
//	b, err := connsync.NewBackup(connsync.Config{State: "backup", Interface: "eth1", SyncID: 51}, applier, log)
//	go b.Run(ctx)                         // applier.Apply(entry, version) per accepted entry
//
// # Timing and sockets (ip_vs_sync.c)
//
// The master drains the rings every SendDelay (20 ms), sends each message
// as soon as it is full (MaxLen bytes: 40 IPv4 entries in the default
// 1472) and a partly filled one when it is FlushTime (2 s) old; what is
// queued when it stops is discarded. Its socket multicasts out of the
// interface (IP_MULTICAST_IF), without loopback, with the configured TTL
// and IP_PMTUDISC_DONT, bound to the interface's primary IPv4 address and
// connected to group:port. The backup binds group:port with SO_REUSEADDR
// and SO_BINDTODEVICE, joins the group on the interface, reads into a
// MaxLen buffer (a longer datagram is truncated and fails the size
// check), ignores messages of another syncid unless its own is 0, and
// hands each accepted entry to its Applier.
//
// # Differences from the kernel
//
//   - One sync thread (sync_ports 1); sync_refresh_period, sync_retries,
//     sync_qlen_max and sync_sock_size are not implemented (uvs behaves as
//     the kernel with their defaults, except that the queue is the rings:
//     a full ring drops the entry and counts it, where the kernel drops
//     whole buffers beyond sync_qlen_max).
//   - A partly filled message leaves 2.00–2.02 s after its first entry;
//     the kernel's idle thread polls every second, so 2–3 s.
//   - A message holds at most 255 entries (nr_conns is one byte; the
//     kernel does not check, which matters only for maxlen above ~9 KB).
//   - FULLNAT connections carry their local address and port in the uvs
//     option described in connsync/wire; version 0 messages cannot carry
//     them and skip such entries.
//   - Persistence-engine data (SIP) is not supported: a backup drops such
//     entries, as a kernel without the engine loaded does.
package connsync
