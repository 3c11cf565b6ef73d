package dataplane

import (
	"errors"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/fwmark"
	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/modes"
	"github.com/uvs-lb/uvs/sched"
	"github.com/uvs-lb/uvs/snapshot"
	"github.com/uvs-lb/uvs/spec"
)

// Hop is where a frame goes next: the egress interface, the Ethernet
// addresses, the preferred source address of the route (TUN outer source,
// FULLNAT default local address) and the path MTU.
type Hop struct {
	Ifindex int
	SrcMAC  [6]byte
	DstMAC  [6]byte
	Src     netip.Addr
	MTU     int
}

// NextHops resolves the next hop towards an address. Lookup must not
// allocate or block; a miss starts resolution in the background.
type NextHops interface {
	Lookup(dst netip.Addr) (Hop, bool)
}

// Iface is an interface the director serves.
type Iface struct {
	Index int
	Name  string
	MAC   [6]byte
	MTU   int
}

// Host is what the workers know of the director's own interfaces and
// addresses; the daemon refreshes it.
type Host struct {
	Ifaces map[int]Iface
	// Local holds the director's own addresses (16-byte, IPv4 mapped). The
	// kernel answers ARP/NDP for them; uvsd answers for VIPs not in here.
	Local map[[16]byte]bool
	// Marked holds destinations the firewall-mark rules send to a service
	// (16-byte, IPv4 mapped): uvsd answers ARP/NDP for them like for VIPs.
	Marked map[[16]byte]bool
}

// Drop and event counters of a worker, indexed by Counter.
type Counter uint8

// Counters. Drops are typed reasons; the parse reasons are counted apart.
const (
	CntRx Counter = iota
	CntTx
	CntTxErr
	CntNotOurs     // not for a service or connection: left to the kernel
	CntNewConn     // connection scheduled
	CntNoDest      // scheduler found no destination (ICMP unreachable sent)
	CntNotSyn      // TCP without SYN and without connection
	CntNoConnSpace // connection table full
	CntNeighMiss   // reply towards an interface that is gone
	CntTTL         // TTL exceeded (ICMP sent)
	CntTooBig      // larger than the path MTU (ICMP sent)
	CntRewriteFail // rewrite refused the packet
	CntDestGone    // connection whose destination was removed
	CntARPReply    // ARP/NDP answered for a VIP
	CntICMPRelated // ICMP error translated for a connection
	CntMalformed   // parse failure on a frame addressed to a VIP
	CntUnsupported // forwarding method not implemented for this packet
	CntFullNATNoPort
	CntGSO        // GSO super-frame forwarded as one frame
	CntGSOSegment // segment cut from a super-frame in software (TUN)
	CntGSOBad     // super-frame whose offload metadata does not match its headers
	// Neighbour queue: a frame whose next hop is not resolved yet waits in
	// the worker's queue (as on the kernel's arp_queue) and is sent once
	// it resolves; it is dropped when the queue is full or after
	// Env.NeighTimeout.
	CntNeighQueued    // frame queued for an unresolved next hop
	CntNeighQueueFull // dropped: neighbour queue full
	CntNeighTimeout   // dropped: next hop not resolved in time
	NumCounters
)

var counterNames = [NumCounters]string{
	"rx", "tx", "tx-error", "not-ours", "new-conn", "no-destination", "tcp-not-syn",
	"conn-table-full", "neighbour-miss", "ttl-exceeded", "too-big", "rewrite-failed",
	"destination-gone", "arp-reply", "icmp-related", "malformed", "unsupported", "fullnat-no-port",
	"gso", "gso-segment", "gso-bad", "neighbour-queued", "neighbour-queue-full", "neighbour-timeout",
}

// String returns the counter's metric name.
func (c Counter) String() string {
	if c < NumCounters {
		return counterNames[c]
	}
	return "counter?"
}

// Counters are one worker's counters; read them with Load while it runs.
type Counters struct {
	c     [NumCounters]atomic.Uint64
	parse [header.NumReasons]atomic.Uint64
}

func (c *Counters) inc(k Counter) { c.c[k].Add(1) }

// Load returns a counter's value.
func (c *Counters) Load(k Counter) uint64 { return c.c[k].Load() }

// LoadMalformed returns how many frames addressed to the director failed
// parsing with reason r (their sum is the CntMalformed counter).
func (c *Counters) LoadMalformed(r header.Reason) uint64 { return c.parse[r].Load() }

