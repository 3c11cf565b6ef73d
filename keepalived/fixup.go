package keepalived

import (
	"time"

	"github.com/uvs-lb/uvs/spec"
)

// Keepalived's defaults (check_data.c, check_api.c, check_http.c, check_dns.c).
const (
	defaultDelayLoop      = 60 * time.Second
	defaultConnectTimeout = 5 * time.Second
)

// fixVS applies validate_check_config's per-VS fix-ups and inheritance.
func (p *parser) fixVS(n *node, vs *VirtualServer, protoSet, methodSet, schedSet bool) {
	if !schedSet {
		p.errorf(n, "Virtual server %s: no scheduler set, setting default 'wlc'", vsName(vs))
		vs.Scheduler = spec.DefaultScheduler
	}
	switch {
	case vs.FWMark != 0:
		if protoSet {
			p.warn(n, "Warning: Virtual server FWM %d: protocol specified for fwmark - protocol will be ignored", vs.FWMark)
		}
		vs.Proto = spec.ProtoTCP
	case !protoSet:
		if vs.Group == "" {
			p.errorf(n, "Virtual server %s: no protocol set - defaulting to UDP", vsName(vs))
		}
		vs.Proto = spec.ProtoUDP
	}
	if vs.OPS && vs.Proto != spec.ProtoUDP && vs.FWMark == 0 {
		p.errorf(n, "Virtual server %s: one packet scheduling requires UDP - resetting", vsName(vs))
		vs.OPS = false
	}
	if vs.HASuspend && vs.FWMark != 0 {
		p.errorf(n, "Virtual server %s: cannot use ha_suspend with fwmark - clearing ha_suspend", vsName(vs))
		vs.HASuspend = false
	}
	if vs.Group == "" && vs.FWMark == 0 && vs.Port == 0 && !vs.Persistent {
		p.warn(n, "Virtual server %s: zero port only valid for persistent services - setting", vsName(vs))
		vs.Persistent, vs.Timeout = true, spec.DefaultPersistentTimeout
	}
	if vs.Group != "" && !vs.Persistent {
		if g := p.cfg.Group(vs.Group); g != nil {
			for _, e := range g.Entries {
				if e.FWMark == 0 && e.Port == 0 {
					vs.Persistent, vs.Timeout = true, spec.DefaultPersistentTimeout
				}
			}
		}
	}
	if vs.DelayLoop == NoValue {
		vs.DelayLoop = defaultDelayLoop
	}
	if vs.ConnectTimeout == NoValue {
		vs.ConnectTimeout = defaultConnectTimeout
	}
	if !methodSet {
		for _, rs := range vs.RealServers {
			if !rs.methodSet {
				p.errorf(n, "Virtual server %s: no forwarding method set, setting default NAT", vsName(vs))
				break
			}
		}
	}
	// Real servers: inheritance, port rules, duplicates.
	kept := vs.RealServers[:0]
	seen := map[[2]any]bool{}
	for _, rs := range vs.RealServers {
		p.fixRS(vs, rs)
		// keepalived lets only tunnelled real servers differ; FULLNAT
		// (DPVS's FNAT, uvs's extension) translates between the
		// families as DPVS does (NAT64).
		if vs.Addr.IsValid() && rs.Addr.Is4() != vs.Addr.Is4() && rs.Method.Fwd != spec.FwdTunnel && rs.Method.Fwd != spec.FwdFullNAT {
			p.diags = append(p.diags, diag(rs.Pos, SevError, "Virtual server %s: address family of real server [%s] does not match - skipping (only tunnelled real servers may differ)", vsName(vs), rs.Addr))
			continue
		}
		key := [2]any{rs.Addr, rs.Port}
		if seen[key] {
			p.diags = append(p.diags, diag(rs.Pos, SevError, "Virtual server %s: real server [%s]:%d is duplicated - removing", vsName(vs), rs.Addr, rs.Port))
			continue
		}
		seen[key] = true
		kept = append(kept, rs)
	}
	vs.RealServers = kept
	if ss := vs.SorryServer; ss != nil {
		p.fixRS(vs, ss)
		ss.Weight = 1
	}
	var sum int64
	for _, rs := range vs.RealServers {
		sum += rs.Weight
	}
	if int64(vs.Quorum) > sum && len(vs.RealServers) > 0 {
		p.warn(n, "Warning - quorum %d for %s exceeds total weight of real servers %d, reducing quorum to %d", vs.Quorum, vsName(vs), sum, sum)
		if sum < 1 {
			sum = 1
		}
		vs.Quorum = uint32(sum)
	}
	if vs.Hysteresis >= vs.Quorum {
		vs.Hysteresis = vs.Quorum - 1
	}
}

