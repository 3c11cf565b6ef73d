package dataplane_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/internal/fuzzwatch"
	"github.com/uvs-lb/uvs/ownership"
)

// Frames the ownership hooks keep from the kernel that turn out not to be
// uvsd's are handed to the director's own stack (handback.go); those the
// kernel saw too are not delivered again.

// hbRules: a persistent port-0 TCP NAT service (real server 10.0.2.11), a
// UDP NAT service on port 53 (real server 10.0.2.11:5353) of the same VIP,
// an IPv6 UDP service, and a FULLNAT UDP service without a pool (its
// local address is the route's source towards 10.0.2.12: 10.0.2.1).
const hbRules = `-A -t 10.0.1.100:0 -s rr -p 300
-a -t 10.0.1.100:0 -r 10.0.2.11 -m
-A -u 10.0.1.100:53 -s rr
-a -u 10.0.1.100:53 -r 10.0.2.11:5353 -m
-A -u [2001:db8:1::100]:53 -s rr
-a -u [2001:db8:1::100]:53 -r [2001:db8:2::11]:5353 -m
-A -u 10.0.1.101:53 -s rr
-a -u 10.0.1.101:53 -r 10.0.2.12:53 -b
`

// hbRig is a rig serving hbRules with ln as its LocalNode and the
// director's addresses 10.0.1.1 and 10.0.2.1 in Host.Local.
func hbRig(t testing.TB, ln dataplane.LocalNode) *rig {
	t.Helper()
	r := newRig(t, hbRules)
	hbHost(r, ln)
	return r
}

// hbHost makes 10.0.1.1 and 10.0.2.1 r's host addresses and ln, if not
// nil, its LocalNode.
func hbHost(r *rig, ln dataplane.LocalNode) {
	h := *r.env.Host.Load()
	h.Local = map[[16]byte]bool{
		netip.MustParseAddr("10.0.1.1").As16(): true,
		netip.MustParseAddr("10.0.2.1").As16(): true,
	}
	r.env.Host.Store(&h)
	if ln != nil {
		r.env.LocalNode = ln
	}
}

// hbEcho builds an ICMP (ICMPv6) echo request with n payload bytes.
func hbEcho(t testing.TB, srcMAC, dstMAC [6]byte, src, dst string, n int) []byte {
	t.Helper()
	pl := gopacket.Payload(bytes.Repeat([]byte{0xa5}, n))
	if netip.MustParseAddr(src).Is6() {
		icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoRequest, 0)}
		echo := &layers.ICMPv6Echo{Identifier: 7, SeqNumber: 1}
		return dfrSerialize(t, srcMAC, dstMAC, src, dst, layers.IPProtocolICMPv6, icmp, icmp, echo, pl)
	}
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 7, Seq: 1}
	return dfrSerialize(t, srcMAC, dstMAC, src, dst, layers.IPProtocolICMPv4, nil, icmp, pl)
}

