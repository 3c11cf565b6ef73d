// Package mmsg holds the sendmmsg(2) plumbing the AF_PACKET transmit paths
// share (dataplane/afpacket's socket and dataplane/afxdp's fallback for
// interfaces without an AF_XDP socket): an array of messages, each
// addressed to an interface by its own sockaddr_ll, set up once, and the
// system call itself. x/sys/unix has no sendmmsg wrapper. Linux only.
package mmsg
