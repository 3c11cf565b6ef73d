package dataplane_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/ip4defrag"
	"github.com/gopacket/gopacket/ip6defrag"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/internal/fuzzwatch"
	"github.com/uvs-lb/uvs/internal/wait"
	"github.com/uvs-lb/uvs/ipfrag"
)

// Fragments reaching the director (issue #16): reassembled as IPVS sees
// them through nf_defrag, handled as one datagram, fragmented again on
// the way out no finer than they came.

const dfrRules = `-A -u 10.0.1.100:53 -s rr
-a -u 10.0.1.100:53 -r 10.0.2.11:5353 -m
-A -u 10.0.1.101:53 -s rr
-a -u 10.0.1.101:53 -r 10.0.2.11:53 -g
-A -u [2001:db8:1::100]:53 -s rr
-a -u [2001:db8:1::100]:53 -r [2001:db8:2::11]:5353 -m
`

// dfrRig is a rig serving dfrRules whose interfaces and next hops have a
// 9000-byte MTU (a reassembled datagram fits whole; whether it leaves in
// fragments is the transmitter's FragMax), writing into a recordIO.
func dfrRig(t testing.TB, fragMem int) (*rig, *dataplane.Worker, *recordIO) {
	t.Helper()
	r := newRig(t, dfrRules)
	rec := dfrEnv(r, fragMem)
	return r, dataplane.NewWorker(rec, r.env), rec
}

// dfrEnv sets r's Env up for dfrRig: 9000-byte interfaces and hops, and
// fragMem of reassembly memory. It returns the recordIO for its worker.
func dfrEnv(r *rig, fragMem int) *recordIO {
	h := *r.env.Host.Load()
	h.Ifaces = map[int]dataplane.Iface{
		1: {Index: 1, Name: "d0", MAC: macDir0, MTU: 9000},
		2: {Index: 2, Name: "d1", MAC: macDir1, MTU: 9000},
	}
	r.env.Host.Store(&h)
	hops := testHops()
	for a, hop := range hops {
		hop.MTU = 9000
		hops[a] = hop
	}
	hops[netip.MustParseAddr("2001:db8:2::11")] = dataplane.Hop{Ifindex: 2, SrcMAC: macDir1, DstMAC: macRS1, Src: netip.MustParseAddr("2001:db8:2::1"), MTU: 9000}
	hops[netip.MustParseAddr("10.0.1.2")] = dataplane.Hop{Ifindex: 1, SrcMAC: macDir0, DstMAC: macCli, Src: netip.MustParseAddr("10.0.1.1"), MTU: 9000}
	hops[netip.MustParseAddr("2001:db8:1::2")] = dataplane.Hop{Ifindex: 1, SrcMAC: macDir0, DstMAC: macCli, Src: netip.MustParseAddr("2001:db8:1::1"), MTU: 9000}
	r.env.Hops = hops
	r.env.FragMemory = fragMem
	return &recordIO{}
}

// dfrUDP builds a UDP datagram of n payload bytes in an Ethernet frame
// (IPv6 when src is an IPv6 address), not fragmented, DF clear.
func dfrUDP(t testing.TB, srcMAC, dstMAC [6]byte, src, dst string, sport, dport uint16, n int) []byte {
	t.Helper()
	pl := make([]byte, n)
	for i := range pl {
		pl[i] = byte(i*13 + 5)
	}
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	return dfrSerialize(t, srcMAC, dstMAC, src, dst, layers.IPProtocolUDP, udp, udp, gopacket.Payload(pl))
}