// fixRS applies the VS → RS → checker inheritance and the port rules.
func (p *parser) fixRS(vs *VirtualServer, rs *RealServer) {
	if !rs.methodSet {
		rs.Method = vs.Method
	}
	if !rs.weightSet {
		rs.Weight = vs.Weight
	}
	rs.Alpha = rs.alphaT.Bool(vs.Alpha)
	rs.Inhibit = rs.inhibitT.Bool(vs.Inhibit)
	inherit(&rs.Timing, vs.Timing)
	if rs.Virtualhost == "" {
		rs.Virtualhost = vs.Virtualhost
	}
	switch {
	case vs.FWMark != 0 || vs.Group != "":
		if vs.FWMark != 0 && rs.Method.Fwd != spec.FwdMasq && rs.Method.Fwd != spec.FwdFullNAT && rs.Port != 0 {
			p.diags = append(p.diags, diag(rs.Pos, SevWarning, "Virtual server %s: real server [%s]:%d: port specified for fwmark service with non-NAT forwarding - clearing", vsName(vs), rs.Addr, rs.Port))
			rs.Port = 0
		}
	case rs.Method.Fwd == spec.FwdMasq || rs.Method.Fwd == spec.FwdFullNAT:
		if rs.Port == 0 {
			rs.Port = vs.Port
		}
	default:
		if rs.Port != 0 && rs.Port != vs.Port {
			p.diags = append(p.diags, diag(rs.Pos, SevWarning, "Virtual server %s: real server [%s]:%d: ports don't match - resetting", vsName(vs), rs.Addr, rs.Port))
		}
		rs.Port = vs.Port
	}
	for _, c := range rs.Checkers {
		c.Alpha = c.alphaT.Bool(rs.Alpha)
		inherit(&c.Timing, rs.Timing)
		if c.Retry == NoValue {
			switch c.Kind {
			case "MISC_CHECK":
				c.Retry = 0
			case "DNS_CHECK":
				c.Retry = 3
			default:
				c.Retry = 1
			}
		}
		if c.Warmup == NoValue {
			c.Warmup = c.DelayLoop
		}
		if c.DelayBeforeRetry == NoValue {
			switch c.Kind {
			case "HTTP_GET", "SSL_GET":
				c.DelayBeforeRetry = 3 * time.Second
			case "DNS_CHECK":
				c.DelayBeforeRetry = c.DelayLoop
			default:
				c.DelayBeforeRetry = time.Second
			}
		}
		if c.Kind == "MISC_CHECK" && c.MiscTimeout == 0 {
			c.MiscTimeout = vs.DelayLoop
		}
		if (c.Kind == "HTTP_GET" || c.Kind == "SSL_GET") && c.Virtualhost == "" {
			c.Virtualhost = rs.Virtualhost
		}
	}
}

// inherit fills unset fields of t from parent.
func inherit(t *Timing, parent Timing) {
	if t.DelayLoop == NoValue {
		t.DelayLoop = parent.DelayLoop
	}
	if t.ConnectTimeout == NoValue {
		t.ConnectTimeout = parent.ConnectTimeout
	}
	if t.DelayBeforeRetry == NoValue {
		t.DelayBeforeRetry = parent.DelayBeforeRetry
	}
	if t.Warmup == NoValue {
		t.Warmup = parent.Warmup
	}
	if t.Retry == NoValue {
		t.Retry = parent.Retry
	}
}

// finish runs the whole-configuration checks after parsing: FULLNAT
// local-address groups and track_file blocks may be defined after the
// virtual servers using them.
func (p *parser) finish() {
	for _, vs := range p.cfg.VirtualServers {
		for _, rs := range vs.RealServers {
			for _, c := range rs.Checkers {
				if c.Kind != "FILE_CHECK" {
					continue
				}
				tf := p.cfg.TrackFiles[c.TrackFile]
				if tf == nil {
					p.diags = append(p.diags, diag(c.Pos, SevError, "FILE_CHECK: track_file %q not found", c.TrackFile))
					continue
				}
				c.File = tf
				if !c.FileHasWeight {
					c.FileWeight, c.FileReverse = tf.Weight, tf.Reverse
				}
			}
		}
	}
	for _, vs := range p.cfg.VirtualServers {
		if vs.LocalAddrGroup == "" {
			continue
		}
		addrs, ok := p.cfg.LocalAddressGroups[vs.LocalAddrGroup]
		if !ok {
			p.diags = append(p.diags, diag(vs.Pos, SevError, "Virtual server %s: local_address_group %s does not exist", vsName(vs), vs.LocalAddrGroup))
		}
		vs.LocalAddrs = addrs
	}
	p.finishVRRP()
}
