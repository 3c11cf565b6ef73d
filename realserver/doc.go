// Package realserver is the real-server side of LVS direct routing (DR)
// and tunnelling (TUN) for hosts whose kernel lacks the ipip module.
//
// For DR it puts the VIPs on a non-ARPing device (lo) and sets
// arp_ignore=1 / arp_announce=2, as the classic realserver.sh scripts do.
// For TUN it decapsulates IPIP (IP protocol 4 and 41, from raw sockets) and
// GUE (from a UDP socket) in userspace and writes the inner packets into a
// TUN device that owns the VIPs, so the local stack answers the client
// directly from the VIP; rp_filter is relaxed because the client is not
// reachable through that device. Every change is recorded in a state file
// per network namespace (keyed by the namespace inode) so that "down"
// restores the previous values exactly.
//
// The decapsulation itself (DecapIPIP, DecapGUE, Decapsulator) is pure
// byte handling: portable, allocation-free and fuzzed. Host changes live in
// the _linux.go files; Run is the uvs-rs command line.
package realserver
