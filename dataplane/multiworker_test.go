package dataplane_test

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/dataplane"
)

// mwRecordIO keeps copies of what its worker writes (one worker each).
type mwRecordIO struct{ out [][]byte }

func (r *mwRecordIO) ReadBatch([]dataplane.Frame) (int, error) { return 0, dataplane.ErrClosed }
func (r *mwRecordIO) Close() error                             { return nil }
func (r *mwRecordIO) WriteBatch(frames []dataplane.Frame) (int, error) {
	for i := range frames {
		r.out = append(r.out, append([]byte(nil), frames[i].Data()...))
	}
	return len(frames), nil
}

// feed runs frames through w in batches of BatchSize.
func feed(w *dataplane.Worker, frames [][]byte) {
	const headroom = 64
	batch := make([]dataplane.Frame, 0, dataplane.BatchSize)
	for i, data := range frames {
		buf := make([]byte, headroom+len(data))
		copy(buf[headroom:], data)
		ifindex := 1
		if [6]byte(data[:6]) == macDir1 {
			ifindex = 2
		}
		batch = append(batch, dataplane.Frame{Buf: buf, Off: headroom, Len: len(data), Ifindex: ifindex})
		if len(batch) == cap(batch) || i == len(frames)-1 {
			w.ProcessBatch(batch)
			batch = batch[:0]
		}
	}
}

type mwConn struct {
	client netip.AddrPort
	vip    netip.AddrPort
	real   netip.AddrPort // where the request went
	local  netip.AddrPort // the request's source after the director (the client for NAT)
	rsMAC  [6]byte
}

// TestMultiWorkerRace: two workers share one Env; every connection's
// requests land on one worker and its replies on the other at the same
// time, as they do with fanout hashing a NAT or FULLNAT reply's tuple
// elsewhere. Run under -race (make test's race step): the shared
// connection table, the schedulers and the counters must not race, every
// frame must leave rewritten for its own connection, and every connection
// ends ESTABLISHED.
func TestMultiWorkerRace(t *testing.T) {
	const rules = natRules + "-A -t 10.0.1.102:80 -s rr\n-a -t 10.0.1.102:80 -r 10.0.2.11:8080 -b\n-a -t 10.0.1.102:80 -r 10.0.2.12:8080 -b\n"
	const perService, data = 150, 4
	r := newRig(t, rules)
	reqIO, repIO := &mwRecordIO{}, &mwRecordIO{}
	wReq, wRep := dataplane.NewWorker(reqIO, r.env), dataplane.NewWorker(repIO, r.env)

	// Phase 1: the SYNs, on the request worker; the rewritten SYNs give
	// each connection's real server and (FULLNAT) local address.
	var conns []mwConn
	var syns [][]byte
	for i := range 2 * perService {
		vip := netip.MustParseAddrPort("10.0.1.100:80")
		if i >= perService {
			vip = netip.MustParseAddrPort("10.0.1.102:80")
		}
		c := mwConn{client: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 1, byte(2 + i%200)}), uint16(20000+i)), vip: vip}
		conns = append(conns, c)
		syns = append(syns, tcpFrame(t, macCli, macDir0, c.client.Addr().String(), vip.Addr().String(), c.client.Port(), vip.Port(), true, false))
	}
	feed(wReq, syns)
	if len(reqIO.out) != len(conns) {
		t.Fatalf("%d SYNs forwarded, want %d", len(reqIO.out), len(conns))
	}
	for i, b := range reqIO.out {
		eth, ip, tcp := decode(t, b)
		c := &conns[i]
		c.real = netip.AddrPortFrom(netip.MustParseAddr(ip.DstIP.String()), uint16(tcp.DstPort))
		c.local = netip.AddrPortFrom(netip.MustParseAddr(ip.SrcIP.String()), uint16(tcp.SrcPort))
		c.rsMAC = [6]byte(eth.DstMAC)
		if i < perService && c.local != c.client {
			t.Fatalf("NAT request %d from %v, want the client %v", i, c.local, c.client)
		}
		if i >= perService && c.local.Addr() != netip.MustParseAddr("10.0.2.1") {
			t.Fatalf("FULLNAT request %d from %v, want the local address 10.0.2.1", i, c.local)
		}
	}
	reqIO.out = nil

	// Phase 2, concurrently: the server's SYN-ACK and data on one worker,
	// the client's ACKs and data on the other.
	var reqs, reps [][]byte
	for _, c := range conns {
		reps = append(reps, tcpFrame(t, c.rsMAC, macDir1, c.real.Addr().String(), c.local.Addr().String(), c.real.Port(), c.local.Port(), true, true))
	}
	for range data {
		for _, c := range conns {
			reqs = append(reqs, tcpFrame(t, macCli, macDir0, c.client.Addr().String(), c.vip.Addr().String(), c.client.Port(), c.vip.Port(), false, true))
			reps = append(reps, tcpFrame(t, c.rsMAC, macDir1, c.real.Addr().String(), c.local.Addr().String(), c.real.Port(), c.local.Port(), false, true))
		}
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); feed(wReq, reqs) }()
	go func() { defer wg.Done(); feed(wRep, reps) }()
	wg.Wait()

	if len(reqIO.out) != len(reqs) || len(repIO.out) != len(reps) {
		t.Fatalf("forwarded %d of %d requests and %d of %d replies", len(reqIO.out), len(reqs), len(repIO.out), len(reps))
	}
	for i, b := range reqIO.out {
		c := conns[i%len(conns)]
		_, ip, tcp := decode(t, b)
		if got := fmt.Sprintf("%s:%d>%s:%d", ip.SrcIP, tcp.SrcPort, ip.DstIP, tcp.DstPort); got != fmt.Sprintf("%v>%v", c.local, c.real) {
			t.Fatalf("request %d left as %s, want %v>%v", i, got, c.local, c.real)
		}
	}
	for i, b := range repIO.out {
		c := conns[i%len(conns)]
		p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if ip == nil || tcp == nil {
			t.Fatalf("reply %d does not decode: %v", i, p)
		}
		if got := fmt.Sprintf("%s:%d>%s:%d", ip.SrcIP, tcp.SrcPort, ip.DstIP, tcp.DstPort); got != fmt.Sprintf("%v>%v", c.vip, c.client) {
			t.Fatalf("reply %d left as %s, want %v>%v", i, got, c.vip, c.client)
		}
	}
	if tx := wReq.Counters.Load(dataplane.CntTx) + wRep.Counters.Load(dataplane.CntTx); tx != uint64(len(conns)+len(reqs)+len(reps)) {
		t.Fatalf("tx counters sum to %d, want %d", tx, len(conns)+len(reqs)+len(reps))
	}
	n := 0
	r.conns.Range(int64(r.clock.Sub(r.env.Epoch)), func(l *conntrack.Listing) bool {
		n++
		if l.State != conntrack.StateEstablished {
			t.Errorf("connection %v -> %v -> %v in %s, want ESTABLISHED", l.Client, l.Virtual, l.Real, l.StateName())
		}
		return true
	})
	if n != len(conns) {
		t.Fatalf("connection table lists %d entries, want %d", n, len(conns))
	}
}
