package conntrack

import (
	"net/netip"
	"time"

	"github.com/uvs-lb/uvs/sched"
	"github.com/uvs-lb/uvs/spec"
)

// Endpoint is a packed address and port (IPv4 stored IPv4-mapped), the
// form the data plane copies into headers.
type Endpoint struct {
	Addr [16]byte
	Port uint16
}

// EndpointFrom packs a netip value.
func EndpointFrom(ap netip.AddrPort) Endpoint {
	return Endpoint{Addr: ap.Addr().As16(), Port: ap.Port()}
}

// AddrPort returns the endpoint as a netip value (IPv4 unmapped).
func (e Endpoint) AddrPort() netip.AddrPort { return addrPort(e.Addr, e.Port) }

// Is4 reports whether the address is IPv4 (IPv4-mapped).
func (e Endpoint) Is4() bool { return [12]byte(e.Addr[:12]) == v4prefix }

// NewConn describes a connection to create after scheduling.
type NewConn struct {
	// In is the first packet's tuple, client → VIP.
	In Key
	// Fwd is the forwarding method.
	Fwd spec.Fwd
	// Dest is the chosen destination (nil for none, e.g. bypass); the
	// table counts the connection in it.
	Dest *sched.Dest
	// Real is daddr:dport. If zero and Dest is set, Dest's address is used
	// with Dest's port, or In.DstPort when Dest's port is 0.
	Real Endpoint
	// Local is laddr:lport, used only for FULLNAT.
	Local Endpoint
	// Template is the controlling persistence template, from
	// LookupTemplate or InsertTemplate (0 = none). A stale handle is
	// ignored.
	Template Handle
	// MAC and Ifindex are the client-side next hop learnt from the
	// request frame (source MAC, ingress interface).
	MAC     [6]byte
	Ifindex int32
	// VLAN is the 802.1Q VLAN id (1-4094) the request frame was tagged
	// with, the VLAN the client is on; 0 when untagged (or tagged with
	// VLAN 0, a priority tag, which belongs to the untagged network).
	VLAN uint16
	// FWMark is the packet mark at creation; Service identifies the
	// service for its statistics.
	FWMark  uint32
	Service uint32
}

// Conn is a value copy of what the data plane needs about a connection,
// filled by Track, Lookup and Create.
type Conn struct {
	Handle     Handle
	Dir        Dir   // direction the key matched (DirIn for Create)
	Proto      uint8 // IP protocol
	Fwd        spec.Fwd
	State      State // state after this packet
	OldState   State // state before this packet (NONE for Create)
	Flags      Flags
	Controlled bool // linked to a persistence template
	Client     Endpoint
	Virtual    Endpoint
	Real       Endpoint
	Local      Endpoint // FULLNAT only
	Dest       *sched.Dest
	MAC        [6]byte
	Ifindex    int32
	VLAN       uint16 // the client side's VLAN id (NewConn.VLAN); 0: untagged
	FWMark     uint32
	Service    uint32
	Timeout    time.Duration // current timeout (timer re-armed to now+Timeout)
	Expires    int64         // clock reading at which it expires
	// InPkts is the connection's inbound packet count, this packet
	// included (the kernel's cp->in_pkts, which the sync daemon's
	// sync_threshold rule reads). It wraps at 2^32.
	InPkts uint32
	// Fast holds the directions the in-kernel fast path forwards
	// (FastIn, FastOut; SetFast).
	Fast FastDirs
	// Evicted is set by Create when it made room by evicting a live
	// connection (a half-open TCP connection or an idle datagram flow,
	// see Stats.Evicted): the data plane's CntTableEvicted.
	Evicted bool
}

// StateName returns the state as ipvsadm prints it.
func (c *Conn) StateName() string { return StateName(c.Proto, false, c.State) }

