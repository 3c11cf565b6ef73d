package dataplane

import (
	"errors"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/uvs-lb/uvs/connsync"
	"github.com/uvs-lb/uvs/connsync/wire"
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
	// Local says the address is the director's own (a local route): a
	// request for it is delivered to the director's own stack through
	// Env.LocalNode, the kernel's LOCALNODE forwarding.
	Local bool
}

// LocalNode delivers an IP packet (no link-layer header) to the
// director's own network stack, as the kernel's IPVS does for a real
// server that is one of the director's addresses. Deliver must not
// allocate or block.
type LocalNode interface {
	Deliver(pkt []byte) error
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
	// Loopback holds the addresses on loopback interfaces (a VIP on lo, as
	// on a real server): not in Local, which lists the served kind.
	Loopback map[[16]byte]bool
	// Marked holds destinations the firewall-mark rules send to a service
	// (16-byte, IPv4 mapped): uvsd answers ARP/NDP for them like for VIPs.
	Marked map[[16]byte]bool
	// Standby holds the VIPs this node does not serve now (VRRP backup:
	// keepalived has not put them on this node). Frames to them go to the
	// kernel unchanged — those the hooks keep from it through
	// Env.LocalNode, when the VIP is a host address (in Local or
	// Loopback), else they
	// are dropped — and ARP/NDP for them is not answered.
	Standby map[[16]byte]bool
	// BackupOnly is the kernel's backup_only: while set (sysctl on and a
	// backup sync daemon running) the director function is off — no
	// request is scheduled or forwarded, every frame to a VIP is left to
	// the kernel, no ARP/NDP is answered for VIPs.
	BackupOnly bool
}

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
	// LocalNode delivers requests for real servers that are the
	// director's own addresses (nil: such packets are dropped, counted).
	LocalNode LocalNode
	// Sync is the connection-sync daemon's tap (nil: no sync).
	Sync *connsync.Tap
	// ICMPLimit limits the ICMP errors the workers send (zero: the kernel's defaults).
	ICMPLimit ICMPLimit
	// SloppyTCP is the kernel's sloppy_tcp (off by default): a TCP
	// packet without SYN (and without RST) that matches no connection
	// is scheduled like a SYN, so that a restarted director, or one that
	// took over without the connection table, carries on flows its
	// scheduler re-derives (sh, mh, dh: the same real server again). The
	// connection starts where the state table takes NONE on that packet:
	// ESTABLISHED on an ACK. Counted CntSloppy.
	SloppyTCP bool
	// SloppySCTP is sloppy_sctp (off by default): an SCTP packet
	// whose first chunk is not an INIT and that matches no connection
	// is scheduled too (sctp_conn_schedule), for the same reasons as
	// SloppyTCP. Counted CntSloppy.
	SloppySCTP bool
	// FragMemory is each worker's reassembly memory in bytes, its share
	// of the kernel's ipfrag_high_thresh (0: DefaultFragMemory; see
	// frag.go).
	FragMemory int
	// Fast hands established IPv4 NAT, FULLNAT and DR connections to an
	// in-kernel fast path (nil: none; fastpath.go).
	Fast *FastPath
	// tunPMTU holds the path MTUs learnt for TUN real servers, shared by
	// the workers of this Env (tunicmp.go); NewWorker creates it.
	tunPMTU *pmtuTable
}

// BatchSize is how many frames a worker reads and writes at once.
const BatchSize = 64