// dfrSerialize serializes Ethernet, IP (from src/dst) and ls; csum, if
// not nil, gets the IP layer for its pseudo-header.
func dfrSerialize(t testing.TB, srcMAC, dstMAC [6]byte, src, dst string, proto layers.IPProtocol,
	csum interface {
		SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
	}, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(srcMAC[:]), DstMAC: net.HardwareAddr(dstMAC[:])}
	var ip gopacket.NetworkLayer
	if netip.MustParseAddr(src).Is6() {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip = &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst)}
	} else {
		eth.EthernetType = layers.EthernetTypeIPv4
		ip = &layers.IPv4{Version: 4, TTL: 64, Id: 777, Protocol: proto, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst)}
	}
	if csum != nil {
		if err := csum.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
	}
	buf := gopacket.NewSerializeBuffer()
	all := append([]gopacket.SerializableLayer{eth, ip.(gopacket.SerializableLayer)}, ls...)
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, all...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// dfrSplit cuts the datagram of an untagged Ethernet frame into fragments
// carrying at most size bytes of data each (a multiple of 8), as a
// sender's output path does; id is the IPv6 identification.
func dfrSplit(frame []byte, size int, id uint32) [][]byte {
	const l3 = 14
	var out [][]byte
	v6 := frame[l3]>>4 == 6
	hl := int(frame[l3]&0x0f) * 4
	if v6 {
		hl = header.IPv6Size
	}
	data := frame[l3+hl:]
	for off := 0; off < len(data); off += size {
		end := min(off+size, len(data))
		more := end < len(data)
		f := append([]byte(nil), frame[:l3+hl]...)
		if v6 {
			fh := make([]byte, 8)
			fh[0] = frame[l3+6]
			fw := uint16(off)
			if more {
				fw |= 1
			}
			binary.BigEndian.PutUint16(fh[2:], fw)
			binary.BigEndian.PutUint32(fh[4:], id)
			f = append(append(f, fh...), data[off:end]...)
			f[l3+6] = header.ProtoFragment
			binary.BigEndian.PutUint16(f[l3+4:], uint16(8+end-off))
		} else {
			f = append(f, data[off:end]...)
			ff := uint16(off / 8)
			if more {
				ff |= header.IPv4FlagMF
			}
			binary.BigEndian.PutUint16(f[l3+2:], uint16(hl+end-off))
			binary.BigEndian.PutUint16(f[l3+6:], ff)
			header.IPv4(f[l3:]).UpdateChecksum()
		}
		out = append(out, f)
	}
	return out
}

// dfrFeed runs frames through w as one batch, arriving on the interface
// their destination MAC belongs to.
func dfrFeed(w *dataplane.Worker, frames ...[]byte) {
	batch := make([]dataplane.Frame, len(frames))
	for i, f := range frames {
		buf := make([]byte, 64+len(f))
		copy(buf[64:], f)
		ifindex := 1
		if [6]byte(f[:6]) == macDir1 {
			ifindex = 2
		}
		batch[i] = dataplane.Frame{Buf: buf, Off: 64, Len: len(f), Ifindex: ifindex}
	}
	w.ProcessBatch(batch)
}

// dfrSent is a datagram the worker sent, whole or in fragments, put back
// together by gopacket's defragmenters (an independent reassembler).
type dfrSent struct {
	ifindex int
	eth     *layers.Ethernet
	frames  int    // how many frames it left in
	maxIP   int    // its largest frame's IP length
	frame   []byte // Ethernet + the whole IP datagram
}

