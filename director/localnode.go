package director

import (
	"go.uber.org/zap"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/dataplane/khook"
	"github.com/uvs-lb/uvs/dataplane/localnode"
)

// setupLocalNode gives the workers delivery to the director's own stack
// (LOCALNODE: a real server that is one of the director's addresses, as
// in seed 004's two-node cluster where each director is also a real
// server) and returns what undoes it.
//
// The delivery device is a TUN device (localnode.DefaultName) kept out of
// the served interfaces; the namespace's IPv4 reverse-path filtering is
// adjusted so that it accepts packets from clients (localnode.RPFilter:
// conf/all goes to 0 only while every interface keeps its own filtering),
// through the kernel hooks, which restore the values on exit. If the
// device cannot be made, uvsd runs without it: requests scheduled to a
// local real server are dropped and counted (unsupported).
func (d *Director) setupLocalNode(env *dataplane.Env) func() {
	dev, err := localnode.Open(localnode.DefaultName)
	if err != nil {
		d.log.Warn("no local delivery: requests for real servers that are the director's own addresses will be dropped",
			zap.Error(err))
		return func() {}
	}
	unhide := d.hops.Hide(dev.Index())
	set, err := localnode.RPFilter(dev.Name())
	if err == nil && len(set) > 0 {
		ks := make([]khook.Sysctl, len(set))
		for i, s := range set {
			ks[i] = khook.Sysctl{Name: s.Name, Value: s.Value}
		}
		err = d.hooks.SetSysctls(ks...)
		if err == nil {
			d.log.Info("reverse-path filtering: net.ipv4.conf.all.rp_filter set to 0 for local delivery, each interface keeps its own",
				zap.Int("changed", len(ks)))
		}
	}
	if err != nil {
		d.log.Warn("local delivery: IPv4 packets for local real servers may be dropped by reverse-path filtering",
			zap.String("device", dev.Name()), zap.Error(err))
	}
	env.LocalNode = dev
	d.log.Debug("local delivery", zap.String("device", dev.Name()), zap.Int("ifindex", dev.Index()))
	return func() {
		if err := dev.Close(); err != nil {
			d.log.Warn("local delivery", zap.Error(err))
		}
		unhide()
	}
}
