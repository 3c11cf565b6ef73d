//go:build !linux

package healthcheck

import "errors"

// errNoMark is returned where SO_MARK does not exist.
var errNoMark = errors.New("healthcheck: fwmark (SO_MARK) needs Linux")

// setMark fails: only Linux has SO_MARK.
func setMark(uintptr, uint32) error { return errNoMark }
