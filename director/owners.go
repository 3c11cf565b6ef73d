package director

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/dataplane/afpacket"
	"github.com/uvs-lb/uvs/dataplane/khook"
	"github.com/uvs-lb/uvs/ownership"
)

// owners returns what keeps uvsd's frames for it: the kernel hooks, the
// AF_PACKET sockets' filters and the XDP program, those that are open.
func (d *Director) owners() []ownership.Consumer {
	cs := []ownership.Consumer{d.hooks}
	if len(d.sockets) > 0 {
		cs = append(cs, afpacket.Group(d.sockets))
	}
	if d.xdp != nil {
		cs = append(cs, d.xdp)
	}
	return cs
}

// ownershipInput gathers what ownership depends on: the services, the
// firewall-mark targets, the director's addresses and the FULLNAT route
// sources sync resolved last.
func (d *Director) ownershipInput() ownership.Input {
	host := d.host.Load()
	in := ownership.Input{RouteSources: d.routeSources}
	// Under backup_only uvsd owns no service at all (the kernel's input
	// hook returns at once). A standby VIP's services stay owned, so that
	// nothing changes in the hooks and filters when keepalived moves the
	// VIP here: the workers hand their frames to this node's own stack
	// through the local-delivery device (a backup that is also a real
	// server gets the master's forwarded packets) until the VIP is held,
	// then serve them at once. Without that device (standbyOwned false)
	// they are left out entirely, so that the kernel gets them.
	standby := host.Standby
	if d.standbyOwned() {
		standby = nil
	}
	for _, mt := range d.markInput() {
		if !host.BackupOnly && !standby[mt.Addr.As16()] {
			in.Marks = append(in.Marks, mt)
		}
	}
	for _, svc := range d.State.Services() {
		if host.BackupOnly || (!svc.Config.Key.IsFWMark() && standby[svc.Config.Key.Addr.As16()]) {
			continue
		}
		s := ownership.Service{Config: svc.Config}
		for _, dst := range svc.Dests {
			s.Dests = append(s.Dests, dst.Config())
		}
		in.Services = append(in.Services, s)
	}
	for a := range host.Local {
		in.Host = append(in.Host, netip.AddrFrom16(a).Unmap())
	}
	in.LocalPortMin, in.LocalPortMax = d.cfg.LocalPortMin, d.cfg.LocalPortMax
	if in.LocalPortMin == 0 || in.LocalPortMax < in.LocalPortMin {
		in.LocalPortMin, in.LocalPortMax = dataplane.DefaultLocalPortMin, dataplane.DefaultLocalPortMax
	}
	return in
}

// standbyOwned reports whether the services of standby VIPs are owned:
// the workers can hand their frames to the director's own stack
// (Env.LocalNode), as the kernel would have received them.
func (d *Director) standbyOwned() bool {
	return d.env != nil && d.env.LocalNode != nil
}

// ownershipSet computes what uvsd owns now. A standby VIP is not a
// neighbour: the VRRP master answers ARP and NDP for it (and the worker
// would not answer: dataplane.Host.Standby), so its requests stay the
// kernel's alone.
//
// The standby set is the roles' own (haState), which may be newer than
// the Host's: a Host built while a followed VIP was being removed can
// lack it in both Local and Standby.
func (d *Director) ownershipSet() (*ownership.Set, error) {
	host := d.host.Load()
	live, _ := d.haState()
	set, err := ownership.Compute(d.ownershipInput())
	if err != nil || len(host.Standby)+len(live) == 0 {
		return set, err
	}
	set.Neighbours = slices.DeleteFunc(set.Neighbours, func(a netip.Addr) bool {
		return host.Standby[a.As16()] || live[a.As16()]
	})
	return set, nil
}

// publish computes what uvsd owns and, when it or the served interfaces
// changed, hands it to every owner. An owner that fails gets it again at
// the next publish; a packet filter that fell back to a coarser program
// is a warning.
func (d *Director) publish() error {
	set, err := d.ownershipSet()
	if err != nil {
		return err
	}
	var ifs []khook.Interface
	for _, ifc := range d.host.Load().Ifaces {
		ifs = append(ifs, khook.Interface{Ifindex: ifc.Index, Name: ifc.Name})
	}
	slices.SortFunc(ifs, func(x, y khook.Interface) int { return x.Ifindex - y.Ifindex })
	var layout strings.Builder
	for _, ifc := range ifs {
		fmt.Fprintf(&layout, "%d:%s,", ifc.Ifindex, ifc.Name)
	}
	if d.owned != nil && set.Equal(d.owned) && layout.String() == d.ownedLayout {
		return nil
	}
	d.hooks.SetInterfaces(ifs...)
	var errs []error
	for _, c := range d.owners() {
		err := c.SetOwnership(set)
		if errors.Is(err, afpacket.ErrFilterTooLong) {
			d.log.Warn("packet filter", zap.Error(err))
			continue
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	d.owned, d.ownedLayout = set, layout.String()
	d.log.Debug("ownership", zap.Int("services", len(set.Services)), zap.Int("nat replies", len(set.NATReplies)),
		zap.Int("local ranges", len(set.LocalRanges)), zap.Int("neighbours", len(set.Neighbours)))
	return nil
}
