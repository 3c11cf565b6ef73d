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
package connsync