// dfrCollect reassembles what the worker sent. It fails the test on a
// frame it cannot decode.
func dfrCollect(t *testing.T, out []dataplane.Frame) []dfrSent {
	t.Helper()
	d4, d6 := ip4defrag.NewIPv4Defragmenter(), ip6defrag.NewIPv6Defragmenter()
	var got []dfrSent
	pending := map[string]*dfrSent{}
	for _, f := range out {
		data := f.Data()
		pkt := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		eth, _ := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		if eth == nil {
			t.Fatalf("sent frame does not decode: %x", data)
		}
		ipLen := len(data) - 14
		var whole gopacket.SerializableLayer
		var key string
		switch ip := pkt.NetworkLayer().(type) {
		case *layers.IPv4:
			key = "4" + ip.SrcIP.String() + ip.DstIP.String()
			if ip.Flags&layers.IPv4MoreFragments == 0 && ip.FragOffset == 0 {
				whole = ip
				break
			}
			w, err := d4.DefragIPv4(ip)
			if err != nil {
				t.Fatalf("sent fragments do not reassemble: %v", err)
			}
			if w != nil {
				whole = w
			}
		case *layers.IPv6:
			key = "6" + ip.SrcIP.String() + ip.DstIP.String()
			fh, _ := pkt.Layer(layers.LayerTypeIPv6Fragment).(*layers.IPv6Fragment)
			if fh == nil {
				whole = ip
				break
			}
			if w := d6.DefragIPv6(ip, fh); w != nil {
				whole = w
			}
		default:
			t.Fatalf("sent frame is not IP: %v", pkt)
		}
		s := pending[key]
		if s == nil {
			s = &dfrSent{ifindex: f.Ifindex, eth: eth}
			pending[key] = s
		}
		s.frames++
		s.maxIP = max(s.maxIP, ipLen)
		if whole == nil {
			continue
		}
		buf := gopacket.NewSerializeBuffer()
		var ls []gopacket.SerializableLayer
		ls = append(ls, eth, whole)
		switch w := whole.(type) {
		case *layers.IPv4:
			ls = append(ls, gopacket.Payload(w.Payload))
		case *layers.IPv6:
			ls = append(ls, gopacket.Payload(w.Payload))
		}
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, ls...); err != nil {
			t.Fatal(err)
		}
		s.frame = append([]byte(nil), buf.Bytes()...)
		got = append(got, *s)
		delete(pending, key)
	}
	if len(pending) > 0 {
		t.Fatalf("%d datagrams sent incomplete", len(pending))
	}
	return got
}

// dfrCheckUDP checks a sent datagram: UDP from src to dst, checksum
// valid, payload as dfrUDP made it.
func dfrCheckUDP(t *testing.T, s dfrSent, src, dst netip.AddrPort, n int) {
	t.Helper()
	var p header.Parsed
	p.Parse(s.frame)
	if p.Reason != header.ReasonNone || p.Proto != header.ProtoUDP {
		t.Fatalf("sent datagram parses as %v proto %d", p.Reason, p.Proto)
	}
	if gs, gd := netip.AddrPortFrom(p.SrcAddr(), p.SrcPort), netip.AddrPortFrom(p.DstAddr(), p.DstPort); gs != src || gd != dst {
		t.Fatalf("sent %v -> %v, want %v -> %v", gs, gd, src, dst)
	}
	if !header.L4ChecksumValid(s.frame, &p) {
		t.Errorf("UDP checksum of the sent datagram does not verify")
	}
	pl := s.frame[p.PayloadOff:p.End]
	if len(pl) != n {
		t.Fatalf("sent payload %d bytes, want %d", len(pl), n)
	}
	for i := range pl {
		if pl[i] != byte(i*13+5) {
			t.Fatalf("sent payload differs at byte %d", i)
		}
	}
}

func dfrCounters(t *testing.T, w *dataplane.Worker, want map[dataplane.Counter]uint64) {
	t.Helper()
	for c, v := range want {
		if got := w.Counters.Load(c); got != v {
			t.Errorf("counter %v = %d, want %d", c, got, v)
		}
	}
}

