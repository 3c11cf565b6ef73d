package conntrack

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/uvs-lb/uvs/sched"
	"github.com/uvs-lb/uvs/spec"
)

// Connection synchronisation (net/netfilter/ipvs/ip_vs_sync.c): the
// master reports its connections and their templates (TemplateOf gives a
// connection's controlling template), the backup creates or refreshes them
// from the messages (ApplySync, the kernel's ip_vs_proc_conn).

// Errors of ApplySync.
var (
	// ErrSyncProto: a connection (not a template) of a protocol the table
	// has no state machine for.
	ErrSyncProto = errors.New("unsupported protocol in sync message")
	// ErrSyncState: a connection state out of its protocol's range.
	ErrSyncState = errors.New("invalid state in sync message")
	// ErrSyncLocal: a FULLNAT connection without its local address.
	ErrSyncLocal = errors.New("FULLNAT connection without local address in sync message")
)

// SyncConn is one connection or persistence template of a sync message,
// resolved against the backup's own configuration, for ApplySync.
type SyncConn struct {
	Proto    uint8 // IPPROTO_*; 0 for firewall-mark templates
	Template bool  // a persistence template
	// Flags are the message's IP_VS_CONN_F_* bits. ApplySync keeps those
	// of IP_VS_CONN_F_BACKUP_MASK (0x1E87) but the forwarding method,
	// which is Fwd, and adds FlagSync.
	Flags uint32
	State State // the protocol state (kernel numbering)
	// Client, Virtual and Real are caddr:cport, vaddr:vport and
	// daddr:dport. For a template they are its key (client network, port
	// 0; the VIP and port, or the mark as an IPv4 address for a
	// firewall-mark service) and its destination.
	Client, Virtual, Real Endpoint
	// Local is the FULLNAT local address and port (Fwd FULLNAT only).
	Local  Endpoint
	FWMark uint32
	// Timeout is the message's timeout; 0 (version 0 messages) means the
	// protocol's timeout for State, 180 s for a template.
	Timeout time.Duration
	// Dest is the backup's destination for daddr:dport in its service
	// (ip_vs_find_dest); nil leaves the entry unbound (still tracked).
	Dest *sched.Dest
	// Fwd is the forwarding method: Dest's, or the message's when Dest
	// is nil.
	Fwd spec.Fwd
	// Service identifies the backup's service (statistics), 0 if none.
	Service uint32
	// InPkts is what the entry's inbound packet count is set to: the
	// sync threshold, so that a promoted backup re-sends the connection
	// at the threshold plus the period (ip_vs_proc_conn).
	InPkts uint32
}

// SyncAction says what ApplySync did.
type SyncAction uint8

// Sync actions.
const (
	// SyncIgnored: the message reported a connection INACTIVE with
	// another destination than the live one, the stale expiry of a
	// connection the master already replaced; nothing changed.
	SyncIgnored SyncAction = iota
	// SyncCreated: a new entry.
	SyncCreated
	// SyncReplaced: the live entry had another destination; it was
	// expired (a template: made unmatchable) and a new one created.
	SyncReplaced
	// SyncUpdated: the live entry was refreshed.
	SyncUpdated
)

// String names the action.
func (a SyncAction) String() string {
	switch a {
	case SyncIgnored:
		return "ignored"
	case SyncCreated:
		return "created"
	case SyncReplaced:
		return "replaced"
	case SyncUpdated:
		return "updated"
	}
	return "sync-action?"
}

// SyncResult is the outcome of ApplySync.
type SyncResult struct {
	Action SyncAction
	// Unbound: the entry has no destination afterwards (the backup has
	// none at daddr:dport).
	Unbound bool
}

// templateSyncTimeout is the timeout of a template from a version 0
// message, which carries none (ip_vs_proc_conn: 3*60*HZ).
const templateSyncTimeout = 180 * time.Second

// maxSyncTimeout is the longest timeout an entry can hold (milliseconds in
// a uint32).
const maxSyncTimeout = time.Duration(math.MaxUint32) * time.Millisecond

// inKey returns the inbound key (a template's key) of the message.
func (s *SyncConn) inKey() Key {
	return Key{Src: s.Client.Addr, Dst: s.Virtual.Addr, SrcPort: s.Client.Port, DstPort: s.Virtual.Port, Proto: s.Proto}
}

