package director

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/uvs-lb/uvs/keepalived"
)

// VIP following (reference §3.3): keepalived's VRRP runs the protocol and
// moves the virtual_ipaddress of each vrrp_instance; uvsd reads the same
// file and serves such a VIP only while it is configured on its device
// (the address's `dev`, else the instance's `interface`) in this
// namespace — which is what keepalived does on MASTER. The addresses are
// learnt from rtnetlink (vrrp_linux.go).

// heldAddr is an address configured on a device, by the device's name.
type heldAddr struct {
	addr netip.Addr
	dev  string
}

// addrEvent is one address added to or removed from a device, as an
// rtnetlink event tells it.
type addrEvent struct {
	heldAddr
	added bool
}

// addrWatcher lists the namespace's addresses and reports changes.
type addrWatcher interface {
	// List returns every address configured on every device.
	List() (map[heldAddr]bool, error)
	// Watch calls changed after each address change (possibly for
	// several at once, possibly spuriously) until ctx is done, with the
	// events it could read (nil when it cannot tell what changed: the
	// caller lists again); it returns an error when it can no longer
	// watch (the caller lists again and watches anew).
	Watch(ctx context.Context, changed func(evs []addrEvent)) error
}

// vrrpVIP is one followed address of an instance.
type vrrpVIP struct {
	addr netip.Addr
	dev  string
}

// vrrpInstance is what the follower keeps of a vrrp_instance.
type vrrpInstance struct {
	name     string
	priority int
	vips     []vrrpVIP
	master   bool
	// reported: the instance's role was logged once (every instance's
	// first update reports it).
	reported bool
}

// vrrpRoles computes, from the addresses present, which followed VIPs
// this node holds and which instances are MASTER. It is not safe for
// concurrent use (the Director guards it with haMu).
type vrrpRoles struct {
	insts []*vrrpInstance
	// held is the set of followed VIPs present at the last update.
	held map[vrrpVIP]bool
}

// newVRRPRoles returns the follower of cfg's vrrp_instances (nil when
// there is none). Before the first update every VIP counts as not held.
func newVRRPRoles(cfg *keepalived.Config) *vrrpRoles {
	if cfg == nil || len(cfg.VRRP) == 0 {
		return nil
	}
	r := &vrrpRoles{held: map[vrrpVIP]bool{}}
	for _, vi := range cfg.VRRP {
		in := &vrrpInstance{name: vi.Name, priority: vi.Priority}
		for _, v := range vi.VIPs {
			dev := v.Dev
			if dev == "" {
				dev = vi.Interface
			}
			in.vips = append(in.vips, vrrpVIP{addr: v.Prefix.Addr().Unmap(), dev: dev})
		}
		r.insts = append(r.insts, in)
	}
	return r
}

// roleChange is an instance entering or leaving MASTER.
type roleChange struct {
	instance string
	master   bool
	reason   string
}

func (c roleChange) String() string {
	role := "BACKUP"
	if c.master {
		role = "MASTER"
	}
	return "VRRP instance " + c.instance + ": " + role + " (" + c.reason + ")"
}

// update takes the addresses now present and returns the instances whose
// role changed (every instance at its first update) and the VIPs that
// became held, in configuration order.
func (r *vrrpRoles) update(present map[heldAddr]bool) (changes []roleChange, taken []vrrpVIP) {
	for _, in := range r.insts {
		first := !in.reported
		in.reported = true
		var added, removed, missing []string
		all := len(in.vips) > 0
		for _, v := range in.vips {
			now := present[heldAddr(v)]
			was := r.held[v]
			switch {
			case now && !was:
				added = append(added, v.addr.String()+" added on "+v.dev)
				if !first {
					taken = append(taken, v)
				}
			case !now && was:
				removed = append(removed, v.addr.String()+" removed from "+v.dev)
			}
			if !now {
				all = false
				missing = append(missing, v.addr.String()+" not on "+v.dev)
			}
			if now {
				r.held[v] = true
			} else {
				delete(r.held, v)
			}
		}
		if first {
			if all {
				taken = append(taken, in.vips...)
			}
			reason := ""
			switch {
			case len(in.vips) == 0:
				reason = "no virtual_ipaddress to follow"
			case all:
				reason = fmt.Sprintf("%s on %s", vipList(in.vips), in.vips[0].dev)
				if len(in.vips) > 1 {
					reason = "all of " + vipList(in.vips) + " present"
				}
			default:
				reason = strings.Join(missing, ", ")
			}
			in.master = all
			changes = append(changes, roleChange{instance: in.name, master: all, reason: reason})
			continue
		}
		if all == in.master {
			continue
		}
		in.master = all
		reason := strings.Join(append(removed, added...), ", ")
		if !all && len(removed) == 0 {
			reason = strings.Join(missing, ", ")
		}
		changes = append(changes, roleChange{instance: in.name, master: all, reason: reason})
	}
	return changes, taken
}

