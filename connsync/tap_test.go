package connsync

import (
	"sync"
	"testing"

	"github.com/uvs-lb/uvs/connsync/wire"
)

func TestNeededTCP(t *testing.T) {
	p := DefaultPolicy
	est, fin, syn := wire.TCPEstablished, wire.TCPFinWait, wire.TCPSynRecv
	tests := []struct {
		name       string
		state, old uint16
		pkts       uint32
		want       bool
	}{
		{"established at the threshold", est, est, 3, true},
		{"established before the threshold", est, est, 2, false},
		{"established after the threshold", est, est, 4, false},
		{"established one period later", est, est, 53, true},
		{"established two periods later", est, est, 103, true},
		{"just established, not due", est, syn, 1, false},
		{"just established, due", est, syn, 3, true},
		{"syn_recv is never sent", syn, syn, 3, false},
		{"syn_sent is never sent", wire.TCPSynSent, wire.TCPNone, 3, false},
		{"last_ack is never sent", wire.TCPLastAck, wire.TCPCloseWait, 3, false},
		{"listen is never sent", wire.TCPListen, wire.TCPListen, 3, false},
		{"change to fin_wait is sent at once", fin, est, 17, true},
		{"change to close_wait is sent at once", wire.TCPCloseWait, est, 9, true},
		{"change to time_wait is sent at once", wire.TCPTimeWait, fin, 9, true},
		{"change to close is sent at once", wire.TCPClose, fin, 9, true},
		{"fin_wait without change waits for the count", fin, fin, 17, false},
		{"fin_wait without change at the count", fin, fin, 53, true},
		{"out of range state", 40, est, 3, false},
	}
	for _, tt := range tests {
		if got := p.Needed(wire.ProtoTCP, tt.state, tt.old, tt.pkts); got != tt.want {
			t.Errorf("%s: Needed(tcp, %d, %d, %d) = %v, want %v", tt.name, tt.state, tt.old, tt.pkts, got, tt.want)
		}
	}
}

func TestNeededSCTP(t *testing.T) {
	p := DefaultPolicy
	for s := uint16(0); s < wire.SCTPLast; s++ {
		synced := s == wire.SCTPEstablished || s == wire.SCTPShutdownSent || s == wire.SCTPShutdownReceived ||
			s == wire.SCTPShutdownAckSent || s == wire.SCTPClosed
		if got := p.Needed(wire.ProtoSCTP, s, s, 3); got != synced {
			t.Errorf("sctp state %d at the threshold: Needed = %v, want %v", s, got, synced)
		}
		// A change to a synced state other than ESTABLISHED is sent at once.
		wantChange := synced && s != wire.SCTPEstablished
		if got := p.Needed(wire.ProtoSCTP, s, wire.SCTPEstablished, 10); got != wantChange && s != wire.SCTPEstablished {
			t.Errorf("sctp change to %d: Needed = %v, want %v", s, got, wantChange)
		}
	}
	if p.Needed(wire.ProtoSCTP, wire.SCTPEstablished, wire.SCTPCookieEchoed, 10) {
		t.Error("sctp change to ESTABLISHED off the count was sent")
	}
}

func TestNeededUDPAndOthers(t *testing.T) {
	p := DefaultPolicy
	for _, proto := range []uint8{wire.ProtoUDP, wire.ProtoAH, 99} {
		for pkts, want := range map[uint32]bool{1: false, 2: false, 3: true, 4: false, 50: false, 53: true} {
			// No state filter: any state number is fine.
			if got := p.Needed(proto, 7, 0, pkts); got != want {
				t.Errorf("proto %d pkts %d: Needed = %v, want %v", proto, pkts, got, want)
			}
		}
	}
}

func TestNeededPeriodZero(t *testing.T) {
	p := Policy{Threshold: 3, Period: 0, Version: 1}
	for pkts := uint32(0); pkts < 200; pkts++ {
		if got := p.Needed(wire.ProtoUDP, 0, 0, pkts); got != (pkts == 3) {
			t.Errorf("period 0, pkts %d: Needed = %v", pkts, got)
		}
	}
	// A state change to a non-ESTABLISHED state is still sent at once.
	if !p.Needed(wire.ProtoTCP, wire.TCPFinWait, wire.TCPEstablished, 100) {
		t.Error("period 0: change to FIN_WAIT not sent")
	}
	if p.TemplateNeeded(4) || !p.TemplateNeeded(3) {
		t.Error("period 0: templates must be sent only at the threshold")
	}
	if !DefaultPolicy.TemplateNeeded(4) || !DefaultPolicy.TemplateNeeded(1000) {
		t.Error("default policy: templates skip the packet count")
	}
}

func TestPolicyValidate(t *testing.T) {
	if err := DefaultPolicy.Validate(); err != nil {
		t.Errorf("default policy: %v", err)
	}
	for _, p := range []Policy{{Threshold: 50, Period: 50, Version: 1}, {Threshold: 3, Period: 50, Version: 2}} {
		if p.Validate() == nil {
			t.Errorf("%+v accepted", p)
		}
	}
	if err := (Policy{Threshold: 7, Period: 0}).Validate(); err != nil {
		t.Errorf("period 0: %v", err)
	}
}