// TestDefragNAT: a 3000-byte UDP datagram to a NAT service, in three
// fragments (the first one last), leaves as one datagram rewritten to the
// real server — in no more frames than it came in, none larger than its
// largest fragment (FragMax) — and the real server's fragmented reply
// reaches the client rewritten from the VIP. Before reassembly every
// fragment was dropped as malformed.
func TestDefragNAT(t *testing.T) {
	for _, tc := range []struct {
		name          string
		cli, vip, rs  string
		batched       bool
		cliMAC, dirRS [6]byte
	}{
		{"ipv4/one batch", "10.0.1.2", "10.0.1.100", "10.0.2.11", true, macCli, macDir1},
		{"ipv4/a batch each", "10.0.1.2", "10.0.1.100", "10.0.2.11", false, macCli, macDir1},
		{"ipv6/one batch", "2001:db8:1::2", "2001:db8:1::100", "2001:db8:2::11", true, macCli, macDir1},
		{"ipv6/a batch each", "2001:db8:1::2", "2001:db8:1::100", "2001:db8:2::11", false, macCli, macDir1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, w, rec := dfrRig(t, 0)
			cli, vip, rs := netip.MustParseAddr(tc.cli), netip.MustParseAddr(tc.vip), netip.MustParseAddr(tc.rs)
			frags := dfrSplit(dfrUDP(t, macCli, macDir0, tc.cli, tc.vip, 40000, 53, 3000), 1448, 0x10203)
			order := [][]byte{frags[1], frags[2], frags[0]}
			if tc.batched {
				dfrFeed(w, order...)
			} else {
				for _, f := range order {
					dfrFeed(w, f)
				}
			}
			sent := dfrCollect(t, rec.out)
			if len(sent) != 1 {
				t.Fatalf("sent %d datagrams, want 1", len(sent))
			}
			s := sent[0]
			dfrCheckUDP(t, s, netip.AddrPortFrom(cli, 40000), netip.AddrPortFrom(rs, 5353), 3000)
			if s.ifindex != 2 || [6]byte(s.eth.DstMAC) != macRS1 {
				t.Errorf("sent on %d to %v, want on 2 to the real server", s.ifindex, s.eth.DstMAC)
			}
			t.Logf("left in %d frames of up to %d bytes", s.frames, s.maxIP)
			if s.frames > len(frags) || s.maxIP > len(frags[0])-14 {
				t.Errorf("left in %d frames of up to %d bytes; came in %d of up to %d", s.frames, s.maxIP, len(frags), len(frags[0])-14)
			}
			dfrCounters(t, w, map[dataplane.Counter]uint64{
				dataplane.CntFragIn: 3, dataplane.CntReassembled: 1, dataplane.CntNewConn: 1,
				dataplane.CntMalformed: 0, dataplane.CntFragBad: 0,
			})

			// The reply, fragmented by the real server.
			rec.out = nil
			reply := dfrSplit(dfrUDP(t, macRS1, macDir1, tc.rs, tc.cli, 5353, 40000, 2500), 1232, 0x999)
			dfrFeed(w, reply...)
			sent = dfrCollect(t, rec.out)
			if len(sent) != 1 {
				t.Fatalf("reply: sent %d datagrams, want 1", len(sent))
			}
			dfrCheckUDP(t, sent[0], netip.AddrPortFrom(vip, 53), netip.AddrPortFrom(cli, 40000), 2500)
			if sent[0].ifindex != 1 {
				t.Errorf("reply sent on %d, want 1", sent[0].ifindex)
			}
			dfrCounters(t, w, map[dataplane.Counter]uint64{dataplane.CntFragIn: 3 + uint64(len(reply)), dataplane.CntReassembled: 2})
		})
	}
}

// TestDefragDR: a fragmented datagram to a DR service reaches the real
// server's MAC with its IP datagram unchanged.
func TestDefragDR(t *testing.T) {
	_, w, rec := dfrRig(t, 0)
	whole := dfrUDP(t, macCli, macDir0, "10.0.1.2", "10.0.1.101", 40001, 53, 3000)
	frags := dfrSplit(whole, 1448, 0)
	dfrFeed(w, frags...)
	sent := dfrCollect(t, rec.out)
	if len(sent) != 1 {
		t.Fatalf("sent %d datagrams, want 1", len(sent))
	}
	s := sent[0]
	if s.ifindex != 2 || [6]byte(s.eth.DstMAC) != macRS1 {
		t.Fatalf("sent on %d to %v, want the real server's MAC on 2", s.ifindex, s.eth.DstMAC)
	}
	dfrCheckUDP(t, s, netip.MustParseAddrPort("10.0.1.2:40001"), netip.MustParseAddrPort("10.0.1.101:53"), 3000)
	// IP header as sent by the client but for the TTL (DR decrements it
	// like the kernel's forwarding does not: ip_vs_dr_xmit keeps it) and
	// the checksum.
	if !bytes.Equal(s.frame[14+20:], whole[14+20:]) {
		t.Errorf("DR changed the datagram's payload")
	}
}

