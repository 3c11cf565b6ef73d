//go:build !linux

package client

import "errors"

var errUnsupported = errors.New("not supported on this operating system")

// ExecLauncher starts uvsd; only Linux has one.
type ExecLauncher struct {
	Path string
	Args []string
	Env  []string
	Dir  string
}

// NewExecLauncher fails: uvsd runs only on Linux.
func NewExecLauncher() (*ExecLauncher, error) { return nil, errUnsupported }

// LogPath is empty.
func (l *ExecLauncher) LogPath() string { return "" }

// Lock fails.
func (l *ExecLauncher) Lock() (func(), error) { return nil, errUnsupported }

// Launch fails.
func (l *ExecLauncher) Launch() (<-chan error, error) { return nil, errUnsupported }
