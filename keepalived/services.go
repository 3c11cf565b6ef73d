package keepalived

import (
	"math"
	"net/netip"

	"github.com/uvs-lb/uvs/ipvsadm"
	"github.com/uvs-lb/uvs/spec"
)

// maxGroupAddrs bounds the addresses one virtual_server_group expands to.
const maxGroupAddrs = 65536

// Keys returns the IPVS service keys of a virtual server: one for an
// address or fwmark service, one per address (and fwmark) of a group.
func (c *Config) Keys(vs *VirtualServer) []spec.ServiceKey {
	if vs.Group == "" {
		if vs.FWMark != 0 {
			return []spec.ServiceKey{{FWMark: vs.FWMark, IPv6: vs.IPv6, Proto: spec.ProtoTCP}}
		}
		return []spec.ServiceKey{{Proto: vs.Proto, Addr: vs.Addr, Port: vs.Port}}
	}
	g := c.Group(vs.Group)
	if g == nil {
		return nil
	}
	var keys []spec.ServiceKey
	n := 0
	for _, e := range g.Entries {
		if e.FWMark != 0 {
			keys = append(keys, spec.ServiceKey{FWMark: e.FWMark, IPv6: e.IPv6 || vs.IPv6, Proto: spec.ProtoTCP})
			continue
		}
		for a := e.First; a.IsValid() && n < maxGroupAddrs; a = a.Next() {
			keys = append(keys, spec.ServiceKey{Proto: vs.Proto, Addr: a, Port: e.Port})
			n++
			if a == e.Last {
				break
			}
		}
	}
	return keys
}

// startDest is a real server as keepalived puts it into IPVS at start.
type startDest struct {
	rs     *RealServer
	weight uint32
}

// realWeight is keepalived's real_weight: clamp to [0, INT32_MAX].
func realWeight(w int64) uint32 {
	if w < 0 {
		return 0
	}
	if w > math.MaxInt32 {
		return math.MaxInt32
	}
	return uint32(w)
}

// failedAtStart reports whether a real server has a checker that starts
// down: with alpha, a checker is down until its first success.
func failedAtStart(rs *RealServer) bool {
	for _, c := range rs.Checkers {
		if c.Alpha {
			return true
		}
	}
	return false
}

// startPool returns the destinations keepalived installs for vs at start
// (init_service_rs then update_quorum_state(init)): real servers without
// a failed checker with their weight; failed inhibited ones with weight
// 0; failed others absent. When the alive weight is below quorum and a
// sorry server exists, the alive servers are removed (inhibited ones set
// to weight 0) and the sorry server is added.
func startPool(vs *VirtualServer) []startDest {
	var out []startDest
	var sum int64
	for _, rs := range vs.RealServers {
		if failedAtStart(rs) {
			if rs.Inhibit {
				out = append(out, startDest{rs, 0})
			}
			continue
		}
		w := realWeight(rs.Weight)
		sum += int64(w)
		out = append(out, startDest{rs, w})
	}
	ss := vs.SorryServer
	if ss == nil {
		return out
	}
	if sum >= int64(vs.Quorum)+int64(vs.Hysteresis) && sum > 0 {
		if vs.SorryServerInhibit {
			out = append(out, startDest{ss, 0})
		}
		return out
	}
	// Quorum down at start: remove the alive servers, add the sorry server.
	kept := out[:0]
	for _, d := range out {
		if d.rs.Inhibit {
			kept = append(kept, startDest{d.rs, 0})
		}
	}
	return append(kept, startDest{ss, 1})
}

// Commands returns the ipvsadm commands that build the IPVS table
// keepalived's checker process installs at start, before any check has
// run: -C for lvs_flush, --set for lvs_timeouts, then per service -A, -a for each real
// server in the start pool, and -P for FULLNAT local addresses.
func (c *Config) Commands() []ipvsadm.Command {
	var out []ipvsadm.Command
	g := c.Global
	if g.LVSFlush {
		out = append(out, ipvsadm.Command{Kind: ipvsadm.CmdFlush})
	}
	if g.TimeoutTCP != 0 || g.TimeoutTCPFin != 0 || g.TimeoutUDP != 0 {
		out = append(out, ipvsadm.Command{Kind: ipvsadm.CmdSetTimeout,
			TimeoutTCP: g.TimeoutTCP, TimeoutTCPFin: g.TimeoutTCPFin, TimeoutUDP: g.TimeoutUDP})
	}
	// keepalived treats EEXIST as success: a service (or destination)
	// that two virtual servers both name is added once.
	added := map[spec.ServiceKey]map[netip.AddrPort]bool{}
	for _, vs := range c.VirtualServers {
		pool := startPool(vs)
		for _, k := range c.Keys(vs) {
			dests := added[k]
			first := dests == nil
			if first {
				dests = map[netip.AddrPort]bool{}
				added[k] = dests
			}
			svc := spec.Service{Key: k, Scheduler: vs.Scheduler, Flags: vs.Flags, PE: vs.PE, OPS: vs.OPS,
				Netmask: spec.DefaultNetmask(k.Is6())}
			if !k.IsFWMark() && k.Port == 0 && !vs.Persistent {
				svc.Persistent, svc.Timeout = true, spec.DefaultPersistentTimeout
			}
			if vs.Persistent {
				svc.Persistent, svc.Timeout = true, vs.Timeout
				if vs.Netmask != 0 {
					svc.Netmask = vs.Netmask
				}
			}
			if svc.OPS && (k.IsFWMark() || k.Proto != spec.ProtoUDP) {
				svc.OPS = false
			}
			if first {
				out = append(out, ipvsadm.Command{Kind: ipvsadm.CmdAddService, Service: svc, HasService: true})
			}
			for _, d := range pool {
				dst := spec.Dest{Addr: d.rs.Addr, Port: d.rs.Port, Fwd: d.rs.Method.Fwd, Weight: d.weight,
					UThreshold: d.rs.UThreshold, LThreshold: d.rs.LThreshold,
					TunType: d.rs.Method.TunType, TunPort: d.rs.Method.TunPort, TunCsum: d.rs.Method.TunCsum}
				if dst.Fwd == spec.FwdRoute || dst.Fwd == spec.FwdTunnel {
					dst.Port = k.Port // 0 for fwmark services
				}
				if dst.Fwd != spec.FwdTunnel {
					dst.TunType, dst.TunPort, dst.TunCsum = 0, 0, 0
				}
				if dst.Addr.Is4() != keyIs4(k) && dst.Fwd != spec.FwdTunnel && dst.Fwd != spec.FwdFullNAT {
					continue // a group entry of the other family
				}
				if dests[dst.AddrPort()] {
					continue
				}
				dests[dst.AddrPort()] = true
				out = append(out, ipvsadm.Command{Kind: ipvsadm.CmdAddServer, Service: svc, HasService: true, Dest: dst})
			}
			for _, la := range vs.LocalAddrs {
				if !first {
					break
				}
				out = append(out, ipvsadm.Command{Kind: ipvsadm.CmdAddLaddr, Service: svc, HasService: true,
					Laddr: spec.Dest{Addr: la}})
			}
		}
	}
	return out
}

func keyIs4(k spec.ServiceKey) bool {
	if k.IsFWMark() {
		return !k.IPv6
	}
	return k.Addr.Is4()
}
