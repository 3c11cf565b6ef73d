package dataplane

import (
	"errors"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/dataplane/header"
	"github.com/uvs-lb/uvs/fwmark"
	"github.com/uvs-lb/uvs/modes"
	"github.com/uvs-lb/uvs/sched"
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
	CntNeighMiss   // next hop not resolved yet (resolution started)
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
	NumCounters
)

var counterNames = [NumCounters]string{
	"rx", "tx", "tx-error", "not-ours", "new-conn", "no-destination", "tcp-not-syn",
	"conn-table-full", "neighbour-miss", "ttl-exceeded", "too-big", "rewrite-failed",
	"destination-gone", "arp-reply", "icmp-related", "malformed", "unsupported", "fullnat-no-port",
	"gso", "gso-segment", "gso-bad",
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

// LoadParse returns how many frames failed parsing with reason r.
func (c *Counters) LoadParse(r header.Reason) uint64 { return c.parse[r].Load() }

// Env is what every worker shares: configuration, connection table, next
// hops, host facts and the clock.
type Env struct {
	Snap  *atomic.Pointer[Snapshot]
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
	Trace func(svc *Service, client netip.AddrPort, d *sched.Dest, why *sched.Reason)
}

// BatchSize is how many frames a worker reads and writes at once.
const BatchSize = 64

// Worker runs the per-packet pipeline for one PacketIO.
type Worker struct {
	io   PacketIO
	env  *Env
	in   []Frame
	out  []Frame
	p    header.Parsed
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
	return w
}

// Run processes batches until the PacketIO is closed.
func (w *Worker) Run() error {
	for {
		n, err := w.io.ReadBatch(w.in)
		if err != nil {
			if errors.Is(err, ErrClosed) {
				return nil
			}
			return err
		}
		if n == 0 {
			continue
		}
		w.ProcessBatch(w.in[:n])
	}
}

// ProcessBatch runs the pipeline over frames and transmits the results.
// The snapshot is loaded once per batch.
func (w *Worker) ProcessBatch(frames []Frame) {
	snap := w.env.Snap.Load()
	host := w.env.Host.Load()
	now := w.env.Now()
	mono := int64(now.Sub(w.env.Epoch))
	w.out = w.out[:0]
	w.nctl = 0
	w.slabOff = 0
	for i := range frames {
		w.Counters.inc(CntRx)
		w.process(&frames[i], snap, host, now, mono)
	}
	w.flush()
}

// flush transmits the frames collected so far; the segment slab is free
// again afterwards.
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
}

func (w *Worker) emit(f *Frame, ifindex int) {
	f.Ifindex = ifindex
	w.out = append(w.out, *f)
}