// fill copies entry idx (locked) into out. It stores field by field:
// building a Conn value and copying it would read back narrow stores with
// wide loads, which the store buffer cannot forward.
func (t *Table) fill(idx uint32, e *entry, dir Dir, out *Conn) {
	out.Handle = mkHandle(idx, e.gen())
	out.Dir = dir
	out.Proto = e.proto
	out.Fwd = spec.Fwd(e.fwd)
	out.State = e.state
	out.OldState = e.state
	out.Flags = e.flags &^ flagsInternal
	out.Controlled = e.control != 0
	out.Client.Addr, out.Client.Port = e.caddr, e.cport
	out.Virtual.Addr, out.Virtual.Port = e.vaddr, e.vport
	out.Real.Addr, out.Real.Port = e.daddr, e.dport
	out.Local.Addr, out.Local.Port = e.laddr, e.lport
	out.Dest = t.dests.get(e.dest)
	out.MAC = e.mac
	out.Ifindex = e.ifindex
	out.VLAN = 0
	if e.flags&flagVLAN != 0 {
		// Kept beside the entry, which has no room left: read only for
		// the connections that have one.
		out.VLAN = t.vlans[idx]
	}
	out.FWMark = e.fwmark
	out.Service = e.svc
	out.Timeout = time.Duration(e.timeout) * time.Millisecond
	out.Expires = e.expires
	out.InPkts = e.inPkts
	out.Fast = FastDirs(e.flags & (flagFastIn | flagFastOut))
	out.Evicted = false
}

// setTimer sets the entry's timeout and re-arms its expiry.
func setTimer(e *entry, d time.Duration, now int64) {
	e.timeout = uint32(d / time.Millisecond)
	e.expires = now + int64(d)
}

// transition applies one packet to a connection (entry lock held): the
// protocol state change (set_tcp_state / udp_state_transition), dest
// active/inactive accounting and the timer. It reports whether the
// controlling template must be marked ASSURED.
func (t *Table) transition(e *entry, dir Dir, tcpFlags uint8, now int64) (assure bool) {
	if e.proto == ProtoSCTP {
		return t.sctpTransition(e, dir, tcpFlags, now) // tcpFlags is the SCTPEvent (sctp.go)
	}
	if e.proto != ProtoTCP {
		// UDP and any other protocol: one state, always inactive; a
		// reply assures the template (and makes the connection no
		// longer half-open).
		setTimer(e, time.Duration(t.udpTO.Load()), now)
		if dir == DirOut {
			e.flags |= flagReplied
			return true
		}
		return false
	}
	off := tabInput
	if e.flags&FlagNoOutput != 0 {
		if dir == DirOut {
			e.flags &^= FlagNoOutput
			off = tabOutput
		} else {
			off = tabInputOnly
		}
	} else if dir == DirOut {
		off = tabOutput
	}
	ns := StateClose
	if ev := tcpEvent(tcpFlags); ev >= 0 {
		if t.secure.Load() {
			ns = tcpStatesDOS[off][ev][e.state]
		} else {
			ns = tcpStates[off][ev][e.state]
		}
	}
	if ns != e.state {
		if d := t.dests.get(e.dest); d != nil {
			switch inactive := e.flags&FlagInactive != 0; {
			case !inactive && !tcpActive(ns):
				d.SetActive(false)
				e.flags |= FlagInactive
			case inactive && tcpActive(ns):
				d.SetActive(true)
				e.flags &^= FlagInactive
			}
		}
		assure = ns == StateEstablished
	}
	e.state = ns
	setTimer(e, time.Duration(t.tcpTO[ns].Load()), now)
	return assure
}

// assure marks template idx ASSURED (ip_vs_control_assure_ct). The caller
// holds the lock of a connection the template controls, which keeps the
// template alive (lock order: connection entry, then template entry).
func (t *Table) assure(idx uint32) {
	e := &t.ents[idx]
	e.lock()
	if e.flags&FlagHashed != 0 && e.tmpl {
		e.state = StateAssured
	}
	e.unlock()
}