// TestDefragICMPError: an ICMP error the client sends about a reply of a
// NAT connection, quoting a large datagram and fragmented on its way, is
// reassembled and translated for the connection (ip_vs_in_icmp
// reassembles ICMP with ip_defrag).
func TestDefragICMPError(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		name, cli, vip, rs := "ipv4", "10.0.1.2", "10.0.1.100", "10.0.2.11"
		if v6 {
			name, cli, vip, rs = "ipv6", "2001:db8:1::2", "2001:db8:1::100", "2001:db8:2::11"
		}
		t.Run(name, func(t *testing.T) {
			_, w, rec := dfrRig(t, 0)
			dfrFeed(w, dfrUDP(t, macCli, macDir0, cli, vip, 40002, 53, 10))
			rec.out = nil
			quoted := dfrUDP(t, macDir0, macCli, vip, cli, 53, 40002, 1000)[14:]
			var msg []byte
			if v6 {
				icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(1, 4)}
				msg = dfrSerialize(t, macCli, macDir0, cli, vip, layers.IPProtocolICMPv6, icmp, icmp, gopacket.Payload(append(make([]byte, 4), quoted...)))
			} else {
				icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 3)}
				msg = dfrSerialize(t, macCli, macDir0, cli, vip, layers.IPProtocolICMPv4, nil, icmp, gopacket.Payload(quoted))
			}
			frags := dfrSplit(msg, 400, 0x4242)
			if len(frags) < 3 {
				t.Fatalf("%d fragments", len(frags))
			}
			dfrFeed(w, frags[2], frags[0], frags[1])
			if len(frags) > 3 {
				dfrFeed(w, frags[3:]...)
			}
			sent := dfrCollect(t, rec.out)
			if len(sent) != 1 {
				t.Fatalf("sent %d datagrams, want the error forwarded to the real server", len(sent))
			}
			var p header.Parsed
			p.Parse(sent[0].frame)
			if p.Reason != header.ReasonNone || !p.IsICMPError() {
				t.Fatalf("sent datagram is not an ICMP error: %v", p.Reason)
			}
			if p.DstAddr() != netip.MustParseAddr(rs) || p.Inner.SrcAddr() != netip.MustParseAddr(rs) || p.Inner.SrcPort != 5353 {
				t.Fatalf("error to %v quoting %v:%d, want to and quoting the real server", p.DstAddr(), p.Inner.SrcAddr(), p.Inner.SrcPort)
			}
			dfrCounters(t, w, map[dataplane.Counter]uint64{
				dataplane.CntICMPRelated: 1, dataplane.CntFragIn: uint64(len(frags)), dataplane.CntReassembled: 1,
			})
		})
	}
}

// TestDefragAtomicFragment: an IPv6 atomic fragment (offset 0, M clear,
// RFC 6946) is a whole datagram: served without a queue.
func TestDefragAtomicFragment(t *testing.T) {
	_, w, rec := dfrRig(t, 0)
	f := dfrSplit(dfrUDP(t, macCli, macDir0, "2001:db8:1::2", "2001:db8:1::100", 40003, 53, 100), 2000, 5)
	if len(f) != 1 {
		t.Fatalf("%d fragments", len(f))
	}
	dfrFeed(w, f[0])
	sent := dfrCollect(t, rec.out)
	if len(sent) != 1 {
		t.Fatalf("sent %d datagrams, want 1", len(sent))
	}
	dfrCheckUDP(t, sent[0], netip.MustParseAddrPort("[2001:db8:1::2]:40003"), netip.MustParseAddrPort("[2001:db8:2::11]:5353"), 100)
}