func (w *Worker) process(f *Frame, snap *Snapshot, host *Host, now time.Time, mono int64) {
	data := f.Data()
	ifc, ok := host.Ifaces[f.Ifindex]
	if !ok || len(data) < header.EthernetMinSize {
		return // not a served interface
	}
	if dst := header.Ethernet(data).Dst(); dst[0]&1 == 0 && dst != ifc.MAC {
		return // PACKET_OTHERHOST: addressed to another station on the segment
	}
	p := &w.p
	p.Parse(data)
	switch p.Kind {
	case header.KindARP:
		w.arp(f, data, snap, host)
		return
	case header.KindIPv4, header.KindIPv6:
	default:
		return
	}
	if p.Reason != header.ReasonNone {
		w.Counters.parse[p.Reason].Add(1)
		w.Counters.inc(CntMalformed)
		return
	}
	var key conntrack.Key
	putAddr(&key.Src, p.Src[:], p.IPVersion)
	putAddr(&key.Dst, p.Dst[:], p.IPVersion)
	switch p.Proto {
	case header.ProtoTCP, header.ProtoUDP:
		if f.CsumUnknown && !f.CsumPartial && header.LooksPartial(data, p) {
			// No skb metadata (AF_XDP): a checksum field holding just the
			// pseudo-header sum that does not verify is a partial one.
			f.CsumPartial = true
		}
	case header.ProtoICMPv4, header.ProtoICMPv6:
		if p.IPVersion == 6 && (p.ICMPType == 135) {
			w.ndp(f, data, snap, host)
			return
		}
		if p.IsICMPError() {
			w.icmpError(f, data, host, mono)
		}
		return
	default:
		w.Counters.inc(CntNotOurs)
		return
	}
	key.SrcPort, key.DstPort, key.Proto = p.SrcPort, p.DstPort, p.Proto
	c := &w.cn
	if w.env.Conns.Track(key, p.TCPFlags, mono, c) {
		if c.Dir == conntrack.DirIn && p.Proto == header.ProtoTCP && p.TCPFlags&tcpSYN != 0 && p.TCPFlags&tcpACK == 0 &&
			(c.OldState == conntrack.StateTimeWait || c.OldState == conntrack.StateClose) && !c.Controlled {
			// conn_reuse_mode: a new SYN on a closing connection is scheduled afresh.
			w.env.Conns.ExpireNow(c.Handle, mono)
		} else {
			w.forward(f, data, c, snap, host)
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
	w.schedule(f, data, key, svc, mark, snap, host, now, mono)
}

const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

var v4mapped = [12]byte{10: 0xff, 11: 0xff}

// putAddr stores a parsed address (IPv4 in the first 4 bytes) in the
// conntrack form (IPv4 mapped).
func putAddr(dst *[16]byte, src []byte, ver uint8) {
	if ver == 6 {
		copy(dst[:], src[:16])
		return
	}
	copy(dst[:12], v4mapped[:])
	copy(dst[12:], src[:4])
}

func addrFrom16(a [16]byte) netip.Addr {
	if [12]byte(a[:12]) == v4mapped {
		return netip.AddrFrom4([4]byte(a[12:]))
	}
	return netip.AddrFrom16(a)
}

func (w *Worker) schedule(f *Frame, data []byte, key conntrack.Key, svc *Service, mark uint32, snap *Snapshot, host *Host, now time.Time, mono int64) {
	p := &w.p
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
	if nc.Fwd == spec.FwdFullNAT {
		if !w.fullnatLocal(&nc, svc, d) {
			w.Counters.inc(CntFullNATNoPort)
			return
		}
	}
	c := &w.cn
	if err := w.env.Conns.Create(&nc, p.TCPFlags, mono, c); err != nil {
		if nc.Fwd == spec.FwdFullNAT && w.env.Ports != nil {
			w.env.Ports.Release(nc.Local)
		}
		w.Counters.inc(CntNoConnSpace)
		return
	}
	w.Counters.inc(CntNewConn)
	svc.Stats.Conns.Add(1)
	d.Stats.Conns.Add(1)
	w.forward(f, data, c, snap, host)
}

func as16(a netip.Addr) [16]byte { return a.As16() }

// forward sends a packet of an existing connection in its direction.
func (w *Worker) forward(f *Frame, data []byte, c *conntrack.Conn, snap *Snapshot, host *Host) {
	p := &w.p
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

func (w *Worker) request(f *Frame, data []byte, c *conntrack.Conn, host *Host) {
	p := &w.p
	real := addrFrom16(c.Real.Addr)
	hop, ok := w.env.Hops.Lookup(real)
	if !ok {
		w.Counters.inc(CntNeighMiss)
		return
	}
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
			r = modes.FullNATRequest(data, p, netip.AddrPortFrom(addrFrom16(c.Local.Addr), c.Local.Port),
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
			w.tunnelGSO(f, data, &t, &hop, host)
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

func (w *Worker) reply(f *Frame, data []byte, c *conntrack.Conn, host *Host) {
	p := &w.p
	var r modes.Result
	vip := netip.AddrPortFrom(addrFrom16(c.Virtual.Addr), c.Virtual.Port)
	csum, ok := w.csumState(f, data)
	if !ok {
		w.Counters.inc(CntGSOBad)
		return
	}
	switch c.Fwd {
	case spec.FwdMasq:
		r = modes.NATReply(data, p, vip, csum)
	case spec.FwdFullNAT:
		r = modes.FullNATReply(data, p, vip, netip.AddrPortFrom(addrFrom16(c.Client.Addr), c.Client.Port), csum)
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
