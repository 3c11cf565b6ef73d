package dataplane_test

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/control"
	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/internal/fuzzwatch"
	"github.com/uvs-lb/uvs/ipfrag"
	"github.com/uvs-lb/uvs/ipvsadm"
	"github.com/uvs-lb/uvs/snapshot"
)

// fuzzRules is the starting configuration of FuzzWorker: NAT, DR, TUN
// and FULLNAT services, IPv4 and IPv6, TCP and UDP, one persistent.
const fuzzRules = natRules + `-A -u 10.0.1.100:53 -s rr
-a -u 10.0.1.100:53 -r 10.0.2.11:5353 -b
-A -t 10.0.1.101:80 -s sh -p 60
-a -t 10.0.1.101:80 -r 10.0.2.11 -g
-a -t 10.0.1.101:80 -r 10.0.2.12 -i
-A -t [2001:db8:1::100]:80 -s rr
-a -t [2001:db8:1::100]:80 -r [2001:db8:2::11]:8080 -m
-a -t [2001:db8:1::100]:80 -r [2001:db8:2::12]:8080 -b
`

// fuzzChanges are the configuration changes FuzzWorker applies between
// batches (an ipvsadm command each; a failing one changes nothing).
var fuzzChanges = []string{
	"-a -t 10.0.1.100:80 -r 10.0.2.13:8080 -m",
	"-d -t 10.0.1.100:80 -r 10.0.2.11:8080",
	"-d -t 10.0.1.100:80 -r 10.0.2.12:8080",
	"-e -t 10.0.1.100:80 -r 10.0.2.12:8080 -m -w 0",
	"-D -t 10.0.1.100:80",
	"-A -t 10.0.1.100:80 -s mh",
	"-a -t 10.0.1.100:80 -r 10.0.2.11:8080 -b",
	"-D -u 10.0.1.100:53",
	"-A -u 10.0.1.100:53 -s rr -o",
	"-a -u 10.0.1.100:53 -r 10.0.2.12:53 -i --tun-type gue --tun-port 6080",
	"-d -t 10.0.1.101:80 -r 10.0.2.11",
	"-E -t 10.0.1.101:80 -s rr",
	"-d -t [2001:db8:1::100]:80 -r [2001:db8:2::11]:8080",
	"-D -t [2001:db8:1::100]:80",
	"-a -t [2001:db8:1::100]:80 -r [2001:db8:2::13]:80 -g",
	"-C",
}

// fuzzTemplates builds the frames FuzzWorker starts from (mutated by the
// input): requests and replies of each service, ICMP errors, ARP, NDP.
func fuzzTemplates(t testing.TB) [][]byte {
	c4, v4, c6, v6 := "10.0.1.2", "10.0.1.100", "2001:db8:1::2", "2001:db8:1::100"
	var tpl [][]byte
	tpl = append(tpl,
		tcpFrame(t, macCli, macDir0, c4, v4, 40000, 80, true, false),
		tcpFrame(t, macCli, macDir0, c4, v4, 40000, 80, false, true),
		tcpFrame(t, macRS2, macDir1, "10.0.2.12", c4, 8080, 40000, true, true),
		tcpFrame(t, macRS1, macDir1, "10.0.2.11", c4, 8080, 40000, false, true),
		tcpFrame(t, macCli, macDir0, c4, "10.0.1.101", 40001, 80, true, false),
		fuzzUDP(t, macCli, macDir0, c4, v4, 40002, 53),
		fuzzUDP(t, macRS1, macDir1, "10.0.2.11", "10.0.2.1", 5353, 5000),
		fuzzTCP6(t, macCli, macDir0, c6, v6, 40003, 80, true),
		fuzzTCP6(t, macCli, macDir0, c6, v6, 40003, 80, false),
		fuzzTCP6(t, macRS1, macDir1, "2001:db8:2::11", c6, 8080, 40003, false),
	)
	// An ICMP port unreachable from the client quoting a reply.
	quoted := tcpFrame(t, macDir0, macCli, v4, c4, 80, 40000, true, true)[14:]
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(macCli[:]), DstMAC: net.HardwareAddr(macDir0[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: net.ParseIP(c4), DstIP: net.ParseIP(v4)}
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 3)}
	tpl = append(tpl, fuzzSerialize(t, eth, ip, icmp, gopacket.Payload(quoted[:28])))
	arp := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: layers.ARPRequest, SourceHwAddress: macCli[:], SourceProtAddress: net.ParseIP(c4).To4(),
		DstHwAddress: make([]byte, 6), DstProtAddress: net.ParseIP(v4).To4()}
	tpl = append(tpl, fuzzSerialize(t, &layers.Ethernet{SrcMAC: net.HardwareAddr(macCli[:]), DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP}, arp))
	eth6 := &layers.Ethernet{SrcMAC: net.HardwareAddr(macCli[:]), DstMAC: net.HardwareAddr{0x33, 0x33, 0xff, 0, 1, 0}, EthernetType: layers.EthernetTypeIPv6}
	ip6 := &layers.IPv6{Version: 6, HopLimit: 255, NextHeader: layers.IPProtocolICMPv6, SrcIP: net.ParseIP(c6), DstIP: net.ParseIP("ff02::1:ff00:100")}
	ic6 := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)}
	if err := ic6.SetNetworkLayerForChecksum(ip6); err != nil {
		t.Fatal(err)
	}
	ns := &layers.ICMPv6NeighborSolicitation{TargetAddress: net.ParseIP(v6),
		Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: macCli[:]}}}
	tpl = append(tpl, fuzzSerialize(t, eth6, ip6, ic6, ns))
	return tpl
}

