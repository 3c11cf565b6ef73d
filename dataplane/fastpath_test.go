package dataplane_test

import (
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/internal/pkttest"
	"github.com/uvs-lb/uvs/ipvsadm"
)

// fakeFast is an in-memory dataplane.FastMap: Forward plays the XDP
// program forwarding packets of an installed flow.
type fakeFast struct {
	mu      sync.Mutex
	flows   map[dataplane.FastKey]*fakeFlow
	canSend map[int]bool
	mono    int64
	puts    int
}

type fakeFlow struct {
	f dataplane.FastFlow
	c dataplane.FastCounts
}

func newFakeFast() *fakeFast {
	return &fakeFast{flows: map[dataplane.FastKey]*fakeFlow{}, canSend: map[int]bool{1: true, 2: true}, mono: int64(time.Hour)}
}

func (f *fakeFast) CanSend(i int) bool { f.mu.Lock(); defer f.mu.Unlock(); return f.canSend[i] }
func (f *fakeFast) Mono() int64        { f.mu.Lock(); defer f.mu.Unlock(); return f.mono }

func (f *fakeFast) Put(fl *dataplane.FastFlow) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flows[fl.Key] = &fakeFlow{f: *fl, c: dataplane.FastCounts{Installed: f.mono}}
	f.puts++
	return nil
}

func (f *fakeFast) Delete(k dataplane.FastKey) (dataplane.FastCounts, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	x, ok := f.flows[k]
	if !ok {
		return dataplane.FastCounts{}, false, nil
	}
	delete(f.flows, k)
	return x.c, true, nil
}

func (f *fakeFast) ReadAll(fn func(dataplane.FastKey, dataplane.FastCounts)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, x := range f.flows {
		fn(k, x.c)
	}
	return nil
}

// forward counts n packets of size bytes on flow k, the last one now.
func (f *fakeFast) forward(t *testing.T, k dataplane.FastKey, n, size uint64) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	x, ok := f.flows[k]
	if !ok {
		t.Fatalf("flow %+v not installed", k)
	}
	x.c.Packets += n
	x.c.Bytes += n * size
	x.c.Last = f.mono
}

func (f *fakeFast) flow(k dataplane.FastKey) (dataplane.FastFlow, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	x, ok := f.flows[k]
	if !ok {
		return dataplane.FastFlow{}, false
	}
	return x.f, true
}

func (f *fakeFast) len() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.flows) }

// advance moves the rig's clock and the fake's monotonic clock on by d.
func (r *rig) advance(f *fakeFast, d time.Duration) {
	r.clock = r.clock.Add(d)
	f.mu.Lock()
	f.mono += int64(d)
	f.mu.Unlock()
}

// flagFrame is a TCP segment with the flags named ("S", "A", "F", "R",
// "P" in any combination, as pkttest.Flow takes them) and a payload.
func flagFrame(t *testing.T, srcMAC, dstMAC [6]byte, src, dst string, sport, dport uint16, flags string) []byte {
	t.Helper()
	b := pkttest.Flow{Proto: layers.IPProtocolTCP, Src: src, Dst: dst, Sport: sport, Dport: dport, TTL: 64, Flags: flags, Payload: 10}.Frame(t)
	copy(b[0:6], dstMAC[:])
	copy(b[6:12], srcMAC[:])
	return b
}

var (
	fastIn  = dataplane.FastKey{Src: [4]byte{10, 0, 1, 2}, Dst: [4]byte{10, 0, 1, 100}, SrcPort: 40000, DstPort: 80, Proto: 6}
	fastOut = dataplane.FastKey{Src: [4]byte{10, 0, 2, 12}, Dst: [4]byte{10, 0, 1, 2}, SrcPort: 8080, DstPort: 40000, Proto: 6}
)

