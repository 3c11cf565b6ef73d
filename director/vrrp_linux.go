package director

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// netlinkAddrs watches the current namespace's addresses over rtnetlink.
type netlinkAddrs struct{}

func newAddrWatcher() addrWatcher { return netlinkAddrs{} }

// List dumps the links and the addresses; an interrupted dump (the
// addresses changed meanwhile) is tried again.
func (netlinkAddrs) List() (map[heldAddr]bool, error) {
	var err error
	for range 5 {
		var m map[heldAddr]bool
		if m, err = listAddrs(); err == nil {
			return m, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	return nil, err
}

func listAddrs() (map[heldAddr]bool, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	names := make(map[int]string, len(links))
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("listing addresses: %w", err)
	}
	m := make(map[heldAddr]bool, len(addrs))
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || names[a.LinkIndex] == "" {
			continue
		}
		m[heldAddr{addr: ip.Unmap(), dev: names[a.LinkIndex]}] = true
	}
	return m, nil
}

// Watch subscribes to RTM_NEWADDR/RTM_DELADDR and calls changed once per
// batch of updates (the caller lists again: an update names the link by
// index, and a full list also covers renamed links).
func (netlinkAddrs) Watch(ctx context.Context, changed func()) error {
	ch := make(chan netlink.AddrUpdate, 64)
	done := make(chan struct{})
	defer func() {
		close(done) // closes the socket: netlink's reader closes ch
		go func() {
			for range ch { // so that reader is never stuck sending
			}
		}()
	}()
	errc := make(chan error, 1)
	if err := netlink.AddrSubscribeWithOptions(ch, done, netlink.AddrSubscribeOptions{
		ErrorCallback: func(err error) {
			select {
			case errc <- err:
			default:
			}
		},
		ReceiveBufferSize: 1 << 20,
	}); err != nil {
		return fmt.Errorf("subscribing to address changes: %w", err)
	}
	// Changes between the caller's last list and the subscription.
	changed()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errc:
			return err
		case _, ok := <-ch:
			if !ok {
				select {
				case err := <-errc:
					return err
				default:
					return errors.New("address subscription closed")
				}
			}
			// Take what is queued, then list once.
			for more := true; more; {
				select {
				case _, ok := <-ch:
					more = ok
				default:
					more = false
				}
			}
			changed()
		}
	}
}