// TestDefragOverlapAndDuplicate: a fragment overlapping another drops the
// whole datagram (RFC 5722; inet_frag_queue_insert for IPv4 as well), a
// duplicate only itself; both counted frag-bad, nothing sent.
func TestDefragOverlapAndDuplicate(t *testing.T) {
	_, w, rec := dfrRig(t, 0)
	whole := dfrUDP(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40004, 53, 3000)
	frags := dfrSplit(whole, 1448, 0)
	other := dfrSplit(whole, 1000, 0)
	dfrFeed(w, frags[0], frags[0], frags[2]) // a duplicate: dropped, the datagram kept
	dfrFeed(w, other[1])                     // overlaps both: the datagram goes
	dfrFeed(w, frags[1])                     // starts a new one
	if len(rec.out) != 0 {
		t.Fatalf("sent %d frames from an overlapping datagram", len(rec.out))
	}
	dfrCounters(t, w, map[dataplane.Counter]uint64{
		dataplane.CntFragIn: 5, dataplane.CntFragBad: 4, dataplane.CntReassembled: 0, dataplane.CntMalformed: 0,
	})
	// The rest of a whole copy completes the datagram started last.
	dfrFeed(w, frags[0], frags[2])
	if sent := dfrCollect(t, rec.out); len(sent) != 1 {
		t.Fatalf("sent %d datagrams after the overlap, want 1", len(sent))
	}
}

// TestDefragTimeout: a datagram not complete within ipfrag_time (30 s) is
// dropped and counted, both when another fragment arrives and from the
// worker's idle path.
func TestDefragTimeout(t *testing.T) {
	r, w, rec := dfrRig(t, 0)
	frags := dfrSplit(dfrUDP(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40005, 53, 3000), 1448, 0)
	dfrFeed(w, frags[0], frags[1])
	r.clock = r.clock.Add(ipfrag.DefaultTimeout4)
	dfrFeed(w, frags[2]) // the others have expired: this one waits alone
	if len(rec.out) != 0 {
		t.Fatalf("a datagram completed across its timeout")
	}
	dfrCounters(t, w, map[dataplane.Counter]uint64{dataplane.CntFragTimeout: 2, dataplane.CntReassembled: 0})

	// Idle: Run expires it when a read returns nothing.
	var now atomic.Int64
	now.Store(r.clock.UnixNano())
	env := *r.env
	env.Now = func() time.Time { return time.Unix(0, now.Load()) }
	io := dataplane.NewFakeIO(64, 5*time.Millisecond)
	iw := dataplane.NewWorker(io, &env)
	done := make(chan error, 1)
	go func() { done <- iw.Run() }()
	t.Cleanup(func() { io.Close(); <-done })
	io.Inject(frags[0], 1, false)
	io.Inject(frags[1], 1, false)
	wait.For(t, 5*time.Second, func() bool { return iw.Counters.Load(dataplane.CntFragIn) == 2 }, "fragments read")
	now.Add(int64(ipfrag.DefaultTimeout4))
	wait.For(t, 5*time.Second, func() bool { return iw.Counters.Load(dataplane.CntFragTimeout) == 2 }, "idle expiry")
}

// TestDefragFloodBounded: a flood of incomplete datagrams (first
// fragments from ever new sources) fills a worker's reassembly memory;
// the oldest are dropped (frag-overflow), nothing is allocated, and a
// datagram whose fragments arrive together still goes through.
func TestDefragFloodBounded(t *testing.T) {
	_, w, rec := dfrRig(t, ipfrag.MinMemory)
	junk := dfrSplit(dfrUDP(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40006, 53, 3000), 1448, 0)[0]
	legit := dfrSplit(dfrUDP(t, macCli, macDir0, "10.0.1.3", "10.0.1.100", 40007, 53, 3000), 1448, 0)
	batch := make([]dataplane.Frame, dataplane.BatchSize)
	bufs := make([][]byte, len(batch))
	for i := range bufs {
		bufs[i] = make([]byte, 64+len(junk))
	}
	src := uint32(0x0a100000)
	fill := func() {
		for i := range batch {
			binary.BigEndian.PutUint32(junk[14+12:], src)
			src++
			header.IPv4(junk[14:]).UpdateChecksum()
			copy(bufs[i][64:], junk)
			batch[i] = dataplane.Frame{Buf: bufs[i], Off: 64, Len: len(junk), Ifindex: 1}
		}
		w.ProcessBatch(batch)
	}
	allocs := testing.AllocsPerRun(20, fill)
	if allocs != 0 {
		t.Errorf("%v allocations per flood batch", allocs)
	}
	if w.Counters.Load(dataplane.CntFragOverflow) == 0 {
		t.Fatalf("a flood of %d incomplete datagrams overflowed nothing", 21*dataplane.BatchSize)
	}
	for i := range 5 {
		rec.out = nil
		dfrFeed(w, legit...)
		if sent := dfrCollect(t, rec.out); len(sent) != 1 {
			t.Fatalf("round %d: a legitimate datagram was lost under the flood (sent %d)", i, len(sent))
		}
		fill()
	}
}

