package dataplane_test

import (
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/dataplane"
)

const opsRules = `-A -u 10.0.1.100:53 -s rr -o
-a -u 10.0.1.100:53 -r 10.0.2.11:53 -m
-a -u 10.0.1.100:53 -r 10.0.2.12:53 -m
-A -u 10.0.1.100:54 -s rr -o
-a -u 10.0.1.100:54 -r 10.0.2.11:54 -g
-a -u 10.0.1.100:54 -r 10.0.2.12:54 -g
-A -u 10.0.1.100:55 -s rr
-a -u 10.0.1.100:55 -r 10.0.2.11:55 -m
-a -u 10.0.1.100:55 -r 10.0.2.12:55 -m
`

// sentUDPDst returns the destination address of a sent UDP/IPv4 frame.
func sentUDPDst(t *testing.T, f dataplane.Frame) netip.Addr {
	t.Helper()
	b := f.Data()
	p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	u, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if ip == nil || u == nil {
		t.Fatalf("sent frame is not UDP/IPv4: %x", b)
	}
	return netip.AddrFrom4([4]byte(ip.DstIP.To4()))
}

// TestOnePacketScheduling: with -o every datagram of one flow is
// scheduled (rr over two real servers alternates), no connection is
// kept, CntOnePacket counts them, in NAT and DR, and in one batch or one
// datagram per batch. Without -o the same four datagrams go to one real
// server over one connection.
func TestOnePacketScheduling(t *testing.T) {
	for _, tc := range []struct {
		name    string
		port    uint16
		ops     bool
		batched bool
	}{
		{"nat-ops", 53, true, false},
		{"nat-ops-one-batch", 53, true, true},
		{"dr-ops", 54, true, false},
		{"dr-ops-one-batch", 54, true, true},
		{"nat-no-ops", 55, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, opsRules)
			frame := func() []byte {
				return flowFrame(t, macCli, macDir0, "10.0.0.1", "10.0.1.100", 40000, tc.port, false, "", "query")
			}
			var sent []dataplane.Frame
			if tc.batched {
				sent = r.run(t, frame(), frame(), frame(), frame())
			} else {
				for range 4 {
					sent = append(sent, r.run(t, frame())...)
				}
			}
			if len(sent) != 4 {
				t.Fatalf("sent %d frames, want 4", len(sent))
			}
			var got []string
			for _, f := range sent {
				got = append(got, sentUDPDst(t, f).String())
			}
			if tc.port == 54 { // DR: the VIP stays, the real server's MAC says where it went
				for i, f := range sent {
					got[i] = map[[6]byte]string{macRS1: "rs1", macRS2: "rs2"}[[6]byte(f.Data()[:6])]
				}
			}
			// rr alternates with -o (kernel order: the last added first);
			// without it the flow stays on its first real server.
			for i := 1; i < len(got); i++ {
				if got[i] == "" || (got[i] == got[i-1]) == tc.ops {
					t.Fatalf("datagrams went to %v (one-packet scheduling %v)", got, tc.ops)
				}
			}
			wantConns, wantOPS := 0, uint64(4)
			if !tc.ops {
				wantConns, wantOPS = 1, 0
			}
			if n := r.conns.Len(); n != wantConns {
				t.Errorf("connection table holds %d entries, want %d", n, wantConns)
			}
			if n := r.w.Counters.Load(dataplane.CntOnePacket); n != wantOPS {
				t.Errorf("CntOnePacket = %d, want %d", n, wantOPS)
			}
		})
	}
}

// TestOnePacketNoAllocs: forwarding a one-packet-scheduled datagram
// allocates nothing.
func TestOnePacketNoAllocs(t *testing.T) {
	r := newRig(t, opsRules)
	req := flowFrame(t, macCli, macDir0, "10.0.0.1", "10.0.1.100", 40000, 53, false, "", "query")
	w := dataplane.NewWorker(discardIO{}, r.env)
	buf := make([]byte, 64+len(req))
	frames := []dataplane.Frame{{}}
	allocs := testing.AllocsPerRun(200, func() {
		copy(buf[64:], req)
		frames[0] = dataplane.Frame{Buf: buf, Off: 64, Len: len(req), Ifindex: 1}
		w.ProcessBatch(frames)
	})
	if w.Counters.Load(dataplane.CntOnePacket) == 0 || w.Counters.Load(dataplane.CntTx) == 0 {
		t.Fatal("the measured path forwarded nothing")
	}
	if allocs != 0 {
		t.Fatalf("one-packet path allocates %.1f times", allocs)
	}
}