// fastRig is a NAT rig with a fake fast path and one established TCP
// connection (client 10.0.1.2:40000 → rs2) whose client has sent
// inbound packets until just before FastMinPackets.
func fastRig(t *testing.T) (*rig, *fakeFast, *dataplane.FastPath) {
	t.Helper()
	r := newRig(t, natRules)
	ff := newFakeFast()
	fp := dataplane.NewFastPath(ff, r.env)
	r.env.Fast = fp
	r.run(t, flagFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, "S"))
	r.run(t, flagFrame(t, macRS2, macDir1, "10.0.2.12", "10.0.1.2", 8080, 40000, "SA"))
	for range dataplane.FastMinPackets - 2 {
		r.run(t, flagFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, "A"))
	}
	if n := ff.len(); n != 0 {
		t.Fatalf("%d flows installed after %d inbound packets, want none before %d", n, dataplane.FastMinPackets-1, dataplane.FastMinPackets)
	}
	return r, ff, fp
}

func (r *rig) conn(t *testing.T, k dataplane.FastKey) (conntrack.Conn, bool) {
	t.Helper()
	ck := conntrack.Key{Src: netip.AddrFrom4(k.Src).As16(), Dst: netip.AddrFrom4(k.Dst).As16(), SrcPort: k.SrcPort, DstPort: k.DstPort, Proto: k.Proto}
	var c conntrack.Conn
	ok := r.conns.Lookup(ck, int64(r.clock.Sub(r.env.Epoch)), &c)
	return c, ok
}

// TestFastPathInstallsEstablishedNAT: an established NAT connection's
// directions are handed to the fast path once FastMinPackets inbound
// packets have gone through the worker, each as the worker forwarded its
// last packet (the rewrite, the next hop's Ethernet addresses, interface
// and MTU), and both come back when the client's FIN reaches the worker.
func TestFastPathInstallsEstablishedNAT(t *testing.T) {
	r, ff, fp := fastRig(t)
	r.run(t, flagFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, "PA"))
	in, ok := ff.flow(fastIn)
	if !ok || ff.len() != 1 {
		t.Fatalf("after %d inbound packets: %d flows, inbound one installed %v", dataplane.FastMinPackets, ff.len(), ok)
	}
	want := dataplane.FastFlow{Key: fastIn, SetDst: true, Dst: [4]byte{10, 0, 2, 12}, DstPort: 8080, DstMAC: macRS2, SrcMAC: macDir1, Ifindex: 2, MTU: 1500,
		NextHop: [4]byte{10, 0, 2, 12}}
	if in != want {
		t.Fatalf("inbound flow %+v, want %+v", in, want)
	}
	r.run(t, flagFrame(t, macRS2, macDir1, "10.0.2.12", "10.0.1.2", 8080, 40000, "PA"))
	out, ok := ff.flow(fastOut)
	want = dataplane.FastFlow{Key: fastOut, SetSrc: true, Src: [4]byte{10, 0, 1, 100}, SrcPort: 80, DstMAC: macCli, SrcMAC: macDir0, Ifindex: 1, MTU: 1500,
		NextHop: [4]byte{10, 0, 1, 2}, Reply: true}
	if !ok || out != want {
		t.Fatalf("reply flow %+v (%v), want %+v", out, ok, want)
	}
	if c, _ := r.conn(t, fastIn); c.Fast != conntrack.FastIn|conntrack.FastOut {
		t.Fatalf("connection's fast directions %v, want both", c.Fast)
	}
	if s := fp.Stats(); s.Flows != 2 || s.Installs != 2 {
		t.Fatalf("stats %+v, want 2 flows, 2 installs", s)
	}
	// The FIN: ESTABLISHED → FIN_WAIT in the worker, both directions back.
	r.run(t, flagFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, "FA"))
	if n := ff.len(); n != 0 {
		t.Fatalf("%d flows left in the fast path after the FIN", n)
	}
	if c, _ := r.conn(t, fastIn); c.Fast != 0 {
		t.Fatalf("connection's fast directions %v after the FIN, want none", c.Fast)
	}
	if s := fp.Stats(); s.Flows != 0 {
		t.Fatalf("stats %+v after the FIN, want 0 flows", s)
	}
}

