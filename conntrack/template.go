package conntrack

import (
	"encoding/binary"
	"time"

	"github.com/uvs-lb/uvs/sched"
)

// LookupTemplate finds the persistence template for k (see NewTemplateKey,
// NewFWMarkTemplateKey) and checks that it is still valid
// (ip_vs_check_template): its destination is available and, with
// expire_quiescent_template, has a non-zero weight. A valid template's
// timer is re-armed to its timeout and its handle and destination are
// returned, for NewConn.Template. An invalid template is neutralised: it
// no longer matches and is left to expire.
func (t *Table) LookupTemplate(k Key, now int64) (Handle, *sched.Dest, bool) {
	var (
		hd Handle
		d  *sched.Dest
	)
	ok := t.withTemplate(k, now, func(h uint64, idx uint32, e *entry) bool {
		d = t.dests.get(e.dest)
		if d == nil || !d.Available() || (t.expireQuiescent.Load() && d.Weight() == 0) {
			t.neutralise(h, idx, e)
			return false
		}
		e.expires = now + int64(e.timeout)*int64(time.Millisecond)
		hd = mkHandle(idx, e.gen())
		return true
	})
	if !ok {
		return 0, nil, false
	}
	return hd, d, true
}

// TemplateInfo describes a template.
type TemplateInfo struct {
	Handle   Handle
	Dest     *sched.Dest
	DPort    uint16
	Timeout  time.Duration
	Expires  int64
	Assured  bool
	NControl int32
}

// GetTemplate returns the template for k without validating or re-arming
// it (sched.Templates.Lookup).
func (t *Table) GetTemplate(k Key, now int64) (TemplateInfo, bool) {
	var ti TemplateInfo
	ok := t.withTemplate(k, now, func(_ uint64, idx uint32, e *entry) bool {
		ti = TemplateInfo{
			Handle: mkHandle(idx, e.gen()), Dest: t.dests.get(e.dest), DPort: e.dport,
			Timeout: time.Duration(e.timeout) * time.Millisecond, Expires: e.expires,
			Assured: e.state == StateAssured, NControl: e.nControl,
		}
		return true
	})
	return ti, ok
}

// TouchTemplate re-arms the template for k to its timeout.
func (t *Table) TouchTemplate(k Key, now int64) bool {
	return t.withTemplate(k, now, func(_ uint64, _ uint32, e *entry) bool {
		e.expires = now + int64(e.timeout)*int64(time.Millisecond)
		return true
	})
}

// InvalidateTemplate neutralises the template for k: it no longer matches
// but keeps counting on its destination until it expires.
func (t *Table) InvalidateTemplate(k Key, now int64) bool {
	return t.withTemplate(k, now, func(h uint64, idx uint32, e *entry) bool {
		t.neutralise(h, idx, e)
		return true
	})
}

// neutralise removes template idx from the index (its shard and entry
// locks held).
func (t *Table) neutralise(h uint64, idx uint32, e *entry) {
	t.remove(h, idx<<1)
	e.flags |= flagUnhashed
}

// withTemplate finds the live template for k and calls fn with its shard
// and entry locked. A template whose timer ran out is postponed by 60 s
// if it still controls connections (as its timer would have done) and
// otherwise removed and not found.
func (t *Table) withTemplate(k Key, now int64, fn func(h uint64, idx uint32, e *entry) bool) bool {
	h := k.hash(t.seed)
	s := &t.shards[t.shardIdx(h)]
	s.mu.Lock()
	l, e := t.probe(h, &k, true)
	if e == nil {
		s.mu.Unlock()
		return false
	}
	idx := l >> 1
	if e.expires <= now {
		if e.nControl == 0 {
			gen := e.gen()
			e.unlock()
			s.mu.Unlock()
			t.expire(idx, now, expireReq{checkGen: true, gen: gen})
			return false
		}
		setTimer(e, TemplatePostponeTO, e.expires)
	}
	ok := fn(h, idx, e)
	e.unlock()
	s.mu.Unlock()
	return ok
}

// InsertTemplate creates a persistence template for k pointing at d with
// the service's persistence timeout, counted in d's persistconns
// (BindConn(true)). Its real port is d's port for a template with a
// virtual port (PPC) and 0 otherwise, as the kernel records it. If a
// template for k already exists (another worker won the race) it returns
// that template's handle with ErrExists.
func (t *Table) InsertTemplate(k Key, d *sched.Dest, timeout time.Duration, now int64) (Handle, error) {
	var dport uint16
	if d != nil && k.DstPort != 0 {
		dport = d.Port()
	}
	return t.insertTemplate(k, d, dport, timeout, now)
}

func (t *Table) insertTemplate(k Key, d *sched.Dest, dport uint16, timeout time.Duration, now int64) (Handle, error) {
	di, ok := t.dests.acquire(d)
	if !ok {
		return 0, ErrTooManyDests
	}
	var daddr [16]byte
	var fwd uint8
	if d != nil {
		daddr, fwd = d.Addr().As16(), uint8(d.Fwd())
	}
	hd, err := t.insertTemplateSlot(k, di, daddr, dport, fwd, timeout, now, nil)
	if err != nil {
		t.dests.release(di)
	}
	return hd, err
}

// insertTemplateSlot inserts a template for k bound to destination slot di
// (0: none), whose reference it takes over on success. sy, if not nil, is
// the sync message the template comes from (ApplySync): its state, flags,
// mark, service and packet count are taken, else those of a new local
// template.
func (t *Table) insertTemplateSlot(k Key, di uint32, daddr [16]byte, dport uint16, fwd uint8,
	timeout time.Duration, now int64, sy *SyncConn) (Handle, error) {
	idx := t.allocEntry(freeHint(&k.Src, k.SrcPort))
	if idx == 0 {
		return 0, ErrFull
	}
	e := &t.ents[idx]
	e.lock() // dead and unindexed, but a stale lookup may lock it
	e.clear()
	e.caddr, e.cport, e.vaddr, e.vport, e.proto = k.Src, k.SrcPort, k.Dst, k.DstPort, k.Proto
	e.tmpl, e.dest = true, di
	e.daddr, e.dport, e.fwd = daddr, dport, fwd
	if k.Proto == ProtoIP && [12]byte(k.Dst[:12]) == v4prefix {
		// A firewall-mark service's template: the kernel records the
		// packet's mark, the service's.
		e.fwmark = binary.BigEndian.Uint32(k.Dst[12:])
	}
	if sy != nil {
		e.fwmark, e.svc = sy.FWMark, sy.Service
	}
	e.unlock()
	h := k.hash(t.seed)
	s := &t.shards[t.shardIdx(h)]
	s.mu.Lock()
	if l := t.find(h, &k, true); l != 0 && t.expiredLocked(l>>1, now) {
		s.mu.Unlock()
		t.expire(l>>1, now, expireReq{})
		s.mu.Lock()
	}
	if l, o := t.probe(h, &k, true); o != nil {
		hd := mkHandle(l>>1, o.gen())
		o.unlock()
		s.mu.Unlock()
		t.freeEntry(idx)
		return hd, ErrExists
	}
	e.lock()
	e.flags = FlagHashed | FlagTemplate
	e.state = StateNone
	if sy != nil {
		e.flags |= syncFlags(sy, di != 0)
		e.state, e.inPkts = sy.State, sy.InPkts
	}
	setTimer(e, timeout, now)
	if d := t.dests.get(di); d != nil {
		d.BindConn(true)
	}
	t.insert(h, idx<<1)
	hd := mkHandle(idx, e.gen())
	e.unlock()
	t.live.Add(1)
	s.mu.Unlock()
	return hd, nil
}
