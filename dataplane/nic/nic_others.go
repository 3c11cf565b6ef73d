//go:build !linux

package nic

import "errors"

var errUnsupported = errors.New("nic: not supported on this operating system")

// PinToCPU fails: only implemented on Linux.
func PinToCPU(int) error { return errUnsupported }

// NumRXQueues fails: only implemented on Linux.
func NumRXQueues(string) (int, error) { return 0, errUnsupported }

// ThreadRx fails: only implemented on Linux.
func ThreadRx(string, RxOptions) (RxState, error) { return RxState{}, errUnsupported }

// Restore fails unless the state is empty: only implemented on Linux.
func (s RxState) Restore() error {
	if s.Ifname == "" {
		return nil
	}
	return errUnsupported
}

// NAPIs fails: only implemented on Linux.
func NAPIs(int) ([]NAPI, error) { return nil, errUnsupported }

// EffectiveNice fails: only implemented on Linux.
func EffectiveNice() (int, error) { return 0, errUnsupported }