// TestFastPathNotWhereItCannotSend: no flow is installed towards an
// interface the fast path cannot send on.
func TestFastPathNotWhereItCannotSend(t *testing.T) {
	r, ff, _ := fastRig(t)
	ff.mu.Lock()
	ff.canSend[2] = false
	ff.mu.Unlock()
	r.run(t, flagFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, "PA"))
	if n := ff.len(); n != 0 {
		t.Fatalf("%d flows installed towards an interface the fast path cannot send on", n)
	}
	r.run(t, flagFrame(t, macRS2, macDir1, "10.0.2.12", "10.0.1.2", 8080, 40000, "PA"))
	if _, ok := ff.flow(fastOut); !ok || ff.len() != 1 {
		t.Fatalf("the reply direction (to interface 1) was not installed: %d flows", ff.len())
	}
}

// TestFastPathPoll: what the fast path forwarded re-arms the
// connection's timer from its last packet and counts in the destination's
// and service's statistics; a flow older than FastMaxAge, or whose
// destination was removed, goes back to the worker.
func TestFastPathPoll(t *testing.T) {
	r, ff, fp := fastRig(t)
	r.run(t, flagFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, "PA"))
	r.run(t, flagFrame(t, macRS2, macDir1, "10.0.2.12", "10.0.1.2", 8080, 40000, "PA"))
	svc := r.env.Snap.Load().Services()[0]
	before := svc.Stats.Load()
	c0, _ := r.conn(t, fastIn)

	r.advance(ff, 2*time.Second)
	ff.forward(t, fastIn, 100, 1000)
	ff.forward(t, fastOut, 50, 60)
	r.advance(ff, time.Second)
	fp.Poll()
	after := svc.Stats.Load()
	if in, out := after.InPkts-before.InPkts, after.OutPkts-before.OutPkts; in != 100 || out != 50 ||
		after.InBytes-before.InBytes != 100000 || after.OutBytes-before.OutBytes != 3000 {
		t.Fatalf("service statistics grew by %d/%d packets, %d/%d bytes, want 100/50, 100000/3000", in, out,
			after.InBytes-before.InBytes, after.OutBytes-before.OutBytes)
	}
	c1, _ := r.conn(t, fastIn)
	if want := c0.Expires + int64(2*time.Second); c1.Expires != want {
		t.Fatalf("timer %v after the poll, want %v (re-armed from the last packet, 2 s after the worker's)",
			time.Duration(c1.Expires), time.Duration(want))
	}
	// Nothing new: nothing counted twice.
	fp.Poll()
	if got := svc.Stats.Load(); got != after {
		t.Fatalf("a second poll counted %+v more", got.InPkts-after.InPkts)
	}
	if s := fp.Stats(); s.Packets != 150 {
		t.Fatalf("fast-path packets %d, want 150", s.Packets)
	}
	// Old flows go back to the worker.
	r.advance(ff, dataplane.FastMaxAge)
	fp.Poll()
	if n := ff.len(); n != 0 {
		t.Fatalf("%d flows left after FastMaxAge", n)
	}
	if c, _ := r.conn(t, fastIn); c.Fast != 0 {
		t.Fatalf("fast directions %v after FastMaxAge", c.Fast)
	}
	// The next packets install them again.
	r.run(t, flagFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, "PA"))
	if _, ok := ff.flow(fastIn); !ok {
		t.Fatal("the inbound flow was not installed again")
	}
	// Its destination removed: back to the worker (which drops its packets).
	cmds, err := ipvsadm.ParseRules(strings.NewReader("-d -t 10.0.1.100:80 -r 10.0.2.12:8080\n"), "rules")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.state.ApplyAll(cmds); err != nil {
		t.Fatal(err)
	}
	fp.Poll()
	if n := ff.len(); n != 0 {
		t.Fatalf("%d flows left after their destination was removed", n)
	}
}

