package sched

import (
	"net/netip"
	"sync/atomic"

	"github.com/uvs-lb/uvs/spec"
)

// Dest is a real server as the schedulers and the connection table see it:
// its configuration plus the live counters IPVS keeps per destination
// (struct ip_vs_dest in include/net/ip_vs.h).
//
// A *Dest keeps its identity across configuration changes (an edit updates
// it in place, a configuration snapshot refers to it), so connections can
// point at it and its counters survive snapshot swaps. All methods are safe
// for concurrent use; the counters are atomics because every worker updates
// them.
type Dest struct {
	addr netip.Addr
	port uint16

	// Configuration, replaced as a whole by an edit.
	weight     atomic.Int32
	lastWeight atomic.Int32 // latest non-zero weight (mh keeps slots for quiesced dests)
	uthresh    atomic.Uint32
	lthresh    atomic.Uint32
	cfg        atomic.Pointer[spec.Dest]

	activeConns  atomic.Int32
	inactConns   atomic.Int32
	persistConns atomic.Int32
	flags        atomic.Uint32

	// Stats are the traffic counters shown by ipvsadm --stats.
	Stats Stats
}

// Destination flags (IP_VS_DEST_F_*).
const (
	FlagAvailable uint32 = 0x0001 // linked into a service
	FlagOverload  uint32 = 0x0002 // upper threshold reached
)

// NewDest creates a destination from its configuration. It is not yet
// available: the service that links it sets that.
func NewDest(d spec.Dest) *Dest {
	x := &Dest{addr: d.Addr, port: d.Port}
	x.lastWeight.Store(int32(d.Weight))
	x.update(d)
	return x
}

// update applies an edit (kernel __ip_vs_update_dest): every setting is
// replaced; last_weight keeps the latest non-zero weight; raising or clearing
// the upper threshold clears OVERLOAD.
func (d *Dest) update(c spec.Dest) {
	cc := c
	d.cfg.Store(&cc)
	if c.Weight != 0 {
		d.lastWeight.Store(int32(c.Weight))
	}
	d.weight.Store(int32(c.Weight))
	oldU := d.uthresh.Load()
	d.uthresh.Store(c.UThreshold)
	d.lthresh.Store(c.LThreshold)
	if c.UThreshold == 0 || c.UThreshold > oldU {
		d.clearFlag(FlagOverload)
	}
}

// Addr returns the real server address.
func (d *Dest) Addr() netip.Addr { return d.addr }

// Port returns the real server port (0 for fwmark-style "keep the port").
func (d *Dest) Port() uint16 { return d.port }

// AddrPort returns address and port.
func (d *Dest) AddrPort() netip.AddrPort { return netip.AddrPortFrom(d.addr, d.port) }

// Config returns the destination's current configuration.
func (d *Dest) Config() spec.Dest { return *d.cfg.Load() }

// Fwd returns the forwarding method.
func (d *Dest) Fwd() spec.Fwd { return d.cfg.Load().Fwd }

// Weight returns the current weight (0 = quiesced).
func (d *Dest) Weight() int32 { return d.weight.Load() }

// LastWeight returns the latest non-zero weight set (mh uses it).
func (d *Dest) LastWeight() int32 { return d.lastWeight.Load() }

// ActiveConns returns the number of active connections.
func (d *Dest) ActiveConns() int32 { return d.activeConns.Load() }

// InactConns returns the number of inactive connections.
func (d *Dest) InactConns() int32 { return d.inactConns.Load() }

// PersistConns returns the number of persistence templates pointing here.
func (d *Dest) PersistConns() int32 { return d.persistConns.Load() }

// UThreshold and LThreshold return the connection thresholds (-x, -y).
func (d *Dest) UThreshold() uint32 { return d.uthresh.Load() }

// LThreshold returns the lower connection threshold (-y).
func (d *Dest) LThreshold() uint32 { return d.lthresh.Load() }

// Overhead is the classic IPVS load figure (activeconns << 8) + inactconns
// (include/net/ip_vs.h ip_vs_dest_conn_overhead). A 257:1 variant is
// sometimes quoted; no kernel tree checked has it, so uvs uses 256:1.
func (d *Dest) Overhead() int64 {
	return int64(d.activeConns.Load())<<8 + int64(d.inactConns.Load())
}

// Flags returns the IP_VS_DEST_F_* bits.
func (d *Dest) Flags() uint32 { return d.flags.Load() }

// Overloaded reports whether OVERLOAD is set.
func (d *Dest) Overloaded() bool { return d.flags.Load()&FlagOverload != 0 }

// Available reports whether the destination is linked into a service.
func (d *Dest) Available() bool { return d.flags.Load()&FlagAvailable != 0 }

// Eligible is the common test of the load-based schedulers: not overloaded
// and weight > 0.
func (d *Dest) Eligible() bool { return d.flags.Load()&FlagOverload == 0 && d.weight.Load() > 0 }

func (d *Dest) setFlag(f uint32) {
	for {
		o := d.flags.Load()
		if o&f == f || d.flags.CompareAndSwap(o, o|f) {
			return
		}
	}
}

func (d *Dest) clearFlag(f uint32) {
	for {
		o := d.flags.Load()
		if o&f == 0 || d.flags.CompareAndSwap(o, o&^f) {
			return
		}
	}
}

// SetAvailable marks the destination linked (true) or unlinked (false).
func (d *Dest) SetAvailable(v bool) {
	if v {
		d.setFlag(FlagAvailable)
	} else {
		d.clearFlag(FlagAvailable)
	}
}

// total is activeconns + inactconns (templates excluded), the figure the
// thresholds are compared against.
func (d *Dest) total() uint32 {
	return uint32(d.activeConns.Load() + d.inactConns.Load())
}

// BindConn counts a new connection (kernel ip_vs_bind_dest). New
// connections start inactive; templates count in persistconns instead.
// Reaching the upper threshold sets OVERLOAD.
func (d *Dest) BindConn(template bool) {
	if template {
		d.persistConns.Add(1)
		return
	}
	d.inactConns.Add(1)
	if u := d.uthresh.Load(); u != 0 && d.total() >= u {
		d.setFlag(FlagOverload)
	}
}

// UnbindConn uncounts an expired connection (kernel ip_vs_unbind_dest) and
// applies the OVERLOAD hysteresis: with a lower threshold, clear below it;
// else with an upper threshold, clear below 3/4 of it; else clear.
func (d *Dest) UnbindConn(template, active bool) {
	if template {
		d.persistConns.Add(-1)
		return
	}
	if active {
		d.activeConns.Add(-1)
	} else {
		d.inactConns.Add(-1)
	}
	l, u := d.lthresh.Load(), d.uthresh.Load()
	switch {
	case l != 0:
		if d.total() < l {
			d.clearFlag(FlagOverload)
		}
	case u != 0:
		if uint64(d.total())*4 < uint64(u)*3 {
			d.clearFlag(FlagOverload)
		}
	default:
		d.clearFlag(FlagOverload)
	}
}

// SetActive moves one connection between the active and inactive counters
// when its protocol state crosses the active boundary.
func (d *Dest) SetActive(active bool) {
	if active {
		d.inactConns.Add(-1)
		d.activeConns.Add(1)
	} else {
		d.activeConns.Add(-1)
		d.inactConns.Add(1)
	}
}
