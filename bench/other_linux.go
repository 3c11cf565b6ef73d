package bench

import (
	"fmt"
	"net"
)

// ifaceMAC returns an interface's MAC address inside namespace ns.
func ifaceMAC(ns, iface string) ([6]byte, error) {
	var m [6]byte
	get := func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		if len(ifi.HardwareAddr) != 6 {
			return fmt.Errorf("%s has no Ethernet address", iface)
		}
		copy(m[:], ifi.HardwareAddr)
		return nil
	}
	var err error
	if ns != "" {
		err = inNetNS(ns, get)
	} else {
		err = get()
	}
	return m, err
}