// TestFastPathExpiry: a UDP flow in the fast path keeps its connection
// while it forwards, and leaves the fast path as soon as the connection
// expires (FastGrace after its timer).
func TestFastPathExpiry(t *testing.T) {
	r := newRig(t, "-A -u 10.0.1.100:53 -s rr\n-a -u 10.0.1.100:53 -r 10.0.2.11:53 -m\n")
	ff := newFakeFast()
	fp := dataplane.NewFastPath(ff, r.env)
	r.env.Fast = fp
	const udpTO = 10 * time.Second
	r.conns.SetTimeouts(0, 0, udpTO)
	for range dataplane.FastMinPackets {
		r.run(t, udpFrame(t, 5000, 53, []byte("query")))
	}
	k := dataplane.FastKey{Src: [4]byte{10, 0, 1, 2}, Dst: [4]byte{10, 0, 1, 100}, SrcPort: 5000, DstPort: 53, Proto: 17}
	if _, ok := ff.flow(k); !ok {
		t.Fatalf("UDP flow not installed after %d datagrams", dataplane.FastMinPackets)
	}
	// Traffic for twice the timeout, read back every second: the
	// connection stays.
	for range 2 * int(udpTO/time.Second) {
		r.advance(ff, time.Second)
		ff.forward(t, k, 10, 100)
		fp.Poll()
		r.conns.Reap(int64(r.clock.Sub(r.env.Epoch)), 1<<12)
	}
	if _, ok := r.conn(t, k); !ok {
		t.Fatal("the connection expired while the fast path forwarded its packets")
	}
	// Quiet: gone after the timeout and FastGrace, and out of the fast path.
	r.advance(ff, udpTO+conntrack.FastGrace)
	r.conns.Reap(int64(r.clock.Sub(r.env.Epoch)), 1<<12)
	if _, ok := r.conn(t, k); ok {
		t.Fatal("the quiet connection did not expire")
	}
	if n := ff.len(); n != 0 {
		t.Fatalf("%d flows left after the connection expired", n)
	}
}

// TestFastPathFullNATAndDR: a FULLNAT connection's directions are handed
// over with both ends rewritten (the local address and the real server on
// the way in, the VIP and the client on the way out), a DR connection's
// inbound direction with nothing rewritten but the TTL and the Ethernet
// addresses.
func TestFastPathFullNATAndDR(t *testing.T) {
	r := newRig(t, "-A -t 10.0.1.100:80 -s rr\n-a -t 10.0.1.100:80 -r 10.0.2.11:80 -b\n-P -t 10.0.1.100:80 -z 10.0.2.201\n"+
		"-A -t 10.0.1.101:80 -s rr\n-a -t 10.0.1.101:80 -r 10.0.2.12:80 -g\n")
	ff := newFakeFast()
	r.env.Fast = dataplane.NewFastPath(ff, r.env)
	out := r.run(t, flagFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, "S"))
	if len(out) != 1 {
		t.Fatalf("FULLNAT SYN: %d frames sent", len(out))
	}
	_, ip, tcp := decode(t, out[0].Data())
	lport := uint16(tcp.SrcPort)
	if ip.SrcIP.String() != "10.0.2.201" {
		t.Fatalf("FULLNAT SYN sent from %s", ip.SrcIP)
	}
	r.run(t, flagFrame(t, macRS1, macDir1, "10.0.2.11", "10.0.2.201", 80, lport, "SA"))
	for range dataplane.FastMinPackets - 1 {
		r.run(t, flagFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, "A"))
	}
	r.run(t, flagFrame(t, macRS1, macDir1, "10.0.2.11", "10.0.2.201", 80, lport, "PA"))
	in := dataplane.FastKey{Src: [4]byte{10, 0, 1, 2}, Dst: [4]byte{10, 0, 1, 100}, SrcPort: 40000, DstPort: 80, Proto: 6}
	rep := dataplane.FastKey{Src: [4]byte{10, 0, 2, 11}, Dst: [4]byte{10, 0, 2, 201}, SrcPort: 80, DstPort: lport, Proto: 6}
	got, ok := ff.flow(in)
	want := dataplane.FastFlow{Key: in, SetSrc: true, Src: [4]byte{10, 0, 2, 201}, SrcPort: lport, SetDst: true, Dst: [4]byte{10, 0, 2, 11}, DstPort: 80,
		DstMAC: macRS1, SrcMAC: macDir1, Ifindex: 2, MTU: 1500, NextHop: [4]byte{10, 0, 2, 11}}
	if !ok || got != want {
		t.Fatalf("FULLNAT inbound flow %+v (%v), want %+v", got, ok, want)
	}
	got, ok = ff.flow(rep)
	want = dataplane.FastFlow{Key: rep, SetSrc: true, Src: [4]byte{10, 0, 1, 100}, SrcPort: 80, SetDst: true, Dst: [4]byte{10, 0, 1, 2}, DstPort: 40000,
		DstMAC: macCli, SrcMAC: macDir0, Ifindex: 1, MTU: 1500, NextHop: [4]byte{10, 0, 1, 2}, Reply: true}
	if !ok || got != want {
		t.Fatalf("FULLNAT reply flow %+v (%v), want %+v", got, ok, want)
	}
	// The client's FIN takes both back (the reply key is the local one).
	r.run(t, flagFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, "FA"))
	if n := ff.len(); n != 0 {
		t.Fatalf("%d FULLNAT flows left after the FIN", n)
	}

	r.run(t, flagFrame(t, macCli, macDir0, "10.0.1.3", "10.0.1.101", 40000, 80, "S"))
	for range dataplane.FastMinPackets - 1 {
		r.run(t, flagFrame(t, macCli, macDir0, "10.0.1.3", "10.0.1.101", 40000, 80, "A"))
	}
	dr := dataplane.FastKey{Src: [4]byte{10, 0, 1, 3}, Dst: [4]byte{10, 0, 1, 101}, SrcPort: 40000, DstPort: 80, Proto: 6}
	got, ok = ff.flow(dr)
	want = dataplane.FastFlow{Key: dr, DstMAC: macRS2, SrcMAC: macDir1, Ifindex: 2, MTU: 1500, NextHop: [4]byte{10, 0, 2, 12}}
	if !ok || got != want {
		t.Fatalf("DR flow %+v (%v), want %+v", got, ok, want)
	}
}

