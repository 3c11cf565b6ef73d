package conntrack

import "time"

// FastDirs is a set of directions of a connection that an in-kernel fast
// path forwards without the data plane seeing the packets (the AF_XDP
// backend's XDP program, dataplane/afxdp): the owner of that path reads
// its per-flow counters back and reports them with RefreshFast, so that
// timers, statistics and listings stay right.
type FastDirs uint8

// The directions.
const (
	FastIn  = FastDirs(flagFastIn)  // client to real server
	FastOut = FastDirs(flagFastOut) // real server to client
)

// fast returns the bit of direction d.
func (d Dir) fast() FastDirs {
	if d == DirOut {
		return FastOut
	}
	return FastIn
}

// Has reports whether the set holds direction d.
func (f FastDirs) Has(d Dir) bool { return f&d.fast() != 0 }

// FastGrace is how much later than its timer a connection with a
// fast-path direction expires: the fast path's counters are read back
// about once a second (dataplane.FastPathPoll), so a packet it forwarded
// just before the timer ran out may not have re-armed it yet.
const FastGrace = 1500 * time.Millisecond

// fastGone is the function SetFastGone installed.
type fastGone = func(in, out Key)

// SetFastGone installs fn, called when a connection with a fast-path
// direction is removed (after the table's locks are released) with its
// inbound and reply keys, so that the fast path stops forwarding its
// packets at once. nil removes it.
func (t *Table) SetFastGone(fn func(in, out Key)) {
	if fn == nil {
		t.fastGone.Store(nil)
		return
	}
	t.fastGone.Store(&fn)
}

// SetFast adds (on) or removes direction d to or from the fast-path
// directions of the connection h names. It reports whether h names a live
// connection.
func (t *Table) SetFast(h Handle, d Dir, on bool) bool {
	idx := h.idx()
	if idx == 0 || int(idx) >= len(t.ents) {
		return false
	}
	e := &t.ents[idx]
	e.lock()
	defer e.unlock()
	if e.flags&FlagHashed == 0 || e.gen() != h.gen() || e.tmpl {
		return false
	}
	if on {
		e.flags |= Flags(d.fast())
	} else {
		e.flags &^= Flags(d.fast())
	}
	return true
}

// RefreshFast reports traffic the fast path forwarded for the connection
// whose key (either direction) is k: seen is the clock reading of its
// last packet (0: none since the last call). The timer is re-armed to
// seen plus the connection's timeout when that is later than it is now,
// as a packet the data plane handled would have done. out receives the
// connection as Lookup gives it; RefreshFast reports whether there is
// one.
func (t *Table) RefreshFast(k Key, seen int64, out *Conn) bool {
	l, e := t.probe(k.hash(t.seed), &k, false)
	if e == nil {
		return false
	}
	if seen > lastSeen(e) {
		e.expires = seen + int64(e.timeout)*int64(time.Millisecond)
	}
	t.fill(l>>1, e, Dir(l&1), out)
	e.unlock()
	return true
}

// timedOut reports whether entry e's timer ran out by now: FastGrace
// later for a connection with a fast-path direction.
func timedOut(e *entry, now int64) bool {
	x := e.expires
	if e.flags&(flagFastIn|flagFastOut) != 0 {
		x += int64(FastGrace)
	}
	return x <= now
}
