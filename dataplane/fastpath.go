package dataplane

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/spec"
)

// FastKey is one direction of a flow as received: what an in-kernel fast
// path matches.
type FastKey struct {
	Src, Dst         [4]byte
	SrcPort, DstPort uint16
	Proto            uint8
}

// FastFlow is one direction of a connection handed to an in-kernel fast
// path: frames matching Key are rewritten as the worker rewrote the one it
// forwarded (TTL decremented; with SetDst the destination set to
// Dst:DstPort, with SetSrc the source to Src:SrcPort; checksums updated;
// the Ethernet addresses set) and sent on Ifindex. NAT sets one side,
// FULLNAT both, DR neither.
type FastFlow struct {
	Key            FastKey
	SetSrc, SetDst bool
	Src, Dst       [4]byte
	SrcPort        uint16
	DstPort        uint16
	DstMAC, SrcMAC [6]byte
	Ifindex        int
	// MTU is the largest IP packet the fast path sends; larger ones come
	// to the worker (0: no limit known).
	MTU int
	// NextHop is the address whose next hop the worker sent the frame to
	// (the real server's, or the client's for a reply), and Reply says
	// the flow is a connection's reply direction.
	NextHop [4]byte
	Reply   bool
	// Encap (TUN) sends the packet, addresses and ports kept, in IPIP
	// from TunSrc (the director's address towards the real server) to
	// NextHop (the real server); MTU is the outer packet's limit (the
	// tunnel's path MTU).
	Encap  bool
	TunSrc [4]byte
}

// FastCounts are what the fast path forwarded of one flow since it was
// installed.
type FastCounts struct {
	Packets, Bytes uint64
	// Last is the CLOCK_MONOTONIC reading of its last packet, in ns.
	Last int64
	// Installed is the CLOCK_MONOTONIC reading at which it was put.
	Installed int64
}

// FastMap is an in-kernel fast path's flow table (the AF_XDP backend's
// XDP program: dataplane/afxdp.FastMap).
type FastMap interface {
	// CanSend reports whether the fast path can transmit on ifindex (the
	// device takes frames redirected by XDP).
	CanSend(ifindex int) bool
	// Put installs f, replacing the flow with its key, counters zeroed.
	Put(f *FastFlow) error
	// Delete removes the flow with key k and returns its counts (ok
	// false if there was none).
	Delete(k FastKey) (c FastCounts, ok bool, err error)
	// ReadAll calls fn with every installed flow's counts.
	ReadAll(fn func(k FastKey, c FastCounts)) error
	// Mono returns the CLOCK_MONOTONIC reading now, in ns.
	Mono() int64
}

// FastMaxAge is how long a flow stays installed before the fast path
// hands it back to the worker, which installs it again from its next
// packet as things are then: a safety net behind the checks of each poll
// (the next hop, the destination, the connection) and the flushes on
// every change of configuration, interfaces and VRRP roles.
const FastMaxAge = 30 * time.Second

// FastMinPackets is how many inbound packets a connection has sent
// through the worker before the fast path takes it: short connections
// (a request and its answer) stay with the worker, which saves the
// installing and removing (bpf syscalls) where they would cost more than
// the packets they spare.
const FastMinPackets = 16

// FastPathPoll is how often FastPath.Poll should run: each run reads the
// flows' counters back into the connection table and the statistics.
const FastPathPoll = time.Second

// FastPath hands established IPv4 NAT, FULLNAT and DR connections to an in-kernel fast
// path and keeps the connection table and the statistics as if the
// worker had seen their packets: the workers install a direction once
// they have forwarded FastMinPackets of the connection
// (Worker.fastFollow), Poll reads the counters back (the connection's
// timer re-armed from its last packet, its destination's and service's
// packet and byte counters advanced) and hands back to the worker the
// flows whose next hop, destination or connection changed. A connection
// that leaves ESTABLISHED (its FIN, RST or SYN reach the worker) or
// expires is taken out at once. Its methods are safe for concurrent use;
// no lock is held across a system call.
type FastPath struct {
	m     FastMap
	conns *conntrack.Table
	env   *Env

	mu    sync.Mutex
	flows map[FastKey]*fastEntry // installed; the owner of a removal deletes its entry here first
	stats workerStats
	cn    conntrack.Conn

	pollMu sync.Mutex // one Poll at a time: counts and drops are its buffers
	counts map[FastKey]FastCounts
	drops  []fastDrop

	// noRoom is set when the map refused a flow (full): the workers stop
	// trying until a poll finds room again.
	noRoom atomic.Bool

	nflows    atomic.Int64
	installs  atomic.Uint64
	packets   atomic.Uint64
	putErrors atomic.Uint64
}