// check validates the message as ip_vs_proc_sync_conn does before
// ip_vs_proc_conn: a connection's protocol and state must be known; a
// template's state is not checked.
func (s *SyncConn) check() error {
	if s.Template {
		return nil
	}
	switch s.Proto {
	case ProtoTCP:
		if s.State >= NumTCPStates {
			return fmt.Errorf("%w: TCP state %d", ErrSyncState, s.State)
		}
	case ProtoUDP:
		if s.State != StateNormal {
			return fmt.Errorf("%w: UDP state %d", ErrSyncState, s.State)
		}
	case ProtoSCTP:
		if s.State >= NumSCTPStates {
			return fmt.Errorf("%w: SCTP state %d", ErrSyncState, s.State)
		}
	default:
		return fmt.Errorf("%w: protocol %d", ErrSyncProto, s.Proto)
	}
	if s.Fwd == spec.FwdFullNAT && s.Local == (Endpoint{}) {
		return fmt.Errorf("%w: %v -> %v", ErrSyncLocal, s.Client.AddrPort(), s.Virtual.AddrPort())
	}
	return nil
}

// timeout returns the entry timeout of the message (ip_vs_proc_conn).
func (t *Table) syncTimeout(s *SyncConn) time.Duration {
	switch {
	case s.Timeout > 0:
		return min(s.Timeout, maxSyncTimeout)
	case s.Template:
		return templateSyncTimeout
	case s.Proto == ProtoTCP:
		return time.Duration(t.tcpTO[s.State].Load())
	case s.Proto == ProtoUDP:
		return time.Duration(t.udpTO.Load())
	case s.Proto == ProtoSCTP:
		return DefaultSCTPTimeout(s.State)
	}
	return templateSyncTimeout
}

// noOutput reports whether a connection of method fwd starts with
// NOOUTPUT: the methods whose replies bypass the director.
func noOutput(fwd spec.Fwd) bool { return fwd != spec.FwdMasq && fwd != spec.FwdFullNAT }

// syncFlags returns the flags of an entry created from s (ip_vs_proc_conn,
// ip_vs_bind_dest): the message's bits of the backup mask but the method,
// plus SYNC; a bound connection's NOOUTPUT follows its (the destination's)
// method, the INACTIVE bit stays the message's.
func syncFlags(s *SyncConn, bound bool) Flags {
	f := Flags(s.Flags)&(FlagNoOutput|FlagInactive|FlagSeqMask|FlagNoCPort) | FlagSync
	if s.Template {
		f |= FlagTemplate
	} else if bound {
		f &^= FlagNoOutput
		if noOutput(s.Fwd) {
			f |= FlagNoOutput
		}
	}
	return f
}

// ApplySync creates or refreshes the connection or template s describes,
// as the kernel's backup does (ip_vs_proc_conn):
//
//   - a live connection with the same inbound key but another daddr:dport
//     is expired at once and s created in its place, unless s is
//     INACTIVE (then it is the stale expiry of a connection the master
//     already replaced, and is ignored);
//   - a live entry is updated: of its flags only INACTIVE and the SEQ
//     bits change, an INACTIVE flip moving the destination's count
//     between active and inactive connections; an unbound entry is bound
//     to s.Dest (and takes its forwarding method) when there is one;
//   - otherwise an entry is created, bound to s.Dest (counted active or
//     inactive by its INACTIVE bit, a template in persistconns) or
//     unbound, without client MAC or interface, flagged FlagSync;
//   - either way its state becomes s.State, its inbound packet count
//     s.InPkts, and its timer is re-armed with s's timeout (for a
//     version 0 message, the protocol's timeout for the state, 180 s for
//     a template).
//
// A template's key is the one the schedulers insert (NewTemplateKey,
// NewFWMarkTemplateKey), so a promoted backup's scheduler finds it. Unlike
// the kernel, which refreshes a template with whatever destination it
// has, a template whose daddr:dport differs from the message is made
// unmatchable (as an invalid template is) and replaced: the master's
// choice is the one clients must keep after a failover.
//
// Errors (nothing changed): ErrSyncProto, ErrSyncState, ErrSyncLocal,
// ErrFull, ErrTooManyDests, and ErrExists when the new connection's
// outbound key belongs to another connection.
func (t *Table) ApplySync(s *SyncConn, now int64) (SyncResult, error) {
	if err := s.check(); err != nil {
		return SyncResult{}, err
	}
	// The destination's slot is taken first: the registry's lock comes
	// before any other.
	di, ok := t.dests.acquire(s.Dest)
	if !ok {
		return SyncResult{}, ErrTooManyDests
	}
	var (
		res  SyncResult
		used bool
		err  error
	)
	if s.Template {
		res, used, err = t.applySyncTemplate(s, di, now)
	} else {
		res, used, err = t.applySyncConn(s, di, now)
	}
	if !used {
		t.dests.release(di)
	}
	return res, err
}

