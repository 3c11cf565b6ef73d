//go:build !linux

package director

import "errors"

func openSender() (frameSender, error) {
	return nil, errors.New("gratuitous ARP needs Linux (AF_PACKET)")
}