func entry(i int) wire.Entry {
	return wire.Entry{Proto: wire.ProtoTCP, State: wire.TCPEstablished, CPort: uint16(i), FWMark: uint32(i), Timeout: uint32(i >> 16)}
}

func TestRingOrderFullAndDrops(t *testing.T) {
	r := NewRing(5)
	if r.Cap() != 8 {
		t.Fatalf("NewRing(5).Cap() = %d, want 8", r.Cap())
	}
	for i := range 8 {
		e := entry(i)
		if !r.Push(&e) {
			t.Fatalf("push %d into a ring of 8 failed", i)
		}
	}
	e := entry(99)
	if r.Push(&e) {
		t.Fatal("push into a full ring succeeded")
	}
	if r.Push(&e) {
		t.Fatal("second push into a full ring succeeded")
	}
	if r.Dropped() != 2 || r.Len() != 8 {
		t.Fatalf("Dropped = %d, Len = %d; want 2, 8", r.Dropped(), r.Len())
	}
	var got []uint16
	if n := r.Drain(func(e *wire.Entry) { got = append(got, e.CPort) }); n != 8 {
		t.Fatalf("Drain = %d, want 8", n)
	}
	for i, p := range got {
		if p != uint16(i) {
			t.Fatalf("drained %v, want 0..7 in order", got)
		}
	}
	// Wrap around: the ring is reusable and keeps order.
	for i := 10; i < 15; i++ {
		e := entry(i)
		r.Push(&e)
	}
	got = got[:0]
	r.Drain(func(e *wire.Entry) { got = append(got, e.CPort) })
	if len(got) != 5 || got[0] != 10 || got[4] != 14 {
		t.Fatalf("after wrap drained %v, want 10..14", got)
	}
	if r.Drain(func(*wire.Entry) { t.Fatal("empty ring yielded an entry") }) != 0 {
		t.Fatal("empty ring drained entries")
	}
}

// TestRingConcurrent runs one producer and one consumer (run with -race):
// every entry arrives once, in order, intact, and pushes that found the
// ring full are counted.
func TestRingConcurrent(t *testing.T) {
	const n = 200000
	r := NewRing(64)
	var wg sync.WaitGroup
	var pushed int
	wg.Go(func() {
		for i := range n {
			e := entry(i)
			if r.Push(&e) {
				pushed++
			}
		}
	})
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var got int
	next := 0
	bad := 0
	check := func(e *wire.Entry) {
		got++
		want := entry(int(e.FWMark))
		if *e != want || int(e.FWMark) < next {
			bad++
		}
		next = int(e.FWMark) + 1
	}
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		r.Drain(check)
	}
	r.Drain(check)
	if bad != 0 {
		t.Fatalf("%d entries out of order or corrupted", bad)
	}
	if got != pushed || uint64(pushed)+r.Dropped() != n {
		t.Fatalf("pushed %d, drained %d, dropped %d, of %d", pushed, got, r.Dropped(), n)
	}
}

func TestRingPushAllocs(t *testing.T) {
	r := NewRing(16)
	e := entry(1)
	allocs := testing.AllocsPerRun(1000, func() {
		r.Push(&e)
		r.Push(&e) // the ring fills: drops are counted without allocating
	})
	if allocs != 0 {
		t.Fatalf("Push: %v allocs per run, want 0", allocs)
	}
	var sink uint16
	fn := func(e *wire.Entry) { sink += e.CPort }
	if a := testing.AllocsPerRun(100, func() { r.Push(&e); r.Drain(fn) }); a != 0 {
		t.Fatalf("Push+Drain: %v allocs per run, want 0", a)
	}
}

func TestTap(t *testing.T) {
	tap := NewTap()
	if tap.Sending() {
		t.Fatal("new tap is sending")
	}
	if *tap.Policy() != DefaultPolicy {
		t.Fatalf("new tap policy %+v, want %+v", *tap.Policy(), DefaultPolicy)
	}
	tap.SetSending(true)
	if !tap.Sending() {
		t.Fatal("SetSending(true) not seen")
	}
	old := tap.Policy()
	tap.SetPolicy(Policy{Threshold: 1, Period: 10, Version: 0})
	if p := tap.Policy(); p.Threshold != 1 || p.Version != 0 || *old != DefaultPolicy {
		t.Fatalf("SetPolicy: now %+v, old changed to %+v", *p, *old)
	}
	r1, r2 := tap.NewRing(), tap.NewRing()
	if rs := tap.Rings(); len(rs) != 2 || rs[0] != r1 || rs[1] != r2 || r1.Cap() != RingCapacity {
		t.Fatalf("Rings() = %v, want [r1 r2] of %d", rs, RingCapacity)
	}
	e := entry(1)
	for range RingCapacity + 3 {
		r2.Push(&e)
	}
	if tap.Dropped() != 3 {
		t.Fatalf("Tap.Dropped = %d, want 3", tap.Dropped())
	}
}

func BenchmarkRingPush(b *testing.B) {
	b.ReportAllocs()
	r := NewRing(RingCapacity)
	e := entry(1)
	fn := func(*wire.Entry) {}
	for i := 0; b.Loop(); i++ {
		r.Push(&e)
		if i&1023 == 1023 {
			r.Drain(fn)
		}
	}
}
