package dataplane_test

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/header"
)

// fakeLocal is a LocalNode that keeps copies of what it is given (or,
// with count set, only counts, allocating nothing).
type fakeLocal struct {
	pkts  [][]byte
	count bool
	n     int
	err   error
}

func (f *fakeLocal) Deliver(p []byte) error {
	if f.err != nil {
		return f.err
	}
	f.n++
	if !f.count {
		f.pkts = append(f.pkts, append([]byte(nil), p...))
	}
	return nil
}

// The director's own address on its client-side interface: a real server
// that is the director (seed 004's two-node cluster).
const dirAddr = "10.0.1.1"

// localHops is testHops plus the director's own address, whose route is
// local.
func localHops(extra ...string) fakeHops {
	h := testHops()
	for _, a := range append([]string{dirAddr}, extra...) {
		h[netip.MustParseAddr(a)] = dataplane.Hop{Local: true}
	}
	return h
}

func localRig(t testing.TB, rules string, ln dataplane.LocalNode) *rig {
	t.Helper()
	r := newRig(t, rules)
	r.env.Hops = localHops("127.0.0.1")
	r.env.LocalNode = ln
	return r
}

// ipOf returns the IP packet of an Ethernet frame, without the link
// padding of a short frame.
func ipOf(frame []byte) []byte {
	var p header.Parsed
	p.Parse(frame)
	return frame[p.L3Off:p.End]
}

// TestLocalNodeDR: with DR, rr over the director itself and a real server
// on the wire, the connection scheduled to the director's own address has
// its packets delivered through the LocalNode byte for byte as they
// arrived (no TTL decrement, no link-layer header); the other one leaves
// on the wire as before.
func TestLocalNodeDR(t *testing.T) {
	for _, mode := range []string{"-g", "-i"} {
		t.Run(mode, func(t *testing.T) {
			ln := &fakeLocal{}
			r := localRig(t, "-A -t 10.0.1.100:80 -s rr\n-a -t 10.0.1.100:80 -r "+dirAddr+" "+mode+
				"\n-a -t 10.0.1.100:80 -r 10.0.2.11 "+mode+"\n", ln)
			syn1 := tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false)
			syn2 := tcpFrame(t, macCli, macDir0, "10.0.1.3", "10.0.1.100", 40001, 80, true, false)
			out := r.run(t, syn1, syn2)
			if len(out) != 1 || out[0].Ifindex != 2 || len(ln.pkts) != 1 {
				t.Fatalf("sent %d frames, delivered %d packets: want one of each", len(out), len(ln.pkts))
			}
			local := syn1
			if !bytes.Equal(ln.pkts[0], ipOf(syn1)) {
				local = syn2
			}
			if !bytes.Equal(ln.pkts[0], ipOf(local)) {
				t.Fatalf("delivered %x\nwant the IP packet unchanged %x", ln.pkts[0], ipOf(local))
			}
			// The connection's next packet follows it.
			var p header.Parsed
			p.Parse(local)
			data := tcpFrame(t, macCli, macDir0, p.SrcAddr().String(), "10.0.1.100", p.SrcPort, 80, false, true)
			if out := r.run(t, data); len(out) != 0 || len(ln.pkts) != 2 || !bytes.Equal(ln.pkts[1], ipOf(data)) {
				t.Fatalf("next packet: sent %d frames, delivered %d packets", len(out), len(ln.pkts))
			}
			if tx := r.w.Counters.Load(dataplane.CntTx); tx != 3 {
				t.Fatalf("tx counter %d, want 3 (1 on the wire, 2 delivered)", tx)
			}
		})
	}
}

