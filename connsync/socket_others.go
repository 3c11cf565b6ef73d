//go:build !linux

package connsync

import (
	"errors"
	"fmt"
	"io"
	"net"
)

func openMaster(cfg Config, ifi *net.Interface) (io.WriteCloser, error) {
	return nil, fmt.Errorf("sync daemon on %s: %w (Linux only)", ifi.Name, errors.ErrUnsupported)
}

func openBackup(cfg Config, ifi *net.Interface) (datagramConn, error) {
	return nil, fmt.Errorf("sync daemon on %s: %w (Linux only)", ifi.Name, errors.ErrUnsupported)
}