// Track looks up the packet's key in both directions and, if a connection
// matches, applies the packet: the TCP state transition for the matched
// direction (INPUT, OUTPUT, or INPUT_ONLY while NOOUTPUT is set; an output
// packet clears NOOUTPUT) and its flags, active/inactive accounting on the
// destination, the timer (expires = now + timeout[state]) and the
// controlling template's ASSURED mark. It fills out and reports whether a
// connection matched. It does not allocate, and takes one lock (the
// entry's; a second, the template's, on the packet that makes a
// controlled connection ESTABLISHED).
//
// For conn_reuse_mode the caller checks, on a SYN matching DirIn,
// out.OldState (TIME_WAIT or CLOSE) and out.Controlled, and then calls
// ExpireNow(out.Handle) and schedules afresh.
func (t *Table) Track(k Key, tcpFlags uint8, now int64, out *Conn) bool {
	return t.trackHashed(k.hash(t.seed), &k, tcpFlags, now, out)
}

func (t *Table) trackHashed(h uint64, k *Key, tcpFlags uint8, now int64, out *Conn) bool {
	l, e := t.probe(h, k, false)
	if e == nil {
		return false
	}
	idx, dir := l>>1, Dir(l&1)
	if timedOut(e, now) {
		// Timed out but not reaped yet: gone, as with the kernel's timer.
		gen := e.gen()
		e.unlock()
		t.expire(idx, now, expireReq{checkGen: true, gen: gen})
		return false
	}
	old := e.state
	if dir == DirIn {
		e.inPkts++
	}
	assure := t.transition(e, dir, tcpFlags, now)
	t.fill(idx, e, dir, out)
	out.OldState = old
	if assure && e.control != 0 {
		t.assure(e.control)
	}
	e.unlock()
	return true
}

// Lookup finds the connection matching k in either direction without
// changing it. A connection whose timer ran out by now is not found.
func (t *Table) Lookup(k Key, now int64, out *Conn) bool {
	l, e := t.probe(k.hash(t.seed), &k, false)
	if e == nil {
		return false
	}
	ok := !timedOut(e, now)
	if ok {
		t.fill(l>>1, e, Dir(l&1), out)
	}
	e.unlock()
	return ok
}

// Contains reports whether k is in use by a connection in either direction
// (e.g. for a FULLNAT local-port allocator), counting connections that
// timed out but are not reaped yet.
func (t *Table) Contains(k Key) bool {
	return t.find(k.hash(t.seed), &k, false) != 0
}

