package conntrack

import (
	"github.com/uvs-lb/uvs/sched"
)

// expireReq selects what expire may remove.
type expireReq struct {
	force     bool   // ignore the expiry time (expire_now)
	checkGen  bool   // gen must match (handle-based)
	gen       uint32 //
	dest      uint32 // if non-zero, only entries of this destination slot
	tmpl      int8   // 0 any, 1 templates only, -1 connections only
	evictable bool   // only entries Create may evict (evictClass)
	// idle, if set, also selects half-open connections not timed out
	// whose last packet was at or before idleBefore (drop_entry).
	idle       bool
	idleBefore int64
}

// selects reports whether r selects entry e (entry lock held).
func (r *expireReq) selects(e *entry, now int64) bool {
	if e.flags&FlagHashed == 0 ||
		(r.checkGen && e.gen() != r.gen) ||
		(r.dest != 0 && e.dest != r.dest) ||
		(r.tmpl == 1 && !e.tmpl) || (r.tmpl == -1 && e.tmpl) ||
		(r.evictable && evictClass(e) == evictNever) {
		return false
	}
	if r.force || timedOut(e, now) {
		return true
	}
	return r.idle && halfOpen(e) && lastSeen(e) <= r.idleBefore
}

// expire removes entry idx if r selects it (ip_vs_conn_expire): an entry
// still controlling connections is postponed by 60 s instead; otherwise it
// is removed from the index under both keys, uncounted from its
// destination (UnbindConn) and its template's n_control is decremented.
func (t *Table) expire(idx uint32, now int64, r expireReq) bool {
	e := &t.ents[idx]
	e.lock()
	if !r.selects(e, now) {
		e.unlock()
		return false
	}
	if e.nControl > 0 {
		setTimer(e, TemplatePostponeTO, now)
		e.unlock()
		return false
	}
	r.checkGen, r.gen = true, e.gen()
	ik := e.inKey()
	ok := ik
	if !e.tmpl {
		ok = e.outKey()
	}
	e.unlock()

	hi, ho := ik.hash(t.seed), ok.hash(t.seed)
	a, b := t.lock2(hi, ho)
	e.lock()
	if !r.selects(e, now) {
		e.unlock()
		unlock2(a, b)
		return false
	}
	if e.nControl > 0 { // linked meanwhile
		setTimer(e, TemplatePostponeTO, now)
		e.unlock()
		unlock2(a, b)
		return false
	}
	if e.flags&flagUnhashed == 0 {
		t.remove(hi, idx<<1)
	}
	if !e.tmpl {
		t.remove(ho, idx<<1|1)
	}
	di, ctrl, tmpl := e.dest, e.control, e.tmpl
	active := e.flags&FlagInactive == 0
	fast := e.flags&(flagFastIn|flagFastOut) != 0
	e.flags = 0
	e.unlockNextGen()
	unlock2(a, b)
	if fast {
		if fn := t.fastGone.Load(); fn != nil {
			(*fn)(ik, ok)
		}
	}

	if d := t.dests.get(di); d != nil {
		d.UnbindConn(tmpl, active && !tmpl)
	}
	t.dests.release(di)
	t.unlinkTemplate(ctrl)
	t.freeEntry(idx)
	t.live.Add(-1)
	return true
}

// Reap examines up to budget entries, continuing where the previous call
// stopped (a cursor round-robins over the arena), and removes those whose
// timer has run out by now, and, while the drop_entry defence is active
// (see Defense), the half-open connections idle for DropEntryIdle. It
// returns how many it removed. Call it periodically, e.g. every 100 ms
// with budget Capacity/100, so the whole table is covered every 10 s; it
// also re-evaluates the automatic defence levels once a second.
func (t *Table) Reap(now int64, budget int) (expired int) {
	t.maybeUpdateDefense(now)
	hw := uint64(t.highWater() - 1)
	if hw == 0 || budget <= 0 {
		return 0
	}
	if uint64(budget) > hw {
		budget = int(hw)
	}
	drop := expireReq{idle: true, idleBefore: now - int64(DropEntryIdle)}
	dropOn := t.pr.dropEntryOn.Load()
	start := t.cursor.Add(uint64(budget)) - uint64(budget)
	for i := range uint64(budget) {
		idx := uint32((start+i)%hw) + 1
		switch {
		case t.expire(idx, now, expireReq{}):
			expired++
		case dropOn && t.expire(idx, now, drop):
			t.pr.droppedEntry.Add(1)
			expired++
		}
	}
	return expired
}

// ExpireNow expires the entry h names at once (ip_vs_conn_expire_now): a
// connection is removed, a template still controlling connections is
// postponed by 60 s. It reports whether the entry was removed.
func (t *Table) ExpireNow(h Handle, now int64) bool {
	idx := h.idx()
	if idx == 0 || int(idx) >= len(t.ents) {
		return false
	}
	return t.expire(idx, now, expireReq{force: true, checkGen: true, gen: h.gen()})
}

// ExpireDest removes every connection bound to d and then every template
// of d that no longer controls connections; templates still controlling
// connections are postponed (expire_nodest_conn flush,
// ip_vs_expire_nodest_conn_flush). Call it when d is removed from its
// service. It walks the whole table and returns how many entries it
// removed.
func (t *Table) ExpireDest(d *sched.Dest, now int64) int {
	di := t.dests.lookup(d)
	if di == 0 {
		return 0
	}
	n := 0
	hw := t.highWater()
	for _, kind := range []int8{-1, 1} {
		for idx := uint32(1); idx < hw; idx++ {
			if t.expire(idx, now, expireReq{force: true, dest: di, tmpl: kind}) {
				n++
			}
		}
	}
	return n
}

// unlinkTemplate decrements template idx's n_control (ip_vs_control_del).
func (t *Table) unlinkTemplate(idx uint32) {
	if idx == 0 {
		return
	}
	e := &t.ents[idx]
	e.lock()
	e.nControl--
	e.unlock()
}

// linkTemplate increments the n_control of the template h names and
// returns its index, or 0 if h is stale or not a template.
func (t *Table) linkTemplate(h Handle) uint32 {
	idx := h.idx()
	if idx == 0 || int(idx) >= len(t.ents) {
		return 0
	}
	e := &t.ents[idx]
	e.lock()
	ok := e.flags&FlagHashed != 0 && e.tmpl && e.gen() == h.gen()
	if ok {
		e.nControl++
	}
	e.unlock()
	if !ok {
		return 0
	}
	return idx
}