// TestLocalNodePartialChecksum: a packet whose L4 checksum was left to
// offload is delivered with it completed: the local stack verifies it.
func TestLocalNodePartialChecksum(t *testing.T) {
	ln := &fakeLocal{}
	r := localRig(t, "-A -t 10.0.1.100:80 -s rr\n-a -t 10.0.1.100:80 -r "+dirAddr+" -g\n", ln)
	f := partialTCP(t)
	r.io.Inject(f, 1, true)
	buf := make([]dataplane.Frame, 1)
	if n, err := r.io.ReadBatch(buf); n != 1 || err != nil {
		t.Fatalf("fake read %d, %v", n, err)
	}
	r.w.ProcessBatch(buf)
	if len(ln.pkts) != 1 {
		t.Fatalf("delivered %d packets", len(ln.pkts))
	}
	want := tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false)
	if !bytes.Equal(ln.pkts[0], ipOf(want)) {
		t.Fatalf("delivered %x\nwant %x (checksum completed)", ln.pkts[0], ipOf(want))
	}
}

// TestLocalNodeNAT: with NAT the packet is delivered after the DNAT
// rewrite (destination := RIP:rport, checksums as a full recomputation
// gives them) and with its TTL untouched; a loopback real server is
// refused, as the kernel stops DNAT to loopback for packets from the
// network.
func TestLocalNodeNAT(t *testing.T) {
	ln := &fakeLocal{}
	r := localRig(t, "-A -t 10.0.1.100:80 -s rr\n-a -t 10.0.1.100:80 -r "+dirAddr+":8080 -m\n"+
		"-A -t 10.0.1.100:81 -s rr\n-a -t 10.0.1.100:81 -r 127.0.0.1:8080 -m\n", ln)
	out := r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false))
	if len(out) != 0 || len(ln.pkts) != 1 {
		t.Fatalf("sent %d frames, delivered %d packets: want one delivered", len(out), len(ln.pkts))
	}
	want := ipOf(tcpFrame(t, macCli, macDir0, "10.0.1.2", dirAddr, 40000, 8080, true, false))
	if !bytes.Equal(ln.pkts[0], want) {
		t.Fatalf("delivered %x\nwant %x", ln.pkts[0], want)
	}
	// A partial checksum is completed by the rewrite.
	f := partialTCP(t)
	f[header.EthernetMinSize+header.IPv4TTLOff] = 64 // as tcpFrame
	var p header.Parsed
	p.Parse(f)
	r.io.Inject(tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, false, true), 1, false)
	r.io.Inject(f, 1, true)
	buf := make([]dataplane.Frame, 2)
	if n, err := r.io.ReadBatch(buf); n != 2 || err != nil {
		t.Fatalf("fake read %d, %v", n, err)
	}
	r.w.ProcessBatch(buf)
	if len(ln.pkts) != 3 {
		t.Fatalf("delivered %d packets, want 3", len(ln.pkts))
	}
	var q header.Parsed
	frame := append(make([]byte, header.EthernetMinSize), ln.pkts[2]...)
	frame[12], frame[13] = 0x08, 0x00
	q.Parse(frame)
	if !header.L4ChecksumValid(frame, &q) || q.DstAddr().String() != dirAddr || q.DstPort != 8080 || q.TTL != 64 {
		t.Fatalf("partial packet delivered as %+v (checksum valid %v)", q, header.L4ChecksumValid(frame, &q))
	}

	out = r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40001, 81, true, false))
	if len(out) != 0 || len(ln.pkts) != 3 || r.w.Counters.Load(dataplane.CntRewriteFail) != 1 {
		t.Fatalf("DNAT to 127.0.0.1: sent %d, delivered %d, rewrite-failed %d; want it refused",
			len(out), len(ln.pkts)-3, r.w.Counters.Load(dataplane.CntRewriteFail))
	}
}