// applySyncConn applies a connection; it reports whether it used the
// reference to destination slot di.
func (t *Table) applySyncConn(s *SyncConn, di uint32, now int64) (SyncResult, bool, error) {
	ik := s.inKey()
	hi := ik.hash(t.seed)
	replaced := false
	for try := 0; ; try++ {
		l, e := t.probe(hi, &ik, false)
		if e != nil && l&1 != 0 {
			// The key is another connection's reply tuple.
			e.unlock()
			return SyncResult{}, false, fmt.Errorf("%w: %v -> %v", ErrExists, s.Client.AddrPort(), s.Virtual.AddrPort())
		}
		if e != nil {
			idx, gen := l>>1, e.gen()
			switch {
			case e.expires <= now:
				// Timed out but not reaped yet: gone.
				e.unlock()
				t.expire(idx, now, expireReq{checkGen: true, gen: gen})
			case e.daddr != s.Real.Addr || e.dport != s.Real.Port:
				if Flags(s.Flags)&FlagInactive != 0 {
					e.unlock()
					return SyncResult{Action: SyncIgnored}, false, nil
				}
				e.unlock()
				t.expire(idx, now, expireReq{force: true, checkGen: true, gen: gen})
				replaced = true
			default:
				used := t.updateSync(e, s, di, now)
				unbound := e.dest == 0
				e.unlock()
				return SyncResult{Action: SyncUpdated, Unbound: unbound}, used, nil
			}
		}
		err := t.createSync(s, di, now)
		switch {
		case err == nil:
			res := SyncResult{Action: SyncCreated, Unbound: di == 0}
			if replaced {
				res.Action = SyncReplaced
			}
			return res, true, nil
		case errors.Is(err, ErrExists) && try == 0 && t.find(hi, &ik, false) != 0:
			// Created meanwhile by another goroutine: update it.
			continue
		case errors.Is(err, ErrExists):
			return SyncResult{}, false, fmt.Errorf("%w: %v -> %v", err, s.Client.AddrPort(), s.Virtual.AddrPort())
		}
		return SyncResult{}, false, err
	}
}

// updateSync refreshes live entry e (locked) from s; it reports whether it
// bound e to destination slot di, using its reference.
func (t *Table) updateSync(e *entry, s *SyncConn, di uint32, now int64) bool {
	msg := Flags(s.Flags)
	if d := t.dests.get(e.dest); d != nil && !e.tmpl && (e.flags^msg)&FlagInactive != 0 {
		d.SetActive(msg&FlagInactive == 0)
	}
	const upd = FlagInactive | FlagSeqMask // IP_VS_CONN_F_BACKUP_UPD_MASK
	e.flags = e.flags&^upd | msg&upd
	used := false
	// ip_vs_try_bind_dest. The method comes with the destination, but a
	// connection cannot become or stop being FULLNAT: its reply key
	// would change.
	if e.dest == 0 && di != 0 && (e.tmpl || (spec.Fwd(e.fwd) == spec.FwdFullNAT) == (s.Fwd == spec.FwdFullNAT)) {
		e.dest, e.fwd, used = di, uint8(s.Fwd), true
		d := t.dests.get(di)
		if e.tmpl {
			d.BindConn(true)
		} else {
			e.flags &^= FlagNoOutput
			if noOutput(s.Fwd) {
				e.flags |= FlagNoOutput
			}
			d.BindConn(false)
			if e.flags&FlagInactive == 0 {
				d.SetActive(true)
			}
		}
	}
	e.state, e.inPkts = s.State, s.InPkts
	setTimer(e, t.syncTimeout(s), now)
	return used
}