func fuzzSerialize(t testing.TB, l ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, l...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func fuzzUDP(t testing.TB, srcMAC, dstMAC [6]byte, src, dst string, sport, dport uint16) []byte {
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(srcMAC[:]), DstMAC: net.HardwareAddr(dstMAC[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst)}
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	return fuzzSerialize(t, eth, ip, udp, gopacket.Payload("query"))
}

func fuzzTCP6(t testing.TB, srcMAC, dstMAC [6]byte, src, dst string, sport, dport uint16, syn bool) []byte {
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(srcMAC[:]), DstMAC: net.HardwareAddr(dstMAC[:]), EthernetType: layers.EthernetTypeIPv6}
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst)}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), SYN: syn, ACK: !syn, Seq: 1000, Window: 65535}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	return fuzzSerialize(t, eth, ip, tcp, gopacket.Payload(strings.Repeat("x", 1400)))
}

// checkIO is a PacketIO that checks every frame the worker writes.
type checkIO struct {
	t       *testing.T
	written uint64
	p       header.Parsed
	// keep makes WriteBatch keep a copy of each frame in out.
	keep bool
	out  [][]byte
}

// fixIPv4Checksum recomputes the header checksum of an Ethernet/IPv4 frame.
func fixIPv4Checksum(data []byte) {
	if len(data) < header.EthernetMinSize+20 || data[12] != 0x08 || data[13] != 0 {
		return
	}
	ip := data[header.EthernetMinSize:]
	hl := int(ip[0]&0xf) * 4
	if hl < 20 || hl > len(ip) {
		return
	}
	ip[10], ip[11] = 0, 0
	sum := ^header.Checksum(ip[:hl], 0)
	ip[10], ip[11] = byte(sum>>8), byte(sum)
}

func (c *checkIO) ReadBatch([]dataplane.Frame) (int, error) { return 0, dataplane.ErrClosed }
func (c *checkIO) Close() error                             { return nil }

func (c *checkIO) WriteBatch(frames []dataplane.Frame) (int, error) {
	for i := range frames {
		f := &frames[i]
		if f.Off < 0 || f.Len < header.EthernetMinSize || f.Off+f.Len > len(f.Buf) {
			c.t.Fatalf("emitted frame out of its buffer: off %d len %d buf %d", f.Off, f.Len, len(f.Buf))
		}
		if f.Ifindex != 1 && f.Ifindex != 2 {
			c.t.Fatalf("emitted frame on interface %d, not a served one", f.Ifindex)
		}
		data := f.Data()
		c.p.Parse(data)
		switch c.p.Kind {
		case header.KindARP, header.KindIPv4, header.KindIPv6:
		default:
			c.t.Fatalf("emitted frame does not parse (kind %v, reason %v): % x", c.p.Kind, c.p.Reason, data[:min(len(data), 64)])
		}
		tunnel := c.p.Reason == header.ReasonUnsupportedProto && (c.p.Proto == 4 || c.p.Proto == 41) // IPIP, SIT: TUN
		// Fragments: a datagram fragmented for the egress MTU or, once
		// reassembled, for its largest fragment (fragout.go).
		frag := c.p.Reason == header.ReasonFragment
		if c.p.Kind != header.KindARP && c.p.Reason != header.ReasonNone && !tunnel && !frag {
			c.t.Fatalf("emitted frame parses as malformed (%v): % x", c.p.Reason, data[:min(len(data), 64)])
		}
		if c.p.Kind == header.KindIPv4 {
			if header.Checksum(data[c.p.L3Off:c.p.L4Off], 0) != 0xffff {
				c.t.Fatalf("emitted IPv4 header checksum wrong: % x", data[c.p.L3Off:c.p.L4Off])
			}
		}
	}
	if c.keep {
		for i := range frames {
			c.out = append(c.out, append([]byte(nil), frames[i].Data()...))
		}
	}
	c.written += uint64(len(frames))
	return len(frames), nil
}