// TestDefragNoAllocs: reassembling and forwarding a fragmented datagram of
// an existing connection allocates nothing.
func TestDefragNoAllocs(t *testing.T) {
	r, _, _ := dfrRig(t, 0)
	frags := dfrSplit(dfrUDP(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40008, 53, 3000), 1448, 0)
	batch := make([]dataplane.Frame, len(frags))
	bufs := make([][]byte, len(frags))
	for i := range frags {
		bufs[i] = make([]byte, 64+len(frags[i]))
	}
	nw := dataplane.NewWorker(discardIO{}, r.env)
	run2 := func() {
		for i, f := range frags {
			copy(bufs[i][64:], f)
			batch[i] = dataplane.Frame{Buf: bufs[i], Off: 64, Len: len(f), Ifindex: 1}
		}
		nw.ProcessBatch(batch)
	}
	run2()
	if allocs := testing.AllocsPerRun(200, run2); allocs != 0 {
		t.Errorf("%v allocations per fragmented datagram", allocs)
	}
	if nw.Counters.Load(dataplane.CntReassembled) < 200 || nw.Counters.Load(dataplane.CntTx) == 0 {
		t.Errorf("reassembled %d, sent %d", nw.Counters.Load(dataplane.CntReassembled), nw.Counters.Load(dataplane.CntTx))
	}
}

// BenchmarkDefragNAT measures the whole pipeline per fragment: a 3000-byte
// UDP datagram of an established NAT connection in three fragments,
// reassembled, rewritten and sent (in fragments again, to FragMax, when
// the transmitter does that).
func BenchmarkDefragNAT(b *testing.B) {
	r, _, _ := dfrRig(b, 0)
	w := dataplane.NewWorker(discardIO{}, r.env)
	frags := dfrSplit(dfrUDP(b, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40009, 53, 3000), 1448, 0)
	batch := make([]dataplane.Frame, len(frags))
	bufs := make([][]byte, len(frags))
	for i := range frags {
		bufs[i] = make([]byte, 64+len(frags[i]))
	}
	run := func() {
		for i, f := range frags {
			copy(bufs[i][64:], f)
			batch[i] = dataplane.Frame{Buf: bufs[i], Off: 64, Len: len(f), Ifindex: 1}
		}
		w.ProcessBatch(batch)
	}
	run()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		run()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(frags)), "ns/fragment")
	if w.Counters.Load(dataplane.CntReassembled) < uint64(b.N) {
		b.Fatalf("reassembled %d of %d", w.Counters.Load(dataplane.CntReassembled), b.N)
	}
}