// TestHandBackReassembled: a datagram reassembled from fragments the
// hooks kept (owned by their addresses and protocol alone) that no service
// or connection takes once whole is delivered to the LocalNode once,
// unchanged (the datagram as sent whole); a reassembled datagram whose
// fragments the kernel saw too is not.
func TestHandBackReassembled(t *testing.T) {
	for _, tc := range []struct {
		name string
		dg   func(t *testing.T) []byte
		// kept: the fragments were the director's (ownership), so the
		// datagram is handed back.
		kept bool
	}{
		{"udp to a VIP port without a service", func(t *testing.T) []byte {
			return dfrUDP(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 9999, 3000)
		}, true},
		{"ipv6 udp to a VIP port without a service", func(t *testing.T) []byte {
			return dfrUDP(t, macCli, macDir0, "2001:db8:1::2", "2001:db8:1::100", 40000, 9999, 3000)
		}, true},
		{"icmp echo to a VIP", func(t *testing.T) []byte {
			return hbEcho(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 3000)
		}, true},
		{"icmpv6 echo to a VIP", func(t *testing.T) []byte {
			return hbEcho(t, macCli, macDir0, "2001:db8:1::2", "2001:db8:1::100", 3000)
		}, true},
		{"udp to a FULLNAT route source from outside the local range", func(t *testing.T) []byte {
			return dfrUDP(t, macRS2, macDir1, "10.0.2.12", "10.0.2.1", 53, 7777, 3000)
		}, true},
		{"udp from a NAT real server outside any connection", func(t *testing.T) []byte {
			return dfrUDP(t, macRS1, macDir1, "10.0.2.11", "10.0.1.2", 4444, 40000, 3000)
		}, true},
		// Not the director's: the kernel reassembled the fragments itself.
		{"udp to the director's own address", func(t *testing.T) []byte {
			return dfrUDP(t, macCli, macDir0, "10.0.1.2", "10.0.1.1", 40000, 9999, 3000)
		}, false},
		{"icmp echo to the director's own address", func(t *testing.T) []byte {
			return hbEcho(t, macCli, macDir0, "10.0.1.2", "10.0.1.1", 3000)
		}, false},
		{"udp from a NAT real server to the director's own address", func(t *testing.T) []byte {
			// (10.0.2.1 would be a FULLNAT route source, owned.)
			return dfrUDP(t, macRS1, macDir1, "10.0.2.11", "10.0.1.1", 4444, 40000, 3000)
		}, false},
		{"udp from a host that is not a UDP real server", func(t *testing.T) []byte {
			return dfrUDP(t, macRS2, macDir1, "10.0.2.12", "10.0.1.2", 4444, 40000, 3000)
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln := &fakeLocal{}
			r := hbRig(t, ln)
			dg := tc.dg(t)
			out := r.run(t, dfrSplit(dg, 1232, 0x4242)...)
			if len(out) != 0 {
				t.Fatalf("sent %d frames on the wire", len(out))
			}
			c := &r.w.Counters
			if c.Load(dataplane.CntReassembled) != 1 {
				t.Fatalf("reassembled %d datagrams, want 1", c.Load(dataplane.CntReassembled))
			}
			if !tc.kept {
				if len(ln.pkts) != 0 || c.Load(dataplane.CntHandedBack) != 0 {
					t.Fatalf("delivered %d packets (handed-back %d): the kernel had the fragments already",
						len(ln.pkts), c.Load(dataplane.CntHandedBack))
				}
				return
			}
			if len(ln.pkts) != 1 || c.Load(dataplane.CntHandedBack) != 1 {
				t.Fatalf("delivered %d packets (handed-back %d), want the datagram once", len(ln.pkts), c.Load(dataplane.CntHandedBack))
			}
			if want := ipOf(dg); !bytes.Equal(ln.pkts[0], want) {
				t.Fatalf("delivered %x\nwant the datagram as sent whole %x", ln.pkts[0], want)
			}
			if c.Load(dataplane.CntNotOurs) != 0 {
				t.Fatalf("not-ours %d: a datagram handed back is not counted not-ours", c.Load(dataplane.CntNotOurs))
			}
		})
	}
}

// TestHandBackNATRealServer: a packet from a real server of a port-0 NAT
// service that belongs to no connection (the real server's own traffic
// through the director, its default gateway) is delivered to the
// LocalNode unchanged, as ip_vs_out lets the kernel have it; so is one
// from a fixed-port NAT real server's port. Packets the hooks leave to the
// kernel (to the director's own address, from a port that is no real
// server's, a client's to a VIP port without a service) are not
// delivered; and a reply of a connection still goes to its client.
func TestHandBackNATRealServer(t *testing.T) {
	ln := &fakeLocal{}
	r := hbRig(t, ln)
	syn := tcpFrame(t, macRS1, macDir1, "10.0.2.11", "10.0.1.2", 45000, 7000, true, false)
	udp := flowFrame(t, macRS1, macDir1, "10.0.2.11", "10.0.1.2", 5353, 40000, false, "", "query")
	out := r.run(t, syn, udp,
		tcpFrame(t, macRS1, macDir1, "10.0.2.11", "10.0.2.1", 45001, 22, true, false),        // to the director: the kernel's
		flowFrame(t, macRS1, macDir1, "10.0.2.11", "10.0.1.2", 4444, 40000, false, "", "x"),  // not a UDP real server's port
		flowFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 9999, false, "", "y"), // VIP, no UDP service there
	)
	if len(out) != 0 {
		t.Fatalf("sent %d frames on the wire", len(out))
	}
	if len(ln.pkts) != 2 || !bytes.Equal(ln.pkts[0], ipOf(syn)) || !bytes.Equal(ln.pkts[1], ipOf(udp)) {
		t.Fatalf("delivered %d packets, want the real server's SYN and UDP datagram unchanged", len(ln.pkts))
	}
	c := &r.w.Counters
	if c.Load(dataplane.CntHandedBack) != 2 || c.Load(dataplane.CntNotOurs) != 3 {
		t.Fatalf("handed-back %d not-ours %d, want 2 and 3", c.Load(dataplane.CntHandedBack), c.Load(dataplane.CntNotOurs))
	}

	// A connection's reply is still translated and sent to its client.
	if out := r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 8080, true, false)); len(out) != 1 {
		t.Fatalf("request: sent %d frames", len(out))
	}
	out = r.run(t, tcpFrame(t, macRS1, macDir1, "10.0.2.11", "10.0.1.2", 8080, 40000, true, true))
	if len(out) != 1 || out[0].Ifindex != 1 || len(ln.pkts) != 2 {
		t.Fatalf("reply: sent %d frames, delivered %d more", len(out), len(ln.pkts)-2)
	}
	if _, ip, tcp := decode(t, out[0].Data()); ip.SrcIP.String() != "10.0.1.100" || tcp.SrcPort != 8080 {
		t.Fatalf("reply sent from %s:%d", ip.SrcIP, tcp.SrcPort)
	}
}