// Env is what every worker shares: configuration, connection table, next
// hops, host facts and the clock.
type Env struct {
	Snap  *atomic.Pointer[snapshot.Snapshot]
	Host  *atomic.Pointer[Host]
	Conns *conntrack.Table
	Hops  NextHops
	// Now returns the current time; Epoch anchors the connection table's
	// int64 clock (nanoseconds since Epoch).
	Now   func() time.Time
	Epoch time.Time
	// Marks classifies frames for firewall-mark services, as the
	// namespace's mangle PREROUTING MARK rules would (nil: no marks).
	Marks *atomic.Pointer[fwmark.Classifier]
	// Ports allocates FULLNAT local ports (nil: FULLNAT unavailable).
	Ports *PortAllocator
	// Trace, when set, receives one line per scheduling decision (the lab
	// uses it). It is called on the packet path: leave it nil in production.
	Trace func(svc *snapshot.Service, client netip.AddrPort, d *sched.Dest, why *sched.Reason)
	// NeighTimeout is how long a frame may wait in a worker's neighbour
	// queue for its next hop (0: DefaultNeighTimeout).
	NeighTimeout time.Duration
}

// BatchSize is how many frames a worker reads and writes at once.
const BatchSize = 64

// Worker runs the per-packet pipeline for one PacketIO.
type Worker struct {
	io  PacketIO
	env *Env
	in  []Frame
	out []Frame
	// p is the parse of the frame being processed: one of b.ps, or a
	// queued frame's.
	p    *header.Parsed
	cn   conntrack.Conn
	flow sched.Flow
	why  sched.Reason
	mp   fwmark.Packet
	tmpl *conntrack.SchedTemplates
	// ctl holds control frames built by the worker (ARP replies, ICMP
	// errors); one buffer per batch slot.
	ctl  [][]byte
	nctl int
	// seg cuts super-frames the egress cannot take whole (TUN) into
	// segments, which go to slab[:slabOff]; sp is a segment's parse.
	seg     modes.Segmenter
	sp      header.Parsed
	slab    []byte
	slabOff int
	// mono is the clock reading of the batch being processed.
	mono int64
	// pts shortens the backend's poll timeout while frames wait in the
	// neighbour queue (shortPoll); nil if the backend cannot.
	pts       PollTimeoutSetter
	shortPoll bool
	b         batch
	pq        neighQueue
	// Counters are this worker's counters.
	Counters Counters
}

// NewWorker returns a worker reading from io.
func NewWorker(io PacketIO, env *Env) *Worker {
	w := &Worker{
		io:  io,
		env: env,
		in:  make([]Frame, BatchSize),
		out: make([]Frame, 0, 2*BatchSize),
		ctl: make([][]byte, BatchSize),
	}
	for i := range w.ctl {
		w.ctl[i] = make([]byte, 1600)
	}
	w.slab = make([]byte, segSlabSize)
	w.tmpl = conntrack.NewSchedTemplates(env.Conns, env.Epoch)
	timeout := env.NeighTimeout
	if timeout <= 0 {
		timeout = DefaultNeighTimeout
	}
	w.pq.init(timeout)
	w.p = &w.b.ps[0]
	w.pts, _ = io.(PollTimeoutSetter)
	return w
}

// PollTimeoutSetter is implemented by packet-I/O backends whose read
// timeout can be changed between reads. While frames wait in its neighbour
// queue a worker shortens it to NeighPoll, so that they leave soon after
// their next hop resolves even when no other frame arrives.
type PollTimeoutSetter interface {
	// SetPollTimeout sets how long ReadBatch waits for a frame; 0
	// restores the backend's configured timeout.
	SetPollTimeout(d time.Duration)
}

// NeighPoll is the read timeout while frames wait for a next hop.
const NeighPoll = 5 * time.Millisecond

// Run processes batches until the PacketIO is closed. A read that returns
// no frame (the backend's poll timeout) retries the frames waiting for
// their next hop.
func (w *Worker) Run() error {
	for {
		n, err := w.io.ReadBatch(w.in)
		if err != nil {
			if errors.Is(err, ErrClosed) {
				return nil
			}
			return err
		}
		switch {
		case n > 0:
			w.ProcessBatch(w.in[:n])
		case w.pq.n > 0:
			w.ProcessBatch(nil)
		}
		if short := w.pq.n > 0; short != w.shortPoll && w.pts != nil {
			w.shortPoll = short
			if short {
				w.pts.SetPollTimeout(NeighPoll)
			} else {
				w.pts.SetPollTimeout(0)
			}
		}
	}
}

// ProcessBatch runs the pipeline over frames and transmits the results.
// The snapshot is loaded once per batch. Frames waiting in the neighbour
// queue are retried first (an empty batch only retries them).
//
// The batch is processed in three passes, with the result of processing
// the frames one after another: every frame is parsed and classified, the
// TCP and UDP frames are looked up in the connection table in one
// TrackBatch call (which overlaps their cache misses), and then each frame
// is handled in order with its lookup result. A frame whose flow an earlier
// frame of the batch created, or whose connection an earlier frame expired
// (SYN on TIME_WAIT), is looked up again at that point.
func (w *Worker) ProcessBatch(frames []Frame) {
	snap := w.env.Snap.Load()
	host := w.env.Host.Load()
	now := w.env.Now()
	mono := int64(now.Sub(w.env.Epoch))
	w.mono = mono
	if w.pq.n > 0 {
		w.retryQueued(snap, host, now, mono)
	}
	for len(frames) > 0 {
		n := min(len(frames), BatchSize)
		w.runBatch(frames[:n], snap, host, now, mono)
		frames = frames[n:]
	}
	w.flush()
}