// fastEntry is an installed flow: what it was installed with and the
// counts accounted so far.
type fastEntry struct {
	flow FastFlow
	prev FastCounts
}

// fastDrop is a flow Poll hands back to the worker.
type fastDrop struct {
	k    FastKey
	e    fastEntry
	c    conntrack.Conn
	conn bool // c is its connection
}

// NewFastPath returns a FastPath over m for the workers of env, and makes
// env's connection table tell it when a connection with a fast-path
// direction goes. Set env.Fast to it before the workers start.
func NewFastPath(m FastMap, env *Env) *FastPath {
	f := &FastPath{m: m, conns: env.Conns, env: env, flows: map[FastKey]*fastEntry{}, counts: map[FastKey]FastCounts{}}
	env.Conns.SetFastGone(f.gone)
	return f
}

// FastStats are a FastPath's figures.
type FastStats struct {
	Flows     int64  // installed now
	Installs  uint64 // installed since start
	Packets   uint64 // forwarded by the fast path, as read back so far
	PutErrors uint64 // installs the map refused (full): none more until the next poll
}

// Stats returns the figures.
func (f *FastPath) Stats() FastStats {
	return FastStats{Flows: f.nflows.Load(), Installs: f.installs.Load(), Packets: f.packets.Load(), PutErrors: f.putErrors.Load()}
}

// fastKeyOf returns k's IPv4 fast-path key.
func fastKeyOf(k *conntrack.Key) FastKey {
	return FastKey{Src: [4]byte(k.Src[12:]), Dst: [4]byte(k.Dst[12:]), SrcPort: k.SrcPort, DstPort: k.DstPort, Proto: k.Proto}
}

// connKey returns the connection-table key of k.
func (k FastKey) connKey() conntrack.Key {
	return conntrack.Key{Src: netip.AddrFrom4(k.Src).As16(), Dst: netip.AddrFrom4(k.Dst).As16(), SrcPort: k.SrcPort, DstPort: k.DstPort, Proto: k.Proto}
}

// install puts flow (direction dir of connection h) into the fast path.
func (f *FastPath) install(h conntrack.Handle, dir conntrack.Dir, flow *FastFlow) {
	if f.noRoom.Load() {
		return
	}
	if err := f.m.Put(flow); err != nil {
		f.putErrors.Add(1)
		f.noRoom.Store(true)
		return
	}
	f.mu.Lock()
	if _, ok := f.flows[flow.Key]; !ok {
		f.nflows.Add(1)
	}
	f.flows[flow.Key] = &fastEntry{flow: *flow}
	f.mu.Unlock()
	f.installs.Add(1)
	if !f.conns.SetFast(h, dir, true) {
		f.removeKey(flow.Key, nil) // gone meanwhile
	}
}

// take removes k from the installed flows (f.mu held): the caller owns
// its removal from the map.
func (f *FastPath) take(k FastKey) (fastEntry, bool) {
	e, ok := f.flows[k]
	if !ok {
		return fastEntry{}, false
	}
	delete(f.flows, k)
	f.nflows.Add(-1)
	return *e, true
}

// finish deletes a taken flow from the map and accounts what it forwarded
// since its last poll to connection c (nil: looked up; f.mu not held).
func (f *FastPath) finish(k FastKey, e fastEntry, c *conntrack.Conn) {
	cnt, ok, _ := f.m.Delete(k)
	if !ok || cnt.Packets == e.prev.Packets {
		return
	}
	var cn conntrack.Conn
	if c == nil {
		if !f.conns.Lookup(k.connKey(), 0, &cn) {
			f.packets.Add(cnt.Packets - e.prev.Packets)
			return
		}
		c = &cn
	}
	f.mu.Lock()
	f.account(c, cnt, e.prev)
	f.mu.Unlock()
}

// removeKey takes the flow k out of the fast path, if installed.
func (f *FastPath) removeKey(k FastKey, c *conntrack.Conn) {
	f.mu.Lock()
	e, ok := f.take(k)
	f.mu.Unlock()
	if ok {
		f.finish(k, e, c)
	}
}

// account adds what a flow forwarded since prev to the statistics (f.mu
// held).
func (f *FastPath) account(c *conntrack.Conn, cnt, prev FastCounts) {
	n, b := cnt.Packets-prev.Packets, cnt.Bytes-prev.Bytes
	f.packets.Add(n)
	d := c.Dest
	if d == nil || !d.Available() {
		return
	}
	f.stats.sync(f.env.Snap.Load())
	f.stats.blk.Add(d, c.Dir == conntrack.DirOut, n, b)
	f.stats.publish()
}

// gone is the connection table's SetFastGone hook.
func (f *FastPath) gone(in, out conntrack.Key) {
	f.removeKey(fastKeyOf(&in), nil)
	f.removeKey(fastKeyOf(&out), nil)
}

