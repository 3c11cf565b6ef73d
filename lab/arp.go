package lab

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
)

const ethPARP = 0x0806

// arpReplyFrom returns the sender of an ARP reply for target.
func arpReplyFrom(f []byte, target netip.Addr) (net.HardwareAddr, bool) {
	if len(f) < 42 || binary.BigEndian.Uint16(f[12:14]) != ethPARP {
		return nil, false
	}
	a := f[14:]
	if binary.BigEndian.Uint16(a[0:2]) != 1 || binary.BigEndian.Uint16(a[2:4]) != 0x0800 || a[4] != 6 || a[5] != 4 ||
		binary.BigEndian.Uint16(a[6:8]) != 2 {
		return nil, false
	}
	t4 := target.As4()
	if !bytes.Equal(a[14:18], t4[:]) {
		return nil, false
	}
	return net.HardwareAddr(bytes.Clone(a[8:14])), true
}

func containsMAC(l []net.HardwareAddr, m net.HardwareAddr) bool {
	for _, x := range l {
		if bytes.Equal(x, m) {
			return true
		}
	}
	return false
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