// createSync inserts a new connection from s bound to destination slot di
// (0: none), taking over its reference on success.
func (t *Table) createSync(s *SyncConn, di uint32, now int64) error {
	idx := t.allocEntry(freeHint(&s.Client.Addr, s.Client.Port))
	if idx == 0 {
		return ErrFull
	}
	e := &t.ents[idx]
	e.lock() // dead and unindexed, but a stale lookup may lock it
	e.clear()
	e.caddr, e.cport = s.Client.Addr, s.Client.Port
	e.vaddr, e.vport = s.Virtual.Addr, s.Virtual.Port
	e.daddr, e.dport = s.Real.Addr, s.Real.Port
	if s.Fwd == spec.FwdFullNAT {
		e.laddr, e.lport = s.Local.Addr, s.Local.Port
	}
	e.proto, e.fwd = s.Proto, uint8(s.Fwd)
	e.dest, e.fwmark, e.svc = di, s.FWMark, s.Service
	ik, ok := e.inKey(), e.outKey()
	e.unlock()

	hi, ho := ik.hash(t.seed), ok.hash(t.seed)
	a, b, err := t.lockUnused(hi, ho, &ik, &ok, now)
	if err != nil {
		t.freeEntry(idx)
		return err
	}
	e.lock()
	e.flags = FlagHashed | flagReplied | syncFlags(s, di != 0) // replied: the master saw it through
	e.state, e.inPkts = s.State, s.InPkts
	setTimer(e, t.syncTimeout(s), now)
	if d := t.dests.get(di); d != nil {
		d.BindConn(false)
		if e.flags&FlagInactive == 0 {
			d.SetActive(true)
		}
	}
	t.insert(hi, idx<<1)
	t.insert(ho, idx<<1|1)
	e.unlock()
	t.live.Add(1)
	unlock2(a, b)
	return nil
}

// applySyncTemplate applies a template; it reports whether it used the
// reference to destination slot di.
func (t *Table) applySyncTemplate(s *SyncConn, di uint32, now int64) (SyncResult, bool, error) {
	k := s.inKey()
	for try := 0; ; try++ {
		var (
			used, unbound, replaced bool
			stale                   Handle
		)
		found := t.withTemplate(k, now, func(h uint64, idx uint32, e *entry) bool {
			if e.daddr != s.Real.Addr || e.dport != s.Real.Port {
				t.neutralise(h, idx, e)
				replaced = true
				if e.nControl == 0 {
					stale = mkHandle(idx, e.gen())
				}
				return false
			}
			used = t.updateSync(e, s, di, now)
			unbound = e.dest == 0
			return true
		})
		if found {
			return SyncResult{Action: SyncUpdated, Unbound: unbound}, used, nil
		}
		if stale != 0 {
			// Controls nothing: no need to keep it until its timer.
			t.ExpireNow(stale, now)
		}
		_, err := t.insertTemplateSlot(k, di, s.Real.Addr, s.Real.Port, uint8(s.Fwd), t.syncTimeout(s), now, s)
		switch {
		case err == nil:
			res := SyncResult{Action: SyncCreated, Unbound: di == 0}
			if replaced {
				res.Action = SyncReplaced
			}
			return res, true, nil
		case errors.Is(err, ErrExists) && try == 0:
			continue // inserted meanwhile by a worker: refresh it
		}
		return SyncResult{}, false, err
	}
}

// TemplateOf fills out with the persistence template controlling the
// connection h names (the kernel's cp->control, which the master syncs
// after the connection) and reports whether there is one. out.Flags
// include FlagTemplate; out.Client, Virtual and Real are the template's
// key and destination; out.InPkts is the template's own inbound count,
// incremented by this call as the kernel does when it syncs a controller
// (ip_vs_sync_conn: pkts = ++cp->control->in_pkts). It does not allocate.
func (t *Table) TemplateOf(h Handle, now int64, out *Conn) bool {
	idx := h.idx()
	if idx == 0 || int(idx) >= len(t.ents) {
		return false
	}
	e := &t.ents[idx]
	e.lock()
	ctrl := e.control
	if e.flags&FlagHashed == 0 || e.gen() != h.gen() || e.tmpl || ctrl == 0 {
		e.unlock()
		return false
	}
	// Lock order: the connection, then its template, which the
	// connection keeps alive (n_control).
	te := &t.ents[ctrl]
	te.lock()
	ok := te.flags&FlagHashed != 0 && te.tmpl
	if ok {
		te.inPkts++
		t.fill(ctrl, te, DirIn, out)
	}
	te.unlock()
	e.unlock()
	return ok
}