// remove takes both directions of connection c out of the fast path.
func (f *FastPath) remove(c *conntrack.Conn) {
	in := conntrack.Key{Src: c.Client.Addr, Dst: c.Virtual.Addr, SrcPort: c.Client.Port, DstPort: c.Virtual.Port, Proto: c.Proto}
	out := conntrack.Key{Src: c.Real.Addr, Dst: c.Client.Addr, SrcPort: c.Real.Port, DstPort: c.Client.Port, Proto: c.Proto}
	if c.Fwd == spec.FwdFullNAT {
		out.Dst, out.DstPort = c.Local.Addr, c.Local.Port
	}
	for _, d := range [2]conntrack.Dir{conntrack.DirIn, conntrack.DirOut} {
		if !c.Fast.Has(d) {
			continue
		}
		k := &in
		if d == conntrack.DirOut {
			k = &out
		}
		cc := *c
		cc.Dir = d
		f.removeKey(fastKeyOf(k), &cc)
		f.conns.SetFast(c.Handle, d, false)
	}
}

// Flush hands every flow back to the worker: the configuration, the
// director's role or its interfaces changed.
func (f *FastPath) Flush() {
	f.mu.Lock()
	drops := make([]fastDrop, 0, len(f.flows))
	for k := range f.flows {
		e, _ := f.take(k)
		drops = append(drops, fastDrop{k: k, e: e})
	}
	f.mu.Unlock()
	for i := range drops {
		d := &drops[i]
		d.conn = f.conns.Lookup(d.k.connKey(), 0, &d.c)
		f.drop(d)
	}
}

// drop finishes the removal of a taken flow and clears its direction in
// its connection, so that the worker installs it again from its next
// packet.
func (f *FastPath) drop(d *fastDrop) {
	if !d.conn {
		f.finish(d.k, d.e, nil)
		return
	}
	f.finish(d.k, d.e, &d.c)
	f.conns.SetFast(d.c.Handle, d.c.Dir, false)
}

// hopValid reports whether flow still goes where the worker would send
// its packets now: the next hop towards the real server (inbound) or the
// client (replies) as NextHops gives it. A reply flow whose client has no
// resolved hop keeps the link-layer address the connection came from.
func (f *FastPath) hopValid(fl *FastFlow, now int64) bool {
	h, ok := f.env.Hops.Lookup(netip.AddrFrom4(fl.NextHop))
	if !ok {
		return fl.Reply
	}
	mtu := h.MTU
	if fl.Encap {
		// The tunnel's: the route's, or lower if learnt (tunicmp.go).
		if !h.Src.Is4() || h.Src.As4() != fl.TunSrc {
			return false
		}
		real := netip.AddrFrom4(fl.NextHop).As16()
		if f.env.tunPMTU != nil {
			if l := f.env.tunPMTU.get(&real, now); l > 0 && (mtu <= 0 || l < mtu) {
				mtu = l
			}
		}
	}
	return !h.Local && h.Ifindex == fl.Ifindex && h.DstMAC == fl.DstMAC && h.SrcMAC == fl.SrcMAC && mtu == fl.MTU
}

// Poll reads every flow's counters back (in batches, no lock held): the
// connection's timer is re-armed from its last packet and its traffic
// counted. A flow whose connection is gone, whose destination is no
// longer available, whose next hop changed, that is older than
// FastMaxAge, or that the sync daemon would need to see, is handed back
// to the worker.
func (f *FastPath) Poll() {
	f.pollMu.Lock()
	defer f.pollMu.Unlock()
	clear(f.counts)
	if err := f.m.ReadAll(func(k FastKey, c FastCounts) { f.counts[k] = c }); err != nil {
		return
	}
	sending := f.env.Sync != nil && f.env.Sync.Sending()
	mono := f.m.Mono()
	now := int64(f.env.Now().Sub(f.env.Epoch))
	f.drops = f.drops[:0]
	f.mu.Lock()
	for k, e := range f.flows {
		cnt, ok := f.counts[k]
		if !ok {
			continue // installed after the read
		}
		var seen int64
		if cnt.Packets != e.prev.Packets {
			seen = now - (mono - cnt.Last)
		}
		c := &f.cn
		if !f.conns.RefreshFast(k.connKey(), seen, c) {
			e, _ := f.take(k)
			f.drops = append(f.drops, fastDrop{k: k, e: e})
			continue
		}
		if cnt.Packets != e.prev.Packets {
			f.account(c, cnt, e.prev)
			e.prev = cnt
		}
		if sending || !c.Fast.Has(c.Dir) || c.Dest == nil || !c.Dest.Available() ||
			time.Duration(mono-cnt.Installed) >= FastMaxAge || !f.hopValid(&e.flow, now) {
			e, _ := f.take(k)
			f.drops = append(f.drops, fastDrop{k: k, e: e, c: *c, conn: true})
		}
	}
	f.mu.Unlock()
	for i := range f.drops {
		f.drop(&f.drops[i])
	}
	f.noRoom.Store(false) // try again; a full map refuses the first one
}