// TestHandBackNoLocalNode: without a LocalNode such a packet is dropped,
// counted hand-back-dropped; one the kernel saw stays not-ours.
func TestHandBackNoLocalNode(t *testing.T) {
	r := hbRig(t, nil)
	out := r.run(t,
		tcpFrame(t, macRS1, macDir1, "10.0.2.11", "10.0.1.2", 45000, 7000, true, false),
		tcpFrame(t, macRS1, macDir1, "10.0.2.11", "10.0.2.1", 45001, 22, true, false))
	c := &r.w.Counters
	if len(out) != 0 || c.Load(dataplane.CntHandBackDrop) != 1 || c.Load(dataplane.CntNotOurs) != 1 || c.Load(dataplane.CntHandedBack) != 0 {
		t.Fatalf("sent %d, hand-back-dropped %d, not-ours %d, handed-back %d; want 0, 1, 1, 0", len(out),
			c.Load(dataplane.CntHandBackDrop), c.Load(dataplane.CntNotOurs), c.Load(dataplane.CntHandedBack))
	}
}

// TestHandBackBackupOnly: under backup_only the hooks own nothing, so the
// kernel saw the real server's packet: not delivered again.
func TestHandBackBackupOnly(t *testing.T) {
	ln := &fakeLocal{}
	r := hbRig(t, ln)
	h := *r.env.Host.Load()
	h.BackupOnly = true
	r.env.Host.Store(&h)
	r.run(t, tcpFrame(t, macRS1, macDir1, "10.0.2.11", "10.0.1.2", 45000, 7000, true, false))
	if len(ln.pkts) != 0 {
		t.Fatalf("delivered %d packets under backup_only", len(ln.pkts))
	}
}

// TestHandBackPartialAndGSO: a partial checksum is completed before the
// packet is handed back, and a GSO super-frame is handed back as its
// segments, each with a complete checksum (the delivery device carries no
// offload metadata).
func TestHandBackPartialAndGSO(t *testing.T) {
	ln := &fakeLocal{}
	r := hbRig(t, ln)
	syn := tcpFrame(t, macRS1, macDir1, "10.0.2.11", "10.0.1.2", 45000, 7000, true, false)
	partial := append([]byte(nil), syn...)
	var p header.Parsed
	p.Parse(partial)
	// The pseudo-header sum alone, as a sender offloading the checksum
	// leaves it.
	co := p.L4Off + header.L4ChecksumOffset(p.Proto)
	partial[co], partial[co+1] = 0, 0
	ps := header.PseudoHeaderChecksum(p.Proto, partial[p.L3Off+12:p.L3Off+16], partial[p.L3Off+16:p.L3Off+20], uint32(p.End-p.L4Off))
	partial[co], partial[co+1] = byte(ps>>8), byte(ps)
	r.io.Inject(partial, 2, true)
	buf := make([]dataplane.Frame, 1)
	if n, err := r.io.ReadBatch(buf); n != 1 || err != nil {
		t.Fatalf("fake read %d, %v", n, err)
	}
	r.w.ProcessBatch(buf)
	if len(ln.pkts) != 1 || !bytes.Equal(ln.pkts[0], ipOf(syn)) {
		t.Fatalf("delivered %d packets; want the SYN with its checksum completed", len(ln.pkts))
	}

	const payload, mss = 10000, 1448
	g := gsoFrame(t, macRS1, macDir1, "10.0.2.11", "10.0.1.2", 45000, 7000, payload, mss)
	g.Ifindex = 2
	r.w.ProcessBatch([]dataplane.Frame{g})
	segs := ln.pkts[1:]
	if want := (payload + mss - 1) / mss; len(segs) != want {
		t.Fatalf("super-frame handed back as %d packets, want %d segments", len(segs), want)
	}
	total := 0
	for i, s := range segs {
		frame := append(make([]byte, header.EthernetMinSize), s...)
		frame[12], frame[13] = 0x08, 0x00
		var q header.Parsed
		q.Parse(frame)
		if q.Reason != header.ReasonNone || !header.L4ChecksumValid(frame, &q) || q.IPLen > mss+q.PayloadOff-q.L3Off {
			t.Fatalf("segment %d: %+v, checksum valid %v", i, q, header.L4ChecksumValid(frame, &q))
		}
		total += q.End - q.PayloadOff
	}
	if total != payload || r.w.Counters.Load(dataplane.CntHandedBack) != uint64(1+len(segs)) {
		t.Fatalf("segments carry %d payload bytes (want %d), handed-back %d", total, payload, r.w.Counters.Load(dataplane.CntHandedBack))
	}
}

