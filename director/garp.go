package director

import (
	"context"
	"encoding/binary"
	"net/netip"
	"time"

	"go.uber.org/zap"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/header"
)

// keepalived's defaults for announcing a VIP on becoming MASTER
// (vrrp_garp_master_repeat, vrrp_garp_master_delay; reference §3.1).
const (
	garpRepeat = 5
	garpDelay  = 5 * time.Second
)

// garpFrame returns a gratuitous ARP for vip (IPv4) or an unsolicited
// neighbour advertisement (IPv6) from mac: what keepalived sends on
// becoming MASTER, so neighbours move the VIP to this MAC.
func garpFrame(vip netip.Addr, mac [6]byte) []byte {
	if vip.Is4() || vip.Is4In6() {
		return gratuitousARP(vip.Unmap(), mac)
	}
	return unsolicitedNA(vip, mac)
}

// gratuitousARP: an ARP request (RFC 826) broadcast with the VIP as both
// sender and target protocol address and a zero target hardware address
// (RFC 5227 §3's announcement).
func gratuitousARP(vip netip.Addr, mac [6]byte) []byte {
	f := make([]byte, 14+28)
	copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(f[6:12], mac[:])
	binary.BigEndian.PutUint16(f[12:], 0x0806)
	a := f[14:]
	binary.BigEndian.PutUint16(a[0:], 1)      // hardware: Ethernet
	binary.BigEndian.PutUint16(a[2:], 0x0800) // protocol: IPv4
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:], 1) // request
	ip := vip.As4()
	copy(a[8:14], mac[:])
	copy(a[14:18], ip[:])
	copy(a[24:28], ip[:])
	return f
}

// unsolicitedNA: a neighbour advertisement (RFC 4861 §4.4, §7.2.6) to
// the all-nodes group from the VIP, Override set, Solicited clear, with
// the target link-layer address option; hop limit 255.
func unsolicitedNA(vip netip.Addr, mac [6]byte) []byte {
	const icmpLen = 24 + 8
	f := make([]byte, 14+40+icmpLen)
	copy(f[0:6], []byte{0x33, 0x33, 0, 0, 0, 1})
	copy(f[6:12], mac[:])
	binary.BigEndian.PutUint16(f[12:], 0x86dd)
	ip := f[14:54]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], icmpLen)
	ip[6] = 58 // ICMPv6
	ip[7] = 255
	src := vip.As16()
	dst := netip.IPv6LinkLocalAllNodes().As16()
	copy(ip[8:24], src[:])
	copy(ip[24:40], dst[:])
	m := f[54:]
	m[0] = 136            // neighbour advertisement
	m[4] = 0x20           // Override
	copy(m[8:24], src[:]) // target
	m[24], m[25] = 2, 1   // target link-layer address, 8 bytes
	copy(m[26:32], mac[:])
	sum := header.PseudoHeaderChecksum(58, src[:], dst[:], icmpLen)
	binary.BigEndian.PutUint16(m[2:], ^header.Checksum(m, sum))
	return f
}

// frameSender sends whole Ethernet frames out of an interface.
type frameSender interface {
	Send(ifindex int, frame []byte) error
	Close() error
}

// announce sends the GARPs of vips on every served interface: garpRepeat
// at once and garpRepeat again after garpDelay (unless ctx ends first).
// It returns at once; the second burst runs in the background.
func (d *Director) announce(ctx context.Context, vips []netip.Addr) {
	if len(vips) == 0 {
		return
	}
	ifs := make([]dataplane.Iface, 0)
	for _, ifc := range d.host.Load().Ifaces {
		ifs = append(ifs, ifc)
	}
	burst := func() {
		s, err := d.newSender()
		if err != nil {
			d.log.Warn("gratuitous ARP: opening a packet socket", zap.Error(err))
			return
		}
		defer s.Close()
		for _, ifc := range ifs {
			for _, vip := range vips {
				f := garpFrame(vip, ifc.MAC)
				for range garpRepeat {
					if err := s.Send(ifc.Index, f); err != nil {
						d.log.Warn("gratuitous ARP", zap.Stringer("vip", vip), zap.String("interface", ifc.Name), zap.Error(err))
						break
					}
				}
			}
		}
	}
	burst()
	for _, vip := range vips {
		d.log.Info("VRRP: announcing " + vip.String() + " (gratuitous ARP / unsolicited NA) on the served interfaces")
	}
	go func() {
		t := time.NewTimer(d.garpDelay)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
			burst()
		}
	}()
}
