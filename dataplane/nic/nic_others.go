//go:build !linux

package nic

import "errors"

var errUnsupported = errors.New("nic: not supported on this operating system")

// PinToCPU fails: only implemented on Linux.
func PinToCPU(int) error { return errUnsupported }

// NumRXQueues fails: only implemented on Linux.
func NumRXQueues(string) (int, error) { return 0, errUnsupported }