// TestLocalNodeUnavailable: without a LocalNode, and with one whose
// delivery fails, the packet is dropped and counted, and nothing goes on
// the wire; FULLNAT never delivers locally (with a local address pool the
// request is dropped as unsupported; without one the local hop has no
// source address to take, and the connection is not made).
func TestLocalNodeUnavailable(t *testing.T) {
	rules := "-A -t 10.0.1.100:80 -s rr\n-a -t 10.0.1.100:80 -r " + dirAddr + " -g\n" +
		"-A -t 10.0.1.100:81 -s rr\n-a -t 10.0.1.100:81 -r " + dirAddr + ":81 -b\n-P -t 10.0.1.100:81 -z 10.0.1.1\n" +
		"-A -t 10.0.1.100:82 -s rr\n-a -t 10.0.1.100:82 -r " + dirAddr + ":82 -b\n"
	syn := tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false)
	r := localRig(t, rules, nil)
	if out := r.run(t, syn); len(out) != 0 || r.w.Counters.Load(dataplane.CntUnsupported) != 1 {
		t.Fatalf("no LocalNode: sent %d, unsupported %d", len(out), r.w.Counters.Load(dataplane.CntUnsupported))
	}
	ln := &fakeLocal{err: errors.New("device gone")}
	r = localRig(t, rules, ln)
	if out := r.run(t, syn); len(out) != 0 || r.w.Counters.Load(dataplane.CntTxErr) != 1 {
		t.Fatalf("failing LocalNode: sent %d, tx-error %d", len(out), r.w.Counters.Load(dataplane.CntTxErr))
	}
	ln.err = nil
	out := r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 81, true, false))
	if len(out) != 0 || ln.n != 0 || r.w.Counters.Load(dataplane.CntUnsupported) != 1 {
		t.Fatalf("FULLNAT to the director: sent %d, delivered %d, unsupported %d", len(out), ln.n,
			r.w.Counters.Load(dataplane.CntUnsupported))
	}
	out = r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 82, true, false))
	if len(out) != 0 || ln.n != 0 || r.w.Counters.Load(dataplane.CntFullNATNoPort) != 1 {
		t.Fatalf("FULLNAT to the director without a pool: sent %d, delivered %d, fullnat-no-port %d", len(out), ln.n,
			r.w.Counters.Load(dataplane.CntFullNATNoPort))
	}
}

// TestLocalNodeNoAllocs: an established connection's packet delivered
// locally (DR and NAT) allocates nothing.
func TestLocalNodeNoAllocs(t *testing.T) {
	for _, mode := range []string{"-g", "-m"} {
		ln := &fakeLocal{count: true}
		r := localRig(t, "-A -t 10.0.1.100:80 -s rr\n-a -t 10.0.1.100:80 -r "+dirAddr+":80 "+mode+"\n", ln)
		r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false))
		data := tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, false, true)
		w := dataplane.NewWorker(discardIO{}, r.env)
		buf := make([]byte, 64+len(data))
		frames := []dataplane.Frame{{}}
		before := ln.n
		allocs := testing.AllocsPerRun(200, func() {
			copy(buf[64:], data)
			frames[0] = dataplane.Frame{Buf: buf, Off: 64, Len: len(data), Ifindex: 1}
			w.ProcessBatch(frames)
		})
		if ln.n-before < 200 {
			t.Fatalf("%s: the measured path delivered %d packets", mode, ln.n-before)
		}
		if allocs != 0 {
			t.Fatalf("%s: local delivery allocates %.1f times per packet", mode, allocs)
		}
	}
}

// TestLocalNodeGSO: a segmentation-offload super-frame (60 KB, partial
// checksum) of a connection to the director itself is delivered as one
// packet with its checksum completed over the whole of it, for DR
// unchanged and for NAT rewritten with the TTL kept.
func TestLocalNodeGSO(t *testing.T) {
	for _, mode := range []string{"-g", "-m"} {
		ln := &fakeLocal{}
		r := localRig(t, "-A -t 10.0.1.100:80 -s rr\n-a -t 10.0.1.100:80 -r "+dirAddr+":8080 "+mode+"\n", ln)
		r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false))
		f := gsoFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, 60000, 1448)
		w := dataplane.NewWorker(discardIO{}, r.env)
		w.ProcessBatch([]dataplane.Frame{f})
		if len(ln.pkts) != 2 || w.Counters.Load(dataplane.CntGSO) != 1 {
			t.Fatalf("%s: delivered %d packets (gso counter %d), want the super-frame as one", mode, len(ln.pkts)-1,
				w.Counters.Load(dataplane.CntGSO))
		}
		frame := append(append([]byte(nil), f.Data()[:header.EthernetMinSize]...), ln.pkts[1]...)
		_, ip, tcp := decode(t, frame) // checksums as gopacket recomputes them
		wantDst, wantPort := "10.0.1.100", uint16(80)
		if mode == "-m" {
			wantDst, wantPort = dirAddr, 8080
		}
		if len(tcp.Payload) != 60000 || ip.TTL != 64 || ip.DstIP.String() != wantDst || uint16(tcp.DstPort) != wantPort {
			t.Fatalf("%s: delivered %s:%d ttl %d payload %d", mode, ip.DstIP, tcp.DstPort, ip.TTL, len(tcp.Payload))
		}
	}
}