// TestFastPathTUN: an IPIP service's inbound direction is handed over with
// the tunnel's ends (the director's address towards the real server, the
// real server) and the tunnel's MTU; its packets without DF, and a GRE
// service's, stay with the worker.
func TestFastPathTUN(t *testing.T) {
	r := newRig(t, "-A -t 10.0.1.100:80 -s rr\n-a -t 10.0.1.100:80 -r 10.0.2.11:80 -i\n"+
		"-A -t 10.0.1.101:80 -s rr\n-a -t 10.0.1.101:80 -r 10.0.2.12:80 -i --tun-type gre\n")
	ff := newFakeFast()
	r.env.Fast = dataplane.NewFastPath(ff, r.env)
	seg := func(src, dst string, sport uint16, flags string, df bool) []byte {
		b := pkttest.Flow{Proto: layers.IPProtocolTCP, Src: src, Dst: dst, Sport: sport, Dport: 80, TTL: 64, Flags: flags, DF: df, Payload: 10}.Frame(t)
		copy(b[0:6], macDir0[:])
		copy(b[6:12], macCli[:])
		return b
	}
	connect := func(dst string, sport uint16, df bool) {
		// The replies take another way (TUN): the worker sees the
		// client's side only, and the client's ACK establishes.
		r.run(t, seg("10.0.1.2", dst, sport, "S", df))
		for range dataplane.FastMinPackets {
			r.run(t, seg("10.0.1.2", dst, sport, "A", df))
		}
	}
	connect("10.0.1.100", 40000, true)
	in := dataplane.FastKey{Src: [4]byte{10, 0, 1, 2}, Dst: [4]byte{10, 0, 1, 100}, SrcPort: 40000, DstPort: 80, Proto: 6}
	got, ok := ff.flow(in)
	want := dataplane.FastFlow{Key: in, Encap: true, TunSrc: [4]byte{10, 0, 2, 1}, DstMAC: macRS1, SrcMAC: macDir1, Ifindex: 2, MTU: 1500,
		NextHop: [4]byte{10, 0, 2, 11}}
	if !ok || got != want {
		t.Fatalf("TUN inbound flow %+v (%v), want %+v", got, ok, want)
	}
	// A router's "fragmentation needed" about a tunnelled packet lowers
	// the tunnel's MTU (tunicmp.go): the next poll takes the flow back,
	// and the next packet installs it with the learnt MTU.
	h := *r.env.Host.Load()
	h.Local = map[[16]byte]bool{netip.MustParseAddr("10.0.2.1").As16(): true}
	r.env.Host.Store(&h)
	sent := r.run(t, seg("10.0.1.2", "10.0.1.100", 40000, "A", true))
	if len(sent) != 1 {
		t.Fatalf("the worker sent %d frames for an installed flow's packet", len(sent))
	}
	r.run(t, fragNeededAbout(t, sent[0].Data(), 1400))
	fp := r.env.Fast
	fp.Poll()
	if n := ff.len(); n != 0 {
		t.Fatalf("%d flows after the tunnel's MTU was lowered and a poll, want the TUN flow taken back", n)
	}
	r.run(t, seg("10.0.1.2", "10.0.1.100", 40000, "A", true))
	if got, ok := ff.flow(in); !ok || got.MTU != 1400 {
		t.Fatalf("TUN flow after the next packet %+v (%v), want MTU 1400", got, ok)
	}
	fp.Poll()
	if _, ok := ff.flow(in); !ok {
		t.Fatal("a poll took back a TUN flow whose MTU is the learnt one")
	}
	r.run(t, seg("10.0.1.2", "10.0.1.100", 40000, "FA", true))
	if n := ff.len(); n != 0 {
		t.Fatalf("%d TUN flows left after the FIN", n)
	}
	connect("10.0.1.100", 40001, false)
	connect("10.0.1.101", 40002, true)
	if n := ff.len(); n != 0 {
		t.Fatalf("%d flows installed for packets without DF or a GRE tunnel, want none", n)
	}
}

