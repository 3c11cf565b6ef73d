package director

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/vishvananda/netlink"
)

// netlinkAddrs watches the current namespace's addresses over rtnetlink.
// It keeps the device names of its last list, to name the devices of
// the events it reads.
type netlinkAddrs struct {
	mu    sync.Mutex
	names map[int]string
}

func newAddrWatcher() addrWatcher { return &netlinkAddrs{} }

// List dumps the links and the addresses; an interrupted dump (the
// addresses changed meanwhile) is tried again.
func (w *netlinkAddrs) List() (map[heldAddr]bool, error) {
	var err error
	for range 5 {
		var m map[heldAddr]bool
		var names map[int]string
		if m, names, err = listAddrs(); err == nil {
			w.mu.Lock()
			w.names = names
			w.mu.Unlock()
			return m, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	return nil, err
}

func listAddrs() (map[heldAddr]bool, map[int]string, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, nil, fmt.Errorf("listing links: %w", err)
	}
	names := make(map[int]string, len(links))
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, nil, fmt.Errorf("listing addresses: %w", err)
	}
	m := make(map[heldAddr]bool, len(addrs))
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || names[a.LinkIndex] == "" {
			continue
		}
		m[heldAddr{addr: ip.Unmap(), dev: names[a.LinkIndex]}] = true
	}
	return m, names, nil
}

// Watch subscribes to RTM_NEWADDR/RTM_DELADDR and calls changed once per
// batch of updates, with the updates as events when the last list named
// each one's device (nil otherwise: the caller lists again anyway, which
// also covers renamed links).
func (w *netlinkAddrs) Watch(ctx context.Context, changed func([]addrEvent)) error {
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
	changed(nil)
	var evs []addrEvent
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errc:
			return err
		case u, ok := <-ch:
			if !ok {
				select {
				case err := <-errc:
					return err
				default:
					return errors.New("address subscription closed")
				}
			}
			// Take what is queued, then apply and list once.
			var known bool
			evs, known = w.event(evs[:0], u, true)
			for more := true; more; {
				select {
				case u, ok := <-ch:
					more = ok
					if ok {
						evs, known = w.event(evs, u, known)
					}
				default:
					more = false
				}
			}
			if !known {
				evs = evs[:0]
			}
			changed(evs)
		}
	}
}

// event appends u to evs as an event; known turns false when the device
// of u is not in the last list.
func (w *netlinkAddrs) event(evs []addrEvent, u netlink.AddrUpdate, known bool) ([]addrEvent, bool) {
	ip, ok := netip.AddrFromSlice(u.LinkAddress.IP)
	w.mu.Lock()
	name := w.names[u.LinkIndex]
	w.mu.Unlock()
	if !ok || name == "" {
		return evs, false
	}
	return append(evs, addrEvent{heldAddr: heldAddr{addr: ip.Unmap(), dev: name}, added: u.NewAddr}), known
}