// Worker runs the per-packet pipeline for one PacketIO.
type Worker struct {
	io  PacketIO
	env *Env
	in  []Frame
	out []Frame
	// pc is the context of the frame being handled, pointed at each
	// frame of the batch (or of the neighbour queue) in turn and passed
	// down the pipeline.
	pc   pktCtx
	cn   conntrack.Conn
	flow sched.Flow
	why  sched.Reason
	mp   fwmark.Packet
	tmpl *conntrack.SchedTemplates

	lports PortCursor // FULLNAT local ports and pool position (fullnat.go)

	// ctl holds control frames built by the worker (ARP replies, ICMP
	// errors); one buffer per batch slot.
	ctl  [][]byte
	nctl int
	icmp icmpBucket // ICMP error rate limit (ctlframes.go)
	// seg cuts super-frames the egress cannot take whole (TUN) into
	// segments, which go to slab[:slabOff]; sp is a segment's parse.
	seg     modes.Segmenter
	sp      header.Parsed
	slab    []byte
	slabOff int
	// pts shortens the backend's poll timeout while frames wait in the
	// neighbour queue (shortPoll); nil if the backend cannot.
	pts       PollTimeoutSetter
	shortPoll bool
	// ring is this worker's queue to the sync daemon (nil without
	// Env.Sync); se and tc are the entry being pushed and a template's
	// copy (sync.go).
	ring    *connsync.Ring
	se      wire.Entry
	tc      conntrack.Conn
	b       batch
	pq      neighQueue
	hc      hopCache // next hops (hopcache.go)
	ingress ingress
	frag    fragState // reassembly (frag.go)
	tunIDs  tunIdents // outer IPv4 IDs of tunnelled packets (tunicmp.go)
	// addrs holds ownership's address facts for frames that are not
	// uvsd's (handback.go).
	addrs snapshot.AddrIndex
	// tx is what was transmitted for the frame being handled, for
	// fastFollow.
	tx fastTx
	// Counters are this worker's counters.
	Counters Counters

	// stats counts the traffic of services and destinations (stats.go).
	stats workerStats

	// bstats are its batch figures: neighbour-queue depth and batch
	// sizes (workerstats.go). Last, so that the other fields keep their
	// offsets.
	bstats BatchStats
}