// TestLocalNodeQueued: the first packets to the director's own address
// miss the next-hop table and wait in the neighbour queue; once the
// address resolves (as Local) they are delivered in order.
func TestLocalNodeQueued(t *testing.T) {
	ln := &fakeLocal{}
	r := localRig(t, "-A -t 10.0.1.100:80 -s rr\n-a -t 10.0.1.100:80 -r "+dirAddr+" -g\n", ln)
	h := newFlakyHops()
	h.all = localHops()
	h.up[netip.MustParseAddr(dirAddr)] = false
	r.withHops(h, 0)
	syn := tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false)
	ack := tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, false, true)
	if out := r.run(t, syn, ack); len(out) != 0 || len(ln.pkts) != 0 {
		t.Fatalf("before resolution: sent %d, delivered %d", len(out), len(ln.pkts))
	}
	h.set(dirAddr, true)
	if out := r.retry(); len(out) != 0 || len(ln.pkts) != 2 {
		t.Fatalf("after resolution: sent %d, delivered %d, want 2 delivered", len(out), len(ln.pkts))
	}
	if !bytes.Equal(ln.pkts[0], ipOf(syn)) || !bytes.Equal(ln.pkts[1], ipOf(ack)) {
		t.Fatal("queued packets delivered changed or out of order")
	}
}

// TestLocalNodeNATICMP: an ICMP error from the client about a reply of a
// NAT connection to the director itself is translated as for any real
// server (outer destination and quoted source := RIP) and delivered, with
// its TTL kept.
func TestLocalNodeNATICMP(t *testing.T) {
	ln := &fakeLocal{}
	r := localRig(t, "-A -t 10.0.1.100:80 -s rr\n-a -t 10.0.1.100:80 -r "+dirAddr+":8080 -m\n", ln)
	r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false))
	quoted := ipOf(tcpFrame(t, macDir0, macCli, "10.0.1.100", "10.0.1.2", 80, 40000, true, true))
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(macCli[:]), DstMAC: net.HardwareAddr(macDir0[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: net.ParseIP("10.0.1.2"), DstIP: net.ParseIP("10.0.1.100")}
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 3)}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, icmp, gopacket.Payload(quoted[:28])); err != nil {
		t.Fatal(err)
	}
	if out := r.run(t, buf.Bytes()); len(out) != 0 || len(ln.pkts) != 2 {
		t.Fatalf("sent %d frames, delivered %d packets: want the error delivered", len(out), len(ln.pkts)-1)
	}
	p := gopacket.NewPacket(ln.pkts[1], layers.LayerTypeIPv4, gopacket.Default)
	oip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	ic, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if oip == nil || ic == nil || oip.DstIP.String() != dirAddr || oip.TTL != 64 || len(ic.Payload) < 28 ||
		net.IP(ic.Payload[12:16]).String() != dirAddr || ic.Payload[20] != 0x1f || ic.Payload[21] != 0x90 {
		t.Fatalf("delivered error not translated to %s:8080 with TTL 64: %v", dirAddr, p)
	}
	var q header.Parsed
	frame := append(append(make([]byte, 12), 0x08, 0x00), ln.pkts[1]...)
	q.Parse(frame)
	if !header.L4ChecksumValid(frame, &q) || !header.IPv4(frame[q.L3Off:]).ChecksumValid() {
		t.Fatal("delivered error's checksums do not verify")
	}
}
