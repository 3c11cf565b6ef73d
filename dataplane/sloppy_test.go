package dataplane_test

import (
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/sched"
	"github.com/uvs-lb/uvs/snapshot"

	"net/netip"
)

const mhRules = `-A -t 10.0.1.100:80 -s mh
-a -t 10.0.1.100:80 -r 10.0.2.11:8080 -m
-a -t 10.0.1.100:80 -r 10.0.2.12:8080 -m
`

// TestSloppyTCP: with sloppy_tcp a mid-flow TCP packet (ACK, data) of a
// flow without a connection is scheduled and starts an ESTABLISHED
// connection, as the kernel's state table takes NONE on an input ACK; a RST
// never is. Off (the default), such a packet is not ours.
func TestSloppyTCP(t *testing.T) {
	ack := func(t *testing.T, sport uint16) []byte {
		return tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", sport, 80, false, true)
	}

	off := newRig(t, mhRules)
	if out := off.run(t, ack(t, 40000)); len(out) != 0 {
		t.Fatalf("sloppy_tcp off: a mid-flow ACK sent %d frames, want none", len(out))
	}
	if c := &off.w.Counters; c.Load(dataplane.CntNotSyn) != 1 || c.Load(dataplane.CntSloppy) != 0 || off.conns.Len() != 0 {
		t.Fatalf("sloppy_tcp off: not-syn=%d sloppy=%d connections=%d, want 1, 0, 0",
			c.Load(dataplane.CntNotSyn), c.Load(dataplane.CntSloppy), off.conns.Len())
	}

	// Where a SYN of the flow goes (on a director that saw it).
	synRig := newRig(t, mhRules)
	out := synRig.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false))
	if len(out) != 1 {
		t.Fatalf("SYN: sent %d frames", len(out))
	}
	_, synIP, _ := decode(t, out[0].Data())

	on := newRig(t, mhRules)
	on.env.SloppyTCP = true
	out = on.run(t, ack(t, 40000))
	if len(out) != 1 || out[0].Ifindex != 2 {
		t.Fatalf("sloppy_tcp on: a mid-flow ACK sent %d frames, want 1 towards the real servers", len(out))
	}
	_, ip, tcp := decode(t, out[0].Data())
	if !ip.DstIP.Equal(synIP.DstIP) || tcp.DstPort != 8080 {
		t.Fatalf("mid-flow ACK went to %s:%d, the flow's SYN to %s: mh must re-derive the same server", ip.DstIP, tcp.DstPort, synIP.DstIP)
	}
	c := &on.w.Counters
	if c.Load(dataplane.CntSloppy) != 1 || c.Load(dataplane.CntNewConn) != 1 || c.Load(dataplane.CntNotSyn) != 0 {
		t.Fatalf("sloppy=%d new=%d not-syn=%d, want 1, 1, 0", c.Load(dataplane.CntSloppy), c.Load(dataplane.CntNewConn), c.Load(dataplane.CntNotSyn))
	}
	ls := on.conns.Snapshot(int64(on.clock.Sub(time.Unix(0, 0))), nil)
	if len(ls) != 1 || ls[0].State != conntrack.StateEstablished {
		t.Fatalf("connections %+v, want one ESTABLISHED", ls)
	}
	// The next packet of the flow uses the connection.
	if out := on.run(t, ack(t, 40000)); len(out) != 1 || c.Load(dataplane.CntNewConn) != 1 {
		t.Fatalf("second ACK: sent %d, new connections %d; want 1, 1", len(out), c.Load(dataplane.CntNewConn))
	}
	// A RST is never scheduled; a SYN still counts as a new connection,
	// not a sloppy one.
	rst := tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40001, 80, false, true)
	rst[14+20+13] |= 0x04 // RST (checksum no matter: dropped before forwarding)
	if out := on.run(t, rst); len(out) != 0 || c.Load(dataplane.CntNotSyn) != 1 {
		t.Fatalf("RST without connection: sent %d, not-syn %d; want 0, 1", len(out), c.Load(dataplane.CntNotSyn))
	}
	if out := on.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40002, 80, true, false)); len(out) != 1 ||
		c.Load(dataplane.CntSloppy) != 1 || c.Load(dataplane.CntNewConn) != 2 {
		t.Fatalf("SYN: sent %d, sloppy %d, new %d; want 1, 1, 2", len(out), c.Load(dataplane.CntSloppy), c.Load(dataplane.CntNewConn))
	}
}

// TestRunReturnsPanic: a panic in the pipeline ends Run with a
// *PanicError carrying the value and the stack, instead of killing the
// process (or leaving a dead worker while the others run on unnoticed).
func TestRunReturnsPanic(t *testing.T) {
	r := newRig(t, mhRules)
	r.env.Trace = func(*snapshot.Service, netip.AddrPort, *sched.Dest, *sched.Reason) {
		var m map[int]int
		//lint:ignore SA5000 a deliberate runtime error on the packet path
		m[1] = 1
	}
	r.w = dataplane.NewWorker(r.io, r.env)
	done := make(chan error, 1)
	go func() { done <- r.w.Run() }()
	r.io.Inject(tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false), 1, false)
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		_ = r.io.Close()
		t.Fatal("Run did not return after the pipeline panicked")
	}
	var pe *dataplane.PanicError
	if !errors.As(err, &pe) {
		t.Fatalf("Run returned %v, want a *PanicError", err)
	}
	var re runtime.Error
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "assignment to entry in nil map") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("error %q: want one line wrapping the runtime error", err)
	}
	if !strings.Contains(string(pe.Stack), "dataplane.(*Worker).schedule") {
		t.Fatalf("stack does not show where it panicked:\n%s", pe.Stack)
	}
}