// fuzzDests is how many more destinations than entries the fuzz
// targets' tables register at most: their rules (with FuzzWorker's
// configuration changes) name a few dozen real servers, and an entry
// holds one destination, so a registry of capacity+fuzzDests slots never
// fills before the table does, as the default (16384 slots, about 330 KB
// zeroed by every conntrack.New: most of building a rig per input) did
// not.
const fuzzDests = 64

// fuzzConns is the capacity of the fuzz targets' connection tables: no
// input makes more connections than a few hundred frames can, a full
// table is reached (and its eviction covered) by inputs of a few hundred
// SYNs, and a table of 4096 entries (about 600 KB zeroed by every
// conntrack.New) took most of an execution.
const fuzzConns = 1 << 8

// fuzzRigCmds is newRig with cmds (fuzzRules parsed) and hops, without
// its worker: a new connection table, control state and Env.
func fuzzRigCmds(t *testing.T, hops fakeHops, cmds []ipvsadm.Command) *rig {
	r := &rig{clock: time.Unix(1000, 0)}
	var snap atomic.Pointer[snapshot.Snapshot]
	var host atomic.Pointer[dataplane.Host]
	host.Store(&dataplane.Host{
		Ifaces: map[int]dataplane.Iface{
			1: {Index: 1, Name: "d0", MAC: macDir0, MTU: 1500},
			2: {Index: 2, Name: "d1", MAC: macDir1, MTU: 1500},
		},
		Local: map[[16]byte]bool{},
	})
	ct, err := conntrack.New(conntrack.Config{Capacity: fuzzConns, MaxDests: fuzzConns + fuzzDests})
	if err != nil {
		t.Fatal(err)
	}
	r.conns = ct
	r.state = control.New(control.Options{Publish: func(s *snapshot.Snapshot) { snap.Store(s) }})
	if err := r.state.ApplyAll(cmds); err != nil {
		t.Fatal(err)
	}
	r.env = &dataplane.Env{Snap: &snap, Host: &host, Conns: ct, Hops: hops,
		Now: func() time.Time { return r.clock }, Epoch: time.Unix(0, 0),
		Ports: dataplane.NewPortAllocator(0, 0), NeighTimeout: time.Second,
		// The smallest reassembly memory: a fresh worker per input
		// zeroes it, and an input holds a few datagrams at most.
		FragMemory: ipfrag.MinMemory}
	return r
}

// fuzzReader hands out the fuzz input's bytes; zeros once it runs out.
type fuzzReader struct {
	b []byte
}

func (r *fuzzReader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *fuzzReader) u16() uint16 { return uint16(r.byte())<<8 | uint16(r.byte()) }

