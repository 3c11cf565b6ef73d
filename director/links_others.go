//go:build !linux

package director

import (
	"context"
	"errors"
)

// watchLinks fails: link notifications need rtnetlink (the 2 s poll still
// follows interfaces).
func watchLinks(ctx context.Context, changed func()) error {
	return errors.New("following interfaces needs Linux (rtnetlink)")
}