// TestHandBackNoAllocs: handing back a port-0 NAT real server's packet,
// and a reassembled datagram, allocates nothing once the worker has
// indexed the snapshot.
func TestHandBackNoAllocs(t *testing.T) {
	ln := &fakeLocal{count: true}
	r := hbRig(t, ln)
	w := dataplane.NewWorker(discardIO{}, r.env)
	syn := tcpFrame(t, macRS1, macDir1, "10.0.2.11", "10.0.1.2", 45000, 7000, true, false)
	frags := dfrSplit(dfrUDP(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 9999, 3000), 1232, 0x77)
	for _, tc := range []struct {
		name   string
		frames [][]byte
	}{{"nat real server", [][]byte{syn}}, {"reassembled", frags}} {
		bufs := make([][]byte, len(tc.frames))
		for i, f := range tc.frames {
			bufs[i] = make([]byte, 64+len(f))
		}
		batch := make([]dataplane.Frame, len(tc.frames))
		feed := func() {
			for i, f := range tc.frames {
				copy(bufs[i][64:], f)
				ifindex := 1
				if [6]byte(f[:6]) == macDir1 {
					ifindex = 2
				}
				batch[i] = dataplane.Frame{Buf: bufs[i], Off: 64, Len: len(f), Ifindex: ifindex}
			}
			w.ProcessBatch(batch)
		}
		before := ln.n
		allocs := testing.AllocsPerRun(100, feed)
		if ln.n == before {
			t.Fatalf("%s: the measured path delivered nothing", tc.name)
		}
		if allocs != 0 {
			t.Fatalf("%s: handing back allocates %.1f times per run", tc.name, allocs)
		}
	}
}