// action is what the last pass of a batch does with a frame.
type action uint8

const (
	actNone action = iota // nothing: not ours, malformed, or counted already
	actARP
	actNDP
	actICMPError
	actTrack // TCP or UDP: connection lookup
)

// batch is the per-frame state of the batch being processed.
type batch struct {
	ps  [BatchSize]header.Parsed
	act [BatchSize]action
	ki  [BatchSize]uint8 // actTrack: index into keys
	// TrackBatch's arguments and results.
	keys  [BatchSize]conntrack.Key
	flags [BatchSize]uint8
	conns [BatchSize]conntrack.Conn
	found [BatchSize]bool
	// changed is set once a frame of the batch created or expired a
	// connection; expired lists the handles it expired.
	changed bool
	nexp    int
	expired [BatchSize]conntrack.Handle
}

// noteExpired records that the batch expired connection h.
func (b *batch) noteExpired(h conntrack.Handle) {
	b.changed = true
	if b.nexp < len(b.expired) {
		b.expired[b.nexp] = h
		b.nexp++
	}
}

// stale reports whether a lookup result of the batch's TrackBatch may be
// out of date: the flow missed but connections were created since, or the
// connection found was expired since.
func (b *batch) stale(found bool, h conntrack.Handle) bool {
	if !b.changed {
		return false
	}
	if !found {
		return true
	}
	for _, x := range b.expired[:b.nexp] {
		if x == h {
			return true
		}
	}
	return false
}

// runBatch processes at most BatchSize frames.
func (w *Worker) runBatch(frames []Frame, snap *snapshot.Snapshot, host *Host, now time.Time, mono int64) {
	b := &w.b
	nk := 0
	for i := range frames {
		w.Counters.inc(CntRx)
		p := &b.ps[i]
		b.act[i] = w.classify(&frames[i], p, host)
		if b.act[i] == actTrack {
			k := &b.keys[nk]
			k.Src, k.Dst = p.Src, p.Dst
			k.SrcPort, k.DstPort, k.Proto = p.SrcPort, p.DstPort, p.Proto
			b.flags[nk] = p.TCPFlags
			b.ki[i] = uint8(nk)
			nk++
		}
	}
	if nk > 0 {
		w.env.Conns.TrackBatch(b.keys[:nk], b.flags[:nk], mono, b.conns[:nk], b.found[:nk])
	}
	b.changed, b.nexp = false, 0
	for i := range frames {
		f := &frames[i]
		w.p = &b.ps[i]
		switch b.act[i] {
		case actARP:
			w.arp(f, f.Data(), snap, host)
		case actNDP:
			w.ndp(f, f.Data(), snap, host)
		case actICMPError:
			w.icmpError(f, f.Data(), host, mono)
		case actTrack:
			k := b.ki[i]
			c, found := &b.conns[k], b.found[k]
			if b.stale(found, c.Handle) {
				found = w.env.Conns.Track(b.keys[k], w.p.TCPFlags, mono, c)
			}
			w.tracked(f, f.Data(), &b.keys[k], found, c, snap, host, now, mono)
		}
	}
}

// flush transmits the frames collected so far; the segment slab, the
// control-frame buffers and the neighbour-queue slots of the frames sent
// are free again afterwards.
func (w *Worker) flush() {
	if len(w.out) > 0 {
		n, err := w.io.WriteBatch(w.out)
		w.Counters.c[CntTx].Add(uint64(n))
		if err != nil || n < len(w.out) {
			w.Counters.c[CntTxErr].Add(uint64(len(w.out) - n))
		}
	}
	w.out = w.out[:0]
	w.slabOff = 0
	w.nctl = 0
	if len(w.pq.rel) > 0 {
		w.pq.release()
	}
}

// emit queues f for transmission on ifindex, flushing first if the output
// batch is full.
func (w *Worker) emit(f *Frame, ifindex int) {
	if len(w.out) == cap(w.out) {
		w.flush()
	}
	f.Ifindex = ifindex
	w.out = append(w.out, *f)
}

