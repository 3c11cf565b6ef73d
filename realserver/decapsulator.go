package realserver

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync/atomic"
)

// Encap is the kind of packet a source delivers to the Decapsulator.
type Encap uint8

// Encapsulations.
const (
	// EncapIPIP: whole IPv4 packets of protocol 4, 41 or 47 (GRE), as a
	// raw IPv4 socket returns them (outer header included).
	EncapIPIP Encap = iota
	// EncapGUE: UDP payloads received on the GUE port (over IPv4 or
	// IPv6).
	EncapGUE
	// EncapIPv6IPIP, EncapIPv6IPv6 and EncapIPv6GRE: payloads of IPv6
	// packets of protocol 4, 41 and 47, as raw IPv6 sockets return them
	// (outer header removed).
	EncapIPv6IPIP
	EncapIPv6IPv6
	EncapIPv6GRE
)

// String returns the encapsulation's short name.
func (e Encap) String() string {
	switch e {
	case EncapIPIP:
		return "ipip"
	case EncapGUE:
		return "gue"
	case EncapIPv6IPIP:
		return "ipv6-ipip"
	case EncapIPv6IPv6:
		return "ipv6-ipv6"
	case EncapIPv6GRE:
		return "ipv6-gre"
	}
	return "unknown"
}

// MaxPacket is the size of the receive buffer each source needs: the
// largest IPv4 packet.
const MaxPacket = 65535

// Counters are the decapsulator's statistics. They are updated atomically
// and may be read while packets flow.
type Counters struct {
	// Decapsulated counts inner packets written to the TUN device (each
	// segment of a coalesced super-frame counts).
	Decapsulated atomic.Uint64
	// Writes counts writes to the TUN device: fewer than Decapsulated
	// when segments were coalesced (ServeBatch with vnet).
	Writes atomic.Uint64
	// KernelGRO counts packets that the receiving interface's GRO had
	// merged before uvs-rs read them (written with a partial checksum,
	// see gro.go); each counts once in Decapsulated.
	KernelGRO atomic.Uint64
	// BPFDecapsulated counts IPv4-in-IPv4 packets the tc BPF program
	// decapsulated in the kernel (they never reach the decapsulator).
	BPFDecapsulated atomic.Uint64
	// Rejected counts packets dropped, indexed by Reason (ReasonOK unused).
	Rejected [NumReasons]atomic.Uint64
}

// Snapshot returns the counters as a map from name ("decapsulated" and
// each non-zero reason) to value, for status output.
func (c *Counters) Snapshot() map[string]uint64 {
	m := map[string]uint64{"decapsulated": c.Decapsulated.Load(), "tun-writes": c.Writes.Load()}
	if v := c.KernelGRO.Load(); v != 0 {
		m["kernel-gro"] = v
	}
	if v := c.BPFDecapsulated.Load(); v != 0 {
		m["bpf-decapsulated"] = v
	}
	for r := ReasonOK + 1; r < NumReasons; r++ {
		if v := c.Rejected[r].Load(); v != 0 {
			m[r.String()] = v
		}
	}
	return m
}

// Decapsulator turns encapsulated packets into inner packets for the local
// stack, accepting only inner packets addressed to one of its VIPs. The
// VIP set may be replaced at any time with SetVIPs; Handle and Serve may run
// concurrently from several goroutines.
type Decapsulator struct {
	vips     atomic.Pointer[[]netip.Addr]
	counters Counters
}

// NewDecapsulator returns a Decapsulator accepting the given VIPs.
func NewDecapsulator(vips []netip.Addr) *Decapsulator {
	d := &Decapsulator{}
	d.SetVIPs(vips)
	return d
}

// SetVIPs replaces the set of accepted inner destinations.
func (d *Decapsulator) SetVIPs(vips []netip.Addr) {
	s := make([]netip.Addr, 0, len(vips))
	for _, v := range vips {
		s = append(s, v.Unmap())
	}
	slices.SortFunc(s, netip.Addr.Compare)
	s = slices.Compact(s)
	d.vips.Store(&s)
}

// VIPs returns the accepted inner destinations, sorted.
func (d *Decapsulator) VIPs() []netip.Addr { return slices.Clone(*d.vips.Load()) }

// Counters returns the live counters.
func (d *Decapsulator) Counters() *Counters { return &d.counters }

// Handle decapsulates one received packet and returns the inner packet (a
// sub-slice of pkt) or the reason it was rejected. Rejections are counted
// here; successful injections are counted by Serve once the write
// succeeded. It never allocates.
func (d *Decapsulator) Handle(kind Encap, pkt []byte) ([]byte, Reason) {
	var inner []byte
	var r Reason
	switch kind {
	case EncapGUE:
		inner, r = DecapGUE(pkt)
	case EncapIPv6IPIP:
		inner, r = DecapIPv6Payload(ProtoIPIP, pkt)
	case EncapIPv6IPv6:
		inner, r = DecapIPv6Payload(ProtoIPv6, pkt)
	case EncapIPv6GRE:
		inner, r = DecapIPv6Payload(ProtoGRE, pkt)
	default:
		inner, r = DecapIPIP(pkt)
	}
	if r == ReasonOK && !d.isVIP(inner) {
		r = ReasonNotVIP
	}
	if r != ReasonOK {
		d.counters.Rejected[r].Add(1)
		return nil, r
	}
	return inner, ReasonOK
}

