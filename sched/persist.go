package sched

import (
	"math/bits"
	"net/netip"
	"sync"
	"time"

	"github.com/uvs-lb/uvs/spec"
)

// ftpPort is FTPPORT: a persistent service on port 21 keys its templates
// with vport 0 so they also cover the FTP data connections.
const ftpPort = 21

// TemplateKey identifies a persistence template, as ip_vs_sched_persist
// fills its ip_vs_conn_param: <protocol, client network, cport 0, vaddr,
// vport>. It is packed and pointer-free so a connection table can hash it
// directly. IPv4 addresses are stored IPv4-mapped.
type TemplateKey struct {
	Net   [16]byte   // client address masked by the service netmask
	VAddr [16]byte   // virtual address, or for PFWMC the fwmark as the IPv4 address 0.0.0.0+mark
	VPort uint16     // service port (PPC), 0 for PCC, PFWMC and FTP
	Proto spec.Proto // packet protocol; IP (0) for PFWMC
	IPv6  bool       // family of the service
}

// Template is one persistence template as a Templates table stores it.
type Template struct {
	Dest    *Dest
	DPort   uint16        // the dest port recorded: the RS port for PPC, 0 otherwise
	Timeout time.Duration // each use re-arms the template to this
	Expires time.Time
}

// Templates is the persistence template store SchedulePersistent consults:
// the connection table implements it (templates are connections with
// IP_VS_CONN_F_TEMPLATE); MapTemplates is a simple implementation.
// Implementations must count a template on its destination with
// Dest.BindConn(true) when inserting it and Dest.UnbindConn(true, false)
// when it finally goes away.
type Templates interface {
	// Lookup returns the live (unexpired) template for k.
	Lookup(k TemplateKey, now time.Time) (Template, bool)
	// Insert adds a new template, replacing none (the caller has
	// invalidated any previous one).
	Insert(k TemplateKey, t Template)
	// Touch re-arms a used template: Expires = now + Timeout.
	Touch(k TemplateKey, now time.Time)
	// Invalidate neutralises a template whose destination is no longer
	// valid: it can no longer match but keeps counting until it expires.
	Invalidate(k TemplateKey, now time.Time)
}

// Decision is the outcome of SchedulePersistent.
type Decision struct {
	Dest *Dest  // nil: no destination available
	Port uint16 // destination port the real connection uses
	// Template is the key of the template controlling the connection
	// (valid when Persistent).
	Template    TemplateKey
	Persistent  bool // the service is persistent
	NewTemplate bool // a template was created by this decision
}

// snet masks the client address by the service netmask (ip_vs_sched_persist
// step 1): an IPv4 mask in host byte order, an IPv6 prefix length. Zero
// means the default (/32, /128).
func snet(a netip.Addr, netmask uint32, ipv6 bool) (netip.Addr, int) {
	if a.Is4() || a.Is4In6() {
		m := netmask
		if m == 0 || ipv6 {
			m = 0xffffffff
		}
		b := a.Unmap().As4()
		v := (uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])) & m
		n := 32
		if ^m&(^m+1) == 0 { // contiguous mask: report its length
			n = bits.OnesCount32(m)
		}
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), n
	}
	n := int(netmask)
	if n == 0 || n > 128 || !ipv6 {
		n = 128
	}
	p, _ := a.Prefix(n)
	return p.Addr(), n
}

// ConnPort is the destination port of a non-template connection: the
// destination's port when the packet hit the service port and the
// destination has one, else the packet's destination port (ip_vs_schedule,
// ip_vs_sched_persist step 5).
func ConnPort(d *Dest, svcPort, dport uint16) uint16 {
	if dport == svcPort && d.Port() != 0 {
		return d.Port()
	}
	return dport
}