func (r *fuzzReader) bytes(n int) []byte {
	n = min(n, len(r.b))
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

// fuzzWorkerRig holds what FuzzWorker builds once per fuzzing process:
// the frame templates, the configuration changes, the parsed rules, the
// hops and one set of frame buffers.
type fuzzWorkerRig struct {
	tpl     [][]byte
	changes []ipvsadm.Command
	cmds    []ipvsadm.Command
	hops    fakeHops
	bufs    [dataplane.BatchSize][]byte
}

const fuzzHeadroom = 64

func newFuzzWorkerRig(t testing.TB) *fuzzWorkerRig {
	fr := &fuzzWorkerRig{tpl: fuzzTemplates(t), changes: make([]ipvsadm.Command, len(fuzzChanges))}
	for i, s := range fuzzChanges {
		c, err := ipvsadm.Parse(strings.Fields(s))
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		fr.changes[i] = c
	}
	cmds, err := ipvsadm.ParseRules(strings.NewReader(fuzzRules), "rules")
	if err != nil {
		t.Fatal(err)
	}
	fr.cmds = cmds
	fr.hops = testHops()
	fr.hops[netip.MustParseAddr("2001:db8:2::11")] = dataplane.Hop{Ifindex: 2, SrcMAC: macDir1, DstMAC: macRS1, Src: netip.MustParseAddr("2001:db8:2::1"), MTU: 1500}
	fr.hops[netip.MustParseAddr("2001:db8:2::12")] = dataplane.Hop{Ifindex: 2, SrcMAC: macDir1, DstMAC: macRS2, Src: netip.MustParseAddr("2001:db8:2::1"), MTU: 1500}
	fr.hops[netip.MustParseAddr("10.0.1.2")] = dataplane.Hop{Ifindex: 1, SrcMAC: macDir0, DstMAC: macCli, Src: netip.MustParseAddr("10.0.1.1"), MTU: 1500}
	for i := range fr.bufs {
		fr.bufs[i] = make([]byte, fuzzHeadroom+2048)
	}
	return fr
}

// run executes prog (see FuzzWorker) on w, which serves r and writes to
// cio, and checks the invariants as it goes.
func (fr *fuzzWorkerRig) run(t *testing.T, w *dataplane.Worker, r *rig, cio *checkIO, prog []byte) {
	in := &fuzzReader{b: prog}
	batch := make([]dataplane.Frame, 0, dataplane.BatchSize)
	run := func() {
		w.ProcessBatch(batch)
		batch = batch[:0]
		if n := r.conns.Len(); n > fuzzConns {
			t.Fatalf("connection table holds %d, over its capacity", n)
		}
	}
	for steps := 0; len(in.b) > 0 && steps < 512; steps++ {
		switch in.byte() % 6 {
		case 0, 1: // a template with a byte changed, or raw bytes
			// The frame's buffer is exactly headroom (zeroed) and
			// frame, as when each frame had a new buffer.
			b := fr.bufs[len(batch)]
			var data []byte
			if prog[len(prog)-len(in.b)-1]%6 == 0 {
				tp := fr.tpl[int(in.byte())%len(fr.tpl)]
				data = b[fuzzHeadroom : fuzzHeadroom+len(tp)]
				copy(data, tp)
				pos, x := int(in.u16()), in.byte()
				data[pos%len(data)] ^= x
				if x&1 == 0 {
					// Half the changes keep the IPv4 header valid.
					fixIPv4Checksum(data)
				}
			} else {
				raw := in.bytes(int(in.u16()) % 2048)
				data = b[fuzzHeadroom : fuzzHeadroom+len(raw)]
				copy(data, raw)
			}
			meta := in.byte()
			buf := b[: fuzzHeadroom+len(data) : fuzzHeadroom+len(data)]
			clear(buf[:fuzzHeadroom])
			batch = append(batch, dataplane.Frame{Buf: buf, Off: fuzzHeadroom, Len: len(data),
				Ifindex: 1 + int(meta&3), CsumPartial: meta&4 != 0, CsumUnknown: meta&8 != 0, Offload: meta&16 != 0})
			if len(batch) == dataplane.BatchSize {
				run()
			}
		case 2: // end of a batch
			run()
		case 3: // a configuration change
			c := fr.changes[int(in.byte())%len(fr.changes)]
			_ = r.state.Apply(&c)
		case 4: // the clock moves: up to ~25 s, or ten minutes
			if d := in.byte(); d == 255 {
				r.clock = r.clock.Add(10 * time.Minute)
			} else {
				r.clock = r.clock.Add(time.Duration(d) * 100 * time.Millisecond)
			}
		case 5: // GSO metadata for the last frame
			g := dataplane.GSO{Type: dataplane.GSOType(in.byte()), Size: in.u16()}
			cs, co := in.u16(), in.u16()
			if len(batch) > 0 {
				fr := &batch[len(batch)-1]
				fr.GSO, fr.CsumStart, fr.CsumOffset = g, cs, co
			}
		}
	}
	run()
	if tx := w.Counters.Load(dataplane.CntTx); tx != cio.written {
		t.Fatalf("tx counter %d, frames written %d", tx, cio.written)
	}
}

// fuzzWorkerSeeds are FuzzWorker's seeds: every template through a
// batch; a handshake and reply per service; a GSO super-frame; changes
// between batches.
func fuzzWorkerSeeds(ntpl int) [][]byte {
	var seeds [][]byte
	for i := range ntpl {
		seeds = append(seeds, []byte{0, byte(i), 0, 0, 0, 0, 2})
	}
	return append(seeds,
		[]byte{0, 0, 0, 0, 0, 0, 2, 0, 1, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2, 2, 0, 3, 0, 0, 0, 1, 2},
		[]byte{0, 7, 0, 0, 0, 0x10, 5, byte(dataplane.GSOTCPv6), 0x02, 0x00, 0, 54, 0, 16, 2, 0, 9, 0, 0, 0, 0x10, 2},
		[]byte{0, 0, 0, 0, 0, 0, 3, 1, 3, 4, 2, 0, 0, 0, 0, 0, 4, 200, 2, 3, 15, 0, 1, 0, 0, 0, 0, 2},
		[]byte{0, 5, 0, 0, 0, 0, 0, 6, 0, 0, 0, 1, 2, 3, 7, 0, 5, 0, 0, 0, 4, 2},
		[]byte{1, 0, 60, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 1, 2, 8, 6, 2})
}

// FuzzWorker drives one worker through ProcessBatch with the input as a
// program: frames (templates with a byte changed, or raw bytes) with
// random receive metadata (interface, checksum offload, virtio-net GSO),
// batches of random size, configuration changes between batches and clock
// jumps. Invariants: no panic; every frame written lies in its buffer,
// leaves by a served interface and parses (an IPv4 header checksum that
// verifies); the tx counter equals the frames written; the connection
// table stays within its capacity.
//
// Each fuzzing process builds one worker and resets it for each input to
// the state of a new one (Worker.ResetForFuzz, checked by
// TestResetForFuzz), with a new connection table, control state and Env:
// a new worker's 1.7 MB of buffers were most of an execution's time.
func FuzzWorker(f *testing.F) {
	fr := newFuzzWorkerRig(f)
	for _, s := range fuzzWorkerSeeds(len(fr.tpl)) {
		f.Add(s)
	}
	var (
		w   *dataplane.Worker
		cio checkIO
	)
	f.Fuzz(func(t *testing.T, prog []byte) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("program %x", prog) })()
		if len(prog) > 4096 {
			return // longer programs cover nothing more and slow minimisation
		}
		r := fuzzRigCmds(t, fr.hops, fr.cmds)
		cio = checkIO{t: t}
		if w == nil {
			w = dataplane.NewWorker(&cio, r.env)
		} else {
			w.ResetForFuzz(&cio, r.env)
		}
		fr.run(t, w, r, &cio, prog)
	})
}

