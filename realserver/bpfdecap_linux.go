package realserver

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/uvs-lb/uvs/realserver/bpfdecap"
)

// bpfPath is a running decapsulator's in-kernel path: the tc BPF program
// that decapsulates IPv4-in-IPv4 to a VIP on the interfaces it could attach
// to (bpfdecap). Everything it leaves reaches the raw sockets as before.
type bpfPath struct {
	d      *bpfdecap.Decap
	ifaces []string
}

// startBPF loads the program and attaches it to the tc ingress of every
// Ethernet interface that is up, except the TUN device, relaxing their
// rp_filter (recorded in saved) as the TUN device's: the inner packets
// arrive on them from clients they may not route back through. It returns
// nil, and says why on log, when nothing could be attached: user-space
// decapsulation then does all the work.
func startBPF(log func(string, ...any), sys Sysctls, o *Options, tun string, saved map[string]string) *bpfPath {
	if o.NoBPF {
		return nil
	}
	d, err := bpfdecap.New()
	if err != nil {
		log("in-kernel decapsulation unavailable, decapsulating in user space only: %v", err)
		return nil
	}
	x := &bpfPath{d: d}
	if err := x.refresh(o.VIPs); err != nil {
		log("in-kernel decapsulation unavailable, decapsulating in user space only: %v", err)
		_ = d.Close()
		return nil
	}
	links, err := netlink.LinkList()
	if err != nil {
		log("in-kernel decapsulation unavailable, decapsulating in user space only: listing interfaces: %v", err)
		_ = d.Close()
		return nil
	}
	for _, l := range links {
		a := l.Attrs()
		if a.Flags&net.FlagUp == 0 || a.Flags&net.FlagLoopback != 0 || a.EncapType != "ether" || a.Name == tun {
			continue
		}
		if err := d.Attach(a.Index); err != nil {
			log("no in-kernel decapsulation on %s (its IPIP packets are decapsulated in user space): %v", a.Name, err)
			continue
		}
		if !o.NoSysctl {
			if err := ApplySysctls(sys, []Setting{{ifaceRP(a.Name), "0"}}, saved); err != nil {
				log("%s: %v", a.Name, err)
			}
		}
		x.ifaces = append(x.ifaces, a.Name)
	}
	if len(x.ifaces) == 0 {
		_ = d.Close()
		return nil
	}
	log("IPv4-in-IPv4 decapsulated in the kernel (tc BPF) on %s", strings.Join(x.ifaces, ", "))
	return x
}

// refresh loads the host's current IPv4 addresses and the VIPs into the
// program's map.
func (x *bpfPath) refresh(vips []netip.Addr) error {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("listing addresses: %w", err)
	}
	local := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			local = append(local, ip.Unmap())
		}
	}
	return x.d.SetAddrs(local, vips)
}

// count copies the program's packet counter into c.
func (x *bpfPath) count(c *Counters) {
	if x.d == nil {
		return
	}
	if s, err := x.d.Stats(); err == nil {
		c.BPFDecapsulated.Store(s.Packets)
	}
}

// close detaches the program; closing twice is a no-op.
func (x *bpfPath) close() {
	if x.d != nil {
		_ = x.d.Close()
		x.d = nil
	}
}