// TestFastPathNoAllocsPerPacket: the packets of a connection the worker
// handed over (or could not) cost the worker no allocation.
func TestFastPathNoAllocsPerPacket(t *testing.T) {
	r, ff, _ := fastRig(t)
	ff.mu.Lock()
	ff.canSend[1] = false // the reply direction stays with the worker
	ff.mu.Unlock()
	req := flagFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, "PA")
	rep := flagFrame(t, macRS2, macDir1, "10.0.2.12", "10.0.1.2", 8080, 40000, "PA")
	r.run(t, req, rep)
	if _, ok := ff.flow(fastIn); !ok || ff.len() != 1 {
		t.Fatalf("%d flows installed, want the inbound one", ff.len())
	}
	w := dataplane.NewWorker(discardIO{}, r.env)
	bufs := [2][]byte{make([]byte, 64+len(req)), make([]byte, 64+len(rep))}
	frames := make([]dataplane.Frame, 2)
	allocs := testing.AllocsPerRun(200, func() {
		copy(bufs[0][64:], req)
		copy(bufs[1][64:], rep)
		frames[0] = dataplane.Frame{Buf: bufs[0], Off: 64, Len: len(req), Ifindex: 1}
		frames[1] = dataplane.Frame{Buf: bufs[1], Off: 64, Len: len(rep), Ifindex: 2}
		w.ProcessBatch(frames)
	})
	if w.Counters.Load(dataplane.CntTx) == 0 {
		t.Fatal("the measured path sent nothing")
	}
	if allocs != 0 {
		t.Fatalf("%.1f allocations per batch", allocs)
	}
}

// fullFast is a fakeFast whose map holds no flow.
type fullFast struct{ *fakeFast }

func (f fullFast) Put(*dataplane.FastFlow) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts++
	return errors.New("map full")
}

// TestFastPathFullMap: when the map refuses a flow, the workers stop
// asking (one refusal per poll), and the flows stay with them.
func TestFastPathFullMap(t *testing.T) {
	r, ff, _ := fastRig(t)
	full := fullFast{ff}
	fp := dataplane.NewFastPath(full, r.env)
	r.env.Fast = fp
	for range 10 {
		r.run(t, flagFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, "PA"))
	}
	if ff.puts != 1 || fp.Stats().PutErrors != 1 {
		t.Fatalf("%d installs tried, %d refused, with the map full; want 1 until the next poll", ff.puts, fp.Stats().PutErrors)
	}
	fp.Poll()
	r.run(t, flagFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, "PA"))
	if ff.puts != 2 {
		t.Fatalf("%d installs tried after a poll, want 2", ff.puts)
	}
}
