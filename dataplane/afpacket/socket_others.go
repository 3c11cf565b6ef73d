//go:build !linux

package afpacket

import (
	"errors"
	"time"

	"golang.org/x/net/bpf"

	"github.com/uvs-lb/uvs/dataplane"
)

// errUnsupported is returned by every operation on systems without
// AF_PACKET.
var errUnsupported = errors.New("afpacket: AF_PACKET needs Linux")

// Socket is an AF_PACKET socket; on this system it cannot be opened.
type Socket struct{}

var (
	_ dataplane.PacketIO          = (*Socket)(nil)
	_ dataplane.PollTimeoutSetter = (*Socket)(nil)
)

// Open fails: AF_PACKET needs Linux.
func Open(Config) (*Socket, error) { return nil, errUnsupported }

// ReadBatch fails: AF_PACKET needs Linux.
func (*Socket) ReadBatch([]dataplane.Frame) (int, error) { return 0, errUnsupported }

// WriteBatch fails: AF_PACKET needs Linux.
func (*Socket) WriteBatch([]dataplane.Frame) (int, error) { return 0, errUnsupported }

// Close does nothing.
func (*Socket) Close() error { return nil }

// SetFilter fails: AF_PACKET needs Linux.
func (*Socket) SetFilter([]bpf.RawInstruction) error { return errUnsupported }

// Stats fails: AF_PACKET needs Linux.
func (*Socket) Stats() (Stats, error) { return Stats{}, errUnsupported }

// SetPollTimeout does nothing.
func (*Socket) SetPollTimeout(time.Duration) {}

// Ifindex returns 0.
func (*Socket) Ifindex() int { return 0 }