// classify parses a frame into p and says what the batch's last pass does
// with it; frames it drops are counted here.
func (w *Worker) classify(f *Frame, p *header.Parsed, host *Host) action {
	data := f.Data()
	ifc, ok := host.Ifaces[f.Ifindex]
	if !ok || len(data) < header.EthernetMinSize {
		return actNone // not a served interface
	}
	if dst := header.Ethernet(data).Dst(); dst[0]&1 == 0 && dst != ifc.MAC {
		return actNone // PACKET_OTHERHOST: addressed to another station on the segment
	}
	p.Parse(data)
	switch p.Kind {
	case header.KindARP:
		return actARP
	case header.KindIPv4, header.KindIPv6:
	default:
		return actNone
	}
	if p.Reason != header.ReasonNone {
		w.Counters.parse[p.Reason].Add(1)
		w.Counters.inc(CntMalformed)
		return actNone
	}
	switch p.Proto {
	case header.ProtoTCP, header.ProtoUDP:
		if f.CsumUnknown && !f.CsumPartial && header.LooksPartial(data, p) {
			// No skb metadata (AF_XDP): a checksum field holding just the
			// pseudo-header sum that does not verify is a partial one.
			f.CsumPartial = true
		}
		return actTrack
	case header.ProtoICMPv4, header.ProtoICMPv6:
		if p.IPVersion == 6 && p.ICMPType == 135 {
			return actNDP
		}
		if p.IsICMPError() {
			return actICMPError
		}
		return actNone
	}
	w.Counters.inc(CntNotOurs)
	return actNone
}

// tracked handles a TCP or UDP frame given its connection lookup: forward
// it on its connection, or schedule a new one.
func (w *Worker) tracked(f *Frame, data []byte, key *conntrack.Key, found bool, c *conntrack.Conn, snap *snapshot.Snapshot, host *Host, now time.Time, mono int64) {
	p := w.p
	if found {
		if c.Dir == conntrack.DirIn && p.Proto == header.ProtoTCP && p.TCPFlags&tcpSYN != 0 && p.TCPFlags&tcpACK == 0 &&
			(c.OldState == conntrack.StateTimeWait || c.OldState == conntrack.StateClose) && !c.Controlled {
			// conn_reuse_mode: a new SYN on a closing connection is scheduled afresh.
			w.env.Conns.ExpireNow(c.Handle, mono)
			w.b.noteExpired(c.Handle)
		} else {
			w.forward(f, data, c, snap, host)
			return
		}
	}
	if w.pq.creates > 0 {
		if addr, ok := w.pq.createPending(key); ok {
			// The flow's first frame waits for its connection (FULLNAT,
			// next hop unresolved): wait behind it.
			if e := w.enqueue(pendReprocess, f, addr); e != nil {
				e.key = *key
			}
			return
		}
	}
	var mark uint32
	if snap.HasFWMark() && w.env.Marks != nil {
		if c := w.env.Marks.Load(); c != nil {
			w.mp = fwmark.Packet{Src: p.Src, Dst: p.Dst, SrcPort: p.SrcPort, DstPort: p.DstPort,
				Ifindex: f.Ifindex, Proto: p.Proto, IPv6: p.IPVersion == 6}
			mark = c.Mark(&w.mp)
		}
	}
	svc := snap.Lookup(spec.Proto(p.Proto), key.Dst, p.DstPort, mark, p.IPVersion == 6)
	if svc == nil {
		w.Counters.inc(CntNotOurs)
		return
	}
	if p.Proto == header.ProtoTCP && (p.TCPFlags&tcpSYN == 0 || p.TCPFlags&tcpRST != 0) {
		w.Counters.inc(CntNotSyn)
		return
	}
	w.schedule(f, data, *key, svc, mark, snap, host, now, mono)
}

const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

func (w *Worker) schedule(f *Frame, data []byte, key conntrack.Key, svc *snapshot.Service, mark uint32, snap *snapshot.Snapshot, host *Host, now time.Time, mono int64) {
	p := w.p
	fl := &w.flow
	*fl = sched.Flow{Proto: spec.Proto(p.Proto), Src: p.SrcAddr(), Dst: p.DstAddr(), SrcPort: p.SrcPort, DstPort: p.DstPort, Mark: mark}
	var why *sched.Reason
	if w.env.Trace != nil {
		why = &w.why
	}
	dec := svc.Sched.SchedulePersistent(fl, w.tmpl, now, why)
	if w.env.Trace != nil {
		w.env.Trace(svc, netip.AddrPortFrom(fl.Src, fl.SrcPort), dec.Dest, why)
	}
	if dec.Dest == nil {
		w.Counters.inc(CntNoDest)
		w.sendICMP(f, data, host, icmpPortUnreach)
		return
	}
	d := dec.Dest
	nc := conntrack.NewConn{
		In:      key,
		Fwd:     d.Fwd(),
		Dest:    d,
		Real:    conntrack.Endpoint{Addr: as16(d.Addr()), Port: dec.Port},
		MAC:     header.Ethernet(data).Src(),
		Ifindex: int32(f.Ifindex),
		FWMark:  mark,
		Service: svc.ID,
	}
	if dec.Persistent {
		nc.Template = w.tmpl.Handle(dec.Template, now)
	}
	if nc.Fwd == spec.FwdFullNAT && len(svc.LocalAddrs) == 0 && w.env.Ports != nil {
		// The local address is the route's source towards the real
		// server: the connection waits for the next hop.
		real := header.AddrFrom16(nc.Real.Addr)
		if _, ok := w.hop(real); !ok {
			if e := w.enqueue(pendCreate, f, real); e != nil {
				e.nc, e.svc, e.key = nc, svc, key
				w.pq.creates++
			}
			return
		}
	}
	w.create(f, data, &nc, svc, snap, host, mono)
}

