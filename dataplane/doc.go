// Package dataplane moves frames: it reads batches from a packet-I/O backend,
// parses them in place, looks them up in the connection table, schedules new
// flows, rewrites them with the service's forwarding method and writes them
// out again. Packet I/O sits behind the PacketIO interface so the whole
// pipeline runs against an in-memory fake without root.
//
// Layout: worker.go is the pipeline (batch, classification, connection
// lookup, scheduling); each forwarding method's transmitter, its requests,
// replies and related ICMP errors, is in xmit_nat.go, xmit_fullnat.go,
// xmit_dr.go or xmit_tun.go behind the xmitter interface of xmit.go;
// neighqueue.go holds frames whose next hop is unresolved; ctlframes.go
// builds the frames the worker answers itself (ARP, NDP, ICMP errors);
// offload.go handles checksum offload and GSO; fullnat.go allocates FULLNAT
// local ports; counters.go, io.go and fake.go are the counters, the
// PacketIO interface and its in-memory fake.
package dataplane

import "errors"

// ErrClosed is returned by a PacketIO whose Close has been called.
var ErrClosed = errors.New("dataplane: packet I/O closed")
