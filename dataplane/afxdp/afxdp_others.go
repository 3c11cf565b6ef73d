//go:build !linux

package afxdp

import (
	"errors"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/ownership"
)

// errUnsupported is returned by every operation on systems without AF_XDP.
var errUnsupported = errors.New("afxdp: AF_XDP needs Linux")

// ProgramConfig sizes the ownership maps.
type ProgramConfig struct{ MaxAddrs, MaxPorts, MaxFlows int }

// Program is the XDP program; on this system it cannot be loaded.
type Program struct{}

// NewProgram fails: AF_XDP needs Linux.
func NewProgram(ProgramConfig) (*Program, error) { return nil, errUnsupported }

// AddInterface fails: AF_XDP needs Linux.
func (*Program) AddInterface(int, int) error { return errUnsupported }

// Register fails: AF_XDP needs Linux.
func (*Program) Register(*Socket) error { return errUnsupported }

// Attach fails: AF_XDP needs Linux.
func (*Program) Attach(int, Mode) (Mode, error) { return 0, errUnsupported }

// Mode reports nothing attached.
func (*Program) Mode(int) (Mode, bool) { return 0, false }

// RemoveInterface does nothing.
func (*Program) RemoveInterface(int) error { return nil }

// Detach does nothing.
func (*Program) Detach() error { return nil }

// Update fails: AF_XDP needs Linux.
func (*Program) Update(ownership.Set) error { return errUnsupported }

// Close does nothing.
func (*Program) Close() error { return nil }

// Cleanup does nothing: there is no XDP on this system.
func Cleanup() ([]string, error) { return nil, nil }

// Socket is an AF_XDP socket; on this system it cannot be opened.
type Socket struct{}

// FD returns -1.
func (*Socket) FD() int { return -1 }

// Ifindex returns 0.
func (*Socket) Ifindex() int { return 0 }

// Queue returns 0.
func (*Socket) Queue() int { return 0 }

// ZeroCopy returns false.
func (*Socket) ZeroCopy() bool { return false }

// IO is the AF_XDP packet I/O; on this system it cannot be opened.
type IO struct{}

var _ dataplane.PacketIO = (*IO)(nil)

// Open fails: AF_XDP needs Linux.
func Open(Config, []Bind) (*IO, error) { return nil, errUnsupported }

// Sockets returns nil.
func (*IO) Sockets() []*Socket { return nil }

// ReadBatch fails: AF_XDP needs Linux.
func (*IO) ReadBatch([]dataplane.Frame) (int, error) { return 0, errUnsupported }

// WriteBatch fails: AF_XDP needs Linux.
func (*IO) WriteBatch([]dataplane.Frame) (int, error) { return 0, errUnsupported }

// Close does nothing.
func (*IO) Close() error { return nil }

// Stats fails: AF_XDP needs Linux.
func (*IO) Stats() (Stats, error) { return Stats{}, errUnsupported }

// NumQueues fails: AF_XDP needs Linux.
func NumQueues(string) (int, error) { return 0, errUnsupported }

// FastMap is the fast path's flow table (Linux only).
type FastMap struct{ dataplane.FastMap }

// FastMap returns nil: there is no fast path.
func (*Program) FastMap() *FastMap { return nil }

// RefreshDevices is unsupported.
func (*FastMap) RefreshDevices([]int) error { return errUnsupported }
