package afpacket

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/header"
)

// TestGSORead: with offloads on, a TCP sender's TSO super-frames arrive
// through the ring whole, with their virtio_net_hdr metadata: GSO type
// and size, and the partial checksum's position. The partial checksum is
// the pseudo-header sum over the super-frame's whole L4 length (Linux
// __tcp_v4_send_check), which the rewrite code relies on.
func TestGSORead(t *testing.T) {
	tp := newTopo(t, false)
	s := open(t, tp.b, Config{Interface: "vb"})
	const port = 9100
	var ln net.Listener
	if err := tp.b.Do(func() error {
		var err error
		ln, err = net.Listen("tcp4", netip.AddrPortFrom(ipB, port).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(io.Discard, c)
	}()
	var c net.Conn
	if err := tp.a.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp4", netip.AddrPortFrom(ipB, port).String(), testTimeout)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	go func() {
		buf := make([]byte, 1<<20)
		_ = c.SetWriteDeadline(time.Now().Add(testTimeout))
		for range 8 {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	readUntil(t, s, func(f *dataplane.Frame) bool {
		if !f.Offload {
			t.Fatal("frame without offload metadata from a PACKET_VNET_HDR socket")
		}
		var p header.Parsed
		p.Parse(f.Data())
		if p.Reason != header.ReasonNone || p.Proto != header.ProtoTCP || p.DstPort != port || !f.GSO.IsGSO() {
			return false
		}
		if f.GSO.Type != dataplane.GSOTCPv4 || f.GSO.Size == 0 || int(f.GSO.Size) > 1500-40 || f.Len <= 1514 {
			t.Fatalf("super-frame: GSO %+v, length %d", f.GSO, f.Len)
		}
		if !f.CsumPartial || int(f.CsumStart) != p.L4Off || f.CsumOffset != header.TCPChecksumOff {
			t.Fatalf("super-frame checksum: partial %v start %d offset %d", f.CsumPartial, f.CsumStart, f.CsumOffset)
		}
		b := f.Data()
		want := header.PseudoHeaderChecksum(header.ProtoTCP, b[p.L3Off+12:p.L3Off+16], b[p.L3Off+16:p.L3Off+20], uint32(p.End-p.L4Off))
		if got := binary.BigEndian.Uint16(b[p.L4Off+16:]); got != want {
			t.Fatalf("partial checksum %#04x, want the pseudo-header sum with the whole length %#04x", got, want)
		}
		return true
	})
	st, err := s.Stats()
	if err != nil || st.GSORead == 0 {
		t.Fatalf("Stats %+v, %v: no GSO read counted", st, err)
	}
}

// gsoTestFrame builds an Ethernet/IPv4 super-frame from a to b with its
// L4 checksum in the CHECKSUM_PARTIAL form, as offload metadata describes.
func gsoTestFrame(t *testing.T, tp *topo, proto layers.IPProtocol, payload []byte, size uint16) dataplane.Frame {
	t.Helper()
	dst := netip.MustParseAddr("198.18.5.77") // nobody's: b's kernel drops it
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, SrcIP: ipA.AsSlice(), DstIP: dst.AsSlice(), Flags: layers.IPv4DontFragment}
	var l4 gopacket.SerializableLayer
	typ := dataplane.GSOUDPL4
	switch proto {
	case layers.IPProtocolTCP:
		tcp := &layers.TCP{SrcPort: 5555, DstPort: 80, Seq: 1000, ACK: true, PSH: true, Window: 1000}
		_ = tcp.SetNetworkLayerForChecksum(ip)
		l4 = tcp
		typ = dataplane.GSOTCPv4
	default:
		u := &layers.UDP{SrcPort: 5555, DstPort: 80}
		_ = u.SetNetworkLayerForChecksum(ip)
		l4 = u
	}
	b := serialize(t, &layers.Ethernet{SrcMAC: tp.aIf.HardwareAddr, DstMAC: tp.bIf.HardwareAddr, EthernetType: layers.EthernetTypeIPv4},
		ip, l4, gopacket.Payload(payload))
	var p header.Parsed
	p.Parse(b)
	co := header.L4ChecksumOffset(p.Proto)
	sum := header.PseudoHeaderChecksum(p.Proto, b[26:30], b[30:34], uint32(p.End-p.L4Off))
	binary.BigEndian.PutUint16(b[p.L4Off+co:], sum)
	f := dataplane.Frame{Buf: b, Len: len(b), Offload: true, CsumPartial: true, CsumStart: uint16(p.L4Off), CsumOffset: uint16(co)}
	if size > 0 {
		f.GSO = dataplane.GSO{Type: typ, Size: size}
	}
	return f
}

// TestGSOWrite writes super-frames and a partial frame through a socket
// whose interface has segmentation and checksum offload off, so the
// kernel cuts and completes them in software from the metadata: every
// segment must arrive with a correct checksum, in order, with the whole
// payload. This checks the metadata and the partial-checksum seed against
// the kernel itself.
func TestGSOWrite(t *testing.T) {
	tp := newTopo(t, false)
	tp.a.Exec(t, "ethtool", "-K", "va", "tx", "off", "tso", "off", "gso", "off")
	s := open(t, tp.a, Config{Interface: "va"})
	r := open(t, tp.b, Config{Interface: "vb", DisableOffload: true})
	payload := make([]byte, 10000)
	for i := range payload {
		payload[i] = byte(i*7 + 1)
	}
	frames := []dataplane.Frame{
		gsoTestFrame(t, tp, layers.IPProtocolTCP, payload, 1000),
		gsoTestFrame(t, tp, layers.IPProtocolUDP, payload[:3000], 1000),
		gsoTestFrame(t, tp, layers.IPProtocolUDP, payload[:700], 0), // partial, not GSO
	}
	if n, err := s.WriteBatch(frames); n != len(frames) || err != nil {
		st, _ := s.Stats()
		t.Fatalf("WriteBatch = %d, %v (stats %+v)", n, err, st)
	}
	var tcpData, udpData []byte
	tcpSegs, udpSegs := 0, 0
	readUntil(t, r, func(f *dataplane.Frame) bool {
		var p header.Parsed
		b := f.Data()
		p.Parse(b)
		if p.Reason != header.ReasonNone || p.DstPort != 80 || p.SrcAddr() != ipA {
			return false
		}
		if f.GSO.IsGSO() || f.Len > 1514 {
			t.Fatalf("got a %d-byte frame: not segmented", f.Len)
		}
		if !header.L4ChecksumValid(b, &p) || !header.IPv4(b[p.L3Off:]).ChecksumValid() {
			t.Fatalf("segment with a bad checksum: %x", b[:min(len(b), 80)])
		}
		switch p.Proto {
		case header.ProtoTCP:
			if seq := binary.BigEndian.Uint32(b[p.L4Off+4:]); seq != uint32(1000+len(tcpData)) {
				t.Fatalf("TCP segment %d: seq %d", tcpSegs, seq)
			}
			tcpData = append(tcpData, b[p.PayloadOff:p.End]...)
			tcpSegs++
		case header.ProtoUDP:
			udpData = append(udpData, b[p.PayloadOff:p.End]...)
			udpSegs++
		}
		return tcpSegs == 10 && udpSegs == 4
	})
	if !bytes.Equal(tcpData, payload) {
		t.Error("TCP payload differs")
	}
	if !bytes.Equal(udpData, append(append([]byte(nil), payload[:3000]...), payload[:700]...)) {
		t.Error("UDP payload differs")
	}
	st, err := s.Stats()
	if err != nil || st.GSOSent != 2 {
		t.Errorf("Stats %+v, %v: want 2 GSO frames sent", st, err)
	}
}

// TestGSOPassThrough: with TSO on the egress (veth's default), a
// super-frame crosses the link whole and arrives with the same metadata.
func TestGSOPassThrough(t *testing.T) {
	tp := newTopo(t, false)
	s := open(t, tp.a, Config{Interface: "va"})
	r := open(t, tp.b, Config{Interface: "vb"})
	payload := make([]byte, 30000)
	f := gsoTestFrame(t, tp, layers.IPProtocolTCP, payload, 1448)
	if n, err := s.WriteBatch([]dataplane.Frame{f}); n != 1 || err != nil {
		t.Fatalf("WriteBatch = %d, %v", n, err)
	}
	readUntil(t, r, func(g *dataplane.Frame) bool {
		if !bytes.Equal(g.Data(), f.Data()) {
			return false
		}
		if g.GSO != f.GSO || !g.CsumPartial || g.CsumStart != f.CsumStart || g.CsumOffset != f.CsumOffset {
			t.Fatalf("arrived with GSO %+v partial %v start %d offset %d, sent %+v", g.GSO, g.CsumPartial, g.CsumStart, g.CsumOffset, f.GSO)
		}
		return true
	})
}

// TestGSOWriteRefused: metadata the kernel rejects (a TCP super-frame
// whose checksum offset is not TCP's) is a counted TX error, not a crash
// or a stall; the rest of the batch goes out.
func TestGSOWriteRefused(t *testing.T) {
	tp := newTopo(t, false)
	s := open(t, tp.a, Config{Interface: "va"})
	good := gsoTestFrame(t, tp, layers.IPProtocolTCP, make([]byte, 5000), 1000)
	bad := gsoTestFrame(t, tp, layers.IPProtocolTCP, make([]byte, 5000), 1000)
	bad.CsumOffset = header.UDPChecksumOff
	n, err := s.WriteBatch([]dataplane.Frame{bad, good})
	if n != 1 || err != nil {
		t.Fatalf("WriteBatch = %d, %v; want 1, nil", n, err)
	}
	n, err = s.WriteBatch([]dataplane.Frame{bad})
	if n != 0 || !errors.Is(err, unix.EINVAL) {
		t.Fatalf("WriteBatch of a refused frame = %d, %v; want 0, EINVAL", n, err)
	}
	st, err := s.Stats()
	if err != nil || st.TxErrors != 2 || st.GSOSent != 1 {
		t.Fatalf("Stats %+v, %v: want 2 TX errors, 1 GSO sent", st, err)
	}
}