// Create inserts a connection under its inbound and outbound keys, counts
// it in its destination (BindConn, inactive), links it to its template
// (n_control++), starts it in state NONE with the 3 s initial timeout and
// applies the first packet (tcpFlags, INPUT direction) as the kernel does
// right after scheduling: a SYN moves it to SYN_RECV and makes it active.
// If out is not nil it is filled. Errors: ErrFull, ErrExists,
// ErrTooManyDests, ErrDropped. It does not allocate once the destination
// is known to the table.
//
// When no entry is free, Create reclaims one (reclaim, pressure.go): a
// timed-out entry the reaper has not reached yet, or else the half-open
// connection idle the longest among a few dozen examined; only if there
// is neither does it return ErrFull. While the drop_packet defence is
// active it refuses one new connection in its rate with ErrDropped.
func (t *Table) Create(p *NewConn, tcpFlags uint8, now int64, out *Conn) error {
	if t.todrop() {
		t.pr.droppedPacket.Add(1)
		return ErrDropped
	}
	di, ok := t.dests.acquire(p.Dest)
	if !ok {
		return ErrTooManyDests
	}
	idx := t.allocEntry(freeHint(&p.In.Src, p.In.SrcPort))
	evicted := false
	for try := 0; idx == 0 && try < reclaimTries; try++ {
		evicted = t.reclaim(now) == reclaimEvicted || evicted
		idx = t.allocEntry(freeHint(&p.In.Src, p.In.SrcPort))
	}
	if idx == 0 {
		t.dests.release(di)
		t.pr.full.Add(1)
		return ErrFull
	}
	ctrl := t.linkTemplate(p.Template)
	real := p.Real
	if real == (Endpoint{}) && p.Dest != nil {
		real = Endpoint{p.Dest.Addr().As16(), p.Dest.Port()}
		if real.Port == 0 {
			real.Port = p.In.DstPort
		}
	}
	// The entry is dead (flags 0) and unindexed, but a lookup holding a
	// stale link may lock it: write it under its lock.
	e := &t.ents[idx]
	e.lock()
	e.clear()
	e.caddr, e.cport = p.In.Src, p.In.SrcPort
	e.vaddr, e.vport = p.In.Dst, p.In.DstPort
	e.daddr, e.dport = real.Addr, real.Port
	if p.Fwd == spec.FwdFullNAT {
		e.laddr, e.lport = p.Local.Addr, p.Local.Port
	}
	e.proto, e.fwd = p.In.Proto, uint8(p.Fwd)
	e.dest, e.control = di, ctrl
	e.mac, e.ifindex, e.fwmark, e.svc = p.MAC, p.Ifindex, p.FWMark, p.Service
	vlan := p.VLAN & 0x0fff
	t.vlans[idx] = vlan
	ik, ok2 := p.In, e.outKey()
	e.unlock()

	hi, ho := ik.hash(t.seed), ok2.hash(t.seed)
	a, b, err := t.lockUnused(hi, ho, &ik, &ok2, now)
	if err != nil {
		t.unlinkTemplate(ctrl)
		t.freeEntry(idx)
		t.dests.release(di)
		return err
	}
	e.lock()
	e.flags = FlagHashed | FlagInactive
	if p.Fwd != spec.FwdMasq && p.Fwd != spec.FwdFullNAT {
		e.flags |= FlagNoOutput
	}
	if vlan != 0 {
		e.flags |= flagVLAN
	}
	e.state = StateNone
	e.inPkts = 1 // the first packet, inbound
	setTimer(e, InitialTimeout, now)
	if p.Dest != nil {
		p.Dest.BindConn(false)
	}
	assure := t.transition(e, DirIn, tcpFlags, now)
	if out != nil {
		t.fill(idx, e, DirIn, out)
		out.OldState = StateNone
		out.Evicted = evicted
	}
	t.insert(hi, idx<<1)
	t.insert(ho, idx<<1|1)
	if assure && ctrl != 0 {
		t.assure(ctrl)
	}
	e.unlock()
	t.live.Add(1)
	unlock2(a, b)
	return nil
}

// lockUnused locks the shards of hi and ho (the hashes of a new
// connection's keys ik and ok) and checks that neither key is in use; a
// duplicate that timed out but is not reaped yet is removed and the check
// retried once. It returns the shards locked, or ErrExists with none
// locked.
func (t *Table) lockUnused(hi, ho uint64, ik, ok *Key, now int64) (a, b *shard, err error) {
	a, b = t.lock2(hi, ho)
	for try := 0; ; try++ {
		l := t.find(hi, ik, false)
		if l == 0 {
			l = t.find(ho, ok, false)
		}
		if l == 0 {
			return a, b, nil
		}
		if try == 0 && t.expiredLocked(l>>1, now) {
			unlock2(a, b)
			t.expire(l>>1, now, expireReq{})
			a, b = t.lock2(hi, ho)
			continue
		}
		unlock2(a, b)
		return nil, nil, ErrExists
	}
}

// expiredLocked reports whether entry idx, found in the index under a
// shard lock the caller holds, has timed out and controls nothing.
func (t *Table) expiredLocked(idx uint32, now int64) bool {
	e := &t.ents[idx]
	e.lock()
	x := timedOut(e, now) && e.nControl == 0
	e.unlock()
	return x
}