// SchedulePersistent makes the full new-connection decision of
// ip_vs_schedule / ip_vs_sched_persist for flow f at time now, consulting
// and updating the template table t for a persistent service. Non-persistent
// services just schedule (a packet to another port than a non-fwmark
// service's own gets no destination, as for a non-persistent port-0
// service). For persistent ones the template key is PPC <proto, net, VIP,
// port> when the packet hits the service port (vport 0 for FTP, port 21),
// otherwise PCC <proto, net, VIP, 0> or, for fwmark services, PFWMC <IP,
// net, mark, 0>. A template is valid while its destination is AVAILABLE
// (and, with ExpireQuiescentTemplate, has weight > 0): a quiesced server
// keeps its persistent clients by default. why may be nil.
func (s *Service) SchedulePersistent(f *Flow, t Templates, now time.Time, why *Reason) Decision {
	st := s.cur.Load()
	if why != nil {
		*why = Reason{Sched: st.id, NDests: int32(len(st.dests))}
	}
	cfg := &st.cfg
	client, vaddr, dport := f.Src, f.Dst, f.DstPort
	if f.Inverse {
		client, vaddr, dport = f.Dst, f.Src, f.SrcPort
	}
	svcPort := cfg.Key.Port
	if !cfg.Persistent {
		if !cfg.Key.IsFWMark() && dport != svcPort {
			return Decision{}
		}
		d := st.sched.schedule(st, f, why)
		if why != nil {
			why.setDest(d)
		}
		if d == nil {
			return Decision{}
		}
		port := d.Port()
		if port == 0 {
			port = dport
		}
		return Decision{Dest: d, Port: port}
	}

	ipv6 := cfg.Key.Is6()
	net, nbits := snet(client, cfg.Netmask, ipv6)
	k := TemplateKey{Net: net.As16(), Proto: f.Proto, IPv6: ipv6}
	var mark uint32
	switch {
	case dport == svcPort:
		k.VAddr = vaddr.As16()
		if svcPort != ftpPort {
			k.VPort = svcPort
		}
	case cfg.Key.IsFWMark():
		mark = cfg.Key.FWMark
		k.Proto = spec.ProtoIP
		k.VAddr = netip.AddrFrom4([4]byte{byte(mark >> 24), byte(mark >> 16), byte(mark >> 8), byte(mark)}).As16()
	default:
		k.VAddr = vaddr.As16()
	}
	if why != nil {
		why.Persist = true
		why.TmplNet = netip.PrefixFrom(net, nbits)
		why.TmplMark = mark
		why.TmplVPort = k.VPort
	}
	dec := Decision{Template: k, Persistent: true}

	tm, ok := t.Lookup(k, now)
	if ok && !(tm.Dest != nil && tm.Dest.Available() &&
		!(s.opts.ExpireQuiescentTemplate && tm.Dest.Weight() <= 0)) {
		t.Invalidate(k, now)
		ok = false
	}
	if ok {
		t.Touch(k, now)
		dec.Dest = tm.Dest
		if why != nil {
			why.FromTmpl = true
			why.setDest(tm.Dest)
			why.TmplExpires = tm.Expires.Sub(now)
		}
	} else {
		d := st.sched.schedule(st, f, why)
		if why != nil {
			why.setDest(d)
		}
		if d == nil {
			return Decision{}
		}
		var tport uint16
		if dport == svcPort && svcPort != ftpPort {
			tport = d.Port()
		}
		timeout := time.Duration(cfg.Timeout) * time.Second
		if cfg.Timeout == 0 {
			timeout = spec.DefaultPersistentTimeout * time.Second
		}
		t.Insert(k, Template{Dest: d, DPort: tport, Timeout: timeout, Expires: now.Add(timeout)})
		dec.Dest = d
		dec.NewTemplate = true
		if why != nil {
			why.TmplExpires = timeout
		}
	}
	dec.Port = ConnPort(dec.Dest, svcPort, dport)
	return dec
}

// MapTemplates is a map-based Templates for tests and the simulator. It is
// safe for concurrent use. Neutralised templates keep counting on their
// destination until they expire, as in the kernel.
type MapTemplates struct {
	mu   sync.Mutex
	m    map[TemplateKey]Template
	dead []Template
}

// NewMapTemplates returns an empty table.
func NewMapTemplates() *MapTemplates {
	return &MapTemplates{m: make(map[TemplateKey]Template)}
}

// Lookup implements Templates.
func (t *MapTemplates) Lookup(k TemplateKey, now time.Time) (Template, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tm, ok := t.m[k]
	if !ok || !now.Before(tm.Expires) {
		return Template{}, false
	}
	return tm, true
}

// Insert implements Templates; it counts the template on its destination.
func (t *MapTemplates) Insert(k TemplateKey, tm Template) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.m[k]; ok { // an expired, not yet reaped one
		t.dead = append(t.dead, old)
	}
	tm.Dest.BindConn(true)
	t.m[k] = tm
}

// Touch implements Templates.
func (t *MapTemplates) Touch(k TemplateKey, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tm, ok := t.m[k]; ok {
		tm.Expires = now.Add(tm.Timeout)
		t.m[k] = tm
	}
}

// Invalidate implements Templates.
func (t *MapTemplates) Invalidate(k TemplateKey, _ time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tm, ok := t.m[k]; ok {
		delete(t.m, k)
		t.dead = append(t.dead, tm)
	}
}

// Expire removes the templates expired at now, uncounting them from their
// destinations, and returns how many it removed.
func (t *MapTemplates) Expire(now time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for k, tm := range t.m {
		if !now.Before(tm.Expires) {
			delete(t.m, k)
			tm.Dest.UnbindConn(true, false)
			n++
		}
	}
	keep := t.dead[:0]
	for _, tm := range t.dead {
		if !now.Before(tm.Expires) {
			tm.Dest.UnbindConn(true, false)
			n++
			continue
		}
		keep = append(keep, tm)
	}
	clear(t.dead[len(keep):])
	t.dead = keep
	return n
}

// Len returns the number of live (matchable) templates.
func (t *MapTemplates) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}