func vipList(vs []vrrpVIP) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = v.addr.String()
	}
	return strings.Join(s, ", ")
}

// standby returns the followed VIPs not held now (16-byte form), for
// dataplane.Host.Standby; nil when every one is held.
func (r *vrrpRoles) standby() map[[16]byte]bool {
	var out map[[16]byte]bool
	for _, in := range r.insts {
		for _, v := range in.vips {
			if r.held[v] {
				continue
			}
			if out == nil {
				out = map[[16]byte]bool{}
			}
			out[v.addr.As16()] = true
		}
	}
	// A VIP followed by two instances (or twice) is served when any
	// entry holds it.
	for _, in := range r.insts {
		for _, v := range in.vips {
			if r.held[v] {
				delete(out, v.addr.As16())
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// inherit carries the roles of old over to r (a reload): the held
// VIPs, and the role of each instance whose name and VIPs are unchanged,
// which is not reported again. A new or changed instance is reported at
// the next update.
func (r *vrrpRoles) inherit(old *vrrpRoles) {
	for v := range old.held {
		r.held[v] = true
	}
	for _, in := range r.insts {
		o := old.instance(in.name)
		if o != nil && slices.Equal(o.vips, in.vips) {
			in.master, in.reported = o.master, o.reported
		}
	}
}

// follows reports whether v is a followed VIP on its device.
func (r *vrrpRoles) follows(v vrrpVIP) bool {
	for _, in := range r.insts {
		if slices.Contains(in.vips, v) {
			return true
		}
	}
	return false
}

// isMaster reports whether the named instance is MASTER (false for an
// unknown name).
func (r *vrrpRoles) isMaster(name string) bool {
	for _, in := range r.insts {
		if in.name == name {
			return in.master
		}
	}
	return false
}

// instance returns the named instance, or nil.
func (r *vrrpRoles) instance(name string) *vrrpInstance {
	i := slices.IndexFunc(r.insts, func(in *vrrpInstance) bool { return in.name == name })
	if i < 0 {
		return nil
	}
	return r.insts[i]
}

// reloadVRRP follows cfg's instances from now on (SIGHUP of --keepalived
// when that file is the one followed): unchanged instances keep their
// role; the addresses are listed again at once. lvs_sync_daemon, when
// changed, is restarted for its (new) instance's role.
func (d *Director) reloadVRRP(cfg *keepalived.Config) {
	if d.cfg.VRRP != nil {
		return // --vrrp's file is read at start only
	}
	nr := newVRRPRoles(cfg)
	if nr == nil {
		nr = &vrrpRoles{held: map[vrrpVIP]bool{}}
	}
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	d.haMu.Lock()
	old := d.vrrp
	if old == nil {
		d.haMu.Unlock()
		if len(nr.insts) > 0 {
			d.log.Warn("reload: uvsd started without vrrp_instance: the instances are followed after a restart")
		}
		return
	}
	nr.inherit(old)
	d.vrrp = nr
	d.haMu.Unlock()
	ls, err := newLVSSync(cfg.SyncDaemon, cfg.VRRP)
	if err != nil {
		d.log.Warn(err.Error())
	}
	d.lvsMu.Lock()
	restart := !sameLVSSync(ls, d.lvsSync)
	if restart {
		if d.lvsSync != nil && d.lvsActive {
			d.log.Info("reload: lvs_sync_daemon changed: stopping its sync daemon")
			d.lvsStop("master")
			d.lvsStop("backup")
		}
		d.lvsSync, d.lvsActive = ls, false
	}
	d.lvsMu.Unlock()
	if present, err := d.addrs.List(); err != nil {
		d.log.Warn("reload: listing addresses for the VRRP instances", zap.Error(err))
		d.haMu.Lock()
		d.standby = d.vrrp.standby()
		d.haMu.Unlock()
		d.haKick()
	} else {
		d.applyAddrsLocked(present)
	}
	if restart {
		d.startLVSSync()
	}
}

func sameLVSSync(a, b *lvsSync) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// followVRRP lists the addresses once (the roles at start) and returns
// what watches them until ctx is done, applying each change; nil when no
// VIP is followed. The first list's error is returned: uvsd cannot tell
// its role without it.
func (d *Director) followVRRP(w addrWatcher) (run func(ctx context.Context), err error) {
	if d.vrrp == nil {
		return nil, nil
	}
	present, err := w.List()
	if err != nil {
		return nil, fmt.Errorf("listing addresses for the VRRP instances: %w", err)
	}
	d.applyAddrs(present)
	return func(ctx context.Context) {
		for ctx.Err() == nil {
			err := w.Watch(ctx, func(evs []addrEvent) {
				// The event first, so that the workers switch within its
				// latency; the list is the consistency check.
				d.applyAddrEvents(evs)
				if p, err := w.List(); err != nil {
					d.log.Warn("listing addresses for the VRRP instances", zap.Error(err))
				} else {
					d.applyAddrs(p)
				}
			})
			if ctx.Err() != nil {
				return
			}
			d.log.Warn("watching addresses for the VRRP instances; listing them again", zap.Error(err))
			// What happened while the watch was down.
			if p, err := w.List(); err == nil {
				d.applyAddrs(p)
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}, nil
}

// applyAddrs updates the roles from the addresses present: it logs each
// role change, switches the lvs_sync_daemon, queues the gratuitous ARPs
// of the VIPs taken over, and asks housekeeping to apply the standby set.
func (d *Director) applyAddrs(present map[heldAddr]bool) {
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	d.applyAddrsLocked(present)
}

// applyAddrEvents applies address events to the followed VIPs held now,
// without listing the addresses (applyAddrs with the held VIPs changed by
// evs); it does nothing when no event is about a followed VIP.
func (d *Director) applyAddrEvents(evs []addrEvent) {
	if len(evs) == 0 {
		return
	}
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	d.haMu.Lock()
	if d.vrrp == nil {
		d.haMu.Unlock()
		return
	}
	present := make(map[heldAddr]bool, len(d.vrrp.held)+1)
	for v := range d.vrrp.held {
		present[heldAddr(v)] = true
	}
	changed := false
	for _, e := range evs {
		if !d.vrrp.follows(vrrpVIP(e.heldAddr)) || present[e.heldAddr] == e.added {
			continue
		}
		changed = true
		if e.added {
			present[e.heldAddr] = true
		} else {
			delete(present, e.heldAddr)
		}
	}
	d.haMu.Unlock()
	if changed {
		d.applyAddrsLocked(present)
	}
}

// applyAddrsLocked is applyAddrs with applyMu held. The workers get the
// new standby set at once, in a copy of the current Host (the fast flip:
// nothing else in the Host depends on the roles); refreshHost, which
// housekeeping runs next, builds the complete one.
func (d *Director) applyAddrsLocked(present map[heldAddr]bool) {
	d.haMu.Lock()
	changes, taken := d.vrrp.update(present)
	d.standby = d.vrrp.standby()
	d.garpPending = append(d.garpPending, taken...)
	if h := d.host.Load(); h != nil && !maps.Equal(h.Standby, d.standby) {
		nh := *h
		nh.Standby = d.standby
		d.host.Store(&nh)
		if len(changes) > 0 {
			d.log.Debug("VRRP: workers switched", zap.Int("standby VIPs", len(nh.Standby)))
		}
	}
	d.haMu.Unlock()
	for _, c := range changes {
		d.log.Info(c.String())
		d.lvsSyncRole(c)
	}
	d.haKick()
}

// haKick asks housekeeping to rebuild the host view and republish what
// uvsd owns (standby VIPs, backup_only), then send pending GARPs.
func (d *Director) haKick() {
	select {
	case d.haChanged <- struct{}{}:
	default:
	}
}

// haState returns the standby VIPs and whether backup_only is in force,
// for refreshHost.
func (d *Director) haState() (map[[16]byte]bool, bool) {
	d.haMu.Lock()
	defer d.haMu.Unlock()
	return d.standby, d.backupOnly
}

// takeGARPs returns the VIPs taken over since the last call whose
// device is not a served interface: uvsd announces those on the served
// interfaces (when keepalived put the VIP on a served interface, the
// kernel answers ARP there and keepalived has sent the GARPs itself).
func (d *Director) takeGARPs() []netip.Addr {
	d.haMu.Lock()
	pending := d.garpPending
	d.garpPending = nil
	d.haMu.Unlock()
	served := map[string]bool{}
	for _, ifc := range d.host.Load().Ifaces {
		served[ifc.Name] = true
	}
	var out []netip.Addr
	for _, v := range pending {
		if !served[v.dev] && !slices.Contains(out, v.addr) {
			out = append(out, v.addr)
		}
	}
	return out
}