// create creates a scheduled connection and forwards its first frame.
func (w *Worker) create(f *Frame, data []byte, nc *conntrack.NewConn, svc *snapshot.Service, snap *snapshot.Snapshot, host *Host, mono int64) {
	p := w.p
	d := nc.Dest
	if nc.Fwd == spec.FwdFullNAT {
		if !w.fullnatLocal(nc, svc, d) {
			w.Counters.inc(CntFullNATNoPort)
			return
		}
	}
	c := &w.cn
	if err := w.env.Conns.Create(nc, p.TCPFlags, mono, c); err != nil {
		w.Counters.inc(CntNoConnSpace)
		return
	}
	w.b.changed = true
	w.Counters.inc(CntNewConn)
	svc.Stats.Conns.Add(1)
	d.Stats.Conns.Add(1)
	w.forward(f, data, c, snap, host)
}

func as16(a netip.Addr) [16]byte { return a.As16() }

// forward sends a packet of an existing connection in its direction.
func (w *Worker) forward(f *Frame, data []byte, c *conntrack.Conn, snap *snapshot.Snapshot, host *Host) {
	p := w.p
	d := c.Dest
	if c.Dir == conntrack.DirIn {
		if d == nil || !d.Available() {
			w.Counters.inc(CntDestGone)
			return
		}
		d.Stats.InPkts.Add(1)
		d.Stats.InBytes.Add(uint64(p.IPLen))
		w.request(f, data, c, host)
		return
	}
	if d != nil {
		d.Stats.OutPkts.Add(1)
		d.Stats.OutBytes.Add(uint64(p.IPLen))
	}
	w.reply(f, data, c, host)
}

// hop returns the next hop towards addr (a real server), unless frames
// wait for it in the neighbour queue: a frame must not overtake them.
func (w *Worker) hop(addr netip.Addr) (Hop, bool) {
	if w.pq.n > 0 && w.pq.blocked(addr) {
		return Hop{}, false
	}
	return w.env.Hops.Lookup(addr)
}

// request sends a packet towards the real server with the connection's
// transmitter, or queues it until the next hop is resolved.
func (w *Worker) request(f *Frame, data []byte, c *conntrack.Conn, host *Host) {
	real := header.AddrFrom16(c.Real.Addr)
	if w.pq.n == 0 || !w.pq.blocked(real) {
		if hop, ok := w.env.Hops.Lookup(real); ok {
			w.requestVia(f, data, c, real, &hop, host)
			return
		}
	}
	if e := w.enqueue(pendRequest, f, real); e != nil {
		e.c = *c
	}
}

// requestVia is request once the next hop is known; real is the real
// server's address.
func (w *Worker) requestVia(f *Frame, data []byte, c *conntrack.Conn, real netip.Addr, hop *Hop, host *Host) {
	p := w.p
	csum, ok := w.csumState(f, data)
	if !ok {
		w.Counters.inc(CntGSOBad)
		return
	}
	var r modes.Result
	switch c.Fwd {
	case spec.FwdMasq:
		if r = modes.CheckMTU(p, hop.MTU, f.GSO.Size); r.OK() {
			r = modes.NATRequest(data, p, netip.AddrPortFrom(real, c.Real.Port), csum)
		}
	case spec.FwdFullNAT:
		if r = modes.CheckMTU(p, hop.MTU, f.GSO.Size); r.OK() {
			r = modes.FullNATRequest(data, p, netip.AddrPortFrom(header.AddrFrom16(c.Local.Addr), c.Local.Port),
				netip.AddrPortFrom(real, c.Real.Port), csum)
		}
	case spec.FwdRoute, spec.FwdLocal:
		if r = modes.CheckMTU(p, hop.MTU, f.GSO.Size); r.OK() {
			if csum == modes.CsumPartial {
				header.SetL4Checksum(data, p)
			}
			r = modes.DR(data, p, hop.DstMAC, hop.SrcMAC)
		}
	case spec.FwdTunnel:
		d := c.Dest
		t := modes.Tunnel{Src: hop.Src, Dst: real, MTU: hop.MTU}
		if cfg := d.Config(); cfg.TunType == spec.TunGUE {
			t.GUEPort = cfg.TunPort
			t.GUESrcPort = modes.FlowSourcePort(p)
		}
		if f.GSO.IsGSO() {
			w.tunnelGSO(f, data, &t, hop, host)
			return
		}
		off, n, res := modes.Encap(f.Buf, f.Off, f.Len, p, &t, csum)
		r = res
		if r.OK() {
			f.Off, f.Len = off, n
			eth := header.Ethernet(f.Data())
			eth.SetDst(hop.DstMAC)
			eth.SetSrc(hop.SrcMAC)
			f.CsumPartial = false // completed by Encap
		}
	default:
		w.Counters.inc(CntUnsupported)
		return
	}
	if !w.verdict(f, data, r, host) {
		return
	}
	w.sent(f, csum)
	if c.Fwd != spec.FwdRoute && c.Fwd != spec.FwdLocal && c.Fwd != spec.FwdTunnel {
		eth := header.Ethernet(data)
		eth.SetDst(hop.DstMAC)
		eth.SetSrc(hop.SrcMAC)
	}
	w.emit(f, hop.Ifindex)
}