// fuzzCorpus returns the inputs kept in testdata/fuzz/name (one []byte
// argument each).
func fuzzCorpus(t *testing.T, name string) [][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", name, "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus for %s: %v", name, err)
	}
	var progs [][]byte
	for _, fn := range files {
		b, err := os.ReadFile(fn)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		arg, ok := strings.CutPrefix(lines[len(lines)-1], "[]byte(")
		if !ok || len(lines) != 2 {
			t.Fatalf("%s: not one []byte argument", fn)
		}
		v, err := strconv.Unquote(strings.TrimSuffix(arg, ")"))
		if err != nil {
			t.Fatalf("%s: %v", fn, err)
		}
		progs = append(progs, []byte(v))
	}
	return progs
}

// TestResetForFuzz: a worker that ran FuzzWorker's kept corpus (queued
// frames, fragments held, ICMP credit spent, counters...) and was reset
// with ResetForFuzz is a new worker: it writes the same frames (lengths and
// Ethernet headers) and counts the same as a new worker on FuzzWorker's
// seeds and random programs, and
// field by field it equals one NewWorker makes for the same Env
// (WorkerStateDiff).
func TestResetForFuzz(t *testing.T) {
	fr := newFuzzWorkerRig(t)
	dirty := fuzzCorpus(t, "FuzzWorker")
	rnd := rand.New(rand.NewPCG(15, 15))
	fixed := fuzzWorkerSeeds(len(fr.tpl))
	for range 8 {
		p := make([]byte, 4096)
		for i := range p {
			p[i] = byte(rnd.Uint32())
		}
		fixed = append(fixed, p)
	}
	// run runs progs on w (a new rig and checkIO for each) and returns
	// the frames written and the counters, program by program.
	run := func(w *dataplane.Worker, progs [][]byte, reset bool) []string {
		var res []string
		for _, prog := range progs {
			r := fuzzRigCmds(t, fr.hops, fr.cmds)
			cio := &checkIO{t: t, keep: true}
			if w == nil {
				w = dataplane.NewWorker(cio, r.env)
			} else if reset {
				w.ResetForFuzz(cio, r.env)
			}
			fr.run(t, w, r, cio, prog)
			var cnt []uint64
			for c := range dataplane.NumCounters {
				cnt = append(cnt, w.Counters.Load(c))
			}
			// FULLNAT's local ports (and so L4 checksums) are random:
			// each frame's length and Ethernet header, and the counters.
			var sum []string
			for _, o := range cio.out {
				sum = append(sum, fmt.Sprintf("%d:%x", len(o), o[:min(len(o), header.EthernetMinSize)]))
			}
			res = append(res, fmt.Sprintf("%v %v", sum, cnt))
		}
		return res
	}
	// Without reset between programs: the worker's state from the
	// last program is there for the next one.
	r := fuzzRigCmds(t, fr.hops, fr.cmds)
	cio := &checkIO{t: t}
	used := dataplane.NewWorker(cio, r.env)
	for _, prog := range dirty {
		fr.run(t, used, r, cio, prog)
	}
	if used.Counters.Load(dataplane.CntTx) == 0 {
		t.Fatal("the corpus sent nothing")
	}
	want := make([]string, 0, len(fixed))
	for _, prog := range fixed {
		want = append(want, run(nil, [][]byte{prog}, false)...)
	}
	got := run(used, fixed, true)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("program %d: a reset worker wrote and counted\n%s\na new one\n%s", i, got[i], want[i])
		}
	}
	// The state itself, once more after the corpus.
	cio = &checkIO{t: t}
	used.ResetForFuzz(cio, r.env)
	for _, prog := range dirty {
		fr.run(t, used, r, cio, prog)
	}
	r = fuzzRigCmds(t, fr.hops, fr.cmds)
	used.ResetForFuzz(&checkIO{}, r.env)
	if d := dataplane.WorkerStateDiff(used, dataplane.NewWorker(&checkIO{}, r.env)); d != "" {
		t.Fatalf("a reset worker differs from a new one in %s", d)
	}
}

