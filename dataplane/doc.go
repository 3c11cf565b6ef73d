// Package dataplane moves frames: it reads batches from a packet-I/O backend,
// parses them in place, looks them up in the connection table, schedules new
// flows, rewrites them with the service's forwarding method and writes them
// out again. Packet I/O sits behind the PacketIO interface so the whole
// pipeline runs against an in-memory fake without root.
package dataplane

import "errors"

// ErrClosed is returned by a PacketIO whose Close has been called.
var ErrClosed = errors.New("dataplane: packet I/O closed")