// icmpIn translates an ICMP error from the client side about a NAT
// connection's reply and sends it to the real server.
func (w *Worker) icmpIn(f *Frame, data []byte, c *conntrack.Conn, hop *Hop, host *Host) {
	if r := modes.NATICMPIn(data, w.p, addrPort(c.Real)); !w.verdict(f, data, r, host) {
		return
	}
	eth := header.Ethernet(data)
	eth.SetDst(hop.DstMAC)
	eth.SetSrc(hop.SrcMAC)
	w.emit(f, hop.Ifindex)
}

func (w *Worker) reply(f *Frame, data []byte, c *conntrack.Conn, host *Host) {
	p := w.p
	var r modes.Result
	vip := netip.AddrPortFrom(header.AddrFrom16(c.Virtual.Addr), c.Virtual.Port)
	csum, ok := w.csumState(f, data)
	if !ok {
		w.Counters.inc(CntGSOBad)
		return
	}
	switch c.Fwd {
	case spec.FwdMasq:
		r = modes.NATReply(data, p, vip, csum)
	case spec.FwdFullNAT:
		r = modes.FullNATReply(data, p, vip, netip.AddrPortFrom(header.AddrFrom16(c.Client.Addr), c.Client.Port), csum)
	default:
		// DR/TUN replies do not pass the director; a reply seen here (a
		// local real server, a shared segment) is left to the kernel.
		w.Counters.inc(CntNotOurs)
		return
	}
	if !w.verdict(f, data, r, host) {
		return
	}
	w.sent(f, csum)
	ifc, ok := host.Ifaces[int(c.Ifindex)]
	if !ok {
		w.Counters.inc(CntNeighMiss)
		return
	}
	eth := header.Ethernet(data)
	eth.SetDst(c.MAC)
	eth.SetSrc(ifc.MAC)
	w.emit(f, int(c.Ifindex))
}

// verdict handles a non-OK rewrite result; it reports whether to send.
func (w *Worker) verdict(f *Frame, data []byte, r modes.Result, host *Host) bool {
	switch r.Verdict {
	case modes.OK:
		return true
	case modes.TTLExceeded:
		w.Counters.inc(CntTTL)
		w.sendICMP(f, data, host, icmpTimeExceeded)
	case modes.TooBig:
		w.Counters.inc(CntTooBig)
		w.sendICMPMTU(f, data, host, r.MTU)
	default:
		w.Counters.inc(CntRewriteFail)
	}
	return false
}

// The neighbour queue.
//
// The kernel does not drop a packet whose next hop is unresolved: it queues
// it on the neighbour entry (arp_queue, bounded by unres_qlen_bytes), sends
// it when the neighbour answers and drops it when resolution fails. A
// worker does the same with a queue of its own: a frame whose next hop
// misses in Env.Hops is copied (with its headroom, offload metadata, parse
// and connection) into a preallocated slot and retried at the start of
// every batch and whenever a read returns nothing. Once the next hop
// resolves, the frame takes the path it would have taken (the connection's
// transmitter; for FULLNAT without a local address pool, the connection's
// creation, which needs the route's source address). It is dropped when no
// slot is free (CntNeighQueueFull) or after Env.NeighTimeout
// (CntNeighTimeout). Its statistics and state transition were applied when
// it arrived, and are not applied again.
//
// Order: while a frame waits for an address, later frames for that address
// wait behind it (Worker.hop), and later frames of a flow whose connection
// waits to be created wait too (pendReprocess); the queue is retried in
// arrival order.

// Neighbour queue sizes, per worker.
const (
	// NeighQueueSmall slots hold frames up to NeighSmallFrame bytes.
	NeighQueueSmall = 256
	// NeighQueueLarge slots hold larger frames (jumbo frames and GSO
	// super-frames, up to NeighLargeFrame bytes); small frames use them
	// when the small slots are taken.
	NeighQueueLarge = 4
	// DefaultNeighTimeout is how long a frame waits for its next hop: the
	// next-hop resolver's default resolution timeout (neigh.Options).
	DefaultNeighTimeout = 3 * time.Second

	neighHeadroom   = 128 // in front of a queued frame (encapsulation)
	neighSmallSlot  = 2048
	neighLargeSlot  = 68 << 10
	NeighSmallFrame = neighSmallSlot - neighHeadroom
	NeighLargeFrame = neighLargeSlot - neighHeadroom
)