// fastTx is what the worker transmitted for the frame being handled: how
// many frames, and where the last one left. (Not the frame itself: a
// pointer stored here would move the fragmenter's frames to the heap.) A
// frame handled whole, neither a super-frame nor fragmented, is the one
// frame transmitted when there is one: fragments are several, and ICMP
// errors and queued frames are sent otherwise.
type fastTx struct {
	n       int
	ifindex int
}

// fastFollow runs after the worker forwarded a frame of connection c
// (whose key, as received, is key): it hands the frame's direction to the
// fast path once the connection qualifies (IPv4 NAT, FULLNAT, DR or IPIP
// TUN inbound with DF, TCP ESTABLISHED or UDP, FastMinPackets inbound packets seen, the frame sent
// whole, untagged, to a next hop that is not this host, on an interface
// the fast path can send on, and no sync daemon sending), and takes the
// connection back when a TCP state change leaves ESTABLISHED.
func (w *Worker) fastFollow(pc *pktCtx, key *conntrack.Key, c *conntrack.Conn) {
	f, p := w.env.Fast, pc.p
	if p.IPVersion != 4 {
		return
	}
	switch c.Fwd {
	case spec.FwdMasq, spec.FwdFullNAT, spec.FwdRoute:
	case spec.FwdTunnel:
		// IPIP, IPv4 in IPv4, with DF (an outer header without it takes
		// an IP ID, the worker's), the way in.
		if c.Dir != conntrack.DirIn || !p.DF || !pc.hop.Src.Is4() || c.Dest == nil || c.Dest.Config().TunType != spec.TunIPIP {
			return
		}
	default:
		return
	}
	switch p.Proto {
	case header.ProtoTCP:
		if c.State != conntrack.StateEstablished {
			if c.Fast != 0 {
				f.remove(c)
			}
			return
		}
	case header.ProtoUDP:
	default:
		return
	}
	tx := &w.tx
	if c.InPkts < FastMinPackets || c.Fast.Has(c.Dir) || tx.n != 1 || pc.hop.Local ||
		pc.f.VLAN != 0 || pc.f.GSO.IsGSO() || pc.f.FragMax != 0 ||
		(w.env.Sync != nil && w.env.Sync.Sending()) || !c.Real.Is4() || !c.Client.Is4() ||
		!f.m.CanSend(tx.ifindex) {
		return
	}
	fl := FastFlow{Key: fastKeyOf(key), Ifindex: tx.ifindex, MTU: pc.hop.MTU}
	in := c.Dir == conntrack.DirIn
	switch {
	case c.Fwd == spec.FwdTunnel:
		fl.Encap, fl.TunSrc = true, pc.hop.Src.As4()
	case c.Fwd == spec.FwdRoute:
		// The frame unchanged but for its TTL.
	case c.Fwd == spec.FwdMasq && in:
		fl.SetDst, fl.Dst, fl.DstPort = true, [4]byte(c.Real.Addr[12:]), c.Real.Port
	case c.Fwd == spec.FwdMasq:
		fl.SetSrc, fl.Src, fl.SrcPort = true, [4]byte(c.Virtual.Addr[12:]), c.Virtual.Port
	case !c.Local.Is4() || !c.Virtual.Is4():
		return // FULLNAT across families: translated, not rewritten
	case in:
		fl.SetSrc, fl.Src, fl.SrcPort = true, [4]byte(c.Local.Addr[12:]), c.Local.Port
		fl.SetDst, fl.Dst, fl.DstPort = true, [4]byte(c.Real.Addr[12:]), c.Real.Port
	default:
		fl.SetSrc, fl.Src, fl.SrcPort = true, [4]byte(c.Virtual.Addr[12:]), c.Virtual.Port
		fl.SetDst, fl.Dst, fl.DstPort = true, [4]byte(c.Client.Addr[12:]), c.Client.Port
	}
	if in {
		fl.NextHop = [4]byte(c.Real.Addr[12:])
	} else {
		fl.NextHop, fl.Reply = [4]byte(c.Client.Addr[12:]), true
	}
	eth := pc.f.Data()
	fl.DstMAC, fl.SrcMAC = [6]byte(eth[0:6]), [6]byte(eth[6:12])
	f.install(c.Handle, c.Dir, &fl)
}