// pktCtx is what handling one frame needs, passed down the pipeline
// instead of long parameter lists: the batch's snapshot, host facts and
// clock (loaded once per batch by ProcessBatch), the frame and its parse,
// and, for the transmitters' request and icmpIn, the next hop towards the
// real server.
type pktCtx struct {
	snap *snapshot.Snapshot
	host *Host
	now  time.Time
	mono int64 // now on the connection table's clock
	f    *Frame
	p    *header.Parsed // the parse of f
	hop  Hop
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
	if env.tunPMTU == nil { // the first worker of env, before any runs
		env.tunPMTU = &pmtuTable{}
	}
	timeout := env.NeighTimeout
	if timeout <= 0 {
		timeout = DefaultNeighTimeout
	}
	w.pq.init(timeout)
	w.frag.init(env)
	w.pts, _ = io.(PollTimeoutSetter)
	if env.Sync != nil {
		w.ring = env.Sync.NewRing()
	}
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
//
// A panic in the pipeline is recovered and returned as a *PanicError
// holding the value and the stack: the worker stops, the process does
// not, and the daemon is to stop every worker and remove its hooks
// rather than go on half-dead.
func (w *Worker) Run() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = newPanicError(r)
		}
	}()
	for {
		n, err := w.io.ReadBatch(w.in)
		if err != nil {
			if errors.Is(err, ErrClosed) {
				return nil
			}
			return err
		}
		if n == 0 {
			w.expireFrags()
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
	pc := &w.pc
	pc.snap = w.env.Snap.Load()
	pc.host = w.env.Host.Load()
	pc.now = w.env.Now()
	pc.mono = int64(pc.now.Sub(w.env.Epoch))
	w.stats.sync(pc.snap)
	w.hc.sync(w.env.Hops)
	if w.pq.n > 0 {
		w.retryQueued(pc)
	}
	for len(frames) > 0 {
		n := min(len(frames), BatchSize)
		w.runBatch(pc, frames[:n])
		frames = frames[n:]
	}
	w.flush()
	w.fragRelease()
	w.stats.publish()
	w.bstats.publishDepth(w.pq.n)
	pc.f, pc.p = nil, nil // keep no frame alive
}

// ingress is classify's last interface lookup, kept for the batch (whose
// host facts do not change): a batch's frames mostly arrive on one
// interface.
type ingress struct {
	valid, served bool
	ifindex       int
	mac           [6]byte
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
func (w *Worker) runBatch(pc *pktCtx, frames []Frame) {
	b := &w.b
	w.Counters.c[CntRx].Add(uint64(len(frames))) // one atomic add per batch
	w.bstats.countBatch(len(frames))
	w.ingress.valid = false
	for i := range frames {
		pc.f, pc.p = &frames[i], &b.ps[i]
		b.act[i] = w.classify(pc)
	}
	// The keys are copied from the parses in a pass of their own: read
	// right after Parse stored them, the 16-byte addresses would wait for
	// the narrower stores that wrote them (no store-to-load forwarding).
	nk := 0
	for i := range frames {
		if b.act[i] != actTrack {
			continue
		}
		p, k := &b.ps[i], &b.keys[nk]
		k.Src, k.Dst = p.Src, p.Dst // both in As16 form
		k.SrcPort, k.DstPort, k.Proto = p.SrcPort, p.DstPort, p.Proto
		b.flags[nk] = p.TCPFlags
		b.ki[i] = uint8(nk)
		nk++
	}
	if nk > 0 {
		w.env.Conns.TrackBatch(b.keys[:nk], b.flags[:nk], pc.mono, b.conns[:nk], b.found[:nk])
	}
	b.changed, b.nexp = false, 0
	for i := range frames {
		pc.f, pc.p = &frames[i], &b.ps[i]
		switch b.act[i] {
		case actARP:
			w.arp(pc)
		case actNDP:
			w.ndp(pc)
		case actICMPError:
			w.related(pc)
		case actTrack:
			k := b.ki[i]
			c, found := &b.conns[k], b.found[k]
			if b.stale(found, c.Handle) {
				found = w.env.Conns.Track(b.keys[k], pc.p.TCPFlags, pc.mono, c)
			}
			w.tracked(pc, &b.keys[k], found, c)
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
	// Copied into the slot, then addressed: storing f.Ifindex first
	// would make the copy's wide loads wait for that narrower store.
	n := len(w.out)
	w.out = w.out[:n+1]
	o := &w.out[n]
	*o = *f
	o.Ifindex = ifindex
	if !setTag(o) { // on the VLAN of o.VLAN (vlan.go)
		w.out = w.out[:n]
		w.Counters.inc(CntTxErr)
	}
}

// classify parses the frame into pc.p and says what the batch's last pass
// does with it; frames it drops are counted here.
func (w *Worker) classify(pc *pktCtx) action {
	f, p := pc.f, pc.p
	data := f.Data()
	in := &w.ingress
	if !in.valid || in.ifindex != f.Ifindex {
		ifc, ok := pc.host.Ifaces[f.Ifindex]
		*in = ingress{valid: true, served: ok, ifindex: f.Ifindex, mac: ifc.MAC}
	}
	if !in.served || len(data) < header.EthernetMinSize {
		return actNone // not a served interface
	}
	if dst := header.Ethernet(data).Dst(); dst[0]&1 == 0 && dst != in.mac {
		return actNone // PACKET_OTHERHOST: addressed to another station on the segment
	}
	p.Parse(data)
	f.VLAN = 0 // set for what goes back on the client's VLAN (vlan.go)
	if p.VLAN {
		w.Counters.inc(CntVLAN)
	}
	switch p.Kind {
	case header.KindARP:
		return actARP
	case header.KindIPv4:
		// ip_rcv_core drops a header whose checksum does not verify
		// before anything reads it, fragments included: no offload
		// covers the IPv4 header checksum.
		if header.Checksum(data[p.L3Off:p.L4Off], 0) != 0xffff {
			w.Counters.inc(CntIPBadCsum)
			return actNone
		}
	case header.KindIPv6:
	default:
		return actNone
	}
	if p.Reason == header.ReasonFragment && !w.defrag(pc) {
		return actNone // kept for reassembly, or dropped and counted
	}
	if p.Reason != header.ReasonNone {
		w.Counters.parse[p.Reason].Add(1)
		w.Counters.inc(CntMalformed)
		return actNone
	}
	if host := pc.host; (len(host.Standby) > 0 || host.BackupOnly) && w.standby(pc) {
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
	case header.ProtoSCTP:
		if !w.sctpClassify(pc) { // sctp.go
			return actNone
		}
		return actTrack
	case header.ProtoICMPv4, header.ProtoICMPv6:
		if p.IPVersion == 6 && p.ICMPType == header.ICMPv6NeighborSolicit {
			return actNDP
		}
		if p.IsICMPError() {
			return actICMPError
		}
		if f.FragMax != 0 {
			w.fragICMP(pc) // an echo reassembled, kept from the kernel (handback.go)
		}
		return actNone
	}
	w.Counters.inc(CntNotOurs)
	return actNone
}

// tracked handles a TCP or UDP frame given its connection lookup: forward
// it on its connection, or schedule a new one.
func (w *Worker) tracked(pc *pktCtx, key *conntrack.Key, found bool, c *conntrack.Conn) {
	p := pc.p
	if found && c.Dir == conntrack.DirIn && pc.host.BackupOnly {
		// A request classify could not tell by its destination (a
		// firewall mark): the director function is off.
		w.Counters.inc(CntBackupOnly)
		return
	}
	if found {
		if c.Dir == conntrack.DirIn && p.Proto == header.ProtoTCP &&
			p.TCPFlags&header.TCPFlagSYN != 0 && p.TCPFlags&header.TCPFlagACK == 0 &&
			(c.OldState == conntrack.StateTimeWait || c.OldState == conntrack.StateClose) && !c.Controlled ||
			sctpReuse(p, c) {
			// conn_reuse_mode: a new SYN on a closing connection is scheduled afresh.
			w.env.Conns.ExpireNow(c.Handle, pc.mono)
			w.b.noteExpired(c.Handle)
		} else {
			w.tx.n = 0
			w.forward(pc, c)
			if w.env.Fast != nil {
				w.fastFollow(pc, key, c)
			}
			return
		}
	}
	if w.pq.creates > 0 {
		if addr, ok := w.pq.createPending(key); ok {
			// The flow's first frame waits for its connection (FULLNAT,
			// next hop unresolved): wait behind it.
			if e := w.enqueue(pc, pendReprocess, addr); e != nil {
				e.key = *key
			}
			return
		}
	}
	mark := w.markOf(pc)
	svc := pc.snap.Lookup(spec.Proto(p.Proto), key.Dst, p.DstPort, mark, p.IPVersion == 6)
	if svc == nil {
		w.notOurs(pc) // or handed back to the kernel (handback.go)
		return
	}
	if pc.host.BackupOnly {
		w.Counters.inc(CntBackupOnly)
		return
	}
	if p.Proto == header.ProtoTCP && (p.TCPFlags&header.TCPFlagSYN == 0 || p.TCPFlags&header.TCPFlagRST != 0) &&
		(!w.env.SloppyTCP || p.TCPFlags&header.TCPFlagRST != 0) {
		// tcp_conn_schedule: a RST is never scheduled, a packet
		// without SYN only with sloppy_tcp.
		w.Counters.inc(CntNotSyn)
		return
	}
	if p.Proto == header.ProtoSCTP && !w.sctpSchedules(p) {
		return // sctp_conn_schedule: INIT only, unless sloppy_sctp
	}
	w.schedule(pc, key, svc, mark)
}

// schedule picks a destination for a new flow (key, its inbound tuple) of
// service svc and creates its connection, or queues the frame when a
// FULLNAT connection needs the route towards the real server first.
func (w *Worker) schedule(pc *pktCtx, key *conntrack.Key, svc *snapshot.Service, mark uint32) {
	p := pc.p
	fl := &w.flow
	*fl = sched.Flow{Proto: spec.Proto(p.Proto), Src: p.SrcAddr(), Dst: p.DstAddr(), SrcPort: p.SrcPort, DstPort: p.DstPort, Mark: mark}
	var why *sched.Reason
	if w.env.Trace != nil {
		why = &w.why
	}
	dec := svc.Sched.SchedulePersistent(fl, w.tmpl, pc.now, why)
	if w.env.Trace != nil {
		w.env.Trace(svc, netip.AddrPortFrom(fl.Src, fl.SrcPort), dec.Dest, why)
	}
	if dec.Dest == nil {
		w.Counters.inc(CntNoDest)
		w.sendICMP(pc, icmpPortUnreach, 0)
		return
	}
	d := dec.Dest
	if onePacketApplies(svc, p.Proto, d) {
		w.onePacket(pc, key, svc, &dec, mark) // -o: no connection (ops.go)
		return
	}
	nc := conntrack.NewConn{
		In:      *key,
		Fwd:     d.Fwd(),
		Dest:    d,
		Real:    conntrack.Endpoint{Addr: d.Addr().As16(), Port: dec.Port},
		MAC:     header.Ethernet(pc.f.Data()).Src(),
		Ifindex: int32(pc.f.Ifindex),
		VLAN:    vlanOf(p),
		FWMark:  mark,
		Service: svc.ID,
	}
	if dec.Persistent {
		nc.Template = w.tmpl.Handle(dec.Template, pc.now)
	}
	if nc.Fwd == spec.FwdFullNAT && len(svc.LocalAddrs) == 0 && w.env.Ports != nil {
		// The local address is the route's source towards the real
		// server: the connection waits for the next hop.
		real := header.AddrFrom16(nc.Real.Addr)
		if !w.hop(real, &pc.hop) {
			if e := w.enqueue(pc, pendCreate, real); e != nil {
				e.nc, e.svc, e.key = nc, svc, *key
				w.pq.creates++
			}
			return
		}
	}
	w.create(pc, &nc, svc)
}

// create creates a scheduled connection and forwards its first frame.
func (w *Worker) create(pc *pktCtx, nc *conntrack.NewConn, svc *snapshot.Service) {
	d := nc.Dest
	if nc.Fwd == spec.FwdFullNAT {
		if !w.fullnatLocal(nc, svc, d) {
			w.Counters.inc(CntFullNATNoPort)
			return
		}
	}
	c := &w.cn
	if err := w.env.Conns.Create(nc, pc.p.TCPFlags, pc.mono, c); err != nil {
		if err == conntrack.ErrDropped {
			w.Counters.inc(CntDefenseDrop) // drop_packet
		} else {
			w.Counters.inc(CntNoConnSpace)
		}
		return
	}
	if c.Evicted {
		w.Counters.inc(CntTableEvicted)
	}
	w.b.changed = true
	w.Counters.inc(CntNewConn)
	if pc.p.Proto == header.ProtoTCP && pc.p.TCPFlags&header.TCPFlagSYN == 0 ||
		pc.p.Proto == header.ProtoSCTP && pc.p.TCPFlags != conntrack.SCTPEvInit {
		w.Counters.inc(CntSloppy) // only sloppy_tcp / sloppy_sctp schedule these
	}
	w.stats.blk.Conn(svc.Stats, d) // ip_vs_conn_stats
	w.forward(pc, c)
}

// forward sends a packet of an existing connection in its direction: a
// request towards the real server, a reply towards the client.
func (w *Worker) forward(pc *pktCtx, c *conntrack.Conn) {
	d := c.Dest
	if c.Dir == conntrack.DirIn {
		if d == nil || !d.Available() {
			w.Counters.inc(CntDestGone)
			return
		}
		w.stats.blk.In(d, pc.p.IPLen) // ip_vs_in_stats
		w.toReal(pc, c, pendRequest)
		if w.ring != nil && w.env.Sync.Sending() {
			// ip_vs_in: after the transmitter, ip_vs_sync_conn.
			w.syncConn(pc, c)
		}
		return
	}
	if !w.replyFits(pc, c) { // ip_forward's MTU check (fragout.go)
		return
	}
	if d != nil && d.Available() {
		// ip_vs_out_stats: replies of a destination that was deleted
		// (in the trash) are not counted.
		w.stats.blk.Out(d, pc.p.IPLen)
	}
	xmitFor(c.Fwd).reply(w, pc, c)
}

// standby reports whether the frame of pc (an IP packet) is one this node
// leaves to the kernel because it does not serve its destination now: a
// VIP in Host.Standby (VRRP backup), or while Host.BackupOnly any VIP or
// firewall-marked destination, which is where every request goes (the
// kernel's backup_only check at the top of ip_vs_in; replies, addressed to
// clients, still pass). It counts what it leaves. Checked before the
// connection lookup, so that such a frame changes no connection.
//
// A standby VIP's services stay owned while there is a local-delivery
// device (the director's choice: director/owners.go), so that nothing
// changes in the hooks when keepalived moves the VIP here; the frames the
// hooks kept from the kernel are handed to it unchanged (toStandbyLocal)
// when the VIP is on a loopback device (a backup that is also a real
// server, the VIP on lo as the DR and TUN recipes and uvs-rs put it: its
// own server answers what the master forwards to it). Otherwise they are
// dropped: the kernel could only forward them or — keepalived having
// added the VIP to its interface a moment before uvsd learnt it — answer
// them with a reset; dropped, a client retransmits to the new master. A
// VIP on another device is such a moment (Host.Local may already list it
// while Host.Standby does not yet know it is held: a CI simulation saw
// one connection refused at takeover that way), so it is not delivered.
func (w *Worker) standby(pc *pktCtx) bool {
	dst, host := pc.p.Dst, pc.host
	if len(host.Standby) > 0 && host.Standby[dst] {
		w.Counters.inc(CntStandby)
		if w.env.LocalNode != nil && !host.BackupOnly && host.Loopback[dst] {
			// (Under backup_only nothing is owned: the kernel has it.)
			w.toStandbyLocal(pc)
		}
		return true
	}
	if host.BackupOnly && (pc.snap.IsVIP(dst) || host.Marked[dst]) {
		w.Counters.inc(CntBackupOnly)
		return true
	}
	return false
}

// markOf returns the firewall mark the namespace's mangle MARK rules
// would give the frame of pc (0 without firewall-mark services).
func (w *Worker) markOf(pc *pktCtx) uint32 {
	if !pc.snap.HasFWMark() || w.env.Marks == nil {
		return 0
	}
	cl := w.env.Marks.Load()
	if cl == nil {
		return 0
	}
	p := pc.p
	w.mp = fwmark.Packet{Src: p.Src, Dst: p.Dst, SrcPort: p.SrcPort, DstPort: p.DstPort,
		Ifindex: pc.f.Ifindex, Proto: p.Proto, IPv6: p.IPVersion == 6}
	return cl.Mark(&w.mp)
}

// toStandbyLocal hands a frame to a standby VIP to the director's own
// stack through Env.LocalNode, exactly as the kernel would have received
// it from the wire, when it is one the hooks keep from the kernel
// (package ownership): TCP, UDP or SCTP to a service, or an ICMP error.
// Anything else to the VIP (an echo request, a port without a service)
// reaches the kernel by itself and is left alone.
func (w *Worker) toStandbyLocal(pc *pktCtx) {
	f, p := pc.f, pc.p
	switch p.Proto {
	case header.ProtoTCP, header.ProtoUDP, header.ProtoSCTP:
		if pc.snap.Lookup(spec.Proto(p.Proto), p.Dst, p.DstPort, w.markOf(pc), p.IPVersion == 6) == nil {
			return
		}
		if f.CsumUnknown && !f.CsumPartial && p.Proto != header.ProtoSCTP && header.LooksPartial(f.Data(), p) {
			f.CsumPartial = true
		}
	case header.ProtoICMPv4, header.ProtoICMPv6:
		if !p.IsICMPError() {
			return
		}
	default:
		return
	}
	csum, ok := w.csumState(pc)
	if !ok {
		return
	}
	w.toLocal(pc, csum)
}