// pendKind says how a queued frame continues once its next hop resolves.
type pendKind uint8

const (
	pendRequest   pendKind = iota // the connection's transmitter (requestVia)
	pendICMPIn                    // NAT: ICMP error from the client side (icmpIn)
	pendCreate                    // FULLNAT: create the connection, then transmit
	pendReprocess                 // a later frame of a pendCreate flow: the whole path again
)

// pending is a queued frame.
type pending struct {
	kind  pendKind
	large bool
	live  bool
	addr  netip.Addr // the address whose next hop it waits for
	since int64      // clock reading when queued
	f     Frame      // Buf is buf
	p     header.Parsed
	c     conntrack.Conn    // pendRequest, pendICMPIn
	nc    conntrack.NewConn // pendCreate
	svc   *snapshot.Service // pendCreate
	key   conntrack.Key     // pendCreate, pendReprocess: the inbound key
	buf   []byte
}

// pendAddr is an address frames wait for, with how many.
type pendAddr struct {
	addr netip.Addr
	n    int
	hop  Hop
	// ok and released hold during a retry pass: the address resolved,
	// and its frames are being sent (they no longer block new ones).
	ok, released bool
}

type neighQueue struct {
	ents  []pending
	freeS []int32 // free small slots (a stack)
	freeL []int32
	order []int32 // order[:n]: queued entries, oldest first
	n     int
	addrs []pendAddr // addrs[:na]
	na    int
	// creates counts queued pendCreate entries.
	creates int
	// rel holds entries handled but whose frame may still be in the
	// output batch: their slots are freed by the next flush.
	rel     []int32
	timeout int64
}

func (q *neighQueue) init(timeout time.Duration) {
	n := NeighQueueSmall + NeighQueueLarge
	q.ents = make([]pending, n)
	q.freeS = make([]int32, 0, NeighQueueSmall)
	q.freeL = make([]int32, 0, NeighQueueLarge)
	small := make([]byte, NeighQueueSmall*neighSmallSlot)
	for i := NeighQueueSmall - 1; i >= 0; i-- {
		q.ents[i].buf = small[i*neighSmallSlot : (i+1)*neighSmallSlot : (i+1)*neighSmallSlot]
		q.freeS = append(q.freeS, int32(i))
	}
	large := make([]byte, NeighQueueLarge*neighLargeSlot)
	for i := NeighQueueLarge - 1; i >= 0; i-- {
		e := &q.ents[NeighQueueSmall+i]
		e.buf = large[i*neighLargeSlot : (i+1)*neighLargeSlot : (i+1)*neighLargeSlot]
		e.large = true
		q.freeL = append(q.freeL, int32(NeighQueueSmall+i))
	}
	q.order = make([]int32, n)
	// Addresses of entries handled in a retry pass stay until its end,
	// next to those of entries queued during it.
	q.addrs = make([]pendAddr, 2*n)
	q.rel = make([]int32, 0, n)
	q.timeout = int64(timeout)
}

// blocked reports whether frames wait for addr (and are not being sent).
func (q *neighQueue) blocked(addr netip.Addr) bool {
	for i := range q.addrs[:q.na] {
		if a := &q.addrs[i]; a.addr == addr {
			return a.n > 0 && !a.released
		}
	}
	return false
}

// createPending returns the address the queued creation of the connection
// with inbound key k waits for.
func (q *neighQueue) createPending(k *conntrack.Key) (netip.Addr, bool) {
	for i := range q.ents {
		if e := &q.ents[i]; e.live && e.kind == pendCreate && e.key == *k {
			return e.addr, true
		}
	}
	return netip.Addr{}, false
}

// enqueue copies f (parsed in w.p) into a free slot, to wait for the next
// hop of addr; the caller fills the kind's fields. It returns nil, and
// counts the drop, when no slot fits.
func (w *Worker) enqueue(kind pendKind, f *Frame, addr netip.Addr) *pending {
	q := &w.pq
	data := f.Data()
	need := neighHeadroom + len(data)
	var ei int32 = -1
	switch {
	case need <= neighSmallSlot && len(q.freeS) > 0:
		ei = q.freeS[len(q.freeS)-1]
		q.freeS = q.freeS[:len(q.freeS)-1]
	case need <= neighLargeSlot && len(q.freeL) > 0:
		ei = q.freeL[len(q.freeL)-1]
		q.freeL = q.freeL[:len(q.freeL)-1]
	default:
		w.Counters.inc(CntNeighQueueFull)
		return nil
	}
	e := &q.ents[ei]
	copy(e.buf[neighHeadroom:], data)
	e.f = *f
	e.f.Buf, e.f.Off = e.buf, neighHeadroom
	e.p = *w.p
	e.kind, e.addr, e.since, e.live = kind, addr, w.mono, true
	q.order[q.n] = ei
	q.n++
	for i := range q.addrs[:q.na] {
		if a := &q.addrs[i]; a.addr == addr {
			a.n++
			addr = netip.Addr{}
			break
		}
	}
	if addr.IsValid() {
		q.addrs[q.na] = pendAddr{addr: addr, n: 1}
		q.na++
	}
	w.Counters.inc(CntNeighQueued)
	return e
}

