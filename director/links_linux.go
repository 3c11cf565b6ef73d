package director

import (
	"context"
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
)

// watchLinks subscribes to rtnetlink's link and address groups and calls
// changed after each batch of updates (links created, deleted, set up or
// down, renamed; addresses added or removed), until ctx is done. The
// caller lists again on each call: an update names one link, a list
// covers every change since the last one. The 2 s poll in housekeeping
// stays as the safety net for a lost subscription.
func watchLinks(ctx context.Context, changed func()) error {
	links := make(chan netlink.LinkUpdate, 64)
	addrs := make(chan netlink.AddrUpdate, 64)
	done := make(chan struct{})
	defer func() {
		close(done) // closes the sockets: netlink's readers close the channels
		go func() {
			for range links { // so that reader is never stuck sending
			}
		}()
		go func() {
			for range addrs {
			}
		}()
	}()
	errc := make(chan error, 2)
	report := func(err error) {
		select {
		case errc <- err:
		default:
		}
	}
	if err := netlink.LinkSubscribeWithOptions(links, done, netlink.LinkSubscribeOptions{
		ErrorCallback: report, ReceiveBufferSize: 1 << 20,
	}); err != nil {
		return fmt.Errorf("subscribing to link changes: %w", err)
	}
	if err := netlink.AddrSubscribeWithOptions(addrs, done, netlink.AddrSubscribeOptions{
		ErrorCallback: report, ReceiveBufferSize: 1 << 20,
	}); err != nil {
		return fmt.Errorf("subscribing to address changes: %w", err)
	}
	changed() // what changed between the caller's last list and the subscriptions
	for {
		ok := true
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errc:
			return err
		case _, ok = <-links:
		case _, ok = <-addrs:
		}
		if !ok {
			select {
			case err := <-errc:
				return err
			default:
				return errors.New("link subscription closed")
			}
		}
		// Take what is queued, then list once.
		for more := true; more; {
			select {
			case _, ok := <-links:
				more = ok
			case _, ok := <-addrs:
				more = ok
			default:
				more = false
			}
		}
		changed()
	}
}