// isVIP reports whether the validated inner packet is addressed to a VIP.
func (d *Decapsulator) isVIP(inner []byte) bool {
	var dst netip.Addr
	if inner[0]>>4 == 4 {
		dst = netip.AddrFrom4([4]byte(inner[16:20]))
	} else {
		dst = netip.AddrFrom16([16]byte(inner[24:40]))
	}
	for _, v := range *d.vips.Load() {
		if v == dst {
			return true
		}
	}
	return false
}

// Serve reads packets of the given kind from src into buf (preallocated,
// MaxPacket bytes is always enough), decapsulates them and writes the inner
// packets to dst, one Write per packet, until src returns an error. It
// returns nil when src or dst has been closed (os.ErrClosed, io.EOF,
// net.ErrClosed) and the read error otherwise. A failed write to dst is
// counted as ReasonWrite and the loop goes on.
func (d *Decapsulator) Serve(kind Encap, src io.Reader, dst io.Writer, buf []byte) error {
	for {
		n, err := src.Read(buf)
		if err != nil {
			if isClosed(err) {
				return nil
			}
			return err
		}
		inner, r := d.Handle(kind, buf[:n])
		if r != ReasonOK {
			continue
		}
		if _, err := dst.Write(inner); err != nil {
			d.counters.Rejected[ReasonWrite].Add(1)
			if isClosed(err) {
				return nil
			}
			continue
		}
		d.counters.Decapsulated.Add(1)
		d.counters.Writes.Add(1)
	}
}

// BatchReader reads packets in batches: up to len(bufs) packets, packet i
// into bufs[i][Headroom:], its length in sizes[i]. It returns the number
// of packets read.
type BatchReader interface {
	ReadBatch(bufs [][]byte, sizes []int) (int, error)
}

// Batch is the preallocated state of one ServeBatch loop.
type Batch struct {
	Bufs  [][]byte // Headroom + MaxPacket bytes each
	Sizes []int
	gro   *GRO
}

// NewBatch allocates a batch of n receive buffers.
func NewBatch(n int) *Batch {
	b := &Batch{Bufs: make([][]byte, n), Sizes: make([]int, n), gro: NewGRO(n)}
	for i := range b.Bufs {
		b.Bufs[i] = make([]byte, Headroom+MaxPacket)
	}
	return b
}

// SetMTU tells the batch's coalescer the TUN device's MTU (see
// GRO.SetMTU).
func (b *Batch) SetMTU(mtu int) { b.gro.SetMTU(mtu) }

// ServeBatch is Serve for a batch reader: it reads a batch from src,
// decapsulates each packet and writes the inner packets to dst. With vnet
// (dst is a TUN device opened with IFF_VNET_HDR) every write starts with a
// virtio_net_hdr and the TCP segments of one flow in the batch are first
// coalesced into super-frames (GRO); without, each inner packet is written
// as it is. Counters are added once per batch. It returns as Serve does
// and allocates nothing per packet.
func (d *Decapsulator) ServeBatch(kind Encap, src BatchReader, dst io.Writer, vnet bool, b *Batch) error {
	g := b.gro
	g.off = !vnet
	for {
		n, err := src.ReadBatch(b.Bufs, b.Sizes)
		if err != nil {
			if isClosed(err) {
				return nil
			}
			return err
		}
		g.Reset()
		for i := range n {
			buf := b.Bufs[i]
			inner, r := d.Handle(kind, buf[Headroom:Headroom+b.Sizes[i]])
			if r != ReasonOK {
				continue
			}
			// inner is a sub-slice of buf: its offset from their capacities.
			g.Add(buf, cap(buf)-cap(inner), len(inner))
		}
		var segs, writes, failed uint64
		closed := false
		for i := range g.Len() {
			frame, s := g.Frame(i, vnet)
			if _, err := dst.Write(frame); err != nil {
				failed += uint64(s)
				if isClosed(err) {
					closed = true
					break
				}
				continue
			}
			segs += uint64(s)
			writes++
		}
		if segs != 0 {
			d.counters.Decapsulated.Add(segs)
			d.counters.Writes.Add(writes)
		}
		if failed != 0 {
			d.counters.Rejected[ReasonWrite].Add(failed)
		}
		if g.Partial != 0 {
			d.counters.KernelGRO.Add(uint64(g.Partial))
		}
		if closed {
			return nil
		}
	}
}

// isClosed reports whether err means the file or socket was closed.
func isClosed(err error) bool {
	return errors.Is(err, os.ErrClosed) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed)
}
