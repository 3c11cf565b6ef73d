//go:build !linux

package director

import (
	"context"
	"errors"
)

var errNoRtnetlink = errors.New("following VRRP addresses needs Linux (rtnetlink)")

type noAddrs struct{}

func newAddrWatcher() addrWatcher { return noAddrs{} }

func (noAddrs) List() (map[heldAddr]bool, error) { return nil, errNoRtnetlink }

func (noAddrs) Watch(ctx context.Context, changed func([]addrEvent)) error { return errNoRtnetlink }
