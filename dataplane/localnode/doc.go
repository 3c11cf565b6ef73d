// Package localnode delivers packets to the director's own network stack:
// the kernel IPVS's LOCALNODE case, a real server that is one of the
// director's own addresses (seed 004's two-node cluster, where each
// director is also a real server).
//
// The kernel's IPVS sees such a destination's route is local
// (__ip_vs_get_out_rt in net/netfilter/ipvs/ip_vs_xmit.c) and lets the
// packet continue to local input instead of transmitting it
// (ip_vs_dr_xmit, ip_vs_tunnel_xmit and ip_vs_nat_xmit return NF_ACCEPT).
// uvsd has taken the frame off the wire before the kernel saw it, so it
// hands the IP packet back through a TUN device of its own: a write(2) on
// the device is a packet received on it, which the kernel routes to the
// local address like any other.
//
// The device (IFF_TUN|IFF_NO_PI) is up, has no address (IPv6 address
// generation is off on it) and no reverse-path filtering: the packets come
// from clients routed through other interfaces (RPFilter says what the
// namespace needs for that). It is not persistent: it disappears with the
// descriptor, also when uvsd dies.
package localnode