// workerCache holds what the worker-level fuzz targets build once per
// fuzzing process: one worker, reset for each input to the state of a new
// one (Worker.ResetForFuzz, TestResetForFuzz), and the rules they parse.
type workerCache struct {
	w      *dataplane.Worker
	parsed map[string][]ipvsadm.Command
}

// rig is newRig(t, rules) without its worker (r.w is nil): a new
// connection table, control state, Env and FakeIO.
func (c *workerCache) rig(t testing.TB, rules string) *rig {
	t.Helper()
	cmds, ok := c.parsed[rules]
	if !ok {
		var err error
		if cmds, err = ipvsadm.ParseRules(strings.NewReader(rules), "rules"); err != nil {
			t.Fatal(err)
		}
		if c.parsed == nil {
			c.parsed = map[string][]ipvsadm.Command{}
		}
		c.parsed[rules] = cmds
	}
	r := &rig{io: dataplane.NewFakeIO(64, 10*time.Millisecond), clock: time.Unix(1000, 0)}
	var snap atomic.Pointer[snapshot.Snapshot]
	var host atomic.Pointer[dataplane.Host]
	host.Store(&dataplane.Host{
		Ifaces: map[int]dataplane.Iface{
			1: {Index: 1, Name: "d0", MAC: macDir0, MTU: 1500},
			2: {Index: 2, Name: "d1", MAC: macDir1, MTU: 1500},
		},
		Local: map[[16]byte]bool{},
	})
	ct, err := conntrack.New(conntrack.Config{Capacity: fuzzConns, MaxDests: fuzzConns + fuzzDests})
	if err != nil {
		t.Fatal(err)
	}
	r.conns = ct
	r.state = control.New(control.Options{Publish: func(s *snapshot.Snapshot) { snap.Store(s) }})
	if err := r.state.ApplyAll(cmds); err != nil {
		t.Fatal(err)
	}
	r.env = &dataplane.Env{Snap: &snap, Host: &host, Conns: ct, Hops: testHops(),
		Now: func() time.Time { return r.clock }, Epoch: time.Unix(0, 0),
		Ports: dataplane.NewPortAllocator(0, 0)}
	return r
}

// worker returns the process's worker as NewWorker(io, env) would make
// it. env must be new (from rig).
func (c *workerCache) worker(io dataplane.PacketIO, env *dataplane.Env) *dataplane.Worker {
	if c.w == nil {
		c.w = dataplane.NewWorker(io, env)
	} else {
		c.w.ResetForFuzz(io, env)
	}
	return c.w
}