// remove takes entry ei out of the queue's accounting; its slot is freed
// by release once its frame has left.
func (q *neighQueue) remove(ei int32) *pendAddr {
	e := &q.ents[ei]
	e.live = false
	if e.kind == pendCreate {
		q.creates--
	}
	for i := range q.addrs[:q.na] {
		if a := &q.addrs[i]; a.addr == e.addr {
			a.n--
			return a
		}
	}
	return nil
}

// release frees the slots of the entries handled before the last flush.
func (q *neighQueue) release() {
	for _, ei := range q.rel {
		e := &q.ents[ei]
		e.c.Dest, e.nc.Dest, e.svc = nil, nil, nil // keep nothing alive
		if e.large {
			q.freeL = append(q.freeL, ei)
		} else {
			q.freeS = append(q.freeS, ei)
		}
	}
	q.rel = q.rel[:0]
}

// retryQueued sends the queued frames whose next hop has resolved and drops
// those that waited too long, in arrival order; it flushes what it sent.
func (w *Worker) retryQueued(snap *snapshot.Snapshot, host *Host, now time.Time, mono int64) {
	q := &w.pq
	resolved := false
	for i := range q.addrs[:q.na] {
		a := &q.addrs[i]
		a.hop, a.ok = w.env.Hops.Lookup(a.addr)
		resolved = resolved || a.ok
	}
	if !resolved && mono-q.ents[q.order[0]].since < q.timeout {
		return // the oldest has time left, nothing resolved
	}
	for i := range q.addrs[:q.na] {
		q.addrs[i].released = q.addrs[i].ok
	}
	n0, kept := q.n, 0
	for r := 0; r < n0; r++ {
		ei := q.order[r]
		e := &q.ents[ei]
		a := q.addrOf(e.addr)
		switch {
		case a.ok:
			q.remove(ei)
			if len(w.out)+2 > cap(w.out) {
				w.flush() // a replay emits a frame and may add an ICMP error
			}
			w.replay(e, &a.hop, snap, host, now, mono)
			q.rel = append(q.rel, ei)
		case mono-e.since >= q.timeout:
			q.remove(ei)
			q.rel = append(q.rel, ei)
			w.Counters.inc(CntNeighTimeout)
		default:
			q.order[kept] = ei
			kept++
		}
	}
	// Frames queued during the pass (a next hop lost again meanwhile)
	// follow the ones kept.
	kept += copy(q.order[kept:], q.order[n0:q.n])
	q.n = kept
	na := 0
	for i := range q.addrs[:q.na] {
		if a := q.addrs[i]; a.n > 0 {
			a.ok, a.released, a.hop = false, false, Hop{}
			q.addrs[na] = a
			na++
		}
	}
	clear(q.addrs[na:q.na])
	q.na = na
	if len(w.out) > 0 {
		w.flush()
	}
}

// addrOf returns the entry of an address frames wait for.
func (q *neighQueue) addrOf(addr netip.Addr) *pendAddr {
	for i := range q.addrs[:q.na] {
		if q.addrs[i].addr == addr {
			return &q.addrs[i]
		}
	}
	panic("dataplane: neighbour queue entry without its address")
}

// replay continues a queued frame's path now that hop is known.
func (w *Worker) replay(e *pending, hop *Hop, snap *snapshot.Snapshot, host *Host, now time.Time, mono int64) {
	f := &e.f
	data := f.Data()
	w.p = &e.p
	switch e.kind {
	case pendRequest:
		if d := e.c.Dest; d != nil && !d.Available() {
			w.Counters.inc(CntDestGone)
			return
		}
		w.requestVia(f, data, &e.c, e.addr, hop, host)
	case pendICMPIn:
		w.icmpIn(f, data, &e.c, hop, host)
	case pendCreate:
		if !e.nc.Dest.Available() {
			w.Counters.inc(CntDestGone)
			return
		}
		w.create(f, data, &e.nc, e.svc, snap, host, mono)
	case pendReprocess:
		c := &w.cn
		found := w.env.Conns.Track(e.key, e.p.TCPFlags, mono, c)
		w.tracked(f, data, &e.key, found, c, snap, host, now, mono)
	}
}

// addrPort returns a connection endpoint as a netip.AddrPort.
func addrPort(e conntrack.Endpoint) netip.AddrPort {
	return netip.AddrPortFrom(header.AddrFrom16(e.Addr), e.Port)
}