// hbOwnership computes what the hooks own for r's configuration, as the
// director does (ownership.Compute): the oracle for what may be handed
// back.
func hbOwnership(t testing.TB, r *rig) *ownership.Set {
	t.Helper()
	in := ownership.Input{
		Host:         []netip.Addr{netip.MustParseAddr("10.0.1.1"), netip.MustParseAddr("10.0.2.1")},
		RouteSources: []netip.Addr{netip.MustParseAddr("10.0.2.1")}, // towards 10.0.2.12 (testHops)
		LocalPortMin: dataplane.DefaultLocalPortMin, LocalPortMax: dataplane.DefaultLocalPortMax,
	}
	for _, svc := range r.state.Services() {
		s := ownership.Service{Config: svc.Config}
		for _, d := range svc.Dests {
			s.Dests = append(s.Dests, d.Config())
		}
		in.Services = append(in.Services, s)
	}
	set, err := ownership.Compute(in)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// FuzzHandBack feeds sequences of frames (each a 2-byte length and its
// bytes, a zero length ending a batch) to a worker serving hbRules with a
// recording LocalNode: nothing panics, every packet handed back is a
// whole IP packet that parses, no more are handed back than frames came
// in (GSO aside, which the fake does not produce), and when no frame was a
// fragment every packet handed back is one ownership.Classify gives the
// director: a frame the kernel saw is never delivered again.
func FuzzHandBack(f *testing.F) {
	seed := func(frames ...[]byte) []byte {
		var s []byte
		for _, fr := range frames {
			s = binary.BigEndian.AppendUint16(s, uint16(len(fr)))
			s = append(s, fr...)
		}
		return s
	}
	f.Add(seed(tcpFrame(f, macRS1, macDir1, "10.0.2.11", "10.0.1.2", 45000, 7000, true, false)))
	f.Add(seed(tcpFrame(f, macRS1, macDir1, "10.0.2.11", "10.0.2.1", 45000, 22, true, false),
		flowFrame(f, macRS1, macDir1, "10.0.2.11", "10.0.1.2", 5353, 40000, false, "", "q")))
	f.Add(seed(dfrSplit(dfrUDP(f, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 9999, 2000), 1232, 9)...))
	f.Add(seed(dfrSplit(hbEcho(f, macCli, macDir0, "2001:db8:1::2", "2001:db8:1::100", 2000), 1232, 9)...))
	f.Add(seed(dfrSplit(dfrUDP(f, macRS2, macDir1, "10.0.2.12", "10.0.2.1", 53, 7777, 2000), 1232, 9)...))
	// One worker per fuzzing process, reset for each input (as new);
	// the ownership oracle of hbRules computed once.
	var (
		wc  workerCache
		set *ownership.Set
	)
	f.Fuzz(func(t *testing.T, in []byte) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("%d bytes %x", len(in), in) })()
		if len(in) > 1<<16 {
			return
		}
		ln := &fakeLocal{}
		r := wc.rig(t, hbRules)
		hbHost(r, ln)
		if set == nil {
			set = hbOwnership(t, r)
		}
		w := wc.worker(discardIO{}, r.env)
		var batch [][]byte
		rx, frags := 0, false
		flush := func() {
			if len(batch) > 0 {
				dfrFeed(w, batch...)
				rx += len(batch)
				batch = batch[:0]
			}
		}
		for len(in) >= 2 {
			n := int(binary.BigEndian.Uint16(in))
			in = in[2:]
			if n == 0 {
				flush()
				continue
			}
			n = min(n, len(in))
			if n >= header.EthernetMinSize {
				var p header.Parsed
				p.Parse(in[:n])
				frags = frags || p.Reason == header.ReasonFragment
				batch = append(batch, in[:n])
			}
			in = in[n:]
			if len(batch) == 8 {
				flush()
			}
		}
		flush()
		if len(ln.pkts) > rx {
			t.Fatalf("%d packets handed back for %d frames", len(ln.pkts), rx)
		}
		for i, pkt := range ln.pkts {
			frame := append(make([]byte, header.EthernetMinSize), pkt...)
			copy(frame, macDir0[:])
			if len(pkt) > 0 && pkt[0]>>4 == 6 {
				frame[12], frame[13] = 0x86, 0xdd
			} else {
				frame[12], frame[13] = 0x08, 0x00
			}
			var p header.Parsed
			p.Parse(frame)
			if p.Reason != header.ReasonNone || p.End != len(frame) {
				t.Fatalf("packet %d handed back does not parse whole (%v, end %d of %d): %x", i, p.Reason, p.End, len(frame), pkt)
			}
			if !frags && set.Classify(frame) != ownership.Director {
				t.Fatalf("packet %d handed back although the hooks leave it to the kernel: %x", i, pkt)
			}
		}
	})
}

// BenchmarkHandBack measures handing back per input frame: a port-0 NAT
// real server's SYN outside any connection (parse, lookup miss, service
// miss, the NAT reply rule, delivery), and a 3000-byte UDP datagram to a
// VIP port without a service in three fragments (reassembly included).
func BenchmarkHandBack(b *testing.B) {
	syn := tcpFrame(b, macRS1, macDir1, "10.0.2.11", "10.0.1.2", 45000, 7000, true, false)
	frags := dfrSplit(dfrUDP(b, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 9999, 3000), 1232, 0x77)
	for _, bc := range []struct {
		name   string
		frames [][]byte
	}{{"nat-real-server", [][]byte{syn}}, {"reassembled-3-fragments", frags}} {
		b.Run(bc.name, func(b *testing.B) {
			ln := &fakeLocal{count: true}
			r := hbRig(b, ln)
			w := dataplane.NewWorker(discardIO{}, r.env)
			bufs := make([][]byte, len(bc.frames))
			for i, f := range bc.frames {
				bufs[i] = make([]byte, 64+len(f))
			}
			batch := make([]dataplane.Frame, len(bc.frames))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += len(bc.frames) {
				for j, f := range bc.frames {
					copy(bufs[j][64:], f)
					ifindex := 1
					if [6]byte(f[:6]) == macDir1 {
						ifindex = 2
					}
					batch[j] = dataplane.Frame{Buf: bufs[j], Off: 64, Len: len(f), Ifindex: ifindex}
				}
				w.ProcessBatch(batch)
			}
			b.StopTimer()
			if ln.n == 0 {
				b.Fatal("nothing handed back")
			}
		})
	}
}