// FuzzDefrag feeds sequences of frames (each a 2-byte length and the
// bytes; a zero length ends a batch and moves the clock 10 s on) to a
// worker serving dfrRules: nothing panics, every frame sent is an IP
// packet that parses, no more datagrams are reassembled than fragments
// came in, and the worker sends at most two frames per frame received.
func FuzzDefrag(f *testing.F) {
	var seeds [][]byte
	for _, tc := range [][2]string{{"10.0.1.2", "10.0.1.100"}, {"2001:db8:1::2", "2001:db8:1::100"}, {"10.0.1.2", "10.0.1.101"}} {
		frags := dfrSplit(dfrUDP(f, macCli, macDir0, tc[0], tc[1], 40000, 53, 3000), 1448, 7)
		var s []byte
		for _, i := range []int{1, 2, 0} {
			s = binary.BigEndian.AppendUint16(s, uint16(len(frags[i])))
			s = append(s, frags[i]...)
		}
		seeds = append(seeds, s)
	}
	for _, s := range seeds {
		f.Add(s)
		f.Add(append(append([]byte(nil), s...), 0, 0))
	}
	f.Add(append(append([]byte(nil), seeds[0][:len(seeds[0])/2]...), append([]byte{0, 0}, seeds[1]...)...))
	// One worker per fuzzing process, reset for each input (as new).
	var wc workerCache
	f.Fuzz(func(t *testing.T, in []byte) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("%d bytes %x", len(in), in) })()
		if len(in) > 1<<16 {
			return
		}
		r := wc.rig(t, dfrRules)
		rec := dfrEnv(r, ipfrag.MinMemory)
		w := wc.worker(rec, r.env)
		var batch [][]byte
		rx := 0
		flush := func() {
			if len(batch) > 0 {
				dfrFeed(w, batch...)
				rx += len(batch)
				batch = batch[:0]
			}
			r.clock = r.clock.Add(10 * time.Second)
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
				batch = append(batch, in[:n])
			}
			in = in[n:]
			if len(batch) == 8 {
				flush()
			}
		}
		flush()
		var p header.Parsed
		for _, o := range rec.out {
			p.Parse(o.Data())
			if p.Kind != header.KindIPv4 && p.Kind != header.KindIPv6 && p.Kind != header.KindARP {
				t.Fatalf("sent a frame that is not IP: %v (%x)", p.Reason, o.Data()[:min(o.Len, 64)])
			}
		}
		if len(rec.out) > 2*rx {
			t.Fatalf("sent %d frames for %d received", len(rec.out), rx)
		}
		if re, in := w.Counters.Load(dataplane.CntReassembled), w.Counters.Load(dataplane.CntFragIn); re > in {
			t.Fatalf("reassembled %d datagrams from %d fragments", re, in)
		}
	})
}

// TestIPv4BadHeaderChecksum: an IPv4 packet whose header checksum does
// not verify is dropped and counted (ip-bad-csum) before anything reads
// it, as ip_rcv_core drops it: a SYN to a NAT service makes no connection
// and nothing is sent, and a fragment takes no part in reassembly — the
// datagram of three fragments one of which is damaged is not delivered
// (with the damaged one replaced by a good copy it is). Before, the SYN
// was scheduled and the damaged fragment's data went out in a datagram
// with a valid header (FuzzWorker's input 77eb2f03677ca562: fragments
// with DF and MF from one whose offset field was damaged).
func TestIPv4BadHeaderChecksum(t *testing.T) {
	r := newRig(t, natRules)
	syn := tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false)
	syn[14+10] ^= 0x40 // the checksum's first byte
	if out := r.run(t, syn); len(out) != 0 || r.conns.Len() != 0 {
		t.Fatalf("a SYN with a bad header checksum: sent %d frames, %d connections", len(out), r.conns.Len())
	}
	if n := r.w.Counters.Load(dataplane.CntIPBadCsum); n != 1 {
		t.Fatalf("ip-bad-csum %d, want 1", n)
	}

	_, w, rec := dfrRig(t, 0)
	frags := dfrSplit(dfrUDP(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 53, 3000), 1448, 0x777)
	damaged := append([]byte(nil), frags[1]...)
	damaged[14+8]-- // TTL, checksum left as it was
	dfrFeed(w, frags[0], damaged, frags[2])
	if len(rec.out) != 0 || w.Counters.Load(dataplane.CntReassembled) != 0 || w.Counters.Load(dataplane.CntIPBadCsum) != 1 {
		t.Fatalf("with a damaged fragment: sent %d frames, reassembled %d, ip-bad-csum %d; want 0, 0, 1",
			len(rec.out), w.Counters.Load(dataplane.CntReassembled), w.Counters.Load(dataplane.CntIPBadCsum))
	}
	dfrFeed(w, frags[1])
	if w.Counters.Load(dataplane.CntReassembled) != 1 || len(dfrCollect(t, rec.out)) != 1 {
		t.Fatalf("the good copy of the fragment did not complete the datagram: reassembled %d, sent %d frames",
			w.Counters.Load(dataplane.CntReassembled), len(rec.out))
	}
}
